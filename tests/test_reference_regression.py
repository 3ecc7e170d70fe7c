"""CI regression: the LJ quick battery reproduces reference_data/lj_argon.json within tolerance,
and `mlffbench check` / `mlffbench report` work on that fresh run.

The reference values were produced by scripts/make_reference.py and confirmed by independent
codes (numpy lattice sums, ASE's LennardJones + ASE's optimiser, LAMMPS) recorded in the file's
provenance; this test never regenerates them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

from mlffbench.benchmarks.check import DRIFT, SKIPPED, WITHIN, check_run
from mlffbench.benchmarks.runner import RunConfig, run_battery
from mlffbench.config import load_config

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "reference_data" / "lj_argon.json"


KILLED: dict = {}


@pytest.fixture(scope="session")
def lj_run(tmp_path_factory) -> Path:
    """A fresh quick LJ run of every benchmark that has reference values (small cells).

    It is started as a real `mlffbench run` process, killed (SIGKILL) as soon as its first
    benchmark result is on disk, and then completed by running the same command again: the
    resume test below checks that the finished results were kept, not recomputed.
    """
    ref = json.loads(REFERENCE.read_text())
    names = sorted({k.split(".")[0] for k, v in ref["values"].items() if "quick" in v["modes"]})
    config = ROOT / "configs" / "run-quick.yaml"
    out = tmp_path_factory.mktemp("lj") / "run"
    cmd = [sys.executable, "-m", "mlffbench", "run", "-c", str(config), "-o", str(out), "--model", "lj", "-q"]
    proc = subprocess.Popen(cmd + [a for n in names for a in ("-b", n)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if list((out / "benchmarks").glob("*/result.json")):
            break
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    KILLED["done"] = {p.parent.name: p.stat().st_mtime_ns for p in (out / "benchmarks").glob("*/result.json")}
    KILLED["finished_anyway"] = (out / "results.json").is_file()
    cfg = load_config(RunConfig, config)
    run_battery(cfg, out, model_spec="lj", select=names, log=lambda m: None)
    return out


def test_killed_run_resumes_without_recomputing(lj_run):
    assert KILLED["done"], "the killed run should have finished at least one benchmark"
    results = json.loads((lj_run / "results.json").read_text())["benchmarks"]
    for name, mtime in KILLED["done"].items():
        assert results[name]["resumed"] is True, name
        assert (lj_run / "benchmarks" / name / "result.json").stat().st_mtime_ns == mtime
    if not KILLED["finished_anyway"]:
        assert any(not r.get("resumed") for r in results.values() if r["state"] != "not run")


def test_lj_quick_battery_reproduces_reference_data(lj_run):
    rows, code = check_run(lj_run, REFERENCE)
    drift = [(r.key, r.note) for r in rows if r.status == DRIFT]
    assert code == 0 and not drift, drift
    # every quick value compared: a workflow that stops importing turns "not available" and its
    # values "skipped", which must fail here
    ref = json.loads(REFERENCE.read_text())["values"]
    quick = {k for k, v in ref.items() if "quick" in v["modes"]}
    skipped = [(r.key, r.note) for r in rows if r.key in quick and r.status != WITHIN]
    assert not skipped and {r.key for r in rows if r.status == WITHIN} == quick, skipped


def test_every_battery_benchmark_is_available():
    from mlffbench.benchmarks import battery

    unavailable = {name: b.available() for name, b in battery().items() if b.available() is not None}
    assert not unavailable, unavailable


def test_check_passes_then_fails_naming_a_perturbed_value(lj_run, tmp_path):
    code, out = run_cli(["check", str(lj_run), "--reference", str(REFERENCE)])
    assert code == 0, out
    ref = json.loads(REFERENCE.read_text())
    key = "vacancy_formation.cells.n3.formation_energy"
    entry = ref["values"][key]
    allowed = entry["tolerance"].get("abs", 0) + entry["tolerance"].get("rel", 0) * abs(entry["value"])
    entry["value"] += 3 * allowed
    bad = tmp_path / "perturbed.json"
    bad.write_text(json.dumps(ref))
    code, out = run_cli(["check", str(lj_run), "--reference", str(bad)])
    assert code == 1 and key in out.replace("\n", "")
    # within tolerance: still passes
    entry["value"] -= 2.5 * allowed
    bad.write_text(json.dumps(ref))
    assert run_cli(["check", str(lj_run), "--reference", str(bad)])[0] == 0


def test_check_bad_input_exit_2(lj_run, tmp_path):
    assert run_cli(["check", str(tmp_path / "nope"), "--reference", str(REFERENCE)])[0] == 2
    assert run_cli(["check", str(lj_run), "--reference", str(tmp_path / "nope.json")])[0] == 2
    broken = tmp_path / "broken.json"
    broken.write_text('{"values": {"lattice_constant.lattice_constant": {"value": 1.0, "unit": "Å"}}}')
    code, out = run_cli(["check", str(lj_run), "--reference", str(broken)])
    assert code == 2 and "tolerance" in out
    broken.write_text("{not json")
    assert run_cli(["check", str(lj_run), "--reference", str(broken)])[0] == 2


def test_benchmark_not_run_is_skipped_not_drift(lj_run, tmp_path):
    ref = json.loads(REFERENCE.read_text())
    ref["values"]["hop_rates.rate"] = {"value": 1.0, "unit": "1/ps", "tolerance": {"rel": 0.5}, "modes": ["quick"]}
    p = tmp_path / "extra.json"
    p.write_text(json.dumps(ref))
    rows, code = check_run(lj_run, p)
    assert code == 0 and next(r for r in rows if r.key == "hop_rates.rate").status == SKIPPED


def test_report_md_and_html_with_plots_and_comparison(lj_run, tmp_path):
    code, out = run_cli(["report", str(lj_run), "--format", "md", "-o", str(tmp_path / "r.md")])
    assert code == 0, out
    md = (tmp_path / "r.md").read_text()
    assert "| lattice_constant" in md and "vacancy_formation.png" in md and "config_hash" in md
    img = next(line for line in md.splitlines() if line.startswith("![vacancy_formation]"))
    assert (tmp_path / img.split("(")[1].rstrip(")")).is_file()  # link relative to the report
    other = tmp_path / "other"
    shutil.copytree(lj_run, other)
    code, out = run_cli(["report", str(lj_run), str(other), "--format", "html", "-o", str(tmp_path / "c.html")])
    assert code == 0, out
    html = (tmp_path / "c.html").read_text()
    assert "data:image/png;base64," in html and "mlffbench comparison" in html
    assert html.count("run (lj)") >= 1 and html.count("other (lj)") >= 1
    assert run_cli(["report", str(tmp_path / "nope")])[0] == 2
    assert run_cli(["report", str(lj_run), "--format", "pdf"])[0] == 2
