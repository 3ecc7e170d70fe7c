"""Lennard-Jones, the exact oracle, in three explicit variants.

* ``lj/cut``        truncated at rc, not shifted (LAMMPS ``pair_style lj/cut``; ASE ``smooth=False``
                    differs: it shifts, so compare with ASE only through ``lj/cut/shift``).
* ``lj/cut/shift``  truncated and energy-shifted so phi(rc) = 0 (LAMMPS ``pair_modify shift yes``).
* ``lj/smooth``     multiplied by jax-md's C1 switch between r_onset and rc (HOOMD form; ASE
                    ``LennardJones(smooth=True)`` uses the same switch).

The pair function is jax-md's `energy.lennard_jones`; the switch is
`energy.multiplicative_isotropic_cutoff`. Parameters are passed as float64 arrays because jax-md
casts Python floats to float32 even in x64 mode (a 1e-8 relative energy error in argon units).

The default list layout is 'dense' (jax-md's Dense: one row of neighbours per atom, each pair in
both rows), evaluated by `dense_pair_energy`: its custom JVP returns the analytic forces (row sums,
no scatter-add) and the box derivative, so -grad E costs one pass over the pairs. Small cells
(multi-image) get dense rows too, with an integer image shift per slot. A sparse list ('half',
'full') goes through `edge_vectors` and autodiff.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax_md import energy as jmd_energy
from jax_md import partition

from mlffbench.neighbors import edge_vectors, is_dense, is_dense_multi_image, rows_times_box_t, safe_norm
from mlffbench.potentials.base import Potential

VARIANTS = ("lj/cut", "lj/cut/shift", "lj/smooth")


def lj_pair_function(variant: str, sigma: float = 1.0, epsilon: float = 1.0, cutoff: float = 2.5,
                     r_onset: float | None = None, dtype=jnp.float64):
    """phi(r) for the variant, zero beyond the cutoff. r in reduced units, any shape."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown LJ variant {variant!r}; choose one of {VARIANTS}")
    sig = jnp.asarray(sigma, dtype)
    eps = jnp.asarray(epsilon, dtype)
    rc = jnp.asarray(cutoff, dtype)

    def bare(r):
        return jmd_energy.lennard_jones(r, sig, eps)

    if variant == "lj/smooth":
        onset = jnp.asarray(r_onset if r_onset is not None else 0.8 * cutoff, dtype)
        if not float(onset) < float(cutoff):
            raise ValueError("lj/smooth needs r_onset < cutoff (equal values give NaN forces)")
        return jmd_energy.multiplicative_isotropic_cutoff(bare, onset, rc)

    shifted = variant == "lj/cut/shift"

    def truncated(r):
        # phi(rc) evaluated where phi is traced, not here: building an LJ potential then does
        # not load jax_md.energy (deferred, ~0.3 s with flax), which the default dense kernel
        # (`lj_pair_r2`) never needs
        shift = bare(rc) if shifted else jnp.asarray(0.0, dtype)
        return jnp.where(r < rc, bare(r) - shift, 0.0)

    return truncated


def lj_pair_r2(variant: str, sigma: float = 1.0, epsilon: float = 1.0, cutoff: float = 2.5, dtype=jnp.float64):
    """(e, g) = (phi, phi'(r) / r) as functions of r^2 for 'lj/cut' and 'lj/cut/shift' (None for
    'lj/smooth', whose switch needs r): no square root and no division chain per pair. The same
    energy as `lj_pair_function` to round-off (the kernel's callers mask r >= rc)."""
    if variant not in ("lj/cut", "lj/cut/shift"):
        return None
    sig2 = jnp.asarray(float(sigma) ** 2, dtype)
    eps4 = jnp.asarray(4.0 * float(epsilon), dtype)
    eps24 = jnp.asarray(24.0 * float(epsilon), dtype)
    x = (float(sigma) / float(cutoff)) ** 6
    shift = jnp.asarray(4.0 * float(epsilon) * (x * x - x) if variant == "lj/cut/shift" else 0.0, dtype)

    def terms(r2):
        inv2 = 1.0 / r2
        s6 = sig2 * inv2
        s6 = s6 * s6 * s6
        return eps4 * (s6 * s6 - s6) - shift, -eps24 * (2.0 * s6 * s6 - s6) * inv2

    return terms


def dense_pair_energy(phi, cutoff: float, phi_r2=None, images: bool = False):
    """E(R, box, idx[, shifts, ref]) = 1/2 sum_i sum_k phi(|d_ik|) for a dense list idx (N, K)
    (padded with N); phi zero at and beyond `cutoff`; phi_r2 (optional): r^2 -> (phi, phi'(r)/r)
    (`lj_pair_r2`), used instead of phi where given.

    Minimum image (images=False): d_ik is the minimum-image vector from atom i to idx[i, k].
    Multi-image (images=True, small cells): d_ik = box (s_j - s_i + n_ik) with the list's integer
    image shifts n (N, K, 3), valid for the positions the list was built from (ref (N, 3)); each
    atom's fractional position is first moved by the whole cells w_i = round(s_i - s_ref_i) it
    wrapped by since then, so a wrap between rebuilds does not change an edge.

    Its JVP is analytic: dE/dR_i = -sum_k phi'(r_ik) d_ik / r_ik (a row sum: the list holds every
    pair in both rows, and d_ki = -d_ik exactly, since fractional differences are negated
    exactly) and dE/dbox = sum_ik (dphi/dd_ik) m_ik^T / 2 with m_ik the integer image of the edge
    (d = r_j - r_i + box m). So forces cost no scatter-add; second derivatives (Hessians) and the
    strain derivative (stress) go through the same rule. Units: reduced; R (N, 3), box (3, 3).
    """
    rc2 = float(cutoff) ** 2

    def pair_terms(R, box, idx, shifts=None, ref=None):
        n_atoms = R.shape[0]
        inv_t = jnp.linalg.inv(box).T
        S = R @ inv_t
        if shifts is not None:
            wrapped = lax.stop_gradient(jnp.round(S - ref.astype(R.dtype) @ inv_t))  # (N, 3)
            S = S - wrapped
        jc = jnp.minimum(idx, n_atoms - 1)
        df = S[jc] - S[:, None, :]
        if shifts is None:
            image = lax.stop_gradient(-jnp.round(df))
        else:
            image = shifts.astype(R.dtype)
        d = rows_times_box_t(df + image, box)
        r2 = jnp.sum(d * d, axis=-1)
        ok = (idx < n_atoms) & (r2 < rc2)
        r2s = jnp.where(ok, r2, 1.0)
        if phi_r2 is not None:
            e, g = phi_r2(r2s)
        else:
            r = jnp.sqrt(r2s)
            e, de_dr = jax.jvp(phi, (r,), (jnp.ones_like(r),))
            g = de_dr / r
        if shifts is not None:  # the edge's image in the positions R themselves: n - w_j + w_i
            image = image - wrapped[jc] + wrapped[:, None, :]
        return jnp.where(ok, e, 0.0), jnp.where(ok, g, 0.0), d, image

    def energy_of(*args):
        return 0.5 * jnp.sum(pair_terms(*args)[0])

    def jvp_of(primals, tangents):
        R, box = primals[:2]
        dR, dbox = tangents[:2]
        e, g, d, image = pair_terms(*primals)  # g = phi'(r) / r
        grad_R = -jnp.sum(g[..., None] * d, axis=1)  # dE/dR = -F, (N, 3)
        grad_box = 0.5 * jnp.einsum("ik,ika,ikb->ab", g, d, image)
        return 0.5 * jnp.sum(e), jnp.sum(grad_R * dR) + jnp.sum(grad_box * dbox)

    if images:
        energy = jax.custom_jvp(lambda R, box, idx, shifts, ref: energy_of(R, box, idx, shifts, ref))
    else:
        energy = jax.custom_jvp(lambda R, box, idx: energy_of(R, box, idx))
    energy.defjvp(jvp_of)
    return energy


def lennard_jones(variant: str = "lj/cut/shift", sigma: float = 1.0, epsilon: float = 1.0,
                  cutoff: float = 2.5, r_onset: float | None = None, dtype=jnp.float64,
                  neighbor_format: str = "dense") -> Potential:
    """LJ as a `Potential` in reduced units (sigma, epsilon given relative to the unit system).

    Args:
        variant: one of VARIANTS.
        sigma, epsilon: LJ parameters in reduced units (1, 1 for argon in argon units).
        cutoff: rc in reduced units (default 2.5 sigma).
        r_onset: start of the switch for 'lj/smooth' (default 0.8 rc).
        neighbor_format: 'dense' (default, fastest: per-atom rows, analytic forces), 'half'
            (each pair once) or 'full' (both directions), the sparse layouts through autodiff.
    """
    phi = lj_pair_function(variant, sigma, epsilon, cutoff, r_onset, dtype)
    phi_r2 = lj_pair_r2(variant, sigma, epsilon, cutoff, dtype)
    dense_energy = dense_pair_energy(phi, cutoff, phi_r2)
    dense_images_energy = dense_pair_energy(phi, cutoff, phi_r2, images=True)

    def weight(nbrs) -> float:  # 1 when each pair is listed once, 1/2 when listed both ways
        return 1.0 if getattr(nbrs, "format", None) == partition.NeighborListFormat.OrderedSparse else 0.5

    def pair_energies(R, box, nbrs):
        dR, mask, i, j = edge_vectors(R, box, nbrs)
        r = safe_norm(dR, mask, fill=2.0 * cutoff)
        return jnp.where(mask, phi(r), 0.0), i, j

    def energy_fn(R, box, nbrs):
        if is_dense(nbrs):
            return dense_energy(R, box, nbrs.idx)
        if is_dense_multi_image(nbrs):
            return dense_images_energy(R, box, nbrs.idx, nbrs.shifts, nbrs.reference_position)
        e, _, _ = pair_energies(R, box, nbrs)
        return weight(nbrs) * jnp.sum(e)

    def per_atom_energy_fn(R, box, nbrs):
        e, i, j = pair_energies(R, box, nbrs)
        n = R.shape[0]
        half = 0.5 * weight(nbrs) * e
        return jnp.zeros(n, e.dtype).at[i].add(half).at[j].add(half)

    params = {"variant": variant, "sigma": sigma, "epsilon": epsilon, "cutoff": cutoff}
    if variant == "lj/smooth":
        params["r_onset"] = r_onset if r_onset is not None else 0.8 * cutoff
    return Potential(name=variant, cutoff=float(cutoff), energy_fn=energy_fn,
                     neighbor_format=neighbor_format, dtype=dtype, params=params,
                     per_atom_energy_fn=per_atom_energy_fn, kind="lj")
