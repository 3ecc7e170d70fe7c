"""`train --data FILE`: any ASE-readable file (extxyz, ASE db) becomes the same reduced-unit dataset;
missing keys, mixed species and non-periodic cells are one-line errors naming the frame and key."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read, write

from mlffbench.errors import UserError
from mlffbench.io import write_extxyz
from mlffbench.training.data import read_ase_dataset
from mlffbench.training.toy import lj_toy_dataset
from mlffbench.units import ARGON


@pytest.fixture(scope="module")
def toy():
    return lj_toy_dataset(2, kTs=(0.05, 0.1), frames_per_T=2, seed=4)


def _same(a, b, rtol=1e-12, atol=1e-14):
    for k in ("positions", "forces", "energy", "stress", "box"):
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=rtol, atol=atol, err_msg=k)


def test_generate_extxyz_and_ase_db_read_back(toy, tmp_path):
    write_extxyz(tmp_path / "d.extxyz", toy, ARGON)
    ds = read_ase_dataset(tmp_path / "d.extxyz", "energy", "forces", "stress", ARGON)
    _same(ds, toy)
    np.testing.assert_array_equal(ds.phase, toy.phase)
    np.testing.assert_allclose(ds.kT_target, toy.kT_target, rtol=1e-12)
    write(tmp_path / "d.db", read(tmp_path / "d.extxyz", index=":"))
    _same(read_ase_dataset(tmp_path / "d.db", "energy", "forces", "stress", ARGON), toy)


def test_custom_keys_in_info_and_arrays(toy, tmp_path):
    """MACE-style REF_* keys stored in info/arrays (no calculator); stress as 6 Voigt values."""
    frames = read_from(toy, tmp_path)
    for atoms in frames:
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.info["REF_stress"] = atoms.get_stress()  # Voigt
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.calc = None
    write(tmp_path / "ref.extxyz", frames)  # ASE's own writer: 8 decimals (eV/Å, Å)
    _same(read_ase_dataset(tmp_path / "ref.extxyz", "REF_energy", "REF_forces", "REF_stress", ARGON), toy,
          rtol=1e-6, atol=1e-5)  # 1e-8 eV/Å is 3e-6 epsilon/sigma


def read_from(toy, tmp_path):
    write_extxyz(tmp_path / "src.extxyz", toy, ARGON)
    return read(tmp_path / "src.extxyz", index=":")


@pytest.mark.parametrize("edit,needle", [
    (lambda f: f[2].calc.results.pop("energy"), "frame 2 has no 'energy' (set data.energy_key"),
    (lambda f: f[1].set_chemical_symbols(["Kr"] + ["Ar"] * (len(f[1]) - 1)), "frame 1 has species Ar, Kr"),
    (lambda f: f[3].set_pbc([True, True, False]), "frame 3 cell is not periodic"),
])
def test_bad_files_are_one_line_errors(toy, tmp_path, edit, needle):
    frames = read_from(toy, tmp_path)
    edit(frames)
    write(tmp_path / "bad.extxyz", frames)
    with pytest.raises(UserError) as err:
        read_ase_dataset(tmp_path / "bad.extxyz", "energy", "forces", "stress", ARGON)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_train_cli_reads_extxyz_and_refuses_bad_key(toy, tmp_path):
    import yaml
    from conftest import run_cli

    write_extxyz(tmp_path / "d.extxyz", toy, ARGON)
    cfg = {"units": {"system": "lj"}, "splits": {"val": {"trajectories": [1]}},
           "model": {"hparams": {"features": 8, "n_blocks": 1, "n_basis": 8}},
           "data": {"forces_key": "F_missing"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, out = run_cli(["train", "-c", str(tmp_path / "c.yaml"), "--data", str(tmp_path / "d.extxyz"),
                         "-o", str(tmp_path / "o"), "-q"])
    assert code == 2 and "frame 0 has no 'F_missing'" in out and "Traceback" not in out
    assert not (tmp_path / "o").exists()


def test_run_test_errors_reads_an_extxyz_and_refuses_a_bad_one(toy, tmp_path):
    """`run`'s `dataset` may be any ASE-readable file (keys from `dataset_keys`): test_errors
    evaluates its frames; a missing key is one line naming the frame and key, exit 2, no OUTDIR."""
    import json

    import yaml
    from conftest import run_cli

    frames = read_from(toy, tmp_path)
    for atoms in frames:  # labels under custom keys, as another code would write them
        atoms.info["E_dft"] = atoms.get_potential_energy()
        atoms.arrays["F_dft"] = atoms.get_forces()
        atoms.calc = None
    write(tmp_path / "ext.extxyz", frames)
    keys = {"energy_key": "E_dft", "forces_key": "F_dft", "stress_key": None}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"dataset": str(tmp_path / "ext.extxyz"), "dataset_keys": keys}))
    code, out = run_cli(["run", "-c", str(tmp_path / "run.yaml"), "--model", "lj", "-b", "test_errors",
                         "-o", str(tmp_path / "o"), "-q"])
    assert code == 0, out
    res = json.loads((tmp_path / "o" / "benchmarks" / "test_errors" / "result.json").read_text())
    body = res["model"]
    assert res["state"] == "passed" and body["frames"] == len(frames) == 4
    assert body["bins"][0]["force_rmse"]["value"] < 1e-8  # eV/Å: LJ on LJ labels in ASE's 8-decimal extxyz
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"dataset": str(tmp_path / "ext.extxyz"),
                                                       "dataset_keys": {**keys, "forces_key": "F_missing"}}))
    code, out = run_cli(["run", "-c", str(tmp_path / "bad.yaml"), "--model", "lj", "-b", "test_errors",
                         "-o", str(tmp_path / "bad"), "-q"])
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "frame 0 has no 'F_missing'" in lines[0], out
    assert not (tmp_path / "bad").exists()
