"""Potentials: the shared interface, the LJ oracle, learned models and external calculators.

`load_potential(spec)` is how every command turns `--model` into a `Potential`:
``lj`` (= ``lj/cut/shift``), ``lj/cut``, ``lj/cut/shift``, ``lj/smooth`` or a trained-model
directory (one holding ``model_card.json``; see `mlffbench.potentials.gnn`).
"""

from __future__ import annotations

from pathlib import Path

from mlffbench.errors import UserError
from mlffbench.potentials.base import Potential
from mlffbench.potentials.lj import VARIANTS, lennard_jones

__all__ = ["Potential", "lennard_jones", "load_potential", "LJ_ALIASES"]

LJ_ALIASES = {"lj": "lj/cut/shift", **{v: v for v in VARIANTS}}


def load_potential(spec: str, cutoff: float = 2.5, dtype: str | None = None) -> Potential:
    """`--model` value -> Potential. LJ names take the reduced cutoff; directories are models.

    Raises UserError (one line) for unknown names, missing or corrupt model directories.
    """
    if spec in LJ_ALIASES:
        return lennard_jones(LJ_ALIASES[spec], cutoff=cutoff)
    path = Path(spec)
    if not path.exists():
        raise UserError(f"--model {spec!r}: neither an LJ variant ({', '.join(LJ_ALIASES)}) "
                        "nor an existing model directory")
    if not (path / "model_card.json").is_file():
        raise UserError(f"--model {spec}: no model_card.json in that directory (not a trained model)")
    from mlffbench.potentials.gnn import load_model_potential  # heavy import, only when needed

    return load_model_potential(path, dtype=dtype)
