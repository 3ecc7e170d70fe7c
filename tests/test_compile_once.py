"""Programs that are compiled once and reused: the lattice-constant search, relaxations in one box,
and check-model's evaluations of many configurations. Each test checks the numbers against an
independent route (a numpy lattice sum, ASE) as well as the count of compiled signatures."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from mlffbench.dynamics import minimize
from mlffbench.potentials import lennard_jones
from mlffbench.structures import fcc, fcc_lattice_sum, random_displacements, remove_atom


@pytest.fixture(scope="module")
def lj():
    return lennard_jones("lj/cut/shift")


def _lj_shifted(r, rc=2.5):
    def phi(x):
        return 4.0 * (x ** -12 - x ** -6)
    return phi(r) - phi(rc)


def test_lattice_search_and_energy_curve_share_one_compiled_program(lj):
    a0, e0 = minimize.fcc_lattice_constant(lj, n_cells=2)
    energy, derivatives = minimize._scaled_fcc(lj, 2)
    # one signature each: Brent, Newton and the final energy all pass a float64 scalar
    assert energy._cache_size() == 1 and derivatives._cache_size() == 1
    e_of_a = minimize.fcc_energy_per_atom(lj, 2)
    for a in (0.97 * a0, a0, 1.04 * a0):
        assert e_of_a(a) == pytest.approx(fcc_lattice_sum(a, _lj_shifted, 2.5), rel=1e-12, abs=1e-12)
    assert energy._cache_size() == 1
    assert e0 == pytest.approx(fcc_lattice_sum(a0, _lj_shifted, 2.5), rel=1e-12)
    # the minimum of the lattice sum: its derivative in a vanishes at a0
    h = 1e-5
    slope = (fcc_lattice_sum(a0 + h, _lj_shifted, 2.5) - fcc_lattice_sum(a0 - h, _lj_shifted, 2.5)) / (2 * h)
    assert abs(slope) < 1e-7


def _ase_lj(R, box):
    """ASE atoms with ASE's truncated and shifted LJ (the independent reference)."""
    from ase import Atoms
    atoms = Atoms("Ar" * len(R), positions=R, cell=box.T, pbc=True)
    atoms.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=2.5, smooth=False)
    return atoms


def _ase_energy(R, box):
    return _ase_lj(R, box).get_potential_energy()


def _ase_forces(R, box):
    return _ase_lj(R, box).get_forces()


def test_relaxations_in_one_box_reuse_one_compiled_program(lj):
    """Two vacancy relaxations (two different starts) in the same box: one program; the relaxed
    energies agree with ASE's LJ at the relaxed positions."""
    a0 = minimize.fcc_lattice_constant(lj, 2)[0]
    vac = remove_atom(fcc(3, a0), 0)
    first = minimize.relax_positions(lj, vac.positions, vac.box, fmax=1e-8)
    shaken = random_displacements(vac, 0.02, 4)
    second = minimize.relax_positions(lj, shaken.positions, vac.box, fmax=1e-8)
    _, program = minimize._relax_program(lj, np.asarray(vac.box), 0.5, vac.n_atoms)
    assert program._cache_size() == 1
    for r in (first, second):
        assert r.converged
        assert r.energy == pytest.approx(_ase_energy(r.positions, np.asarray(vac.box)), rel=1e-12)
    assert second.energy == pytest.approx(first.energy, rel=1e-10)


def test_check_model_evaluates_many_configurations_with_one_compilation(lj):
    """Rattled, permuted and translated configurations through one list capacity; a compressed one
    that does not fit re-allocates. Energies against ASE."""
    from mlffbench.workflows.check_model import _evaluator

    s = random_displacements(fcc(4, 1.55), 0.05, 1)
    box = np.asarray(s.box)
    ev = _evaluator(lj, box, s.n_atoms)
    rng = np.random.default_rng(0)
    configs = [s.positions, s.positions[rng.permutation(s.n_atoms)], s.positions + 0.3,
               random_displacements(s, 0.03, 2).positions]
    for R in configs:
        assert ev(R)[0] == pytest.approx(_ase_energy(R, box), rel=1e-11)
    assert ev.program._cache_size() == 1
    # the crystal squeezed into 80 % of the box (a gap at its faces) holds more pairs than the
    # list has room for: it re-allocates (a second capacity, a second compilation)
    dense = 0.8 * fcc(4, 1.55).positions + 0.6
    assert ev(dense)[0] == pytest.approx(_ase_energy(dense, box), rel=1e-11)
    assert ev.program._cache_size() == 2


def test_hessians_in_one_box_share_one_program_across_separately_requested_lists(lj):
    """The minimum's and a displaced configuration's Hessians, each from its own
    `potential.neighbors(box)` call (as harmonic TST does), compile `_hvp_columns` once: the spec
    is memoised per box, so the lists' static update function is the same object. Each Hessian
    against central differences of ASE's LJ forces."""
    from mlffbench.properties import hessian as hess

    vac = remove_atom(fcc(2, 1.56), 0)
    box = np.asarray(vac.box)
    assert lj.neighbors(box, skin=0.5) is lj.neighbors(box.copy(), skin=0.5)
    before = hess._hvp_columns._cache_size()
    configurations = (vac.positions, random_displacements(vac, 0.03, 7).positions)
    for R in configurations:
        H = hess.hessian(lj, R, box, lj.neighbors(box, skin=0.5)).matrix
        h, n = 1e-5, R.size
        fd = np.empty((n, n))
        for k in range(n):
            d = np.zeros(n)
            d[k] = h
            fd[:, k] = -(_ase_forces(R + d.reshape(R.shape), box)
                         - _ase_forces(R - d.reshape(R.shape), box)).reshape(-1) / (2 * h)
        assert np.max(np.abs(H - fd)) < 1e-5 * np.max(np.abs(fd))
    assert hess._hvp_columns._cache_size() - before == 1


def test_pdos_lattice_search_on_the_crystal_benchmarks_cell_reuses_their_a0(lj, monkeypatch):
    """`zero_kelvin.lattice_n_cells: 2` (the study's setting) makes the PDOS workflow take the a0
    that the crystal benchmarks memoised on the 2x2x2 cell, with no second search; the 2x2x2 and
    3x3x3 searches agree (E/N of a perfect crystal does not depend on the cell) and the slope of
    the numpy lattice sum vanishes there."""
    from mlffbench.dynamics import lattice
    from mlffbench.workflows.pdos import PdosConfig, crystal_lattice_constant

    cfg = PdosConfig.model_validate({"units": {"system": "lj"}, "zero_kelvin": {"lattice_n_cells": 2}})
    a2 = lattice.equilibrium_fcc(lj, 2)[0]
    calls = []
    real = minimize.fcc_lattice_constant
    with monkeypatch.context() as m:
        m.setattr(minimize, "fcc_lattice_constant", lambda *a, **k: calls.append(a) or real(*a, **k))
        assert crystal_lattice_constant(lj, cfg)[0] == a2
    assert calls == []
    a3 = crystal_lattice_constant(lj, PdosConfig.model_validate({"units": {"system": "lj"}}))[0]
    assert a3 == pytest.approx(a2, rel=1e-10)
    h = 1e-5
    slope = (fcc_lattice_sum(a2 + h, _lj_shifted, 2.5) - fcc_lattice_sum(a2 - h, _lj_shifted, 2.5)) / (2 * h)
    assert abs(slope) < 1e-7
