"""`mlffbench study --extra`: costly benchmarks (hop rates, barrier) on some tasks' committees only,
from the study's cache, and the hop-rate summary (model vs LJ rates, ratio with exact intervals).

What is checked: the rate-ratio interval equals scipy's Clopper-Pearson interval of the binomial
split (an independent implementation) and covers the true ratio at least 95 % of the time in a
seeded simulation; the summary reproduces hand-computed rates, pooled ratio and member spread; the
extra benchmarks run only on the extra tasks, only with --extra, without regenerating or
retraining; bad extra names are one-line errors.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import yaml
from scipy import stats

from mlffbench.benchmarks import REGISTRY, battery
from mlffbench.benchmarks.study import (StudyConfig, hop_rate_markdown, hop_rate_summary, rate_ratio_interval,
                                        run_study, task_benchmarks)
from mlffbench.errors import UserError
from test_study import TINY_GENERATE, TINY_TRAIN  # one tiny study setting for both files (tests/ is on the path)


def test_rate_ratio_interval_is_clopper_pearson_of_the_split():
    for n1, t1, n2, t2 in [(10, 100.0, 10, 100.0), (3, 40.0, 17, 250.0), (25, 80.0, 4, 80.0)]:
        ratio, lo, hi = rate_ratio_interval(n1, t1, n2, t2)
        assert ratio == pytest.approx((n1 / t1) / (n2 / t2))
        ci = stats.binomtest(n1, n1 + n2).proportion_ci(0.95, method="exact")
        assert lo == pytest.approx(ci.low / (1 - ci.low) * t2 / t1, rel=1e-9)
        assert hi == pytest.approx(ci.high / (1 - ci.high) * t2 / t1, rel=1e-9)
        assert lo < ratio < hi
    assert rate_ratio_interval(0, 10.0, 5, 10.0)[:2] == (0.0, 0.0)
    assert math.isinf(rate_ratio_interval(5, 10.0, 0, 10.0)[2])
    assert math.isnan(rate_ratio_interval(0, 10.0, 0, 10.0)[0])


def test_rate_ratio_interval_covers_the_true_ratio():
    rng = np.random.default_rng(13)
    true_ratio, t1, t2, base = 2.0, 50.0, 80.0, 0.1  # expected counts 10 and 8
    n1 = rng.poisson(true_ratio * base * t1, 400)
    n2 = rng.poisson(base * t2, 400)
    covered = [lo <= true_ratio <= hi for a, b in zip(n1, n2) for _, lo, hi in [rate_ratio_interval(a, t1, b, t2)]]
    assert np.mean(covered) >= 0.95  # exact intervals are conservative


def _rates(hops: int, time_ps: float) -> dict:
    return {"105K": {"temperature": {"value": 105.0, "unit": "K"}, "hops": hops,
                     "simulated_time": {"value": time_ps, "unit": "ps"},
                     "total_hop_rate": {"value": hops / time_ps, "unit": "1/ps"}}}


def test_hop_rate_summary_by_hand():
    members = [{"rates": _rates(4, 100.0)}, {"rates": _rates(16, 100.0)}, {"rates": _rates(0, 100.0)}]
    result = {"state": "passed", "reference": {"rates": _rates(8, 200.0)},
              "model": {**members[0], "members": members}}
    row = hop_rate_summary(result)["105K"]
    assert row["lj"]["rate"] == pytest.approx(0.04) and row["lj"]["hops"] == 8
    assert [m["ratio"] for m in row["members"]] == pytest.approx([1.0, 4.0, 0.0])
    c = row["committee"]
    assert c["hops"] == 20 and c["time"] == pytest.approx(300.0)
    assert c["ratio"] == pytest.approx((20 / 300) / 0.04)
    assert c["n_members_with_hops"] == 2  # the member without hops has no log ratio
    assert c["log10_ratio_mean"] == pytest.approx(np.mean([0.0, math.log10(4.0)]))
    assert c["log10_ratio_std"] == pytest.approx(np.std([0.0, math.log10(4.0)], ddof=1))
    assert c["ratio_low"] < c["ratio"] < c["ratio_high"]
    md = hop_rate_markdown({"paper": {"105K": row}})
    assert "member 2" in md and "committee (pooled)" in md
    assert hop_rate_summary({"state": "failed"}) is None


def _tiny_cfg(root, two: bool = True, **extra) -> StudyConfig:
    run_cfg = root / "run.yaml"
    run_cfg.write_text(yaml.safe_dump({
        "generate": {"config": "configs/generate-quick.yaml", "overrides": TINY_GENERATE},
        "train": {"config": "configs/train-quick.yaml", "overrides": TINY_TRAIN},
        "benchmarks": {"lattice_constant": {"n_cells": 2}}}))
    recipes = {"paper": {}, "hotter": {"overrides": {"protocol.ramp.stop": 90.0}}} if two else {"paper": {}}
    return StudyConfig(run=str(run_cfg), frames=4, members=2, benchmarks=["lattice_constant"],
                       recipes=recipes, **extra)


def test_task_benchmarks_and_bad_extra_names(tmp_path):
    cfg = _tiny_cfg(tmp_path, extra={"benchmarks": ["hop_rates", "lattice_constant"]})
    assert cfg.extra_tasks() == ["paper"]  # default: the baseline
    assert task_benchmarks(cfg, "paper", extra=False) == ["lattice_constant"]
    assert task_benchmarks(cfg, "paper", extra=True) == ["lattice_constant", "hop_rates"]
    assert task_benchmarks(cfg, "hotter", extra=True) == ["lattice_constant"]
    with pytest.raises(UserError, match="extra.tasks: 'nope' is not a task"):
        run_study(_tiny_cfg(tmp_path, extra={"tasks": ["nope"], "benchmarks": ["hop_rates"]}), tmp_path / "o1",
                  log=lambda m: None)
    with pytest.raises(UserError, match="unknown benchmark 'hops'"):
        run_study(_tiny_cfg(tmp_path, extra={"benchmarks": ["hops"]}), tmp_path / "o2", log=lambda m: None)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_extra_runs_on_the_cached_committee_only(tmp_path, monkeypatch):
    """A finished study, then --extra: hop_rates runs on paper's two members and LJ (a stub that
    counts hops from the potential, so no MD), nothing is regenerated or retrained, and study.md
    gets the hop-rate table."""
    calls = []

    def fake_hops(potential, ctx):
        calls.append(ctx.role)
        hops = 8 if ctx.role == "reference" else 4 + 8 * len([c for c in calls if c == "model"])
        return {"rates": _rates(hops, 100.0), "messages": [], "n_atoms": 31, "total_hops": hops}

    bench = battery()["hop_rates"]
    monkeypatch.setitem(REGISTRY, "hop_rates", dataclasses.replace(bench, run=fake_hops))
    cfg = _tiny_cfg(tmp_path, two=False, extra={"benchmarks": ["hop_rates"]})  # task selection: test above
    out = tmp_path / "out"
    run_study(cfg, out, log=lambda m: None)
    assert calls == [] and "Vacancy hop rates" not in (out / "study.md").read_text()
    params = out / "recipes" / "paper" / "train" / "model" / "params.msgpack"
    data = out / "recipes" / "paper" / "data" / "manifest.json"
    stamps = params.stat().st_mtime_ns, data.stat().st_mtime_ns

    doc = run_study(cfg, out, log=lambda m: None, extra=True)
    # LJ once and each of paper's 2 members once; the reference runs in its own thread
    # (reference_alongside), so the order of LJ among the members is not fixed.
    assert sorted(calls) == ["model", "model", "reference"]
    assert (params.stat().st_mtime_ns, data.stat().st_mtime_ns) == stamps
    row = doc["hop_rates"]["paper"]["105K"]
    assert [m["hops"] for m in row["members"]] == [12, 20] and row["lj"]["hops"] == 8
    assert doc["table"]["hop_rates"]["tasks"]["paper"]["n"] == 2  # a row with the committee's spread
    assert "Vacancy hop rates" in (out / "study.md").read_text()
    stored = json.loads((out / "study.json").read_text())
    assert stored["hop_rates"]["paper"]["105K"]["committee"]["hops"] == 32
    run_study(cfg, out, log=lambda m: None, extra=True)  # again: the stored hop_rates result is reused
    assert sorted(calls) == ["model", "model", "reference"]
