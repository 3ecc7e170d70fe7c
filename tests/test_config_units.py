"""Config defaults are written in metal units; a config given in lj units converts the ones it
leaves out (and only those), checked against tau computed from ASE's unit constants."""

import math

from ase import units as ase_units

import mlffbench  # noqa: F401
from mlffbench.config import validate
from mlffbench.workflows.md_run import MDRunConfig
from mlffbench.workflows.vacancy import VacancyConfig

# argon LJ time unit tau = sigma sqrt(m / epsilon), in fs
TAU_FS = 3.4 * math.sqrt(39.948 / 0.010321) / ase_units.fs


def test_lj_config_converts_metal_defaults_it_leaves_out():
    lj = validate(VacancyConfig, {"units": {"system": "lj"}, "run": {"temperatures": [1.0]},
                                  "md": {"sample_every": 10, "segment_steps": 100}})
    metal = validate(VacancyConfig, {"run": {"temperatures": [100.0]}})
    assert math.isclose(lj.md.timestep, metal.md.timestep / TAU_FS, rel_tol=1e-4)
    assert math.isclose(lj.md.langevin_friction, metal.md.langevin_friction * TAU_FS, rel_tol=1e-4)
    assert metal.md.timestep == 10.0  # metal configs keep the written defaults


def test_lj_config_keeps_values_it_sets():
    cfg = validate(MDRunConfig, {"units": {"system": "lj"}, "timestep": 0.004, "temperatures": [0.5]})
    assert cfg.timestep == 0.004 and cfg.temperatures == [0.5]
    default_T = validate(MDRunConfig, {"units": {"system": "lj"}}).temperatures
    assert math.isclose(default_T[0], 40.0 / 119.77, rel_tol=1e-3)  # 40 K in epsilon/k_B
