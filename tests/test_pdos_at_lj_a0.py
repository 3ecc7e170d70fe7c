"""pdos_0k at the model's own a0 and at LJ's a0 (`at_reference_a0`): the `_at_lj_a0` nu_max error of
lj/smooth (own a0 slightly off LJ's) equals phonopy + ASE (LennardJones smooth=True vs smooth=False,
both at LJ's a0); for lj itself it is 0; without the setting nothing extra is reported."""

import math

import numpy as np
import pytest

import mlffbench  # noqa: F401  (x64)
from mlffbench.benchmarks import BenchContext, WorkflowSettings, battery
from mlffbench.benchmarks.pdos import compare_pdos_0k, run_pdos_0k
from mlffbench.potentials import load_potential
from mlffbench.properties import phonons as ph
from mlffbench.units import ARGON
from phonopy_reference import phonopy_with_ase_lj

RC = 2.5
MESH = 6
SMALL = {"zero_kelvin.supercell": 3, "zero_kelvin.mesh": MESH, "zero_kelvin.dos_points": 101,
         "zero_kelvin.band_points_per_segment": 2, "zero_kelvin.relax_positions": False}


def _ctx(tmp_path, role, at_ref=True):
    return BenchContext(settings=WorkflowSettings(overrides=SMALL, at_reference_a0=at_ref), units=ARGON,
                        workdir=tmp_path / role, role=role, reference_potential=load_potential("lj"),
                        benchmark="pdos_0k")


@pytest.fixture(scope="module")
def ref_raw(tmp_path_factory):
    return run_pdos_0k(load_potential("lj"), _ctx(tmp_path_factory.mktemp("ref"), "reference"))


def _phonopy_nu_max(a0, smooth):
    """Highest frequency (reduced, angular / 2 pi) on the workflow's Gamma-centred MESH^3 q-mesh from
    phonopy finite displacements with ASE's LennardJones (rc 2.5, smooth: switch from 0.8 rc) in the
    same 3x3x3 conventional supercell."""
    phn = phonopy_with_ase_lj(a0, smooth, supercell=3)
    prim = ph.fcc_primitive_cell(a0)
    q = ph.mesh_qpoints(prim, MESH, True)
    phn.run_qpoints(q @ prim / (2 * math.pi))  # phonopy: primitive reciprocal coordinates
    return float(np.max(phn.qpoints.frequencies)) / (2 * math.pi)


def test_lj_smooth_at_ljs_a0_matches_phonopy_ase(tmp_path, ref_raw):
    model = run_pdos_0k(load_potential("lj/smooth"), _ctx(tmp_path, "model"))
    at = model["at_reference_a0"]
    a_lj = ref_raw["lattice_constant"]["reduced"]
    assert at["lattice_constant"]["reduced"] == a_lj
    assert abs(model["lattice_constant"]["reduced"] / a_lj - 1) > 1e-4  # its own a0 is another one
    m = compare_pdos_0k(model, ref_raw)
    expected = _phonopy_nu_max(a_lj, True) / _phonopy_nu_max(a_lj, False) - 1.0
    assert -5e-3 < expected < -1e-3  # the smooth switch softens the top mode
    # measured: phonopy -4.1463e-3, ours -4.1486e-3 (phonopy's 1e-3 sigma displacement is the limit)
    assert m["nu_max_rel_error_at_lj_a0"]["signed"] == pytest.approx(expected, abs=2e-5)
    assert m["nu_max_rel_error_at_lj_a0"]["value"] == pytest.approx(abs(expected), abs=2e-5)
    # own-a0 and LJ-a0 errors differ (the a0 error is in one, not the other)
    assert abs(m["nu_max_rel_error"]["signed"] - expected) > 1e-4
    assert m["dos_w1_rel_at_lj_a0"]["value"] > 0
    assert (tmp_path / "model" / "at_reference_a0" / "total_dos.dat").is_file()
    metrics = battery()["pdos_0k"].metrics
    for name in ("nu_max_rel_error", "dos_w1_rel"):
        own, at_lj = metrics[name], metrics[f"{name}_at_lj_a0"]
        assert (at_lj.unit, at_lj.good, at_lj.bad) == (own.unit, own.good, own.bad)


def test_lj_against_itself_is_zero_and_setting_off_adds_nothing(tmp_path, ref_raw):
    m = compare_pdos_0k(run_pdos_0k(load_potential("lj"), _ctx(tmp_path, "model")), ref_raw)
    assert m["nu_max_rel_error_at_lj_a0"]["value"] < 1e-12
    assert m["dos_w1_rel_at_lj_a0"]["value"] < 1e-12
    off = run_pdos_0k(load_potential("lj/smooth"), _ctx(tmp_path, "model", at_ref=False))
    assert "at_reference_a0" not in off
    assert not any(k.endswith("_at_lj_a0") for k in compare_pdos_0k(off, ref_raw))
