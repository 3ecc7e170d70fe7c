"""Training data: frame selection by split, padded edge lists per frame, standardisation.

Edges are built once per frame (any cell, explicit periodic images, exactly the cutoff:
training needs no skin) and padded to one edge count so that a batch of
frames is a plain vmap. An edge (i, j, S) means the vector r_j - r_i + box @ S, the same
convention as the multi-image lists of `mlffbench.neighbors.edge_vectors`, so a model sees
identical geometry in training and in MD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlffbench.errors import UserError
from mlffbench.io import Dataset


@dataclass
class GraphSet:
    """Frames ready for batching (F frames, N atoms, E padded edges), reduced units.

    positions (F, N, 3), box (F, 3, 3), receivers/senders (F, E) int32, shifts (F, E, 3) float,
    mask (F, E) bool, energy (F,), forces (F, N, 3), kT_target (F,), index (F,) into the dataset,
    atom_mask (F, N) bool: real atoms (False for the ghost padding of a vacancy frame, see
    `generate`'s vacancies.in_dataset); None = every atom is real.
    """

    positions: np.ndarray
    box: np.ndarray
    receivers: np.ndarray
    senders: np.ndarray
    shifts: np.ndarray
    mask: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    kT_target: np.ndarray
    index: np.ndarray
    atom_mask: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[1]

    def take(self, idx) -> dict[str, np.ndarray]:
        """Batch arrays for frames `idx` (the inputs of the jitted step)."""
        return {"R": self.positions[idx], "box": self.box[idx], "recv": self.receivers[idx],
                "send": self.senders[idx], "shifts": self.shifts[idx], "mask": self.mask[idx],
                "E": self.energy[idx], "F": self.forces[idx], "atoms": self.real_atoms()[idx]}

    def real_atoms(self) -> np.ndarray:
        """(F, N) bool: which atoms are real (all of them unless the frames are ghost-padded)."""
        if self.atom_mask is None:
            return np.ones(self.positions.shape[:2], bool)
        return self.atom_mask


def frame_edges(positions: np.ndarray, box: np.ndarray, cutoff: float, half: bool):
    """(i, j, S) for every pair closer than `cutoff`, periodic images included, S integer (E, 3).

    Vectorised numpy over all pairs and the few image shifts the cell needs (ASE's neighbour
    list gives the same pairs, see tests, but took ~0.2 s per 256-atom frame here). half=True
    keeps each unordered pair (with its image) once: i < j, or i == j with the first nonzero
    component of S positive. Ghost atoms (non-finite positions: the padding of a frame with
    fewer atoms, see `generate`'s vacancies.in_dataset) get no edges: an atom infinitely far away.
    """
    from mlffbench.neighbors import perpendicular_widths

    R = np.asarray(positions, np.float64)
    real = np.all(np.isfinite(R), axis=1)
    R = np.where(real[:, None], R, 0.0)
    b = np.asarray(box, np.float64)
    frac = R @ np.linalg.inv(b).T
    d0 = frac[None, :, :] - frac[:, None, :]  # (i, j, 3): s_j - s_i
    base = -np.round(d0)
    d0 = d0 + base
    n_img = np.floor(cutoff / perpendicular_widths(b) + 0.5).astype(int)
    rc2 = cutoff * cutoff
    out_i, out_j, out_S = [], [], []
    for sx in range(-n_img[0], n_img[0] + 1):
        for sy in range(-n_img[1], n_img[1] + 1):
            for sz in range(-n_img[2], n_img[2] + 1):
                s = np.array([sx, sy, sz], float)
                d = (d0 + s) @ b.T
                r2 = np.einsum("ijk,ijk->ij", d, d)
                i, j = np.nonzero((r2 < rc2) & (r2 > 1e-20) & real[:, None] & real[None, :])
                out_i.append(i)
                out_j.append(j)
                out_S.append(base[i, j] + s)
    i = np.concatenate(out_i)
    j = np.concatenate(out_j)
    S = np.concatenate(out_S).astype(np.int64)
    if half:
        first = np.where(S[:, 0] != 0, S[:, 0], np.where(S[:, 1] != 0, S[:, 1], S[:, 2]))
        keep = (i < j) | ((i == j) & (first > 0))
        i, j, S = i[keep], j[keep], S[keep]
    return i, j, S


def build_graphs(ds: Dataset, index: np.ndarray, cutoff: float, half: bool,
                 n_edges: int | None = None, edges: dict | None = None) -> GraphSet:
    """Padded edge lists for frames `index` of `ds`. n_edges: pad to this many (default: max).

    edges: optional precomputed {frame: (i, j, S)} (see `all_edges`)."""
    lists = [edges[k] if edges is not None else frame_edges(ds.positions[k], ds.box[k], cutoff, half)
             for k in index]
    e_max = max([len(li[0]) for li in lists] + [1])
    if n_edges is not None:
        if n_edges < e_max:
            raise ValueError(f"n_edges={n_edges} is smaller than the largest frame's {e_max} edges")
        e_max = n_edges
    F = len(index)
    recv = np.zeros((F, e_max), np.int32)
    send = np.zeros((F, e_max), np.int32)
    shifts = np.zeros((F, e_max, 3), np.float32)
    mask = np.zeros((F, e_max), bool)
    for f, (i, j, S) in enumerate(lists):
        n = len(i)
        recv[f, :n], send[f, :n], shifts[f, :n], mask[f, :n] = i, j, S, True
    R = ds.positions[index]  # ghost atoms (NaN) have no edges; a finite placeholder keeps jit finite
    real = np.all(np.isfinite(R), axis=-1)
    return GraphSet(positions=np.where(real[..., None], R, 0.0), box=ds.box[index], receivers=recv, senders=send,
                    shifts=shifts, mask=mask, energy=ds.energy[index], forces=ds.forces[index],
                    kT_target=ds.kT_target[index], index=np.asarray(index), atom_mask=real)


def all_edges(ds: Dataset, index, cutoff: float, half: bool) -> dict:
    """{frame: (i, j, S)} for the frames in `index` (computed once, shared by every split)."""
    return {int(k): frame_edges(ds.positions[k], ds.box[k], cutoff, half) for k in np.unique(index)}


def standardization(ds: Dataset, train_index: np.ndarray, use_energy: bool) -> dict:
    """Per-species (one species) energy shift and force scale from the training frames.

    energy_shift: mean energy per atom (epsilon), 0 when energies are not used (force matching);
    force_scale: RMS force component (epsilon/sigma); energy_scale = force_scale * 1 sigma.
    """
    n_real = np.sum(np.all(np.isfinite(ds.positions[train_index]), axis=-1), axis=-1)  # ghost-padded frames
    F = ds.forces[train_index]
    f_rms = float(np.sqrt(np.mean(F ** 2)))
    if not np.isfinite(f_rms) or f_rms <= 0:
        raise UserError("training frames have zero or non-finite forces; cannot standardise")
    shift = float(np.mean(ds.energy[train_index] / n_real)) if use_energy else 0.0
    return {"energy_shift": shift, "energy_scale": f_rms, "force_scale": f_rms,
            "units": {"energy_shift": "epsilon/atom", "energy_scale": "epsilon", "force_scale": "epsilon/sigma"}}


def _frame_value(atoms, key: str, config_key: str, k: int, source: str):
    """atoms' value for `key`: the attached calculator's results first, then info, then arrays."""
    calc = getattr(atoms, "calc", None)
    results = getattr(calc, "results", {}) if calc is not None else {}
    for store in (results, atoms.info, atoms.arrays):
        if key in store:
            return store[key]
    raise UserError(f"{source}: frame {k} has no {key!r} (set {config_key} to the file's key)")


def read_ase_dataset(path, energy_key: str | None, forces_key: str, stress_key: str | None, units,
                     fmt: str | None = None) -> Dataset:
    """Any ASE-readable file (extxyz, ASE db, OUTCAR, ...) -> Dataset in reduced units.

    The file is in ASE's (metal) units: Å, eV, eV/Å, eV/Å^3 (ASE stress sign, 6 Voigt or 3x3),
    converted with `units` (a UnitSystem). Keys are looked up in the calculator's results, then
    atoms.info (energy, stress) or atoms.arrays (forces); energy_key / stress_key None = not used
    (NaN). Optional per-frame info: temperature_K, target_temperature_K, phase ('solid'/'liquid';
    else -1 = unknown), trajectory, frame. Every frame must hold one species, the same number of
    atoms, and a cell periodic in all three directions; else a one-line UserError naming the frame.
    """
    from ase.io import read

    source = str(path)
    try:
        frames = read(source, index=":", format=fmt)
    except Exception as exc:  # ASE raises many types for unreadable files
        raise UserError(f"{source}: not readable by ase.io.read ({type(exc).__name__}: {exc})".splitlines()[0]) \
            from None
    if not frames:
        raise UserError(f"{source}: no frames")
    L, E, F, S, T = (units.scale(q) for q in ("length", "energy", "force", "stress", "temperature"))
    species0, n0 = None, len(frames[0])
    cols: dict[str, list] = {k: [] for k in ("positions", "forces", "energy", "stress", "box", "temperature",
                                             "kT_target", "phase", "trajectory", "frame")}
    for k, atoms in enumerate(frames):
        species = sorted(set(atoms.get_chemical_symbols()))
        if len(species) != 1 or (species0 is not None and species != species0):
            raise UserError(f"{source}: frame {k} has species {', '.join(species)} "
                            f"(mixed species; mlffbench trains one-species models{'' if species0 is None else ' of ' + species0[0]})")
        species0 = species
        if len(atoms) != n0:
            raise UserError(f"{source}: frame {k} has {len(atoms)} atoms, frame 0 has {n0} (all frames need one size)")
        if not all(atoms.pbc) or abs(atoms.cell.volume) < 1e-12:
            raise UserError(f"{source}: frame {k} cell is not periodic in all three directions "
                            f"(pbc={atoms.pbc.tolist()}); training frames must be bulk cells")
        cols["positions"].append(atoms.get_positions() / L)
        cols["box"].append(np.asarray(atoms.cell[:]).T / L)
        forces = np.asarray(_frame_value(atoms, forces_key, "data.forces_key", k, source), float)
        if forces.shape != (n0, 3):
            raise UserError(f"{source}: frame {k} {forces_key!r} has shape {forces.shape}, expected ({n0}, 3)")
        cols["forces"].append(forces / F)
        cols["energy"].append(np.nan if energy_key is None
                              else float(np.asarray(_frame_value(atoms, energy_key, "data.energy_key", k, source))) / E)
        if stress_key is None:
            cols["stress"].append(np.full((3, 3), np.nan))
        else:
            from ase.stress import voigt_6_to_full_3x3_stress

            st = np.asarray(_frame_value(atoms, stress_key, "data.stress_key", k, source), float)
            if st.size not in (6, 9):
                raise UserError(f"{source}: frame {k} {stress_key!r} has {st.size} values, expected 6 (Voigt) or 9")
            cols["stress"].append((voigt_6_to_full_3x3_stress(st) if st.size == 6 else st.reshape(3, 3)) / S)
        info = atoms.info
        t = float(info.get("temperature_K", np.nan)) / T
        cols["temperature"].append(t)
        cols["kT_target"].append(float(info.get("target_temperature_K", info.get("temperature_K", np.nan))) / T)
        cols["phase"].append({"solid": 0, "liquid": 1}.get(str(info.get("phase", "")), -1))
        cols["trajectory"].append(int(info.get("trajectory", 0)))
        cols["frame"].append(int(info.get("frame", k)))
    arrays = {k: np.asarray(v) for k, v in cols.items()}
    for k in ("phase", "trajectory", "frame"):
        arrays[k] = arrays[k].astype(np.int64)
    return Dataset(arrays, units.as_dict(), {"source": source, "species": species0[0]})
