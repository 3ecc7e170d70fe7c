"""The battery's `hop_rates` benchmark survives a real kill: `mlffbench run -b hop_rates` in a
subprocess gets SIGKILL (no exception handler, no finally block runs) after its first vacancy-MD
checkpoint; the same command on the same OUTDIR resumes from that checkpoint (it runs only the MD
segments still missing, no equilibration) and stores exactly the hops, hop times, simulated time
and rates of the run left alone, and no partial or scratch directory is left behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import A0_LJ, run_cli, sigkill_when_file_appears
import mlffbench.workflows.vacancy as vacancy_workflow

# LJ units; 107-atom cell, one temperature, 2 replicas x 3 checkpointed segments of 500 steps:
# hot enough for hops in the first segment and in the later ones (both sides of the kill), and
# the crystal stays solid (the detector would drop a melting replica, which `messages` would show)
N_SEG = 3
RUN_CONFIG = {
    "units": {"system": "lj"}, "seed": 0,
    "benchmarks": {"hop_rates": {"overrides": {
        "system.supercell": 3, "system.lattice_constant": A0_LJ,
        "md.timestep": 0.005, "md.sample_every": 10, "md.segment_steps": 500,
        "run.temperatures": [1.3], "run.n_replicas": 2, "run.steps": 500 * N_SEG,
        "run.equilibration_steps": 100, "run.persist_samples": 3, "compare.htst": False}}},
}


def _run_args(cfg: Path, out: Path) -> list[str]:
    return ["run", "-c", str(cfg), "-o", str(out), "-m", "lj", "-b", "hop_rates", "-q"]


def _hops(out: Path) -> tuple[dict, list]:
    """(the benchmark's stored raw numbers, hop times per temperature per replica)."""
    res = json.loads((out / "results.json").read_text())["benchmarks"]["hop_rates"]
    vac = json.loads((out / "benchmarks" / "hop_rates" / "reference" / "result.json").read_text())
    return res, [[rep["hop_times"] for rep in r["replicas"]] for r in vac["rates"]]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("hop_rates")
    cfg = root / "run.json"
    cfg.write_text(json.dumps(RUN_CONFIG))  # JSON is YAML
    code, log = run_cli(_run_args(cfg, root / "whole"))
    assert code == 0, log
    return root, cfg, _hops(root / "whole")


def test_uninterrupted_run_has_hops_on_both_sides_of_the_first_checkpoint(setup):
    _, _, (res, hop_times) = setup
    assert res["state"] == "passed", res.get("reason")
    assert not res["reference"]["messages"], res["reference"]["messages"]
    t_seg = 500 * 0.005  # tau per segment
    times = [t for rep in hop_times[0] for t in rep]
    assert any(t < t_seg for t in times) and any(t > t_seg for t in times), times
    assert res["reference"]["total_hops"] == len(times)


def test_sigkill_mid_hop_rates_resumes_to_identical_hops(setup, monkeypatch):
    root, cfg, (whole, whole_times) = setup
    out = root / "killed"
    bench = out / "benchmarks"
    ckpt = bench / ".hop_rates.scratch" / "reference" / "checkpoint.npz"
    sigkill_when_file_appears(_run_args(cfg, out), ckpt, root / "stderr.txt")
    # killed mid-benchmark: a checkpoint inside the temperature, nothing committed
    state = json.loads(str(np.load(ckpt)["_state"]))
    assert state["t_index"] == 0 and 1 <= state["segment"] < N_SEG and state["equilibrated"], state
    assert (bench / ".hop_rates.partial").is_dir()
    assert not (bench / "hop_rates").exists() and not (out / "results.json").exists()

    real_run_md, calls = vacancy_workflow.run_md, []

    def counting_run_md(*args, **kwargs):
        calls.append(args[4])  # steps (potential, positions, box, integrator, steps)
        return real_run_md(*args, **kwargs)

    monkeypatch.setattr(vacancy_workflow, "run_md", counting_run_md)
    code, text = run_cli(_run_args(cfg, out))
    assert code == 0, text
    assert "resuming the run" in text
    # resumed from the checkpoint: only the missing segments, no equilibration, no recount
    assert calls == [500] * (N_SEG - state["segment"]), calls

    res, times = _hops(out)
    assert times == whole_times
    assert res["reference"] == whole["reference"]  # hops, simulated time, rates and intervals, bit for bit
    assert res["metrics"] == whole["metrics"] and res["score"] == whole["score"]
    # the killed run's partial directory was reused and committed, its scratch (checkpoint) removed
    assert sorted(p.name for p in bench.iterdir()) == ["hop_rates"]
