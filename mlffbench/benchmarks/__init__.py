"""The benchmark battery: named benchmarks, each run on a model and on LJ through the same code.

A benchmark is a `Benchmark`:

* ``run(potential, ctx) -> raw`` computes raw numbers for ONE potential (a dict of
  ``{"value", "unit", ...}`` entries and free-form detail), writing artifacts under
  ``ctx.workdir``. It never asks whether the potential is LJ or a learned model.
* ``compare(model_raw, reference_raw) -> metrics`` turns the two into model-vs-LJ metrics
  (``{name: {"value", "unit"}}``); `mlffbench.benchmarks.scoring` maps them to 0-1 scores with the
  thresholds each benchmark declares with its `Metric`s (a run config may override them).

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
from mlffbench.io import Dataset
from mlffbench.potentials.base import Potential
from mlffbench.units import UnitSystem

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
    at_reference_a0: where the workflow builds a crystal, also evaluate the model at the reference's
        (LJ's) 0 K lattice constant, which separates its force constants / barriers from its a0 error.
    """

    config: str | None = None
    overrides: dict[str, Any] = {}
    float32_overrides: dict[str, Any] = {}
    at_reference_a0: bool = False


@dataclass(frozen=True)
class Metric:
    """A model-vs-LJ metric a benchmark reports, declared where the benchmark is registered.

    unit: the unit its value is reported in ('1' for dimensionless).
    good, bad: score thresholds on |value| (score 1 at or below good, 0 at or above bad, linear in
        log10 between; see scoring.py); None = reported, not scored.
    rationale: one line on why those thresholds.
    """

    unit: str
    good: float | None = None
    bad: float | None = None
    rationale: str = ""

    @property
    def scored(self) -> bool:
        return self.good is not None and self.bad is not None


@dataclass
class BenchContext:
    """What a benchmark's `run` receives besides the potential.

    settings: the benchmark's validated settings (a BenchSettings subclass).
    units: the unit system (results are reported in metal units with reduced values beside).
    workdir: a directory for this potential's artifacts (created).
    role: 'model' or 'reference'.
    dataset / dataset_path: the LJ dataset (full loop or the config's `dataset`), or None.
    memo: a dict shared by all benchmarks of one run for one potential (e.g. a workflow run that
          two benchmarks read).
    run_config: the whole validated RunConfig (units, seed, reference potential settings).
    scratch: a directory that survives an interrupted run (for a workflow's own checkpoints);
        removed once the benchmark's result is committed.
    """

    settings: BenchSettings
    units: UnitSystem
    workdir: Path
    role: str
    seed: int = 0
    mode: str = "quick"
    dataset: Dataset | None = None
    dataset_path: Path | None = None
    reference_potential: Potential | None = None
    memo: dict = field(default_factory=dict)
    progress: bool = False
    run_config: Any = None  # benchmarks.runner.RunConfig (defined above this module's users)
    benchmark: str = ""
    scratch: Path | None = None


RunFn = Callable[[Potential, BenchContext], dict]
CompareFn = Callable[[dict, dict], dict]
PlotFn = Callable[[dict, dict, Path, UnitSystem], list]


@dataclass(frozen=True)
class Benchmark:
    """One named benchmark of the battery, declared in one place (its module).

    requires: capabilities the model must have ('energy', 'stress', ...); else 'not run'.
        `needs_energy=True` is shorthand for requires=('energy',).
    needs_dataset: the benchmark evaluates on the LJ dataset (its hash enters the result key).
    available: () -> None if the code it calls is present, else a reason ('not available ...').
    plot: optional (model_raw, reference_raw, outdir, units) -> list of written PNG names.
    metrics: {name: Metric} the compare function reports (unit, score thresholds, rationale).
    reference_values: {dotted path into the raw result ('*' matches any key): tolerance dict
        {'abs': x, 'rel': y}} - the LJ values scripts/make_reference.py stores in reference_data/
        and `mlffbench check` compares (tolerances: float64 round-off across platforms, not physics).
    order: position in the battery (cheap sanity first, then statics, phonons, barriers, dynamics).
    whole_committee: `run` gets the whole committee once (e.g. to measure its spread) instead of
        each member; its `compare` reads that one raw result.
    version: bump when the numbers it produces change (it enters the resume key).
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
    metrics: dict = field(default_factory=dict)
    requires: tuple = ()
    order: float = 100.0
    whole_committee: bool = False

    def __post_init__(self) -> None:
        if self.needs_energy and "energy" not in self.requires:
            object.__setattr__(self, "requires", ("energy", *self.requires))

    def missing_capability(self, potential: Potential) -> str | None:
        """Why `potential` cannot run this benchmark (a 'not run' reason), or None."""
        for cap in self.requires:
            if not getattr(potential.capabilities, cap):
                if cap == "energy":
                    return f"needs an energy; {potential.name} is a force-only model"
                return f"needs {cap}; {potential.name} does not provide it"
        return None


@dataclass
class BenchmarkResult:
    """The outcome of one benchmark on the model and the reference (stored as result.json)."""

    name: str
    title: str
    description: str = ""
    state: str = NOT_RUN
    reason: str = ""
    final: bool = True
    score: float | None = None
    metrics: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)
    plots: list = field(default_factory=list)
    wall_time_s: float | None = None
    wall_times_s: dict = field(default_factory=dict)
    peak_rss: dict = field(default_factory=dict)
    plot_error: str | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not (k == "plot_error" and v is None)}


REGISTRY: dict[str, Benchmark] = {}


def register(bench: Benchmark) -> Benchmark:
    """Add a benchmark to the battery."""
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


#: modules of this package that are plumbing, not benchmarks
_NOT_BENCHMARKS = {"runner", "scoring", "check", "study", "sweep"}
def _discover() -> None:
    """Import every benchmark module of this package (each registers itself): adding a benchmark
    is writing one module, no list to edit."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name not in _NOT_BENCHMARKS:
            importlib.import_module(f"{__name__}.{info.name}")


def battery() -> dict[str, Benchmark]:
    """All registered benchmarks in battery order."""
    _discover()
    return {b.name: b for b in sorted(REGISTRY.values(), key=lambda b: (b.order, b.name))}
