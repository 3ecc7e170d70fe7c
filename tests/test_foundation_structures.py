"""Vacancy formation energies against ASE's own optimiser and LJ calculator."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.optimize import FIRE

from mlffbench.dynamics.minimize import fcc_lattice_constant
from mlffbench.potentials import lennard_jones
from mlffbench.structures import fcc, nearest_sites, remove_atom, random_displacements


@pytest.fixture(scope="module")
def lj_a0():
    pot = lennard_jones("lj/cut/shift")
    a0, e0 = fcc_lattice_constant(pot)
    return pot, a0, e0


def _ase_vacancy_formation(n: int, a0: float) -> float:
    perfect = fcc(n, a0)
    calc = LennardJones(sigma=1.0, epsilon=1.0, rc=2.5, smooth=False)  # truncated and shifted
    atoms = Atoms(f"Ar{perfect.n_atoms}", positions=perfect.positions, cell=perfect.box.T, pbc=True)
    atoms.calc = calc
    e_perfect = atoms.get_potential_energy()
    vac = remove_atom(perfect, 0)
    atoms = Atoms(f"Ar{vac.n_atoms}", positions=vac.positions, cell=vac.box.T, pbc=True)
    atoms.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=2.5, smooth=False)
    # ASE's FIRE converges here in ~120 steps; its (L)BFGS wandered on the 255-atom cell
    assert FIRE(atoms, logfile=None).run(fmax=1e-6, steps=3000)  # energy error ~ fmax^2/k ~ 1e-12
    n_at = perfect.n_atoms
    return atoms.get_potential_energy() - (n_at - 1) / n_at * e_perfect


@pytest.mark.parametrize("n", [3, 4])  # 107 and 255 atoms
def test_vacancy_formation_energy_matches_ase(lj_a0, n):
    """The benchmark's E_f (relaxed, constant volume) equals ASE FIRE + LennardJones; the result
    records the threshold it relaxed to and the route."""
    from mlffbench.benchmarks.crystal import vacancy_formation_energy

    pot, a0, e0 = lj_a0
    r = vacancy_formation_energy(pot, a0, e0, n, fmax=1e-9)
    assert r["converged"] and r["max_force"] <= 1e-9 and r["n_atoms"] == 4 * n**3 - 1
    assert r["relax_fmax"] == 1e-9 and r["relax_method"].startswith("lbfgs")
    ours = r["E_f_relaxed"]
    ref = _ase_vacancy_formation(n, a0)
    assert abs(ours - ref) <= 1e-9 * abs(ref), (ours, ref)


def test_lattice_site_bookkeeping():
    s = fcc(3, 1.55)
    v = remove_atom(s, 5)
    assert v.n_atoms == s.n_atoms - 1
    np.testing.assert_array_equal(v.vacant_sites, [5])
    jiggled = random_displacements(v, 0.2, 0)
    np.testing.assert_array_equal(nearest_sites(jiggled.positions, v.sites, v.box), v.occupied)
