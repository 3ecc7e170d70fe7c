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


# ----- VASP OUTCAR (ase.io.read format 'vasp-out') -------------------------------------------
# Two ionic steps of a 4-atom FCC argon cell, in VASP's own layout: the lines ASE's OUTCAR parser
# (ase/io/vasp_parsers/vasp_outcar_parsers.py) keys on: POTCAR (twice per species), ions per
# type, Iteration (end of header), direct lattice vectors, POSITION/TOTAL-FORCE, in kB, FREE ENERGIE.
_OUTCAR_STEPS = [  # (a Å, positions Å, forces eV/Å, stress kB (XX YY ZZ XY YZ ZX), TOTEN, E(sigma->0))
    (5.30, [[0.01, 0.00, 0.00], [0.00, 2.65, 2.65], [2.65, 0.02, 2.65], [2.65, 2.65, 0.00]],
     [[-0.012, 0.001, 0.000], [0.004, -0.003, 0.002], [0.005, -0.008, 0.001], [0.003, 0.010, -0.003]],
     [1.5, 1.2, 1.3, 0.10, -0.20, 0.05], -0.31234567, -0.31201234),
    (5.35, [[0.00, 0.01, 0.00], [0.03, 2.675, 2.675], [2.675, 0.00, 2.675], [2.675, 2.675, 0.01]],
     [[0.002, -0.006, 0.001], [-0.009, 0.002, -0.001], [0.004, 0.001, 0.003], [0.003, 0.003, -0.003]],
     [-0.4, -0.5, -0.3, 0.02, 0.01, -0.03], -0.32345678, -0.32300011),
]


def _outcar_text() -> str:
    lines = [" vasp.6.3.0 18Jan22 (build Mar 01 2022) complex", "",
             " POTCAR:    PAW_PBE Ar 07Sep2000", " POTCAR:    PAW_PBE Ar 07Sep2000", "",
             "   ISPIN  =      1    spin polarized calculation?",
             "   ions per type =               4", ""]
    for step, (a, pos, frc, kb, toten, e0) in enumerate(_OUTCAR_STEPS, start=1):
        lines += [f"--------------------------------------- Iteration {step:6d}(   1)  ---------------------------------------",
                  "", "      direct lattice vectors                 reciprocal lattice vectors"]
        lines += [" ".join(f"{(a if i == j else 0.0):14.9f}" for j in range(3)) + "     0.000000000  0.000000000  0.000000000"
                  for i in range(3)]
        lines += ["", "  FORCE on cell =-STRESS in cart. coord.  units (eV):",
                  "  in kB   " + "".join(f"{x:12.5f}" for x in kb),
                  "  external pressure =        0.00 kB  Pullay stress =        0.00 kB", "",
                  " POSITION                                       TOTAL-FORCE (eV/Angst)",
                  " -----------------------------------------------------------------------------------"]
        lines += ["".join(f"{x:13.5f}" for x in p) + "   " + "".join(f"{x:14.6f}" for x in f) for p, f in zip(pos, frc)]
        lines += [" -----------------------------------------------------------------------------------", "",
                  "  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)",
                  "  ---------------------------------------------------",
                  f"  free  energy   TOTEN  = {toten:18.8f} eV", "",
                  f"  energy  without entropy= {e0:18.8f}  energy(sigma->0) = {e0:18.8f}", "", ""]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name,fmt", [("OUTCAR", None), ("run.out", "vasp-out")])
def test_vasp_outcar_arrives_in_reduced_units(tmp_path, name, fmt):
    """energy(sigma->0), forces, positions, cell and stress of both ionic steps, divided by hand by
    epsilon, sigma, epsilon/sigma and epsilon/sigma^3 (argon), from the numbers written into the
    file and from ase.io.read's own view of it. The file name alone (OUTCAR) selects the format."""
    from ase.units import GPa

    path = tmp_path / name
    path.write_text(_outcar_text())
    frames = read(path, index=":", format="vasp-out")
    assert len(frames) == 2 and frames[0].get_chemical_symbols() == ["Ar"] * 4
    ds = read_ase_dataset(path, "energy", "forces", "stress", ARGON, fmt=fmt)
    eps, sig = ARGON.epsilon_ev, ARGON.sigma_angstrom
    assert (eps, sig) == (0.010321, 3.4)
    for k, (a, pos, frc, kb, toten, e0) in enumerate(_OUTCAR_STEPS):
        np.testing.assert_allclose(ds.positions[k], np.array(pos) / sig, rtol=1e-14)
        np.testing.assert_allclose(ds.forces[k], np.array(frc) / (eps / sig), rtol=1e-14)
        np.testing.assert_allclose(ds.box[k], np.eye(3) * a / sig, rtol=1e-14)
        assert ds.energy[k] == pytest.approx(e0 / eps, rel=1e-14)  # energy(sigma->0), not TOTEN
        # VASP's kB are -stress (compressive positive) in XX YY ZZ XY YZ ZX: 1 kB = 0.1 GPa
        xx, yy, zz, xy, yz, zx = (-x * 0.1 * GPa for x in kb)
        stress = np.array([[xx, xy, zx], [xy, yy, yz], [zx, yz, zz]])
        np.testing.assert_allclose(ds.stress[k], stress / (eps / sig**3), rtol=1e-12)
        atoms = frames[k]  # and ASE's reading of the same frame, converted the same way
        np.testing.assert_allclose(ds.forces[k], atoms.get_forces() * sig / eps, rtol=1e-14)
        np.testing.assert_allclose(ds.box[k], atoms.cell[:].T / sig, rtol=1e-14)
        assert ds.energy[k] == pytest.approx(atoms.get_potential_energy() / eps, rel=1e-14)
    assert not np.isclose(ds.energy[0], _OUTCAR_STEPS[0][4] / eps, rtol=1e-6)  # TOTEN would differ
