"""Spread statistics (mlffbench.stats) and committee aggregation against scipy and hand values."""

import numpy as np
import pytest
from scipy import stats as st

from mlffbench.benchmarks.runner import committee_metrics
from mlffbench.stats import block_average, bootstrap, from_samples, quantity


def test_from_samples_matches_scipy_t_interval():
    x = [1.0, 2.0, 4.0, 7.0]
    q = from_samples(x, "eV")
    lo, hi = st.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=st.sem(x))
    assert q["value"] == pytest.approx(3.5) and q["unit"] == "eV" and q["n"] == 4
    assert q["std"] == pytest.approx(np.sqrt(((np.array(x) - 3.5) ** 2).sum() / 3))
    assert q["ci95"] == pytest.approx([lo, hi])


def test_identical_samples_have_zero_spread_and_nan_is_dropped():
    q = from_samples([0.25, 0.25, 0.25], "1")
    assert q["std"] == 0.0 and q["ci95"] == [0.25, 0.25]
    q = from_samples([1.0, float("nan"), 3.0], "1")
    assert q["n"] == 2 and q["n_nonfinite"] == 1 and q["value"] == 2.0
    assert from_samples([5.0], "K") == {"value": 5.0, "unit": "K", "std": 0.0, "n": 1}
    assert quantity(1.0, "Å") == {"value": 1.0, "unit": "Å"}


def test_block_average_standard_error_of_white_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, 64_000)
    mean, err, blocks = block_average(x, 16)
    assert blocks == 16 and abs(mean - 3.0) < 4 * 2.0 / np.sqrt(x.size)
    # white noise: the block standard error estimates sigma/sqrt(N) (chi distribution with 15 dof)
    assert 0.6 < err / (2.0 / np.sqrt(x.size)) < 1.4


def test_block_average_sees_correlation_that_the_naive_error_misses():
    rng = np.random.default_rng(1)
    x = np.repeat(rng.normal(0.0, 1.0, 400), 100)  # 400 independent values, each held 100 samples
    _, err, _ = block_average(x, 20)
    naive = x.std() / np.sqrt(x.size)
    assert err > 5 * naive  # the true error is 1/sqrt(400) = 0.05, the naive one 0.005
    assert 0.025 < err < 0.1


def test_bootstrap_of_the_mean_matches_the_standard_error():
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 1.0, 400)
    point, std, (lo, hi) = bootstrap(np.mean, x, n_resamples=400, seed=3)
    assert point == pytest.approx(x.mean())
    assert std == pytest.approx(x.std(ddof=1) / 20.0, rel=0.2)
    assert lo < point < hi


def test_committee_metrics_mean_spread_and_identical_members():
    per_member = [{"err": {"value": v, "unit": "1"}} for v in (0.1, 0.3, 0.2)]
    m = committee_metrics(per_member)["err"]
    assert m["value"] == pytest.approx(0.2) and m["std"] == pytest.approx(0.1) and m["n"] == 3
    assert m["members"] == [0.1, 0.3, 0.2] and m["exceeds_spread"] is True
    same = committee_metrics([{"err": {"value": 0.2, "unit": "1"}}] * 3)["err"]
    assert same["std"] == 0.0 and same["value"] == 0.2  # scores like a single member
    noisy = committee_metrics([{"err": {"value": v, "unit": "1"}} for v in (-0.5, 0.5, 0.1)])["err"]
    assert noisy["exceeds_spread"] is False
