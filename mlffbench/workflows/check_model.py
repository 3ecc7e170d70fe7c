"""`mlffbench check-model`: integrity checks a potential must pass before any property is trusted.

Checks (each with its number, tolerance and pass/fail):
* forces_vs_finite_differences: -F.v against central differences of E along random directions v
  (conservative models only), relative to the RMS force;
* translation / rotation / permutation invariance of E, equivariance of F;
* smoothness_strain_work: a perfect FCC crystal strained uniformly through the lattice constant at
  which a neighbour shell crosses the cutoff, with one neighbour list allocated and updated as in
  NPT MD; the energy change must equal -integral P dV (P from `potential.stress`, Simpson on a fine
  grid). An energy step at rc (plain truncation) is missed by the integral and shows up as the
  shell's pair count times the step. Models with an energy and a stress only;
* closed_loop_work: the work of the forces around a closed loop of atom displacements, sum F.dR,
  relative to its scale 2 pi A <|F|>: ~round-off for F = -grad E, a measure of how non-conservative
  a force-only model is;
* extensivity: a 2x2x2 replica has 8x the energy and the tiled forces.

A dimer scan through the cutoff is recorded for the plot (and the force jump at rc), not checked.
Everything runs in the potential's dtype (float64 recommended: `--dtype float64`); tolerances
scale with the dtype's machine epsilon. Values are reported signed where they have a sign, never
clamped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field
from scipy.integrate import cumulative_simpson

from mlffbench.config import StrictModel
from mlffbench.errors import SimulationError
from mlffbench.neighbors import forced_rebuild
from mlffbench.potentials.base import Potential
from mlffbench.structures import fcc


class CheckModelConfig(StrictModel):
    """Settings in reduced units (sigma). Defaults suit LJ argon and models trained on it."""

    seed: int = 0
    lattice_constant_sigma: float = Field(1.5496, gt=0.5)
    n_cells: int = Field(3, ge=2, le=5)
    displacement_sigma: float = Field(0.04, ge=0)
    fd_step_sigma: float = Field(1e-5, gt=0)
    fd_directions: int = Field(8, ge=1)
    tolerance_float64: float = Field(1e-6, gt=0)
    tolerance_float32: float = Field(2e-3, gt=0)
    dimer_r_min_sigma: float = Field(0.9, gt=0.3)
    dimer_points: int = Field(400, ge=20)
    strain_cells: int = Field(4, ge=4, le=6, description="FCC cells per side of the strained crystal "
                              "(>= 4: one minimum-image list in fractional coordinates, as in NPT MD)")
    strain_window: float = Field(0.015, gt=0, le=0.05, description="relative half-width of the lattice-"
                                 "constant range around the shell crossing")
    strain_points: int = Field(61, ge=11, description="lattice constants on the grid (odd: Simpson)")
    strain_tolerance: float = Field(2e-3, gt=0, description="|Delta E + integral P dV| per atom "
                                    "(epsilon); a force step at rc costs <~ half a grid cell of work")
    loop_points: int = Field(48, ge=8, description="points on the closed displacement loop")
    loop_tolerance: float = Field(1e-5, gt=0, description="closed-loop work relative to 2 pi A <|F|> "
                                  "(x10 in float32); a gradient field leaves quadrature error only (~1e-7 "
                                  "for lj/smooth's C1 switch), a torque c z x R_i per atom gives ~2e-4 c")


def _evaluator(pot: Potential, box: np.ndarray, n_atoms: int, skin: float = 0.3):
    """(R) -> (E or nan, F) for arbitrary positions in this box. Each call rebuilds the list
    from R into the capacity of the first allocation inside one compiled program (a fresh
    allocation per call would size a new list shape, and compile again, for each configuration);
    it re-allocates, with more room, only when a configuration does not fit."""
    spec = pot.neighbors(box, skin=skin, n_atoms=n_atoms)
    boxj = jnp.asarray(box)
    half_cell = 0.5 * boxj[:, 0]

    @jax.jit
    def fn(R, template):
        nb = forced_rebuild(spec.update, half_cell, R, template)
        e, f, _ = pot.evaluate(R, boxj, nb)
        return (jnp.nan if e is None else e), f, nb.did_buffer_overflow

    template = None  # the list whose capacity every call rebuilds into

    def ev(R):
        nonlocal template
        R = jnp.asarray(np.asarray(R, np.float64))
        for extra in (16, 64, 256):
            if template is None:
                template = spec.allocate(R, extra_capacity=extra)
            e, f, overflow = fn(R, template)
            if not bool(overflow):
                return float(e), np.asarray(f, np.float64)
            template = None
        raise SimulationError(f"check-model: neighbour list of {pot.name} overflowed after re-allocation")

    ev.program = fn  # the compiled evaluation (tests count its compilations)
    return ev


def _tracking_evaluator(pot: Potential, box: np.ndarray, R0: np.ndarray, skin: float = 0.3):
    """(R) -> (E or nan, F) for positions reached from R0 step by step (a scan, a loop): one list
    allocated at R0 and updated as in MD, so one compile serves every call."""
    spec = pot.neighbors(box, skin=skin, n_atoms=len(R0))
    boxj = jnp.asarray(box)
    state = {"nbrs": spec.allocate(jnp.asarray(np.asarray(R0, np.float64)), extra_capacity=16)}

    @jax.jit
    def step(R, nb):
        nb = spec.update(R, nb)
        e, F, _ = pot.evaluate(R, boxj, nb)
        return nb, (jnp.nan if e is None else e), F

    def ev(R):
        nb, e, F = step(jnp.asarray(np.asarray(R, np.float64)), state["nbrs"])
        if bool(nb.did_buffer_overflow):
            raise SimulationError(f"check-model: neighbour list overflowed along a scan of {pot.name}")
        state["nbrs"] = nb
        return float(e), np.asarray(F, np.float64)

    return ev


def _check(name: str, value: float, tol: float, unit: str, what: str, applicable: bool = True,
           why_not: str = "the model predicts forces only (no energy)", **extra) -> dict:
    """One check: passed when |value| <= tol (value reported as computed, signed where signed)."""
    if not applicable:
        return {"name": name, "passed": None, "value": None, "tolerance": tol, "unit": unit,
                "description": what, "note": f"not applicable: {why_not}"}
    ok = bool(np.isfinite(value) and abs(value) <= tol)
    return {"name": name, "passed": ok, "value": float(value), "tolerance": tol, "unit": unit, "description": what,
            **extra}


def fcc_shell_radii(a: float, r_max: float) -> np.ndarray:
    """Distinct FCC neighbour distances up to r_max for lattice constant a (sorted, shape (k,)).

    Sites are integer triples (x, y, z) * a/2 with x + y + z even."""
    m = int(np.ceil(2 * r_max / a)) + 1
    g = np.arange(-m, m + 1)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    n2 = (x ** 2 + y ** 2 + z ** 2)[((x + y + z) % 2 == 0) & ((x ** 2 + y ** 2 + z ** 2) > 0)]
    r = np.sqrt(np.unique(n2)) * a / 2
    return r[r <= r_max]


def strain_work(pot: Potential, cfg: CheckModelConfig) -> dict:
    """Energy change of a uniformly strained perfect FCC crystal against -integral P dV.

    The lattice constant runs over a0_x (1 +- window), where a0_x is where the outermost shell
    inside rc at `lattice_constant_sigma` reaches rc. One list (fractional coordinates, as in NPT
    MD) is allocated at the smallest lattice constant, the densest state, and updated at each point.

    Returns lattice constants a (sigma), volumes V (sigma^3), energy E (epsilon), pressure P
    (epsilon/sigma^3, -tr(stress)/3), discrepancy(V) = E(V) - E(V0) + integral_V0^V P dV per atom
    (epsilon, signed), the crossing lattice constant and shell radius factor.
    """
    rc = float(pot.cutoff)
    shells = fcc_shell_radii(1.0, rc / cfg.lattice_constant_sigma)  # radii in units of a
    k = float(shells[-1])  # outermost shell inside rc at a0: it leaves the cutoff as a grows
    a_x = rc / k
    a = np.linspace(a_x * (1 - cfg.strain_window), a_x * (1 + cfg.strain_window), cfg.strain_points | 1)
    s = fcc(cfg.strain_cells, 1.0)
    frac = np.asarray(s.positions) @ np.linalg.inv(np.asarray(s.box)).T
    box0 = np.asarray(s.box) * a[0]
    spec = pot.neighbors(box0, skin=0.3, fractional=True, n_atoms=len(frac))
    S = jnp.asarray(frac)
    nbrs = spec.allocate(S)

    @jax.jit
    def point(nb, box):
        nb = spec.update(S, nb, box=box)
        e, _, stress = pot.evaluate(S @ box.T, box, nb, stress=True)
        return nb, e, -jnp.trace(stress) / 3.0

    E, P = [], []
    for ai in a:
        nbrs, e, p = point(nbrs, jnp.asarray(np.asarray(s.box) * ai))
        if bool(nbrs.did_buffer_overflow):
            raise SimulationError("strain check: neighbour list overflowed (should not happen: it was "
                                  "allocated in the densest state)")
        E.append(float(e))
        P.append(float(p))
    E, P = np.asarray(E), np.asarray(P)
    V = a ** 3 * cfg.strain_cells ** 3
    work = cumulative_simpson(P, x=V, initial=0.0)
    n = len(frac)
    return {"lattice_constant_sigma": a, "volume_sigma3": V, "energy_epsilon": E, "pressure_epsilon_per_sigma3": P,
            "discrepancy_epsilon_per_atom": (E - E[0] + work) / n, "crossing_lattice_constant_sigma": a_x,
            "shell_radius_over_a": k, "n_atoms": n}


def loop_directions(shape: tuple[int, ...], rng) -> tuple[np.ndarray, np.ndarray]:
    """Two orthonormal random directions u, w in the 3N-dimensional configuration space."""
    u = rng.normal(size=shape)
    u /= np.linalg.norm(u)
    w = rng.normal(size=shape)
    w -= np.sum(w * u) * u
    return u, w / np.linalg.norm(w)


def loop_work(forces, R0: np.ndarray, u: np.ndarray, w: np.ndarray, amplitude: float,
              n_points: int) -> tuple[float, float]:
    """Work of the forces around the circle R(t) = R0 + A (cos t u + sin t w), t in [0, 2 pi).

    Args:
        forces: R (N, 3) -> F (N, 3) (epsilon/sigma).
        u, w: orthonormal directions, shape (N, 3); A = amplitude (sigma) is |R - R0|.

    Returns (W = sum F.dR (epsilon, signed), 2 pi A <|F|> (epsilon), the scale W is judged by).
    The integrand is periodic, so the trapezoid rule is spectrally accurate (exact for a force
    linear in R with n_points >= 3)."""
    t = 2 * np.pi * np.arange(n_points) / n_points
    dots, norms = [], []
    for ti in t:
        F = forces(R0 + amplitude * (np.cos(ti) * u + np.sin(ti) * w))
        dots.append(float(np.sum(F * amplitude * (-np.sin(ti) * u + np.cos(ti) * w))))
        norms.append(float(np.linalg.norm(F)))
    return 2 * np.pi * float(np.mean(dots)), 2 * np.pi * amplitude * float(np.mean(norms))


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _fd_force_check(ev, R0, F0, f_rms, cons, f32, tol, cfg, rng) -> dict:
    """Forces vs central finite differences of the energy along random unit directions."""
    if cons:
        h = 1e-2 if f32 else cfg.fd_step_sigma
        errs = []
        for _ in range(cfg.fd_directions):
            v = rng.normal(size=R0.shape)
            v /= np.linalg.norm(v)
            fd = (ev(R0 + h * v)[0] - ev(R0 - h * v)[0]) / (2 * h)
            errs.append(abs(fd + float(np.sum(F0 * v))))
        fd_err = max(errs) / f_rms
    else:
        fd_err = float("nan")
    return _check("forces_vs_finite_differences", fd_err, tol * (10 if f32 else 1),
                  "relative to RMS force", "max over random unit directions v of |dE/dv (central FD) + F.v|",
                  applicable=cons)


def _symmetry_checks(pot, ev, s, R0, E0, F0, f_rms, e_scale, cons, tol, cfg, rng) -> list[dict]:
    """Translation, rotation (box rotated with the atoms), permutation and zero net force."""
    n = len(R0)
    t = rng.uniform(-1, 1, 3) * cfg.lattice_constant_sigma
    Et, Ft = ev(R0 + t)
    checks = [_check("translation_energy", abs(Et - E0) / e_scale, tol, "relative",
                     "|E(R + t) - E(R)| / |E|", applicable=cons),
              _check("translation_forces", np.max(np.abs(Ft - F0)) / f_rms, tol, "relative to RMS force",
                     "max |F(R + t) - F(R)|")]
    Q = _random_rotation(rng)
    ev_rot = _evaluator(pot, Q @ s.box, n)
    Er, Fr = ev_rot(R0 @ Q.T)
    checks.append(_check("rotation_energy", abs(Er - E0) / e_scale, tol, "relative",
                         "|E(QR, Q box) - E(R)| / |E|", applicable=cons))
    checks.append(_check("rotation_forces", np.max(np.abs(Fr - F0 @ Q.T)) / f_rms, tol, "relative to RMS force",
                         "max |F(QR) - Q F(R)|"))
    perm = rng.permutation(n)
    Ep, Fp = ev(R0[perm])
    checks.append(_check("permutation_energy", abs(Ep - E0) / e_scale, tol, "relative",
                         "|E(PR) - E(R)| / |E|", applicable=cons))
    checks.append(_check("permutation_forces", np.max(np.abs(Fp - F0[perm])) / f_rms, tol,
                         "relative to RMS force", "max |F(PR) - P F(R)|"))
    # Newton's third law / zero net force (holds for any translation-invariant model)
    checks.append(_check("zero_net_force", np.linalg.norm(F0.sum(0)) / (f_rms * np.sqrt(n)), tol,
                         "relative to RMS force * sqrt(N)", "|sum_i F_i|"))
    return checks


def _smoothness_checks(pot, s, R0, cons, f32, cfg, rng) -> tuple[list[dict], dict | None]:
    """Strain work through a neighbour-shell crossing (needs energy and stress) and, for a
    force-only model, the closed-loop work of its forces. Returns (checks, strain record)."""
    strain_ok = cons and pot.capabilities.stress
    strain = strain_work(pot, cfg) if strain_ok else None
    disc = strain["discrepancy_epsilon_per_atom"] if strain_ok else None
    worst = float(disc[np.argmax(np.abs(disc))]) if strain_ok else np.nan
    checks = [_check(
        "smoothness_strain_work", worst, cfg.strain_tolerance, "epsilon/atom",
        "signed extreme over the strain path of [E(V) - E(V0) + integral P dV] / N for a perfect FCC crystal "
        "expanded through the lattice constant at which a neighbour shell crosses rc",
        applicable=strain_ok, why_not="needs an energy and a stress",
        **({"final_value": float(disc[-1]),
            "crossing_lattice_constant_sigma": strain["crossing_lattice_constant_sigma"]} if strain_ok else {}))]
    if cons:
        W, w_scale = np.nan, 1.0
    else:
        u, w = loop_directions(R0.shape, rng)
        ev_loop = _tracking_evaluator(pot, s.box, R0)
        W, w_scale = loop_work(lambda R: ev_loop(R)[1], R0, u, w, cfg.displacement_sigma * np.sqrt(len(R0)),
                               cfg.loop_points)
    checks.append(_check("closed_loop_work", W / w_scale, cfg.loop_tolerance * (10 if f32 else 1),
                         "relative to 2 pi A <|F|>", "sum F.dR around a closed loop of atom displacements "
                         f"(radius A = {cfg.displacement_sigma} sigma * sqrt(N) in 3N dimensions), signed",
                         applicable=not cons, why_not="zero by construction for F = -grad E",
                         **({} if cons else {"work_epsilon": W})))
    return checks, strain


def _dimer_scan(pot, cons, f32, cfg) -> dict:
    """Dimer E(r), F(r) through the cutoff: recorded for the plot and the force jump, not a check."""
    rc = float(pot.cutoff)

    def dimer_positions(r):
        return np.array([[0.0, 0.0, 0.0], [r, 0.0, 0.0]])

    r_grid = np.linspace(cfg.dimer_r_min_sigma, rc + 0.3, cfg.dimer_points)
    ev_d = _tracking_evaluator(pot, np.eye(3) * (2.0 * (rc + 0.3) + 1.0), dimer_positions(r_grid[0]))
    scan = [ev_d(dimer_positions(r)) for r in r_grid]
    delta = 1e-3 if f32 else 1e-6
    force_jump = float(np.max(np.abs(ev_d(dimer_positions(rc + delta))[1] - ev_d(dimer_positions(rc - delta))[1])))
    E_s = np.array([x[0] for x in scan])
    F_s = np.array([x[1][1, 0] for x in scan])  # force on atom 2 along the bond
    return {"r_sigma": r_grid, "energy_epsilon": E_s if cons else None, "force_epsilon_per_sigma": F_s,
            "force_jump_at_cutoff_epsilon_per_sigma": force_jump,
            "note": "force jump is informational (lj/cut/shift has one of ~0.039 epsilon/sigma)"}


def _extensivity_checks(pot, s, R0, E0, F0, f_rms, cons, tol) -> tuple[list[dict], int]:
    """Energy and forces of a 2x2x2 replica against 8 E and tiled F; returns (checks, replica atoms)."""
    reps = np.array([(i, j, k) for i in range(2) for j in range(2) for k in range(2)], float)
    R_big = (R0[None, :, :] + (reps @ s.box.T)[:, None, :]).reshape(-1, 3)
    ev_big = _evaluator(pot, 2 * s.box, len(R_big))
    Eb, Fb = ev_big(R_big)
    return [_check("extensivity_energy", abs(Eb / (8 * E0) - 1.0) if cons else np.nan, tol, "relative",
                   "|E(2x2x2 replica) / (8 E) - 1|", applicable=cons),
            _check("extensivity_forces", np.max(np.abs(Fb - np.tile(F0, (8, 1)))) / f_rms, tol,
                   "relative to RMS force", "max |F(replica) - tiled F|")], len(R_big)


def run_checks(pot: Potential, cfg: CheckModelConfig) -> dict:
    """All checks on `pot`; returns {'checks': [...], 'passed': bool, 'dimer': {...}, ...}.

    The random draws happen in a fixed order (displacements, FD directions, translation,
    rotation, permutation, loop directions), so a seed gives the same numbers."""
    rng = np.random.default_rng(cfg.seed)
    f32 = pot.is_float32
    tol = cfg.tolerance_float32 if f32 else cfg.tolerance_float64
    s = fcc(cfg.n_cells, cfg.lattice_constant_sigma)
    R0 = s.positions + rng.uniform(-cfg.displacement_sigma, cfg.displacement_sigma, s.positions.shape)
    n = len(R0)
    ev = _evaluator(pot, s.box, n)
    E0, F0 = ev(R0)
    f_rms = float(np.sqrt(np.mean(F0 ** 2))) or 1.0
    cons = pot.conservative
    e_scale = max(abs(E0), 1.0) if cons else 1.0

    checks = [_fd_force_check(ev, R0, F0, f_rms, cons, f32, tol, cfg, rng)]
    checks += _symmetry_checks(pot, ev, s, R0, E0, F0, f_rms, e_scale, cons, tol, cfg, rng)
    smooth, strain = _smoothness_checks(pot, s, R0, cons, f32, cfg, rng)
    checks += smooth
    dimer = _dimer_scan(pot, cons, f32, cfg)
    extensive, n_replica = _extensivity_checks(pot, s, R0, E0, F0, f_rms, cons, tol)
    checks += extensive

    applicable = [c for c in checks if c["passed"] is not None]
    return {
        "potential": pot.describe(),
        "dtype": jnp.dtype(pot.dtype).name,
        "passed": all(c["passed"] for c in applicable),
        "n_passed": sum(bool(c["passed"]) for c in applicable),
        "n_checks": len(applicable),
        "checks": checks,
        "structure": {"n_atoms": n, "n_cells": cfg.n_cells, "lattice_constant_sigma": cfg.lattice_constant_sigma,
                      "displacement_sigma": cfg.displacement_sigma, "replica_atoms": n_replica},
        "strain": strain,
        "dimer": dimer,
    }


def plot_dimer(result: dict, path, units) -> None:
    from mlffbench.plotting import pyplot, save

    plt = pyplot()

    d = result["dimer"]
    r = np.asarray(d["r_sigma"]) * units.sigma_angstrom
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    if d["energy_epsilon"] is not None:
        E = np.asarray(d["energy_epsilon"])
        ax[0].plot(r, (E - E[-1]) * units.epsilon_ev * 1e3)
    ax[0].set_ylabel("dimer energy - E(far) (meV)")
    ax[1].plot(r, np.asarray(d["force_epsilon_per_sigma"]) * units.scale("force") * 1e3)
    ax[1].set_ylabel("force on atom 2 (meV/Å)")
    for a in ax:
        a.axvline(result["potential"]["cutoff_sigma"] * units.sigma_angstrom, color="k", lw=0.6, ls="--")
        a.set_xlabel("r (Å)")
    fig.tight_layout()
    save(fig, path, dpi=110, bbox_inches=None)
