"""`mlffbench check-model`: LJ passes every check; a truncated LJ (energy step at rc) fails the
strain-work smoothness check by the analytic energy step of the neighbour shell that crosses rc;
the closed-loop work of a force field equals its exact value."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import yaml
from conftest import run_cli

from mlffbench.potentials import load_potential
from mlffbench.potentials.base import Potential
from mlffbench.workflows.check_model import (
    CheckModelConfig,
    fcc_shell_radii,
    loop_directions,
    loop_work,
    run_checks,
    strain_work,
)

FAST = {"n_cells": 2, "dimer_points": 60, "fd_directions": 4}
RC = 2.5
PHI_RC = 4 * (RC ** -12 - RC ** -6)  # LJ pair energy at rc (epsilon), the step of plain truncation


def test_lj_passes_all_checks(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(FAST))
    code, out = run_cli(["check-model", "--model", "lj", "-c", str(cfg), "-o", str(tmp_path / "o")])
    assert code == 0, out
    res = json.loads((tmp_path / "o" / "check_model.json").read_text())
    assert res["passed"] and res["n_passed"] == res["n_checks"] == 11
    assert (tmp_path / "o" / "dimer.png").is_file()
    # lj/cut/shift has a force (not energy) step at rc: -phi'(rc) = 24 (2 rc^-13 - rc^-7)
    jump = abs(24 * (2 * RC ** -13 - RC ** -7))
    assert abs(res["dimer"]["force_jump_at_cutoff_epsilon_per_sigma"] - jump) < 1e-6


def test_fcc_shells():
    """FCC neighbour distances a sqrt(k/2): 12, 6, 24, 12, 24 neighbours at k = 1..5; k = 14 absent
    (28 = 4 * 7 is no sum of three squares)."""
    r = fcc_shell_radii(1.0, 2.7)
    assert np.allclose(r, np.sqrt(np.array([k for k in range(1, 15) if k != 14]) / 2))


def test_truncated_lj_fails_strain_work_by_the_shell_energy_step(tmp_path):
    """Expanding the FCC crystal through a = rc / sqrt(5/2), its 24-neighbour shell (12 pairs per atom)
    leaves the cutoff: E rises by 12 |phi(rc)| per atom that -integral P dV cannot see."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(FAST))
    code, out = run_cli(["check-model", "--model", "lj/cut", "-c", str(cfg), "-o", str(tmp_path / "o")])
    assert code == 1, out  # a failed check is a failed run
    res = json.loads((tmp_path / "o" / "check_model.json").read_text())
    by = {c["name"]: c for c in res["checks"]}
    strain = by["smoothness_strain_work"]
    assert strain["passed"] is False
    assert abs(strain["crossing_lattice_constant_sigma"] - RC / np.sqrt(2.5)) < 1e-12
    # + the force step's share of half a grid cell of work (<~2e-4 epsilon/atom: the lj/cut/shift value)
    assert abs(strain["value"] - 12 * abs(PHI_RC)) < 5e-4 and abs(strain["final_value"] - 12 * abs(PHI_RC)) < 5e-4
    assert by["rotation_energy"]["passed"] and by["forces_vs_finite_differences"]["passed"]
    assert [c["name"] for c in res["checks"] if c["passed"] is False] == ["smoothness_strain_work"]


def test_smooth_lj_passes_strain_work_to_integration_error():
    cfg = CheckModelConfig(**FAST)
    res = strain_work(load_potential("lj/smooth"), cfg)
    disc = res["discrepancy_epsilon_per_atom"]
    assert res["n_atoms"] == 4 * 4 ** 3 and len(disc) == cfg.strain_points
    assert np.max(np.abs(disc)) < 1e-7 < cfg.strain_tolerance  # C1 energy: Simpson error only
    # the path does cross the shell: the pressure changes with the pair count
    assert res["lattice_constant_sigma"][0] < res["crossing_lattice_constant_sigma"] < res["lattice_constant_sigma"][-1]


def test_closed_loop_work_of_a_linear_force_field_is_exact():
    """F = M R with M antisymmetric (3N x 3N): sum F.dR around R0 + A (cos t u + sin t w) is
    2 pi A^2 w.M u (Stokes; the curl of M R is 2M); the trapezoid rule is exact for it."""
    rng = np.random.default_rng(3)
    R0 = rng.normal(size=(4, 3))
    B = rng.normal(size=(12, 12))
    M = B - B.T
    u, w = loop_directions(R0.shape, rng)
    A = 0.3
    W, scale = loop_work(lambda R: (M @ R.ravel()).reshape(R.shape), R0, u, w, A, 16)
    assert abs(W - 2 * np.pi * A ** 2 * (w.ravel() @ M @ u.ravel())) < 1e-12 and scale > 0
    W_sym, _ = loop_work(lambda R: ((M + M.T) @ R.ravel()).reshape(R.shape), R0, u, w, A, 16)
    assert abs(W_sym) < 1e-12  # a gradient field (symmetric M) does no work around a loop


def test_force_only_model_is_judged_by_its_loop_work():
    """-grad of lj/smooth given as direct forces plus a curl (a torque about z on every atom,
    F_i += c z x R_i) fails the closed-loop check; the energy checks do not apply."""
    lj = load_potential("lj/smooth")

    def forces(R, box, nbrs):
        curl = 0.5 * jnp.stack([-R[:, 1], R[:, 0], jnp.zeros_like(R[:, 0])], axis=1)
        return -jax.grad(lj.energy)(R, box, nbrs) + curl

    pot = Potential("lj-curl", lj.cutoff, direct_force_fn=forces, neighbor_format=lj.neighbor_format, kind="test")
    by = {c["name"]: c for c in run_checks(pot, CheckModelConfig(**FAST))["checks"]}
    assert by["closed_loop_work"]["passed"] is False and abs(by["closed_loop_work"]["value"]) > 5e-5
    assert by["smoothness_strain_work"]["passed"] is None and by["forces_vs_finite_differences"]["passed"] is None


def test_bad_dtype_is_one_line_error(tmp_path):
    code, out = run_cli(["check-model", "--model", "lj", "--dtype", "float16", "-o", str(tmp_path / "o")])
    assert code == 2 and "--dtype" in out and not (tmp_path / "o").exists()
