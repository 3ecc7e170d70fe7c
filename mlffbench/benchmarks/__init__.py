"""The benchmark battery: named benchmarks, each run on a model and on LJ through the same code.

A benchmark is a `Benchmark`:

* ``run(potential, ctx) -> raw`` computes raw numbers for ONE potential (a dict of
  ``{"value", "unit", ...}`` entries and free-form detail), writing artifacts under
  ``ctx.workdir``. It never asks whether the potential is LJ or a learned model.
* ``compare(model_raw, reference_raw) -> metrics`` turns the two into model-vs-LJ metrics
  (``{name: {"value", "unit"}}``); `mlffbench.benchmarks.scoring` maps them to 0-1 scores with the
  thresholds in ``configs/metrics.yaml``.

Outcomes are states, never numbers: ``passed`` (ran on both potentials, metrics computed),
``failed`` (with the reason: did not converge, melted, blew up, error), ``not run`` (deselected,
not available in this version, or impossible for this model, e.g. an energy of a force-only model).
A bad score is a *passed* benchmark with a low score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlffbench.config import StrictModel

PASSED, FAILED, NOT_RUN = "passed", "failed", "not run"
STATES = (PASSED, FAILED, NOT_RUN)
NOT_AVAILABLE = "not available in this version"


class BenchmarkFailed(Exception):
    """Raised by a benchmark's `run` when the simulation finished but the physics failed
    (no convergence, melting, blow-up). `raw` keeps whatever numbers were obtained."""

    def __init__(self, reason: str, raw: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.raw = raw or {}


class BenchmarkNotRun(Exception):
    """Raised when a benchmark cannot run for this potential or this version (state 'not run')."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BenchSettings(StrictModel):
    """Settings every benchmark accepts in the run config's ``benchmarks.<name>`` section.

    enabled: run it by default (``-b`` selects explicitly anyway).
    modes: the run modes it belongs to by default ('quick', 'paper').
    """

    enabled: bool = True
    modes: list[str] = ["quick", "paper"]


class WorkflowSettings(BenchSettings):
    """Settings of a benchmark that calls another command's workflow.

    config: that command's YAML config (e.g. configs/pdos-quick.yaml); None = its defaults.
    overrides: dotted-key overrides applied on top of it (e.g. {"supercell": 3}).
    float32_overrides: further overrides applied only for a potential computing in float32 (e.g. a
        looser relaxation threshold: float32 forces cannot reach 1e-8 epsilon/sigma).
    """

    config: str | None = None
    overrides: dict[str, Any] = {}
    float32_overrides: dict[str, Any] = {}


@dataclass
class BenchContext:
    """What a benchmark's `run` receives besides the potential.

    settings: the benchmark's validated settings (a BenchSettings subclass).
    units: the unit system (results are reported in metal units with reduced values beside).
    workdir: a directory for this potential's artifacts (created).
    role: 'model' or 'reference'.
    dataset / dataset_path: the LJ dataset (full loop or the config's `dataset`), or None.
    memo: a dict shared by all benchmarks of one run for one potential (e.g. the lattice constant
          is computed once and reused by cohesive energy and vacancy formation).
    run_config: the whole validated RunConfig (units, seed, reference potential settings).
    scratch: a directory that survives an interrupted run (for a workflow's own checkpoints);
        removed once the benchmark's result is committed.
    """

    settings: Any
    units: Any
    workdir: Path
    role: str
    seed: int = 0
    mode: str = "quick"
    dataset: Any = None
    dataset_path: Path | None = None
    reference_potential: Any = None
    memo: dict = field(default_factory=dict)
    progress: bool = False
    run_config: Any = None
    benchmark: str = ""
    scratch: Path | None = None


RunFn = Callable[[Any, BenchContext], dict]
CompareFn = Callable[[dict, dict], dict]
PlotFn = Callable[[dict, dict, Path, Any], list]


@dataclass(frozen=True)
class Benchmark:
    """One named benchmark of the battery.

    needs_energy: the model must have an energy (else 'not run' for force-only models).
    needs_dataset: the benchmark evaluates on the LJ dataset (its hash enters the result key).
    available: () -> None if the code it calls is present, else a reason ('not available ...').
    plot: optional (model_raw, reference_raw, outdir, units) -> list of written PNG names.
    reference_values: {dotted path into the raw result ('*' matches any key): tolerance dict
        {'abs': x, 'rel': y}} - the LJ values scripts/make_reference.py stores in reference_data/
        and `mlffbench check` compares (tolerances: float64 round-off across platforms, not physics).
    """

    name: str
    title: str
    run: RunFn
    compare: CompareFn
    settings_model: type = BenchSettings
    needs_energy: bool = False
    needs_dataset: bool = False
    available: Callable[[], str | None] = lambda: None
    plot: PlotFn | None = None
    version: int = 1
    reference_values: dict = field(default_factory=dict)
    description: str = ""


REGISTRY: dict[str, Benchmark] = {}


def register(bench: Benchmark) -> Benchmark:
    """Add a benchmark to the battery (order of registration = order of the battery)."""
    REGISTRY[bench.name] = bench
    return bench


def module_available(*modules: str) -> Callable[[], str | None]:
    """An `available` check: every module importable, else 'not available in this version'."""

    def check() -> str | None:
        import importlib

        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError:
                return NOT_AVAILABLE
        return None

    return check


#: The battery's order: cheap sanity first, then 0 K statics, phonons, barriers, dynamics.
ORDER = ("integrity", "test_errors", "md_stability", "lattice_constant", "cohesive_energy",
         "vacancy_formation", "pdos_0k", "pdos_finite_t", "migration_barrier", "htst_rate", "hop_rates")


def battery() -> dict[str, Benchmark]:
    """All registered benchmarks in battery order (imports the modules that register them)."""
    from mlffbench.benchmarks import (crystal, dataset_errors, hop_rates, integrity, md_stability,  # noqa: F401
                                      neb, pdos)

    rank = {n: k for k, n in enumerate(ORDER)}
    return {n: REGISTRY[n] for n in sorted(REGISTRY, key=lambda n: (rank.get(n, len(ORDER)), n))}
