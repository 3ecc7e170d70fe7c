"""The fine-grained reference the suite makes itself: a liquid of flexible LJ trimers.

Model (reduced units, all atoms sigma = epsilon = m = 1):
* intermolecular LJ, 4 eps [(s/r)^12 - (s/r)^6] shifted to 0 at rc = 2.5 sigma, between atoms of
  *different* molecules only (all intramolecular pairs are excluded);
* harmonic bonds 0.5 k_b (r - b0)^2 between atoms (0,1) and (1,2) of each molecule;
* an angle term 0.5 k_theta (cos theta - cos theta0)^2 at the middle atom (harmonic in cos theta:
  smooth everywhere, no arccos singularity at 180 degrees).
The potential is a `Potential`, so it runs through `run_md` (Langevin, unit atomic masses) like
every other model, and frames carry all-atom positions and forces for force matching.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from scipy.spatial.transform import Rotation

from mlffbench.cg.data import AllAtomData
from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.errors import SimulationError
from mlffbench.neighbors import edge_vectors
from mlffbench.potentials.base import Potential


@dataclass(frozen=True)
class TrimerModel:
    """Flexible LJ trimer parameters (reduced units)."""

    bond_length: float = 1.0
    k_bond: float = 100.0
    angle_deg: float = 120.0
    k_angle: float = 20.0
    lj_cutoff: float = 2.5

    def geometry(self) -> np.ndarray:
        """(3, 3) atom positions of one relaxed molecule, centred on its centre of mass."""
        th = np.deg2rad(self.angle_deg)
        b = self.bond_length
        x = np.array([[b, 0.0, 0.0], [0.0, 0.0, 0.0], [b * np.cos(th), b * np.sin(th), 0.0]])
        return x - x.mean(axis=0)


def _min_image(d, box):
    frac = d @ jnp.linalg.inv(box).T
    return (frac - jnp.round(frac)) @ box.T


def trimer_potential(n_molecules: int, model: TrimerModel = TrimerModel()) -> Potential:
    """Potential of `n_molecules` trimers; atoms 3m, 3m+1, 3m+2 form molecule m (middle = 3m+1)."""
    mol = jnp.repeat(jnp.arange(n_molecules), 3)
    base = 3 * np.arange(n_molecules)
    bonds = jnp.asarray(np.concatenate([np.stack([base, base + 1], 1), np.stack([base + 1, base + 2], 1)]))
    angles = jnp.asarray(np.stack([base, base + 1, base + 2], 1))
    rc = model.lj_cutoff
    shift = 4.0 * (rc ** -12 - rc ** -6)
    cos0 = float(np.cos(np.deg2rad(model.angle_deg)))

    def energy_fn(R, box, nbrs):
        dR, mask, i, j = edge_vectors(R, box, nbrs)
        r2 = jnp.sum(dR * dR, axis=-1)
        use = mask & (mol[i] != mol[j]) & (r2 < rc * rc)
        inv6 = jnp.where(use, 1.0 / jnp.where(use, r2, 1.0) ** 3, 0.0)
        e_lj = jnp.sum(jnp.where(use, 4.0 * (inv6 * inv6 - inv6) - shift, 0.0))
        db = _min_image(R[bonds[:, 1]] - R[bonds[:, 0]], box)
        rb = jnp.sqrt(jnp.sum(db * db, axis=-1))
        e_bond = 0.5 * model.k_bond * jnp.sum((rb - model.bond_length) ** 2)
        u = _min_image(R[angles[:, 0]] - R[angles[:, 1]], box)
        v = _min_image(R[angles[:, 2]] - R[angles[:, 1]], box)
        cos = jnp.sum(u * v, -1) / jnp.sqrt(jnp.sum(u * u, -1) * jnp.sum(v * v, -1))
        e_angle = 0.5 * model.k_angle * jnp.sum((cos - cos0) ** 2)
        return e_lj + e_bond + e_angle

    return Potential(name="fg:lj-trimer", cutoff=rc, energy_fn=energy_fn, neighbor_format="half",
                     params={"n_molecules": n_molecules, **model.__dict__})


def initial_configuration(n_side: int, atom_density: float, seed: int | list[int],
                          model: TrimerModel = TrimerModel(), min_dist: float = 0.85,
                          max_tries: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """n_side^3 randomly oriented trimers on a cubic lattice, no intermolecular pair closer than
    `min_dist` (rejection sampling of orientations; the best of `max_tries` when none is clear). Returns (positions (3M, 3), box (3, 3))."""
    M = n_side ** 3
    L = (3 * M / atom_density) ** (1.0 / 3.0)
    box = np.eye(3) * L
    rng = np.random.default_rng(seed)
    geo = model.geometry()
    spacing = L / n_side
    centres = (np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * spacing
    placed = np.zeros((0, 3))
    for c in centres:
        best, best_d2 = None, -1.0
        for _ in range(max_tries):
            x = Rotation.random(random_state=rng).apply(geo) + c
            if len(placed) == 0:
                best = x
                break
            d = x[:, None, :] - placed[None, :, :]
            d -= L * np.round(d / L)
            d2 = np.min(np.sum(d * d, -1))
            if d2 > best_d2:
                best, best_d2 = x, d2
            if d2 > min_dist ** 2:
                break
        # at liquid densities some close contacts remain: the short warm-up run removes them
        placed = np.concatenate([placed, best])
    return placed, box


def simulate_state(name: str, kT: float, atom_density: float, n_side: int, *, seed: int,
                   dt: float = 0.005, gamma: float = 1.0, warmup_steps: int = 2000,
                   equil_steps: int = 4000, prod_steps: int = 8000, sample_every: int = 50,
                   model: TrimerModel = TrimerModel(), replicas: int = 1, progress=None) -> AllAtomData:
    """Langevin MD of the trimer liquid at (kT, atom density); frames of the production run.

    Warm-up at dt/10 with strong friction removes the lattice start's strain, then equilibration and production at dt.
    replicas: independent trajectories run side by side (one vectorised `run_md`), replica r from
    its own random lattice start (`initial_configuration` seed `seed` for r = 0, [seed, r] else)
    and its own Langevin noise; each runs warm-up + equilibration + `prod_steps`. Frames are
    returned replica after replica (`AllAtomData.replica`), so statistics can use independent
    samples (`mlffbench.cg.checks.noise_floor`).
    """
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    starts = [initial_configuration(n_side, atom_density, seed if r == 0 else [seed, r], model)
              for r in range(replicas)]
    box = starts[0][1]
    R0 = np.stack([x for x, _ in starts]) if replicas > 1 else starts[0][0]
    n = R0.shape[-2]
    pot = trimer_potential(n // 3, model)
    mass = np.ones(n)
    integ = Integrator(ensemble="nvt_langevin", dt=dt / 10, gamma=5.0)
    kw = dict(kT=kT, mass=mass, skin=0.4, chunk_steps=1000)
    res = run_md(pot, R0, box, integ, warmup_steps, seed=seed, sample_every=warmup_steps // 4, **kw)
    _check(res, name, "warm-up")
    integ = Integrator(ensemble="nvt_langevin", dt=dt, gamma=gamma)
    if equil_steps:  # equil_steps = 0 (allowed by the config) skips equilibration
        res = run_md(pot, res.final["positions"], box, integ, equil_steps, seed=seed + 1,
                     velocities=res.final["velocities"], sample_every=math.gcd(equil_steps, sample_every), **kw)
        _check(res, name, "equilibration")
    res = run_md(pot, res.final["positions"], box, integ, prod_steps, seed=seed + 2,
                 velocities=res.final["velocities"], sample_every=sample_every,
                 record=("positions", "forces"), progress=progress, **kw)
    _check(res, name, "production")
    s = res.samples

    def frames(a):  # (S, R, ...) -> (R * S, ...), replica after replica
        return np.concatenate(np.swapaxes(a, 0, 1)) if replicas > 1 else a

    S = len(s["time"])
    return AllAtomData(positions=frames(s["positions"]), forces=frames(s["forces"]), masses=mass,
                       molecule=np.repeat(np.arange(n // 3), 3), box=box, times=np.tile(s["time"], replicas),
                       kT=kT, pressure=frames(s["P"]), name=name,
                       replica=np.repeat(np.arange(replicas), S) if replicas > 1 else None,
                       meta={"atom_density": atom_density, "model": model.__dict__, "dt": dt, "gamma": gamma,
                             "replicas": replicas, "mean_kT_instantaneous": float(np.mean(s["T"]))})


def _check(res, name: str, stage: str) -> None:
    if res.status != "ok":
        raise SimulationError(f"fine-grained MD at state {name!r} failed during {stage}: {res.message}")
