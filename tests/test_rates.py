"""Poisson intervals, Arrhenius maximum-likelihood fit and Vineyard prefactor against
independent references (scipy, synthetic data with known parameters, an analytic harmonic model)."""

import numpy as np
import pytest
from scipy import stats

import mlffbench  # noqa: F401
from mlffbench.properties.rates import (arrhenius_bootstrap, arrhenius_fit, poisson_interval, rate_with_interval,
                                       vineyard_prefactor)


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


@pytest.mark.parametrize("n", [0, 1, 2, 5, 10, 37, 200])
def test_poisson_interval_is_the_exact_garwood_interval(n):
    """The exact (Garwood 1936) limits are defined by the Poisson tails: P(X >= n | lo) = 2.5 % and
    P(X <= n | hi) = 2.5 %. Checked with scipy.stats.poisson (not the chi2 identity the code uses)
    and against the tabulated values of Gehrels, ApJ 303, 336 (1986), Tables 1-2 (S = 1.960)."""
    lo, hi = poisson_interval(n)
    np.testing.assert_allclose(stats.poisson.cdf(n, hi), 0.025, rtol=1e-9)
    if n == 0:
        assert lo == 0.0
    else:
        np.testing.assert_allclose(stats.poisson.sf(n - 1, lo), 0.025, rtol=1e-9)
    table = {0: (0.0, 3.689), 1: (0.0253, 5.572), 2: (0.242, 7.225), 5: (1.624, 11.668), 10: (4.795, 18.390)}
    if n in table:
        np.testing.assert_allclose((lo, hi), table[n], atol=1.5e-3)


def test_rate_std_is_poisson():
    r = rate_with_interval(16, 4.0)
    assert r["rate_std"] == 1.0  # sqrt(16) / 4


def test_arrhenius_bootstrap_covers_the_truth_and_matches_fisher_errors():
    """Parametric bootstrap of the Arrhenius fit on synthetic counts with known (E, nu0): its 95 %
    intervals cover the true values in ~95 % of datasets, and with many hops its std agrees with
    the Fisher standard error (where the likelihood is nearly Gaussian)."""
    E_true, nu_true = 5.9, 3.0
    kT = np.array([0.6, 0.7, 0.8, 0.9])
    times = np.array([2e5, 4e4, 1e4, 5e3])
    mu = times * nu_true * np.exp(-E_true / kT)
    rng = np.random.default_rng(3)
    cover_E = cover_nu = 0
    n_sets = 30
    for k in range(n_sets):
        n = rng.poisson(mu)
        b = arrhenius_bootstrap(kT, n, times, n_resamples=100, seed=k)
        cover_E += b.energy_ci95[0] <= E_true <= b.energy_ci95[1]
        cover_nu += b.nu0_ci95[0] <= nu_true <= b.nu0_ci95[1]
    assert cover_E / n_sets >= 0.8 and cover_nu / n_sets >= 0.8, (cover_E, cover_nu)
    many = np.round(mu * 50)
    b = arrhenius_bootstrap(kT, many, times * 50, n_resamples=200, seed=0)
    fit = arrhenius_fit(kT, many, times * 50)
    assert b.n_failed == 0
    np.testing.assert_allclose(b.energy_std, fit.energy_err, rtol=0.2)
    assert b.energy_ci95[0] < fit.energy < b.energy_ci95[1]
