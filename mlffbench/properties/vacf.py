"""Velocity autocorrelation and the vibrational density of states at finite temperature.

The classical vibrational DOS is the cosine transform of the velocity autocorrelation function
(VACF). For a harmonic crystal in equilibrium every normal mode carries kT/2 of kinetic energy,
so the normalised VACF per degree of freedom is C(t)/C(0) = (1/3N) sum_k cos(omega_k t): the
reference spectrum `harmonic_vdos` goes through *the same* window and transform, so a harmonic
crystal gives exactly the harmonic line shape and any difference is anharmonicity (or noise).

Units: time in tau, ordinary frequency nu = omega / 2 pi in 1/tau, velocities in sigma/tau.
"""

from __future__ import annotations

import math

import numpy as np

WINDOWS = ("hann", "none")


def vacf(velocities: np.ndarray, max_lag: int, masses: float | np.ndarray = 1.0) -> np.ndarray:
    """Mass-weighted VACF <m v(0).v(t)> averaged over time origins, atoms and replicas.

    Args:
        velocities: (S, N, 3) or (S, n_rep, N, 3), samples equally spaced in time.
        max_lag: largest lag in samples (< S).
    Returns:
        C (max_lag + 1,), per degree of freedom (C(0) = <m v_x^2> = kT for an equilibrium run).
    """
    v = np.asarray(velocities, np.float64)
    S = v.shape[0]
    if max_lag >= S:
        raise ValueError(f"max_lag ({max_lag}) must be smaller than the number of samples ({S})")
    m = np.asarray(masses, np.float64)
    v = v * np.sqrt(m.reshape(-1, 1) if m.ndim else m)  # per-atom masses broadcast over (N, 3)
    v = v.reshape(S, -1)  # every (replica, atom, component) is one degree of freedom
    n_fft = 1 << int(math.ceil(math.log2(2 * S)))
    spec = np.fft.rfft(v, n=n_fft, axis=0)
    acf = np.fft.irfft(spec * np.conj(spec), n=n_fft, axis=0)[: max_lag + 1]  # (L, dof)
    acf = acf / (S - np.arange(max_lag + 1))[:, None]
    return np.mean(acf, axis=1)


def window(n: int, kind: str = "hann") -> np.ndarray:
    """One-sided lag window w(t_k), k = 0..n-1, w(0) = 1, w -> 0 at the last lag ('hann')."""
    if kind not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {kind!r}")
    if kind == "none":
        return np.ones(n)
    t = np.arange(n) / max(n - 1, 1)
    return 0.5 * (1.0 + np.cos(math.pi * t))


def cosine_transform(c: np.ndarray, dt: float, nu: np.ndarray, kind: str = "hann") -> np.ndarray:
    """g(nu) = 2 int_0^T w(t) c(t) cos(2 pi nu t) dt (trapezoid on the sample grid)."""
    w = window(len(c), kind) * np.asarray(c, np.float64)
    w[0] *= 0.5
    w[-1] *= 0.5
    t = np.arange(len(c)) * dt
    return 2.0 * dt * np.cos(2.0 * math.pi * np.outer(nu, t)) @ w


def vdos(c: np.ndarray, dt: float, nu: np.ndarray, n_modes: float, kind: str = "hann") -> np.ndarray:
    """Vibrational DOS on the grid `nu` (1/tau) from a VACF sampled every `dt` (tau), normalised
    so that its integral over nu >= 0 equals `n_modes` (3N for the simulated cell)."""
    g = cosine_transform(c, dt, nu, kind)
    area = np.trapezoid(g, nu)
    if not area > 0:
        raise ValueError("the VACF spectrum has no positive weight on the frequency grid")
    return g * n_modes / area


def harmonic_vacf(freqs_nu: np.ndarray, n_lags: int, dt: float) -> np.ndarray:
    """Normalised VACF of a classical harmonic crystal, (1/M) sum_k cos(2 pi nu_k t), (n_lags,).
    Imaginary (negative) and zero modes carry no oscillation and are dropped from the sum."""
    f = np.asarray(freqs_nu, np.float64).reshape(-1)
    f = f[f > 1e-8 * max(f.max(), 1e-300)]
    t = np.arange(n_lags) * dt
    return np.mean(np.cos(2.0 * math.pi * np.outer(t, f)), axis=1)


def harmonic_vdos(freqs_nu: np.ndarray, n_lags: int, dt: float, nu: np.ndarray, n_modes: float,
                  kind: str = "hann") -> np.ndarray:
    """The harmonic DOS seen through the same lag window and transform as `vdos`."""
    return vdos(harmonic_vacf(freqs_nu, n_lags, dt), dt, nu, n_modes, kind)


def lindemann_ratio(positions: np.ndarray, sites: np.ndarray, box: np.ndarray, nn_distance: float) -> float:
    """sqrt(<|r - r_site|^2>) / d_nn over samples, replicas and atoms (positions (S, [R,] N, 3)).

    Displacements use the minimum image, so a value near or above ~0.15-0.2 means the crystal
    has melted or atoms hopped (Lindemann criterion)."""
    from mlffbench.structures import minimum_image

    d = minimum_image(np.asarray(positions) - sites, box)
    return float(np.sqrt(np.mean(np.sum(d * d, axis=-1))) / nn_distance)
