"""Committee calibration statistic (mlffbench.stats) on synthetic committees whose answer is known."""

from __future__ import annotations

import numpy as np

from mlffbench.stats import calibration, committee_force_spread, force_rms_error


def synthetic(a, b, K=3, N=5, seed=0):
    """Members F0 + t_k a_c x_hat with t = (-1, 0, 1) (sample variance a_c^2 along x, so spread = a_c
    exactly) and truth F0 + b_c y_hat (the member mean is F0, so the error is b_c exactly)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    C = a.size
    F0 = rng.normal(size=(C, N, 3))
    t = np.linspace(-1.0, 1.0, K) / np.sqrt(np.var(np.linspace(-1.0, 1.0, K), ddof=1))
    members = F0[None] + t[:, None, None, None] * a[None, :, None, None] * np.array([1.0, 0, 0])
    truth = F0 + b[:, None, None] * np.array([0, 1.0, 0])
    return members, truth


def test_spread_and_error_are_the_constructed_ones():
    a, b = [0.1, 0.2, 0.4, 0.8], [1.0, 2.0, 3.0, 5.0]
    members, truth = synthetic(a, b)
    np.testing.assert_allclose(committee_force_spread(members), a, rtol=1e-12)
    np.testing.assert_allclose(force_rms_error(members.mean(axis=0), truth), b, rtol=1e-12)


def test_spread_proportional_to_error_gives_the_factor_and_rank_correlation_one():
    b = np.array([0.3, 1.0, 0.2, 2.5, 0.7, 1.4])
    members, truth = synthetic(0.5 * b, b)
    c = calibration(committee_force_spread(members), force_rms_error(members.mean(axis=0), truth))
    assert c["applicable"] and c["n"] == 6
    np.testing.assert_allclose(c["ratio"], 0.5, rtol=1e-12)
    assert abs(c["mean_ratio"] - 0.5) < 1e-12 and abs(c["spearman"] - 1.0) < 1e-12
    # monotone but not proportional: still rank correlation 1; reversed order: -1
    assert abs(calibration(b ** 2, b)["spearman"] - 1.0) < 1e-12
    assert abs(calibration(1.0 / b, b)["spearman"] + 1.0) < 1e-12


def test_independent_noise_has_no_rank_correlation():
    rng = np.random.default_rng(3)
    s, e = rng.lognormal(size=2000), rng.lognormal(size=2000)
    c = calibration(s, e)
    assert abs(c["spearman"]) < 4 / np.sqrt(2000)  # 4 standard errors of rho under independence
    # cross-check with an independent rank computation (Pearson of the ranks)
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    assert abs(c["spearman"] - np.corrcoef(rank(s), rank(e))[0, 1]) < 1e-12


def test_identical_members_give_zero_spread_and_no_statistic():
    members, truth = synthetic(np.zeros(4), [1.0, 2.0, 3.0, 4.0])
    s = committee_force_spread(members)
    assert np.all(s == 0.0)
    c = calibration(s, force_rms_error(members.mean(axis=0), truth))
    assert not c["applicable"] and "identical" in c["reason"]
    assert c["mean_ratio"] is None and c["spearman"] is None
    assert not calibration([0.1, 0.2, 0.3], [0.0, 0.0, 0.0])["applicable"]
    assert np.all(np.isnan(committee_force_spread(members[:1])))  # one member: no spread
