"""A complete `kind: jax` model: Lennard-Jones written with mlffbench's neighbour-list helpers.

`make_energy_fn(**kwargs)` is the factory a spec names (`energy_fn: my_jax_model:make_energy_fn`);
it returns energy(R, box, neighbors) in reduced units:

    R          (N, 3) Cartesian positions, sigma
    box        (3, 3) box matrix, columns = lattice vectors, sigma
    neighbors  the list mlffbench builds for `cutoff_A` and `neighbor_format` (here 'full': each
               pair appears as i->j and j->i); `edge_vectors` handles minimum-image and
               multi-image lists alike and masks padded slots
    returns    total energy, epsilon (a scalar)

Everything is plain JAX, so forces, stress, Hessians (autodiff) and vmap come for free. Use it as
`mlffbench md --model examples/my_jax_model.yaml -c configs/md-quick.yaml -o out/md-jax`.
"""

import jax.numpy as jnp

from mlffbench.neighbors import edge_vectors, safe_norm


def make_energy_fn(epsilon: float = 1.0, sigma: float = 1.0, cutoff: float = 2.5):
    """LJ truncated and shifted at `cutoff` (reduced units); epsilon, sigma relative to the units."""

    def phi(r):
        x = (sigma / r) ** 6
        return 4.0 * epsilon * (x * x - x)

    def energy(R, box, neighbors):
        dR, mask, _, _ = edge_vectors(R, box, neighbors)
        r = safe_norm(dR, mask, fill=2.0 * cutoff)
        e = jnp.where(mask & (r < cutoff), phi(r) - phi(cutoff), 0.0)
        return 0.5 * jnp.sum(e)  # a full list counts each pair twice

    return energy
