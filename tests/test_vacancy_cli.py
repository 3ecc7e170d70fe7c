"""`mlffbench neb` / `mlffbench vacancy` CLI: bad input gives one line, exit 2, nothing written;
a tiny vacancy run writes its outputs (hop counting itself is tested in test_hops.py)."""

import subprocess
import sys

import pytest

import mlffbench  # noqa: F401
from mlffbench.io import read_json


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "mlffbench", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("command,text,key", [
    ("neb", "string: {n_images: 2}\n", "string.n_images"),
    ("vacancy", "md: {segment_steps: 30, sample_every: 20}\nrun: {temperatures: [80.0]}\n", "segment_steps"),
])
def test_bad_config_one_line_exit_2(tmp_path, command, text, key):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    out = tmp_path / "out"
    r = _cli(command, "-c", str(cfg), "-o", str(out))
    assert r.returncode == 2, r.stderr
    assert key in r.stderr and len(r.stderr.strip().splitlines()) <= 2
    assert not out.exists()


def test_unknown_model_exit_2(tmp_path):
    r = _cli("neb", "-c", "configs/neb-quick.yaml", "-o", str(tmp_path / "o"), "--model", "nope")
    assert r.returncode == 2 and "--model" in r.stderr


def test_tiny_vacancy_run_writes_outputs(tmp_path):
    cfg = tmp_path / "v.yaml"
    cfg.write_text("units: {system: lj}\nsystem: {supercell: 3, lattice_constant: 1.5496034241}\n"
                   "md: {timestep: 0.005, sample_every: 20, segment_steps: 200}\n"
                   "run: {temperatures: [0.9, 1.0], n_replicas: 2, steps: 400, equilibration_steps: 100}\n"
                   "compare: {htst: false}\n")
    out = tmp_path / "vac"
    r = _cli("vacancy", "-c", str(cfg), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    doc = read_json(out / "result.json")
    assert [row["temperature"]["reduced_kT"] for row in doc["rates"]] == [0.9, 1.0]
    for row in doc["rates"]:
        assert row["hops"] >= 0 and row["simulated_time"]["reduced_tau"] > 0
        lo, hi = row["total_hop_rate"]["ci95"]
        assert lo <= row["total_hop_rate"]["value"] <= hi
    assert (out / "arrhenius.png").is_file() and (out / "manifest.json").is_file()
    assert not (tmp_path / ".vac.vacancy-checkpoint.npz").exists()  # removed after success
