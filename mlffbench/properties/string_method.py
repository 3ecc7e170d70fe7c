"""Minimum energy paths: the simplified string method with a climbing image, in JAX.

The simplified string method (W. E, W. Ren, E. Vanden-Eijnden, J. Chem. Phys. 126, 164103
(2007)) evolves M images of the system along the force perpendicular to the path and then
redistributes them to equal arc length by interpolation along the discrete string. With a
climbing image (the highest-energy interior image feels F - 2 (F.t) t and is held fixed by the
reparametrisation, the images on either side being spaced evenly on their own side), the path
converges onto the saddle point exactly.

No library we know of implements a jit-able string method in JAX (ASE's NEB and jax-md's
minimisers are per-configuration and Python-driven), so this module writes it by hand: every
interior image is advanced in the same jitted step (vmap over images, each with its own
neighbour list), chunks of steps run inside `lax.scan`, and Python only sees chunk boundaries
(convergence check, neighbour-list overflow).

The time stepper is FIRE (`mlffbench.dynamics.minimize.fire_step`) on the projected forces of all
images at once, in float64 (jax-md's FIRE keeps its parameters in low precision), or plain
steepest descent (the textbook simplified string method). Coordinates are any array shape per
image: (2,) for model surfaces, (N, 3) for atoms.

Units: whatever the energy function uses (reduced LJ units for atoms).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mlffbench.dynamics.minimize import FIRE, cap_displacement, fire_step, newton_polish
from mlffbench.errors import SimulationError
from mlffbench.neighbors import batched_update
from mlffbench.properties.hessian import hessian
from mlffbench.sharding import vmap_sharded

Array = jnp.ndarray


@dataclass(frozen=True)
class StringSettings:
    """Settings of `string_method` (units of the energy surface).

    Attributes:
        tol: convergence threshold on the largest per-atom force: perpendicular force on every
            ordinary image, and the true force on the climbing image.
        climb: refine the highest image into the saddle point (climbing image).
        climb_start_tol: switch the climbing image on once the perpendicular force is below this
            (None: 20 * tol).
        optimizer: 'fire' or 'steepest' (explicit Euler, the textbook simplified string method).
        dt: time step (FIRE initial step, or the steepest-descent step).
        dt_max: FIRE's largest step.
        max_step: cap on any atom's displacement per step (length units).
        max_iter: iteration limit; a path not converged by then is reported as failed.
        chunk: iterations per jitted chunk (Python checks convergence between chunks).
    """

    tol: float = 1e-3
    climb: bool = True
    climb_start_tol: float | None = None
    optimizer: str = "fire"
    dt: float = 0.1
    dt_max: float = 0.3
    max_step: float = 0.05
    max_iter: int = 20000
    chunk: int = 50

    def __post_init__(self) -> None:
        if self.optimizer not in ("fire", "steepest"):
            raise ValueError("optimizer must be 'fire' or 'steepest'")
        if self.tol <= 0 or self.dt <= 0 or self.max_step <= 0:
            raise ValueError("tol, dt and max_step must be positive")


@dataclass
class StringResult:
    """A converged (or failed) path.

    images: (M, *shape) coordinates; energies: (M,) (NaN for force-only surfaces unless
    integrated); arc: (M,) normalised arc length in [0, 1]; climbing: index of the climbing
    image (-1 if none); history: list of (iteration, max perpendicular force, climbing force).
    """

    images: np.ndarray
    energies: np.ndarray
    forces: np.ndarray
    arc: np.ndarray
    converged: bool
    iterations: int
    climbing: int
    max_perp_force: float
    climb_force: float
    history: list = field(default_factory=list)
    wall_seconds: float = 0.0
    compile_seconds: float = 0.0
    message: str = ""


# ----------------------------------------------------------------------------------------------
# Geometry of a discrete string
# ----------------------------------------------------------------------------------------------
def _flat(X: Array) -> Array:
    return X.reshape(X.shape[0], -1)


def arc_lengths(X: Array) -> Array:
    """Cumulative arc length along the piecewise-linear string, shape (M,), starting at 0."""
    seg = jnp.linalg.norm(jnp.diff(_flat(X), axis=0), axis=1)
    return jnp.concatenate([jnp.zeros(1, seg.dtype), jnp.cumsum(seg)])


def tangents(X: Array) -> Array:
    """Unit tangents (M, *shape): central differences inside, one-sided at the ends."""
    F = _flat(X)
    d = jnp.concatenate([F[1:2] - F[0:1], F[2:] - F[:-2], F[-1:] - F[-2:-1]], axis=0)
    d = d / jnp.maximum(jnp.linalg.norm(d, axis=1, keepdims=True), 1e-300)
    return d.reshape(X.shape)


def upwind_tangents(X: Array, E: Array) -> Array:
    """Energy-weighted upwind tangents (Henkelman & Jonsson, J. Chem. Phys. 113, 9978 (2000)),
    (M, *shape), for interior images; the ends get one-sided differences. E: (M,) energies.

    Central differences make kinks where the force along the path is large compared with the
    force across it; the upwind choice removes them and is what lets FIRE converge the
    perpendicular force to round-off."""
    F = _flat(X)
    tp = F[2:] - F[1:-1]
    tm = F[1:-1] - F[:-2]
    Ep, E0, Em = E[2:], E[1:-1], E[:-2]
    up = (Ep > E0) & (E0 > Em)
    down = (Ep < E0) & (E0 < Em)
    dmax = jnp.maximum(jnp.abs(Ep - E0), jnp.abs(Em - E0))[:, None]
    dmin = jnp.minimum(jnp.abs(Ep - E0), jnp.abs(Em - E0))[:, None]
    mixed = jnp.where((Ep > Em)[:, None], tp * dmax + tm * dmin, tp * dmin + tm * dmax)
    t = jnp.where(up[:, None], tp, jnp.where(down[:, None], tm, mixed))
    t = jnp.concatenate([F[1:2] - F[0:1], t, F[-1:] - F[-2:-1]], axis=0)
    t = t / jnp.maximum(jnp.linalg.norm(t, axis=1, keepdims=True), 1e-300)
    return t.reshape(X.shape)


def target_arcs(s: Array, climbing: Array) -> Array:
    """Where the images should sit: equal spacing, or equal spacing on each side of the
    climbing image `climbing` (which stays where it is). climbing < 0 means none."""
    M = s.shape[0]
    k = jnp.arange(M, dtype=s.dtype)
    total = s[-1]
    uniform = total * k / (M - 1)
    c = jnp.clip(climbing, 1, M - 2)
    sc = s[c]
    left = sc * k / c
    right = sc + (total - sc) * (k - c) / (M - 1 - c)
    split = jnp.where(k <= c, left, right)
    return jnp.where(climbing > 0, split, uniform)


def reparametrize(X: Array, climbing: Array | int = -1) -> Array:
    """Redistribute images to equal arc length along the piecewise-linear string (endpoints and
    a climbing image stay fixed). X: (M, *shape)."""
    climbing = jnp.asarray(climbing)
    F = _flat(X)
    s = arc_lengths(X)
    targets = target_arcs(s, climbing)
    seg = jnp.clip(jnp.searchsorted(s, targets, side="right") - 1, 0, F.shape[0] - 2)
    ds = s[seg + 1] - s[seg]
    t = jnp.where(ds > 0, (targets - s[seg]) / jnp.where(ds > 0, ds, 1.0), 0.0)
    t = jnp.clip(t, 0.0, 1.0)
    new = F[seg] + t[:, None] * (F[seg + 1] - F[seg])
    M = F.shape[0]
    keep = (jnp.arange(M) == 0) | (jnp.arange(M) == M - 1) | (jnp.arange(M) == climbing)
    new = jnp.where(keep[:, None], F, new)
    return new.reshape(X.shape)


_reparametrize_jit = jax.jit(reparametrize)  # eager callers: one program, not ~20 op-by-op ones


def _atom_norms(F: Array) -> Array:
    """Largest per-atom force norm of each image: (M, N, 3) -> (M,); (M, D) -> (M,) as a whole."""
    if F.ndim >= 3:
        return jnp.max(jnp.linalg.norm(F, axis=-1), axis=tuple(range(1, F.ndim - 1)))
    return jnp.linalg.norm(F, axis=-1)


def integrate_path_energy(X, F) -> np.ndarray:
    """Energy along a path from forces alone: E(s_i) = -int_0^{s_i} F . t ds, E_0 = 0.

    For force-only models (no energy): the barrier is the line integral of the force along the
    converged path. The tangential force F . t (central-difference tangents) is integrated over
    arc length by the cumulative Simpson rule (`scipy.integrate.cumulative_simpson`): the images of
    a converged string are equally spaced in arc length, and on the 2x2x2 LJ vacancy path (9
    images) this gives the barrier to 6e-4 relative where the trapezoid rule of F . dX is 6 % low.
    X, F: (M, *shape).
    """
    from scipy.integrate import cumulative_simpson

    Xf = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    Ff = np.asarray(F, dtype=np.float64).reshape(len(F), -1)
    s = np.asarray(arc_lengths(jnp.asarray(Xf)))
    g = np.sum(Ff * np.asarray(tangents(jnp.asarray(Xf))), axis=1)
    return -cumulative_simpson(g, x=s, initial=0.0)


def linear_path(x0, x1, n_images: int) -> np.ndarray:
    """n_images points on the straight line from x0 to x1 (inclusive), shape (M, *shape)."""
    x0, x1 = np.asarray(x0, float), np.asarray(x1, float)
    w = np.linspace(0.0, 1.0, n_images).reshape((-1,) + (1,) * x0.ndim)
    return x0[None] + w * (x1 - x0)[None]


# ----------------------------------------------------------------------------------------------
# The jitted iteration
# ----------------------------------------------------------------------------------------------
def _make_chunk(batched_ef: Callable, settings: StringSettings, n_steps: int, energy_known: bool,
                remove_translation: bool, end_E: Array):
    """Build chunk(carry) -> (carry, history) running `n_steps` string iterations.

    batched_ef(X_interior, aux) -> (E (M-2,), F (M-2, *shape), aux); aux carries neighbour
    lists (or None). The carry holds X, V, dt, alpha, n_pos, climb flag, E, F, aux.
    """
    tol_climb_on = settings.climb_start_tol if settings.climb_start_tol is not None else 20 * settings.tol
    fire = settings.optimizer == "fire"

    def path_tangents(X, E):
        if energy_known:
            T = upwind_tangents(X, jnp.concatenate([end_E[:1], E, end_E[1:]]))
        else:
            T = tangents(X)
        if remove_translation:
            # tangents free of uniform translation, so that F_perp has no net force and the
            # translation-free steps below can drive it to zero
            T = T - jnp.mean(T, axis=-2, keepdims=True)
            n = jnp.sqrt(jnp.sum(_flat(T) ** 2, axis=1)).reshape((-1,) + (1,) * (T.ndim - 1))
            T = T / jnp.maximum(n, 1e-300)
        return T

    def projected(X, E, F, climb_on):
        M = X.shape[0]
        T = path_tangents(X, E)[1:-1]
        Ff, Tf = _flat(F), _flat(T)
        par = jnp.sum(Ff * Tf, axis=1, keepdims=True)
        perp = Ff - par * Tf
        if energy_known:
            c = jnp.argmax(E) + 1  # index in the full string
        else:
            c = jnp.asarray(-1)
        is_c = (jnp.arange(1, M - 1) == c) & climb_on
        eff = jnp.where(is_c[:, None], Ff - 2.0 * par * Tf, perp)
        perp_norm = _atom_norms(perp.reshape(F.shape))
        true_norm = _atom_norms(F)
        f_perp = jnp.max(jnp.where(is_c, 0.0, perp_norm))
        f_climb = jnp.where(climb_on, jnp.max(jnp.where(is_c, true_norm, 0.0)), jnp.inf)
        return eff.reshape(F.shape), jnp.where(climb_on, c, -1), f_perp, f_climb

    def step(carry, _):
        X, V, dt, alpha, n_pos, climb_on, E, F, aux = carry
        eff, c, f_perp, f_climb = projected(X, E, F, climb_on)
        if fire:
            V, dt, alpha, n_pos = fire_step(V, eff, dt, alpha, n_pos, settings.dt_max)
            dX = dt * V
        else:
            dX = dt * eff
        if remove_translation:
            # a uniform translation costs no energy but adds arc length: keep the images' centres
            # of mass where the initial path put them
            dX = dX - jnp.mean(dX, axis=-2, keepdims=True)
        dX = cap_displacement(dX, settings.max_step)  # robust far from the path
        Xin = X[1:-1] + dX
        Xnew = X.at[1:-1].set(Xin)
        Xnew = reparametrize(Xnew, c)
        if fire:
            # motion along the string is undone by the reparametrisation: keep only the
            # perpendicular part of the velocity (and the climbing image's own velocity)
            Tn = _flat(path_tangents(Xnew, E)[1:-1])
            Vf = _flat(V)
            Vpar = jnp.sum(Vf * Tn, axis=1, keepdims=True) * Tn
            is_c = jnp.arange(1, Xnew.shape[0] - 1) == c
            V = jnp.where(is_c[:, None], Vf, Vf - Vpar).reshape(V.shape)
        Enew, Fnew, aux = batched_ef(Xnew[1:-1], aux)
        climb_on = climb_on | (settings.climb & (f_perp < tol_climb_on))
        return (Xnew, V, dt, alpha, n_pos, climb_on, Enew, Fnew, aux), (f_perp, f_climb, c)

    def converged(carry):
        X, _, _, _, _, climb_on, E, F, _ = carry
        _, _, f_perp, f_climb = projected(X, E, F, climb_on)
        ok = f_perp < settings.tol
        if settings.climb and energy_known:
            ok = ok & climb_on & (f_climb < settings.tol)
        return ok

    def chunk(carry):
        """Up to n_steps iterations, stopping early once converged (a while loop rather than a
        scan, so that no iterations are wasted after convergence). Returns (carry, history,
        iterations done); history rows past that count are NaN."""
        hist = (jnp.full(n_steps, jnp.nan), jnp.full(n_steps, jnp.nan), jnp.full(n_steps, -1))

        def body(state):
            carry, k, (hp, hc, hi) = state
            carry, (fp, fc, c) = step(carry, None)
            return carry, k + 1, (hp.at[k].set(fp), hc.at[k].set(fc), hi.at[k].set(c))

        def keep_going(state):
            carry, k, _ = state
            return (k < n_steps) & ~converged(carry)

        carry, k, hist = lax.while_loop(keep_going, body, (carry, jnp.asarray(0), hist))
        X, _, _, _, _, climb_on, E, F, _ = carry
        _, c_now, fp_now, fc_now = projected(X, E, F, climb_on)
        return carry, hist, k, (c_now, fp_now, fc_now)

    return chunk


def string_method(batched_ef: Callable, path0, settings: StringSettings = StringSettings(), *,
                  aux_init: Callable[[Any], Any] | None = None, aux_overflow: Callable[[Any], bool] | None = None,
                  end_energies=None, energy_known: bool = True, remove_translation: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> StringResult:
    """Converge a minimum energy path from an initial path.

    Args:
        batched_ef: (X (K, *shape), aux) -> (E (K,), F (K, *shape), aux), all images at once
            (vmapped; jit-able). For force-only surfaces return E = 0 and set energy_known=False.
        path0: (M, *shape) initial images; the first and last are the (fixed) end states.
        settings: `StringSettings`.
        aux_init: X_interior -> aux (e.g. allocate neighbour lists), outside jit. None: aux=None.
        aux_overflow: aux -> bool, checked after every chunk (neighbour-list overflow); on True
            the chunk is re-run from its start with freshly allocated aux.
        end_energies: (E_first, E_last), stored in the result.
        energy_known: whether E is a real energy (climbing image picked by energy); for
            force-only surfaces the climbing image is picked from the integrated energy profile
            in a second stage by the caller.
        remove_translation: subtract each image's mean displacement per step (atoms in a periodic
            cell, coordinates (N, 3): uniform translations cost no energy but add arc length).
        progress: called as progress(iterations, max_iter).

    Returns:
        `StringResult`; `converged` False (with a message) when max_iter was reached.
    """
    X = jnp.asarray(np.asarray(path0, dtype=np.float64))
    if X.shape[0] < 3:
        raise ValueError("a string needs at least 3 images")
    X = _reparametrize_jit(X, -1)
    make_aux = aux_init or (lambda Xi: None)
    aux = make_aux(X[1:-1])
    n_chunk = max(1, int(settings.chunk))
    e0, e1 = (end_energies if end_energies is not None else (np.nan, np.nan))
    if energy_known and not (np.isfinite(e0) and np.isfinite(e1)):
        raise ValueError("end_energies are needed when energy_known (upwind tangents, climbing image)")
    chunk_fn = _make_chunk(batched_ef, settings, n_chunk, energy_known, remove_translation,
                                      jnp.asarray([e0, e1], jnp.float64))
    chunk_jit = jax.jit(chunk_fn)
    ef_jit = jax.jit(batched_ef)

    E, F, aux = ef_jit(X[1:-1], aux)
    carry = (X, jnp.zeros_like(X[1:-1]), jnp.asarray(settings.dt, jnp.float64),
             jnp.asarray(FIRE.alpha_start, jnp.float64), jnp.asarray(0), jnp.asarray(False), E, F, aux)
    history: list = []
    it = 0
    t_start = time.perf_counter()
    compile_s = 0.0
    compiled = None
    converged = False
    f_perp = f_climb = float("inf")
    c = -1
    reallocs = 0
    while it < settings.max_iter:
        if compiled is None:
            t0 = time.perf_counter()
            compiled = chunk_jit.lower(carry).compile()
            compile_s += time.perf_counter() - t0
        new_carry, (fp, fc, cs), n_done, now = compiled(carry)
        if aux_overflow is not None and aux_overflow(new_carry[-1]):
            reallocs += 1
            if reallocs > 20:
                raise SimulationError("neighbour lists kept overflowing in the string method")
            aux = make_aux(carry[0][1:-1])
            E, F, aux = ef_jit(carry[0][1:-1], aux)
            carry = carry[:6] + (E, F, aux)
            compiled = None
            continue
        carry = new_carry
        n_done = int(n_done)
        fp, fc, cs = np.asarray(fp)[:n_done], np.asarray(fc)[:n_done], np.asarray(cs)[:n_done]
        for k in range(len(fp)):
            history.append((it + k, float(fp[k]), float(fc[k]) if np.isfinite(fc[k]) else None))
        it += len(fp)
        if progress is not None:
            progress(it, settings.max_iter)
        if not np.all(np.isfinite(np.asarray(carry[0]))):
            raise SimulationError("the string method produced non-finite coordinates (step too large?)")
        # convergence of the *current* state (forces already evaluated at carry's X)
        c, f_perp, f_climb = int(now[0]), float(now[1]), float(now[2])
        ok_perp = f_perp < settings.tol
        ok_climb = (not settings.climb) or (not energy_known) or (bool(carry[5]) and f_climb < settings.tol)
        # a chunk that stopped early stopped because the jitted test found convergence (trust it
        # over a last-digit disagreement of this eager re-evaluation)
        if (ok_perp and ok_climb) or n_done < n_chunk:
            converged = True
            break
    wall = time.perf_counter() - t_start
    X, E, F = np.asarray(carry[0]), np.asarray(carry[6]), np.asarray(carry[7])
    energies = np.concatenate([[e0], E, [e1]]) if energy_known else np.full(len(X), np.nan)
    F_full = np.concatenate([np.zeros_like(F[:1]), F, np.zeros_like(F[:1])])
    s = np.asarray(arc_lengths(jnp.asarray(X)))
    msg = "" if converged else (f"not converged after {it} iterations: max perpendicular force "
                                f"{f_perp:.3g}, climbing-image force {f_climb:.3g} (tolerance {settings.tol:g})")
    return StringResult(images=X, energies=energies, forces=F_full, arc=s / s[-1], converged=converged,
                        iterations=it, climbing=c if (settings.climb and energy_known) else -1,
                        max_perp_force=f_perp, climb_force=f_climb if np.isfinite(f_climb) else float("nan"),
                        history=history, wall_seconds=wall, compile_seconds=compile_s, message=msg)


# ----------------------------------------------------------------------------------------------
# Atoms: a Potential, per-image neighbour lists
# ----------------------------------------------------------------------------------------------
def potential_batched_ef(potential, box, skin: float = 0.5, capacity_multiplier: float = 1.2):
    """(batched_ef, aux_init, aux_overflow) for a `Potential` in a fixed `box`.

    Each image keeps its own neighbour list, rebuilt inside the jitted step only when some image
    moved more than skin/2 since its last build (`neighbors.batched_update`: a vmapped jax-md
    rebuild test would rebuild every list at every step).
    """
    box_j = jnp.asarray(np.asarray(box, dtype=np.float64))
    spec = potential.neighbors(box_j, skin=skin, capacity_multiplier=capacity_multiplier)
    update_all = batched_update(spec.update, box_j, skin)

    def aux_init(Xi):
        nb = spec.allocate(jnp.asarray(Xi[0]), extra_capacity=0)
        return spec.jit_update_each(jnp.asarray(Xi), nb)

    def aux_overflow(nbrs) -> bool:
        return bool(jnp.any(nbrs.did_buffer_overflow))

    def one(R, nb):
        ev = potential.evaluate(R, box_j, nb)
        e = jnp.zeros((), jnp.float64) if ev.energy is None else ev.energy
        return e, ev.forces

    def batched_ef(Xi, nbrs):
        nbrs = update_all(Xi, nbrs)
        E, F = vmap_sharded(one)(Xi, nbrs)  # images over devices (padded to a multiple)
        return E.astype(jnp.float64), F.astype(jnp.float64), nbrs

    return batched_ef, aux_init, aux_overflow


def vacancy_string(potential, R_initial, R_final, box, settings: StringSettings, n_images: int,
                   skin: float = 0.5, end_energies=(np.nan, np.nan),
                   progress: Callable[[int, int], None] | None = None) -> StringResult:
    """String method for atoms between two relaxed states R_initial, R_final (N, 3) in `box`,
    starting from the straight line; uniform translations removed (reduced units)."""
    bef, aux_init, aux_overflow = potential_batched_ef(potential, box, skin=skin)
    path0 = linear_path(R_initial, R_final, n_images)
    return string_method(bef, path0, settings, aux_init=aux_init, aux_overflow=aux_overflow,
                         end_energies=end_energies, energy_known=potential.capabilities.energy,
                         remove_translation=True, progress=progress)


@dataclass
class PolishedSaddle:
    """A saddle point refined by Newton steps (reduced units).

    positions (N, 3); energy (epsilon, NaN for force-only models); max_force: largest per-atom
    |F|; n_unstable_modes: negative Hessian eigenvalues at the end (1 for a first-order saddle);
    iterations: Newton steps; hessian_method: 'autodiff' or 'finite-difference'.
    """

    positions: np.ndarray
    energy: float
    max_force: float
    n_unstable_modes: int
    iterations: int
    hessian_method: str


def polish_saddle(potential, R, box, tol: float, max_iter: int = 10, skin: float = 0.5,
                  hessian_step: float | None = None) -> PolishedSaddle:
    """Newton steps on F = 0 (`dynamics.minimize.newton_polish`) from a climbing-image saddle
    estimate R (N, 3): converges quadratically onto the first-order saddle the climbing image
    found, to tol * 1e-3 in the largest per-atom force. The Hessian is
    `properties.hessian.hessian` (autodiff, or finite differences of forces); the three
    translational zero modes are dropped through the pseudo-inverse.
    """
    box_j = jnp.asarray(np.asarray(box, np.float64))
    R = np.asarray(R, np.float64)
    shape = R.shape
    spec = potential.neighbors(box_j, skin=skin, n_atoms=len(R))
    nbrs = spec.allocate(jnp.asarray(R), extra_capacity=4)
    update = jax.jit(spec.update) if potential.capabilities.jit else spec.update
    ev = jax.jit(potential.evaluate) if potential.capabilities.jit else potential.evaluate

    def at(x):
        r = jnp.asarray(x.reshape(shape))
        return r, update(r, nbrs)

    def forces(x):
        r, nb = at(x)
        return np.asarray(ev(r, box_j, nb).forces, np.float64).reshape(-1)

    def hess(x):
        r, nb = at(x)
        return hessian(potential, r, box_j, nb, step=hessian_step)

    def fnorm(f):
        return float(np.max(np.linalg.norm(f.reshape(-1, 3), axis=1)))

    x, F, it = newton_polish(forces, lambda x: hess(x).matrix, R.reshape(-1), tol * 1e-3, fnorm, max_iter)
    H = hess(x)
    lam = np.linalg.eigvalsh(H.matrix)
    n_neg = int(np.sum(lam < -1e-8 * np.max(np.abs(lam))))
    r, nb = at(x)
    e = ev(r, box_j, nb).energy
    return PolishedSaddle(positions=x.reshape(shape), energy=float("nan") if e is None else float(e),
                          max_force=fnorm(F), n_unstable_modes=n_neg, iterations=it, hessian_method=H.method)
