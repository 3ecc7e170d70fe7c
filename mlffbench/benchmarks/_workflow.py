"""Shared plumbing of benchmarks that call other commands' workflows (check-model, md, pdos, neb, vacancy).

Each adapter loads that command's own config (path + overrides from the run config), calls its
workflow function on one potential, and keeps the numbers the scorecard needs plus the workflow's
full result. Nothing here re-implements their physics. When a workflow is absent from this
version the benchmark is 'not run' with reason 'not available in this version'.
"""

from __future__ import annotations

import importlib

from mlffbench.benchmarks import NOT_AVAILABLE, BenchContext, BenchmarkNotRun, WorkflowSettings


def workflow_function(module: str, name: str):
    """`module.name` or BenchmarkNotRun('not available in this version')."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise BenchmarkNotRun(NOT_AVAILABLE) from exc
    fn = getattr(mod, name, None)
    if fn is None:
        raise BenchmarkNotRun(NOT_AVAILABLE)
    return fn


def available(module: str, name: str):
    def check():
        try:
            workflow_function(module, name)
        except BenchmarkNotRun as exc:
            return exc.reason
        return None
    return check


def sub_config(model: type, ctx: BenchContext, extra: dict | None = None, potential=None):
    """The workflow's config from the benchmark settings (file + overrides, + float32_overrides
    for a float32 potential), with the run's units (and `extra`) imposed so that every workflow
    reports in the same unit system."""
    from mlffbench.config import load_stage_config

    s: WorkflowSettings = ctx.settings
    forced = dict(s.float32_overrides) if potential is not None and potential.is_float32 else {}
    # impose only keys the workflow's config has (its schema may evolve independently)
    forced.update({k: v for k, v in (extra or {}).items() if k.split(".")[0] in model.model_fields})
    if "units" in model.model_fields and ctx.run_config is not None:
        forced["units"] = ctx.run_config.units.model_dump()
    return load_stage_config(model, s.config, s.overrides, f"benchmarks.{ctx.benchmark}", forced)


def memo_call(ctx: BenchContext, key, fn):
    """fn() once per potential per run (two benchmarks reading one workflow run share it)."""
    if key not in ctx.memo:
        ctx.memo[key] = fn()
    return ctx.memo[key]


def _plot(name: str, fn):
    """Wrap a plot function: one figure in the house style, saved as <name>.png."""
    def plot(model: dict, ref: dict, outdir, units) -> list:
        from mlffbench.plotting import pyplot, save

        fig, ax = pyplot().subplots(figsize=(5, 3.4))
        fn(ax, model, ref)
        save(fig, outdir / f"{name}.png")
        return [f"{name}.png"]
    return plot


def reference_a0_override(ctx: BenchContext) -> dict:
    """{'system.lattice_constant': the reference's 0 K a0 in the run's length unit} when the settings
    ask for the model's second evaluation at LJ's lattice constant; {} otherwise."""
    s = ctx.settings
    if not getattr(s, "at_reference_a0", False) or ctx.role != "model" or ctx.reference_potential is None:
        return {}
    from mlffbench.dynamics.lattice import lattice_constant

    a = lattice_constant(ctx.reference_potential)
    metal = ctx.run_config is None or ctx.run_config.units.system == "metal"
    return {"system.lattice_constant": a * ctx.units.sigma_angstrom if metal else a}
