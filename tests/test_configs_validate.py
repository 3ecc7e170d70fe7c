"""Every shipped config validates: each configs/*.yaml against its command's schema, each model
spec in configs/models/, and in each run config every benchmark's settings plus every stage and
benchmark override applied to the workflow config it targets (what `mlffbench run` would build)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlffbench.benchmarks import WorkflowSettings
from mlffbench.benchmarks.runner import RunConfig, bench_settings
from mlffbench.benchmarks.study import StudyConfig
from mlffbench.benchmarks.sweep import SweepConfig
from mlffbench.cg.config import CGConfig
from mlffbench.config import load_config, load_stage_config
from mlffbench.potentials.external import read_spec
from mlffbench.training.config import TrainConfig
from mlffbench.workflows.check_model import CheckModelConfig
from mlffbench.workflows.generate import GenerateConfig
from mlffbench.workflows.md_run import MDRunConfig
from mlffbench.workflows.neb import NebConfig
from mlffbench.workflows.pdos import PdosConfig
from mlffbench.workflows.vacancy import VacancyConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = {"generate": GenerateConfig, "train": TrainConfig, "md": MDRunConfig, "pdos": PdosConfig,
           "neb": NebConfig, "vacancy": VacancyConfig, "cg": CGConfig, "run": RunConfig, "study": StudyConfig,
           "sweep": SweepConfig}
# the workflow config each workflow benchmark builds (benchmarks/<family>.py: sub_config(...))
BENCH_SCHEMA = {"integrity": CheckModelConfig, "md_stability": MDRunConfig, "pdos_0k": PdosConfig,
                "pdos_finite_t": PdosConfig, "migration_barrier": NebConfig, "htst_rate": NebConfig,
                "hop_rates": VacancyConfig, "calibration": NebConfig}
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
RUNS = [p for p in CONFIGS if p.name.startswith("run-")]


def test_every_config_has_a_schema():
    prefixes = {p.name.split("-")[0] for p in CONFIGS}
    assert prefixes <= set(SCHEMAS), prefixes - set(SCHEMAS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates(path):
    load_config(SCHEMAS[path.name.split("-")[0]], path)


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "models").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_model_spec_validates(path):
    read_spec(path)  # schema only: never imports the calculator


@pytest.mark.parametrize("path", RUNS, ids=lambda p: p.name)
def test_run_config_stages_and_benchmark_overrides_validate(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # config paths inside run configs are relative to the repository
    cfg = load_config(RunConfig, path)
    units = cfg.units.model_dump()
    load_stage_config(GenerateConfig, cfg.generate.config, cfg.generate.overrides, f"{path}: generate",
                      {"seed": cfg.seed, "units": units, "potential": cfg.potential.model_dump()})
    load_stage_config(TrainConfig, cfg.train.config, cfg.train.overrides, f"{path}: train", {"seed": cfg.seed})
    settings = bench_settings(cfg, str(path))
    assert set(BENCH_SCHEMA) == {n for n, s in settings.items() if isinstance(s, WorkflowSettings)}
    for name, schema in BENCH_SCHEMA.items():
        s = settings[name]
        forced = {"units": units} if "units" in schema.model_fields else {}
        for extra in ({}, s.float32_overrides):  # float64 and float32 potentials
            load_stage_config(schema, s.config, s.overrides, f"{path}: benchmarks.{name}", {**extra, **forced})
