"""All-atom frames for coarse-graining: the container, its npz file and the import of user data.

Units are reduced (sigma, epsilon, tau, m) inside. A user's file must already be in one
consistent unit system; `load_all_atom` does not convert units (say which in the metadata).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlffbench.errors import UserError

REQUIRED = ("positions", "forces", "masses", "molecule", "box")


@dataclass
class AllAtomData:
    """Fine-grained frames of one state point.

    Attributes:
        positions: (F, n, 3) Cartesian (may be wrapped into the box).
        forces: (F, n, 3) total forces on the atoms.
        masses: (n,) atomic masses.
        molecule: (n,) int, molecule index of every atom (0..M-1, any order).
        box: (3, 3) box, columns = lattice vectors (constant over the frames).
        times: (F,) simulation time of every frame (tau); NaN if unknown.
        kT: thermostat temperature (epsilon); NaN if unknown.
        pressure: (F,) instantaneous pressure if known (epsilon/sigma^3), else NaN.
        name: state-point label.
        replica: (F,) int, the independent trajectory (replica) every frame comes from, 0..R-1;
            None = one trajectory. Frames of one replica are contiguous and in time order.
    """

    positions: np.ndarray
    forces: np.ndarray
    masses: np.ndarray
    molecule: np.ndarray
    box: np.ndarray
    times: np.ndarray
    kT: float = float("nan")
    pressure: np.ndarray | None = None
    name: str = "state"
    meta: dict = field(default_factory=dict)
    replica: np.ndarray | None = None

    @property
    def n_molecules(self) -> int:
        return int(self.molecule.max()) + 1


def validate(arrays: dict, source: str) -> None:
    """One-line UserError naming the file and the problem for missing or inconsistent arrays."""
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise UserError(f"{source}: missing field(s) {', '.join(missing)} (need {', '.join(REQUIRED)})")
    R, F = np.asarray(arrays["positions"]), np.asarray(arrays["forces"])
    m, mol, box = np.asarray(arrays["masses"]), np.asarray(arrays["molecule"]), np.asarray(arrays["box"])
    if R.ndim != 3 or R.shape[-1] != 3:
        raise UserError(f"{source}: positions must have shape (frames, atoms, 3), got {R.shape}")
    if F.shape != R.shape:
        raise UserError(f"{source}: forces shape {F.shape} differs from positions shape {R.shape}")
    n = R.shape[1]
    if m.shape != (n,):
        raise UserError(f"{source}: masses must have shape ({n},), got {m.shape}")
    if mol.shape != (n,):
        raise UserError(f"{source}: molecule must have shape ({n},), got {mol.shape}")
    if box.shape not in ((3, 3), (3,), (R.shape[0], 3, 3)):
        raise UserError(f"{source}: box must have shape (3, 3), (3,) or (frames, 3, 3), got {box.shape}")
    if "replica" in arrays:
        rep = np.asarray(arrays["replica"])
        if rep.shape != (R.shape[0],) or not np.issubdtype(rep.dtype, np.integer) or rep.min() < 0:
            raise UserError(f"{source}: replica must be non-negative integers of shape ({R.shape[0]},)")
        if np.any(np.diff(rep) < 0):
            raise UserError(f"{source}: replica indices must be non-decreasing (each replica's frames contiguous)")
    if not (np.all(np.isfinite(R)) and np.all(np.isfinite(F))):
        raise UserError(f"{source}: positions or forces contain NaN/inf")
    if np.any(m <= 0):
        raise UserError(f"{source}: masses must be positive")
    if not np.issubdtype(mol.dtype, np.integer) or mol.min() < 0:
        raise UserError(f"{source}: molecule must hold non-negative integers")
    if len(np.unique(mol)) != mol.max() + 1:
        raise UserError(f"{source}: molecule indices must be 0..M-1 without gaps")


def _box33(box: np.ndarray, source: str) -> np.ndarray:
    b = np.asarray(box, np.float64)
    if b.shape == (3,):
        return np.diag(b)
    if b.ndim == 3:
        if not np.allclose(b, b[0]):
            raise UserError(f"{source}: the box changes between frames (only constant-volume data)")
        return b[0]
    return b


def from_arrays(arrays: dict, source: str, name: str | None = None) -> AllAtomData:
    validate(arrays, source)
    R = np.asarray(arrays["positions"], np.float64)
    times = np.asarray(arrays.get("times", np.full(R.shape[0], np.nan)), np.float64)
    pressure = arrays.get("pressure")
    replica = arrays.get("replica")
    return AllAtomData(positions=R, forces=np.asarray(arrays["forces"], np.float64),
                       masses=np.asarray(arrays["masses"], np.float64),
                       molecule=np.asarray(arrays["molecule"], np.int64),
                       box=_box33(arrays["box"], source), times=times,
                       kT=float(np.asarray(arrays.get("kT", np.nan))),
                       pressure=None if pressure is None else np.asarray(pressure, np.float64),
                       name=str(name or arrays.get("name", Path(source).stem)),
                       replica=None if replica is None else np.asarray(replica, np.int64))


def save_all_atom(path: str | Path, d: AllAtomData) -> None:
    """npz with the fields `load_all_atom` reads (reduced units)."""
    extra = {} if d.pressure is None else {"pressure": d.pressure}
    if d.replica is not None:
        extra["replica"] = d.replica
    np.savez_compressed(path, positions=d.positions, forces=d.forces, masses=d.masses, molecule=d.molecule,
                        box=d.box, times=d.times, kT=d.kT, name=d.name, _meta=json.dumps(d.meta), **extra)


def load_all_atom(path: str | Path, name: str | None = None) -> AllAtomData:
    """Read all-atom frames from .npz (arrays positions, forces, masses, molecule, box [, times,
    kT, pressure, replica (F,) int: independent trajectories, contiguous]) or .extxyz (per-atom columns pos, forces, masses, molecule; Lattice in the header).

    Raises a one-line UserError naming the file for anything missing or inconsistent.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"all-atom data not found: {p}")
    if p.suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if not k.startswith("_")}
        except (OSError, ValueError) as exc:
            raise UserError(f"{p}: not a readable npz file ({exc})") from None
        if "name" in arrays:
            arrays["name"] = str(arrays["name"])
        return from_arrays(arrays, str(p), name)
    if p.suffix in (".extxyz", ".xyz"):
        return from_arrays(_read_extxyz(p), str(p), name)
    raise UserError(f"{p}: unsupported all-atom format (use .npz or .extxyz)")


def _read_extxyz(p: Path) -> dict:
    from ase.io import read

    try:
        frames = read(p, index=":", format="extxyz")
    except Exception as exc:  # ASE raises many types for malformed files
        raise UserError(f"{p}: not a readable extxyz file ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    if not frames:
        raise UserError(f"{p}: no frames")
    n = len(frames[0])
    if any(len(a) != n for a in frames):
        raise UserError(f"{p}: frames have different atom counts")
    arrays: dict = {"positions": np.stack([a.get_positions() for a in frames]),
                    "box": np.stack([np.asarray(a.cell).T for a in frames])}
    a0 = frames[0]
    try:
        arrays["forces"] = np.stack([a.get_forces() for a in frames])
    except Exception:  # no calculator results / no forces column
        pass
    if "molecule" in a0.arrays or "mol" in a0.arrays:
        arrays["molecule"] = np.asarray(a0.arrays.get("molecule", a0.arrays.get("mol")))
    if "masses" in a0.arrays:
        arrays["masses"] = np.asarray(a0.arrays["masses"])
    elif "masses" not in arrays:
        arrays["masses"] = a0.get_masses()
    if "time" in a0.info:
        arrays["times"] = np.array([a.info.get("time", np.nan) for a in frames], np.float64)
    return arrays
