"""`mlffbench check-model`: LJ passes every check; a truncated LJ fails the smoothness check by
exactly its analytic energy jump |phi(rc)|."""

from __future__ import annotations

import json

import yaml
from conftest import run_cli

FAST = {"n_cells": 2, "dimer_points": 60, "fd_directions": 4}


def test_lj_passes_all_checks(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(FAST))
    code, out = run_cli(["check-model", "--model", "lj", "-c", str(cfg), "-o", str(tmp_path / "o")])
    assert code == 0, out
    res = json.loads((tmp_path / "o" / "check_model.json").read_text())
    assert res["passed"] and res["n_passed"] == res["n_checks"] == 12
    assert (tmp_path / "o" / "dimer.png").is_file()
    # lj/cut/shift has a force (not energy) step at rc: -phi'(rc) = 24 (2 rc^-13 - rc^-7)
    rc = 2.5
    jump = abs(24 * (2 * rc ** -13 - rc ** -7))
    assert abs(res["dimer"]["force_jump_at_cutoff_epsilon_per_sigma"] - jump) < 1e-6


def test_truncated_lj_fails_smoothness_by_its_energy_jump(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(FAST))
    code, out = run_cli(["check-model", "--model", "lj/cut", "-c", str(cfg), "-o", str(tmp_path / "o")])
    assert code == 1, out  # a failed check is a failed run
    res = json.loads((tmp_path / "o" / "check_model.json").read_text())
    by = {c["name"]: c for c in res["checks"]}
    rc = 2.5
    phi_rc = abs(4 * (rc ** -12 - rc ** -6))  # energy step of plain truncation; well depth is 1 epsilon
    assert by["smoothness_energy_gap_at_cutoff"]["passed"] is False
    assert abs(by["smoothness_energy_gap_at_cutoff"]["value"] - phi_rc) < 1e-5
    assert by["rotation_energy"]["passed"] and by["forces_vs_finite_differences"]["passed"]


def test_bad_dtype_is_one_line_error(tmp_path):
    code, out = run_cli(["check-model", "--model", "lj", "--dtype", "float16", "-o", str(tmp_path / "o")])
    assert code == 2 and "--dtype" in out and not (tmp_path / "o").exists()
