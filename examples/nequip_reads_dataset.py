"""NequIP's own dataset class (nequip >= 0.7: `nequip.data.dataset.ASEDataset`, with the type mapper and
neighbour-list transforms a NequIP training config uses) reads `mlffbench generate`'s dataset.extxyz as
written, with no key mapping: every frame's positions, cell, energy, forces and stress equal what ASE
reads from the extxyz, and what `dataset.npz` (reduced units, converted with its own `_units`) holds.

Usage: nequip-venv/bin/python examples/nequip_reads_dataset.py OUTDIR/dataset.extxyz [r_max_A]
(dataset.npz is looked for beside it). Prints one JSON line with the frame count and the largest
differences (0.0 = bit for bit)."""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from ase.io import read
from nequip.data import AtomicDataDict
from nequip.data.dataset import ASEDataset
from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper, NeighborListTransform

torch.set_default_dtype(torch.float64)
path = Path(sys.argv[1])
r_max = float(sys.argv[2]) if len(sys.argv) > 2 else 6.0
ds = ASEDataset(file_path=str(path), transforms=[
    ChemicalSpeciesToAtomTypeMapper(model_type_names=["Ar"]),
    NeighborListTransform(r_max=r_max)])
frames = read(path, ":")
assert len(ds) == len(frames), (len(ds), len(frames))

npz = path.with_name("dataset.npz")
z = np.load(npz) if npz.exists() else None
if z is not None:
    u = json.loads(str(z["_units"]))
    e, s = u["epsilon_ev"], u["sigma_angstrom"]
    ref_npz = {"pos": z["positions"] * s, "cell": np.transpose(z["box"], (0, 2, 1)) * s,
               "energy": z["energy"] * e, "forces": z["forces"] * e / s, "stress": z["stress"] * e / s**3}
    n_real = z["n_atoms"] if "n_atoms" in z.files else np.full(len(z["energy"]), z["positions"].shape[1])
    assert len(z["energy"]) == len(frames), (len(z["energy"]), len(frames))

K = AtomicDataDict
worst_ase = {"pos": 0.0, "cell": 0.0, "energy": 0.0, "forces": 0.0, "stress": 0.0}
worst_npz = dict.fromkeys(worst_ase, 0.0)
edges = []
for i, a in enumerate(frames):
    d = ds[i]
    got = {"pos": d[K.POSITIONS_KEY].numpy(), "cell": d[K.CELL_KEY].numpy().reshape(3, 3),
           "energy": float(d[K.TOTAL_ENERGY_KEY].reshape(())), "forces": d[K.FORCE_KEY].numpy(),
           "stress": d[K.STRESS_KEY].numpy().reshape(3, 3)}
    assert d[K.POSITIONS_KEY].dtype == torch.float64, d[K.POSITIONS_KEY].dtype
    assert np.array_equal(d[K.ATOM_TYPE_KEY].numpy().reshape(-1), np.zeros(len(a), int)), i
    ref = {"pos": a.positions, "cell": a.cell.array, "energy": a.get_potential_energy(),
           "forces": a.get_forces(), "stress": a.get_stress(voigt=False)}
    for k in worst_ase:
        worst_ase[k] = max(worst_ase[k], float(np.max(np.abs(np.asarray(got[k]) - ref[k]))))
        if z is not None:
            r = ref_npz[k][i][: n_real[i]] if k in ("pos", "forces") else ref_npz[k][i]
            scale = max(1.0, float(np.max(np.abs(r))))
            worst_npz[k] = max(worst_npz[k], float(np.max(np.abs(np.asarray(got[k]) - r))) / scale)
    edges.append(int(d[K.EDGE_INDEX_KEY].shape[1]))

assert all(v == 0.0 for v in worst_ase.values()), worst_ase   # ASE's extxyz reader and NequIP's: identical
if z is not None:  # npz -> metal units is one multiplication per value: round-off only
    assert all(v < 1e-14 for v in worst_npz.values()), worst_npz
print(json.dumps({"nequip_reads_generate_extxyz": True, "frames": len(frames), "r_max_A": r_max,
                  "max_abs_diff_vs_ase": worst_ase, "max_rel_diff_vs_npz": worst_npz if z is not None else None,
                  "edges_per_frame": [min(edges), max(edges)]}))
