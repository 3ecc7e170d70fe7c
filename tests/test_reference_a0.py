"""Crystal properties at the model's own a0 and at LJ's a0 (issue: separate a0 error from the rest)."""

from types import SimpleNamespace

import pytest

from mlffbench.benchmarks import WorkflowSettings
from mlffbench.benchmarks._workflow import reference_a0_override
from mlffbench.benchmarks.neb import compare_migration_barrier
from mlffbench.potentials import load_potential
from mlffbench.units import ARGON


def _ctx(role, at_ref=True, system="metal"):
    return SimpleNamespace(settings=WorkflowSettings(at_reference_a0=at_ref), role=role,
                           reference_potential=load_potential("lj"), units=ARGON,
                           run_config=SimpleNamespace(units=SimpleNamespace(system=system)))


def test_override_pins_ljs_lattice_constant_for_the_model_only():
    a_metal = reference_a0_override(_ctx("model"))["system.lattice_constant"]
    assert a_metal == pytest.approx(1.5496034241 * 3.4, rel=1e-9)  # LJ a0 (test_foundation_lj) in Å
    assert reference_a0_override(_ctx("model", system="lj"))["system.lattice_constant"] == pytest.approx(
        1.5496034241, rel=1e-9)
    assert reference_a0_override(_ctx("reference")) == {}
    assert reference_a0_override(_ctx("model", at_ref=False)) == {}


def test_barrier_scored_at_both_lattice_constants():
    q = lambda v: {"value": v, "unit": "eV"}  # noqa: E731
    ref = {"barrier_forward": q(0.060)}
    model = {"barrier_forward": q(0.066), "at_reference_a0": {"barrier_forward": q(0.0615)}}
    m = compare_migration_barrier(model, ref)
    assert m["barrier_rel_error"]["value"] == pytest.approx(0.1)
    assert m["barrier_rel_error_at_lj_a0"]["value"] == pytest.approx(0.025)
    assert "barrier_rel_error_at_lj_a0" not in compare_migration_barrier(
        {"barrier_forward": q(0.066), "at_reference_a0": {"failed": "did not converge"}}, ref)


def test_path_end_states_are_joined_through_nearest_images():
    import numpy as np

    from mlffbench.structures import fcc
    from mlffbench.workflows.neb import nearest_images

    s = fcc(2, 1.55)
    R_to = s.positions + 0.1
    wrapped = R_to.copy()
    wrapped[3] += s.box[:, 0]  # one atom wrapped by a lattice vector during relaxation
    wrapped[5] -= s.box[:, 1] + s.box[:, 2]
    np.testing.assert_allclose(nearest_images(s.positions, wrapped, s.box), R_to, atol=1e-12)
