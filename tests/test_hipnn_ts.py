"""HIP-NN-TS: invariances, F = -grad E (finite differences), tensor invariant vs explicit definition."""

import numpy as np
import jax
import jax.numpy as jnp
import pytest

import mlffbench  # noqa: F401  (x64)
from mlffbench.potentials.gnn.hipnn_ts import HIPNNTS, tensor_invariants
from mlffbench.potentials.gnn.registry import MODELS


def _cluster(n=7, seed=0):
    """Open-boundary cluster: full edge list of all pairs within the cutoff."""
    rng = np.random.default_rng(seed)
    R = rng.uniform(0, 2.2, size=(n, 3))
    return R


def _edges(R, cutoff):
    n = len(R)
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    # pad with two fake edges to exercise masking
    i = np.concatenate([i, [n, n]])
    j = np.concatenate([j, [n, n]])
    return i, j


def _energy_fn(model, params, cutoff):
    def energy(R):
        n = R.shape[0]
        i, j = _edges(np.zeros((n, 3)), cutoff)
        mask = (i < n) & (j < n)
        ic, jc = np.where(mask, i, 0), np.where(mask, j, 0)
        dR = jnp.where(mask[:, None], R[jc] - R[ic], 0.0)
        return jnp.sum(model.apply(params, dR, jnp.asarray(mask), jnp.asarray(ic), jnp.asarray(jc), n))
    return jax.jit(energy)


@pytest.fixture(scope="module")
def setup():
    model = MODELS["hipnn-ts"].build({"n_features": 8, "n_sensitivities": 6, "n_interactions": 2,
                                      "n_atom_layers": 1, "cutoff": 2.5})
    assert isinstance(model, HIPNNTS)
    R = jnp.asarray(_cluster())
    i, j = _edges(np.asarray(R), 2.5)
    params = jax.jit(model.init, static_argnums=5)(jax.random.PRNGKey(0), jnp.zeros((len(i), 3)), jnp.asarray(i < 7),
                        jnp.asarray(np.minimum(i, 6)), jnp.asarray(np.minimum(j, 6)), 7)
    return model, params, R


def test_rotation_translation_permutation_invariance(setup):
    model, params, R = setup
    E = _energy_fn(model, params, 2.5)
    e0 = float(E(R))
    assert np.isfinite(e0)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    assert float(E(R @ q.T + 0.37)) == pytest.approx(e0, abs=1e-10)
    perm = np.random.default_rng(2).permutation(R.shape[0])
    assert float(E(R[perm])) == pytest.approx(e0, abs=1e-10)
    # a reflection too (the invariants are norms: parity-even)
    assert float(E(R * jnp.array([-1.0, 1.0, 1.0]))) == pytest.approx(e0, abs=1e-10)


def test_forces_are_minus_gradient(setup):
    model, params, R = setup
    E = _energy_fn(model, params, 2.5)
    F = -np.asarray(jax.grad(E)(R))
    h = 1e-5
    fd = np.zeros_like(F)
    Rn = np.asarray(R)
    for a in range(R.shape[0]):
        for k in range(3):
            Rp, Rm = Rn.copy(), Rn.copy()
            Rp[a, k] += h
            Rm[a, k] -= h
            fd[a, k] = -(float(E(jnp.asarray(Rp))) - float(E(jnp.asarray(Rm)))) / (2 * h)
    np.testing.assert_allclose(F, fd, atol=1e-7, rtol=1e-6)
    assert np.abs(F.sum(axis=0)).max() < 1e-10  # no net force


@pytest.mark.parametrize("layout", ["edges", "rows"])
def test_tensor_invariants_match_explicit_definition(layout):
    rng = np.random.default_rng(5)
    n, E, f, eps = 5, 30, 4, 1e-6
    rec = rng.integers(0, n, size=E)
    v = rng.normal(size=(E, 3))
    r_hat = v / np.linalg.norm(v, axis=1, keepdims=True)
    h = rng.normal(size=(E, f))
    if layout == "edges":
        a0, n1, n2 = tensor_invariants(jnp.asarray(h), jnp.asarray(r_hat), jnp.asarray(rec), n, eps)
    else:  # the same edges in dense rows of K slots; padded slots carry h = 0 and r_hat = 0, as in the model
        K = int(np.bincount(rec, minlength=n).max()) + 2
        h_rows, r_rows = np.zeros((n, K, f)), np.zeros((n, K, 3))
        fill = np.zeros(n, int)
        for e in rng.permutation(E):
            h_rows[rec[e], fill[rec[e]]], r_rows[rec[e], fill[rec[e]]] = h[e], r_hat[e]
            fill[rec[e]] += 1
        a0, n1, n2 = tensor_invariants(jnp.asarray(h_rows.reshape(-1, f)), jnp.asarray(r_rows.reshape(-1, 3)),
                                       None, n, eps)
    for i in range(n):
        for c in range(f):
            S0, S1, S2 = 0.0, np.zeros(3), np.zeros((3, 3))
            for e in range(E):
                if rec[e] == i:
                    S0 += h[e, c]
                    S1 += h[e, c] * r_hat[e]
                    S2 += h[e, c] * (np.outer(r_hat[e], r_hat[e]) - np.eye(3) / 3)
            assert float(a0[i, c]) == pytest.approx(S0, abs=1e-12)
            assert float(n1[i, c]) == pytest.approx(np.sqrt(np.sum(S1 ** 2) + eps), abs=1e-12)
            assert float(n2[i, c]) == pytest.approx(np.sqrt(np.trace(S2 @ S2.T) + eps), abs=1e-12)


def test_energy_is_smooth_at_cutoff(setup):
    model, params, _ = setup
    # two atoms: energy and force go continuously to the isolated value as r -> rc
    @jax.jit
    def e2(r):
        dR = jnp.array([[r, 0.0, 0.0], [-r, 0.0, 0.0]])
        return jnp.sum(model.apply(params, dR, jnp.array([True, True]), jnp.array([0, 1]), jnp.array([1, 0]), 2))
    far = float(e2(3.0))
    assert float(e2(2.5 - 1e-4)) == pytest.approx(far, abs=1e-6)
    assert abs(float(jax.grad(e2)(2.5 - 1e-4))) < 1e-4


@pytest.mark.parametrize("n_cells", [3, 2])  # 2: a cell narrower than 2 (rc + skin), rows with image shifts
def test_dense_rows_potential_matches_the_edge_list_form_in_a_periodic_box(n_cells):
    """make_potential gives HIP-NN-TS dense neighbour rows (receivers=None: batched-matmul sums);
    the same parameters on jax-md's sparse full list (segment sums) give the same energy and
    forces, and the forces match central finite differences of the energy."""
    from mlffbench.neighbors import edge_vectors, neighbor_spec
    from mlffbench.potentials.gnn import build_module, init_params, make_potential
    from mlffbench.structures import fcc, random_displacements

    hp = {"n_features": 6, "n_sensitivities": 5, "n_interactions": 2, "n_atom_layers": 1, "cutoff": 2.0,
          "min_soft": 0.8, "max_soft": 1.9}
    params = init_params("hipnn-ts", hp, seed=3, dtype=jnp.float64)
    std = {"energy_shift": 0.0, "energy_scale": 1.0, "force_scale": 1.0}
    pot = make_potential("hipnn-ts", hp, params, std, dtype=jnp.float64)
    assert pot.neighbor_format == "dense"
    s = random_displacements(fcc(n_cells, 1.56), 0.08, seed=2)
    R, box = jnp.asarray(s.positions), jnp.asarray(s.box)
    nb = pot.neighbors(box, skin=0.3).allocate(R)
    assert nb.idx.ndim == 2 and nb.idx.shape[0] == len(R)  # rows
    E, F = jax.jit(pot.energy_and_forces)(R, box, nb)

    module = build_module("hipnn-ts", hp)
    sparse = neighbor_spec(box, pot.cutoff, skin=0.3, fmt="full").allocate(R)

    def e_edges(Rx):
        dR, mask, i, j = edge_vectors(Rx, box, sparse)
        return jnp.sum(module.apply(params, dR, mask, i, j, len(R)))

    E2, g2 = jax.jit(jax.value_and_grad(e_edges))(R)
    assert float(E) == pytest.approx(float(E2), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(np.asarray(F), -np.asarray(g2), rtol=0, atol=1e-10)
    e_rows = jax.jit(lambda Rx: pot.energy(Rx, box, nb))
    h = 1e-5
    for atom, c in ((0, 0), (5, 2)):
        d = jnp.zeros_like(R).at[atom, c].set(h)
        fd = -(float(e_rows(R + d)) - float(e_rows(R - d))) / (2 * h)
        assert float(F[atom, c]) == pytest.approx(fd, rel=1e-6, abs=1e-8)
