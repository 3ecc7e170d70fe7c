"""General Hessian (properties.hessian): a potential without autodiff gets central finite
differences of its forces over all 3N coordinates, and the harmonic-TST prefactor from them
matches the one from exact autodiff Hessians (LJ, 2x2x2 vacancy cell: minimum and saddle)."""

import dataclasses

import numpy as np
import pytest

import mlffbench  # noqa: F401  (x64)
from mlffbench.config import validate
from mlffbench.potentials import Capabilities, load_potential
from mlffbench.properties.hessian import AUTODIFF, FINITE_DIFFERENCE, default_step, hessian
from mlffbench.properties.rates import harmonic_tst

LJ_A0 = 1.5496034241  # sigma, lj/cut/shift rc 2.5 (tests/test_foundation_lj.py checks it)


def _fd_only(potential):
    """The same potential, declared without autodiff (as an ASE calculator would be)."""
    return dataclasses.replace(potential, capabilities=Capabilities(energy=True, stress=True, autodiff=False,
                                                                    jit=True, batched=True))


@pytest.fixture(scope="module")
def saddle():
    from mlffbench.workflows.neb import NebConfig, compute_barrier

    cfg = validate(NebConfig, {"units": {"system": "lj"}, "system": {"supercell": 2, "lattice_constant": LJ_A0},
                               "string": {"n_images": 5, "tol": 1e-4}, "htst": {"temperatures": [0.5]}})
    lj = load_potential("lj")
    return lj, compute_barrier(lj, cfg)


def test_finite_difference_hessian_matches_autodiff(saddle):
    lj, out = saddle
    spec = lj.neighbors(out["box"], skin=0.5, n_atoms=out["n_atoms"])
    H_ad = hessian(lj, out["R_saddle"], out["box"], spec)
    H_fd = hessian(_fd_only(lj), out["R_saddle"], out["box"], spec)
    assert H_ad.method == AUTODIFF and H_ad.step is None
    assert H_fd.method == FINITE_DIFFERENCE and H_fd.step == default_step(lj)
    assert "finite-difference" in H_fd.describe()
    scale = np.max(np.abs(H_ad.matrix))
    # measured: 9e-10 of the largest element (h = 6e-6 sigma), asymmetry 1e-16 (autodiff) and
    # 2e-10 (finite differences); bounds ~10x that
    assert np.max(np.abs(H_fd.matrix - H_ad.matrix)) < 1e-8 * scale
    assert H_ad.asymmetry < 1e-14 and H_fd.asymmetry < 2e-9


def test_htst_prefactor_from_finite_differences(saddle):
    lj, out = saddle
    assert out["string"].converged and out["htst_hessian"]["method"] == AUTODIFF
    h_ad = out["htst"]
    h_fd, H_min, H_sad = harmonic_tst(_fd_only(lj), out["R_initial"], out["R_saddle"], out["box"])
    assert H_min.method == H_sad.method == FINITE_DIFFERENCE
    assert h_ad.n_negative_saddle == h_fd.n_negative_saddle == 1
    assert h_ad.n_negative_min == h_fd.n_negative_min == 0
    # measured: 3e-10 relative; 1e-4 is the acceptance bound of the issue (an ASE calculator's
    # float64 forces carry more noise than jax-md's)
    np.testing.assert_allclose(h_fd.prefactor, h_ad.prefactor, rtol=1e-4)
