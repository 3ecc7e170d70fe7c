"""Lennard-Jones, the exact oracle, in three explicit variants.

* ``lj/cut``        truncated at rc, not shifted (LAMMPS ``pair_style lj/cut``; ASE ``smooth=False``
                    differs: it shifts, so compare with ASE only through ``lj/cut/shift``).
* ``lj/cut/shift``  truncated and energy-shifted so phi(rc) = 0 (LAMMPS ``pair_modify shift yes``).
* ``lj/smooth``     multiplied by jax-md's C1 switch between r_onset and rc (HOOMD form; ASE
                    ``LennardJones(smooth=True)`` uses the same switch).

The pair function is jax-md's `energy.lennard_jones`; the switch is
`energy.multiplicative_isotropic_cutoff`. Parameters are passed as float64 arrays because jax-md
casts Python floats to float32 even in x64 mode (a 1e-8 relative energy error in argon units).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax_md import energy as jmd_energy

from mlffbench.neighbors import edge_vectors, safe_norm
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

    shift = bare(rc) if variant == "lj/cut/shift" else jnp.asarray(0.0, dtype)

    def truncated(r):
        return jnp.where(r < rc, bare(r) - shift, 0.0)

    return truncated


def lennard_jones(variant: str = "lj/cut/shift", sigma: float = 1.0, epsilon: float = 1.0,
                  cutoff: float = 2.5, r_onset: float | None = None, dtype=jnp.float64,
                  neighbor_format: str = "half") -> Potential:
    """LJ as a `Potential` in reduced units (sigma, epsilon given relative to the unit system).

    Args:
        variant: one of VARIANTS.
        sigma, epsilon: LJ parameters in reduced units (1, 1 for argon in argon units).
        cutoff: rc in reduced units (default 2.5 sigma).
        r_onset: start of the switch for 'lj/smooth' (default 0.8 rc).
        neighbor_format: 'half' lists each pair once (fastest); 'full' for tests of both layouts.
    """
    phi = lj_pair_function(variant, sigma, epsilon, cutoff, r_onset, dtype)
    weight = 1.0 if neighbor_format == "half" else 0.5

    def pair_energies(R, box, nbrs):
        dR, mask, i, j = edge_vectors(R, box, nbrs)
        r = safe_norm(dR, mask, fill=2.0 * cutoff)
        return jnp.where(mask, phi(r), 0.0), i, j

    def energy_fn(R, box, nbrs):
        e, _, _ = pair_energies(R, box, nbrs)
        return weight * jnp.sum(e)

    def per_atom_energy_fn(R, box, nbrs):
        e, i, j = pair_energies(R, box, nbrs)
        n = R.shape[0]
        half = 0.5 * weight * e
        return jnp.zeros(n, e.dtype).at[i].add(half).at[j].add(half)

    params = {"variant": variant, "sigma": sigma, "epsilon": epsilon, "cutoff": cutoff}
    if variant == "lj/smooth":
        params["r_onset"] = r_onset if r_onset is not None else 0.8 * cutoff
    return Potential(name=variant, cutoff=float(cutoff), energy_fn=energy_fn,
                     neighbor_format=neighbor_format, dtype=dtype, params=params,
                     per_atom_energy_fn=per_atom_energy_fn, kind="lj")
