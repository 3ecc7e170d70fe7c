"""`mlffbench sweep`: Dask fan-out of `mlffbench run` tasks.

- a LocalCluster with 2 workers runs a 2-task sweep (two models, one task per worker) while one
  worker is SIGKILLed mid-task; the sweep completes, the merged numbers equal the same tasks run
  serially (bit for bit), and a second invocation recomputes nothing;
- bad sweeps (unknown model, unreachable scheduler, conflicting OUTDIR): one line, exit 2, nothing
  written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from mlffbench.benchmarks.sweep import SweepConfig, plan, run_sweep, study_tasks, task_command, task_env
from mlffbench.config import resolve_path
from mlffbench.errors import UserError

SWEEP = {"models": ["lj", "lj/smooth"], "benchmarks": [["lattice_constant"]], "seeds": [0, 1], "retries": 3}
# the killed sweep: one task per worker (2 models x seed 1; a non-default seed, so --seed reaches the task)
KILLED = {**SWEEP, "seeds": [1]}


def _untimed(x):
    """`x` without wall-clock entries ('seconds'), which differ between any two runs."""
    if isinstance(x, dict):
        return {k: _untimed(v) for k, v in x.items() if k != "seconds"}
    return [_untimed(v) for v in x] if isinstance(x, list) else x


def _numbers(results: dict) -> dict:
    """What a run computed: per benchmark its state, raw numbers of both potentials, metrics, score."""
    return {n: _untimed({k: b.get(k) for k in ("state", "reason", "model", "reference", "metrics", "score")})
            for n, b in results["benchmarks"].items()}


def _kill_a_busy_worker(client, stop: threading.Event, killed: list) -> None:
    """SIGKILL the first worker process seen running a task's child process."""
    import psutil

    while not stop.is_set() and not killed:
        try:
            pids = client.run(os.getpid)
        except Exception:
            time.sleep(0.2)
            continue
        for pid in pids.values():
            try:
                if psutil.Process(pid).children():
                    time.sleep(0.3)  # the task has started (its child process exists)
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.2)


def test_sweep_kill_worker_equals_serial_and_resumes(tmp_path):
    from distributed import Client, LocalCluster

    cfg = SweepConfig(**KILLED)
    tasks = plan(cfg)
    # the same tasks, serially, one after another in this process's environment; first, so that
    # the sweep's tasks load their programs from the persistent compile cache (the numbers are the
    # same either way: that is what is checked)
    want = {}
    for t in tasks:
        serial = tmp_path / "serial" / t.label
        cmd = task_command(t, resolve_path(cfg.run), cfg.mode, serial)
        subprocess.run(cmd, env=task_env(), check=True, capture_output=True)
        want[t.label] = json.loads((serial / "results.json").read_text())

    out = tmp_path / "sweep"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as cluster, Client(cluster) as client:
        stop, killed = threading.Event(), []
        killer = threading.Thread(target=_kill_a_busy_worker, args=(client, stop, killed), daemon=True)
        killer.start()
        doc = run_sweep(cfg, out, scheduler=cluster.scheduler_address, progress=False, log=lambda m: None)
        stop.set()
        killer.join(5)
    assert killed, "no worker was killed mid-task"
    assert doc["summary"] == {"computed": 2, "cached": 0, "failed": 0}
    assert sorted(doc["tasks"]) == sorted(t.label for t in tasks) == ["lj-s1", "lj_smooth-s1"]
    for t in tasks:
        got = doc["tasks"][t.label]["results"]
        assert got["model"]["spec"] == t.model
        assert _numbers(got) == _numbers(want[t.label]), t.label  # bit for bit: JSON floats round-trip exactly
    merged = json.loads((out / "results.json").read_text())
    assert merged["tasks"].keys() == doc["tasks"].keys()
    assert (out / "report.md").is_file() and "lj_smooth-s1" in (out / "report.md").read_text()

    # a second invocation recomputes nothing (no cluster is even started)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/benchmarks/*/result.json")}
    assert len(stamps) == 2
    again = run_sweep(cfg, out, scheduler="tcp://127.0.0.1:9", progress=False, log=lambda m: None)
    assert again["summary"] == {"computed": 0, "cached": 2, "failed": 0}
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert {k: _numbers(v["results"]) for k, v in again["tasks"].items()} == \
        {k: _numbers(v["results"]) for k, v in doc["tasks"].items()}


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlffbench", "sweep", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_unreachable_scheduler_cli_one_line_exit_2(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(SWEEP))
    r = _cli(["-c", str(cfg), "-o", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9"], tmp_path)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "cannot reach the Dask scheduler" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, message", [
    ({"models": ["lj", "no/such/model"]}, "no/such/model"),
    ({"benchmarks": [["lattice_constant", "nope"]]}, "nope"),
    ({"models": []}, "models"),
    ({"workers_per_task": 2}, "unknown key"),
    ({"cluster": {"kind": "slurm", "walltime": "soon"}}, "cluster.walltime"),
])
def test_bad_sweep_config_nothing_written(tmp_path, change, message):
    from mlffbench.config import validate

    out = tmp_path / "out"
    with pytest.raises(UserError, match=message) as exc:
        cfg = validate(SweepConfig, {**SWEEP, **change}, "s.yaml")
        run_sweep(cfg, out, progress=False, log=lambda m: None)
    assert "\n" not in str(exc.value)
    assert not out.exists()


def test_conflicting_outdir(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("not a sweep")
    with pytest.raises(UserError, match="not an mlffbench sweep"):
        run_sweep(SweepConfig(**SWEEP), out, progress=False, log=lambda m: None)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_jobqueue_cluster_object_without_a_batch_system():
    """The jobqueue path: the config builds a SLURMCluster whose job script carries the settings
    (no jobs are submitted; sbatch is never called)."""
    from mlffbench.benchmarks.sweep import JobqueueConfig, jobqueue_cluster

    c = JobqueueConfig(kind="slurm", queue="cpu", cores=2, memory="4GB", walltime="00:30:00",
                       job_extra_directives=["--account=abc"])
    cluster = jobqueue_cluster(c)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p cpu", "#SBATCH --account=abc", "#SBATCH -t 00:30:00", "--nthreads 1"):
        assert line in script


def test_study_recipes_as_sweep_tasks_equal_the_serial_study(tmp_path):
    """A study: section: one task per recipe (`mlffbench study --recipe`, on 2 workers at once),
    then the study's table. Per-recipe numbers and the table equal the serial `mlffbench study`
    bit for bit (tiny settings of tests/test_study.py: 2 recipes x 2 members, 4 frames)."""
    from test_study import TINY_GENERATE, TINY_TRAIN

    run_cfg, study_cfg = tmp_path / "run.yaml", tmp_path / "study.yaml"
    run_cfg.write_text(yaml.safe_dump({
        "generate": {"config": "configs/generate-quick.yaml", "overrides": TINY_GENERATE},
        "train": {"config": "configs/train-quick.yaml", "overrides": TINY_TRAIN},
        "benchmarks": {"lattice_constant": {"n_cells": 2}}}))
    study_cfg.write_text(yaml.safe_dump({
        "run": str(run_cfg), "frames": 4, "members": 2, "benchmarks": ["lattice_constant"],
        "recipes": {"paper": {}, "hotter": {"overrides": {"protocol.ramp.stop": 90.0}}}}))
    cfg = SweepConfig(study={"config": str(study_cfg), "recipes": "all"}, retries=1)
    tasks = study_tasks(cfg)
    assert sorted(t.recipe for t in tasks) == ["hotter", "paper"]
    # the serial study first: its second recipe, and then both sweep tasks (same programs, same
    # pinned environment), load what its first recipe compiled from the persistent compile cache
    # instead of two task processes compiling the same programs at once
    serial = tmp_path / "serial"
    subprocess.run([sys.executable, "-m", "mlffbench", "study", "-c", str(study_cfg), "-o", str(serial), "-q"],
                   env=task_env(), check=True, capture_output=True)
    out = tmp_path / "sweep"
    doc = run_sweep(cfg, out, workers=2, progress=False, log=lambda m: None)
    assert doc["summary"] == {"computed": 2, "cached": 0, "failed": 0}, doc["summary"]
    assert doc["study"]["status"] == "computed"

    for t in tasks:
        want = json.loads((serial / "recipes" / t.recipe / "results.json").read_text())
        got = doc["tasks"][t.label]["results"]
        assert got is not None and _numbers(got) == _numbers(want), t.recipe
        assert got["benchmarks"]["lattice_constant"]["state"] == "passed"
    want_table = json.loads((serial / "study.json").read_text())["table"]
    assert json.loads((out / "study" / "study.json").read_text())["table"] == want_table
    assert doc["study"]["study"]["table"] == want_table
    assert set(want_table["lattice_constant"]["tasks"]) == {"paper", "hotter"}
    assert (out / "study" / "study.md").read_text().split("## Time")[0] == \
        (serial / "study.md").read_text().split("## Time")[0]


def test_study_section_bad_recipe_nothing_written(tmp_path):
    study_cfg = tmp_path / "study.yaml"
    study_cfg.write_text(yaml.safe_dump({"recipes": {"paper": {}}}))
    cfg = SweepConfig(study={"config": str(study_cfg), "recipes": ["paper", "nope"]})
    with pytest.raises(UserError, match="nope") as exc:
        run_sweep(cfg, tmp_path / "out", progress=False, log=lambda m: None)
    assert "\n" not in str(exc.value) and not (tmp_path / "out").exists()
