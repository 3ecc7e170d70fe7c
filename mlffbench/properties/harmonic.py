"""Classical harmonic-crystal states: normal-mode samples with exactly kT per mode.

Units: reduced (sigma, epsilon, m, tau); Hessian in epsilon/sigma^2, kT in epsilon.
"""

from __future__ import annotations

import math

import numpy as np

TWO_PI = 2.0 * math.pi


def harmonic_sample(hessian: np.ndarray, kT: float, n_samples: int, seed: int,
                    mass: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Displacements and velocities (n_samples, N, 3) with exactly kT in every normal mode.

    Each mode gets amplitude sqrt(2 kT) / omega_k and a random phase, so the mode energies are
    equipartitioned in every replica (Maxwell-Boltzmann draws would give each mode an
    exponentially distributed energy, which in a nearly harmonic crystal never re-equilibrates
    and shows up as noise in the DOS intensities). Zero and imaginary modes are left at rest.
    """
    lam, U = np.linalg.eigh(hessian / mass)
    top = max(float(lam.max()), 1e-300)
    live = lam > 1e-8 * top
    live[np.argsort(np.abs(lam))[:3]] = False  # the three rigid translations of a periodic cell
    omega = np.sqrt(np.where(live, lam, 1.0))
    rng = np.random.default_rng(seed)
    phi = rng.uniform(0.0, TWO_PI, size=(n_samples, len(lam)))
    amp = np.where(live, np.sqrt(2.0 * kT), 0.0)
    q = amp / omega * np.cos(phi)
    qdot = -amp * np.sin(phi)
    n = hessian.shape[0] // 3
    return (q @ U.T).reshape(n_samples, n, 3), (qdot @ U.T).reshape(n_samples, n, 3)
