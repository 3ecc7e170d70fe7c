"""The Hessian of any potential: autodiff where the potential allows it, finite differences of
forces otherwise.

`hessian(potential, R, box, nbrs_or_spec)` returns d2E/dR dR as a (3N, 3N) matrix (reduced units,
epsilon/sigma^2) together with how it was obtained:

* ``autodiff`` (`potential.capabilities.autodiff`): -dF/dR by forward-mode JAX (`jax.jacfwd`) of
  the forces; exact to round-off.
* ``finite-difference``: central differences of the forces over all 3N coordinates,
  H[:, i] = -(F(R + h e_i) - F(R - h e_i)) / 2h, 6N force calls (vmapped in chunks where the
  potential is batched and jit-able, one by one otherwise). Error O(h^2) plus round-off
  ~ eps |F| / h; the default step h = eps^(1/3) sigma (6e-6 sigma in float64, 5e-3 sigma in
  float32) balances the two for forces of order epsilon/sigma.

This is the route for defect cells without symmetry (the vacancy minimum and the saddle point of
harmonic TST). For a perfect crystal, phonon code uses the symmetry-reduced displacement set
instead. Both routes are symmetrised; the asymmetry of the raw matrix, ||H - H^T|| / ||H||
(Frobenius), is reported: round-off for a conservative model, a measure of how non-conservative
a force-only model is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mlffbench.neighbors import NeighborSpec
from mlffbench.potentials.base import Potential
from mlffbench.sharding import padded_size, shard_batch

AUTODIFF, FINITE_DIFFERENCE = "autodiff", "finite-difference"


@dataclass(frozen=True)
class Hessian:
    """A symmetrised Hessian and how it was made.

    matrix: (3N, 3N), epsilon/sigma^2, coordinates ordered atom-major (x0, y0, z0, x1, ...).
    method: 'autodiff' or 'finite-difference'.
    step: finite-difference step (sigma), None for autodiff.
    asymmetry: ||H_raw - H_raw^T||_F / ||H_raw||_F before symmetrisation.
    """

    matrix: np.ndarray
    method: str
    step: float | None
    asymmetry: float

    def describe(self) -> str:
        """One line for results: which Hessian this is."""
        if self.method == AUTODIFF:
            return "exact autodiff Hessian"
        return f"finite-difference Hessian (central differences of forces, step {self.step:g} sigma)"


def default_step(potential: Potential) -> float:
    """eps^(1/3) of the potential's float type, in sigma (6.1e-6 for float64, 4.9e-3 for float32)."""
    return float(np.finfo(jnp.dtype(potential.dtype)).eps ** (1.0 / 3.0))


def hessian(potential: Potential, R, box, nbrs_or_spec, step: float | None = None,
            chunk: int = 64) -> Hessian:
    """d2E/dR dR of `potential` at positions R (N, 3) in `box` (3, 3), reduced units.

    Args:
        nbrs_or_spec: a neighbour list valid at R (used as is: displacements of `step` stay
            within any skin), or a `NeighborSpec` to allocate one from.
        step: finite-difference step (sigma); None = `default_step`. Ignored for autodiff.
        chunk: Hessian columns per vmapped call: forward-mode products (autodiff) or displaced
            configurations (finite differences). Bounds memory: one column of a GNN at 256 atoms
            holds ~15 MB of intermediates, so all 768 at once would need ~11 GB.

    Returns:
        `Hessian` (symmetrised matrix, method, step, asymmetry).
    """
    R = jnp.asarray(np.asarray(R, dtype=np.float64))
    box_j = jnp.asarray(np.asarray(box, dtype=np.float64))
    nbrs = nbrs_or_spec.allocate(R) if isinstance(nbrs_or_spec, NeighborSpec) else nbrs_or_spec
    x = R.reshape(-1)
    caps = potential.capabilities
    if caps.autodiff:
        H = _autodiff_columns(potential, x, box_j, nbrs, chunk)
        method, h = AUTODIFF, None
    else:
        h = float(step) if step is not None else default_step(potential)
        H = _finite_difference(potential, np.asarray(x), box_j, nbrs, h, chunk)
        method = FINITE_DIFFERENCE
    norm = np.linalg.norm(H)
    asym = float(np.linalg.norm(H - H.T) / norm) if norm > 0 else 0.0
    return Hessian(matrix=0.5 * (H + H.T), method=method, step=h, asymmetry=asym)


def _forces_flat(potential: Potential, x, box, nbrs):
    """Forces as a flat (3N,) float64 vector of flat coordinates x (3N,)."""
    return potential.forces(x.reshape(-1, 3), box, nbrs).reshape(-1).astype(jnp.float64)


# jitted with the potential static (hashed by its fingerprint), so repeated Hessians of one
# potential (Newton iterations, minimum and saddle) compile once per shape
@partial(jax.jit, static_argnums=0)
def _hvp_columns(potential: Potential, x, box, nbrs, basis):
    """-dF/dx applied to each row of `basis` (c, 3N): c columns of the Hessian by forward mode."""
    def column(v):
        return -jax.jvp(lambda y: _forces_flat(potential, y, box, nbrs), (x,), (v,))[1]
    return jax.vmap(column)(basis)


def _autodiff_columns(potential: Potential, x, box, nbrs, chunk: int) -> np.ndarray:
    """The exact Hessian, `chunk` columns per call (one compiled shape: the last chunk is padded)."""
    n = x.shape[0]
    c = padded_size(max(1, min(chunk, n)))  # a chunk the devices divide (the last is zero-padded)
    eye = np.eye(n, dtype=np.float64)
    cols = []
    for k in range(0, n, c):
        block = eye[k:k + c]
        if len(block) < c:
            block = np.concatenate([block, np.zeros((c - len(block), n))])
        cols.append(np.asarray(_hvp_columns(potential, x, box, nbrs, shard_batch(jnp.asarray(block)))))
    return np.concatenate(cols)[:n].T


@partial(jax.jit, static_argnums=0)
def _forces_batch(potential: Potential, X, box, nbrs):
    return jax.vmap(lambda y: _forces_flat(potential, y, box, nbrs))(X)


def _finite_difference(potential: Potential, x: np.ndarray, box, nbrs, h: float, chunk: int) -> np.ndarray:
    """-(F(x + h e_i) - F(x - h e_i)) / 2h as columns i of a (3N, 3N) matrix: vmapped in chunks
    (the last padded, so one shape compiles) where the potential is batched and jit-able, one
    configuration at a time otherwise."""
    caps = potential.capabilities
    n = x.size
    D = np.eye(n) * h
    displaced = np.concatenate([x + D, x - D])  # (2n, n): plus rows, then minus rows
    if caps.jit and caps.batched:
        chunk = padded_size(chunk)  # a chunk the devices divide
        pad = (-len(displaced)) % chunk
        padded = np.concatenate([displaced, np.repeat(displaced[-1:], pad, axis=0)])
        F = np.concatenate([np.asarray(_forces_batch(potential, shard_batch(jnp.asarray(padded[k:k + chunk])), box, nbrs))
                            for k in range(0, len(padded), chunk)])[:len(displaced)]
    else:
        f = jax.jit(_forces_flat, static_argnums=0) if caps.jit else _forces_flat
        F = np.stack([np.asarray(f(potential, jnp.asarray(d), box, nbrs)) for d in displaced])
    return -((F[:n] - F[n:]) / (2.0 * h)).T
