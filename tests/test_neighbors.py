"""O(N) cell lists: the pairs they list equal a brute-force numpy enumeration of periodic images."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlffbench import compile_cache_dir
from mlffbench.neighbors import brute_force_pairs, cell_list_applies, neighbor_spec
from mlffbench.structures import fcc, random_displacements

from conftest import A0_LJ

RC, SKIN = 2.5, 0.3


def _listed_pairs(nbrs, n: int, half: bool) -> set[tuple[int, int]]:
    """(receiver, sender) pairs of a sparse list, each checked to appear once; unordered if half."""
    idx = np.asarray(nbrs.idx)
    if idx.shape[0] == n:  # dense rows (N, K): row i holds atom i's neighbours
        i, j = np.repeat(np.arange(n), idx.shape[1]), idx.reshape(-1)
    else:
        i, j = idx
    real = (i < n) & (j < n)
    pairs = list(zip(i[real].tolist(), j[real].tolist()))
    if half:
        pairs = [tuple(sorted(p)) for p in pairs]
    assert len(set(pairs)) == len(pairs), "a pair is listed twice"
    return set(pairs)


def _reference_pairs(R: np.ndarray, box: np.ndarray, half: bool) -> set[tuple[int, int]]:
    pairs = {(j, i) for i, j, _ in brute_force_pairs(R, box, RC + SKIN)}
    return {tuple(sorted(p)) for p in pairs} if half else pairs


def _triclinic(s):
    """The same crystal sheared into an upper-triangular (jax-md's convention) triclinic cell."""
    L = s.box[0, 0]
    box = s.box + np.array([[0.0, 0.2, 0.1], [0.0, 0.0, -0.15], [0.0, 0.0, 0.0]]) * L
    return (s.positions @ np.linalg.inv(s.box).T) @ box.T, box


@pytest.mark.parametrize("cell,fmt", [("orthorhombic", "half"), ("triclinic", "full"), ("triclinic", "dense")])
def test_cell_list_pairs_equal_brute_force(cell, fmt):
    """864 atoms (6x6x6 FCC, 3 cells per side): allocation, an update after atoms moved, and an
    overflow flag (never a silent truncation) once the crystal is squeezed beyond the capacity."""
    s = random_displacements(fcc(6, A0_LJ), 0.1, 3)
    R, box = (s.positions, s.box) if cell == "orthorhombic" else _triclinic(s)
    assert cell_list_applies(box, RC, SKIN)
    spec = neighbor_spec(box, RC, skin=SKIN, fmt=fmt, n_atoms=len(R))
    update = jax.jit(spec.update)
    half = fmt == "half"
    nbrs = spec.allocate(jnp.asarray(R))
    assert not bool(nbrs.did_buffer_overflow)
    assert _listed_pairs(nbrs, len(R), half) == _reference_pairs(R, box, half)
    R2 = R + np.random.default_rng(4).normal(0.0, 0.08, R.shape)  # > skin/2 for some atoms: rebuild
    moved = update(jnp.asarray(R2), nbrs)
    assert not bool(moved.did_buffer_overflow)
    assert _listed_pairs(moved, len(R), half) == _reference_pairs(R2, box, half)
    centre = box.sum(axis=1) / 2
    squeezed = centre + 0.7 * (R - centre)  # 3x denser in the middle of the cell
    assert bool(update(jnp.asarray(squeezed), nbrs).did_buffer_overflow)


def test_compile_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFFBENCH_NO_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("MLFFBENCH_CACHE_DIR", str(tmp_path))
    assert compile_cache_dir() == tmp_path / "jax"
    monkeypatch.setenv("MLFFBENCH_NO_COMPILE_CACHE", "1")
    assert compile_cache_dir() is None


@pytest.mark.parametrize("fmt", ["full", "half"])
def test_small_cell_multi_image_lists_equal_brute_force_and_share_one_build_across_boxes(fmt):
    """A 3x3x3 FCC cell (perpendicular width < 2 (cutoff + skin)): jax-md multi-image lists with
    a bucketed capacity hold every (i, j, image) within cutoff + skin once (both directions for
    'full', one for 'half'), equal to a numpy image enumeration; the same crystal 0.2% larger
    (a model's a0 beside LJ's) gets the same capacity and reuses the one compiled build."""
    from mlffbench.neighbors import _multi_image_sparse_build, bucket, capacity, edge_vectors

    s = random_displacements(fcc(3, A0_LJ), 0.08, 5)
    R, box = _triclinic(s)
    builds = []
    for scale in (1.0, 1.002):
        spec = neighbor_spec(box * scale, RC, skin=SKIN, fmt=fmt)
        assert spec.multi_image
        nbrs = spec.allocate(jnp.asarray(R * scale))
        assert not bool(nbrs.did_buffer_overflow) and capacity(nbrs) == bucket(capacity(nbrs))
        dR, mask, _, _ = edge_vectors(jnp.asarray(R * scale), jnp.asarray(box * scale), nbrs)
        ours = np.sort(np.linalg.norm(np.asarray(dR)[np.asarray(mask)], axis=1))
        ref = np.sort([np.linalg.norm(d) for _, _, d in brute_force_pairs(R * scale, box * scale, RC + SKIN)])
        np.testing.assert_allclose(ours, ref[::2] if fmt == "half" else ref, rtol=0, atol=1e-12)
        builds.append(_multi_image_sparse_build(RC + SKIN, fmt == "half", capacity(nbrs)))
    assert builds[0] is builds[1] and builds[0]._cache_size() == 1


@pytest.mark.parametrize("fmt", ["full", "half", "dense"])
def test_small_cell_list_overflow_stays_flagged_after_a_rebuild_that_fits(fmt):
    """An overflow in the middle of an MD chunk drops pairs (wrong forces); MD checks the flag only
    after the chunk, so a later rebuild that fits again must not clear it (it did for multi-image
    lists: the CG prior test blew up at 4 of 16 seeds through a forgotten overflow)."""
    s = random_displacements(fcc(3, A0_LJ), 0.05, 2)
    spec = neighbor_spec(s.box, RC, skin=SKIN, fmt=fmt, capacity_multiplier=1.0)  # no head room
    assert spec.multi_image
    update = jax.jit(spec.update)
    nbrs = spec.allocate(jnp.asarray(s.positions))
    centre = s.box.sum(axis=1) / 2
    squeezed = update(jnp.asarray(centre + 0.3 * (s.positions - centre)), nbrs)  # all within rc of all
    assert bool(squeezed.did_buffer_overflow)
    assert not bool(update(jnp.asarray(s.positions + 0.2), nbrs).did_buffer_overflow)  # fits when fresh
    assert bool(update(jnp.asarray(s.positions + 0.2), squeezed).did_buffer_overflow)
