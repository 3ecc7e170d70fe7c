"""Spread for every reported number: sample statistics, block averages, bootstrap.

Every quantity mlffbench reports is ``{"value", "unit"}`` plus, where a spread exists,
``"std"`` (standard deviation of the samples, or the standard error of a time average),
``"n"`` (number of samples or blocks) and ``"ci95"`` ([lo, hi], 95 % interval of the value).
`quantity` builds that dict; the functions below compute the spread from what a workflow has
(committee members, an MD time series, resamplable data).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from scipy import special as _special  # not scipy.stats: its import costs ~0.5 s in every command


def quantity(value: float, unit: str, std: float | None = None, n: int | None = None,
             ci95: Sequence[float] | None = None, **extra: Any) -> dict:
    """{'value', 'unit'} plus 'std', 'n', 'ci95' when given, plus any extra keys."""
    out: dict = {"value": value, "unit": unit}
    if std is not None:
        out["std"] = float(std)
    if n is not None:
        out["n"] = int(n)
    if ci95 is not None:
        out["ci95"] = [float(ci95[0]), float(ci95[1])]
    out.update(extra)
    return out


def from_samples(samples: Sequence[float], unit: str, **extra: Any) -> dict:
    """Mean of independent samples (e.g. committee members) with std (ddof=1), n and a t-interval.

    One sample gives std 0 and no interval; identical samples give std 0 and a zero-width interval.
    Non-finite samples are dropped (and counted in 'n_nonfinite' when there are any).
    """
    x = np.asarray(samples, dtype=float).ravel()
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return quantity(float("nan"), unit, n=0, **extra)
    if finite.size < x.size:
        extra = {**extra, "n_nonfinite": int(x.size - finite.size)}
    if np.all(finite == finite[0]):  # identical members: exactly one member's value, no spread
        v = float(finite[0])
        ci = None if finite.size == 1 else (v, v)
        return quantity(v, unit, std=0.0, n=int(finite.size), ci95=ci, **extra)
    mean = float(finite.mean())
    std = float(finite.std(ddof=1))
    half = float(_special.stdtrit(finite.size - 1, 0.975) * std / np.sqrt(finite.size))  # = t.ppf
    return quantity(mean, unit, std=std, n=int(finite.size), ci95=(mean - half, mean + half), **extra)


def block_average(series: Sequence[float], n_blocks: int = 8) -> tuple[float, float, int]:
    """(mean, standard error, blocks) of a correlated time series by non-overlapping blocks.

    The series is cut into `n_blocks` equal blocks (the tail that does not fill a block is
    dropped); the standard error is std(block means, ddof=1)/sqrt(blocks). Fewer than 2 samples
    per block gives a NaN error.
    """
    x = np.asarray(series, dtype=float).ravel()
    n_blocks = int(min(n_blocks, x.size))
    if n_blocks < 2:
        return float(np.mean(x)) if x.size else float("nan"), float("nan"), n_blocks
    size = x.size // n_blocks
    means = x[: size * n_blocks].reshape(n_blocks, size).mean(axis=1)
    return float(x.mean()), float(means.std(ddof=1) / np.sqrt(n_blocks)), n_blocks


def bootstrap(statistic: Callable[[np.ndarray], float], data: np.ndarray, n_resamples: int = 200,
              seed: int = 0) -> tuple[float, float, tuple[float, float]]:
    """(statistic(data), bootstrap std, percentile 95 % interval) resampling `data` along axis 0."""
    data = np.asarray(data)
    rng = np.random.default_rng(seed)
    values = np.array([statistic(data[rng.integers(0, len(data), len(data))]) for _ in range(n_resamples)])
    values = values[np.isfinite(values)]
    point = float(statistic(data))
    if values.size < 2:
        return point, float("nan"), (float("nan"), float("nan"))
    return point, float(values.std(ddof=1)), (float(np.percentile(values, 2.5)),
                                               float(np.percentile(values, 97.5)))


# ----------------------------------------------------------------------------------------------
# Committee calibration: does the spread of the members track the true error?
# ----------------------------------------------------------------------------------------------
def committee_force_spread(member_forces: np.ndarray) -> np.ndarray:
    """RMS over atoms of the per-atom committee force spread, per configuration.

    member_forces: (K, C, N, 3) forces of K members at C configurations (any force unit).
    Returns (C,): sqrt(mean_i sum_a var_k F[k, c, i, a]) with the sample variance (ddof=1);
    zero for identical members. K < 2 gives NaN (no spread)."""
    F = np.asarray(member_forces, dtype=float)
    if F.shape[0] < 2:
        return np.full(F.shape[1], np.nan)
    D = F - F[:1]  # shift-invariant; identical members give exactly 0 (no round-off in the mean)
    return np.sqrt(D.var(axis=0, ddof=1).sum(axis=-1).mean(axis=-1))


def force_rms_error(forces: np.ndarray, true_forces: np.ndarray) -> np.ndarray:
    """RMS over atoms of |F - F_true| per configuration: (C, N, 3), (C, N, 3) -> (C,)."""
    d = np.asarray(forces, dtype=float) - np.asarray(true_forces, dtype=float)
    return np.sqrt((d ** 2).sum(axis=-1).mean(axis=-1))


def calibration(spread: Sequence[float], error: Sequence[float]) -> dict:
    """How well a committee's spread predicts its true error over C configurations.

    spread, error: (C,) per-configuration spread and true error (same unit).
    Returns {'ratio': spread/error per configuration (NaN where the error is 0), 'mean_ratio':
    mean of the finite ratios, 'spearman': rank correlation of spread and error (scipy.stats.
    spearmanr; None with fewer than 3 configurations or a constant series), 'spearman_p', 'n',
    'applicable': False with 'reason' when the spread or the error is zero everywhere (identical
    members, or a committee of the reference itself): then the statistic does not exist.
    A ratio of 1 is a calibrated committee, < 1 an over-confident one."""
    s, e = np.asarray(spread, dtype=float).ravel(), np.asarray(error, dtype=float).ravel()
    out: dict = {"n": int(s.size), "applicable": True, "reason": ""}
    if s.size == 0 or not np.any(s > 0):
        out.update(applicable=False, reason="zero committee spread everywhere (identical members)")
    elif not np.any(e > 0):
        out.update(applicable=False, reason="zero error everywhere (the committee reproduces the reference)")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(e > 0, s / np.where(e > 0, e, 1.0), np.nan)
    finite = ratio[np.isfinite(ratio)]
    out["ratio"] = [float(r) for r in ratio]
    out["mean_ratio"] = float(finite.mean()) if finite.size and out["applicable"] else None
    rho = p = None
    if out["applicable"] and s.size >= 3 and np.ptp(s) > 0 and np.ptp(e) > 0:
        from scipy import stats as _st

        r = _st.spearmanr(s, e)
        rho, p = float(r.statistic), float(r.pvalue)
    out["spearman"], out["spearman_p"] = rho, p
    return out
