"""Committees: K members trained in one vmapped program equal K separate trainings; a committee
model directory loads as a Committee (the member mean, members with fingerprints); identical
members have zero spread and predict exactly like one member."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlffbench.config import validate
from mlffbench.io import save_dataset_npz
from mlffbench.potentials import load_potential
from mlffbench.potentials.committee import Committee, make_committee, members
from mlffbench.potentials.gnn import entry, save_model
from mlffbench.training.config import TrainConfig, member_plan
from mlffbench.training.data import all_edges, build_graphs, standardization
from mlffbench.training.toy import lj_toy_dataset
from mlffbench.training.trainer import member_params, train_loop
from mlffbench.workflows.train import run_train

HP = {"features": 8, "n_blocks": 1, "n_basis": 8}
CFG = {
    "seed": 5, "units": {"system": "lj"},
    "model": {"architecture": "schnet", "hparams": HP, "dtype": "float64"},
    "splits": {"train": {"trajectories": [0, 1]}, "val": {"trajectories": [2]}},
    "optim": {"epochs": 2, "batch_size": 4, "learning_rate": 0.005, "warmup_epochs": 0},
}


@pytest.fixture(scope="module")
def toy():
    """32-atom LJ crystals, 4 frames at each of kT 0.05, 0.1 (train) and 0.08 (val)."""
    return lj_toy_dataset(2, kTs=(0.05, 0.1, 0.08), frames_per_T=4, seed=2)


def _graphs(ds, train_idx, val_idx):
    half = entry("schnet").neighbor_format == "half"
    edges = all_edges(ds, np.arange(len(ds)), 2.5, half)
    n = max(len(e[0]) for e in edges.values())
    return {"train": build_graphs(ds, train_idx, 2.5, half, n, edges),
            "val": build_graphs(ds, val_idx, 2.5, half, n, edges)}


def test_vmapped_committee_equals_members_trained_alone(toy, tmp_path):
    """Bootstrap committee of 2 (float64, 2 epochs): member 1's parameters equal a separate run
    with its seed on its resampled frames, to round-off (member 0 is the same code path)."""
    cfg = validate(TrainConfig, {**CFG, "ensemble": {"members": 2, "vary": "bootstrap"}})
    train_idx, val_idx = np.arange(8), np.arange(8, 12)
    seeds, index = member_plan(cfg, len(train_idx))
    assert seeds == [5, 6] and not np.array_equal(index[0], index[1])
    std = standardization(toy, train_idx, True)
    common = (cfg.model.architecture, HP)
    st = train_loop(*common, _graphs(toy, train_idx, val_idx), std, cfg.loss, cfg.optim, cfg.seed, "float64",
                    tmp_path / "k.msgpack", "fp", member_seeds=seeds, member_index=index)
    assert len(st.history) == 2 and len(st.history[0]["members"]["val_force_rmse"]) == 2
    for m in (1,):
        alone = train_loop(*common, _graphs(toy, train_idx[index[m]], val_idx), std, cfg.loss, cfg.optim, seeds[m],
                           "float64", tmp_path / f"{m}.msgpack", "fp")
        for a, b in zip(jax.tree_util.tree_leaves(member_params(st.params, m)),
                        jax.tree_util.tree_leaves(member_params(alone.params, 0))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
        assert st.best_val[m] == pytest.approx(alone.best_val[0], rel=1e-9)
    # the members really differ (different seeds and frames)
    a, b = (jax.tree_util.tree_leaves(member_params(st.params, m))[0] for m in (0, 1))
    assert np.max(np.abs(np.asarray(a) - np.asarray(b))) > 1e-3


@pytest.fixture(scope="module")
def committee_dir(toy, tmp_path_factory):
    """`run_train` of a vary: seed committee of 2 (1 epoch) -> OUTDIR."""
    tmp = tmp_path_factory.mktemp("committee")
    save_dataset_npz(tmp / "dataset.npz", toy)
    cfg = validate(TrainConfig, {**CFG, "optim": {**CFG["optim"], "epochs": 1},
                                 "ensemble": {"members": 2, "vary": "seed"}})
    result = run_train(cfg, tmp / "dataset.npz", tmp / "out")
    return tmp / "out", result


def _frame(toy):
    return jnp.asarray(toy.positions[9]), jnp.asarray(toy.box[9])


def test_trained_committee_loads_as_committee(committee_dir, toy):
    out, result = committee_dir
    card = json.loads((out / "model" / "model_card.json").read_text())
    assert card["committee"]["members"] == 2 and card["committee"]["vary"] == "seed"
    assert card["committee"]["seeds"] == [5, 6] and result["members"] == 2
    spread = result["splits"]["val"]["committee"]["force_spread_rms"]["value"]
    assert spread > 0  # vary: seed members differ
    pot = load_potential(str(out / "model"), dtype="float64")
    assert isinstance(pot, Committee) and pot.capabilities.members == 2
    mem = members(pot)
    assert len(mem) == 2 and len({m.fingerprint for m in mem} | {pot.fingerprint}) == 3
    R, box = _frame(toy)
    nbrs = pot.neighbors(box, skin=0.3).allocate(R)
    ev = jax.jit(lambda R_: pot.evaluate_members(R_, box, nbrs, stress=True))(R)
    # member 1 through its own Potential (closure over its parameters) vs the stacked program
    e1 = jax.jit(lambda R_: mem[1].evaluate(R_, box, nbrs, stress=True))(R)
    np.testing.assert_allclose(ev.energy[1], e1.energy, rtol=1e-12)
    np.testing.assert_allclose(ev.forces[1], e1.forces, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ev.stress[1], e1.stress, rtol=1e-10, atol=1e-12)
    assert float(jnp.max(jnp.abs(ev.forces[0] - ev.forces[1]))) > 1e-6
    mean = jax.jit(lambda R_: pot.evaluate(R_, box, nbrs))(R)
    np.testing.assert_allclose(mean.energy, np.mean(ev.energy), rtol=1e-12)
    np.testing.assert_allclose(mean.forces, np.mean(ev.forces, axis=0), rtol=1e-10, atol=1e-12)


def test_identical_members_zero_spread_and_predict_like_one(committee_dir, toy, tmp_path):
    out, _ = committee_dir
    single = members(load_potential(str(out / "model"), dtype="float64"))[0]
    assert members(single) == [single]
    card = json.loads((out / "model" / "model_card.json").read_text())
    from mlffbench.potentials.gnn import load_model

    _, stacked = load_model(out / "model")
    same = jax.tree_util.tree_map(lambda x: np.stack([x[0]] * 3), stacked)
    save_model(tmp_path / "same", "schnet", card["hparams"], same, card["standardization"],
               committee={"members": 3, "vary": "seed", "seeds": [5, 5, 5]})
    pot = load_potential(str(tmp_path / "same"), dtype="float64")
    R, box = _frame(toy)
    nbrs = pot.neighbors(box, skin=0.3).allocate(R)
    ev = jax.jit(lambda R_: pot.evaluate_members(R_, box, nbrs))(R)
    for k in (1, 2):  # zero spread: every member predicts bit for bit what member 0 does
        np.testing.assert_array_equal(ev.forces[k], ev.forces[0])
        np.testing.assert_array_equal(ev.energy[k], ev.energy[0])
    one = jax.jit(lambda R_: single.evaluate(R_, box, nbrs))(R)
    mean = jax.jit(lambda R_: pot.evaluate(R_, box, nbrs))(R)
    np.testing.assert_allclose(mean.energy, one.energy, rtol=1e-14)
    np.testing.assert_allclose(mean.forces, one.forces, rtol=1e-12, atol=1e-14)
    # any list of potentials (the lax.switch route) gives the same committee
    generic = make_committee([single] * 3)
    np.testing.assert_allclose(jax.jit(lambda R_: generic.evaluate(R_, box, nbrs))(R).forces, one.forces,
                               rtol=1e-12, atol=1e-14)


def test_bad_committee_card_is_one_line_error(committee_dir, tmp_path):
    import shutil

    from mlffbench.errors import UserError

    out, _ = committee_dir
    bad = tmp_path / "bad"
    shutil.copytree(out / "model", bad)
    card = json.loads((bad / "model_card.json").read_text())
    card["committee"]["members"] = 3  # the arrays hold 2
    (bad / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match="do not match|corrupt"):
        load_potential(str(bad))
    assert Path(bad / "params.msgpack").is_file()
