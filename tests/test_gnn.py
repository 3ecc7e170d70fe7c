"""GNN potentials: symmetry, F = -grad E, smoothness, list-format consistency, checkpoint round trip.

References are independent of the model: central finite differences of the energy, exact
symmetry operations, and ASE's neighbour list (the training path) against jax-md's lists (MD path).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import A0_LJ, run_cli

from mlffbench.errors import UserError
from mlffbench.potentials import load_potential
from mlffbench.potentials.gnn import init_params, load_model_potential, make_potential, save_model
from mlffbench.structures import fcc
from mlffbench.training.data import frame_edges
from mlffbench.workflows.check_model import CheckModelConfig, run_checks

STD = {"energy_shift": -7.0, "energy_scale": 3.0, "force_scale": 3.0}
SMALL = {"features": 8, "n_blocks": 2, "n_basis": 8}
SMALL_DF = {"features": 8, "n_blocks": 2, "n_basis": 8}


def _pot(name="schnet", hp=SMALL, dtype=jnp.float64, seed=1):
    return make_potential(name, hp, init_params(name, hp, seed), STD, dtype=dtype)


def _crystal(n=3, amp=0.05, seed=0):
    s = fcc(n, A0_LJ)
    R = s.positions + np.random.default_rng(seed).uniform(-amp, amp, s.positions.shape)
    return R, s.box


def test_default_model_passes_all_integrity_checks_in_float64():
    """Invariances, FD forces, extensivity, smoothness at the cutoff for an untrained model."""
    res = run_checks(_pot(), CheckModelConfig(n_cells=2, dimer_points=60, fd_directions=4, strain_points=11))
    failed = [c["name"] for c in res["checks"] if c["passed"] is False]
    assert not failed, failed
    fd = next(c for c in res["checks"] if c["name"] == "forces_vs_finite_differences")
    assert fd["value"] < 1e-6


def test_direct_force_model_is_equivariant_and_force_only():
    pot = _pot("direct-force", SMALL_DF)
    assert not pot.conservative
    res = run_checks(pot, CheckModelConfig(n_cells=2, dimer_points=40, strain_points=11))
    by = {c["name"]: c for c in res["checks"]}
    assert by["forces_vs_finite_differences"]["passed"] is None  # no energy
    for name in ("rotation_forces", "translation_forces", "permutation_forces", "extensivity_forces",
                 "zero_net_force"):
        assert by[name]["passed"], (name, by[name]["value"])


def test_training_edges_match_md_neighbour_lists():
    """Energy/forces from ASE edges (training path, no skin) equal those from jax-md lists (MD path).

    Covers multi-image lists (3x3x3 cell, L < 2 (rc + skin)) and minimum-image lists (4x4x4)."""
    from mlffbench.training.trainer import frame_predict_fn
    from mlffbench.potentials.gnn import build_module

    params = init_params("schnet", SMALL, 3)
    pot = make_potential("schnet", SMALL, params, {"energy_shift": 0.0, "energy_scale": 1.0, "force_scale": 1.0},
                         dtype=jnp.float64)
    module = build_module("schnet", SMALL)
    # both paths jit-compiled, as MD and training run them (op by op, every primitive of the model
    # was its own compilation per cell size: ~18 s); eager-vs-jit is test_jit_matches_eager_at_largest_size
    md_ef = jax.jit(pot.energy_and_forces)
    for n in (3, 4):
        R, box = _crystal(n, seed=n)
        spec = pot.neighbors(box, skin=0.3, n_atoms=len(R))
        nb = spec.allocate(jnp.asarray(R))
        e_md, f_md = md_ef(jnp.asarray(R), jnp.asarray(box), nb)
        i, j, S = frame_edges(R, box, pot.cutoff, half=True)
        mask = np.ones(len(i), bool)
        p64 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
        e_tr, f_tr = jax.jit(frame_predict_fn(module, True, len(R)))(p64, jnp.asarray(R), jnp.asarray(box), jnp.asarray(i),
                                                             jnp.asarray(j), jnp.asarray(S, jnp.float64), jnp.asarray(mask))
        assert abs(float(e_md) - float(e_tr)) < 1e-10 * abs(float(e_md)) + 1e-10
        assert np.max(np.abs(np.asarray(f_md) - np.asarray(f_tr))) < 1e-10


def test_energy_continuous_through_cutoff_and_forces_too():
    """Dimer: E and F change by O(delta) across rc (envelope is C2), unlike a plain truncation."""
    pot = _pot()
    rc = pot.cutoff
    L = 2 * rc + 2.0
    box = np.eye(3) * L
    spec = pot.neighbors(box, skin=0.3, n_atoms=2)

    def ef(r):
        R = jnp.asarray([[0.0, 0.0, 0.0], [r, 0.0, 0.0]])
        return pot.energy_and_forces(R, jnp.asarray(box), spec.allocate(R))

    e1, f1 = ef(rc - 1e-7)
    e2, f2 = ef(rc + 1e-7)
    e_far, _ = ef(rc + 0.5)
    assert abs(float(e1 - e2)) < 1e-9 and float(jnp.max(jnp.abs(f1 - f2))) < 1e-9
    assert abs(float(e2 - e_far)) < 1e-12  # no interaction beyond rc
    e_in, _ = ef(0.9 * rc)
    assert abs(float(e_in - e_far)) > 1e-8  # but there is one inside


def test_jit_matches_eager_at_largest_size():
    """Canary for the jax 0.10.2 CPU miscompile (large per-edge reductions): 864 atoms."""
    pot = _pot(dtype=jnp.float32)
    R, box = _crystal(6, amp=0.03)
    spec = pot.neighbors(box, skin=0.3, n_atoms=len(R))
    nb = spec.allocate(jnp.asarray(R))
    Rj, bj = jnp.asarray(R), jnp.asarray(box)
    e_jit, f_jit = jax.jit(pot.energy_and_forces)(Rj, bj, nb)
    with jax.disable_jit():
        e_eager, f_eager = pot.energy_and_forces(Rj, bj, nb)
    assert abs(float(e_jit) - float(e_eager)) < 1e-5 * abs(float(e_eager))
    assert float(jnp.max(jnp.abs(f_jit - f_eager))) < 1e-3 * float(jnp.sqrt(jnp.mean(f_eager ** 2)))


@pytest.mark.parametrize("name,hp", [("schnet", SMALL), ("direct-force", SMALL_DF)])
def test_checkpoint_round_trip_is_bit_identical(tmp_path, name, hp):
    params = init_params(name, hp, 7)
    save_model(tmp_path / "m", name, hp, params, STD, {"note": "test"})
    a = make_potential(name, hp, params, STD, dtype=jnp.float32)
    b = load_model_potential(tmp_path / "m")
    c = load_potential(str(tmp_path / "m"))  # the --model route
    R, box = _crystal(3)
    spec = a.neighbors(box, n_atoms=len(R))
    nb = spec.allocate(jnp.asarray(R))
    fa, fb, fc = (np.asarray(p.forces(jnp.asarray(R), jnp.asarray(box), nb)) for p in (a, b, c))
    assert np.array_equal(fa, fb) and np.array_equal(fa, fc)
    assert b.conservative == (name == "schnet")


def test_missing_and_corrupt_checkpoints_are_one_line_errors(tmp_path):
    save_model(tmp_path / "m", "schnet", SMALL, init_params("schnet", SMALL, 0), STD)
    blob = (tmp_path / "m" / "params.msgpack").read_bytes()
    (tmp_path / "m" / "params.msgpack").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(UserError, match="corrupt"):
        load_model_potential(tmp_path / "m")
    (tmp_path / "m" / "params.msgpack").unlink()
    with pytest.raises(UserError, match="missing"):
        load_model_potential(tmp_path / "m")
    code, out = run_cli(["check-model", "--model", str(tmp_path / "m"), "-o", str(tmp_path / "o")])
    assert code == 2 and "missing" in out and "Traceback" not in out
    assert not (tmp_path / "o").exists()
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "model_card.json").write_text("{not json")
    code, out = run_cli(["check-model", "--model", str(tmp_path / "n"), "-o", str(tmp_path / "o")])
    assert code == 2 and "corrupt" in out


def _ssp(x):
    return np.logaddexp(0.0, x) - np.log(2.0)


def _schnet_energy_by_explicit_pairs(params: dict, hp: dict, R: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The SchNet formula of `models.SchNetLite`'s docstring, in numpy over every minimum-image
    pair i != j (no neighbour list, no half list, no fused filter): per-atom energies (N,),
    before the standardisation."""
    from mlffbench.potentials.gnn.models import SCHNET_DEFAULTS

    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["params"])
    c = {**SCHNET_DEFAULTS, **hp}
    rc, K, F, B = c["cutoff"], c["n_basis"], c["features"], c["n_blocks"]
    d = R[None, :, :] - R[:, None, :]                      # (N, N, 3): r_j - r_i
    frac = d @ np.linalg.inv(box).T
    d = (frac - np.round(frac)) @ box.T
    r = np.linalg.norm(d, axis=-1)
    pair = (r < rc) & ~np.eye(len(R), dtype=bool)
    r = np.where(pair, r, rc)
    env = np.where(pair, (1 - (r / rc) ** 2) ** 3, 0.0)
    mu = np.linspace(c["r_min"], rc, K)
    basis = np.exp(-((r[..., None] - mu) / ((rc - c["r_min"]) / (K - 1))) ** 2) * env[..., None]  # (N, N, K)
    h = np.broadcast_to(p["embedding"], (len(R), F))
    for b in range(B):
        W = basis @ p["filters"]["kernel"][:, b * F:(b + 1) * F]   # (N, N, F): block b's filter
        x = h @ p[f"in_{b}"]["kernel"]
        m = np.einsum("ijf,jf->if", W, x) / c["avg_neighbors"]
        v = _ssp(m @ p[f"up1_{b}"]["kernel"] + p[f"up1_{b}"]["bias"])
        h = h + v @ p[f"up2_{b}"]["kernel"] + p[f"up2_{b}"]["bias"]
    e = _ssp(h @ p["out1"]["kernel"] + p["out1"]["bias"]) @ p["out2"]["kernel"] + p["out2"]["bias"]
    return e[:, 0] + 0.5 * (basis @ p["pair"]["kernel"])[..., 0].sum(axis=1)


@pytest.mark.parametrize("hp", [SMALL, {"features": 6, "n_blocks": 3, "n_basis": 5, "pair_term": True}])
def test_schnet_energy_equals_the_formula_over_explicit_pairs(hp):
    """The model's per-atom energies (half list, per-block filters from one kernel, scatter to both
    ends) equal the docstring's formula summed over all pairs in numpy, float64."""
    params = init_params("schnet", hp, 4)
    pot = make_potential("schnet", hp, params, STD, dtype=jnp.float64)
    R, box = _crystal(n=4, amp=0.08, seed=3)
    nbrs = pot.neighbors(box, skin=0.3, n_atoms=len(R)).allocate(jnp.asarray(R))
    got = np.asarray(pot.per_atom_energy_fn(jnp.asarray(R), jnp.asarray(box), nbrs))
    want = STD["energy_shift"] + STD["energy_scale"] * _schnet_energy_by_explicit_pairs(params, hp, R, box)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
