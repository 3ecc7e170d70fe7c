"""CG reference noise floor, contact check and prior storage (issue 15, items 1-2)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlffbench  # noqa: F401  (x64)
from mlffbench.cg.checks import (
    frame_rdfs,
    min_pair_distances,
    noise_floor,
    replica_noise_floor,
    split_half_distance,
)
from mlffbench.cg.fit import (
    SplinePair,
    hipnn_cg_potential,
    load_cg_model,
    model_forces,
    save_cg_hipnn,
    save_cg_spline,
    spline_cg_potential,
)
from mlffbench.cg.prior import (
    ExponentialPrior,
    RepulsivePrior,
    fit_exponential_prior,
    prior_from_dict,
)
from mlffbench.errors import UserError
from mlffbench.properties.structure import rdf


def test_split_half_noise_floor_matches_the_analytic_expectation():
    # smooth liquid-like g(r) plus i.i.d. Gaussian noise of std sigma per bin and frame: each half
    # mean carries variance sigma^2/(F/2), their difference 4 sigma^2/F, so
    # l2 -> 2 sigma/sqrt(F) and l1 -> sqrt(2/pi) 2 sigma/sqrt(F) over many bins
    rng = np.random.default_rng(3)
    r = np.linspace(0.0, 3.5, 5000)
    g = np.where(r < 0.9, 0.0, 1.0 + 0.8 * np.exp(-((r - 1.1) / 0.2) ** 2))
    F, sigma = 40, 0.05
    G = g + rng.normal(0.0, sigma, size=(F, r.size))
    expect = 2 * sigma / math.sqrt(F)
    assert split_half_distance(r, G, "l2") == pytest.approx(expect, rel=0.03)
    assert split_half_distance(r, G, "l1") == pytest.approx(math.sqrt(2 / math.pi) * expect, rel=0.03)
    assert split_half_distance(r, np.repeat(g[None], 6, 0)) == 0.0  # noise-free reference: no floor


def test_replica_noise_floor_sees_slow_fluctuations_that_split_half_misses():
    # R independent replicas of F frames; replica k carries a slow offset o_kb ~ N(0, tau^2) that
    # lasts its whole run (a fluctuation slower than the run) plus i.i.d. frame noise N(0, sigma^2).
    # A replica mean has variance v = tau^2 + sigma^2/F, the difference of two half-means (R/2
    # replicas each) 4 v / R: l2 -> sqrt(4 v / R), l1 -> sqrt(2/pi) sqrt(4 v / R).
    rng = np.random.default_rng(11)
    r = np.linspace(0.0, 3.5, 4000)
    g = np.where(r < 0.9, 0.0, 1.0 + 0.8 * np.exp(-((r - 1.1) / 0.2) ** 2))
    R, F, sigma, tau = 8, 30, 0.05, 0.02
    G = (g + rng.normal(0.0, tau, size=(R, 1, r.size)) + rng.normal(0.0, sigma, size=(R, F, r.size))).reshape(-1, r.size)
    rep = np.repeat(np.arange(R), F)
    expect = math.sqrt(4 * (tau ** 2 + sigma ** 2 / F) / R)
    assert replica_noise_floor(r, G, rep, "l2") == pytest.approx(expect, rel=0.05)
    assert replica_noise_floor(r, G, rep, "l1") == pytest.approx(math.sqrt(2 / math.pi) * expect, rel=0.05)
    assert noise_floor(r, G, rep, "l2") == (replica_noise_floor(r, G, rep, "l2"), "replicas (8)")
    # one replica's split halves share its slow offset: they only see frame noise, 2 sigma/sqrt(F),
    # well below the distance between two independent runs of that length, sqrt(2 (tau^2 + 2 sigma^2/F))
    one = G[rep == 0]
    assert split_half_distance(r, one) == pytest.approx(2 * sigma / math.sqrt(F), rel=0.05)
    assert noise_floor(r, one, None) == (split_half_distance(r, one), "split-half")
    assert split_half_distance(r, one) < 0.75 * math.sqrt(2 * (tau ** 2 + 2 * sigma ** 2 / F))
    with pytest.raises(ValueError, match="2 replicas"):
        replica_noise_floor(r, one, np.zeros(F, int))


def test_frame_rdfs_average_to_the_trajectory_rdf_and_min_distance_by_hand():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 6.0, size=(4, 30, 3))
    box = np.eye(3) * 6.0
    r, G = frame_rdfs(X, box, 2.5, 25)
    r_all, g_all = rdf(X, box, 2.5, 25)
    np.testing.assert_allclose(r, r_all)
    np.testing.assert_allclose(G.mean(0), g_all, rtol=1e-12, atol=1e-12)
    Y = np.array([[[0.1, 1.0, 1.0], [5.8, 1.0, 1.2], [3.0, 3.0, 3.0]]])  # pair 0-1 across the x face
    assert min_pair_distances(Y, box)[0] == pytest.approx(math.hypot(0.3, 0.2))


def test_exponential_prior_shape_and_fit():
    t, s, w, p = 0.8, 3.0, 0.05, 0.05
    prior = ExponentialPrior(t, s, w, p)
    a = math.log(1 / p) / w
    f_rc = 2 * s * p * math.exp(-a * w)  # = 2 s p^2, the shift
    force = -np.asarray(jax.vmap(jax.grad(prior.pair_energy))(
        jnp.array([t, t - w, prior.cutoff - 1e-9])))
    np.testing.assert_allclose(force[:2], [2 * p * s - f_rc, 2 * s - f_rc], rtol=1e-9)
    assert abs(force[2]) < 1e-6 and float(prior.pair_energy(prior.cutoff + 0.01)) == 0.0
    # the fitted wall: width = margin, strength raised until u(t - margin) = barrier_kT kT_max;
    # by hand, with e^{a w} = 1/p and t - margin - rc = -2 margin: u = s [2 (1 - p^2)/a - 4 p^2 margin]
    fitted = fit_exponential_prior(t, s, margin=0.05, kT_max=2.0, barrier_kT=5.0)
    s_need = 10.0 / (2 * (1 - p * p) / a - 4 * p * p * 0.05)
    assert fitted.width == 0.05 and fitted.onset == t and fitted.strength == pytest.approx(s_need, rel=1e-9)
    assert float(fitted.pair_energy(t - 0.05)) == pytest.approx(10.0, rel=1e-9)
    assert fit_exponential_prior(t, 1e4, margin=0.05, kT_max=2.0).strength == 1e4  # hippynn's mean |F| suffices
    with pytest.raises(UserError, match="margin"):
        fit_exponential_prior(0.04, s, margin=0.05, kT_max=1.0)


def test_prior_and_models_round_trip_through_the_model_directory(tmp_path):
    from mlffbench.potentials.gnn import init_params
    from mlffbench.potentials.gnn.hipnn_ts import HIPNNTS, hparams_with_defaults

    for prior in (ExponentialPrior(0.8, 2.5, 0.03, 0.05), RepulsivePrior.from_rise(0.7, 5.0)):
        assert prior_from_dict(prior.as_dict()) == prior
    with pytest.raises(UserError, match="unknown form"):
        prior_from_dict({"form": "soft"})
    prior = ExponentialPrior(0.8, 2.5, 0.05, 0.05)
    hp = dict(n_features=4, n_sensitivities=4, n_interactions=1, n_atom_layers=1, cutoff=2.0, min_soft=0.5,
              max_soft=1.8)
    params = init_params("hipnn-ts", hp, seed=1)
    box = np.eye(3) * 5.0
    grid = np.stack(np.meshgrid(np.arange(3) * 5 / 3, np.arange(2) * 2.5, np.arange(2) * 2.5, indexing="ij"), -1)
    X = (grid.reshape(1, 12, 3) + 0.3).copy()
    X[0, 1] = X[0, 0] + [0.7, 0.0, 0.0]  # the only pair inside the prior (all others > 0.9 sigma apart)
    module = HIPNNTS(**hparams_with_defaults(hp))
    path = save_cg_hipnn(tmp_path / "hipnn-ts", hp, params, 1.7, prior, history=[])
    loaded = load_cg_model(path)
    spline = SplinePair(r_min=0.8, cutoff=2.0, h=0.3, coef=(0.5, -0.2, 0.1))
    save_cg_spline(tmp_path / "pair_spline.json", spline, prior, 0.1)
    direct = hipnn_cg_potential(module, params, 1.7, prior)
    no_prior = hipnn_cg_potential(module, params, 1.7, ExponentialPrior(1e-3, 1e-9, 1e-4, 0.05))
    assert loaded.params == direct.params and loaded.cutoff == direct.cutoff
    b = jnp.asarray(box)
    nbrs = loaded.neighbors(b, skin=0.3, n_atoms=12).allocate(jnp.asarray(X[0]))
    with jax.disable_jit():  # one frame, eager energies: no compilation per potential
        e_loaded, e_direct, e_bare = (float(p.energy(jnp.asarray(X[0]), b, nbrs)) for p in (loaded, direct, no_prior))
        assert e_loaded == pytest.approx(e_direct, rel=1e-6, abs=1e-9)
        assert e_loaded - e_bare == pytest.approx(float(prior.pair_energy(0.7)), rel=1e-6)  # the prior came back
        np.testing.assert_allclose(model_forces(load_cg_model(tmp_path / "pair_spline.json"), X, box),
                                   model_forces(spline_cg_potential(spline, prior), X, box), rtol=1e-9, atol=1e-12)
    (path / "prior.json").unlink()
    with pytest.raises(UserError, match="prior.json"):
        load_cg_model(path)


def test_build_prior_onset_min_distance_or_rdf_rise():
    from mlffbench.cg.config import CGConfig
    from mlffbench.cg.transfer import build_prior

    r = np.arange(0.05, 3.5, 0.1)
    g = np.where(r < 0.8, 0.0, 1.0)
    g[r < 0.3] = 0.0
    g[(r > 0.5) & (r < 0.6)] = 0.01  # sparse pairs below the rise (g <= rdf_threshold)
    train = [{"r": r, "g": g, "F": np.full((2, 3, 3), 4.0), "r_min": 0.42}]
    states = [{"name": "A", "kT": 1.5, "atom_density": 0.75}, {"name": "B", "kT": 2.0, "atom_density": 0.7}]
    base = {"train_state": "A", "states": states}
    p_min, rise = build_prior(CGConfig(**base), train)
    assert rise == pytest.approx(0.85) and p_min.onset == 0.42 and p_min.width == 0.05
    p_rise, _ = build_prior(CGConfig(**base, prior={"onset": "rdf_rise"}), train)
    assert p_rise.onset == pytest.approx(0.85) and p_rise.width == pytest.approx(0.85 - 0.42)
    # the wall's energy at the smallest sampled distance is barrier_kT x the highest kT (5 x 2.0)
    assert float(p_rise.pair_energy(0.42)) == pytest.approx(10.0, rel=1e-9)
    assert float(p_rise.pair_energy(0.9)) < 0.05 * 10.0
