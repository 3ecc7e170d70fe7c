"""Spectral energy density (SED) along the dispersion path from MD velocities.

For a wave vector q commensurate with the MD supercell and a harmonic polarisation vector e_qb
(from the same potential's dynamical matrix), the mode velocity is

    Qdot_qb(t) = sqrt(m / N) sum_j v_j(t) . conj(e_qb) exp(-i q . r_j^0)

and its power spectrum |FT[Qdot_qb]|^2 is a Lorentzian centred at the anharmonic frequency of
branch b at q, with full width at half maximum 1 / (2 pi lifetime) in ordinary frequency.
`peak_fit` fits that Lorentzian. The unprojected sum over polarisations is the SED map.

Units: q in 1/sigma (including 2 pi), time in tau, ordinary frequency nu in 1/tau.
"""

from __future__ import annotations

import math
from math import gcd

import numpy as np

from mlffbench.properties.phonons import FCC_POINTS


def commensurate_path(a: float, n_cells: int, labels=("G", "X", "W", "K", "G", "L")) -> dict:
    """q-points of an n x n x n conventional FCC supercell lying on the path (Cartesian, 1/sigma).

    Returns {'q': (nq, 3), 'distance': (nq,) |dq|/(2 pi) along the path, 'labels', 'ticks'}.
    Segment end points are commensurate for every n (even n needed for W and L: checked).
    """
    qs, dist, ticks = [], [], [0.0]
    total = 0.0
    for start, end in zip(labels[:-1], labels[1:]):
        m0 = FCC_POINTS[start] * n_cells
        m1 = FCC_POINTS[end] * n_cells
        if not (np.allclose(m0, np.round(m0)) and np.allclose(m1, np.round(m1))):
            raise ValueError(f"{start}-{end} end points are not commensurate with a {n_cells}^3 "
                             "supercell; use an even supercell size for the SED")
        d = np.round(m1 - m0).astype(int)
        steps = gcd(gcd(abs(d[0]), abs(d[1])), abs(d[2])) or 1
        seg_len = np.linalg.norm(m1 - m0) / (n_cells * a)
        for k in range(steps + 1):
            if qs and k == 0:
                continue  # the start equals the previous segment's end
            m = m0 + d * k / steps
            qs.append(2.0 * math.pi * m / (n_cells * a))
            dist.append(total + seg_len * k / steps)
        total += seg_len
        ticks.append(total)
    return {"q": np.array(qs), "distance": np.array(dist), "labels": list(labels), "ticks": ticks}


def mode_velocities(velocities: np.ndarray, sites: np.ndarray, q: np.ndarray,
                    eigvecs: np.ndarray | None = None, mass: float = 1.0) -> np.ndarray:
    """Projected mode velocities.

    Args:
        velocities: (S, [R,] N, 3); sites: (N, 3) equilibrium positions; q: (nq, 3).
        eigvecs: (nq, 3, 3) polarisation vectors (columns = branches) or None for the three
            Cartesian components (the unprojected SED).
    Returns:
        (S, [R,] nq, 3) complex.
    """
    phase = np.exp(-1j * sites @ q.T) * math.sqrt(mass / len(sites))  # (N, nq)
    vq = np.einsum("...nx,nq->...qx", velocities, phase)
    if eigvecs is None:
        return vq
    return np.einsum("...qx,qxb->...qb", vq, np.conj(eigvecs))


def power_spectrum(x: np.ndarray, dt: float, kind: str = "hann") -> tuple[np.ndarray, np.ndarray]:
    """Windowed periodogram over the time axis 0, averaged over a replica axis if present.

    x: (S, ...) complex. Returns nu (S//2+1,) >= 0 in 1/tau and power (S//2+1, ...) with the
    +nu and -nu halves added (a real vibration's energy appears at both signs)."""
    S = x.shape[0]
    if kind not in ("hann", "none"):
        raise ValueError(f"window must be 'hann' or 'none', got {kind!r}")
    w = 0.5 * (1 - np.cos(2 * math.pi * np.arange(S) / (S - 1))) if kind == "hann" else np.ones(S)
    xw = x * w.reshape((-1,) + (1,) * (x.ndim - 1))
    spec = np.fft.fft(xw, axis=0)
    p = np.abs(spec) ** 2 * dt / S
    nu = np.fft.fftfreq(S, d=dt)
    pos = nu >= 0
    half = p[pos].copy()
    neg = np.roll(p[::-1], 1, axis=0)[: half.shape[0]]  # power at -nu for each nu >= 0
    half[1:] += neg[1:]
    return nu[pos], half


def lorentzian(nu, centre, fwhm, height, base):
    return base + height / (1.0 + ((nu - centre) / (0.5 * fwhm)) ** 2)


def peak_fit(nu: np.ndarray, power: np.ndarray, guess: float, half_range: float) -> dict:
    """Fit a Lorentzian near `guess`; returns centre, fwhm, lifetime (tau) and fit status."""
    from scipy.optimize import curve_fit

    sel = (nu > guess - half_range) & (nu < guess + half_range)
    x, y = nu[sel], power[sel]
    if len(x) < 5 or not np.any(y > 0):
        return {"centre": float("nan"), "fwhm": float("nan"), "lifetime": float("nan"), "ok": False}
    i = int(np.argmax(y))
    p0 = [x[i], max(2.0 * (x[1] - x[0]), 0.05 * half_range), y[i], float(np.min(y))]
    try:
        popt, _ = curve_fit(lorentzian, x, y, p0=p0, maxfev=4000)
        centre, fwhm = float(popt[0]), abs(float(popt[1]))
        ok = bool(x[0] < centre < x[-1])
    except (RuntimeError, ValueError):
        centre, fwhm, ok = float(x[i]), float("nan"), False
    return {"centre": centre, "fwhm": fwhm,
            "lifetime": 1.0 / (2.0 * math.pi * fwhm) if fwhm and np.isfinite(fwhm) else float("nan"),
            "ok": ok}


def sed_peaks(v: np.ndarray, sites: np.ndarray, cp: dict, nu_qh: np.ndarray, vec_q: np.ndarray, dt_s: float,
              nu_top: float, kind: str = "hann") -> tuple[dict, tuple]:
    """Mode-projected SED peaks (Lorentzian fits) and the unprojected SED map.

    Args:
        v: velocities (S, R, N, 3) sampled every dt_s (tau); sites: (N, 3) lattice sites.
        cp: `commensurate_path` result; nu_qh: (nq, 3) harmonic frequencies (1/tau) at cp['q'];
            vec_q: (nq, 3, 3) harmonic polarisations; nu_top: highest harmonic frequency (1/tau).
    Returns:
        ({'q_distance_per_sigma', 'q_cartesian_per_sigma', 'peaks', 'frequency_resolution_reduced'},
         (cp, nu (1/tau), SED map (n_nu, nq))).
    """
    n_samples = v.shape[0]
    Q = mode_velocities(v, sites, cp["q"], vec_q)  # (S, R, nq, 3)
    nu_s, P = power_spectrum(Q, dt_s, kind)
    P = P.mean(axis=1)
    half = max(4.0 / (n_samples * dt_s), 0.06 * nu_top)
    peaks = []
    for iq in range(len(cp["q"])):
        for b in range(3):
            guess = float(nu_qh[iq, b])
            if guess < 0.05 * nu_top:  # acoustic modes at Gamma: nothing to fit
                fit = {"centre": float("nan"), "fwhm": float("nan"), "lifetime": float("nan"), "ok": False}
            else:
                fit = peak_fit(nu_s, P[:, iq, b], guess, half)
            peaks.append({"q_index": iq, "branch": b, "harmonic": guess, **fit})
    _, Pc = power_spectrum(mode_velocities(v, sites, cp["q"], None), dt_s, kind)
    Pc = Pc.sum(axis=-1).mean(axis=1)
    return ({"q_distance_per_sigma": cp["distance"], "q_cartesian_per_sigma": cp["q"], "peaks": peaks,
             "frequency_resolution_reduced": 1.0 / (n_samples * dt_s)}, (cp, nu_s, Pc))
