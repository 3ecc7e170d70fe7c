"""Benchmark: integrity checks: `mlffbench check-model`."""

from __future__ import annotations

from mlffbench.io import value
from mlffbench.benchmarks import (Metric, BenchContext, Benchmark, WorkflowSettings,
                                  register)
from mlffbench.benchmarks._workflow import available, sub_config

# ----------------------------------------------------------------------------------------------
# integrity: `mlffbench check-model`
# ----------------------------------------------------------------------------------------------
def run_integrity(potential, ctx: BenchContext) -> dict:
    from mlffbench.workflows.check_model import CheckModelConfig, plot_dimer, run_checks

    cfg = sub_config(CheckModelConfig, ctx, potential=potential)
    res = run_checks(potential, cfg)
    try:
        plot_dimer(res, ctx.workdir / "dimer.png", ctx.units)
    except Exception:  # the numbers matter, the picture is a bonus
        pass
    checks = {c["name"]: c for c in res["checks"]}
    failed = [n for n, c in checks.items() if c.get("passed") is False]
    return {"checks_passed": value(res["n_passed"], "count"), "checks_applicable": value(res["n_checks"], "count"),
            "failed_checks": failed, "checks": checks, "dtype": res["dtype"]}


def compare_integrity(model: dict, ref: dict) -> dict:
    n = max(model["checks_applicable"]["value"], 1)
    frac = 1.0 - model["checks_passed"]["value"] / n
    return {"fraction_failed": value(frac, "1", failed=model["failed_checks"])}


register(Benchmark("integrity", "integrity checks (check-model)", run_integrity, compare_integrity, WorkflowSettings,
                   available=available("mlffbench.workflows.check_model", "run_checks"),
                   description="F = -grad E, translation/rotation/permutation invariance, smoothness at the "
                               "cutoff, extensivity; each check pass/fail with its number.",
                   metrics={"fraction_failed": Metric("1", 0.01, 0.5,
                                      'fraction of check-model checks failed: every check is a law of physics, so any failure costs; half failed is no force field')}, order=10))
