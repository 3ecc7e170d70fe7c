"""Flax architectures: a conservative SchNet-class model (default) and the paper's direct-force model.

Both follow the contract in `registry.py`: ``module.apply(params, dR, mask, receivers, senders,
n_atoms)`` on one configuration's edge list, returning normalised per-atom energies (N,) or
normalised forces (N, 3). The standardisation (energy shift, force scale) is applied outside, by
the Potential wrapper in `mlffbench.potentials.gnn`.

Speed choices (measured in bench/gnn_throughput.py):
* half neighbour lists: each pair is stored once and its filter is computed once, then the
  message is scattered both ways (the filter depends on |r| only, so W_ij = W_ji);
* fused radial filter: one linear map from the enveloped Gaussian basis to the filters of every
  block at once (one (n_basis, n_blocks*F) kernel), instead of a 2-layer filter MLP per block,
  which was the FLOP-dominant part of a textbook CFConv. The kernel is applied block by block
  (`BlockFilters`): slicing one (E, n_blocks*F) product made autodiff build the filter's
  cotangent by padding each block's (E, F) slice to full width and adding, the costliest single
  op of energy+forces (1.9 of ~4 ms at N = 256); per-block products have no such transpose;
* the smooth envelope is folded into the basis, so every edge quantity vanishes at the cutoff
  with zero first and second derivatives: energy and forces are continuous when atoms cross rc.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mlffbench.neighbors import safe_norm
from mlffbench.potentials.gnn.registry import register_model

Array = jnp.ndarray


def envelope(r: Array, cutoff: float) -> Array:
    """(1 - (r/rc)^2)^3 for r < rc, else 0: C2 at the cutoff (value, slope, curvature vanish)."""
    x2 = (r / cutoff) ** 2
    return jnp.where(x2 < 1.0, (1.0 - x2) ** 3, 0.0)


def gaussian_basis(r: Array, cutoff: float, n_basis: int, r_min: float = 0.0) -> Array:
    """Gaussians exp(-((r - mu_k)/w)^2), mu_k evenly spaced on [r_min, rc], w the spacing. (E, K)."""
    mu = jnp.linspace(r_min, cutoff, n_basis, dtype=r.dtype)
    width = (cutoff - r_min) / (n_basis - 1)
    return jnp.exp(-(((r[:, None] - mu[None, :]) / width) ** 2))


def shifted_softplus(x: Array) -> Array:
    return jax.nn.softplus(x) - jnp.log(2.0).astype(x.dtype)


def scatter_both(values: Array, receivers: Array, senders: Array, n_atoms: int, half: bool) -> Array:
    """Sum edge values onto receivers; for half lists onto both ends (each pair is listed once)."""
    out = jax.ops.segment_sum(values, receivers, num_segments=n_atoms)
    if half:
        out = out + jax.ops.segment_sum(values, senders, num_segments=n_atoms)
    return out


class BlockFilters(nn.Module):
    """The radial filters of every block from one kernel (n_basis, n_blocks*features), as a list
    of n_blocks (E, features) products, one per block's column slice of the kernel.

    Same parameter ('kernel', lecun-normal: `nn.Dense`'s initialiser at the same path) and same
    values as `nn.Dense(n_blocks*features, use_bias=False)(basis)` sliced per block; see the
    module docstring for why the product is taken per block."""

    n_blocks: int
    features: int

    @nn.compact
    def __call__(self, basis: Array) -> list[Array]:
        F = self.features
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (basis.shape[-1], self.n_blocks * F),
                            basis.dtype)
        return [basis @ kernel[:, b * F:(b + 1) * F] for b in range(self.n_blocks)]


class SchNetLite(nn.Module):
    """Invariant continuous-filter message passing (SchNet class), energy per atom.

    h_i^0 = learned embedding (one species); block b:
        m_i = sum_j W_b(r_ij) * (A_b h_j) / avg_neighbors,  h_i <- h_i + MLP_b(m_i)
    E_i = MLP_out(h_i) + (optional) 1/2 sum_j phi(r_ij) with phi a learned radial pair term.
    W_b(r) = basis(r) * envelope(r) @ V_b (no bias, so W vanishes smoothly at rc).
    """

    features: int = 32
    n_blocks: int = 2
    n_basis: int = 16
    cutoff: float = 2.5
    r_min: float = 0.6
    avg_neighbors: float = 40.0
    pair_term: bool = True
    half_list: bool = True

    @nn.compact
    def __call__(self, dR: Array, mask: Array, receivers: Array, senders: Array, n_atoms: int) -> Array:
        dtype = dR.dtype
        r = safe_norm(dR, mask, fill=2.0 * self.cutoff)
        env = jnp.where(mask, envelope(r, self.cutoff), 0.0)
        basis = gaussian_basis(r, self.cutoff, self.n_basis, self.r_min) * env[:, None]  # (E, K)
        F, B = self.features, self.n_blocks
        filters = BlockFilters(B, F, name="filters")(basis)  # n_blocks x (E, F)
        emb = self.param("embedding", nn.initializers.normal(1.0), (1, F), dtype)
        h = jnp.broadcast_to(emb, (n_atoms, F))
        inv_norm = 1.0 / self.avg_neighbors
        for b in range(B):
            x = nn.Dense(F, use_bias=False, name=f"in_{b}", param_dtype=dtype)(h)
            W = filters[b]
            m = x[senders] * W
            if self.half_list:
                m_all = (jax.ops.segment_sum(m, receivers, num_segments=n_atoms)
                         + jax.ops.segment_sum(x[receivers] * W, senders, num_segments=n_atoms))
            else:
                m_all = jax.ops.segment_sum(m, receivers, num_segments=n_atoms)
            v = nn.Dense(F, name=f"up1_{b}", param_dtype=dtype)(m_all * inv_norm)
            v = nn.Dense(F, name=f"up2_{b}", param_dtype=dtype)(shifted_softplus(v))
            h = h + v
        e = nn.Dense(max(F // 2, 4), name="out1", param_dtype=dtype)(h)
        e = nn.Dense(1, name="out2", param_dtype=dtype)(shifted_softplus(e))[:, 0]
        if self.pair_term:
            phi = nn.Dense(1, use_bias=False, name="pair", param_dtype=dtype)(basis)[:, 0]  # (E,)
            weight = 0.5 if self.half_list else 0.5
            e = e + weight * scatter_both(phi, receivers, senders, n_atoms, self.half_list)
        return e


class DirectForceNet(nn.Module):
    """GAMD-style force-only network (the paper's model): forces predicted directly, no energy.

    Edge features e_ij from `n_basis` Gaussians; `n_blocks` blocks of
        e_ij <- e_ij + MLP(LN(e_ij + A h_i + A h_j)),  h_i <- h_i + MLP(LN(h_i + sum_j env*e_ij / n))
    with GELU; output F_i = sum_j f(e_ij) env(r_ij) (r_j - r_i)/r_ij. f is symmetric in i, j, so
    Newton's third law holds and total force is zero, but F is not the gradient of any energy.
    """

    features: int = 128
    n_blocks: int = 4
    n_basis: int = 40
    cutoff: float = 2.206
    r_min: float = 0.6
    avg_neighbors: float = 30.0
    half_list: bool = True

    @nn.compact
    def __call__(self, dR: Array, mask: Array, receivers: Array, senders: Array, n_atoms: int) -> Array:
        dtype = dR.dtype
        F = self.features
        r = safe_norm(dR, mask, fill=2.0 * self.cutoff)
        env = jnp.where(mask, envelope(r, self.cutoff), 0.0)
        basis = gaussian_basis(r, self.cutoff, self.n_basis, self.r_min)
        e = nn.Dense(F, name="edge_in", param_dtype=dtype)(basis)
        emb = self.param("embedding", nn.initializers.normal(1.0), (1, F), dtype)
        h = jnp.broadcast_to(emb, (n_atoms, F))
        for b in range(self.n_blocks):
            a = nn.Dense(F, use_bias=False, name=f"node_to_edge_{b}", param_dtype=dtype)(h)
            z = nn.LayerNorm(name=f"ln_e_{b}", param_dtype=dtype)(e + a[receivers] + a[senders])
            z = nn.Dense(F, name=f"edge_mlp1_{b}", param_dtype=dtype)(z)
            e = e + nn.Dense(F, name=f"edge_mlp2_{b}", param_dtype=dtype)(nn.gelu(z))
            agg = scatter_both(e * env[:, None], receivers, senders, n_atoms, self.half_list)
            z = nn.LayerNorm(name=f"ln_h_{b}", param_dtype=dtype)(h + agg / self.avg_neighbors)
            z = nn.Dense(F, name=f"node_mlp1_{b}", param_dtype=dtype)(z)
            h = h + nn.Dense(F, name=f"node_mlp2_{b}", param_dtype=dtype)(nn.gelu(z))
        f = nn.gelu(nn.Dense(F, name="force_mlp1", param_dtype=dtype)(e))
        f = nn.Dense(1, name="force_mlp2", param_dtype=dtype)(f)[:, 0] * env  # (E,)
        unit = dR / r[:, None]
        fvec = f[:, None] * unit  # force on receiver i along r_j - r_i
        out = jax.ops.segment_sum(fvec, receivers, num_segments=n_atoms)
        if self.half_list:
            out = out - jax.ops.segment_sum(fvec, senders, num_segments=n_atoms)
        return out


SCHNET_DEFAULTS: dict[str, Any] = dict(features=32, n_blocks=2, n_basis=16, cutoff=2.5, r_min=0.6,
                                       avg_neighbors=40.0, pair_term=True)
DIRECT_DEFAULTS: dict[str, Any] = dict(features=128, n_blocks=4, n_basis=40, cutoff=2.206, r_min=0.6,
                                       avg_neighbors=30.0)


def _checked(hparams: dict, defaults: dict, name: str) -> dict:
    unknown = set(hparams) - set(defaults)
    if unknown:
        from mlffbench.errors import UserError

        raise UserError(f"model {name}: unknown hyperparameter(s) {sorted(unknown)}; "
                        f"allowed: {sorted(defaults)}")
    return {**defaults, **hparams}


@register_model("schnet", conservative=True, neighbor_format="half")
def build_schnet(hparams: dict) -> nn.Module:
    """Default conservative model (forces = -grad E)."""
    return SchNetLite(**_checked(hparams, SCHNET_DEFAULTS, "schnet"), half_list=True)


@register_model("direct-force", conservative=False, neighbor_format="half")
def build_direct_force(hparams: dict) -> nn.Module:
    """The paper's GAMD-style model: forces only (4 blocks, width 128, 40 Gaussians, rc 7.5 Å)."""
    return DirectForceNet(**_checked(hparams, DIRECT_DEFAULTS, "direct-force"), half_list=True)


def model_defaults(name: str) -> dict:
    return {"schnet": SCHNET_DEFAULTS, "direct-force": DIRECT_DEFAULTS}.get(name, {})
