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


@pytest.mark.parametrize("n_atoms", [90, 89])
def test_rdf_in_small_blocks_of_a_triclinic_cell_matches_ase_and_counts_pool_across_frames(n_atoms):
    """Blocks of a few rows (chunk_pairs far below N^2 / 2, so many block boundaries), a general
    box, and two frames counted apart and pooled: each frame's g equals ASE's, and the pooled
    counts give the two-frame g. N even and odd: the counter pairs atom i with i + 1 ... i + N // 2
    (mod N), and for even N the offset N / 2 must reach each pair once, not twice."""
    from ase import Atoms
    from ase.geometry.rdf import get_rdf

    from mlffbench.neighbors import perpendicular_widths
    from mlffbench.properties.structure import rdf_from_counts, rdf_pair_counts

    box = np.array([[6.0, 1.0, 0.5], [0.0, 5.5, 0.8], [0.0, 0.0, 6.2]])  # columns = lattice vectors
    rng = np.random.default_rng(3)
    n = n_atoms
    X = rng.uniform(size=(2, n, 3)) @ box.T
    r_max = 0.49 * float(np.min(perpendicular_widths(box)))
    counts = [rdf_pair_counts(x[None], box, r_max, 20, chunk_pairs=7 * (n // 2)) for x in X]  # 7 rows a block
    g_ase = [get_rdf(Atoms(f"Ar{n}", positions=x, cell=box.T, pbc=True), r_max, 20, no_dists=True) for x in X]
    for c, g in zip(counts, g_ase):  # ASE normalises by N^2 pairs, we by N (N - 1)
        np.testing.assert_allclose(rdf_from_counts(c, 1, n, box, r_max)[1] * (n - 1) / n, g, rtol=1e-10, atol=1e-12)
    pooled = rdf_from_counts(counts[0] + counts[1], 2, n, box, r_max)[1]  # same N and box: the frame mean
    np.testing.assert_allclose(pooled * (n - 1) / n, np.mean(g_ase, axis=0), rtol=1e-10, atol=1e-12)
    # both frames in one call: the per-frame loop against ASE's frame mean, not against `pooled`
    np.testing.assert_allclose(rdf(X, box, r_max, 20)[1] * (n - 1) / n, np.mean(g_ase, axis=0), rtol=1e-10, atol=1e-12)
    assert int(np.sum(counts[0])) > 0


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
