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
from scipy import stats as _st


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
    half = float(_st.t.ppf(0.975, finite.size - 1) * std / np.sqrt(finite.size))
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
