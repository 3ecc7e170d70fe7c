"""Validated configuration: YAML in, pydantic models, one-line errors out.

Every command's config is a `StrictModel` (unknown keys are errors). `load_config` turns any
problem (missing file, YAML syntax, unknown key, wrong type, bad value) into a `UserError` whose
message names the file and the key, e.g.::

    configs/x.yaml: md.temperature_K: Input should be greater than 0 (got -5)

Shared sections (`units`, `potential`) live here; each workflow defines its own model next to
its code and composes these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlffbench.errors import UserError
from mlffbench.units import UnitSystem

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for all config sections: unknown keys are rejected, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class UnitsConfig(StrictModel):
    """The reduced unit system and the units config values are given in.

    system: 'metal' (K, fs, Å, eV, bar) or 'lj' (reduced). Outputs always carry both.
    """

    system: Literal["metal", "lj"] = "metal"
    epsilon_eV: float = Field(0.010321, gt=0)
    sigma_A: float = Field(3.4, gt=0)
    mass_amu: float = Field(39.948, gt=0)

    def unit_system(self) -> UnitSystem:
        return UnitSystem(self.epsilon_eV, self.sigma_A, self.mass_amu)


def _metal_default_in_lj(value: Any, kind: str, units: UnitSystem) -> Any:
    if isinstance(value, (list, tuple)):
        return [_metal_default_in_lj(v, kind, units) for v in value]
    if kind == "time":  # fs -> tau
        return value / 1000.0 / units.tau_ps
    if kind == "rate":  # 1/fs -> 1/tau
        return value * 1000.0 * units.tau_ps
    if kind == "temperature":  # K -> epsilon/k_B
        return value / units.temperature_k
    raise ValueError(f"unknown quantity {kind!r}")


def lj_defaults(data: Any, section: str | None, model: type[BaseModel], kinds: dict[str, str]) -> Any:
    """For a `mode="before"` validator: defaults are written in metal units (fs, 1/fs, K); in a
    config given in lj units, each of `kinds` the user left out of `section` (None: top level)
    gets its metal default converted, so that `units: {system: lj}` without a timestep means
    5 fs = 0.0023 tau rather than 5 tau. Returns the (copied) raw data."""
    if not isinstance(data, dict):
        return data
    raw_units = data.get("units")
    if not isinstance(raw_units, dict) or raw_units.get("system") != "lj":
        return data
    try:
        units = UnitsConfig(**raw_units).unit_system()
    except ValidationError:
        return data  # reported by the normal validation
    data = dict(data)
    target = data if section is None else data.get(section, {})
    if not isinstance(target, dict):
        return data
    target = dict(target)
    for name, kind in kinds.items():
        if name not in target:
            field = model.model_fields[name]
            default = field.default_factory() if field.default_factory is not None else field.default
            target[name] = _metal_default_in_lj(default, kind, units)
    if section is None:
        return target
    data[section] = target
    return data


class PotentialConfig(StrictModel):
    """The reference potential: an LJ variant with its cutoff in sigma."""

    name: Literal["lj", "lj/cut", "lj/cut/shift", "lj/smooth"] = "lj/cut/shift"
    cutoff_sigma: float = Field(2.5, gt=0.5)
    r_onset_sigma: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _onset_below_cutoff(self):
        if self.r_onset_sigma is not None and self.r_onset_sigma >= self.cutoff_sigma:
            raise ValueError("r_onset_sigma must be smaller than cutoff_sigma")
        return self



def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{source}: {loc}: unknown key"
    if kind == "missing":
        return f"{source}: {loc}: required key is missing"
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    more = f" [and {len(err.errors()) - 1} more problem(s)]" if len(err.errors()) > 1 else ""
    return f"{source}: {loc}: {msg}{shown}{more}"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """YAML mapping from a file; UserError on a missing file or bad syntax."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{p}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: the top level must be a mapping of keys to values")
    return data


def validate(model: type[M], data: dict[str, Any], source: str = "config") -> M:
    """`data` -> `model`, with one-line UserErrors naming the key."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise UserError(_format_validation_error(err, source)) from None


REPO_ROOT = Path(__file__).resolve().parents[1]


def resolve_path(p: str | Path) -> Path:
    """A path from a config: as given (relative to the working directory) or, failing that,
    relative to the repository root (so `configs/...` works from anywhere in a source checkout)."""
    path = Path(p)
    if path.exists() or path.is_absolute():
        return path
    alt = REPO_ROOT / path
    return alt if alt.exists() else path


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Set dotted keys (e.g. {'md.timestep': 2.0}) in the nested mapping `data` (in place; returned).

    None values are skipped (an unset command-line flag)."""
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return data


def load_config(model: type[M], path: str | Path, overrides: dict[str, Any] | None = None) -> M:
    """Read YAML at `path`, apply dotted-key `overrides` (e.g. {'seed': 3}), validate."""
    return validate(model, apply_overrides(read_yaml(path), overrides), str(path))


def load_stage_config(model: type[M], config_file: str | None, overrides: dict[str, Any], source: str,
                      extra: dict[str, Any] | None = None) -> M:
    """A sub-command config: its file (or its defaults), then `overrides`, then `extra`, validated.

    `source` names the section in error messages (e.g. 'configs/run-quick.yaml: generate')."""
    data: dict = {}
    src = source
    if config_file:
        path = resolve_path(config_file)
        if not path.is_file():
            raise UserError(f"{source}.config: file not found: {config_file}")
        data = read_yaml(path)
        src = f"{path}"
    return validate(model, apply_overrides(data, {**overrides, **(extra or {})}), src)


def config_hash(cfg: BaseModel) -> str:
    """sha256 of the validated config (defaults filled in), stable across key order."""
    from mlffbench.io import json_sha256

    return json_sha256(cfg.model_dump(mode="json"))
