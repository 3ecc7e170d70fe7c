"""Rates: harmonic transition-state theory (Vineyard), Poisson intervals, Arrhenius fits.

Units: reduced unless said otherwise (energies epsilon, kT epsilon, frequencies 1/tau as
ordinary frequencies nu = omega / 2 pi, rates 1/tau). Masses are 1 (argon units) unless given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special  # chi2 quantiles without importing scipy.stats (~0.5 s per process)

from mlffbench.properties.hessian import Hessian, hessian

# ----------------------------------------------------------------------------------------------
# Harmonic TST
# ----------------------------------------------------------------------------------------------


@dataclass
class HarmonicTST:
    """Vineyard prefactor and its ingredients (reduced units).

    prefactor: nu* = prod nu_min / prod' nu_saddle (1/tau), translations removed.
    n_negative_saddle: unstable modes at the saddle (1 for a first-order saddle).
    n_negative_min: unstable modes at the minimum (0 for a true minimum).
    """

    prefactor: float
    n_negative_saddle: int
    n_negative_min: int
    imaginary_frequency: float
    lowest_min_frequency: float
    eig_min: np.ndarray
    eig_saddle: np.ndarray
    n_zero: int

    @property
    def why_not_applicable(self) -> str:
        """'' when Vineyard's formula applies, else why not (one line)."""
        if self.n_negative_saddle == 1 and self.n_negative_min == 0:
            return ""
        return (f"the climbing image is not a first-order saddle ({self.n_negative_saddle} unstable modes, 1 "
                f"needed; {self.n_negative_min} at the minimum, 0 needed): the barrier top is not a smooth "
                "maximum (e.g. a cusp), so Vineyard's formula does not apply")

    def rate(self, barrier: float, kT) -> np.ndarray:
        """Single-hop rate k(T) = nu* exp(-E_m / kT), 1/tau."""
        return self.prefactor * np.exp(-barrier / np.asarray(kT, dtype=float))


def vineyard_prefactor(H_min: np.ndarray, H_saddle: np.ndarray, mass: float = 1.0,
                       n_zero: int = 3) -> HarmonicTST:
    """Vineyard's harmonic-TST prefactor from the Hessians at the minimum and the saddle.

    nu* = (1 / 2 pi) * sqrt(prod lambda_min / prod' |lambda_saddle|), the products over the
    3N - n_zero non-zero modes at the minimum and the 3N - n_zero - 1 stable modes at the
    saddle; the n_zero = 3 modes closest to zero (uniform translations of a periodic cell) are
    removed from both. Computed from sums of logarithms (no overflow). Frequencies are ordinary
    (nu = sqrt(lambda / m) / 2 pi).
    """
    lm = np.linalg.eigvalsh(np.asarray(H_min) / mass)
    ls = np.linalg.eigvalsh(np.asarray(H_saddle) / mass)
    keep_m = np.sort(np.argsort(np.abs(lm))[n_zero:])
    keep_s = np.sort(np.argsort(np.abs(ls))[n_zero:])
    lm_k, ls_k = lm[keep_m], ls[keep_s]
    neg_m = int(np.sum(lm_k < 0))
    neg_s = int(np.sum(ls_k < 0))
    stable_s = ls_k[ls_k > 0]
    if neg_m == 0 and neg_s == 1:
        log_ratio = 0.5 * (np.sum(np.log(lm_k)) - np.sum(np.log(stable_s)))
        pref = float(np.exp(log_ratio) / (2 * np.pi))
    else:
        pref = float("nan")
    imag = float(np.sqrt(-ls_k.min()) / (2 * np.pi)) if neg_s >= 1 else float("nan")
    low = float(np.sqrt(max(lm_k.min(), 0.0)) / (2 * np.pi))
    return HarmonicTST(prefactor=pref, n_negative_saddle=neg_s, n_negative_min=neg_m,
                       imaginary_frequency=imag, lowest_min_frequency=low, eig_min=lm, eig_saddle=ls,
                       n_zero=n_zero)


def harmonic_tst(potential, R_min, R_saddle, box, skin: float = 0.5,
                 step: float | None = None) -> tuple[HarmonicTST, Hessian, Hessian]:
    """Vineyard's harmonic TST between a minimum R_min and a saddle R_saddle (N, 3) of `potential`
    in `box`, from `properties.hessian.hessian` at each (autodiff where the potential allows it,
    central finite differences of forces with `step` sigma otherwise).

    Returns (HarmonicTST, Hessian at the minimum, Hessian at the saddle); the Hessians say how
    they were made.
    """
    spec = potential.neighbors(np.asarray(box, dtype=np.float64), skin=skin, n_atoms=len(R_min))
    H_min = hessian(potential, R_min, box, spec, step=step)
    H_sad = hessian(potential, R_saddle, box, spec, step=step)
    return vineyard_prefactor(H_min.matrix, H_sad.matrix), H_min, H_sad


# ----------------------------------------------------------------------------------------------
# Poisson statistics and Arrhenius fits
# ----------------------------------------------------------------------------------------------


def poisson_interval(n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) two-sided interval for a Poisson mean given n observed events."""
    alpha = 1.0 - confidence
    # chi2.ppf(q, 2 k) / 2 = gammaincinv(k, q), which is how scipy.stats computes chi2.ppf
    lo = 0.0 if n == 0 else special.gammaincinv(n, alpha / 2)
    hi = special.gammaincinv(n + 1, 1 - alpha / 2)
    return float(lo), float(hi)


def rate_with_interval(hops: int, time: float, confidence: float = 0.95) -> dict:
    """Rate = hops / time with the exact Poisson interval and the Poisson standard error
    sqrt(hops) / time (same units as 1/time)."""
    lo, hi = poisson_interval(int(hops), confidence)
    t = max(float(time), 1e-300)
    return {"hops": int(hops), "time": float(time), "rate": hops / t, "rate_std": float(np.sqrt(hops)) / t,
            "rate_low": lo / t, "rate_high": hi / t, "confidence": confidence}


@dataclass
class ArrheniusFit:
    """Gamma(T) = nu0 exp(-E / kT) fitted to Poisson counts (maximum likelihood).

    energy, energy_err: E and its standard error (epsilon); nu0, log_nu0_err: prefactor (1/tau)
    and the standard error of ln nu0; cov: covariance of (ln nu0, E); deviance: Poisson
    deviance (goodness of fit, ~ chi2 with n_points - 2 dof).
    """

    energy: float
    energy_err: float
    nu0: float
    log_nu0_err: float
    cov: np.ndarray
    deviance: float
    n_points: int
    converged: bool

    def rate(self, kT) -> np.ndarray:
        return self.nu0 * np.exp(-self.energy / np.asarray(kT, dtype=float))


def arrhenius_fit(kT, hops, times, max_iter: int = 100) -> ArrheniusFit:
    """Poisson maximum-likelihood Arrhenius fit: hops_i ~ Poisson(t_i nu0 exp(-E / kT_i)).

    A log-linear Poisson regression in (ln nu0, E), solved by Newton's method (the
    log-likelihood is concave); standard errors from the inverse Fisher information. Unlike a
    least-squares fit of ln(rate) it handles temperatures with zero or few hops.
    Needs at least two temperatures and at least one hop in total.
    """
    kT = np.asarray(kT, dtype=float)
    n = np.asarray(hops, dtype=float)
    t = np.asarray(times, dtype=float)
    if len(kT) < 2 or len(np.unique(kT)) < 2:
        raise ValueError("an Arrhenius fit needs at least two different temperatures")
    if n.sum() < 1:
        raise ValueError("an Arrhenius fit needs at least one hop")
    Xd = np.stack([np.ones_like(kT), -1.0 / kT], axis=1)
    # start from a weighted least-squares fit of ln((n + 0.5) / t)
    y = np.log((n + 0.5) / t)
    w = n + 0.5
    beta = np.linalg.solve(Xd.T @ (w[:, None] * Xd), Xd.T @ (w * y))
    converged = False
    for _ in range(max_iter):
        mu = t * np.exp(Xd @ beta)
        grad = Xd.T @ (n - mu)
        info = Xd.T @ (mu[:, None] * Xd)
        step = np.linalg.solve(info, grad)
        # damp steps that would overflow the exponent
        scale = min(1.0, 5.0 / max(np.max(np.abs(Xd @ step)), 1e-300))
        beta = beta + scale * step
        if np.max(np.abs(step)) < 1e-12 * (1 + np.max(np.abs(beta))):
            converged = True
            break
    mu = t * np.exp(Xd @ beta)
    info = Xd.T @ (mu[:, None] * Xd)
    cov = np.linalg.inv(info)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = 2.0 * np.sum(np.where(n > 0, n * np.log(n / mu), 0.0) - (n - mu))
    return ArrheniusFit(energy=float(beta[1]), energy_err=float(np.sqrt(cov[1, 1])),
                        nu0=float(np.exp(beta[0])), log_nu0_err=float(np.sqrt(cov[0, 0])), cov=cov,
                        deviance=float(dev), n_points=len(kT), converged=converged)


@dataclass
class ArrheniusBootstrap:
    """Parametric-bootstrap spread of an Arrhenius fit (reduced units).

    energy_std, energy_ci95: std and percentile 95 % interval of E (epsilon); nu0_std, nu0_ci95:
    the same for nu0 (1/tau); n_resamples: resamples drawn; n_failed: resamples without a finite
    fit (no hop at all, or hops at one temperature only: the likelihood has no maximum), left out
    of the spread.
    """

    energy_std: float
    energy_ci95: tuple[float, float]
    nu0_std: float
    nu0_ci95: tuple[float, float]
    n_resamples: int
    n_failed: int


def arrhenius_bootstrap(kT, hops, times, n_resamples: int = 1000, seed: int = 0) -> ArrheniusBootstrap:
    """Spread of `arrhenius_fit` by a parametric bootstrap: counts redrawn as
    Poisson(t_i nu0 exp(-E / kT_i)) at the fitted (nu0, E), each resample refitted.

    Unlike the Fisher standard errors of `ArrheniusFit` (a quadratic approximation of the
    log-likelihood), this holds for the few-hop counts of short MD runs, where the likelihood is
    skewed. Draws come from `numpy.random.default_rng(seed)`.
    """
    kT = np.asarray(kT, dtype=float)
    t = np.asarray(times, dtype=float)
    fit = arrhenius_fit(kT, hops, t)
    mu = t * fit.rate(kT)
    rng = np.random.default_rng(seed)
    E, nu = [], []
    for _ in range(int(n_resamples)):
        n = rng.poisson(mu)
        if np.count_nonzero(n) < 2:  # no maximum of the likelihood: E runs off to +-infinity
            continue
        f = arrhenius_fit(kT, n, t)
        if f.converged and np.isfinite(f.energy) and np.isfinite(f.nu0):
            E.append(f.energy)
            nu.append(f.nu0)
    E, nu = np.asarray(E), np.asarray(nu)
    failed = int(n_resamples) - len(E)
    if len(E) < 2:
        nan2 = (float("nan"), float("nan"))
        return ArrheniusBootstrap(float("nan"), nan2, float("nan"), nan2, int(n_resamples), failed)
    pct = lambda x: (float(np.percentile(x, 2.5)), float(np.percentile(x, 97.5)))  # noqa: E731
    return ArrheniusBootstrap(energy_std=float(E.std(ddof=1)), energy_ci95=pct(E), nu0_std=float(nu.std(ddof=1)),
                              nu0_ci95=pct(nu), n_resamples=int(n_resamples), n_failed=failed)
