"""Force-only models through the 0 K force constants used by `pdos`: the reported Hessian asymmetry
||H - H^T||_F / ||H||_F equals that of an independent numpy central-difference Jacobian of the same
forces: ~0 for force-only LJ (-grad E, energy withheld), clearly non-zero with a small curl term."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import A0_LJ

from mlffbench.neighbors import edge_vectors, safe_norm
from mlffbench.potentials import Potential, lennard_jones
from mlffbench.properties import phonons as ph
from mlffbench.structures import fcc

RC = 2.5
M = jnp.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # antisymmetric: a curl


def _force_only(curl: float) -> Potential:
    lj = lennard_jones(dtype="float64")

    def forces(R, box, nbrs):
        f = lj.forces(R, box, nbrs)
        if curl == 0.0:
            return f
        dR, mask, i, j = edge_vectors(R, box, nbrs)
        r = safe_norm(dR, mask, fill=5.0)
        w = jnp.where(mask & (r < RC), jnp.exp(-r), 0.0)
        t = (dR @ M.T) * w[:, None]
        return f + curl * jnp.zeros_like(R).at[i].add(t).at[j].add(-t)

    return Potential(name=f"force-only-lj+{curl}", cutoff=RC, direct_force_fn=forces,
                     neighbor_format=lj.neighbor_format)


def _numpy_asymmetry(pot: Potential, R, box, h=1e-5) -> float:
    """||H - H^T|| / ||H|| of H = -dF/dx by central differences, one displaced coordinate at a time."""
    R = np.asarray(R, dtype=np.float64)
    nb = pot.neighbors(np.asarray(box), skin=0.3, n_atoms=len(R)).allocate(jnp.asarray(R))
    f = jax.jit(lambda x: pot.forces(x, jnp.asarray(box), nb))
    n = R.size
    H = np.zeros((n, n))
    for k in range(n):
        d = np.zeros(n)
        d[k] = h
        fp = np.asarray(f(jnp.asarray((R.ravel() + d).reshape(R.shape)))).ravel()
        fm = np.asarray(f(jnp.asarray((R.ravel() - d).reshape(R.shape)))).ravel()
        H[:, k] = -(fp - fm) / (2 * h)
    return float(np.linalg.norm(H - H.T) / np.linalg.norm(H))


@pytest.mark.parametrize("curl", [0.0, 0.02])
def test_reported_asymmetry_matches_numpy_jacobian(curl):
    pot = _force_only(curl)
    assert not pot.conservative
    s = fcc(3, A0_LJ)
    R = np.asarray(s.positions) + np.random.default_rng(3).uniform(-0.02, 0.02, s.positions.shape)
    fc = ph.force_constants(pot, R, s.box, method="full", batch=108)
    ref = _numpy_asymmetry(pot, R, s.box)
    if curl == 0.0:
        # measured 1.2e-16 (column route) and 8e-11 (numpy FD, h = 1e-5)
        assert fc.asymmetry < 1e-12 and ref < 1e-9, (fc.asymmetry, ref)  # conservative forces
    else:
        assert fc.asymmetry > 1e-4
        assert abs(fc.asymmetry / ref - 1) < 1e-7, (fc.asymmetry, ref)  # measured 8.5e-4 vs 8.5e-4, rel 7e-10
