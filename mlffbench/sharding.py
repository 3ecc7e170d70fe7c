"""Batch axes sharded across every device: a 1-D `jax.sharding.Mesh` named 'batch'.

The batch axes of the suite (MD replicas, string-method images, committee members, Hessian JVP
columns) are vmapped; placing their leading axis with `NamedSharding(mesh, P('batch'))` lets jit
propagate the split so each device computes its share of the batch. Policy:

* one device: every function returns its input unchanged (the default path, no overhead);
* a leading axis that the device count divides: sharded over all devices;
* otherwise (or a scalar leaf): left as it is (XLA places it; on more than one device that is the
  replicated fallback, still correct, just not split).

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
