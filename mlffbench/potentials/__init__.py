"""Potentials: the shared interface, the LJ oracle, learned models and external calculators.

`load_potential(spec)` is the one factory every command uses to turn `--model` into a `Potential`:

* ``lj`` (= ``lj/cut/shift``), ``lj/cut``, ``lj/cut/shift``, ``lj/smooth``: the LJ oracle, with its
  cutoff, switch onset and dtype;
* a trained-model directory (one holding ``model_card.json``; see `mlffbench.potentials.gnn`);
* a model spec file ``*.yaml`` (``kind: ase`` or ``kind: jax``; see `mlffbench.potentials.external`).
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp

from mlffbench.errors import UserError
from mlffbench.potentials.base import Capabilities, Evaluation, Potential
from mlffbench.potentials.lj import VARIANTS, lennard_jones

__all__ = ["Capabilities", "Evaluation", "Potential", "lennard_jones", "load_potential", "LJ_ALIASES",
           "is_lj_spec", "reference_potential"]

LJ_ALIASES = {"lj": "lj/cut/shift", **{v: v for v in VARIANTS}}
DTYPES = {None: None, "float32": jnp.float32, "float64": jnp.float64}


def is_lj_spec(spec: str) -> bool:
    """True when `spec` names an LJ variant (spec-level question: is there anything to load?)."""
    return str(spec) in LJ_ALIASES


def reference_potential(potential_config) -> Potential:
    """The LJ oracle a config's `potential:` section names (a `config.PotentialConfig`)."""
    return load_potential(potential_config.name, cutoff=potential_config.cutoff_sigma,
                          r_onset=potential_config.r_onset_sigma)


def load_potential(spec: str, cutoff: float = 2.5, dtype: str | None = None,
                   r_onset: float | None = None) -> Potential:
    """`--model` value -> Potential.

    Args:
        spec: an LJ name, a model directory or a model-spec YAML file.
        cutoff: reduced cutoff of LJ variants (sigma).
        dtype: 'float32' or 'float64'; None = the model's own default (float64 for LJ,
            float32 for trained models, the spec's `dtype` for external ones).
        r_onset: switch onset of `lj/smooth` (sigma; default 0.8 cutoff).

    Raises UserError (one line) for unknown names, missing or corrupt model directories or specs.
    """
    if dtype not in DTYPES:
        raise UserError(f"dtype must be float32 or float64, got {dtype!r}")
    spec = str(spec)
    if spec in LJ_ALIASES:
        return lennard_jones(LJ_ALIASES[spec], cutoff=cutoff, r_onset=r_onset,
                             dtype=DTYPES[dtype] or jnp.float64)
    path = Path(spec)
    if not path.exists():
        raise UserError(f"--model {spec!r}: neither an LJ variant ({', '.join(LJ_ALIASES)}), "
                        "a model directory nor a model spec file")
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        from mlffbench.potentials.external import load_model_spec  # imports user code: only when asked

        return load_model_spec(path, dtype=dtype)
    if not (path / "model_card.json").is_file():
        raise UserError(f"--model {spec}: no model_card.json in that directory (not a trained model)")
    from mlffbench.potentials.gnn import load_model_potential  # heavy import, only when needed

    return load_model_potential(path, dtype=dtype)
