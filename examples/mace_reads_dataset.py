"""MACE's own extxyz loader reads `mlffbench generate`'s dataset.extxyz as written (keys energy,
forces, stress): every frame's labels equal what ASE reads, bit for bit. Prints a JSON line."""
import json
import sys

import numpy as np
from ase.io import read
from mace.data.utils import KeySpecification, load_from_xyz, update_keyspec_from_kwargs

path = sys.argv[1]
keys = update_keyspec_from_kwargs(KeySpecification.from_defaults(), {"energy_key": "energy", "forces_key": "forces",
                                                        "stress_key": "stress"})
_, configs = load_from_xyz(path, keys)
frames = read(path, ":")
assert len(configs) == len(frames), (len(configs), len(frames))
worst = 0.0
for i, (c, a) in enumerate(zip(configs, frames)):
    p = c.properties
    assert np.array_equal(c.positions, a.positions) and np.array_equal(c.atomic_numbers, a.numbers), i
    assert float(p["energy"]) == a.get_potential_energy(), (i, "energy")
    assert np.array_equal(p["forces"], a.get_forces()), (i, "forces")
    s = np.asarray(p["stress"]).reshape(-1)
    ref = a.get_stress(voigt=False).reshape(-1) if s.size == 9 else a.get_stress()
    assert np.array_equal(s, ref), (i, "stress")
print(json.dumps({"mace_reads_generate_extxyz": True, "frames": len(frames)}))
