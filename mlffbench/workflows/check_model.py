"""`mlffbench check-model`: integrity checks a potential must pass before any property is trusted.

Checks (each with its number, tolerance and pass/fail):
* forces_vs_finite_differences: -F.v against central differences of E along random directions v
  (conservative models only), relative to the RMS force;
* translation / rotation / permutation invariance of E, equivariance of F;
* smoothness_at_cutoff: energy of a dimer just inside and outside the cutoff (gap -> 0 when E is
  continuous) and a fine scan from 0.9 sigma to beyond the cutoff with no step larger than the
  forces allow; force-only models are checked on the force instead;
* extensivity: a 2x2x2 replica has 8x the energy and the tiled forces.

Everything runs in the potential's dtype (float64 recommended: `--dtype float64`); tolerances
scale with the dtype's machine epsilon.
"""

from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp
from pydantic import Field

from mlffbench.config import StrictModel
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


def _evaluator(pot: Potential, box: np.ndarray, n_atoms: int, skin: float = 0.3):
    """(R) -> (E or nan, F) for positions in this box; a fresh list per call (never overflows)."""
    spec = pot.neighbors(box, skin=skin, n_atoms=n_atoms)
    boxj = jnp.asarray(box)
    if pot.conservative:
        fn = jax.jit(lambda R, nb: pot.energy_and_forces(R, boxj, nb))
    else:
        fn = jax.jit(lambda R, nb: (jnp.nan, pot.forces(R, boxj, nb)))

    def ev(R):
        R = jnp.asarray(np.asarray(R, np.float64))
        nb = spec.allocate(R, extra_capacity=16)  # jit recompiles only when the list shape changes
        e, f = fn(R, nb)
        return float(e), np.asarray(f, np.float64)

    return ev


def _check(name: str, value: float, tol: float, unit: str, what: str, applicable: bool = True) -> dict:
    if not applicable:
        return {"name": name, "passed": None, "value": None, "tolerance": tol, "unit": unit,
                "description": what, "note": "not applicable: the model predicts forces only (no energy)"}
    ok = bool(np.isfinite(value) and value <= tol)
    return {"name": name, "passed": ok, "value": float(value), "tolerance": tol, "unit": unit, "description": what}


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def run_checks(pot: Potential, cfg: CheckModelConfig) -> dict:
    """All checks on `pot`; returns {'checks': [...], 'passed': bool, 'dimer': {...}, ...}."""
    rng = np.random.default_rng(cfg.seed)
    eps = float(jnp.finfo(pot.dtype).eps)
    tol = cfg.tolerance_float64 if eps < 1e-10 else cfg.tolerance_float32
    s = fcc(cfg.n_cells, cfg.lattice_constant_sigma)
    R0 = s.positions + rng.uniform(-cfg.displacement_sigma, cfg.displacement_sigma, s.positions.shape)
    n = len(R0)
    ev = _evaluator(pot, s.box, n)
    E0, F0 = ev(R0)
    f_rms = float(np.sqrt(np.mean(F0 ** 2))) or 1.0
    e_scale = max(abs(E0), 1.0) if pot.conservative else 1.0
    cons = pot.conservative
    checks = []

    # forces vs finite differences of the energy
    if cons:
        h = cfg.fd_step_sigma if eps < 1e-10 else 1e-2
        errs = []
        for _ in range(cfg.fd_directions):
            v = rng.normal(size=R0.shape)
            v /= np.linalg.norm(v)
            fd = (ev(R0 + h * v)[0] - ev(R0 - h * v)[0]) / (2 * h)
            errs.append(abs(fd + float(np.sum(F0 * v))))
        fd_err = max(errs) / f_rms
    else:
        fd_err = float("nan")
    checks.append(_check("forces_vs_finite_differences", fd_err, tol * (10 if eps > 1e-10 else 1),
                         "relative to RMS force", "max over random unit directions v of |dE/dv (central FD) + F.v|",
                         applicable=cons))

    # translation
    t = rng.uniform(-1, 1, 3) * cfg.lattice_constant_sigma
    Et, Ft = ev(R0 + t)
    checks.append(_check("translation_energy", abs(Et - E0) / e_scale, tol, "relative",
                         "|E(R + t) - E(R)| / |E|", applicable=cons))
    checks.append(_check("translation_forces", np.max(np.abs(Ft - F0)) / f_rms, tol, "relative to RMS force",
                         "max |F(R + t) - F(R)|"))
    # rotation (box rotated with the atoms)
    Q = _random_rotation(rng)
    ev_rot = _evaluator(pot, Q @ s.box, n)
    Er, Fr = ev_rot(R0 @ Q.T)
    checks.append(_check("rotation_energy", abs(Er - E0) / e_scale, tol, "relative",
                         "|E(QR, Q box) - E(R)| / |E|", applicable=cons))
    checks.append(_check("rotation_forces", np.max(np.abs(Fr - F0 @ Q.T)) / f_rms, tol, "relative to RMS force",
                         "max |F(QR) - Q F(R)|"))
    # permutation
    perm = rng.permutation(n)
    Ep, Fp = ev(R0[perm])
    checks.append(_check("permutation_energy", abs(Ep - E0) / e_scale, tol, "relative",
                         "|E(PR) - E(R)| / |E|", applicable=cons))
    checks.append(_check("permutation_forces", np.max(np.abs(Fp - F0[perm])) / f_rms, tol,
                         "relative to RMS force", "max |F(PR) - P F(R)|"))
    # Newton's third law / zero net force (holds for any translation-invariant model)
    checks.append(_check("zero_net_force", np.linalg.norm(F0.sum(0)) / (f_rms * np.sqrt(n)), tol,
                         "relative to RMS force * sqrt(N)", "|sum_i F_i|"))

    # smoothness through the cutoff (dimer)
    rc = float(pot.cutoff)
    L = 2.0 * (rc + 0.3) + 1.0
    box_d = np.eye(3) * L
    ev_d = _evaluator(pot, box_d, 2)

    def dimer(r):
        return ev_d(np.array([[0.0, 0.0, 0.0], [r, 0.0, 0.0]]))

    delta = 1e-6 if eps < 1e-10 else 1e-3
    e_in, f_in = dimer(rc - delta)
    e_out, f_out = dimer(rc + delta)
    r_grid = np.linspace(cfg.dimer_r_min_sigma, rc + 0.3, cfg.dimer_points)
    scan = [dimer(r) for r in r_grid]
    E_s = np.array([x[0] for x in scan])
    F_s = np.array([x[1][1, 0] for x in scan])  # force on atom 2 along the bond
    h = r_grid[1] - r_grid[0]
    if cons:
        gap = abs(e_out - e_in)
        slack = 1.5 * h * np.maximum(np.abs(F_s[1:]), np.abs(F_s[:-1]))
        excess = float(np.max(np.maximum(np.abs(np.diff(E_s)) - slack, 0.0)))
        e_ref = max(float(E_s[-1] - np.min(E_s)), 1e-3)  # dimer well depth (1 epsilon for LJ)
        checks.append(_check("smoothness_energy_gap_at_cutoff", gap / e_ref, tol * 10, "relative to dimer well depth",
                             f"|E(rc + {delta:g}) - E(rc - {delta:g})| for a dimer"))
        checks.append(_check("smoothness_energy_scan", excess / e_ref, tol * 10, "relative to dimer well depth",
                             "largest step of E(r) beyond what |F| allows on a fine grid from "
                             f"{cfg.dimer_r_min_sigma} sigma to rc + 0.3"))
    else:
        f_ref = max(float(np.max(np.abs(F_s))), 1e-3)
        gap_f = float(np.max(np.abs(f_out - f_in)))
        checks.append(_check("smoothness_force_gap_at_cutoff", gap_f / f_ref, 1e-2, "relative to max dimer force",
                             f"|F(rc + {delta:g}) - F(rc - {delta:g})| for a dimer (force-only model)"))
    force_jump = float(np.max(np.abs(f_out - f_in)))

    # extensivity: 2x2x2 replica
    reps = np.array([(i, j, k) for i in range(2) for j in range(2) for k in range(2)], float)
    R_big = (R0[None, :, :] + (reps @ s.box.T)[:, None, :]).reshape(-1, 3)
    ev_big = _evaluator(pot, 2 * s.box, len(R_big))
    Eb, Fb = ev_big(R_big)
    checks.append(_check("extensivity_energy", abs(Eb / (8 * E0) - 1.0) if cons else np.nan, tol, "relative",
                         "|E(2x2x2 replica) / (8 E) - 1|", applicable=cons))
    checks.append(_check("extensivity_forces", np.max(np.abs(Fb - np.tile(F0, (8, 1)))) / f_rms, tol,
                         "relative to RMS force", "max |F(replica) - tiled F|"))

    applicable = [c for c in checks if c["passed"] is not None]
    return {
        "potential": pot.describe(),
        "dtype": jnp.dtype(pot.dtype).name,
        "passed": all(c["passed"] for c in applicable),
        "n_passed": sum(bool(c["passed"]) for c in applicable),
        "n_checks": len(applicable),
        "checks": checks,
        "structure": {"n_atoms": n, "n_cells": cfg.n_cells, "lattice_constant_sigma": cfg.lattice_constant_sigma,
                      "displacement_sigma": cfg.displacement_sigma, "replica_atoms": len(R_big)},
        "dimer": {"r_sigma": r_grid, "energy_epsilon": E_s if cons else None, "force_epsilon_per_sigma": F_s,
                  "force_jump_at_cutoff_epsilon_per_sigma": force_jump,
                  "note": "force jump is informational (lj/cut/shift has one of ~0.039 epsilon/sigma)"},
    }


def plot_dimer(result: dict, path, units) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.savefig(path, dpi=110)
    plt.close(fig)
