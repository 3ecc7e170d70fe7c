"""Batch axes sharded across every device: a 1-D `jax.sharding.Mesh` named 'batch'.

The batch axes of the suite (MD replicas, string-method images, committee members, Hessian JVP
columns) are vmapped; placing their leading axis with `NamedSharding(mesh, P('batch'))` lets jit
propagate the split so each device computes its share of the batch. Policy:

* one device: every function returns its input unchanged (the default path, no overhead);
* a leading axis that the device count divides: sharded over all devices;
* a batch the device count does not divide is padded to the next multiple (`padded_size`): the
  padding repeats the last element, so it computes a copy of a real element, and is sliced off
  again (`vmap_sharded`, and `run_md` for replicas; the Hessian's column chunks are sized by
  `padded_size`); the real elements' numbers do not change;
* a scalar leaf, or a leaf whose leading axis is not the batch: left as it is (XLA places it).

Ground layer: imports only jax/numpy.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "batch"


def device_count() -> int:
    """Number of devices the batch axes are spread over (len(jax.devices()))."""
    return len(jax.devices())


@lru_cache(maxsize=None)
def _mesh(n: int) -> Mesh:
    return Mesh(np.asarray(jax.devices()[:n]), (AXIS,))


def batch_mesh() -> Mesh | None:
    """The 1-D mesh over all devices (axis name 'batch'), or None on one device."""
    n = device_count()
    return None if n < 2 else _mesh(n)


def padded_size(n_batch: int) -> int:
    """`n_batch` rounded up to a multiple of the device count (unchanged on one device or for a
    batch of one, which is not worth splitting)."""
    n = device_count()
    if n < 2 or n_batch < 2:
        return n_batch
    return -(-n_batch // n) * n


def pad_leading(tree: Any, n_batch: int, size: int) -> Any:
    """Every array leaf of `tree` whose leading axis is `n_batch`, extended to `size` along it by
    repeating its last element (traceable: works inside jit)."""
    if size == n_batch:
        return tree

    def pad(leaf):
        shape = getattr(leaf, "shape", ())
        if len(shape) == 0 or shape[0] != n_batch:
            return leaf
        tail = jax.numpy.repeat(leaf[-1:], size - n_batch, axis=0)
        return jax.numpy.concatenate([leaf, tail], axis=0)
    return jax.tree_util.tree_map(pad, tree)


def unpad_leading(tree: Any, size: int, n_batch: int) -> Any:
    """The first `n_batch` elements of every leaf whose leading axis is `size` (undoes `pad_leading`)."""
    if size == n_batch:
        return tree
    return jax.tree_util.tree_map(
        lambda x: x[:n_batch] if len(getattr(x, "shape", ())) and x.shape[0] == size else x, tree)


def vmap_sharded(fn):
    """`jax.vmap(fn)` over the leading axis of every argument, that axis split over the devices:
    padded to `padded_size` (repeats of the last element), constrained along 'batch', vmapped, and
    the padding sliced off the outputs. On one device exactly `jax.vmap(fn)`."""
    def run(*args):
        n_batch = jax.tree_util.tree_leaves(args)[0].shape[0]
        size = padded_size(n_batch)
        args = pad_leading(args, n_batch, size)
        args = jax.tree_util.tree_map(
            lambda x: constrain_batch(x) if len(getattr(x, "shape", ())) and x.shape[0] == size else x, args)
        return unpad_leading(jax.vmap(fn)(*args), size, n_batch)
    return run


def _spec(leaf, n: int):
    """NamedSharding for a leaf whose leading axis n divides, else None (leave the leaf)."""
    shape = getattr(leaf, "shape", ())
    if len(shape) == 0 or shape[0] % n:
        return None
    return NamedSharding(_mesh(n), P(AXIS, *([None] * (len(shape) - 1))))


def shard_batch(tree: Any) -> Any:
    """Place every array leaf of `tree` with its leading (batch) axis split over the devices.

    Leaves whose leading axis the device count does not divide, and non-array leaves, are
    returned unchanged. On one device `tree` itself is returned (no copy). Eager: use outside
    jit on inputs; jit then propagates the sharding to the vmapped computation.
    """
    n = device_count()
    if n < 2:
        return tree

    def place(leaf):
        if not hasattr(leaf, "shape"):
            return leaf
        s = _spec(leaf, n)
        return leaf if s is None else jax.device_put(leaf, s)
    return jax.tree_util.tree_map(place, tree)


def constrain_batch(x):
    """Inside (or outside) jit: `with_sharding_constraint` of array `x` along its leading axis
    over the devices; `x` unchanged on one device or when the device count does not divide it."""
    n = device_count()
    if n < 2:
        return x
    s = _spec(x, n)
    return x if s is None else jax.lax.with_sharding_constraint(x, s)
