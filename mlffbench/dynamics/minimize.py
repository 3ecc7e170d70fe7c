"""Float64 relaxations: positions at fixed box, and the 0 K lattice constant of a crystal.

Positions are relaxed with SciPy's L-BFGS on a jit-compiled energy/gradient. jax-md's FIRE keeps
its step and mixing parameters in low precision and stalls near 3e-4 epsilon/sigma, which is far from the 1e-8 forces barrier and Hessian work needs, so the
optimiser is SciPy's rather than jax-md's. The neighbour list is updated inside every evaluation
(it rebuilds only when an atom moved more than skin/2) and re-allocated on overflow.

Two building blocks are shared with the string method and the saddle search: `fire_step` (one
FIRE update in float64, Bitzek et al., PRL 97, 170201 (2006)) and `newton_polish` (Newton steps
x <- x + H^+ F with a pseudo-inverse). Force-only models (no energy) relax by FIRE on the forces
(`relax_forces`); `relax` picks the route from the potential's capabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, NamedTuple

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
    """Result of a relaxation (reduced units).

    fmax: the threshold actually applied (epsilon/sigma; the requested one, or the floor
    `FD_RELAX_FMAX` for a potential without autodiff); method: 'lbfgs+newton', 'lbfgs' or
    'lbfgs+fire' (the route that finished it).
    """

    positions: np.ndarray
    energy: float
    max_force: float
    converged: bool
    iterations: int
    fmax: float = float("nan")
    method: str = "lbfgs"


# A potential without autodiff second derivatives (an external calculator) is relaxed without the
# Newton polish: its Hessian would be 6N force calls per Newton step (642 for a 107-atom vacancy).
# L-BFGS (then FIRE on the forces, which needs no energy, if the line search stalls on energy
# round-off) goes to this threshold instead. At 1e-6 epsilon/sigma the energy left is
# <= 3N fmax^2 / (2 lambda_min) ~ 1e-10 epsilon for the 107-atom LJ vacancy (lambda_min ~ 2).
FD_RELAX_FMAX = 1e-6


def _relax_program(potential: Potential, box_j, skin: float, n_atoms: int):
    """(neighbour spec, jitted (x (3N,), nbrs) -> (E, dE/dx (3N,), list overflowed)) for relaxations
    of `potential` in `box`: one compiled program per (fingerprint, box, skin, N) per process (a
    small LRU), so the end states of a string, or a vacancy relaxed again, compile once. The
    list is an argument, not a constant, so a re-allocated list of the same capacity reuses it."""
    box = np.ascontiguousarray(np.asarray(box_j, dtype=np.float64))
    return _memoised_relax_program(potential, box.tobytes(), float(skin), int(n_atoms))


@lru_cache(maxsize=8)
def _memoised_relax_program(potential: Potential, box_bytes: bytes, skin: float, n_atoms: int):
    box_j = jnp.asarray(np.frombuffer(box_bytes, dtype=np.float64).reshape(3, 3))
    spec = potential.neighbors(box_j, skin=skin, n_atoms=n_atoms)

    @jax.jit
    def energy_and_gradient(x, nbrs):
        r = x.reshape(-1, 3)
        nb = spec.update(r, nbrs)
        e, g = jax.value_and_grad(potential.energy)(r, box_j, nb)
        return e, g.reshape(-1), nb.did_buffer_overflow

    return spec, energy_and_gradient


def relax_positions(potential: Potential, positions, box, fmax: float = 1e-8, max_steps: int = 5000,
                    skin: float = 0.5, newton_max_dof: int = 3000,
                    fd_fmax: float | None = None) -> Relaxed:
    """Minimise the energy over positions at fixed box.

    L-BFGS first; near the minimum the total energy (a sum of ~10^3 terms) changes by less than
    its own round-off, which stalls any line search on energies around 1e-6 epsilon/sigma, so the
    last digits come from Newton steps with the exact autodiff Hessian (systems up to
    `newton_max_dof` coordinates).

    Args:
        fmax: convergence threshold on the largest force component (epsilon/sigma).
        max_steps: L-BFGS iteration limit per neighbour-list allocation.
        fd_fmax: for a potential without autodiff (finite-difference Hessians): the threshold
            is max(fmax, fd_fmax) (None = `FD_RELAX_FMAX`) and there is no Newton polish;
            L-BFGS, then FIRE on the forces if L-BFGS stops short. `Relaxed.fmax` states it.
    """
    autodiff = potential.capabilities.autodiff
    if not autodiff:
        fmax = max(fmax, FD_RELAX_FMAX if fd_fmax is None else fd_fmax)
    if not potential.conservative:
        raise SimulationError(f"{potential.name} has no energy to minimise (force-only model)")
    box_j = jnp.asarray(as_box_matrix(box))
    R = np.asarray(positions, dtype=np.float64)
    spec, energy_and_gradient = _relax_program(potential, box_j, skin, len(R))
    shape = R.shape
    iterations = 0
    for _attempt in range(10):
        nbrs = spec.allocate(jnp.asarray(R))

        def value_and_grad(x, nbrs=nbrs):
            return energy_and_gradient(x, nbrs)

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
        method = "lbfgs"
        if max_force > fmax and not autodiff:
            R, max_force, n_fire = _finish_by_fire(potential, R, box_j, fmax, skin)
            e, _, _ = value_and_grad(jnp.asarray(R.reshape(-1)))
            iterations += n_fire
            method = "lbfgs+fire"
        elif max_force > fmax and R.size <= newton_max_dof:
            R, e, max_force, n_newton = _polish_minimum(potential, R, box_j, spec, nbrs, fmax,
                                                        value_and_grad)
            iterations += n_newton
            method = "lbfgs+newton"
        return Relaxed(positions=R, energy=float(e), max_force=max_force,
                       converged=max_force <= fmax, iterations=iterations, fmax=fmax, method=method)
    raise SimulationError("neighbour list kept overflowing during relaxation")


# LJ's 0 K FCC crystal (rc = 2.5 sigma) has its nearest neighbours at ~1.0953 sigma, so
# a0 ~ sqrt(2) x 1.0953 sigma; the bracket below (0.85 .. 1.2 of it) holds every sane model's a0
FCC_A_GUESS = 2 ** 0.5 * 1.0953

@lru_cache(maxsize=8)  # potentials hash and compare by fingerprint
def _scaled_fcc(potential: Potential, n_cells: int, skin: float = 0.6) -> tuple[Callable, Callable | None]:
    """(energy, derivatives) of the perfect n^3 FCC crystal built at `FCC_A_GUESS` and scaled by s.

    energy(s) -> E/N (epsilon); derivatives(s) -> (d(E/N)/ds, d2(E/N)/ds2) in one program, or
    None for a potential without autodiff. s is a float64 scalar.
    Both are compiled once per (potential fingerprint, n_cells) per process (a small LRU): the
    lattice-constant search, the E(a) curve and E/N at the reference's a0 all evaluate the same
    crystal, and each new closure would otherwise be a new XLA compilation (~1-2 s for a GNN).
    """
    base = fcc(n_cells, FCC_A_GUESS)
    R0, box0 = jnp.asarray(base.positions), jnp.asarray(base.box)
    spec = potential.neighbors(box0 * 1.05, skin=skin, n_atoms=base.n_atoms)
    nbrs = spec.allocate(R0)
    n = base.n_atoms

    def e_of_s(s):
        R, box = R0 * s, box0 * s
        return potential.energy(R, box, spec.update(R, nbrs)) / n

    # one program for both derivatives: compiles faster than grad and grad-of-grad apart
    d1_d2 = jax.value_and_grad(jax.grad(e_of_s))
    return jax.jit(e_of_s), (jax.jit(d1_d2) if potential.capabilities.autodiff else None)


def fcc_energy_per_atom(potential: Potential, n_cells: int = 2) -> Callable[[float], float]:
    """a (sigma) -> E/N (epsilon) of the perfect n^3 FCC crystal at lattice constant a, through
    the one compiled program per (potential, n_cells) that `fcc_lattice_constant` uses."""
    energy, _ = _scaled_fcc(potential, n_cells)
    return lambda a: float(energy(np.float64(a / FCC_A_GUESS)))


def fcc_lattice_constant(potential: Potential, n_cells: int = 2, tol: float = 1e-12) -> tuple[float, float]:
    """0 K FCC lattice constant a0 (sigma) and energy per atom (epsilon) minimising E/N over a.

    A bounded Brent search over a in [0.85, 1.2] x `FCC_A_GUESS` brackets the minimum; Newton
    steps with exact autodiff derivatives then polish it to `tol` in dE/da. Perfect-lattice
    positions stay at their sites by symmetry. E/N of a perfect crystal does not depend on the
    supercell once every periodic image within the cutoff is counted (multi-image neighbour
    lists do that), so a 2x2x2 cell is enough.
    """
    if not potential.conservative:
        raise SimulationError(f"{potential.name} has no energy: give the lattice constant explicitly")
    energy, derivatives = _scaled_fcc(potential, n_cells)

    def e(s):
        return float(energy(np.float64(s)))  # always a float64 scalar: one signature, one compile

    res = optimize.minimize_scalar(e, bounds=(0.85, 1.2), method="bounded", options={"xatol": 1e-10})
    s = float(res.x)
    if derivatives is not None:
        def d1_d2(s):
            g, h = derivatives(np.float64(s))
            return float(g), float(h)
    else:  # an external calculator: derivatives from E(s) (and its stress where it has one)
        d1 = jax.jit(jax.grad(energy)) if potential.capabilities.stress else None

        def d1_d2(s, h=1e-5):
            def g(x):
                return float(d1(np.float64(x))) if d1 is not None else (e(x + h) - e(x - h)) / (2 * h)
            return g(s), (g(s + h) - g(s - h)) / (2 * h)
    for _ in range(20):
        g, h = d1_d2(s)
        if h <= 0:
            break
        step = g / h
        s -= step
        if abs(step) < tol:
            break
    return FCC_A_GUESS * s, e(s)


def _finish_by_fire(potential: Potential, R: np.ndarray, box_j, fmax: float, skin: float,
                    max_iter: int = 5000, chunk: int = 25):
    """FIRE on the forces from an L-BFGS end point (round-off in the energy stalls a line search,
    not FIRE; one force call per step, convergence checked every `chunk` steps).
    Returns (R, max |F| component, FIRE steps (upper bound: whole chunks))."""
    steps: list[int] = []
    X, _, fm, _ = relax_forces(potential, R, box_j, fmax, skin=skin, max_iter=max_iter, chunk=chunk,
                               steps_out=steps)
    return np.asarray(X), fm, steps[0]


def _polish_minimum(potential: Potential, R: np.ndarray, box_j, spec, nbrs, fmax: float,
                    value_and_grad: Callable):
    """Newton polish of a minimum with the exact Hessian (`properties.hessian`, computed in
    column chunks so a GNN's Hessian never holds all 3N columns' intermediates at once).
    value_and_grad: x (3N,) -> (E, dE/dx, overflow), the relaxation's compiled program.
    Returns (R, E, max |F| component, iterations)."""
    from mlffbench.properties.hessian import hessian

    shape = R.shape
    update = spec.jit_update
    x, F, it = newton_polish(lambda x: -np.asarray(value_and_grad(jnp.asarray(x))[1]),
                             lambda x: hessian(potential, x.reshape(shape), box_j,
                                               update(jnp.asarray(x.reshape(shape)), nbrs)).matrix,
                             R.reshape(-1), fmax, norm=lambda f: float(np.max(np.abs(f))))
    e = float(value_and_grad(jnp.asarray(x))[0])
    return x.reshape(shape), e, float(np.max(np.abs(F))), it


def newton_polish(forces: Callable[[np.ndarray], np.ndarray], hessian: Callable[[np.ndarray], np.ndarray],
                  x: np.ndarray, fmax: float, norm: Callable[[np.ndarray], float], max_iter: int = 8,
                  rcond: float = 1e-10) -> tuple[np.ndarray, np.ndarray, int]:
    """Newton steps x <- x + H^+ F towards a stationary point (minimum or saddle: the step does
    not care which), stopping when `norm(F) <= fmax`, after `max_iter` steps, or as soon as a
    step does not lower `norm(F)` (round-off reached).

    The pseudo-inverse (least squares with relative cutoff `rcond`) drops the zero modes (the
    three uniform translations of a periodic cell).

    Args:
        forces: x (3N,) -> F (3N,), minus the gradient.
        hessian: x (3N,) -> H (3N, 3N), the second derivative of the energy (= -dF/dx).
        x: starting point (3N,), flattened coordinates.
        fmax: target for `norm(F)` (force units).
        norm: F -> a scalar measure of the force (largest component, or largest per-atom norm).

    Returns:
        (x, F at x, iterations done).
    """
    x = np.asarray(x, dtype=np.float64)
    F = forces(x)
    it = 0
    for it in range(1, max_iter + 1):
        H = hessian(x)
        step = np.linalg.lstsq(0.5 * (H + H.T), F, rcond=rcond)[0]
        x_new = x + step
        F_new = forces(x_new)
        if norm(F_new) >= norm(F):
            break  # not a descent any more: we are at round-off
        x, F = x_new, F_new
        if norm(F) <= fmax:
            break
    return x, F, it


# ----------------------------------------------------------------------------------------------
# FIRE (float64), and relaxations that need only forces
# ----------------------------------------------------------------------------------------------
class FireParams(NamedTuple):
    """FIRE constants (Bitzek et al. 2006; ASE's values): restart after n_min uphill-free steps,
    grow dt by f_inc up to dt_max, halve it (f_dec) on an uphill step, mix with alpha."""

    n_min: int = 5
    f_inc: float = 1.1
    f_dec: float = 0.5
    alpha_start: float = 0.1
    f_alpha: float = 0.99


FIRE = FireParams()


def fire_step(V, F, dt, alpha, n_pos, dt_max: float, params: FireParams = FIRE):
    """One FIRE update (jit-able, float64): mix the velocity towards the force, restart on an
    uphill step (P = F.V <= 0), adapt dt and alpha, then an explicit Euler step V += dt F.

    Arrays of any shape (all images of a string at once is one system). Returns
    (V, dt, alpha, n_pos): the caller moves the coordinates by dt * V.
    """
    vf = jnp.vdot(V, F)
    vnorm = jnp.sqrt(jnp.vdot(V, V))
    fnorm = jnp.sqrt(jnp.vdot(F, F))
    mixed = (1.0 - alpha) * V + alpha * vnorm * F / jnp.maximum(fnorm, 1e-300)
    positive = vf > 0
    V = jnp.where(positive, mixed, jnp.zeros_like(V))
    grow = positive & (n_pos > params.n_min)
    dt = jnp.where(positive, jnp.where(grow, jnp.minimum(dt * params.f_inc, dt_max), dt), dt * params.f_dec)
    alpha = jnp.where(positive, jnp.where(grow, alpha * params.f_alpha, alpha), params.alpha_start)
    n_pos = jnp.where(positive, n_pos + 1, 0)
    return V + dt * F, dt, alpha, n_pos


def cap_displacement(dX, max_step: float):
    """Scale dX (..., 3) so that no atom moves more than max_step (length units)."""
    big = jnp.max(jnp.linalg.norm(dX, axis=-1))
    return dX * jnp.minimum(1.0, max_step / jnp.maximum(big, 1e-300))


def relax_forces(potential: Potential, R, box, fmax: float, skin: float = 0.5, max_iter: int = 20000,
                 dt: float = 0.01, dt_max: float = 0.1, max_step: float = 0.05, chunk: int = 100,
                 steps_out: list | None = None):
    """FIRE relaxation at fixed box that needs only forces (force-only models), float64.

    Args:
        fmax: threshold on the largest force component (epsilon/sigma).
        dt, dt_max: FIRE initial and largest time steps (tau, unit mass); max_step: cap on any
            atom's move per step (sigma); chunk: steps per jitted call; steps_out: a list that
            receives the number of FIRE steps taken.

    Returns (positions (N, 3), NaN (no energy), max force component, converged).
    """
    box_j = jnp.asarray(as_box_matrix(box))
    X = jnp.asarray(np.asarray(R, np.float64))
    spec = potential.neighbors(box_j, skin=skin, n_atoms=len(X))

    def forces(x, nbrs):
        nbrs = spec.update(x, nbrs)
        return potential.forces(x, box_j, nbrs).astype(jnp.float64), nbrs

    @jax.jit
    def run(carry):
        def step(c, _):
            X, V, dt, alpha, npos, nbrs = c
            F, nbrs = forces(X, nbrs)
            V, dt, alpha, npos = fire_step(V, F, dt, alpha, npos, dt_max)
            return (X + cap_displacement(dt * V, max_step), V, dt, alpha, npos, nbrs), None
        return jax.lax.scan(step, carry, None, length=chunk)[0]

    carry = (X, jnp.zeros_like(X), jnp.float64(dt), jnp.float64(FIRE.alpha_start), jnp.asarray(0),
             spec.allocate(X))
    fm, n_steps = np.inf, 0
    for _ in range(max(1, max_iter // chunk)):
        carry = run(carry)
        n_steps += chunk
        if bool(carry[-1].did_buffer_overflow):
            carry = carry[:5] + (spec.allocate(carry[0]),)
            continue
        F, _ = jax.jit(forces)(carry[0], carry[-1])
        fm = float(jnp.max(jnp.abs(F)))
        if fm <= fmax:
            break
    if steps_out is not None:
        steps_out.append(n_steps)
    return np.asarray(carry[0]), float("nan"), fm, fm <= fmax


# float32 force round-off stalls relaxations near 2e-4 epsilon/sigma (measured on a trained
# SchNet); a tighter end-state threshold would fail every float32 model for a reason not its own
FLOAT32_RELAX_FMAX = 1e-3


def reachable_fmax(potential: Potential, fmax: float) -> float:
    """The relaxation threshold (epsilon/sigma) this potential's precision can reach, and that
    `relax_positions` applies (`FD_RELAX_FMAX` at least without autodiff)."""
    fmax = max(fmax, FLOAT32_RELAX_FMAX) if potential.is_float32 else fmax
    return fmax if potential.capabilities.autodiff else max(fmax, FD_RELAX_FMAX)


def relax(potential: Potential, R, box, fmax: float, skin: float = 0.5):
    """Relax positions at fixed box: L-BFGS + Newton where there is an energy, FIRE on the
    forces otherwise. Returns (positions, energy (NaN without an energy), max force component,
    converged)."""
    if potential.capabilities.energy:
        r = relax_positions(potential, R, box, fmax=fmax, skin=skin)
        return r.positions, r.energy, r.max_force, r.converged
    return relax_forces(potential, R, box, fmax=fmax, skin=skin)
