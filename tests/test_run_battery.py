"""`mlffbench run` machinery: states, selection, resume after an interruption, bad input.

These tests swap the battery for tiny fake benchmarks (no simulation), so they check the
bookkeeping exactly and run in seconds; the physics of the real battery is checked against
reference_data in test_reference_regression.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from pydantic import Field

from conftest import run_cli
from mlffbench.benchmarks import (FAILED, NOT_AVAILABLE, NOT_RUN, PASSED, BenchmarkFailed, BenchSettings,
                                  Benchmark)
from mlffbench.errors import UserError
from mlffbench.io import value
from mlffbench.benchmarks import runner as run_wf

CALLS: list[str] = []


class FakeSettings(BenchSettings):
    x: float = Field(1.0, gt=0)


def _fake_run(name):
    def run(potential, ctx):
        CALLS.append(f"{name}:{ctx.role}")
        if name == "fake_interrupt" and not ctx.memo.get("allow"):
            raise KeyboardInterrupt  # what a kill looks like from inside the run
        if name == "fake_fail":
            raise BenchmarkFailed("did not converge (fake)", {"partial": value(1.0, "eV")})
        if name == "fake_crash":
            raise ZeroDivisionError("boom")
        return {"quantity": value(ctx.settings.x * (2.0 if ctx.role == "model" else 1.0), "eV")}
    return run


def _compare(m, r):
    return {"error": value(m["quantity"]["value"] - r["quantity"]["value"], "eV")}


def fake_battery(names=("fake_a", "fake_b", "fake_fail", "fake_crash")) -> dict:
    out = {n: Benchmark(n, n.replace("_", " "), _fake_run(n), _compare, FakeSettings) for n in names}
    out["fake_energy"] = Benchmark("fake_energy", "needs energy", _fake_run("fake_energy"), _compare,
                                   FakeSettings, needs_energy=True)
    out["fake_missing"] = Benchmark("fake_missing", "absent workflow", _fake_run("x"), _compare, FakeSettings,
                                    available=lambda: NOT_AVAILABLE)
    return out


@pytest.fixture
def fake(monkeypatch):
    CALLS.clear()
    bat = fake_battery()
    monkeypatch.setattr(run_wf, "battery", lambda: bat)
    return bat


def cfg(**kw):
    return run_wf.RunConfig(**kw)


def run(outdir, **kw):
    return run_wf.run_battery(cfg(benchmarks=kw.pop("benchmarks", {})), outdir, model_spec=kw.pop("model", "lj"),
                              log=lambda m: None, **kw)


def test_states_are_never_scores(fake, tmp_path):
    doc = run(tmp_path / "out")
    b = doc["benchmarks"]
    # model lj == reference lj: the reference result is reused, not recomputed
    assert b["fake_a"]["state"] == PASSED and b["fake_a"]["metrics"]["error"]["value"] == 0.0
    assert CALLS.count("fake_a:reference") == 1 and "fake_a:model" not in CALLS
    assert b["fake_fail"]["state"] == FAILED and "did not converge" in b["fake_fail"]["reason"]
    assert b["fake_fail"]["score"] is None and b["fake_fail"]["reference"]["partial"]["value"] == 1.0
    assert b["fake_crash"]["state"] == FAILED and "ZeroDivisionError" in b["fake_crash"]["reason"]
    assert b["fake_missing"]["state"] == NOT_RUN and b["fake_missing"]["reason"] == NOT_AVAILABLE
    assert doc["summary"] == {"passed": 3, "failed": 2, "not run": 1, "scored": 0, "score": None}
    stored = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(stored["benchmarks"]) == set(fake)
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    for key in ("config_hash", "versions", "device", "dtype", "seeds", "wall_times_s", "benchmark_keys"):
        assert key in man
    assert (tmp_path / "out" / "scorecard.md").read_text().count("fake_fail") >= 1


def test_force_only_model_gives_not_run_for_energy_benchmarks(fake, tmp_path):
    import jax

    from mlffbench.potentials import lennard_jones
    from mlffbench.potentials.base import Potential

    lj = lennard_jones()
    force_only = Potential("force-only", 2.5, direct_force_fn=lambda R, box, nb: -jax.grad(lj.energy)(R, box, nb))
    base = {"units": run_wf.RunConfig().units.unit_system(), "seed": 0, "mode": "quick", "dataset": None,
            "dataset_path": None, "reference_potential": lj, "progress": False, "run_config": None}
    for name, expect in (("fake_energy", NOT_RUN), ("fake_a", PASSED)):
        tmp = tmp_path / name
        tmp.mkdir()
        res = run_wf.execute(fake[name], FakeSettings(), force_only, lj, False, tmp, base, ({}, {}), {})
        assert res["state"] == expect, res
    assert "force-only" in run_wf.execute(fake["fake_energy"], FakeSettings(), force_only, lj, False, tmp_path,
                                          base, ({}, {}), {})["reason"]


def test_selection_and_bad_names(fake, tmp_path):
    doc = run(tmp_path / "sel", select=["fake_a"])
    assert doc["benchmarks"]["fake_a"]["state"] == PASSED
    assert doc["benchmarks"]["fake_b"]["state"] == NOT_RUN
    assert "deselected" in doc["benchmarks"]["fake_b"]["reason"]
    doc = run(tmp_path / "exc", exclude=["fake_crash"])
    assert doc["benchmarks"]["fake_crash"]["reason"] == "deselected (-e)"
    doc = run(tmp_path / "dis", benchmarks={"fake_b": {"enabled": False}, "fake_a": {"modes": ["paper"]}})
    assert doc["benchmarks"]["fake_b"]["reason"] == "disabled in the config"
    assert doc["benchmarks"]["fake_a"]["reason"] == "not part of --mode quick"
    for kw in ({"select": ["nope"]}, {"exclude": ["nope"]}, {"benchmarks": {"nope": {}}},
               {"benchmarks": {"fake_a": {"x": -1}}}, {"select": ["fake_a"], "exclude": ["fake_b"]}):
        with pytest.raises(UserError):
            run(tmp_path / "bad", **kw)
        assert not (tmp_path / "bad").exists()  # nothing written on bad input


def test_interrupted_run_resumes_without_recomputing(fake, monkeypatch, tmp_path):
    bat = fake_battery(("fake_a", "fake_interrupt", "fake_b"))
    monkeypatch.setattr(run_wf, "battery", lambda: bat)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(out)
    assert (out / "benchmarks" / "fake_a" / "result.json").is_file()
    assert not (out / "benchmarks" / "fake_interrupt" / "result.json").exists()  # only whole results
    assert not (out / "results.json").exists()
    stamp = (out / "benchmarks" / "fake_a" / "result.json").stat().st_mtime_ns
    # the interrupted battery's reference thread ends after the stage it was running (not
    # waited for, so Ctrl-C stops at once); a resume in the same process waits for it first
    for t in threading.enumerate():
        if t.name == run_wf.ReferenceAhead.THREAD_NAME:
            t.join(timeout=60)
            assert not t.is_alive()
    CALLS.clear()
    monkeypatch.setattr(run_wf, "BenchContext", _allowing(run_wf.BenchContext))
    doc = run(out)  # same command again: resumes
    assert "fake_a:reference" not in CALLS  # finished benchmark not recomputed
    assert CALLS == ["fake_interrupt:reference", "fake_b:reference", "fake_energy:reference"]
    assert doc["benchmarks"]["fake_a"]["resumed"] is True
    assert doc["benchmarks"]["fake_interrupt"]["state"] == PASSED
    assert (out / "benchmarks" / "fake_a" / "result.json").stat().st_mtime_ns == stamp
    assert not list((out / "benchmarks").glob(".*partial*"))
    # a changed setting changes the key: that benchmark (only) is recomputed
    CALLS.clear()
    doc = run(out, benchmarks={"fake_b": {"x": 3.0}})
    assert CALLS == ["fake_b:reference"]
    # a deleted result is recomputed; --overwrite starts afresh
    CALLS.clear()
    import shutil

    shutil.rmtree(out / "benchmarks" / "fake_a")
    run(out, benchmarks={"fake_b": {"x": 3.0}})
    assert CALLS == ["fake_a:reference"]
    CALLS.clear()
    run(out, overwrite=True)
    assert len(CALLS) == 4


def _allowing(cls):
    def make(*a, **kw):
        ctx = cls(*a, **kw)
        ctx.memo["allow"] = True
        return ctx
    return make


def test_failed_by_error_is_retried_but_physical_failure_is_kept(fake, tmp_path):
    run(tmp_path / "r")
    CALLS.clear()
    run(tmp_path / "r")
    assert CALLS == ["fake_crash:reference"]  # an error is not a final outcome; did-not-converge is


def test_cli_bad_input_exit_2_and_nothing_written(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: quick\nbenchmarks:\n  lattice_constant:\n    n_cells: 0\n")
    code, out = run_cli(["run", "-c", str(bad), "-o", str(tmp_path / "o"), "--model", "lj"])
    assert code == 2 and "benchmarks.lattice_constant.n_cells" in out
    assert not (tmp_path / "o").exists()
    bad.write_text("mode: quick\nfoo: 1\n")
    code, out = run_cli(["run", "-c", str(bad), "-o", str(tmp_path / "o"), "--model", "lj"])
    assert code == 2 and "foo" in out
    code, out = run_cli(["run", "-c", str(bad), "-o", str(tmp_path / "o"), "--model", "lj", "--mode", "fast"])
    assert code == 2
    code, out = run_cli(["run", "-c", str(Path("configs/run-quick.yaml").resolve()), "-o", str(tmp_path / "o"),
                         "--model", "no-such-model"])
    assert code == 2 and "no-such-model" in out
    assert not (tmp_path / "o").exists()
    (tmp_path / "notrun").mkdir()
    (tmp_path / "notrun" / "x").write_text("x")
    code, out = run_cli(["run", "-o", str(tmp_path / "notrun"), "--model", "lj", "-b", "lattice_constant"])
    assert code == 2 and "not an mlffbench run" in out


def test_shipped_configs_validate():
    from mlffbench.config import load_config

    for mode in ("quick", "paper"):
        c = load_config(run_wf.RunConfig, Path(__file__).parents[1] / "configs" / f"run-{mode}.yaml")
        assert c.mode == mode
        run_wf.bench_settings(c, f"run-{mode}.yaml")


def test_reference_runs_alongside_the_model_in_its_own_thread(monkeypatch, tmp_path):
    """The model side of the first benchmark waits until the reference side of the second has
    started: only a reference computed ahead in another thread lets it go on (one after the
    other, the wait times out and the benchmark fails). `reference_alongside: false` runs every
    stage in the main thread."""

    second_reference_started = threading.Event()
    threads: dict[str, str] = {}

    def run_fn(name):
        def run(potential, ctx):
            threads[f"{name}:{ctx.role}"] = threading.current_thread().name
            if ctx.role == "reference" and name == "fake_b":
                second_reference_started.set()
            if ctx.role == "model" and name == "fake_a" and not second_reference_started.wait(5.0):
                raise BenchmarkFailed("the second reference never started alongside", {})
            return {"quantity": value(2.0 if ctx.role == "model" else 1.0, "eV")}
        return run

    bat = {n: Benchmark(n, n, run_fn(n), _compare, FakeSettings) for n in ("fake_a", "fake_b")}
    monkeypatch.setattr(run_wf, "battery", lambda: bat)
    doc = run(tmp_path / "alongside", model="lj/smooth")
    assert [doc["benchmarks"][n]["state"] for n in bat] == [PASSED, PASSED], doc["benchmarks"]["fake_a"]["reason"]
    assert threads["fake_a:reference"] == threads["fake_b:reference"] == run_wf.ReferenceAhead.THREAD_NAME
    assert threads["fake_a:model"] == threading.main_thread().name
    assert doc["benchmarks"]["fake_b"]["metrics"]["error"]["value"] == 1.0

    second_reference_started.clear()
    threads.clear()
    res = run_wf.run_battery(cfg(reference_alongside=False), tmp_path / "serial", model_spec="lj/smooth",
                             log=lambda m: None)["benchmarks"]
    assert res["fake_a"]["state"] == FAILED and "never started" in res["fake_a"]["reason"]
    assert set(threads.values()) == {threading.main_thread().name}
    assert not list((tmp_path / "serial" / "benchmarks").glob(".*partial*"))
