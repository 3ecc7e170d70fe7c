"""Tiny LJ-labelled datasets for tests and benchmarks (real ones come from `mlffbench generate`).

Frames are an FCC crystal with Gaussian displacements of variance kT / k_E per component (an
Einstein-crystal stand-in for thermal snapshots, k_E ~ 230 epsilon/sigma^2 for LJ near a0), labelled
with the exact `lj/cut/shift` energy, forces and stress. This is ~100x cheaper than running MD
and is all a unit test of training needs; "liquid" frames are strongly disordered crystals.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mlffbench.io import Dataset
from mlffbench.potentials.lj import lennard_jones
from mlffbench.structures import fcc
from mlffbench.units import ARGON

EINSTEIN_K = 230.0


def lj_toy_dataset(n_cells: int = 2, a: float = 1.5496, kTs=(0.1, 0.3, 0.5), frames_per_T: int = 8,
                   seed: int = 0, liquid_kT: float | None = None) -> Dataset:
    """One 'trajectory' per kT (plus an optional disordered 'liquid' one), LJ labels, reduced units."""
    lj = lennard_jones("lj/cut/shift")
    s = fcc(n_cells, a)
    box = jnp.asarray(s.box)
    spec = lj.neighbors(s.box, skin=1.0, n_atoms=s.n_atoms)
    rng = np.random.default_rng(seed)
    temps = list(kTs) + ([liquid_kT] if liquid_kT is not None else [])
    R_all, kT_all, traj, frame, phase = [], [], [], [], []
    for t_idx, kT in enumerate(temps):
        liquid = liquid_kT is not None and t_idx == len(kTs)
        amp = 0.07 if liquid else np.sqrt(kT / EINSTEIN_K)
        for f in range(frames_per_T):
            R_all.append(s.positions + rng.normal(0.0, amp, s.positions.shape))
            kT_all.append(kT)
            traj.append(t_idx)
            frame.append(f)
            phase.append(1 if liquid else 0)
    R_all = np.asarray(R_all)
    nb = spec.allocate(jnp.asarray(R_all[0]), extra_capacity=64)

    @jax.jit
    def label(R):
        n = spec.update(R, nb)
        e, F = lj.energy_and_forces(R, box, n)
        return e, F, lj.stress(R, box, n), n.did_buffer_overflow

    out = [label(jnp.asarray(R)) for R in R_all]
    if any(bool(o[3]) for o in out):
        raise RuntimeError("toy dataset: neighbour list overflow")
    arrays = {
        "positions": R_all, "energy": np.array([float(o[0]) for o in out]),
        "forces": np.array([np.asarray(o[1]) for o in out]), "stress": np.array([np.asarray(o[2]) for o in out]),
        "box": np.broadcast_to(s.box, (len(R_all), 3, 3)).copy(), "temperature": np.asarray(kT_all),
        "kT_target": np.asarray(kT_all), "phase": np.asarray(phase, np.int64),
        "trajectory": np.asarray(traj, np.int64), "frame": np.asarray(frame, np.int64),
    }
    return Dataset(arrays, ARGON.as_dict(), {"source": "lj_toy_dataset"})
