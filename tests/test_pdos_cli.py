"""`mlffbench pdos` end to end: outputs in phonopy's layouts, comparison block, bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

import mlffbench  # noqa: F401

TINY = """
zero_kelvin:
  supercell: 4
  lattice_constant: 5.26865
  relax_positions: false
  mesh: 8
  dos_points: 201
  band_points_per_segment: 6
finite_temperature:
  enabled: false
"""


def _run(args, cwd):
    return subprocess.run([sys.executable, "-c", "from mlffbench.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_pdos_zero_kelvin_outputs_and_compare(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "out"
    res = _run(["pdos", "--model", "lj/cut/shift", "-c", str(cfg), "-o", str(out), "--compare", "lj", "-q"], tmp_path)
    assert res.returncode == 0, res.stderr
    r = json.loads((out / "result.json").read_text())
    z = r["zero_kelvin"]
    assert z["nu_max"]["THz"] == pytest.approx(z["nu_max"]["reduced"] / r["units"]["tau_ps"])
    assert len(z["nu_X"]["THz"]) == 3 and z["n_imaginary_modes"] == 0
    # the same potential against itself: zero distance
    c = r["comparison"]["zero_kelvin"]
    assert c["w1_dos_over_ref_nu_max"] < 1e-12 and abs(c["rel_error_nu_max"]) < 1e-12
    for name in ("total_dos.dat", "band.yaml", "FORCE_CONSTANTS", "pdos.png", "dispersion.png", "manifest.json",
                 "reference/total_dos.dat"):
        assert (out / name).is_file(), name
    from phonopy.file_IO import parse_FORCE_CONSTANTS

    fc = parse_FORCE_CONSTANTS(str(out / "FORCE_CONSTANTS"))  # compact: atom 0's row, eV/Å^2
    assert fc.shape == (1, 256, 3, 3) and np.abs(fc.sum(axis=1)).max() < 1e-12
    assert z["hessian"] == "autodiff"
    dos = np.loadtxt(out / "total_dos.dat")
    assert dos.shape == (201, 2)
    assert abs(np.trapezoid(dos[:, 1], dos[:, 0]) - 3.0) < 1e-3  # phonopy: 3 modes per atom
    # band.yaml is readable by phonopy's own band.yaml reader
    import yaml

    band = yaml.safe_load((out / "band.yaml").read_text())
    assert band["nqpoint"] == 30 and len(band["phonon"]) == 30
    x = band["phonon"][5]  # X point (end of first segment)
    np.testing.assert_allclose([b["frequency"] for b in x["band"]], z["nu_X"]["THz"], rtol=1e-8)


def _main_in_process(args, monkeypatch, capsys):
    from mlffbench.cli import main

    monkeypatch.setattr(sys, "argv", ["mlffbench", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


def test_pdos_bad_config_key_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "bad.yaml"
    out = str(tmp_path / "o")
    cfg.write_text("zero_kelvin:\n  mesh_size: 8\n")
    code, err = _main_in_process(["pdos", "-c", str(cfg), "-o", out], monkeypatch, capsys)
    assert code == 2 and "zero_kelvin.mesh_size" in err and not (tmp_path / "o").exists()
    cfg.write_text("finite_temperature:\n  temperatures: [-5]\n")
    code, err = _main_in_process(["pdos", "-c", str(cfg), "-o", out], monkeypatch, capsys)
    assert code == 2 and "temperatures" in err
    cfg.write_text(TINY)
    code, err = _main_in_process(["pdos", "--model", "nope", "-c", str(cfg), "-o", out], monkeypatch, capsys)
    assert code == 2 and "--model" in err and not (tmp_path / "o").exists()
