"""Trainer standardisation (energy_scale and force_scale are one quantity) and the CG prior term (issue 15)."""
import numpy as np
import pytest

from mlffbench.training.trainer import make_loss, output_scale, predict_graphs
from mlffbench.training.config import LossConfig
from mlffbench.training.data import standardization


class _Graphs:
    """Duck-typed GraphSet: n frames of N atoms (only what predict_graphs reads)."""

    def __init__(self, n, N):
        self.n, self.n_atoms = n, N

    def __len__(self):
        return self.n

    def take(self, idx):
        return {"R": np.zeros((len(idx), self.n_atoms, 3))}


def _std(escale, fscale, shift=0.25):
    return {"energy_shift": shift, "energy_scale": escale, "force_scale": fscale}


def test_output_scale_requires_equal_scales():
    assert output_scale(_std(2.5, 2.5)) == 2.5
    with pytest.raises(ValueError, match="energy_scale"):
        output_scale(_std(2.5, 1.0))


def test_predict_graphs_undoes_one_scale_analytically():
    """A predictor returning unit normalised outputs: E = scale + N*shift, F = scale (by hand)."""
    N, scale, shift = 4, 3.0, 0.25

    def predictor(params, batch):
        B = batch["R"].shape[0]
        return np.ones(B), np.ones((B, N, 3))

    E, F = predict_graphs(predictor, None, _Graphs(5, N), _std(scale, scale, shift), batch_size=2)
    np.testing.assert_allclose(E, np.full(5, 3.0 + 4 * 0.25))
    np.testing.assert_allclose(F, np.full((5, N, 3), 3.0))
    with pytest.raises(ValueError):
        predict_graphs(predictor, None, _Graphs(5, N), _std(scale, 1.0, shift), batch_size=2)


def test_make_loss_rejects_unequal_scales():
    with pytest.raises(ValueError, match="force_scale"):
        make_loss(None, True, LossConfig(), _std(2.0, 1.0), n_atoms=4, dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# the prior term (issue 15, item 3): trainer loss == the removed CG loop's loss on a fixed batch
# ------------------------------------------------------------------------------------------------
def _cg_loop_loss(module, params, X, F_ref, box, prior, cutoff, scale, kind):
    """The loss of cg/fit.py's own loop before it was removed (copied from commit b25aac9): the
    model's forces (minimum-image edges, energy x scale) against F_ref - F_prior (the prior's
    forces precomputed), mean over components, divided by scale^2."""
    import jax
    import jax.numpy as jnp

    from mlffbench.cg.fit import frame_edges, prior_forces

    F_target = F_ref - prior_forces(prior, X, box)
    I, J, mask = frame_edges(X, box, cutoff)
    b = jnp.asarray(box)
    M = X.shape[1]

    def energy(p, R, i, j, m):
        d = R[j] - R[i]
        frac = d @ jnp.linalg.inv(b).T
        dR = jnp.where(m[:, None], (frac - jnp.round(frac)) @ b.T, 0.0)
        return scale * jnp.sum(module.apply(p, dR, m, i, j, M))

    pred = jax.vmap(lambda R, i, j, m: -jax.grad(energy, argnums=1)(params, R, i, j, m))(
        jnp.asarray(X), jnp.asarray(I), jnp.asarray(J), jnp.asarray(mask))
    d = (pred - F_target).ravel()
    raw = jnp.mean(d * d) if kind == "mse" else jnp.sqrt(jnp.mean(d * d)) + jnp.mean(jnp.abs(d))
    return float(raw / scale ** 2)


def _fixed_batch():
    rng = np.random.default_rng(11)
    L, M = 4.0, 14
    X = rng.uniform(0.0, L, size=(3, M, 3))
    X[:, 1] = X[:, 0] + [0.62, 0.1, 0.0]  # one pair inside the prior in every frame
    F = rng.normal(0.0, 2.0, size=X.shape)
    return X, F, np.eye(3) * L


def test_trainer_prior_term_equals_the_cg_loop_loss():
    import jax.numpy as jnp

    from mlffbench.cg.fit import cg_frames, cg_graphs
    from mlffbench.cg.prior import ExponentialPrior
    from mlffbench.potentials.gnn import init_params
    from mlffbench.potentials.gnn.hipnn_ts import HIPNNTS, hparams_with_defaults

    X, F, box = _fixed_batch()
    hp = hparams_with_defaults(dict(n_features=6, n_sensitivities=5, n_interactions=2, n_atom_layers=1,
                                    cutoff=1.9, min_soft=0.4, max_soft=1.7))
    module = HIPNNTS(**hp)
    params = init_params("hipnn-ts", hp, seed=4, dtype=jnp.float64)
    prior = ExponentialPrior(onset=0.7, strength=3.0, width=0.1, fraction=0.05)
    std = standardization(cg_frames(X, F, box), np.arange(len(X)), use_energy=False)
    scale = std["force_scale"]
    batch = {k: jnp.asarray(v) for k, v in cg_graphs(X, F, box, hp["cutoff"]).take(np.arange(3)).items()}
    for kind, factor in (("mse", 1.0), ("rmse+mae", scale)):  # rmse+mae: trainer on F/scale, loop /scale^2
        loss_fn = make_loss(module, True, LossConfig(kind=kind, energy_weight=0.0), std, X.shape[1], jnp.float64,
                            prior=prior)
        got = float(loss_fn(params, batch)[0])
        want = _cg_loop_loss(module, params, X, F, box, prior, hp["cutoff"], scale, kind)
        assert got == pytest.approx(factor * want, rel=1e-10)
        # the prior term is really there: without it the loss differs
        bare = float(make_loss(module, True, LossConfig(kind=kind, energy_weight=0.0), std, X.shape[1],
                               jnp.float64)(params, batch)[0])
        assert abs(bare - got) > 1e-3 * got


def test_prior_needs_a_conservative_model_and_the_cg_model_card_scales_agree(tmp_path):
    import json

    from mlffbench.cg.fit import save_cg_hipnn
    from mlffbench.cg.prior import ExponentialPrior
    from mlffbench.potentials.gnn import init_params

    prior = ExponentialPrior(onset=0.7, strength=3.0, width=0.1)
    with pytest.raises(ValueError, match="conservative"):
        make_loss(None, False, LossConfig(energy_weight=0.0), _std(2.0, 2.0), n_atoms=4, dtype=np.float32,
                  prior=prior)
    hp = dict(n_features=4, n_sensitivities=4, n_interactions=1, n_atom_layers=1, cutoff=2.0, min_soft=0.5,
              max_soft=1.8)
    out = save_cg_hipnn(tmp_path / "m", hp, init_params("hipnn-ts", hp, seed=0), 1.7, prior, history=[])
    std = json.loads((out / "model_card.json").read_text())["standardization"]
    assert output_scale(std) == 1.7  # the trap: energy_scale = RMS force with force_scale 1.0 was rejected
