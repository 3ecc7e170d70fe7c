"""HIP-NN-TS: Hierarchically Interacting Particle Neural Network with Tensor Sensitivity (Flax linen).

After Lubbers, Smith & Barros, J. Chem. Phys. 148, 241715 (2018) (HIP-NN) and Chigaev et al.,
J. Chem. Phys. 158, 184108 (2023) (tensor sensitivity), as implemented in hippynn
(`InteractLayerVec` / `InteractLayerQuad`). Follows the contract of
`mlffbench.potentials.gnn.registry`:

    model.apply(params, dR, mask, receivers, senders, n_atoms) -> per-atom energies (N,)

receivers may be None: the edges are then dense rows (E = N K, row i = atom i's neighbours; the
registry's neighbor_format 'dense'), and the neighbour sums are batched matmuls instead of
scatter-adds (`neighbor_moments`).

Per interaction layer, with sensitivities s_nu(r) = exp(-(1/r - 1/mu_nu)^2 / (2 sigma_nu^2))
* cos^2(pi r / 2 r_c) (r < r_c; trainable mu, sigma) and neighbour features z_j (f):

    a_i^{l}  = sum_j sum_{nu,f} W_{nu f f'} s_nu(r_ij) z_j^f Y_l(r_hat_ij)
    Y_0 = 1,  Y_1 = r_hat (3),  Y_2 = r_hat r_hat^T - I/3 (3x3)
    z_i'     = act( a_i^0 + c_1 * sqrt(|a_i^1|^2 + eps) + c_2 * sqrt(|a_i^2|_F^2 + eps)
                    + V z_i + b )

The interaction weights W are shared by l = 0, 1, 2 (as in hippynn); c_1, c_2 are trainable
per-feature scales. Because W and the neighbour sum are linear, W is applied per edge before the
sum (one (E, nu*f) @ (nu*f, f') product serves every l), which avoids an (N, nu, f, 3, 3) tensor;
Y_2 is kept as its 6 independent entries (`angular_components`).
Each interaction layer is followed by on-site layers with residual connections. The energy is
hierarchical: a linear per-atom read-out of every layer's features (including the input layer),
summed over layers.

Units: reduced (sigma). Single species: the input feature is a constant 1 per atom.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mlffbench.potentials.gnn.registry import register_model

Array = jnp.ndarray

DEFAULTS = {
    "n_features": 32,
    "n_interactions": 2,
    "n_atom_layers": 2,
    "n_sensitivities": 16,
    "cutoff": 2.5,
    "min_soft": 0.85,
    "max_soft": 2.3,
    "norm_eps": 1e-6,
    "tensor_order": 2,
}


def cosine_cutoff(r: Array, r_c: float) -> Array:
    """cos^2(pi r / 2 r_c) for r < r_c, else 0."""
    return jnp.where(r < r_c, jnp.cos(0.5 * jnp.pi * r / r_c) ** 2, 0.0)


class Sensitivity(nn.Module):
    """Inverse-distance Gaussian sensitivities s_nu(r), shape (E,) -> (E, n_sens).

    mu and sigma are trainable; 1/mu starts evenly spaced between 1/max_soft and 1/min_soft,
    sigma starts at that spacing (hippynn's initialisation).
    """

    n_sens: int
    min_soft: float
    max_soft: float
    cutoff: float

    @nn.compact
    def __call__(self, r: Array) -> Array:
        inv_lo, inv_hi = 1.0 / self.max_soft, 1.0 / self.min_soft
        spacing = (inv_hi - inv_lo) / max(self.n_sens - 1, 1)
        inv_mu = self.param("inv_mu", lambda k: jnp.linspace(inv_lo, inv_hi, self.n_sens))
        sigma = self.param("sigma", lambda k: jnp.full((self.n_sens,), spacing))
        x = (1.0 / r)[:, None] - inv_mu[None, :]
        return jnp.exp(-(x * x) / (2.0 * sigma[None, :] ** 2)) * cosine_cutoff(r, self.cutoff)[:, None]


def edge_geometry(dR: Array, mask: Array, cutoff: float) -> tuple[Array, Array, Array]:
    """(r (E,), r_hat (E,3), valid (E,)) with padded / out-of-range edges made harmless.

    Masked edges get r = cutoff (sensitivity exactly 0 and finite gradients) and r_hat = 0.
    """
    r2 = jnp.sum(dR * dR, axis=-1)
    valid = mask & (r2 > 0) & (r2 < cutoff * cutoff)
    safe_r2 = jnp.where(valid, r2, cutoff * cutoff)
    r = jnp.sqrt(safe_r2)
    r_hat = jnp.where(valid[:, None], dR / r[:, None], 0.0)
    return r, r_hat, valid


_SQRT2 = 2.0 ** 0.5


def angular_components(r_hat: Array, order: int = 2) -> Array:
    """Per-edge Y_l(r_hat) for l = 0 ... order, concatenated: (E, 1 [+ 3 [+ 6]]).

    Y_2 = r_hat r_hat^T - I/3 is symmetric, so it is stored as its 6 independent entries with the
    off-diagonal ones times sqrt(2): a plain sum of squares of a neighbour sum of them is then its
    Frobenius norm squared. Padded edges (r_hat = 0) get Y = 0 for l >= 1.
    """
    comps = [jnp.ones(r_hat.shape[:1] + (1,), r_hat.dtype)]
    if order >= 1:
        comps.append(r_hat)
    if order >= 2:
        x, y, z = r_hat[:, 0], r_hat[:, 1], r_hat[:, 2]
        third = jnp.where(jnp.sum(r_hat * r_hat, -1) > 0, 1.0 / 3.0, 0.0).astype(r_hat.dtype)
        comps.append(jnp.stack([x * x - third, y * y - third, z * z - third,
                                _SQRT2 * x * y, _SQRT2 * x * z, _SQRT2 * y * z], -1))
    return jnp.concatenate(comps, -1)


def neighbor_moments(h: Array, Y: Array, receivers: Array | None, n_atoms: int) -> Array:
    """m_i = sum_j h_ij (x) Y_ij: (N, f, n_Y) from edge messages h (E, f) and components Y (E, n_Y).

    receivers None means dense rows: E = N K edges in row-major order, row i holding atom i's
    neighbours (`neighbors.edge_index` of a Dense list).
    Then the sum is N small (f, K) @ (K, n_Y) products, which XLA runs as a batched matmul,
    forward and backward, without materialising the (E, f, n_Y) outer product or scattering it:
    on the CG model (125 beads) CG MD ran 1.4x faster than on the sparse list
    (bench/hipnn_layout.py; the force call alone 1.0-1.3x, within the machine's noise).
    """
    if receivers is None:
        f, n_y = h.shape[-1], Y.shape[-1]
        return jnp.einsum("nkf,nky->nfy", h.reshape(n_atoms, -1, f), Y.reshape(n_atoms, -1, n_y))
    return jax.ops.segment_sum(h[:, :, None] * Y[:, None, :], receivers, num_segments=n_atoms)


def tensor_invariants(h: Array, r_hat: Array, receivers: Array | None, n_atoms: int, eps: float,
                      order: int = 2) -> tuple[Array, Array | None, Array | None]:
    """Neighbour sums of weighted edge messages h (E, f) times Y_l(r_hat), contracted to invariants.

    Returns a0 (N, f) = sum_j h; n1 (N, f) = sqrt(|sum_j h r_hat|^2 + eps);
    n2 (N, f) = sqrt(|sum_j h (r_hat r_hat^T - I/3)|_F^2 + eps) (None above `order`).
    receivers: (E,) receiver of every edge, or None for dense rows (`neighbor_moments`).
    """
    m = neighbor_moments(h, angular_components(r_hat, order), receivers, n_atoms)
    a0 = m[..., 0]
    n1 = jnp.sqrt(jnp.sum(m[..., 1:4] ** 2, -1) + eps) if order >= 1 else None
    n2 = jnp.sqrt(jnp.sum(m[..., 4:10] ** 2, -1) + eps) if order >= 2 else None
    return a0, n1, n2


class InteractionTS(nn.Module):
    """One HIP-NN-TS interaction layer: (z (N, f_in), edges) -> (N, f_out)."""

    n_out: int
    n_sens: int
    min_soft: float
    max_soft: float
    cutoff: float
    eps: float
    order: int = 2

    @nn.compact
    def __call__(self, z, r, r_hat, valid, receivers, senders, n_atoms: int):
        f_in = z.shape[-1]
        s = Sensitivity(self.n_sens, self.min_soft, self.max_soft, self.cutoff)(r)
        s = jnp.where(valid[:, None], s, 0.0)
        w = self.param("int_weights", nn.initializers.lecun_normal(),
                       (self.n_sens * f_in, self.n_out))
        # per-edge (s (x) z_j) @ W: shared by every tensor order (linear, so it commutes with sum_j)
        env = (s[:, :, None] * z[senders][:, None, :]).reshape(s.shape[0], -1)
        h = env @ w.astype(env.dtype)
        a0, n1, n2 = tensor_invariants(h, r_hat, receivers, n_atoms, self.eps, self.order)
        out = a0 + nn.Dense(self.n_out, name="self_int")(z)
        if n1 is not None:
            c1 = self.param("vecscales", nn.initializers.normal(0.1), (self.n_out,))
            out = out + c1 * n1
        if n2 is not None:
            c2 = self.param("quadscales", nn.initializers.normal(0.1), (self.n_out,))
            out = out + c2 * n2
        return nn.softplus(out) - jnp.log(2.0)  # shifted softplus: 0 at 0


class OnSite(nn.Module):
    """Atom-wise dense layer with a residual connection."""

    n_features: int

    @nn.compact
    def __call__(self, z):
        return z + nn.softplus(nn.Dense(self.n_features)(z)) - jnp.log(2.0)


class HIPNNTS(nn.Module):
    """HIP-NN-TS per-atom energies; see the module docstring."""

    n_features: int = 32
    n_interactions: int = 2
    n_atom_layers: int = 2
    n_sensitivities: int = 16
    cutoff: float = 2.5
    min_soft: float = 0.85
    max_soft: float = 2.3
    norm_eps: float = 1e-6
    tensor_order: int = 2

    @nn.compact
    def __call__(self, dR: Array, mask: Array, receivers: Array, senders: Array, n_atoms: int) -> Array:
        r, r_hat, valid = edge_geometry(dR, mask, self.cutoff)
        z = jnp.ones((n_atoms, 1), dtype=dR.dtype)
        energy = nn.Dense(1, name="readout_0")(z)[:, 0]
        for layer in range(self.n_interactions):
            z = InteractionTS(self.n_features, self.n_sensitivities, self.min_soft, self.max_soft,
                              self.cutoff, self.norm_eps, self.tensor_order,
                              name=f"interaction_{layer}")(z, r, r_hat, valid, receivers, senders,
                                                           n_atoms)
            for k in range(self.n_atom_layers):
                z = OnSite(self.n_features, name=f"onsite_{layer}_{k}")(z)
            energy = energy + nn.Dense(1, name=f"readout_{layer + 1}")(z)[:, 0]
        return energy


def hparams_with_defaults(hparams: dict | None) -> dict:
    """Fill missing hyper-parameters; unknown keys raise ValueError naming them."""
    hp = dict(DEFAULTS)
    unknown = set(hparams or {}) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown hipnn-ts hyper-parameters {sorted(unknown)}; allowed {sorted(DEFAULTS)}")
    hp.update(hparams or {})
    return hp


# keys a training config may pass alongside the architecture (not used by the module)
_IGNORED = ("name", "model", "dtype")


@register_model("hipnn-ts", conservative=True, neighbor_format="dense")
def build(hparams: dict) -> nn.Module:
    """Registry builder: HIPNNTS from a hyper-parameter dict (missing keys take DEFAULTS)."""
    return HIPNNTS(**hparams_with_defaults({k: v for k, v in (hparams or {}).items() if k not in _IGNORED}))
