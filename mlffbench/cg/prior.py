"""Repulsive pair priors of CG models (reduced units: r in sigma, energies in epsilon).

A force-matched model knows nothing about bead distances the reference never samples; a prior
pair repulsion supplies the physics there (E_total = E_model + E_prior; models are fitted to
F_mapped - F_prior). Two forms, both force-shifted so that value and force vanish at `cutoff`:

* `ExponentialPrior` (default, after hippynn's CG example `repulsive_potential.py`, Shinkle et
  al. 2024): pair force f(r) = 2 s p exp(a (t - r)), a = ln(1/p) / w, so f(t) = 2 p s and
  f(t - w) = 2 s (the factor 2 is hippynn's doubled pair list, i.e. its physical pair force).
  `fit_exponential_prior` puts the onset t at the reference's smallest sampled bead distance,
  takes the width w = margin and s = mean |F| of the mapped force components (as hippynn does),
  raised if needed until the pair energy at t - margin is `barrier_kT` x the highest kT of the
  study, so CG MD cannot bring two beads closer than the reference minus the margin.
* `RepulsivePrior` (the older form): eps [(s/r)^12 - (s/rc)^12 + 12 (s/rc)^12 (r/rc - 1)], r < rc,
  with rc the first rise of the mapped RDF and s = rc / cut_factor.

Every prior round-trips through `as_dict` / `prior_from_dict` (stored as prior.json beside a CG
model's parameters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax.numpy as jnp

from mlffbench.errors import UserError


class _PairPrior:
    """Shared edge-list evaluation; subclasses define `cutoff` and `pair_energy(r)`."""

    cutoff: float

    def energy_from_edges(self, dR, mask):
        """Energy (epsilon) of a *full* edge list dR (E, 3) with mask (E,) (each pair twice, hence 1/2)."""
        r2 = jnp.sum(dR * dR, -1)
        ok = mask & (r2 > 0)
        r = jnp.sqrt(jnp.where(ok, r2, 1.0))
        return 0.5 * jnp.sum(jnp.where(ok, self.pair_energy(r), 0.0))


@dataclass(frozen=True)
class RepulsivePrior(_PairPrior):
    """Force-shifted r^-12 wall: U(r) = eps [(s/r)^12 - (s/rp)^12 + 12 (s/rp)^12 (r/rp - 1)], r < rp.

    Construct with `RepulsivePrior.from_rise(r_p)`: rp = r_p, s = r_p / cut_factor.
    """

    sigma: float
    epsilon: float = 1.0
    cut_factor: float = 1.25

    @classmethod
    def from_rise(cls, r_rise: float, epsilon: float = 1.0, cut_factor: float = 1.25) -> RepulsivePrior:
        return cls(sigma=r_rise / cut_factor, epsilon=epsilon, cut_factor=cut_factor)

    @property
    def cutoff(self) -> float:
        return self.sigma * self.cut_factor

    def pair_energy(self, r):
        rp = self.cutoff
        x = (self.sigma / jnp.where(r < rp, r, rp)) ** 12
        xp = (self.sigma / rp) ** 12
        u = self.epsilon * (x - xp + 12.0 * xp * (r / rp - 1.0))
        return jnp.where(r < rp, u, 0.0)

    def as_dict(self) -> dict:
        return {"form": "r12", "sigma": self.sigma, "epsilon": self.epsilon, "cut_factor": self.cut_factor,
                "cutoff": self.cutoff,
                "formula": "eps[(s/r)^12 - (s/rc)^12 + 12 (s/rc)^12 (r/rc - 1)], r < rc"}


@dataclass(frozen=True)
class ExponentialPrior(_PairPrior):
    """hippynn-style exponential wall, force-shifted at cutoff = onset + width.

    onset t (sigma), strength s (epsilon/sigma), width w (sigma), fraction p: pair force
    f(r) = 2 s p exp(a (t - r)) - f(cutoff), a = ln(1/p) / w, for r < cutoff.
    """

    onset: float
    strength: float
    width: float
    fraction: float = 0.05

    @property
    def decay(self) -> float:
        """a = ln(1/p) / w (1/sigma)."""
        return math.log(1.0 / self.fraction) / self.width

    @property
    def cutoff(self) -> float:
        return self.onset + self.width

    def _raw(self, r):
        a = self.decay
        return 2.0 * self.strength * self.fraction / a * jnp.exp(a * (self.onset - r))

    def pair_energy(self, r):
        rc = self.cutoff
        a = self.decay
        u_c = self._raw(rc)
        u = self._raw(jnp.where(r < rc, r, rc)) - u_c + a * u_c * (r - rc)
        return jnp.where(r < rc, u, 0.0)

    def as_dict(self) -> dict:
        return {"form": "exponential", "onset": self.onset, "strength": self.strength, "width": self.width,
                "fraction": self.fraction, "cutoff": self.cutoff,
                "formula": "pair force 2 s p exp(a (t - r)) - (its value at rc), a = ln(1/p)/w, rc = t + w"}


def prior_from_dict(d: dict) -> RepulsivePrior | ExponentialPrior:
    """Inverse of `as_dict` (UserError on an unknown or incomplete prior)."""
    try:
        if d.get("form") == "exponential":
            return ExponentialPrior(onset=float(d["onset"]), strength=float(d["strength"]),
                                    width=float(d["width"]), fraction=float(d["fraction"]))
        if d.get("form") == "r12":
            return RepulsivePrior(sigma=float(d["sigma"]), epsilon=float(d["epsilon"]),
                                  cut_factor=float(d["cut_factor"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"prior: missing or malformed field ({exc})") from None
    raise UserError(f"prior: unknown form {d.get('form')!r} (expected 'exponential' or 'r12')")


def fit_exponential_prior(r_min: float, mean_abs_force: float, margin: float, kT_max: float,
                          barrier_kT: float = 5.0, fraction: float = 0.05) -> ExponentialPrior:
    """The exponential prior that keeps beads apart (see the module docstring).

    Onset t = r_min, width w = margin (hippynn's shape: the pair force rises 1/p-fold from t to
    t - margin), strength s = max(mean |F|, the strength at which the pair energy at t - margin is
    `barrier_kT` x kT_max). Raising s rather than narrowing w keeps the wall as soft as the
    barrier allows (the curvature at t - margin is ~ a^2 u, a = ln(1/p)/w), so CG MD time steps
    stay stable.

    Args:
        r_min: smallest bead-bead distance the reference samples at the training state (sigma).
        mean_abs_force: mean |F| of the mapped force components there (epsilon/sigma), hippynn's s.
        margin: the contact check's margin (sigma).
        kT_max: highest temperature at which the model will be simulated (epsilon).
    """
    if not 0 < margin < r_min:
        raise UserError(f"prior: margin {margin} must lie in (0, r_min = {r_min:.3g})")
    unit = float(ExponentialPrior(r_min, 1.0, margin, fraction).pair_energy(r_min - margin))  # energy at s = 1
    return ExponentialPrior(r_min, max(float(mean_abs_force), barrier_kT * kT_max / unit), margin, fraction)
