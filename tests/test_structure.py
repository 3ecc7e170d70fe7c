"""RDF / MSD / diffusion checks against independent references (ASE, brute force, analytic)."""

import numpy as np
import pytest

import mlffbench  # noqa: F401  (x64)
from mlffbench.properties.structure import diffusion_coefficient, msd, rdf, rdf_distance, unwrap


def test_rdf_matches_ase():
    from ase import Atoms
    from ase.geometry.rdf import get_rdf

    rng = np.random.default_rng(0)
    L = 6.0
    R = rng.uniform(0, L, size=(120, 3))
    atoms = Atoms("Ar120", positions=R, cell=np.eye(3) * L, pbc=True)
    g_ase, r_ase = get_rdf(atoms, 2.9, 29)
    r, g = rdf(R[None], np.eye(3) * L, 2.9, 29)
    np.testing.assert_allclose(r, r_ase, atol=1e-12)
    # ASE normalises by N^2 pairs, we by N (N - 1) (so that g -> 1 exactly for an ideal gas)
    np.testing.assert_allclose(g * 119 / 120, g_ase, rtol=1e-10, atol=1e-12)


def test_rdf_ideal_gas_is_one_and_refuses_large_rmax():
    rng = np.random.default_rng(1)
    R = rng.uniform(0, 5.0, size=(200, 100, 3))
    r, g = rdf(R, np.eye(3) * 5.0, 2.5, 10)
    np.testing.assert_allclose(g[2:], 1.0, atol=0.03)
    assert rdf_distance(r, g, g) == 0.0
    with pytest.raises(ValueError):
        rdf(R, np.eye(3) * 5.0, 2.6, 10)


def test_unwrap_and_msd_against_brute_force():
    rng = np.random.default_rng(2)
    L = 3.0
    steps = rng.normal(scale=0.2, size=(60, 7, 3))
    true = np.cumsum(steps, axis=0)
    wrapped = np.mod(true, L)
    unw = unwrap(wrapped, np.eye(3) * L)
    np.testing.assert_allclose(unw - unw[0], true - true[0], atol=1e-12)
    F = true.shape[0]
    brute = np.array([np.mean(np.sum((true[k:] - true[:F - k]) ** 2, axis=-1)) for k in range(F)])
    np.testing.assert_allclose(msd(true), brute, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(msd(true, origins="first"), np.mean(np.sum((true - true[0]) ** 2, -1), 1))


def test_diffusion_of_random_walk():
    # Brownian motion with D = 0.5: each step has variance 2 D dt per coordinate
    rng = np.random.default_rng(3)
    D, dt = 0.5, 0.01
    x = np.cumsum(rng.normal(scale=np.sqrt(2 * D * dt), size=(400, 500, 3)), axis=0)
    t = np.arange(400) * dt
    assert diffusion_coefficient(t, msd(x)) == pytest.approx(D, rel=0.05)
