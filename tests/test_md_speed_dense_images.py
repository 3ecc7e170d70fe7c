"""Dense multi-image lists (small cells, `neighbors._multi_image_dense_fns`) and the LJ kernel on
them, against brute-force numpy image enumeration and ASE; the batched rebuild of MD replicas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones

from mlffbench.neighbors import batched_update, brute_force_pairs, is_dense_multi_image, neighbor_spec
from mlffbench.potentials import lennard_jones
from mlffbench.structures import fcc, random_displacements

RC = 2.5


def _small_triclinic(seed: int = 3):
    """108 atoms in a sheared 3x3x3 FCC cell (upper-triangular box): needs explicit images."""
    s = random_displacements(fcc(3, 1.5496), 0.1, seed)
    box = s.box + np.array([[0.0, 0.2, 0.1], [0.0, 0.0, -0.15], [0.0, 0.0, 0.0]]) * s.box[0, 0]
    return (s.positions @ np.linalg.inv(s.box).T) @ box.T, box


def _listed(nbrs, R, box) -> set:
    """(i, j, edge vector rounded to 1e-8) of every real slot, each checked to appear once."""
    idx, shifts = np.asarray(nbrs.idx), np.asarray(nbrs.shifts)
    ref = np.asarray(nbrs.reference_position)
    n = len(R)
    rows, cols = np.nonzero(idx < n)
    j = idx[rows, cols]
    d = ref[j] - ref[rows] + shifts[rows, cols] @ box.T
    edges = [(int(a), int(b), tuple(np.round(v, 8))) for a, b, v in zip(rows, j, d)]
    assert len(set(edges)) == len(edges), "an edge is listed twice"
    return set(edges)


def _reference(R, box, reach) -> set:
    return {(i, j, tuple(np.round(d, 8))) for i, j, d in brute_force_pairs(R, box, reach)}


def _tiny_fcc(seed: int = 11):
    """32 atoms in a 2x2x2 FCC cell (width 3.1 sigma): below rc + skin at skin 1.0, where each
    pair needs the full 27-offset image stencil (the 3x3x3 cell takes 8 near-image offsets)."""
    s = random_displacements(fcc(2, 1.5496), 0.1, seed)
    return s.positions, s.box


@pytest.mark.parametrize("cell,skin", [("3x3x3", 0.3), ("3x3x3", 1.0), ("2x2x2", 1.0)])
def test_dense_multi_image_pairs_equal_brute_force(cell, skin):
    from mlffbench.neighbors import perpendicular_widths

    R, box = _small_triclinic() if cell == "3x3x3" else _tiny_fcc()
    assert (np.min(perpendicular_widths(box)) >= RC + skin) == (cell == "3x3x3")  # which offsets
    spec = neighbor_spec(box, RC, skin=skin, fmt="dense")
    assert spec.multi_image
    nbrs = spec.allocate(jnp.asarray(R))
    assert is_dense_multi_image(nbrs) and not bool(nbrs.did_buffer_overflow)
    assert _listed(nbrs, R, box) == _reference(R, box, RC + skin)
    R2 = R + np.random.default_rng(5).normal(0.0, 0.6 * skin, R.shape)  # > skin / 2: rebuilds
    frac = R2 @ np.linalg.inv(box).T
    R2 = (frac - np.floor(frac)) @ box.T  # inside the cell (the numpy reference enumerates +-1 image)
    moved = jax.jit(spec.update)(jnp.asarray(R2), nbrs)
    assert not bool(moved.did_buffer_overflow)
    assert _listed(moved, R2, box) == _reference(R2, box, RC + skin)
    if skin > 0.3 or cell != "3x3x3":  # rows of 240 slots: 108 atoms cannot crowd one row past them
        return
    crowd = R.copy()  # 60 atoms piled around atom 0: its row outgrows the K slots, flagged
    crowd[1:61] = R[0] + np.random.default_rng(9).uniform(-1.0, 1.0, (60, 3))
    assert bool(jax.jit(spec.update)(jnp.asarray(crowd), nbrs).did_buffer_overflow)


def _ase(R, box, smooth: bool):
    atoms = Atoms(f"Ar{len(R)}", positions=R, cell=box.T, pbc=True)
    atoms.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=RC, smooth=smooth, ro=0.8 * RC)
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)


@pytest.mark.parametrize("variant,smooth", [("lj/cut/shift", False), ("lj/smooth", True)])
def test_dense_multi_image_lj_matches_ase_after_atoms_wrap(variant, smooth):
    """Energy, forces, stress on the dense multi-image list equal ASE's, also after atoms crossed
    the cell boundary (moved by a lattice vector plus a little) without a rebuild."""
    R, box = _small_triclinic(4)
    pot = lennard_jones(variant, cutoff=RC)
    nbrs = pot.neighbors(box, skin=0.5).allocate(jnp.asarray(R))
    assert is_dense_multi_image(nbrs)
    small = np.random.default_rng(6).normal(0.0, 0.05, R.shape)  # < skin / 2: the list stays valid
    wrapped = R + small
    wrapped[:10] += box[:, 0]
    wrapped[10:20] -= box[:, 1] + box[:, 2]
    for pos in (R, wrapped):
        ev = pot.evaluate(jnp.asarray(pos), jnp.asarray(box), nbrs, stress=True)
        ea, fa, sa = _ase(pos, box, smooth)
        assert abs(float(ev.energy) - ea) <= 1e-10 * abs(ea)
        assert np.max(np.abs(np.asarray(ev.forces) - fa)) <= 1e-10 * np.max(np.abs(fa))
        assert np.max(np.abs(np.asarray(ev.stress) - sa)) <= 1e-10 * np.max(np.abs(sa))


def test_batched_update_rebuilds_every_replica_together():
    """When one replica moved more than skin/2 every list is rebuilt from its own positions (the
    others too, though they moved less), and each equals a fresh list of those positions."""
    R, box = _small_triclinic(7)
    skin = 0.4
    spec = neighbor_spec(box, RC, skin=skin, fmt="dense")
    nb = spec.allocate(jnp.asarray(R))
    batch = jax.vmap(lambda r: spec.update(r, nb))(jnp.asarray(np.stack([R, R])))
    rng = np.random.default_rng(8)
    R_a = R + rng.normal(0.0, 0.01, R.shape)  # barely moved
    R_b = R + rng.normal(0.0, 0.01, R.shape)
    R_b[0] += 0.3 * box[:, 0] / np.linalg.norm(box[:, 0])  # > skin / 2
    new = jax.jit(batched_update(spec.update, box, skin))(jnp.asarray(np.stack([R_a, R_b])), batch)
    for k, pos in enumerate((R_a, R_b)):
        np.testing.assert_array_equal(np.asarray(new.reference_position[k]), pos)
        one = jax.tree_util.tree_map(lambda x: x[k], new)
        assert _listed(one, pos, box) == _reference(pos, box, RC + skin)
    still = jax.jit(batched_update(spec.update, box, skin))(jnp.asarray(np.stack([R_a, R_b])) + 1e-3, new)
    np.testing.assert_array_equal(np.asarray(still.reference_position), np.asarray(new.reference_position))
