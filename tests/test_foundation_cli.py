"""`mlffbench generate` end to end on a tiny protocol, dataset round trip, and bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read

from conftest import run_cli

TINY = {
    "seed": 3,
    "system": {"supercell": 4},
    # 200-step chunks: the 400-step NPT ramp runs as 2 x 200, the very program of the 200-step NPT
    # segment (chunking never changes a trajectory: test_foundation_md); 400 compiled one more
    "md": {"timestep": 5.0, "chunk_steps": 200},
    "protocol": {"n_trajectories": 2, "npt": {"temperature": 10, "steps": 200},
                 "nvt": {"temperature": 10, "steps": 200},
                 "ramp": {"start": 10, "stop": 60, "steps": 400}, "frame_every": 100},
}


def _write(tmp_path: Path, cfg: dict, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gen")
    cfg = _write(tmp, TINY)
    code, out = run_cli(["generate", "-c", str(cfg), "-o", str(tmp / "out"), "-q"])
    assert code == 0, out
    return tmp / "out", out


def test_generate_writes_dataset_and_manifest(generated):
    out, text = generated
    for name in ("dataset.npz", "dataset.extxyz", "manifest.json", "thermo.log", "generate.png"):
        assert (out / name).is_file(), name
    from mlffbench.io import load_dataset, read_json

    ds = load_dataset(out)
    assert len(ds) == 2 * (200 + 400) // 100
    assert ds.positions.shape[1:] == (256, 3)
    assert set(np.unique(ds.trajectory)) == {0, 1}
    man = read_json(out / "manifest.json")
    assert man["seed"] == 3 and man["config_hash"] and man["dataset_sha256"]
    assert "jax" in man["versions"] and man["device"]["platform"] == "cpu"
    assert "frames" in text


def test_dataset_round_trips_through_ase_exactly(generated):
    out, _ = generated
    from mlffbench.io import load_dataset
    from mlffbench.units import ARGON

    ds = load_dataset(out)
    frames = read(out / "dataset.extxyz", index=":")
    assert len(frames) == len(ds)
    for k in (0, len(ds) - 1):
        atoms = frames[k]
        assert atoms.get_potential_energy() == ds.energy[k] * ARGON.scale("energy")
        np.testing.assert_array_equal(atoms.get_forces(), ds.forces[k] * ARGON.scale("force"))
        np.testing.assert_array_equal(atoms.get_positions(), ds.positions[k] * ARGON.scale("length"))
        stress = atoms.get_stress(voigt=False)
        np.testing.assert_allclose(stress, ds.stress[k] * ARGON.scale("stress"), rtol=1e-15, atol=0)
        assert atoms.info["phase"] in ("solid", "liquid")


def test_same_seed_same_numbers(generated, tmp_path):
    out, _ = generated
    cfg = dict(TINY, protocol=dict(TINY["protocol"], n_trajectories=1))
    code, text = run_cli(["generate", "-c", str(_write(tmp_path, cfg)), "-o", str(tmp_path / "again"), "-q"])
    assert code == 0, text
    from mlffbench.io import load_dataset

    a, b = load_dataset(out), load_dataset(tmp_path / "again")
    n = len(b)
    np.testing.assert_array_equal(a.positions[:n], b.positions)


BAD = [
    ({**TINY, "colour": "red"}, "colour: unknown key"),
    ({**TINY, "seed": "abc"}, "seed"),
    ({**TINY, "protocol": {**TINY["protocol"], "nvt": {"temperature": -5, "steps": 200}}},
     "protocol.nvt.temperature"),
    ({**TINY, "system": {"supercell": 3}}, "larger than half the box"),
    ({**TINY, "potential": {"cutoff_sigma": 4.0}}, "larger than half the box"),
]


@pytest.mark.parametrize("cfg,message", BAD, ids=["unknown-key", "wrong-type", "negative-T", "small-box",
                                                   "big-cutoff"])
def test_bad_config_is_one_line_exit_2_nothing_written(tmp_path, cfg, message):
    code, text = run_cli(["generate", "-c", str(_write(tmp_path, cfg)), "-o", str(tmp_path / "o"), "-q"])
    assert code == 2
    assert message in text
    assert "Traceback" not in text
    assert len(text.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    assert not any(p.name.startswith(".o.partial") for p in tmp_path.iterdir())


def test_missing_config_file(tmp_path):
    code, text = run_cli(["generate", "-c", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "o")])
    assert code == 2 and "config file not found" in text and "Traceback" not in text


def test_existing_outdir_refused_without_overwrite(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("mine")
    code, text = run_cli(["generate", "-c", str(_write(tmp_path, TINY)), "-o", str(tmp_path / "o"), "-q"])
    assert code == 2 and "--overwrite" in text
    assert (tmp_path / "o" / "keep.txt").read_text() == "mine"


def test_version_and_help():
    code, text = run_cli(["--version"])
    assert code == 0 and "mlffbench" in text
    code, text = run_cli(["generate", "--help"])
    assert code == 0 and "--config" in text


def test_sigterm_removes_the_partial_outdir_and_exits_143(tmp_path):
    """A real SIGTERM (what `kill` and job schedulers send) while `generate` writes: the command
    exits 143 with one line, and neither OUTDIR nor its `.partial-PID` sibling is left."""
    import signal
    import subprocess
    import sys
    import time

    cfg = _write(tmp_path, {**TINY, "protocol": {**TINY["protocol"], "n_trajectories": 50}})
    out = tmp_path / "out"
    log = open(tmp_path / "log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "mlffbench", "generate", "-c", str(cfg), "-o", str(out), "-q"],
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 300
    while (not any(p.name.startswith(".out.partial") for p in tmp_path.iterdir())
           and proc.poll() is None and time.monotonic() < deadline):
        time.sleep(0.05)
    time.sleep(1.0)  # inside the workflow, not in the directory's creation
    os.kill(proc.pid, signal.SIGTERM)
    code = proc.wait(timeout=120)
    log.close()
    assert code == 143, (tmp_path / "log").read_text()[-2000:]
    assert not out.exists()
    assert not any(p.name.startswith(".out.partial") for p in tmp_path.iterdir())
