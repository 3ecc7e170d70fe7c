"""`mlffbench md`: LJ crystal stays solid, NVE conserves energy, RDF peak at the FCC nearest-neighbour
distance, --compare with the same potential gives RDF distance 0, melting is detected."""

from __future__ import annotations

import json

import numpy as np
import yaml
from conftest import A0_LJ, run_cli

from mlffbench.structures import fcc
from mlffbench.units import ARGON
from mlffbench.properties.structure import fcc_order_parameter as fcc_order

CFG = {"units": {"system": "metal"}, "system": {"supercell": 3}, "temperatures": [40.0], "replicas": 2,
       "timestep": 5.0, "equilibration": 200.0, "duration": 600.0, "sample_every": 20, "rdf_bins": 40}


def test_order_parameter_solid_vs_disordered():
    s = fcc(3, A0_LJ)
    assert abs(fcc_order(s.positions, s.box, 3) - 1.0) < 1e-12
    rng = np.random.default_rng(0)
    gas = rng.uniform(0, 1, s.positions.shape) @ s.box.T
    assert fcc_order(gas, s.box, 3) < 0.3


def test_lj_md_at_40K_with_compare(tmp_path):
    cfg = tmp_path / "md.yaml"
    cfg.write_text(yaml.safe_dump(CFG))
    code, out = run_cli(["md", "--model", "lj", "-c", str(cfg), "-o", str(tmp_path / "o"), "--compare", "lj"])
    assert code == 0, out
    res = json.loads((tmp_path / "o" / "md.json").read_text())
    t = res["temperatures"][0]
    assert not t["any_failed"] and len(t["replicas"]) == 2
    for r in t["replicas"]:
        assert abs(r["nve_drift_eV_per_atom_per_ps"]) < 1e-4  # 3% of kT (3.4 meV) per ps
        assert r["min_order_parameter"] > 0.5
    assert t["rdf_distance_l2"] == 0.0  # same potential, same seeds: identical trajectories
    r, g = np.array(t["rdf"]["r_A"]), np.array(t["rdf"]["g"])
    nn = A0_LJ / np.sqrt(2) * ARGON.sigma_angstrom
    assert abs(r[np.argmax(g)] - nn) < 1.5 * (r[1] - r[0])
    assert (tmp_path / "o" / "trajectory_40.extxyz").is_file() and (tmp_path / "o" / "md.png").is_file()


def test_melting_is_reported_as_failure(tmp_path):
    """An impossible threshold (0.999) makes any thermal crystal count as 'melted' at the first sample."""
    cfg = tmp_path / "md.yaml"
    # duration 400 fs as in test_smooth_lj_compared_with_lj_finds_the_lattice_difference: its `lj`
    # production run (1 replica, 80 NVE steps) is then this very program, compiled once per file
    cfg.write_text(yaml.safe_dump({**CFG, "replicas": 1, "melt_threshold": 0.999, "equilibration": 0.0,
                                   "duration": 400.0, "save_trajectory": False}))
    code, out = run_cli(["md", "--model", "lj", "-c", str(cfg), "-o", str(tmp_path / "o")])
    assert code == 0, out
    t = json.loads((tmp_path / "o" / "md.json").read_text())["temperatures"][0]
    assert t["any_failed"] and t["replicas"][0]["failure"] == "melted"
    assert t["time_to_failure_ps"] <= 0.2


def test_bad_md_config(tmp_path):
    cfg = tmp_path / "md.yaml"
    cfg.write_text(yaml.safe_dump({**CFG, "replicas": 0}))
    code, out = run_cli(["md", "--model", "lj", "-c", str(cfg), "-o", str(tmp_path / "o")])
    assert code == 2 and "replicas" in out and not (tmp_path / "o").exists()


def test_smooth_lj_compared_with_lj_finds_the_lattice_difference(tmp_path):
    """lj/smooth against lj must find a difference: each runs at its own 0 K a0, and the switch makes
    its a0 differs from lj/cut/shift's (numpy lattice sums: -0.055 %); the first g(r) peak's centroid
    shifts by that much and with that sign (measured -0.048 % at 40 K, one replica)."""
    from test_battery_models import _lattice

    a_s, _ = _lattice(True)
    a_c, _ = _lattice(False)
    cfg = tmp_path / "md.yaml"
    cfg.write_text(yaml.safe_dump({**CFG, "replicas": 1, "duration": 400.0, "save_trajectory": False}))
    code, out = run_cli(["md", "--model", "lj/smooth", "-c", str(cfg), "-o", str(tmp_path / "o"),
                         "--compare", "lj"])
    assert code == 0, out
    res = json.loads((tmp_path / "o" / "md.json").read_text())
    assert abs(res["lattice_constant_A"] / ARGON.sigma_angstrom - a_s) < 1e-4
    t = res["temperatures"][0]
    assert t["rdf_distance_l2"] > 0.0

    def centroid(rdf):
        r, g = np.array(rdf["r_A"]), np.array(rdf["g"])
        nn = a_c / np.sqrt(2) * ARGON.sigma_angstrom
        w = (r > 0.85 * nn) & (r < 1.15 * nn)
        return float(np.sum(r[w] * g[w]) / np.sum(g[w]))

    shift = centroid(t["rdf"]) / centroid(t["compare"]["rdf"]) - 1
    expected = a_s / a_c - 1
    assert np.sign(shift) == np.sign(expected) and abs(expected) > 1e-4, (shift, expected)
    assert abs(shift - expected) < 0.5 * abs(expected), (shift, expected)
