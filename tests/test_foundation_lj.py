"""LJ variants against independent codes (ASE, LAMMPS) and the FCC lattice sum."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones
from scipy import optimize

from mlffbench.dynamics.minimize import fcc_lattice_constant
from mlffbench.neighbors import brute_force_pairs
from mlffbench.potentials import lennard_jones
from mlffbench.structures import fcc, fcc_lattice_sum, random_displacements

RC = 2.5


def _configs():
    """Random and perturbed FCC configurations: cubic (minimum image), small (multi-image) and
    sheared triclinic cells (upper-triangular box, as LAMMPS requires)."""
    out = []
    for n, amp, seed in ((4, 0.05, 1), (4, 0.15, 2), (3, 0.1, 3)):
        out.append((f"fcc{n}-amp{amp}", random_displacements(fcc(n, 1.55), amp, seed)))
    s = random_displacements(fcc(4, 1.56), 0.08, 4)
    shear = np.array([[1.0, 0.07, -0.05], [0.0, 1.0, 0.04], [0.0, 0.0, 1.0]])
    out.append(("triclinic", type(s)(positions=s.positions @ shear.T, box=shear @ s.box, sites=s.sites,
                                      occupied=s.occupied)))
    return out


CONFIGS = _configs()


def _ours(variant: str, s, fmt: str = "half"):
    pot = lennard_jones(variant, cutoff=RC, neighbor_format=fmt)
    R, box = jnp.asarray(s.positions), jnp.asarray(s.box)
    nbrs = pot.neighbors(s.box, n_atoms=s.n_atoms).allocate(R)
    e, f = pot.energy_and_forces(R, box, nbrs)
    return float(e), np.asarray(f), np.asarray(pot.stress(R, box, nbrs))


def _ase(s, smooth: bool):
    atoms = Atoms(f"Ar{s.n_atoms}", positions=s.positions, cell=s.box.T, pbc=True)
    atoms.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=RC, smooth=smooth, ro=0.8 * RC)
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


@pytest.mark.parametrize("name,s", CONFIGS, ids=[c[0] for c in CONFIGS])
@pytest.mark.parametrize("fmt", ["dense", "half", "full"])
def test_shifted_and_smooth_match_ase(name, s, fmt):
    # ASE's LennardJones(smooth=False) is truncated *and shifted*; smooth=True is jax-md's switch
    for variant, smooth in (("lj/cut/shift", False), ("lj/smooth", True)):
        e, f, st = _ours(variant, s, fmt)
        ea, fa, sa = _ase(s, smooth)
        assert abs(e - ea) / abs(ea) <= 1e-10, variant
        assert _rel(f, fa) <= 1e-10, variant
        assert _rel(st, sa) <= 1e-10, variant


@pytest.mark.parametrize("name,s", CONFIGS, ids=[c[0] for c in CONFIGS])
@pytest.mark.parametrize("fmt", ["dense", "half"])
def test_cut_and_shift_match_lammps(name, s, fmt):
    from mlffbench.peers import lammps_lj

    for variant, shift in (("lj/cut", False), ("lj/cut/shift", True)):
        e, f, st = _ours(variant, s, fmt)
        el, fl, sl = lammps_lj.energy_forces_stress(s.positions, s.box, RC, shift)
        assert abs(e - el) / abs(el) <= 1e-10, variant
        assert _rel(f, fl) <= 1e-10, variant
        assert _rel(st, sl) <= 1e-10, variant


def test_neighbor_lists_find_every_pair():
    """Our edges (full and dense per-atom rows) equal a brute-force image enumeration in numpy."""
    for n, fmt in ((3, "full"), (4, "full"), (4, "dense"), (5, "dense")):
        s = random_displacements(fcc(n, 1.55), 0.1, 7)
        pot = lennard_jones(neighbor_format=fmt)
        from mlffbench.neighbors import edge_vectors

        nbrs = pot.neighbors(s.box, skin=0.0).allocate(jnp.asarray(s.positions))
        dR, mask, i, j = edge_vectors(jnp.asarray(s.positions), jnp.asarray(s.box), nbrs)
        r = np.linalg.norm(np.asarray(dR)[np.asarray(mask)], axis=1)
        ours = np.sort(r[r < RC])
        ref = np.sort([np.linalg.norm(d) for _, _, d in brute_force_pairs(s.positions, s.box, RC)])
        assert len(ours) == len(ref), fmt
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def _phi_shifted(r):
    return 4 * (r**-12 - r**-6) - 4 * (RC**-12 - RC**-6)


def test_fcc_lattice_constant_and_cohesive_energy_match_lattice_sum():
    # independent: numpy lattice sum; a0 from the root of its analytic derivative
    def dE_da(a):
        cells = np.arange(-6, 7)
        g = np.array(np.meshgrid(cells, cells, cells, indexing="ij")).reshape(3, -1).T
        from mlffbench.structures import FCC_BASIS

        pts = (g[:, None, :] + FCC_BASIS[None]).reshape(-1, 3) * a
        r = np.linalg.norm(pts, axis=1)
        r = r[(r > 1e-12) & (r < RC)]
        dphi = -48 * r**-13 + 24 * r**-7
        return 0.5 * np.sum(dphi * r / a)

    a_ref = optimize.brentq(dE_da, 1.45, 1.65, xtol=1e-14)
    e_ref = fcc_lattice_sum(a_ref, _phi_shifted, RC)
    a0, e0 = fcc_lattice_constant(lennard_jones("lj/cut/shift"))
    assert abs(a0 - a_ref) / a_ref <= 1e-9
    assert abs(e0 - e_ref) / abs(e_ref) <= 1e-10
