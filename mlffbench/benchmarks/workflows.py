"""Benchmarks that call other commands' workflows (check-model, md, pdos, neb, vacancy).

Each adapter loads that command's own config (path + overrides from the run config), calls its
workflow function on one potential, and keeps the numbers the scorecard needs plus the workflow's
full result. Nothing here re-implements their physics. When a workflow is absent from this
version the benchmark is 'not run' with reason 'not available in this version'.
"""

from __future__ import annotations

import importlib

from mlffbench.benchmarks import (NOT_AVAILABLE, BenchContext, BenchmarkNotRun, Benchmark, WorkflowSettings,
                                  register)


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


def _not_wired(ctx: BenchContext):
    raise BenchmarkNotRun(NOT_AVAILABLE)


def _compare_none(model: dict, ref: dict) -> dict:
    return {}


# Placeholders, replaced below as each workflow's adapter is written.
for _name, _title, _module, _fn, _energy in (
    ("integrity", "integrity checks (check-model)", "mlffbench.workflows.check_model", "run_check_model", False),
    ("md_stability", "MD stability", "mlffbench.workflows.md_run", "run_md_workflow", False),
    ("pdos_0k", "phonon DOS at 0 K", "mlffbench.workflows.pdos", "run_pdos", False),
    ("pdos_finite_t", "vibrational DOS at finite temperature", "mlffbench.workflows.pdos", "run_pdos", False),
    ("migration_barrier", "vacancy migration barrier (string method)", "mlffbench.workflows.neb", "run_neb", False),
    ("htst_rate", "harmonic-TST hop rate", "mlffbench.workflows.neb", "run_neb", True),
    ("hop_rates", "vacancy hop rates from MD", "mlffbench.workflows.vacancy", "run_vacancy", False),
):
    register(Benchmark(_name, _title, lambda p, ctx: _not_wired(ctx), _compare_none, WorkflowSettings,
                       needs_energy=_energy, available=available(_module, _fn)))
