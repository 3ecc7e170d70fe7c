"""Config defaults are written in metal units; a config given in lj units converts the ones it
leaves out (and only those), checked against tau computed from ASE's unit constants."""

import math

from ase import units as ase_units

import mlffbench  # noqa: F401
from mlffbench.config import validate
from mlffbench.workflows.md_run import MDRunConfig
from mlffbench.workflows.neb import NebConfig
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


# argon epsilon / k_B in K, from ASE's Boltzmann constant
EPS_K = 0.010321 / ase_units.kB


def test_neb_lj_config_converts_htst_temperatures():
    """`neb` in lj units without htst.temperatures: the metal defaults (K) become kT in epsilon,
    not reduced temperatures of 40-70 (the crystal would be a gas)."""
    lj = validate(NebConfig, {"units": {"system": "lj"}})
    metal = validate(NebConfig, {})
    assert metal.htst.temperatures == [40.0, 50.0, 60.0, 70.0]
    for t_lj, t_k in zip(lj.htst.temperatures, metal.htst.temperatures, strict=True):
        assert math.isclose(t_lj, t_k / EPS_K, rel_tol=1e-4)
    kept = validate(NebConfig, {"units": {"system": "lj"}, "htst": {"temperatures": [0.5], "enabled": False}})
    assert kept.htst.temperatures == [0.5] and not kept.htst.enabled


def test_vacancy_lj_config_keeps_temperatures_and_converts_md_times():
    """`vacancy` temperatures have no default (given in the config's own units); its MD times do."""
    cfg = validate(VacancyConfig, {"units": {"system": "lj"}, "run": {"temperatures": [0.9]},
                                   "md": {"sample_every": 10, "segment_steps": 100}})
    assert cfg.run.temperatures == [0.9]
    assert math.isclose(cfg.md.thermostat_time, 500.0 / TAU_FS, rel_tol=1e-4)


def test_generate_and_pdos_lj_configs_convert_their_metal_default_times_rates_and_temperatures():
    """The other configs with time, rate or temperature defaults: `generate`'s MD times and
    Langevin friction, `pdos`' finite-temperature times and temperatures."""
    from mlffbench.workflows.generate import GenerateConfig
    from mlffbench.workflows.pdos import PdosConfig

    lj, metal = validate(GenerateConfig, {"units": {"system": "lj"}}), validate(GenerateConfig, {})
    for key in ("timestep", "thermostat_time", "barostat_time"):
        assert math.isclose(getattr(lj.md, key), getattr(metal.md, key) / TAU_FS, rel_tol=1e-4), key
    assert math.isclose(lj.md.langevin_friction, metal.md.langevin_friction * TAU_FS, rel_tol=1e-4)
    lj, metal = validate(PdosConfig, {"units": {"system": "lj"}}), validate(PdosConfig, {})
    lt, mt = lj.finite_temperature, metal.finite_temperature
    for key in ("dt", "equilibration_time", "production_time", "thermostat_time", "max_lag_time"):
        assert math.isclose(getattr(lt, key), getattr(mt, key) / TAU_FS, rel_tol=1e-4), key
    for t_lj, t_k in zip(lt.temperatures, mt.temperatures, strict=True):
        assert math.isclose(t_lj, t_k / EPS_K, rel_tol=1e-4)
