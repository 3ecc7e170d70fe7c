"""Neighbour lists and edge geometry shared by every potential.

Positions are Cartesian, in reduced units, shape (N, 3). The box is a (3, 3) matrix whose
*columns* are the lattice vectors (jax-md's `periodic_general` convention; r = box @ s for
fractional s). A neighbour list is either

* a jax-md `partition.NeighborList` (minimum image), used when every perpendicular box width is
  at least 2 * (cutoff + skin); or
* a jax-md `custom_partition.NeighborListMultiImage` (explicit integer image shifts), used for
  small cells where the minimum-image convention would miss neighbours (e.g. a 3x3x3 FCC cell
  with rc = 2.5 sigma): jax-md's sparse one for 'full'/'half', our dense rows
  (`_multi_image_dense_fns`) for 'dense'. jax-md's plain list checks nothing here (see shared/notes), so the choice
  is made for the user rather than left to chance.

Both are consumed through `edge_vectors`, which is the single place where displacements are made.
Padded slots carry index N and are masked before any sqrt/division.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax_md import custom_partition, partition, space

Array = jnp.ndarray

FORMATS = {
    "full": partition.NeighborListFormat.Sparse,
    "half": partition.NeighborListFormat.OrderedSparse,
    "dense": partition.NeighborListFormat.Dense,
}


def is_dense(nbrs) -> bool:
    """True for a minimum-image list in jax-md's Dense layout: idx (N, K), row i the neighbours
    of atom i (each pair in both rows), padded with N. Static (the format is not traced)."""
    return getattr(nbrs, "format", None) == partition.NeighborListFormat.Dense and not hasattr(nbrs, "shifts")


def is_dense_multi_image(nbrs) -> bool:
    """True for a multi-image list in the dense layout (`_multi_image_dense_fns`): idx (N, K) and
    integer image shifts (N, K, 3), row i the neighbours of atom i (each pair in both rows)."""
    return getattr(nbrs, "format", None) == partition.NeighborListFormat.Dense and hasattr(nbrs, "shifts")


def as_box_matrix(box) -> np.ndarray:
    """(3,) side lengths or (3,3) matrix -> (3,3) float64 matrix, columns = lattice vectors."""
    b = np.asarray(box, dtype=np.float64)
    if b.shape == (3,):
        return np.diag(b)
    if b.shape != (3, 3):
        raise ValueError(f"box must have shape (3,) or (3,3), got {b.shape}")
    return b


def perpendicular_widths(box) -> np.ndarray:
    """Distances between opposite faces of the cell, shape (3,)."""
    b = as_box_matrix(box)
    volume = abs(np.linalg.det(b))
    a, bb, c = b[:, 0], b[:, 1], b[:, 2]
    areas = np.array([np.linalg.norm(np.cross(bb, c)), np.linalg.norm(np.cross(c, a)),
                      np.linalg.norm(np.cross(a, bb))])
    return volume / areas


def needs_multi_image(box, cutoff: float, skin: float) -> bool:
    """True when the minimum-image convention is not valid for cutoff + skin in this cell."""
    return bool(np.min(perpendicular_widths(box)) < 2.0 * (cutoff + skin))


@dataclass(frozen=True)
class NeighborSpec:
    """How to build neighbour lists for one potential in one box.

    Attributes:
        allocate: (R (N,3)) -> neighbour list. Not jit-able (shapes depend on values).
        update: (R, nbrs) -> nbrs. jit-able.
        multi_image: whether the list carries explicit image shifts.
        cutoff, skin: reduced lengths; atoms within cutoff + skin are listed.
        fmt: 'full' (both i->j and j->i) or 'half' (each pair once).
        fractional: positions handed to allocate/update are fractional (NPT).
        box_free: nothing depends on the box the spec was built for: allocate and update take
            the box as `box=` (fractional all-pairs lists), so one compiled MD program serves
            every box of that shape. False: the box is built in (cell grids, image stencils).
    """

    allocate: Callable[..., Any]
    update: Callable[..., Any]
    multi_image: bool
    cutoff: float
    skin: float
    fmt: str
    fractional: bool
    box_free: bool = False

    @cached_property
    def jit_update(self) -> Callable[..., Any]:
        """`update` compiled, once per spec: called eagerly, update dispatches (and compiles)
        each of its dozens of primitives on its own."""
        return jax.jit(self.update)

    @cached_property
    def jit_update_each(self) -> Callable[..., Any]:
        """(R (B, N, 3), nbrs) -> B lists, each `nbrs` updated to its R[b]; compiled once per spec."""
        return jax.jit(jax.vmap(self.update, in_axes=(0, None)))


# ----- O(N) cell lists ------------------------------------------------------------------------
# jax-md's cell list is not used for Cartesian positions in a (3, 3) box (its size test compares
# a cutoff with the matrix, so it silently falls back to all N^2 pairs), and where it is used its
# candidate buffers are ~3x larger than needed. `_cell_list_fns` bins atoms in fractional
# coordinates into cells at least (cutoff + skin) / 2 wide along every perpendicular direction,
# so the 5 x 5 x 5 cells around an atom hold all its neighbours (the 63 of them with a
# lexicographically non-negative offset suffice for a half list). Half-width cells check ~55% of
# the candidates 27 full-width cells would (N = 4000 FCC: 625 instead of 1107 per atom).

_REACH = 2  # cells of width (cutoff + skin) / _REACH; the stencil spans -_REACH .. _REACH


def _stencil_offsets(half: bool) -> np.ndarray:
    """Cell offsets (S, 3), (0, 0, 0) first; half: only offsets > (0, 0, 0) lexicographically."""
    span = range(-_REACH, _REACH + 1)
    rest = [d for d in ((a, b, c) for a in span for b in span for c in span)
            if (d > (0, 0, 0) if half else d != (0, 0, 0))]
    return np.array([(0, 0, 0)] + rest)


def bucket(n: int) -> int:
    """`n` rounded up to the next of a few sizes per octave (<= 12.5% larger).

    Array shapes are compilation keys: capacities drawn from this short ladder let lists
    allocated from different positions share compiled programs (and the persistent cache).
    """
    n = max(int(n), 1)
    step = max(1, 2 ** (n.bit_length() - 4))
    return -(-n // step) * step


def cells_per_side(box, cutoff: float, skin: float) -> np.ndarray:
    """Cells along each lattice vector, each at least cutoff + skin wide, shape (3,)."""
    return np.floor(perpendicular_widths(box) / (cutoff + skin)).astype(int)


def cell_list_applies(box, cutoff: float, skin: float) -> bool:
    """True when the box holds >= 3 cells of width cutoff + skin along every lattice vector
    (then it holds >= 6 of half that width, so the 5 x 5 x 5 stencil cells are distinct and
    hold every neighbour exactly once)."""
    return bool(np.all(cells_per_side(box, cutoff, skin) >= 3))


def _stencil_table(nc: np.ndarray, half: bool) -> np.ndarray:
    """(n_cells, S) int32: flat ids of the stencil cells around each cell (periodic)."""
    n_cells = int(np.prod(nc))
    c3 = np.stack(np.unravel_index(np.arange(n_cells), tuple(nc)), axis=-1)
    shifted = np.mod(c3[:, None, :] + _stencil_offsets(half)[None], nc)
    return np.ravel_multi_index(tuple(shifted.transpose(2, 0, 1)), tuple(nc)).astype(np.int32)


def _cell_table(cid: Array, n_cells: int, M: int, n_atoms: int) -> tuple[Array, Array]:
    """Atoms binned by cell id cid (N,): (table (n_cells, M) of atom indices padded with N,
    counts (n_cells,)). Atoms beyond M in a cell are dropped (the caller flags overflow)."""
    order = jnp.argsort(cid).astype(jnp.int32)
    sorted_cid = cid[order]
    counts = jnp.zeros(n_cells, jnp.int32).at[cid].add(1)
    starts = jnp.cumsum(counts) - counts
    rank = jnp.arange(n_atoms, dtype=jnp.int32) - starts[sorted_cid]
    slot = jnp.where(rank < M, sorted_cid * M + rank, n_cells * M)
    table = jnp.full((n_cells * M,), n_atoms, jnp.int32).at[slot].set(order, mode="drop")
    return table.reshape(n_cells, M), counts


def _running_count(valid: Array, group: int) -> Array:
    """Inclusive running count of `valid` (N, C) along each row, as int32. Where C is a multiple
    of `group` (the candidates of one stencil cell), counted within groups and then across the
    group totals: two short prefix sums instead of one C long (XLA's CPU cumsum is a
    reduce_window; the long one cost ~1.6x more at N = 4000, C = 750)."""
    N, C = valid.shape
    if group <= 1 or C % group:
        return jnp.cumsum(valid, axis=1, dtype=jnp.int32)
    within = jnp.cumsum(valid.reshape(N, C // group, group), axis=2, dtype=jnp.int32)
    totals = within[:, :, -1]
    return (within + (jnp.cumsum(totals, axis=1, dtype=jnp.int32) - totals)[:, :, None]).reshape(N, C)


def _pack_rows(cand: Array, valid: Array, width: int, fill: int, group: int = 1) -> tuple[Array, Array]:
    """Each row's valid candidates moved to its front: (idx (N, width) padded with `fill`,
    most valid in a row). A binary search of the row's running count for each slot (gathers
    only: XLA's CPU scatter of every candidate cost ~2.5x more at N = 4000)."""
    C = cand.shape[1]
    pos = _running_count(valid, group)
    slots = jnp.arange(1, width + 1, dtype=jnp.int32)
    col = jax.vmap(lambda p: jnp.searchsorted(p, slots, side="left"))(pos)
    idx = jnp.take_along_axis(cand, jnp.minimum(col, C - 1), axis=1)
    return jnp.where(col < C, idx, fill), pos[:, -1]


def _pack_rows_by_scatter(cand: Array, valid: Array, width: int, fill: int, group: int = 1
                          ) -> tuple[Array, Array]:
    """`_pack_rows` by a scatter of each valid candidate to its slot (running count - 1) instead
    of a binary search per slot. Faster for short rows (the small-cell dense list: 8 replicas of
    107 atoms x 856 candidates, 1.9 against 3.8 ms); no faster in the cell list's rebuild at
    N = 4000 (31-32 ms either way), which keeps `_pack_rows`. Same result."""
    N, C = cand.shape
    pos = _running_count(valid, group)
    slot = jnp.where(valid, jnp.minimum(pos - 1, width), width)  # overflow and invalid: slot `width`
    rows = jnp.broadcast_to(jnp.arange(N)[:, None], (N, C))
    idx = jnp.full((N, width + 1), fill, cand.dtype).at[rows, slot].set(cand, mode="drop")
    return idx[:, :width], pos[:, -1]


def _pack_flat(cand: Array, valid: Array, capacity: int) -> tuple[Array, Array]:
    """Sparse (2, capacity) list (row 0 neighbour, row 1 atom, padded with N) and pair count."""
    N = cand.shape[0]
    flat = valid.reshape(-1)
    pos = jnp.cumsum(flat, dtype=jnp.int32) - 1
    target = jnp.where(flat, pos, capacity)
    atom = jnp.broadcast_to(jnp.arange(N, dtype=jnp.int32)[:, None], cand.shape).reshape(-1)
    empty = jnp.full((capacity,), N, jnp.int32)
    idx = jnp.stack([empty.at[target].set(cand.reshape(-1), mode="drop"),
                     empty.at[target].set(atom, mode="drop")])
    return idx, pos[-1] + 1


class _CellGrid:
    """Fractional binning of one fixed box into cells >= (cutoff + skin) / _REACH wide."""

    def __init__(self, box: np.ndarray, cutoff: float, skin: float, half: bool):
        self.box = box
        self.nc = np.floor(perpendicular_widths(box) * _REACH / (cutoff + skin)).astype(int)
        self.n_cells = int(np.prod(self.nc))
        self.stencil = _stencil_table(self.nc, half)
        self.inv_t = np.linalg.inv(box).T
        self.diagonal = bool(np.allclose(box, np.diag(np.diag(box)), rtol=0, atol=0))
        self.cut_sq = float(cutoff + skin) ** 2
        self.half = half
        self.ids_jit = jax.jit(lambda R: self.cell_ids(self.fractional(R)))
        self.per_atom_jit = jax.jit(lambda R, M: jnp.sum(self.candidates(R, M)[1], axis=1), static_argnums=1)

    def to_cartesian(self, df: Array) -> Array:
        if self.diagonal:  # orthorhombic: a (3,) scale instead of a (3, 3) product per candidate
            return df * jnp.asarray(np.diag(self.box), df.dtype)
        return df @ jnp.asarray(self.box.T, df.dtype)

    def fractional(self, R: Array) -> Array:
        s = R @ jnp.asarray(self.inv_t, R.dtype)
        return s - jnp.floor(s)

    def cell_ids(self, s: Array) -> Array:
        nc = self.nc
        c = jnp.clip(jnp.floor(s * nc).astype(jnp.int32), 0, jnp.asarray(nc - 1, jnp.int32))
        return (c[:, 0] * nc[1] + c[:, 1]) * nc[2] + c[:, 2]

    def candidates(self, R: Array, M: int) -> tuple[Array, Array, Array]:
        """(cand (N, S*M) neighbour indices or N, valid (N, S*M), cell overflow flag)."""
        N = R.shape[0]
        s = self.fractional(R)
        cid = self.cell_ids(s)
        table, counts = _cell_table(cid, self.n_cells, M, N)
        cand = table[jnp.asarray(self.stencil)[cid]].reshape(N, -1)
        df = s[jnp.minimum(cand, N - 1)] - s[:, None, :]
        d = self.to_cartesian(df - jnp.round(df))
        atom = jnp.arange(N, dtype=jnp.int32)[:, None]
        valid = (cand < N) & (jnp.sum(d * d, axis=-1) < self.cut_sq)
        own = jnp.arange(cand.shape[1]) < M  # the atom's own cell comes first in the stencil
        valid = valid & jnp.where(own[None, :], cand > atom if self.half else cand != atom, True)
        return cand, valid, jnp.max(counts) > M

    def moved_beyond(self, R: Array, reference: Array, threshold_sq: float) -> Array:
        """True when some atom moved more than sqrt(threshold_sq) (minimum image) from reference."""
        df = (R - reference.astype(R.dtype)) @ jnp.asarray(self.inv_t, R.dtype)
        d = self.to_cartesian(df - jnp.round(df))
        return jnp.any(jnp.sum(d * d, axis=-1) > threshold_sq)


def _cell_list_fns(box, cutoff: float, skin: float, fmt: str, capacity_multiplier: float):
    """(allocate, update) for an O(N) cell-list neighbour list in a fixed box.

    Lists are jax-md `partition.NeighborList`s: sparse (idx (2, capacity): row 0 the neighbour,
    row 1 the atom, padded with N) or dense (idx (N, K), padded with N), so every consumer reads
    them unchanged. Exceeding the cell capacity (atoms per cell) or the edge capacity sets
    jax-md's overflow flags, which the callers already check.
    """
    grid = _CellGrid(as_box_matrix(box), cutoff, skin, fmt == "half")
    dense = fmt == "dense"
    half_skin_sq = (0.5 * float(skin)) ** 2

    def build(R, error, cell_capacity: int, max_occupancy: int, ref_dtype):
        cand, valid, cell_overflow = grid.candidates(R, cell_capacity)
        if dense:
            idx, counts = _pack_rows(cand, valid, max_occupancy, R.shape[0], cell_capacity)
            n_listed = jnp.max(counts)
        else:
            idx, n_listed = _pack_flat(cand, valid, max_occupancy)
        error = error.update(partition.PEC.CELL_LIST_OVERFLOW, cell_overflow)
        error = error.update(partition.PEC.NEIGHBOR_LIST_OVERFLOW, n_listed > max_occupancy)
        return partition.NeighborList(idx, R.astype(ref_dtype), error, cell_capacity, max_occupancy,
                                      FORMATS[fmt], None, None, update)

    def update(R, nbrs, **_):
        need = grid.moved_beyond(R, nbrs.reference_position, half_skin_sq)
        ref_dtype = nbrs.reference_position.dtype
        return lax.cond(need, lambda r: build(r, nbrs.error, nbrs.cell_list_capacity, nbrs.max_occupancy,
                                              ref_dtype), lambda r: nbrs, R)

    build_jit = jax.jit(build, static_argnums=(2, 3, 4))

    def allocate(R, extra_capacity: int = 0, **_):
        R = jnp.asarray(R)
        M, cap = _capacities(grid, R, fmt, capacity_multiplier, extra_capacity)
        return build_jit(R, partition.PartitionError(jnp.zeros((), jnp.uint8)), M, cap, R.dtype)

    return allocate, update


def _image_stencil(box: np.ndarray, reach: float) -> np.ndarray:
    """Integer image offsets t (T, 3), (0, 0, 0) first, such that every image of an atom within
    `reach` of another is j's minimum image plus some t: |t_a| <= 1/2 + reach / h_a (h_a the
    perpendicular widths), since the minimum image leaves each fractional component in [-1/2, 1/2]."""
    n_max = np.floor(0.5 + reach / perpendicular_widths(box)).astype(int)
    span = [range(-n, n + 1) for n in n_max]
    rest = [d for d in ((a, b, c) for a in span[0] for b in span[1] for c in span[2]) if d != (0, 0, 0)]
    return np.array([(0, 0, 0)] + rest, dtype=np.int32)


# the 8 corners of the unit cube, (0, 0, 0) first: which axes take the near image (`_near_images`)
_CORNERS = np.array([(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.int32)


def _near_images(u: Array) -> Array:
    """Image offsets (..., 8, 3) added to minimum-image fractional differences u (..., 3): per
    axis 0 or t_a = -sign(u_a) (-1 for u_a = 0). Where the perpendicular width h_a >= reach these
    are the only images that can lie within reach: |u_a + n| >= 1 for every other n != 0, and a
    fractional distance of 1 along axis a is a Cartesian distance >= h_a."""
    toward = jnp.where(u < 0, 1.0, -1.0).astype(u.dtype)
    return jnp.asarray(_CORNERS, u.dtype) * toward[..., None, :]


def _multi_image_dense_fns(box, cutoff: float, skin: float, capacity_multiplier: float):
    """(allocate, update) for a dense multi-image list in a small fixed cell (some perpendicular
    width < 2 (cutoff + skin)): all pairs times a few image offsets, compacted into rows by
    `_pack_rows`. Lists are jax-md `custom_partition.NeighborListMultiImage`s in the Dense layout:
    idx (N, K) padded with N, shifts (N, K, 3) int32 with the edge vector box (s_j - s_i + shift)
    for the positions the list was built from (`reference_position`); the kernel corrects for
    atoms that wrapped since. Rebuilt when an atom moved more than skin / 2 (minimum image);
    overflow of the K slots sets `did_buffer_overflow`. O(N^2) per rebuild, like jax-md's
    multi-image list (small cells only).

    The image offsets per pair: where every perpendicular width h_a >= cutoff + skin (the
    vacancy crystal's 3x3x3 cell), the 8 corners of {0, t_a}^3 with t_a the one image along each
    axis that can come closer than the minimum image (`_near_images`); otherwise the
    (2 n + 1)^3 offsets of `_image_stencil` (27 where n = 1)."""
    box = as_box_matrix(box)
    reach = float(cutoff + skin)
    stencil = _image_stencil(box, reach)
    near = bool(np.all(perpendicular_widths(box) >= reach))
    n_img = len(_CORNERS) if near else len(stencil)
    inv_t = np.linalg.inv(box).T
    cut_sq, half_skin_sq = reach ** 2, (0.5 * float(skin)) ** 2

    def candidates(R):
        """(valid (N, N T) over candidates c = j T + t, integer images (N, N, T, 3) of every
        candidate, as R.dtype)."""
        N = R.shape[0]
        S = R @ jnp.asarray(inv_t, R.dtype)
        df = S[None, :, :] - S[:, None, :]
        base = -jnp.round(df)
        # offsets from the minimum image (each component of df + base in [-1/2, 1/2])
        offsets = _near_images(df + base) if near else jnp.asarray(stencil, R.dtype)[None, None]
        images = base[:, :, None, :] + offsets
        d = rows_times_box_t(df[:, :, None, :] + images, jnp.asarray(box, R.dtype))
        r2 = jnp.sum(d * d, axis=-1)  # (N, N, T)
        self_image = (jnp.arange(N)[:, None, None] == jnp.arange(N)[None, :, None]) & (jnp.arange(n_img) == 0)
        valid = (r2 < cut_sq) & ~self_image
        return valid.reshape(N, N * n_img), images

    def build(R, max_occupancy: int, ref_dtype):
        N = R.shape[0]
        valid, images = candidates(R)
        cols = jnp.broadcast_to(jnp.arange(N * n_img, dtype=jnp.int32), valid.shape)
        col, counts = _pack_rows_by_scatter(cols, valid, max_occupancy, N * n_img, n_img)
        real = col < N * n_img
        flat = images.reshape(N, N * n_img, 3)
        shift = jnp.take_along_axis(flat, jnp.where(real, col, 0)[..., None], axis=1).astype(jnp.int32)
        j = jnp.where(real, col // n_img, 0)
        box_j = jnp.asarray(box, ref_dtype)
        return custom_partition.NeighborListMultiImage(
            idx=jnp.where(real, j, N).astype(jnp.int32), shifts=jnp.where(real[..., None], shift, 0),
            reference_position=R.astype(ref_dtype), reference_box=box_j, box=box_j,
            search_shifts=jnp.asarray(stencil), format=partition.NeighborListFormat.Dense,
            max_occupancy=max_occupancy, update_fn=update, did_buffer_overflow=jnp.max(counts) > max_occupancy)

    def update(R, nbrs, **_):
        ref = nbrs.reference_position
        df = (R - ref.astype(R.dtype)) @ jnp.asarray(inv_t, R.dtype)
        d = (df - jnp.round(df)) @ jnp.asarray(box.T, R.dtype)
        need = jnp.any(jnp.sum(d * d, axis=-1) > half_skin_sq)
        return lax.cond(need, lambda r: build(r, nbrs.max_occupancy, ref.dtype), lambda r: nbrs, R)

    build_jit = jax.jit(build, static_argnums=(1, 2))
    most_jit = jax.jit(lambda R: jnp.max(jnp.sum(candidates(R)[0], axis=1)))

    def allocate(R, extra_capacity: int = 0, **_):
        R = jnp.asarray(R)
        most = int(most_jit(R))
        K = min(bucket(int(np.ceil(most * dense_multiplier(capacity_multiplier))) + extra_capacity),
                R.shape[0] * n_img)
        return build_jit(R, K, R.dtype)

    return allocate, update


@lru_cache(maxsize=None)
def _multi_image_pair_count(search_cutoff: float) -> Callable[..., Array]:
    """Jitted (R (N,3), box (3,3), image shifts (S,3) int) -> number of (i, j, shift) pairs within
    `search_cutoff`, each pair in both directions; one program per shape, shared by every box."""
    def count(R, box, shifts):
        zero = jnp.argmin(jnp.sum(shifts ** 2, axis=1))
        return jnp.sum(custom_partition._compute_pairwise_mask(R, box, shifts @ box.T, zero, search_cutoff, False))
    return jax.jit(count)


@lru_cache(maxsize=None)
def _multi_image_sparse_build(search_cutoff: float, ordered: bool, capacity: int) -> Callable[..., Any]:
    """Jitted (R, box, image shifts) -> jax-md's sparse multi-image list with `capacity` slots
    (`update_fn` left None for the caller to set). The box is an argument, so lists of one shape
    in different boxes (a model's a0 and LJ's) share the program."""
    build_nl = (custom_partition._build_neighbor_list_orderedsparse if ordered
                else custom_partition._build_neighbor_list_sparse)

    def build(R, box, shifts):
        zero = jnp.argmin(jnp.sum(shifts ** 2, axis=1))
        return build_nl(R, box, shifts, shifts @ box.T, zero, search_cutoff, capacity, False, None)
    return jax.jit(build)


def _sticky_overflow_update(update: Callable, R, nbrs, **kwargs):
    """A multi-image list's `update` (jax-md's sparse one or `_multi_image_dense_fns`'), with the
    overflow flag kept once set. Both rebuilds set `did_buffer_overflow` from that rebuild alone,
    so an overflow in the middle of an MD chunk (pairs dropped, forces wrong) was forgotten when a
    later rebuild fitted; the flag is checked only after the chunk. jax-md's minimum-image lists
    accumulate their error flags the same way. (The lists keep the plain update as `update_fn`:
    the rebuild's output carries it as a static field.)"""
    new = update(R, nbrs, **kwargs)
    return dataclasses.replace(new, did_buffer_overflow=new.did_buffer_overflow | nbrs.did_buffer_overflow)


def _multi_image_sparse_allocate(update: Callable, default_box: np.ndarray, search_cutoff: float, ordered: bool,
                                 capacity_multiplier: float, R, extra_capacity: int = 0, box=None, **_):
    """A jax-md sparse multi-image list ('full' or 'half') built the way jax-md's own `allocate`
    builds it, but sized by one exact pair count and rounded to a `bucket` capacity. jax-md's
    allocate probes with a capacity estimated from the box and then rebuilds at the measured one:
    two compilations per allocation, whose capacities differ from box to box and escape every
    cache (18 of the 380 compilations of a cold migration-barrier benchmark). jax-md's `update`
    (kept as the list's `update_fn`) rebuilds into the list's capacity, whatever it is.
    (jax-md is pinned: `_compute_pairwise_mask` and the two builders are its module functions.)"""
    R = jnp.asarray(R)
    N = R.shape[0]
    current_box = jnp.asarray(default_box if box is None else box)
    shifts = custom_partition._compute_shift_ranges(current_box, search_cutoff, jnp.ones(3, dtype=bool))
    n_pairs = int(_multi_image_pair_count(search_cutoff)(R, current_box, shifts))
    if ordered:  # (i, j, s) and (j, i, -s): exactly one of the two is stored
        n_pairs //= 2
    cap = bucket(max(int(n_pairs * capacity_multiplier) + N * extra_capacity, 1))
    nbrs = _multi_image_sparse_build(search_cutoff, ordered, cap)(R, current_box, shifts)
    return dataclasses.replace(nbrs, update_fn=update)


def _capacities(grid: _CellGrid, R: Array, fmt: str, capacity_multiplier: float,
                extra_capacity: int) -> tuple[int, int]:
    """(atoms per cell, edge capacity: pairs in all (sparse) or slots per row (dense)) with head
    room, rounded to `bucket` sizes. Runs the grid's two small jitted programs (not jit-able)."""
    N = R.shape[0]
    cid = np.asarray(grid.ids_jit(R))
    M = bucket(int(np.ceil(np.bincount(cid, minlength=grid.n_cells).max() * capacity_multiplier)) + extra_capacity)
    per_atom = np.asarray(grid.per_atom_jit(R, M))
    if fmt == "dense":  # one atom's count fluctuates less than a total; overflow re-allocates anyway
        return M, bucket(int(np.ceil(per_atom.max() * dense_multiplier(capacity_multiplier))) + extra_capacity)
    limit = N * (N - 1) // 2 if fmt == "half" else N * (N - 1)
    return M, min(bucket(int(per_atom.sum() * capacity_multiplier) + N * extra_capacity), limit)


def dense_multiplier(capacity_multiplier: float) -> float:
    """Head room of a dense list's row (neighbours of the fullest atom): the square root of the
    sparse layouts' multiplier (1.3 -> 1.14), since every padded slot is computed by the kernel."""
    return float(np.sqrt(max(capacity_multiplier, 1.0)))


def neighbor_spec(box, cutoff: float, skin: float = 0.3, fmt: str = "half",
                  fractional: bool = False, capacity_multiplier: float = 1.3,
                  disable_cell_list: bool | None = None, n_atoms: int | None = None) -> NeighborSpec:
    """One `NeighborSpec` per distinct (box, cutoff, skin, format, ...): `_build_neighbor_spec`,
    memoised. A jax-md `NeighborList` carries its `update` function as a static (treedef) field,
    so every jitted consumer of a list (Hessian columns, string steps, relaxations) compiles
    again for a list from another spec, even in the same box with the same capacity; sharing
    the spec lets the minimum's and the saddle's Hessians, or the two end-state relaxations,
    share one program. The arguments are documented at `_build_neighbor_spec`."""
    box_m = np.ascontiguousarray(as_box_matrix(box), dtype=np.float64)
    return _memoised_spec(box_m.tobytes(), float(cutoff), float(skin), fmt, bool(fractional),
                          float(capacity_multiplier), disable_cell_list,
                          None if n_atoms is None else int(n_atoms))


@lru_cache(maxsize=64)
def _memoised_spec(box_bytes: bytes, cutoff: float, skin: float, fmt: str, fractional: bool,
                   capacity_multiplier: float, disable_cell_list: bool | None,
                   n_atoms: int | None) -> NeighborSpec:
    box_m = np.frombuffer(box_bytes, dtype=np.float64).reshape(3, 3).copy()
    return _build_neighbor_spec(box_m, cutoff, skin, fmt, fractional, capacity_multiplier,
                                disable_cell_list, n_atoms)


def _build_neighbor_spec(box, cutoff: float, skin: float = 0.3, fmt: str = "half",
                         fractional: bool = False, capacity_multiplier: float = 1.3,
                         disable_cell_list: bool | None = None, n_atoms: int | None = None) -> NeighborSpec:
    """Neighbour-list functions for `box`: multi-image lists for small cells, O(N) cell lists
    (`_cell_list_fns`) where the cell holds >= 3 cells of width cutoff + skin along every lattice
    vector, jax-md's all-pairs list in between; jax-md's lists in fractional coordinates (NPT).

    Args:
        box: (3,) or (3,3) reduced box.
        cutoff: interaction cutoff (reduced).
        skin: extra search distance; the list is rebuilt when an atom moved more than skin/2.
        fmt: 'half' (each pair once), 'full' (message passing) or 'dense' (per-atom rows,
            jax-md's Dense layout: a pair kernel without scatters; small cells that need
            explicit image shifts get dense rows with per-slot integer shifts,
            `_multi_image_dense_fns`).
        fractional: positions are fractional coordinates (needed by jax-md's NPT).
        disable_cell_list: True forces all-pairs candidates; None picks automatically (for
            fractional coordinates jax-md's cell list is used from 1500 atoms).
        n_atoms: used only for that automatic choice.
    """
    if fmt not in FORMATS:
        raise ValueError(f"neighbour format must be one of {sorted(FORMATS)}, got {fmt!r}")
    box_m = as_box_matrix(box)
    multi = needs_multi_image(box_m, cutoff, skin)
    box_free = False
    if multi and fractional:
        raise ValueError("cells smaller than 2*(cutoff+skin) are not supported with a variable box (NPT)")
    box_j = jnp.asarray(box_m)
    r_cut = jnp.float64(cutoff)
    dr = jnp.float64(skin)
    if multi and fmt == "dense":
        allocate, update = _multi_image_dense_fns(box_m, cutoff, skin, capacity_multiplier)
    elif multi:
        fns = custom_partition.neighbor_list_multi_image(
            None, box_j, r_cut, dr_threshold=dr, capacity_multiplier=capacity_multiplier,
            fractional_coordinates=False, format=FORMATS[fmt])
        update = fns.update
        allocate = partial(_multi_image_sparse_allocate, update, box_m, float(cutoff + skin), fmt == "half",
                           capacity_multiplier)
    elif not fractional and not disable_cell_list and cell_list_applies(box_m, cutoff, skin):
        allocate, update = _cell_list_fns(box_m, cutoff, skin, fmt, capacity_multiplier)
    else:
        if disable_cell_list is None:
            disable_cell_list = not fractional or n_atoms is None or n_atoms < 1500
        displacement, _ = space.periodic_general(box_j, fractional_coordinates=fractional)
        fns = partition.neighbor_list(
            displacement, box_j, r_cut, dr_threshold=dr, capacity_multiplier=capacity_multiplier,
            disable_cell_list=disable_cell_list, fractional_coordinates=fractional,
            format=FORMATS[fmt])
        allocate, update = fns.allocate, fns.update
        if disable_cell_list:  # all-pairs candidates: any capacity up to all pairs is a valid shape
            allocate = partial(_bucketed_allocate, fns.allocate, fmt)
        # fractional all-pairs: jax-md measures every distance with the box passed as `box=`
        box_free = bool(fractional and disable_cell_list)
    if multi:
        update = partial(_sticky_overflow_update, update)
    return NeighborSpec(allocate=allocate, update=update, multi_image=multi,
                        cutoff=float(cutoff), skin=float(skin), fmt=fmt, fractional=fractional,
                        box_free=box_free)


def _bucketed_allocate(allocate: Callable, fmt: str, R, extra_capacity: int = 0, **kwargs):
    """A jax-md all-pairs list padded to a `bucket` capacity (fewer distinct compiled shapes)."""
    nbrs = allocate(R, extra_capacity=extra_capacity, **kwargs)
    n = R.shape[0]
    limit = n * (n - 1) // 2 if fmt == "half" else (n if fmt == "dense" else n * (n - 1))
    return pad_to_capacity(nbrs, min(bucket(capacity(nbrs)), limit))


def capacity(nbrs) -> int:
    """Number of edge slots of a sparse (full or half) neighbour list; slots per atom (dense)."""
    return int(nbrs.max_occupancy)


def pad_to_capacity(nbrs, n_slots: int):
    """The same sparse neighbour list with `n_slots` edge slots (extra slots padded with index N).

    Lists allocated from different positions get different capacities, and every new capacity
    is a new array shape, i.e. a new XLA compilation of the MD step. Padding a fresh list up to
    a capacity already compiled lets repeated runs (segments of a long run) reuse that program.
    Later rebuilds keep the padded size (jax-md rebuilds into `max_occupancy` slots).
    """
    have = capacity(nbrs)
    if n_slots <= have:
        return nbrs
    extra = n_slots - have
    n_atoms = nbrs.reference_position.shape[0]
    idx = nbrs.idx
    if is_dense(nbrs):  # (N, K): more slots per atom
        return dataclasses.replace(nbrs, idx=jnp.pad(idx, ((0, 0), (0, extra)), constant_values=n_atoms),
                                   max_occupancy=n_slots)
    if is_dense_multi_image(nbrs):  # (N, K) and shifts (N, K, 3)
        return dataclasses.replace(nbrs, idx=jnp.pad(idx, ((0, 0), (0, extra)), constant_values=n_atoms),
                                   shifts=jnp.pad(nbrs.shifts, ((0, 0), (0, extra), (0, 0))),
                                   max_occupancy=n_slots)
    if isinstance(idx, tuple):  # multi-image list: (receivers, senders) and per-edge image shifts
        idx = tuple(jnp.pad(a, (0, extra), constant_values=n_atoms) for a in idx)
        shifts = jnp.pad(nbrs.shifts, ((0, extra), (0, 0)))
        return dataclasses.replace(nbrs, idx=idx, shifts=shifts, max_occupancy=n_slots)
    if idx.ndim != 2 or idx.shape[0] != 2:
        raise ValueError("pad_to_capacity handles sparse (2, capacity) lists only")
    idx = jnp.pad(idx, ((0, 0), (0, extra)), constant_values=n_atoms)
    return dataclasses.replace(nbrs, idx=idx, max_occupancy=n_slots)


def over_batch(fn: Callable, n_batch: int) -> Callable:
    """Apply a one-system function to arguments with a leading batch axis of size n_batch.

    Several systems are vmapped. One system is squeezed instead, so that any `lax.cond` inside
    `fn` (jax-md's rebuild test) stays a real branch: vmap turns it into a select that evaluates
    both sides.
    """
    if n_batch > 1:
        return jax.vmap(fn)

    def one(*args):
        out = fn(*jax.tree_util.tree_map(lambda x: x[0], args))
        return jax.tree_util.tree_map(lambda x: x[None], out)

    return one


def batched_update(update: Callable, box, skin: float) -> Callable:
    """Neighbour-list update for a batch of systems in one box (MD replicas, string images).

    Returns update_all(R (B, N, 3), nbrs with a leading batch axis) -> nbrs. jax-md decides per
    list whether to rebuild with a `lax.cond`; under vmap that cond becomes a select, so every
    list would be rebuilt at every call (measured: 6 vmapped MD replicas ran 2x slower than 6
    sequential runs). Here one un-batched cond asks whether *any* system moved more than skin/2
    (minimum image, so atoms wrapping across the cell do not count) and only then rebuilds
    *every* list of the batch (`forced_rebuild`). The vmapped rebuild costs the whole batch
    either way, so letting each list keep its own criterion (as before) only meant more
    rebuilds: the lists fell out of step and each one's turn rebuilt all of them (8 vacancy
    replicas at kT = 1: up to one batch rebuild per replica per event). A list rebuilt early
    holds every pair within cutoff + skin of the new positions, so the forces do not change.
    """
    box = jnp.asarray(box)
    inv_box = jnp.linalg.inv(box)
    half_cell = 0.5 * box[:, 0]
    # a hair below the lists' own threshold, so this gate never skips a rebuild they would do
    threshold_sq = (0.999 * skin / 2.0) ** 2

    def update_all(R, nbrs):
        rebuild_each = over_batch(partial(forced_rebuild, update, half_cell.astype(R.dtype)), R.shape[0])
        frac = (R - nbrs.reference_position.astype(R.dtype)) @ inv_box.T
        moved = (frac - jnp.round(frac)) @ box.T
        need = jnp.any(jnp.sum(moved * moved, axis=-1) > threshold_sq)
        return lax.cond(need, rebuild_each, lambda r, nb: nb, R, nbrs)

    return update_all


def forced_rebuild(update: Callable, half_cell, R, nbrs):
    """Rebuild `nbrs` from positions R into its own capacity (overflow flagged if it does not fit).

    jax-md rebuilds only when some atom moved more than skin/2 from the list's reference
    positions; moving the reference by half a cell (`half_cell`, more than any skin, in the
    coordinates the list is built from) makes it rebuild.
    """
    moved = dataclasses.replace(nbrs, reference_position=(R + half_cell).astype(nbrs.reference_position.dtype))
    return update(R, moved)


def edge_index(nbrs) -> tuple[Array, Array]:
    """(receivers i, senders j), each shape (E,). Padded slots hold N. A dense list's edges are
    its rows flattened (E = N K; i the row's atom, j the neighbour)."""
    idx = nbrs.idx
    if is_dense(nbrs) or is_dense_multi_image(nbrs):
        n, k = idx.shape
        return jnp.broadcast_to(jnp.arange(n, dtype=idx.dtype)[:, None], (n, k)).reshape(-1), idx.reshape(-1)
    return idx[0], idx[1]


def rows_times_box_t(u: Array, box: Array) -> Array:
    """u @ box.T for u (..., 3) as three broadcast multiply-adds, which XLA on CPU fuses with the
    gathers around them: ~3x faster than a (N, K, 3) x (3, 3) dot in the dense LJ kernel, and
    3-8 % faster energy+forces for the GNNs through `edge_vectors` (bit-identical there; the
    measurements and an earlier contrary one are in docs/performance.md)."""
    return u[..., 0:1] * box[:, 0] + u[..., 1:2] * box[:, 1] + u[..., 2:3] * box[:, 2]


def edge_vectors(R: Array, box: Array, nbrs) -> tuple[Array, Array, Array, Array]:
    """Displacements r_j - r_i for every listed edge.

    Args:
        R: (N, 3) Cartesian positions (reduced).
        box: (3, 3) box matrix, columns = lattice vectors.
        nbrs: neighbour list (minimum-image or multi-image).

    Returns:
        dR: (E, 3) vectors from receiver i to sender j (zero on padded slots),
        mask: (E,) bool, True for real edges,
        i, j: (E,) receiver and sender indices, clipped to [0, N-1] (safe for gathers).
    """
    N = R.shape[0]
    i, j = edge_index(nbrs)
    mask = (i < N) & (j < N)
    ic = jnp.where(mask, i, 0)
    jc = jnp.where(mask, j, 0)
    inv_box = jnp.linalg.inv(box)
    shifts = getattr(nbrs, "shifts", None)
    if shifts is not None:
        # A multi-image list stores an explicit image shift per edge, valid for the positions it
        # was built from. An atom that wraps across the cell between rebuilds would make that
        # shift wrong by a lattice vector, so positions are re-expressed as the build-time
        # positions plus each atom's (minimum-image) motion since then, which cannot wrap.
        ref = nbrs.reference_position.astype(R.dtype)
        moved = (R - ref) @ inv_box.T
        R = ref + (moved - jnp.round(moved)) @ box.T
        if is_dense_multi_image(nbrs):
            shifts = shifts.reshape(-1, 3)
        dR = R[jc] - R[ic] + shifts.astype(R.dtype) @ box.T
    else:
        # fractional positions once per atom, then gathered: one (E, 3) x (3, 3) product per
        # edge instead of two (the LJ force call at N = 256 ... 4000 ran 1.3-1.6x faster)
        S = R @ inv_box.T
        frac = S[jc] - S[ic]
        frac = frac - jnp.round(frac)
        dR = rows_times_box_t(frac, box)
    dR = jnp.where(mask[:, None], dR, 0.0)
    return dR, mask, ic, jc


def safe_norm(dR: Array, mask: Array, fill: float = 1.0) -> Array:
    """|dR| per edge with padded slots set to `fill`, so no NaN gradient leaks from r = 0."""
    r2 = jnp.sum(dR * dR, axis=-1)
    r2 = jnp.where(mask, r2, fill * fill)
    return jnp.sqrt(r2)


def brute_force_pairs(R: np.ndarray, box, cutoff: float) -> list[tuple[int, int, np.ndarray]]:
    """All (i, j, r_j - r_i + image) with |d| < cutoff, i != j or a nonzero image. For tests only.

    Uses numpy and explicit image enumeration, independent of the jax-md lists.
    """
    b = as_box_matrix(box)
    widths = perpendicular_widths(b)
    n_img = np.ceil(cutoff / widths).astype(int)
    images = np.array([(a, bb, c) for a in range(-n_img[0], n_img[0] + 1)
                       for bb in range(-n_img[1], n_img[1] + 1)
                       for c in range(-n_img[2], n_img[2] + 1)], dtype=float)
    shifts = images @ b.T
    R = np.asarray(R, dtype=np.float64)
    out = []
    for i in range(len(R)):
        d = R[None, :, :] + shifts[:, None, :] - R[i][None, None, :]
        r = np.linalg.norm(d, axis=-1)
        for s, j in zip(*np.nonzero((r < cutoff) & (r > 1e-12))):
            out.append((i, int(j), d[s, j]))
    return out
