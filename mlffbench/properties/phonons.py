"""Harmonic phonons from the Hessian of any `Potential`: exact autodiff where the potential
allows it, central finite differences of forces otherwise.

Pipeline (reduced units throughout: sigma, epsilon, m = 1, angular frequencies omega in 1/tau):

1. `force_constants`: second derivatives Phi_{i a, j b} = d^2 E / dR_ia dR_jb of a supercell,
   computed as Jacobian-vector products of the forces (forward-over-reverse for an energy model,
   plain forward mode for a force-only model) in batches sized by a memory budget (XLA's memory
   analysis of the compiled batch: each column carries its own per-edge intermediates, ~15 MB for
   the demo's SchNet at 256 atoms, so a fixed batch of 3N columns would need ~11 GB). Without
   autodiff (`capabilities.autodiff` False, e.g. an ASE calculator) the columns are central
   differences of the forces, -(F(R + h e) - F(R - h e)) / 2h. Two routes:
   * 'bravais': a perfect monatomic Bravais crystal is invariant under lattice translations, so
     atom 0's block row (3 JVPs, or atom 0's six +-displacements, phonopy's symmetry-reduced set)
     determines the whole matrix. For a force-only model the row is also taken by reverse mode
     (3 VJPs) so that the asymmetry ||H - H^T|| / ||H|| is measured.
   * 'full': every column (3N JVPs or 6N force calls). Any structure; the asymmetry is exact.
2. `dynamical_matrices`: D(q) = (1/m) sum_j Phi(0, j) sum_s w_js exp(i q . d_js) where the d_js
   are the shortest supercell images of r_j - r_0 and w_js = 1/multiplicity, exactly phonopy's
   treatment of atoms on the supercell boundary (equal-distance images share the weight).
3. Frequencies on a q-mesh (DOS by Gaussian smearing), along the FCC path G-X-W-K-G-L, or at the
   q-points commensurate with the supercell ("Gamma-point eigenvalues of the supercell").

Signed frequencies: an eigenvalue lambda < 0 of D is reported as -sqrt(-lambda) (phonopy's
convention) and counted as an imaginary mode.

Why by hand: phonopy computes force constants by finite displacements only; the autodiff route
(exact, no displacement amplitude) and the batching are what this module adds. Its outputs are
written in phonopy's file layouts (`mlffbench.phonopy_io`) so phonopy's tools read them.
Compiled derivative programs and neighbour lists are cached by `potential.fingerprint` and
shapes in small LRUs (`clear_caches` drops them).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from mlffbench.neighbors import as_box_matrix
from mlffbench.potentials.base import Potential
from mlffbench.properties.hessian import default_step
from mlffbench.structures import minimum_image

TWO_PI = 2.0 * math.pi

#: High-symmetry points of the FCC Brillouin zone, Cartesian, in units of 2 pi / a (a = cubic
#: lattice constant). Setyawan-Curtarolo labels.
FCC_POINTS = {
    "G": np.array([0.0, 0.0, 0.0]),
    "X": np.array([0.0, 1.0, 0.0]),
    "W": np.array([0.5, 1.0, 0.0]),
    "K": np.array([0.75, 0.75, 0.0]),
    "L": np.array([0.5, 0.5, 0.5]),
}
FCC_PATH = ("G", "X", "W", "K", "G", "L")


# ----------------------------------------------------------------------------------------------
# Force constants
# ----------------------------------------------------------------------------------------------
@dataclass
class ForceConstants:
    """Supercell force constants in phonopy's 'compact' layout.

    Attributes:
        fc: (n_rows, N, 3, 3) array, fc[a, j] = d^2E / dR_{row_atoms[a]} dR_j (epsilon/sigma^2),
            symmetrised (H + H^T)/2.
        row_atoms: (n_rows,) atoms whose block rows are stored ([0] for the Bravais route).
        positions: (N, 3) supercell positions (sigma); box: (3, 3) columns = lattice vectors.
        mass: particle mass (m).
        method: 'bravais' or 'full'.
        asymmetry: ||H - H^T||_F / ||H||_F before symmetrising (0 by construction for an energy
            model on the Bravais route, where only one side is computed; None if not measured).
        asr_violation: max_a |sum_j fc[a, j]| relative to max |fc| (acoustic sum rule).
        n_derivative_passes: number of JVP/VJP evaluations (or force calls) of the forces.
        seconds: wall time including compilation; compile_seconds the first batch's compile.
        hessian: 'autodiff' (exact) or 'finite-difference' (central differences of forces).
        fd_step: the finite-difference step (sigma), None for autodiff.
        batch: derivative columns evaluated together (chosen from the memory budget).
    """

    fc: np.ndarray
    row_atoms: np.ndarray
    positions: np.ndarray
    box: np.ndarray
    mass: float = 1.0
    method: str = "bravais"
    asymmetry: float | None = None
    asr_violation: float = 0.0
    n_derivative_passes: int = 0
    seconds: float = 0.0
    compile_seconds: float = 0.0
    hessian: str = "autodiff"
    fd_step: float | None = None
    batch: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return self.fc.shape[1]

    def row(self) -> np.ndarray:
        """One block row (N, 3, 3) for atom `row_atoms[0]` (translational average if 'full')."""
        if self.method == "full":
            return translational_average(self.fc, self.positions, self.box)
        return self.fc[0]

    def full_matrix(self) -> np.ndarray:
        """The (3N, 3N) Hessian (expanded by lattice translations on the Bravais route)."""
        n = self.n_atoms
        if self.method == "full":
            return self.fc.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
        perm = translation_permutations(self.positions, self.box)  # perm[i, k]: atom at r_k+r_i-r_0
        fc_full = self.fc[0][perm_inverse_rows(perm)]
        return fc_full.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)


#: Largest number of derivative columns evaluated together (more buys no speed on a CPU).
MAX_BATCH = 64
#: Default memory budget of one batch of derivative columns (bytes; the pdos config's
#: `memory_budget_gb`): sized for an 8 GB laptop running a GNN.
DEFAULT_MEMORY_BUDGET = 2e9
_CACHE_SIZE = 4  # entries per cache below: a battery holds a model and the LJ oracle


def _lru(cache: OrderedDict, key, make):
    """cache[key], computed by `make()` on a miss; at most _CACHE_SIZE entries (least recently
    used evicted). Returns (value, made: bool)."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key], False
    cache[key] = make()
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return cache[key], True


def clear_caches() -> None:
    """Drop every compiled derivative program and cached neighbour list (frees their memory)."""
    _COMPILED.clear()
    _BATCH.clear()
    _NEIGHBORS.clear()


_COMPILED: OrderedDict = OrderedDict()  # (fingerprint, reverse, batch, shapes) -> compiled batch fn
_BATCH: OrderedDict = OrderedDict()  # (fingerprint, reverse, n_columns, shapes, budget) -> batch


def _shapes_key(R, nbrs) -> tuple:
    return (R.shape, jax.tree_util.tree_structure(nbrs),
            tuple((jnp.shape(x), jnp.result_type(x).name) for x in jax.tree_util.tree_leaves(nbrs)))


def _column_program(potential: Potential, R, box, nbrs, batch: int, reverse: bool):
    """Compiled (R, box, nbrs, ks) -> -dF/dR contracted with e_k for the `batch` indices ks.

    Forward mode (JVP) gives Hessian columns H[:, k]; reverse mode (VJP) gives rows H[k, :].
    Cached by fingerprint and shapes (bounded LRU). Returns (compiled, compile seconds).
    """
    n3, shape = R.size, R.shape

    def batch_fn(R, box, nbrs, ks):
        def force_fn(x):
            return potential.forces(x, box, nbrs).astype(jnp.float64)

        if reverse:
            _, vjp = jax.vjp(force_fn, R)

            def one(k):
                return -vjp(jnp.zeros(n3, R.dtype).at[k].set(1.0).reshape(shape))[0]
        else:
            def one(k):
                e = jnp.zeros(n3, R.dtype).at[k].set(1.0).reshape(shape)
                return -jax.jvp(force_fn, (R,), (e,))[1]

        return jax.vmap(one)(ks)

    t0 = time.perf_counter()
    key = (potential.fingerprint, reverse, batch, _shapes_key(R, nbrs))
    compiled, made = _lru(_COMPILED, key, lambda: jax.jit(batch_fn).lower(
        R, box, nbrs, jnp.zeros(batch, jnp.int32)).compile())
    return compiled, (time.perf_counter() - t0) if made else 0.0


def program_bytes(compiled) -> float | None:
    """Working memory XLA assigned to a compiled program (temporaries + outputs, bytes), or None
    where the backend does not report it."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # backends without memory analysis
        return None
    if m is None:
        return None
    return float(m.temp_size_in_bytes + m.output_size_in_bytes)


def budget_batch(n_columns: int, bytes_at: float | None, batch: int, budget: float) -> int:
    """Batch size (a power of two, or all n_columns when they fit) whose working memory stays
    within `budget` bytes, given that a batch of `batch` columns needed `bytes_at` bytes (memory
    grows linearly with the batch: each column carries its own per-edge intermediates)."""
    if bytes_at is None or bytes_at <= budget:
        return batch
    per_column = bytes_at / batch  # an upper bound: the fixed part is counted per column too
    fit = max(1, int(budget // per_column))
    return 1 << (fit.bit_length() - 1)


def _batched_columns(potential: Potential, R: jnp.ndarray, box: jnp.ndarray, nbrs, columns: np.ndarray,
                     reverse: bool, memory_budget: float = DEFAULT_MEMORY_BUDGET,
                     max_batch: int = MAX_BATCH) -> tuple[np.ndarray, float, int]:
    """-dF/dR contracted with unit vectors e_k for k in `columns`, (len(columns), N, 3), batched.

    The batch is the largest that fits `memory_budget` bytes (XLA's memory analysis of the
    compiled program; one recompilation at a smaller batch when the first guess does not fit),
    at most `max_batch`, rounded to a power of two so that few shapes are compiled.
    Returns (columns, compile seconds, batch used).
    """
    n = len(columns)
    first = n if n <= max_batch else 1 << (max_batch.bit_length() - 1)
    bkey = (potential.fingerprint, reverse, n, _shapes_key(R, nbrs), float(memory_budget), first)
    compile_s = 0.0

    def choose():
        nonlocal compile_s
        compiled, c = _column_program(potential, R, box, nbrs, first, reverse)
        compile_s += c
        return budget_batch(n, program_bytes(compiled), first, memory_budget)

    batch, _ = _lru(_BATCH, bkey, choose)
    compiled, c = _column_program(potential, R, box, nbrs, batch, reverse)
    compile_s += c
    padded = np.concatenate([columns, np.full((-n) % batch, columns[-1])])
    out = np.empty((len(padded),) + R.shape)
    for s in range(0, len(padded), batch):
        out[s:s + batch] = np.asarray(compiled(R, box, nbrs, jnp.asarray(padded[s:s + batch], jnp.int32)))
    return out[:n], compile_s, batch


def _fd_columns(potential: Potential, R: np.ndarray, box: jnp.ndarray, nbrs, atoms, step: float) -> np.ndarray:
    """Hessian columns by central differences of the forces: for each atom a in `atoms` and
    axis b, -(F(R + h e_ab) - F(R - h e_ab)) / 2h. Returns (3 len(atoms), N, 3); 6 force calls
    per atom, evaluated one after another (the potential need not vmap or differentiate)."""
    force = potential.forces
    if potential.capabilities.jit:
        force = jax.jit(potential.forces)
    out = np.empty((3 * len(atoms),) + R.shape)
    for m, a in enumerate(atoms):
        for b in range(3):
            Rp, Rm = R.copy(), R.copy()
            Rp[a, b] += step
            Rm[a, b] -= step
            Fp = np.asarray(force(jnp.asarray(Rp), box, nbrs), np.float64)
            Fm = np.asarray(force(jnp.asarray(Rm), box, nbrs), np.float64)
            out[3 * m + b] = -(Fp - Fm) / (2.0 * step)
    return out


_NEIGHBORS: OrderedDict = OrderedDict()  # (fingerprint, box, N, skin) -> (update, list)


def _neighbors(potential: Potential, R: jnp.ndarray, box: np.ndarray, skin: float):
    """A neighbour list for R, updated from a cached one of the same shape when possible (a
    fresh allocation carries a new update closure, which would force a recompilation)."""
    key = (potential.fingerprint, np.asarray(box).tobytes(), R.shape[0], skin)
    if key in _NEIGHBORS:
        _NEIGHBORS.move_to_end(key)
        update, cached = _NEIGHBORS[key]
        nbrs = update(R, cached)
        if not bool(nbrs.did_buffer_overflow):
            return nbrs
        del _NEIGHBORS[key]
    spec = potential.neighbors(jnp.asarray(box), skin=skin, n_atoms=R.shape[0])
    nbrs = spec.allocate(R)
    _lru(_NEIGHBORS, key, lambda: (jax.jit(spec.update), nbrs))
    return nbrs


def force_constants(potential: Potential, positions, box, method: str = "bravais", batch: int = MAX_BATCH,
                    skin: float = 0.3, mass: float = 1.0, memory_budget: float = DEFAULT_MEMORY_BUDGET,
                    fd_step: float | None = None) -> ForceConstants:
    """Second derivatives of the energy (or Jacobian of the forces) of a supercell.

    Autodiff (exact) when `potential.capabilities.autodiff`, else central finite differences of
    the forces with step `fd_step` (sigma; None = `properties.hessian.default_step`, eps^(1/3)).

    Args:
        potential: any Potential; force-only models use -dF/dR, which need not be symmetric.
        positions: (N, 3) relaxed positions (sigma); box: (3,) or (3, 3).
        method: 'bravais' (one atom's block row: 3 derivative columns, or atom 0's six
            +-displacements by finite differences; valid for a perfect monatomic Bravais crystal,
            where lattice translations give the rest, as phonopy does) or 'full' (all 3N
            columns; any structure).
        batch: most derivative columns evaluated together (autodiff route).
        memory_budget: bytes one batch may use; the batch shrinks until it fits.
        skin: neighbour-list skin; the list is built once at `positions`.
        mass: particle mass (m), used later by the dynamical matrix.
    """
    if method not in ("bravais", "full"):
        raise ValueError(f"force-constant method must be 'bravais' or 'full', got {method!r}")
    t_start = time.perf_counter()
    box_m = as_box_matrix(box)
    R_np = np.asarray(positions, np.float64)
    R = jnp.asarray(R_np)
    n = len(R_np)
    nbrs = _neighbors(potential, R, box_m, skin)
    box_j = jnp.asarray(box_m)
    autodiff = potential.capabilities.autodiff
    step = None if autodiff else float(fd_step or default_step(potential))
    c_s, used = 0.0, 1

    def columns(idx: np.ndarray, reverse: bool = False) -> np.ndarray:
        nonlocal c_s, used
        if not autodiff:
            return _fd_columns(potential, R_np, box_j, nbrs, idx[::3] // 3, step)
        cols, c, used = _batched_columns(potential, R, box_j, nbrs, idx, reverse, memory_budget, batch)
        c_s += c
        return cols

    if method == "bravais":
        cols = columns(np.arange(3))
        # cols[b, j, a] = H[(j,a), (0,b)] = Phi(j, 0)_{ab}; Phi(0, j) = Phi(j, 0)^T
        col_block = cols.transpose(1, 2, 0)  # (N, 3a, 3b) = Phi(j, 0)
        passes = 3 if autodiff else 6
        if potential.conservative or not autodiff:
            # (finite differences give columns only; for a force-only model the asymmetry
            # then needs the 'full' route)
            row = col_block.transpose(0, 2, 1)
            asym = 0.0 if potential.conservative else None
        else:
            rows = columns(np.arange(3), reverse=True)
            passes += 3
            row_direct = rows.transpose(1, 0, 2)  # (N, 3a, 3b) = H[(0,a), (j,b)] = Phi(0, j)
            col_t = col_block.transpose(0, 2, 1)
            asym = float(np.linalg.norm(row_direct - col_t) / np.linalg.norm(row_direct))
            row = 0.5 * (row_direct + col_t)
        fc = row[None]
        row_atoms = np.array([0])
    else:
        cols = columns(np.arange(3 * n))
        H = cols.reshape(3 * n, 3 * n).T  # H[:, k] = column k
        norm = np.linalg.norm(H)
        asym = float(np.linalg.norm(H - H.T) / norm) if norm > 0 else 0.0
        H = 0.5 * (H + H.T)
        fc = H.reshape(n, 3, n, 3).transpose(0, 2, 1, 3)
        row_atoms = np.arange(n)
        passes = 3 * n if autodiff else 6 * n
    scale = max(float(np.max(np.abs(fc))), 1e-300)
    asr = float(np.max(np.abs(fc.sum(axis=1)))) / scale
    return ForceConstants(fc=fc, row_atoms=row_atoms, positions=R_np, box=box_m, mass=mass,
                          method=method, asymmetry=asym, asr_violation=asr,
                          n_derivative_passes=passes, seconds=time.perf_counter() - t_start,
                          compile_seconds=c_s, hessian="autodiff" if autodiff else "finite-difference",
                          fd_step=step, batch=used if autodiff else 1)


def impose_acoustic_sum_rule(row: np.ndarray, origin: int = 0) -> np.ndarray:
    """Block row (N, 3, 3) with the on-site block set to -sum of the others, so that a rigid
    translation costs nothing (sum_j Phi(0, j) = 0). An exact float64 Hessian satisfies this to
    round-off already; a float32 model's does not, and the violation shows up as small imaginary
    acoustic frequencies at Gamma."""
    out = np.array(row, dtype=np.float64, copy=True)
    out[origin] -= out.sum(axis=0)
    return out


# ----------------------------------------------------------------------------------------------
# Lattice translations of a Bravais supercell
# ----------------------------------------------------------------------------------------------
def translation_permutations(positions: np.ndarray, box: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """perm[i, k] = index of the atom at r_k + (r_i - r_0) (mod the supercell), shape (N, N).

    Valid for a monatomic Bravais supercell (every atom-to-atom vector is a lattice translation).
    Raises ValueError if some translated atom has no partner within `tol` (sigma).
    """
    R = np.asarray(positions, np.float64)
    n = len(R)
    perm = np.empty((n, n), dtype=np.int64)
    for i in range(n):
        target = R + (R[i] - R[0])
        d = minimum_image(target[:, None, :] - R[None, :, :], box)
        dist = np.einsum("kmx,kmx->km", d, d)
        k_best = np.argmin(dist, axis=1)
        if np.max(dist[np.arange(n), k_best]) > tol * tol:
            raise ValueError("the supercell is not a monatomic Bravais lattice (a translation maps "
                             "an atom onto no atom); use the 'full' force-constant method")
        perm[i] = k_best
    return perm


def perm_inverse_rows(perm: np.ndarray) -> np.ndarray:
    """Index array idx (N, N) with Phi(i, j) = Phi(0, idx[i, j]) for a translation-invariant fc.

    Phi(i, j) = Phi(0, k) where r_j - r_i = r_k - r_0, i.e. j = perm[i, k]: invert perm per row.
    """
    n = perm.shape[0]
    idx = np.empty_like(perm)
    rows = np.arange(n)[:, None]
    idx[rows, perm] = np.arange(n)[None, :]
    return idx


def translational_average(fc_full: np.ndarray, positions: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Average block row (N, 3, 3) of a full (N, N, 3, 3) fc over all lattice translations."""
    perm = translation_permutations(positions, box)
    n = len(perm)
    # Phi_avg(0, k) = (1/N) sum_i Phi(i, perm[i, k])
    return np.mean(fc_full[np.arange(n)[:, None], perm], axis=0)


# ----------------------------------------------------------------------------------------------
# Dynamical matrix (phonopy's minimum-image / equal-distance weighting)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShortestImages:
    """For each supercell atom j, the shortest images d_js of r_j - r_0 and weights 1/mult.

    vectors: (N, S, 3) Cartesian (sigma), padded with zeros; weights: (N, S), zero on padding.
    """

    vectors: np.ndarray
    weights: np.ndarray


def shortest_images(positions: np.ndarray, box: np.ndarray, origin: int = 0,
                    tol: float = 1e-5) -> ShortestImages:
    """Equal-distance images of r_j - r_origin among the 27 neighbouring supercell images.

    `tol` (sigma) decides which images tie with the shortest one, as phonopy's `symprec` does.
    """
    box = as_box_matrix(box)
    R = np.asarray(positions, np.float64)
    d0 = minimum_image(R - R[origin], box)
    n_img = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)], float)
    cand = d0[:, None, :] + (n_img @ box.T)[None, :, :]  # (N, 27, 3)
    dist = np.linalg.norm(cand, axis=-1)
    keep = dist <= dist.min(axis=1, keepdims=True) + tol
    mult = keep.sum(axis=1)
    S = int(mult.max())
    vectors = np.zeros((len(R), S, 3))
    weights = np.zeros((len(R), S))
    for j in range(len(R)):
        v = cand[j][keep[j]]
        vectors[j, :len(v)] = v
        weights[j, :len(v)] = 1.0 / len(v)
    return ShortestImages(vectors=vectors, weights=weights)


def dynamical_matrices(row: np.ndarray, images: ShortestImages, q_cart: np.ndarray,
                       mass: float = 1.0, chunk: int = 8192) -> np.ndarray:
    """D(q) for a monatomic crystal, shape (nq, 3, 3), q Cartesian (1/sigma, including 2 pi).

    Only atoms with non-zero force constants contribute (a short-ranged potential couples atom 0
    to ~80 of the supercell's atoms), so the sum runs over those (atom, image) pairs as one
    matrix product: D = [w_m exp(i q . d_m)] @ Phi(0, j_m).
    """
    q = np.atleast_2d(np.asarray(q_cart, np.float64))
    nonzero = np.any(row != 0.0, axis=(1, 2))
    js, ss = np.nonzero((images.weights > 0) & nonzero[:, None])
    d = images.vectors[js, ss]  # (M, 3)
    w = images.weights[js, ss]  # (M,)
    blocks = row[js].reshape(len(js), 9).astype(np.complex128)
    out = np.empty((len(q), 3, 3), dtype=np.complex128)
    for s in range(0, len(q), chunk):
        phase = np.exp(1j * (q[s:s + chunk] @ d.T)) * w[None, :]
        out[s:s + chunk] = (phase @ blocks).reshape(-1, 3, 3) / mass
    return 0.5 * (out + np.conj(out.transpose(0, 2, 1)))


def signed_frequencies(eigenvalues: np.ndarray) -> np.ndarray:
    """Angular frequencies omega = sign(lambda) sqrt(|lambda|) (1/tau)."""
    return np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues))


def frequencies_at(row: np.ndarray, images: ShortestImages, q_cart: np.ndarray, mass: float = 1.0,
                   eigenvectors: bool = False):
    """Signed angular frequencies (nq, 3) ascending (1/tau), optionally with eigenvectors."""
    D = dynamical_matrices(row, images, q_cart, mass)
    if eigenvectors:
        lam, vec = np.linalg.eigh(D)
        return signed_frequencies(lam), vec
    return signed_frequencies(np.linalg.eigvalsh(D))


# ----------------------------------------------------------------------------------------------
# q-point sets
# ----------------------------------------------------------------------------------------------
def fcc_primitive_cell(a: float) -> np.ndarray:
    """Primitive FCC lattice vectors as columns (sigma)."""
    return a * np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]).T


def reciprocal(cell: np.ndarray) -> np.ndarray:
    """Reciprocal lattice vectors (columns) including 2 pi: B^T A = 2 pi I."""
    return TWO_PI * np.linalg.inv(cell).T


def mesh_qpoints(cell: np.ndarray, mesh: int | tuple[int, int, int], gamma_centered: bool = True) -> np.ndarray:
    """Uniform q-mesh over the Brillouin zone of `cell`, Cartesian (nq, 3).

    Gamma-centred: q = B (k / n). Otherwise Monkhorst-Pack ((k + 1/2) / n - 1/2 for even n).
    """
    m = (mesh, mesh, mesh) if isinstance(mesh, int) else tuple(mesh)
    axes = []
    for n in m:
        k = np.arange(n, dtype=float)
        axes.append(k / n if gamma_centered else (k + 0.5) / n - 0.5)
    frac = np.array(np.meshgrid(*axes, indexing="ij")).reshape(3, -1).T
    return frac @ reciprocal(cell).T


def commensurate_qpoints(prim_cell: np.ndarray, supercell_box: np.ndarray) -> np.ndarray:
    """The q-points of the primitive BZ commensurate with the supercell (Cartesian, (n_cells, 3)).

    These are the Gamma-point modes of the supercell: D(q) at these q has exactly the supercell
    Hessian's eigenvalues.
    """
    B_sup = reciprocal(as_box_matrix(supercell_box))
    A_prim = prim_cell
    # q = B_sup m for integer m; keep one representative per primitive reciprocal lattice class
    n_cells = int(round(abs(np.linalg.det(supercell_box) / np.linalg.det(A_prim))))
    span = int(np.ceil(np.max(np.abs(np.linalg.solve(B_sup, reciprocal(A_prim))))) + 1)
    rng = np.arange(-span, span + 1)
    ms = np.array(np.meshgrid(rng, rng, rng, indexing="ij")).reshape(3, -1).T
    q = ms @ B_sup.T
    frac = q @ A_prim / TWO_PI  # coordinates in primitive reciprocal basis
    frac = frac - np.floor(frac + 1e-9)
    keys = np.round(frac * 1e6).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    out = frac[np.sort(first)] @ reciprocal(A_prim).T
    if len(out) != n_cells:
        raise ValueError(f"found {len(out)} commensurate q-points, expected {n_cells}")
    return out


def band_path(a: float, labels=FCC_PATH, points_per_segment: int = 51) -> dict:
    """Cartesian q along the FCC path; returns q (nq, 3), distance (nq,), segments, labels.

    Distances are |dq| / (2 pi) in 1/sigma, as phonopy's band.yaml (which omits the 2 pi).
    """
    scale = TWO_PI / a
    qs, dist, segs = [], [], []
    total = 0.0
    for start, end in zip(labels[:-1], labels[1:]):
        q0, q1 = FCC_POINTS[start] * scale, FCC_POINTS[end] * scale
        t = np.linspace(0.0, 1.0, points_per_segment)
        seg = q0[None] + t[:, None] * (q1 - q0)[None]
        d = total + t * np.linalg.norm(q1 - q0) / TWO_PI
        total = d[-1]
        qs.append(seg)
        dist.append(d)
        segs.append(points_per_segment)
    return {"q": np.concatenate(qs), "distance": np.concatenate(dist), "segment_nqpoint": segs,
            "labels": list(labels)}


# ----------------------------------------------------------------------------------------------
# DOS and moments
# ----------------------------------------------------------------------------------------------
def gaussian_dos(freqs: np.ndarray, grid: np.ndarray, sigma: float, modes_per_point: float = 3.0) -> np.ndarray:
    """Gaussian-smeared DOS on `grid` (same units as freqs), normalised to `modes_per_point`
    (3 per atom of a monatomic primitive cell, phonopy's convention for total_dos.dat)."""
    f = np.asarray(freqs, np.float64).reshape(len(freqs), -1)
    n_q, n_b = f.shape
    norm = 1.0 / (sigma * math.sqrt(TWO_PI))
    flat = f.reshape(-1)
    step = np.diff(grid)
    if len(grid) > 2 and np.allclose(step, step[0], rtol=1e-9, atol=0.0):
        # uniform grid: each mode touches only the points within 8 sigma (exp(-32) ~ 1e-14)
        dg = float(step[0])
        half = int(math.ceil(8.0 * sigma / dg))
        offsets = np.arange(-half, half + 1)
        centre = np.rint((flat - grid[0]) / dg).astype(np.int64)
        inside = (centre >= -half) & (centre <= len(grid) + half)  # others add nothing on the grid
        centre, flat = centre[inside], flat[inside]
        out = np.zeros(len(grid) + 2 * half + 1)
        for s in range(0, len(flat), 50000):
            idx = centre[s:s + 50000, None] + offsets[None, :]
            x = (grid[0] + idx * dg - flat[s:s + 50000, None]) / sigma
            out += np.bincount((idx + half).ravel(), weights=np.exp(-0.5 * x * x).ravel(),
                               minlength=len(out))[: len(out)]
        out = out[half:half + len(grid)] * norm
    else:
        out = np.zeros_like(grid, dtype=np.float64)
        for s in range(0, len(flat), 20000):
            x = (grid[None, :] - flat[s:s + 20000, None]) / sigma
            out += np.sum(np.exp(-0.5 * x * x), axis=0) * norm
    return out * modes_per_point / (n_q * n_b)


def moments(freqs: np.ndarray) -> dict:
    """Statistics of signed frequencies (any unit u): nu_max (u), mean (u), second moment (u^2)
    using the signed square (negative for imaginary modes), and the imaginary-mode count."""
    f = np.asarray(freqs, np.float64).reshape(-1)
    return {"max": float(f.max()), "mean": float(f.mean()), "second": float(np.mean(np.sign(f) * f * f)),
            "n_imaginary": int(np.sum(f < 0))}


def wasserstein1(grid_a: np.ndarray, dos_a: np.ndarray, grid_b: np.ndarray, dos_b: np.ndarray,
                 scale: float = 1.0, n: int = 4001) -> float:
    """Wasserstein-1 distance between two DOS curves, each normalised to unit area, divided by
    `scale` (e.g. the reference nu_max), i.e. integral |CDF_a - CDF_b| dnu / scale."""
    lo = min(grid_a[0], grid_b[0])
    hi = max(grid_a[-1], grid_b[-1])
    x = np.linspace(lo, hi, n)
    a = np.interp(x, grid_a, dos_a, left=0.0, right=0.0)
    b = np.interp(x, grid_b, dos_b, left=0.0, right=0.0)
    ca = _cumtrapz(x, a)
    cb = _cumtrapz(x, b)
    ca, cb = ca / ca[-1], cb / cb[-1]
    return float(np.trapezoid(np.abs(ca - cb), x) / scale)


def _cumtrapz(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(x))])


def fcc_second_moment_lattice_sum(a: float, dphi, d2phi, cutoff: float, mass: float = 1.0,
                                  shells: int = 6) -> float:
    """Exact <omega^2> of a monatomic FCC pair-potential crystal, (1/3m) sum_R [phi''(R) + 2 phi'(R)/R]
    (1/tau^2). dphi and d2phi are numpy functions of r. Independent of any Hessian code."""
    from mlffbench.structures import FCC_BASIS

    cells = np.arange(-shells, shells + 1)
    g = np.array(np.meshgrid(cells, cells, cells, indexing="ij")).reshape(3, -1).T
    pts = (g[:, None, :] + FCC_BASIS[None]).reshape(-1, 3) * a
    r = np.linalg.norm(pts, axis=1)
    r = r[(r > 1e-12) & (r < cutoff)]
    return float(np.sum(d2phi(r) + 2.0 * dphi(r) / r) / (3.0 * mass))
