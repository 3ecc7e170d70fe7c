"""Float64 relaxations: positions at fixed box, and the 0 K lattice constant of a crystal.

Positions are relaxed with SciPy's L-BFGS on a jit-compiled energy/gradient. jax-md's FIRE keeps
its step and mixing parameters in low precision and stalls near 3e-4 epsilon/sigma (see
shared/notes), which is far from the 1e-8 forces barrier and Hessian work needs, so the
optimiser is SciPy's rather than jax-md's. The neighbour list is updated inside every evaluation
(it rebuilds only when an atom moved more than skin/2) and re-allocated on overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from mlffbench.errors import SimulationError
from mlffbench.neighbors import as_box_matrix
from mlffbench.potentials.base import Potential
from mlffbench.structures import Structure, fcc


@dataclass
class Relaxed:
    """Result of a relaxation (reduced units)."""

    positions: np.ndarray
    energy: float
    max_force: float
    converged: bool
    iterations: int


def relax_positions(potential: Potential, positions, box, fmax: float = 1e-8, max_steps: int = 5000,
                    skin: float = 0.5, newton_max_dof: int = 3000) -> Relaxed:
    """Minimise the energy over positions at fixed box.

    L-BFGS first; near the minimum the total energy (a sum of ~10^3 terms) changes by less than
    its own round-off, which stalls any line search on energies around 1e-6 epsilon/sigma, so the
    last digits come from Newton steps with the exact autodiff Hessian (systems up to
    `newton_max_dof` coordinates).

    Args:
        fmax: convergence threshold on the largest force component (epsilon/sigma).
        max_steps: L-BFGS iteration limit per neighbour-list allocation.
    """
    if not potential.conservative:
        raise SimulationError(f"{potential.name} has no energy to minimise (force-only model)")
    box_j = jnp.asarray(as_box_matrix(box))
    R = np.asarray(positions, dtype=np.float64)
    spec = potential.neighbors(box_j, skin=skin, n_atoms=len(R))
    shape = R.shape
    iterations = 0
    for _attempt in range(10):
        nbrs = spec.allocate(jnp.asarray(R))

        @jax.jit
        def value_and_grad(x, nbrs=nbrs):
            r = x.reshape(shape)
            nb = spec.update(r, nbrs)
            e, g = jax.value_and_grad(potential.energy)(r, box_j, nb)
            return e, g.reshape(-1), nb.did_buffer_overflow

        overflow = [False]

        def fun(x):
            e, g, ov = value_and_grad(jnp.asarray(x))
            overflow[0] |= bool(ov)
            return float(e), np.asarray(g, dtype=np.float64)

        res = optimize.minimize(fun, R.reshape(-1), jac=True, method="L-BFGS-B",
                                options={"maxiter": max_steps, "gtol": fmax, "ftol": 0.0,
                                         "maxcor": 30})
        iterations += int(res.nit)
        if overflow[0]:
            R = np.asarray(res.x).reshape(shape) if np.all(np.isfinite(res.x)) else R
            continue
        R = np.asarray(res.x).reshape(shape)
        e, g, _ = value_and_grad(jnp.asarray(R.reshape(-1)))
        max_force = float(np.max(np.abs(np.asarray(g))))
        if max_force > fmax and R.size <= newton_max_dof:
            R, e, max_force, n_newton = _newton_polish(potential, R, box_j, spec, nbrs, fmax)
            iterations += n_newton
        return Relaxed(positions=R, energy=float(e), max_force=max_force,
                       converged=max_force <= fmax, iterations=iterations)
    raise SimulationError("neighbour list kept overflowing during relaxation")


def energy_per_atom_vs_scale(potential: Potential, structure: Structure, skin: float = 0.6):
    """A jit-compiled function s -> E/N of `structure` uniformly scaled by s (s near 1)."""
    R0 = jnp.asarray(structure.positions)
    box0 = jnp.asarray(structure.box)
    spec = potential.neighbors(box0 * 1.05, skin=skin, n_atoms=structure.n_atoms)
    nbrs = spec.allocate(R0)
    n = structure.n_atoms

    @jax.jit
    def e_of_s(s):
        R, box = R0 * s, box0 * s
        return potential.energy(R, box, spec.update(R, nbrs)) / n

    return e_of_s


def fcc_lattice_constant(potential: Potential, n_cells: int = 2, a_guess: float = 2 ** (1 / 6) * 1.0953,
                         tol: float = 1e-12) -> tuple[float, float]:
    """0 K FCC lattice constant a0 (sigma) and energy per atom (epsilon) minimising E/N over a.

    A bounded Brent search brackets the minimum; Newton steps with exact autodiff derivatives
    then polish it to `tol` in dE/da. Perfect-lattice positions stay at their sites by symmetry.
    E/N of a perfect crystal does not depend on the supercell once every periodic image within
    the cutoff is counted (multi-image neighbour lists do that), so a 2x2x2 cell is enough.
    """
    if not potential.conservative:
        raise SimulationError(f"{potential.name} has no energy: give the lattice constant explicitly")
    base = fcc(n_cells, a_guess)
    e_of_s = energy_per_atom_vs_scale(potential, base)
    res = optimize.minimize_scalar(lambda s: float(e_of_s(s)), bounds=(0.85, 1.2), method="bounded",
                                   options={"xatol": 1e-10})
    s = float(res.x)
    d1 = jax.jit(jax.grad(e_of_s))
    d2 = jax.jit(jax.grad(jax.grad(e_of_s)))
    for _ in range(20):
        g, h = float(d1(s)), float(d2(s))
        if h <= 0:
            break
        step = g / h
        s -= step
        if abs(step) < tol:
            break
    return a_guess * s, float(e_of_s(s))


def _newton_polish(potential: Potential, R: np.ndarray, box_j, spec, nbrs, fmax: float,
                   max_iter: int = 8):
    """Newton steps x <- x - H^+ g with the exact Hessian; the pseudo-inverse drops the three
    zero-frequency translations. Returns (R, E, max |F|, iterations)."""
    shape = R.shape

    def energy_flat(x):
        r = x.reshape(shape)
        return potential.energy(r, box_j, spec.update(r, nbrs))

    grad_fn = jax.jit(jax.value_and_grad(energy_flat))
    hess_fn = jax.jit(jax.hessian(energy_flat))
    x = jnp.asarray(R.reshape(-1))
    e, g = grad_fn(x)
    it = 0
    for it in range(1, max_iter + 1):
        H = np.asarray(hess_fn(x))
        step = np.linalg.lstsq(H, np.asarray(g), rcond=1e-10)[0]
        x_new = x - jnp.asarray(step)
        e_new, g_new = grad_fn(x_new)
        if float(jnp.max(jnp.abs(g_new))) >= float(jnp.max(jnp.abs(g))):
            break  # not a descent any more: we are at round-off
        x, e, g = x_new, e_new, g_new
        if float(jnp.max(jnp.abs(g))) <= fmax:
            break
    return np.asarray(x).reshape(shape), float(e), float(jnp.max(jnp.abs(g))), it
