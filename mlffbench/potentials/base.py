"""The one potential interface: (positions, box, neighbour list) -> energy; forces and stress derived.

LJ, every learned model and every external calculator is a `Potential`. Workflows (MD, phonons,
string method, rates) receive a `Potential` and never ask which kind it is: they ask what it *can
do* (`potential.capabilities`): an energy, a stress, autodiff second derivatives, running inside
`jit`, evaluating under `vmap`. `evaluate` returns what the model has.

Units: everything reduced (see `mlffbench.units`). Shapes: R (N, 3) Cartesian, box (3, 3) with
lattice vectors as columns, energy scalar, forces (N, 3), stress (3, 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from mlffbench.errors import UserError
from mlffbench.io import json_sha256
from mlffbench.neighbors import NeighborSpec, neighbor_spec

Array = jnp.ndarray
EnergyFn = Callable[[Array, Array, Any], Array]
ForceFn = Callable[[Array, Array, Any], Array]
StressFn = Callable[[Array, Array, Any], Array]


@dataclass(frozen=True)
class Capabilities:
    """What a potential can do; downstream code branches on these and nothing else.

    Attributes:
        energy: a total energy exists (forces are -grad E). False for direct-force models.
        stress: a stress is available (strain derivative of the energy, or the calculator's).
        autodiff: derivatives by JAX autodiff (Hessians, strain derivatives); False means
            finite differences of forces for second derivatives.
        jit: callable inside `jax.jit` (pure JAX, or a host callback that JAX can trace).
        batched: evaluates under `vmap` natively (else batch members are evaluated one by one).
        members: committee size (1 for a single model).
    """

    energy: bool = True
    stress: bool = True
    autodiff: bool = True
    jit: bool = True
    batched: bool = True
    members: int = 1

    def as_dict(self) -> dict:
        return {"energy": self.energy, "forces": True, "stress": self.stress,
                "autodiff_hessian": self.autodiff, "jit": self.jit, "batched": self.batched,
                "members": self.members}


class Evaluation(NamedTuple):
    """What `Potential.evaluate` returns: energy (epsilon) or None, forces (N, 3), stress (3, 3) or None."""

    energy: Array | None
    forces: Array
    stress: Array | None


@dataclass(frozen=True, eq=False)
class Potential:
    """A potential energy surface (or a force field without one).

    Attributes:
        name: variant name echoed into every result, e.g. 'lj/cut/shift' or 'gnn:schnet'.
        cutoff: interaction range in reduced units (sigma).
        energy_fn: (R, box, nbrs) -> total energy (epsilon), or None for a force-only model.
        direct_force_fn: (R, box, nbrs) -> forces (N, 3); only for models without an energy.
        neighbor_format: 'half' or 'full', the list layout energy_fn expects.
        dtype: float dtype the model computes in (positions are cast to it).
        params: JSON-able description (parameters, hyperparameters) echoed into results.
        per_atom_energy_fn: optional (R, box, nbrs) -> (N,) energies.
        stress_fn: optional (R, box, nbrs) -> (3, 3) stress (ASE sign), for potentials whose
            stress does not come from autodiff (external calculators).
        capabilities: what it can do; None derives it (energy from energy_fn, stress and
            autodiff when an energy exists).
        param_hash: hash of the numerical parameters that `params` does not spell out (e.g. the
            sha256 of a checkpoint); part of the fingerprint.
        kind: where it comes from ('lj', 'gnn', 'ase', 'jax', 'committee'); for provenance only,
            never for branching.
        md_list_headroom: the neighbour-list capacity multiplier MD allocates with when the caller
            gives none (`run_md`, `simulation`). Head room costs every force call a padded slot
            per missing pair; a GNN's cost is per slot (gathers and scatter-adds), LJ's is not
            (dense rows), so GNN potentials take less. An overflow re-allocates either way.
    """

    name: str
    cutoff: float
    energy_fn: EnergyFn | None = None
    direct_force_fn: ForceFn | None = None
    neighbor_format: str = "full"
    dtype: Any = jnp.float64
    params: dict = field(default_factory=dict)
    per_atom_energy_fn: EnergyFn | None = None
    stress_fn: StressFn | None = None
    capabilities: Capabilities | None = None
    param_hash: str = ""
    kind: str = "lj"
    md_list_headroom: float = 1.3

    def __post_init__(self) -> None:
        if (self.energy_fn is None) == (self.direct_force_fn is None):
            raise ValueError("a Potential needs exactly one of energy_fn or direct_force_fn")
        if self.capabilities is None:
            has_e = self.energy_fn is not None
            object.__setattr__(self, "capabilities",
                               Capabilities(energy=has_e, stress=has_e or self.stress_fn is not None))

    # ----- identity -------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """Stable 16-hex-digit id: description + parameter hash. The key of every cache."""
        fp = self.__dict__.get("_fingerprint")
        if fp is None:
            fp = json_sha256({"name": self.name, "cutoff": self.cutoff, "format": self.neighbor_format,
                             "dtype": jnp.dtype(self.dtype).name, "params": self.params,
                             "param_hash": self.param_hash, "kind": self.kind,
                             "capabilities": self.capabilities.as_dict()})[:16]
            object.__setattr__(self, "_fingerprint", fp)
        return fp

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Potential) and other.fingerprint == self.fingerprint

    # ----- what it can do -------------------------------------------------------------------
    @property
    def conservative(self) -> bool:
        """True when forces are -grad E (an energy exists)."""
        return self.capabilities.energy

    @property
    def precision(self) -> str:
        """'float32' or 'float64': the dtype the model computes in."""
        return jnp.dtype(self.dtype).name

    @property
    def is_float32(self) -> bool:
        """True for single-precision models (their forces carry ~1e-6 relative round-off)."""
        return jnp.dtype(self.dtype).itemsize < 8

    def require(self, capability: str, needed_for: str) -> None:
        """UserError (one line) unless the potential has `capability` ('energy', 'stress', ...)."""
        if not getattr(self.capabilities, capability):
            what = {"energy": "has no energy (it predicts forces directly)",
                    "stress": "provides no stress",
                    "autodiff": "cannot be differentiated by JAX",
                    "jit": "cannot run inside jax.jit",
                    "batched": "cannot be vmapped"}.get(capability, f"lacks {capability}")
            raise UserError(f"{self.name} {what}; {needed_for} needs it")

    # ----- evaluation -----------------------------------------------------------------------
    def _cast(self, R: Array, box: Array) -> tuple[Array, Array]:
        return jnp.asarray(R, self.dtype), jnp.asarray(box, self.dtype)

    def energy(self, R: Array, box: Array, nbrs) -> Array:
        """Total potential energy (epsilon). Raises for force-only models."""
        if self.energy_fn is None:
            raise TypeError(f"{self.name} predicts forces directly and has no energy")
        R, box = self._cast(R, box)
        return self.energy_fn(R, box, nbrs)

    def forces(self, R: Array, box: Array, nbrs) -> Array:
        """Forces (epsilon/sigma), shape (N, 3): -dE/dR, or the model's direct prediction."""
        if self.direct_force_fn is not None:
            Rc, boxc = self._cast(R, box)
            return self.direct_force_fn(Rc, boxc, nbrs)
        return -jax.grad(self.energy)(R, box, nbrs)

    def energy_and_forces(self, R: Array, box: Array, nbrs) -> tuple[Array, Array]:
        """(E, F) in one pass; E is NaN for a force-only model."""
        if self.direct_force_fn is not None:
            F = self.forces(R, box, nbrs)
            return jnp.asarray(jnp.nan, F.dtype), F
        e, g = jax.value_and_grad(self.energy)(R, box, nbrs)
        return e, -g

    def evaluate(self, R: Array, box: Array, nbrs, stress: bool = False) -> Evaluation:
        """What the model has: Evaluation(energy or None, forces, stress or None).

        `stress=True` adds the stress where the potential has one (else None).
        """
        if self.capabilities.energy:
            e, F = self.energy_and_forces(R, box, nbrs)
        else:
            e, F = None, self.forces(R, box, nbrs)
        S = self.stress(R, box, nbrs) if (stress and self.capabilities.stress) else None
        return Evaluation(e, F, S)

    def stress(self, R: Array, box: Array, nbrs) -> Array:
        """Configurational (virial) stress, shape (3, 3), ASE sign: (1/V) dE/d(strain).

        Positive under tension. jax-md's `quantity.stress` has the opposite sign. The strain is
        applied to positions and box together; the neighbour list stays valid because the
        strain is infinitesimal. Needs an energy (or a `stress_fn`).
        """
        if self.stress_fn is not None:
            Rc, boxc = self._cast(R, box)
            return self.stress_fn(Rc, boxc, nbrs)
        volume = jnp.abs(jnp.linalg.det(box))

        def strained_energy(eps):
            deform = jnp.eye(3, dtype=eps.dtype) + 0.5 * (eps + eps.T)
            return self.energy(R @ deform.T, deform @ box, nbrs)

        dE = jax.grad(strained_energy)(jnp.zeros((3, 3), dtype=jnp.result_type(R)))
        return dE / volume

    def neighbors(self, box, skin: float = 0.3, fractional: bool = False, n_atoms: int | None = None,
                  capacity_multiplier: float = 1.3) -> NeighborSpec:
        """Neighbour-list functions suitable for this potential in `box`."""
        return neighbor_spec(box, self.cutoff, skin=skin, fmt=self.neighbor_format,
                             fractional=fractional, n_atoms=n_atoms,
                             capacity_multiplier=capacity_multiplier)

    def describe(self) -> dict:
        """What every result echoes about the potential."""
        return {"name": self.name, "kind": self.kind, "fingerprint": self.fingerprint,
                "cutoff_sigma": self.cutoff, "conservative": self.conservative,
                "dtype": self.precision, "capabilities": self.capabilities.as_dict(),
                "params": self.params}
