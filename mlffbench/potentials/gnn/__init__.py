"""Learned force fields: architectures (registry), a `Potential` wrapper, saving and loading.

A model directory holds
* ``params.msgpack`` - Flax parameters (flax.serialization msgpack: plain arrays, loading never
  executes code);
* ``model_card.json`` - architecture name, hyperparameters, cutoff, neighbour format,
  conservative flag, standardisation (energy shift per atom, scale), units, training-data hash,
  metrics, package versions, and the sha256 of params.msgpack (checked on load).

`load_model_potential(path, dtype)` turns such a directory into a `Potential` (reduced units),
used by `mlffbench.potentials.load_potential` for ``--model DIR``.

A committee directory (from `mlffbench train` with ``ensemble.members`` K > 1) is the same
layout: every array in params.msgpack has a leading member axis of length K, and the card has
``"committee": {"members": K, "vary": ..., "seeds": [...], "member_params_sha256": [...]}``.
It loads as a `mlffbench.potentials.committee.Committee` (a Potential: the member mean, with
the K member Potentials in `.members`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from mlffbench.errors import UserError
from mlffbench.neighbors import edge_vectors
from mlffbench.potentials.base import Potential
from mlffbench.potentials.gnn import models as _models  # noqa: F401  (registers architectures)
from mlffbench.potentials.gnn.registry import MODELS, ModelEntry

try:  # the CG helper's HIP-NN-TS; optional
    from mlffbench.potentials.gnn import hipnn_ts as _hipnn_ts  # noqa: F401
except ImportError:  # pragma: no cover
    pass

__all__ = ["MODELS", "build_module", "init_params", "make_potential", "make_committee_potential", "save_model",
           "load_model_potential", "load_model"]

CARD = "model_card.json"
PARAMS = "params.msgpack"
CARD_VERSION = 1
# MD neighbour-list head room for GNN potentials (LJ: 1.3): 256-atom NVE MD of the default SchNet
# (float32) ran 39.6k atom-steps/s at 1.1 and 33.7k at 1.3 (`bench/gnn_throughput.py`, load 2-3);
# the ladder in `neighbors.bucket` adds up to 12.5 % on top, and an overflow re-allocates.
GNN_MD_LIST_HEADROOM = 1.1


def entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise UserError(f"unknown model architecture {name!r}; registered: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def build_module(name: str, hparams: dict):
    """Flax module for a registered architecture."""
    return entry(name).build(dict(hparams))


def init_params(name: str, hparams: dict, seed: int, dtype=jnp.float32) -> Any:
    """Random initial parameters from `seed`, initialised on a tiny dummy graph."""
    module = build_module(name, hparams)
    dR = jnp.asarray([[1.0, 0.0, 0.0], [0.0, 1.1, 0.0]], dtype)
    mask = jnp.array([True, True])
    idx = jnp.array([0, 1], jnp.int32)
    return module.init(jax.random.PRNGKey(seed), dR, mask, idx, idx[::-1], 2)


def cutoff_of(name: str, hparams: dict) -> float:
    module = build_module(name, hparams)
    return float(module.cutoff)


def cast_params(params, dtype):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), params)


def params_digest(params) -> str:
    """sha256 of the parameter arrays (shapes, dtypes and bytes, in tree order)."""
    import hashlib

    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(params):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def make_potential(name: str, hparams: dict, params, standardization: dict, dtype=jnp.float32,
                   label: str | None = None, extra: dict | None = None, param_hash: str = "") -> Potential:
    """Wrap a module + parameters as a `Potential` (reduced units).

    standardization: {'energy_shift': per-atom energy (epsilon), 'energy_scale': epsilon,
    'force_scale': epsilon/sigma}; E = N*shift + energy_scale*sum(e_i), F = force_scale*f_i for
    force-only models.
    """
    ent = entry(name)
    module = build_module(name, hparams)
    p = cast_params(params, dtype)
    param_hash = param_hash or params_digest(params)
    describe = {"architecture": name, "hparams": dict(hparams), "standardization": standardization,
                **(extra or {})}
    label = label or f"gnn:{name}"
    apply = _apply_fn(module, standardization, rows=ent.neighbor_format == "dense")
    common = {"name": label, "cutoff": float(module.cutoff), "neighbor_format": ent.neighbor_format,
              "dtype": dtype, "params": describe, "kind": "gnn", "param_hash": param_hash,
              "md_list_headroom": GNN_MD_LIST_HEADROOM}

    if ent.conservative:
        def per_atom(R, box, nbrs):
            return apply(p, R, box, nbrs)

        def energy_fn(R, box, nbrs):
            return jnp.sum(per_atom(R, box, nbrs))

        return Potential(energy_fn=energy_fn, per_atom_energy_fn=per_atom, **common)

    return Potential(direct_force_fn=lambda R, box, nbrs: apply(p, R, box, nbrs), **common)


def _apply_fn(module, standardization: dict, rows: bool = False):
    """(params, R, box, nbrs) -> per-atom energies (N,) epsilon, or forces (N, 3) epsilon/sigma for a
    force-only module, standardisation undone: e_i = shift + energy_scale * e_i', F = force_scale * f'.
    rows: the list is dense rows and the module is told so (receivers=None, see the registry)."""
    shift = float(standardization.get("energy_shift", 0.0))
    escale = float(standardization.get("energy_scale", 1.0))
    fscale = float(standardization.get("force_scale", 1.0))

    def apply(params, R, box, nbrs):
        dR, mask, i, j = edge_vectors(R, box, nbrs)
        out = module.apply(params, dR, mask, None if rows else i, j, R.shape[0])
        return shift + escale * out if out.ndim == 1 else fscale * out

    return apply


def make_committee_potential(name: str, hparams: dict, stacked_params, standardization: dict, dtype=jnp.float32,
                             label: str | None = None, extra: dict | None = None,
                             member_hashes: list[str] | None = None):
    """A `Committee` of K models of one architecture from parameters with a leading member axis K.

    Members are `make_potential` models (fingerprints from `member_hashes`, default the digests of
    their parameters); the committee's own evaluation indexes the stacked parameters with a traced
    member index, so all members share one compiled program and vmap over members.
    """
    from mlffbench.potentials.committee import make_committee

    K = int(np.shape(jax.tree_util.tree_leaves(stacked_params)[0])[0])
    label = label or f"gnn:{name}"
    hashes = member_hashes or [params_digest(_member(stacked_params, m)) for m in range(K)]
    pots = [make_potential(name, hparams, _member(stacked_params, m), standardization, dtype=dtype,
                           label=f"{label}#{m}", extra={**(extra or {}), "member": m}, param_hash=hashes[m])
            for m in range(K)]
    apply = _apply_fn(build_module(name, hparams), standardization)
    stacked = cast_params(stacked_params, dtype)
    total = entry(name).conservative

    def member_fn(k, R, box, nbrs):
        out = apply(jax.tree_util.tree_map(lambda x: x[k], stacked), R, box, nbrs)
        return jnp.sum(out) if total else out

    return make_committee(pots, name=label, member_fn=member_fn,
                          params={"architecture": name, "hparams": dict(hparams), **(extra or {})})


def _member(stacked, m: int):
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[m], stacked)


def save_model(outdir: str | Path, name: str, hparams: dict, params, standardization: dict,
               card_extra: dict | None = None, committee: dict | None = None) -> Path:
    """Write params.msgpack and model_card.json into `outdir` (created). Returns the directory.

    committee: {'members': K, 'vary': ..., 'seeds': [...]} when `params` carry a leading member
    axis K (the card then also lists each member's parameter sha256)."""
    from mlffbench.io import atomic_write_bytes, package_versions, sha256_file, write_json

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    params_np = jax.tree_util.tree_map(np.asarray, params)
    atomic_write_bytes(out / PARAMS, serialization.to_bytes(params_np))
    ent = entry(name)
    card = {
        "card_version": CARD_VERSION,
        "architecture": name,
        "hparams": dict(hparams),
        "cutoff_sigma": cutoff_of(name, hparams),
        "neighbor_format": ent.neighbor_format,
        "conservative": ent.conservative,
        "standardization": standardization,
        "param_dtype": str(jax.tree_util.tree_leaves(params_np)[0].dtype),
        "n_parameters": int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params_np))
                            // (committee["members"] if committee else 1)),
        "params_sha256": sha256_file(out / PARAMS),
        "units": "reduced LJ units inside (sigma, epsilon); see 'unit_system' for argon scales",
        "versions": package_versions(),
        **(card_extra or {}),
    }
    if committee:
        card["committee"] = {**committee, "member_params_sha256": [
            params_digest(_member(params_np, m)) for m in range(committee["members"])]}
    write_json(out / CARD, card)
    return out


def read_card(path: str | Path) -> dict:
    p = Path(path) / CARD
    if not p.is_file():
        raise UserError(f"{path}: no {CARD} (not a trained model directory)")
    try:
        card = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{p}: corrupt model card ({exc.msg} at line {exc.lineno})") from None
    for key in ("architecture", "hparams", "standardization"):
        if key not in card:
            raise UserError(f"{p}: model card lacks {key!r}")
    return card


def load_model(path: str | Path) -> tuple[dict, Any]:
    """(card, params as numpy) from a model directory; UserError on anything missing or corrupt."""
    from mlffbench.io import sha256_file

    card = read_card(path)
    ppath = Path(path) / PARAMS
    if not ppath.is_file():
        raise UserError(f"{path}: checkpoint {PARAMS} is missing")
    want = card.get("params_sha256")
    if want and sha256_file(ppath) != want:
        raise UserError(f"{ppath}: checkpoint is corrupt (sha256 differs from the model card)")
    # shapes and dtypes only: jax.eval_shape traces the initialisation without running it (run
    # eagerly, module.init compiled ~80 one-op programs, ~2 s of a cold `check-model`)
    shapes = jax.eval_shape(lambda: init_params(card["architecture"], card["hparams"], seed=0))
    lead = (_committee_size(card, path),) if "committee" in card else ()
    template = jax.tree_util.tree_map(lambda x: np.zeros(lead + tuple(x.shape), x.dtype), shapes)
    try:
        params = serialization.from_bytes(template, ppath.read_bytes())
    except Exception as exc:  # msgpack errors come in many types
        raise UserError(f"{ppath}: checkpoint is corrupt or does not match the architecture "
                        f"({type(exc).__name__})") from None
    shapes_ok = jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda a, b: np.shape(a) == np.shape(b), template, params))
    if not shapes_ok:
        raise UserError(f"{ppath}: parameter shapes do not match the architecture in the model card")
    return card, params


def _committee_size(card: dict, path) -> int:
    K = card["committee"].get("members") if isinstance(card["committee"], dict) else None
    if not isinstance(K, int) or K < 1:
        raise UserError(f"{Path(path) / CARD}: committee.members must be a positive integer")
    return K


def load_model_potential(path: str | Path, dtype: str | None = None) -> Potential:
    """Model directory -> Potential (a `Committee` for a committee directory).
    dtype 'float32' (default) or 'float64'."""
    card, params = load_model(path)
    if dtype not in (None, "float32", "float64"):
        raise UserError(f"dtype must be float32 or float64, got {dtype!r}")
    dt = jnp.float64 if dtype == "float64" else jnp.float32
    label = f"gnn:{card['architecture']}:{Path(path).name}"
    extra = {"model_dir": str(path), "params_sha256": card.get("params_sha256")}
    if "committee" in card:
        return make_committee_potential(card["architecture"], card["hparams"], params, card["standardization"],
                                        dtype=dt, label=label, extra=extra,
                                        member_hashes=card["committee"].get("member_params_sha256"))
    return make_potential(card["architecture"], card["hparams"], params, card["standardization"], dtype=dt,
                          label=label, extra=extra, param_hash=card.get("params_sha256") or "")
