"""Architecture-agnostic training loop: loss, optimiser, batches, checkpoints, early stopping.

Any architecture in the registry trains here (the default SchNet, the direct-force model, the
CG helper's HIP-NN-TS): the model only has to follow the registry contract. With
``energy_weight = 0`` the loss is pure force matching (coarse-grained models).

Reproducibility: the frame order of epoch k comes from ``default_rng([seed, k])`` and all other
state (parameters, optimiser state with its step count, early-stopping state, history) is in the
checkpoint written atomically after every epoch, so a resumed run (even after kill -9) replays
exactly the computation of an uninterrupted one and ends with bit-identical parameters.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from mlffbench.errors import UserError
from mlffbench.io import atomic_write_bytes
from mlffbench.potentials.gnn import build_module, entry, init_params
from mlffbench.training.config import LossConfig, OptimConfig
from mlffbench.training.data import GraphSet

CHECKPOINT = "checkpoint.msgpack"


def frame_predict_fn(module, conservative: bool, n_atoms: int) -> Callable:
    """(params, R, box, recv, send, shifts, mask) -> (normalised energy sum, normalised forces (N,3))."""

    def edges(R, box, recv, send, shifts, mask):
        dR = R[send] - R[recv] + shifts.astype(R.dtype) @ box.T
        return jnp.where(mask[:, None], dR, 0.0)

    if conservative:
        def predict(params, R, box, recv, send, shifts, mask):
            def e_sum(Rx):
                return jnp.sum(module.apply(params, edges(Rx, box, recv, send, shifts, mask), mask, recv, send,
                                            n_atoms))
            e, g = jax.value_and_grad(e_sum)(R)
            return e, -g
    else:
        def predict(params, R, box, recv, send, shifts, mask):
            f = module.apply(params, edges(R, box, recv, send, shifts, mask), mask, recv, send, n_atoms)
            return jnp.asarray(jnp.nan, R.dtype), f
    return predict


def make_loss(module, conservative: bool, loss_cfg: LossConfig, std: dict, n_atoms: int, dtype) -> Callable:
    """(params, batch) -> (loss, (energy_err_per_atom, force_err)) in standardised units."""
    predict = frame_predict_fn(module, conservative, n_atoms)
    shift, escale, fscale = std["energy_shift"], std["energy_scale"], std["force_scale"]
    use_energy = conservative and loss_cfg.energy_weight > 0
    err = jnp.square if loss_cfg.kind == "mse" else jnp.abs

    def loss_fn(params, batch):
        R = batch["R"].astype(dtype)
        box = batch["box"].astype(dtype)
        e, f = jax.vmap(predict, in_axes=(None, 0, 0, 0, 0, 0, 0))(
            params, R, box, batch["recv"], batch["send"], batch["shifts"], batch["mask"])
        f_ref = batch["F"].astype(dtype) / fscale
        f_term = jnp.mean(err(f - f_ref))
        loss = loss_cfg.force_weight * f_term
        e_term = jnp.zeros((), dtype)
        if use_energy:
            e_ref = (batch["E"].astype(dtype) / n_atoms - shift) / escale
            e_term = jnp.mean(err(e / n_atoms - e_ref))
            loss = loss + loss_cfg.energy_weight * e_term
        return loss, (e_term, f_term)

    return loss_fn


def make_optimizer(opt: OptimConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    total = max(1, opt.epochs * steps_per_epoch)
    if opt.schedule == "cosine":
        warm = min(opt.warmup_epochs * steps_per_epoch, total - 1)
        sched = optax.warmup_cosine_decay_schedule(
            init_value=opt.learning_rate * 0.1 if warm else opt.learning_rate, peak_value=opt.learning_rate,
            warmup_steps=warm, decay_steps=total, end_value=opt.learning_rate * opt.final_lr_fraction)
    else:
        sched = optax.constant_schedule(opt.learning_rate)
    return optax.chain(optax.clip_by_global_norm(opt.grad_clip),
                       optax.adamw(sched, weight_decay=opt.weight_decay))


@dataclass
class TrainState:
    epoch: int
    params: Any
    opt_state: Any
    best_params: Any
    best_val: float = float("inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)


def save_checkpoint(path: Path, st: TrainState, fingerprint: str) -> None:
    """One msgpack file (arrays + JSON metadata), written atomically (temp file + rename)."""
    arrays = serialization.to_state_dict({"params": st.params, "opt_state": st.opt_state,
                                          "best_params": st.best_params})
    meta = {"epoch": st.epoch, "best_val": st.best_val, "best_epoch": st.best_epoch,
            "bad_epochs": st.bad_epochs, "stopped_early": st.stopped_early, "history": st.history,
            "fingerprint": fingerprint}
    blob = serialization.msgpack_serialize({"arrays": jax.tree_util.tree_map(np.asarray, arrays),
                                            "meta": json.dumps(meta)})
    atomic_write_bytes(path, blob)


def load_checkpoint(path: Path, template: TrainState, fingerprint: str) -> TrainState:
    if not path.is_file():
        raise UserError(f"--resume: no checkpoint at {path}")
    try:
        raw = serialization.msgpack_restore(path.read_bytes())
        meta = json.loads(raw["meta"])
        target = {"params": template.params, "opt_state": template.opt_state, "best_params": template.best_params}
        arrays = serialization.from_state_dict(target, raw["arrays"])
    except Exception as exc:
        raise UserError(f"{path}: checkpoint is corrupt ({type(exc).__name__})") from None
    if meta.get("fingerprint") != fingerprint:
        raise UserError(f"{path}: checkpoint was written for a different config or dataset; "
                        "start a new OUTDIR or pass the same config and data")
    return TrainState(epoch=meta["epoch"], params=arrays["params"], opt_state=arrays["opt_state"],
                      best_params=arrays["best_params"], best_val=meta["best_val"], best_epoch=meta["best_epoch"],
                      bad_epochs=meta["bad_epochs"], stopped_early=meta["stopped_early"], history=meta["history"])


def batch_predictor(module, conservative: bool, n_atoms: int, dtype) -> Callable:
    """jit(vmap) predictor: (params, batch) -> (E_norm_sum (B,), F_norm (B,N,3))."""
    predict = frame_predict_fn(module, conservative, n_atoms)

    @jax.jit
    def run(params, batch):
        return jax.vmap(predict, in_axes=(None, 0, 0, 0, 0, 0, 0))(
            params, batch["R"].astype(dtype), batch["box"].astype(dtype), batch["recv"], batch["send"],
            batch["shifts"], batch["mask"])

    return run


def predict_graphs(predictor, params, graphs: GraphSet, std: dict, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(energies (F,) epsilon, forces (F,N,3) epsilon/sigma); energies NaN for force-only models.

    The last batch is padded with repeats of its first frame, so one compiled shape serves all.
    """
    n = len(graphs)
    N = graphs.n_atoms
    E, F = np.zeros(n), np.zeros((n, N, 3))
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        pad = np.concatenate([idx, np.full(batch_size - len(idx), idx[0])])
        e, f = predictor(params, {k: jnp.asarray(v) for k, v in graphs.take(pad).items()})
        E[idx] = np.asarray(e, np.float64)[: len(idx)] * std["energy_scale"] + N * std["energy_shift"]
        F[idx] = np.asarray(f, np.float64)[: len(idx)] * std["force_scale"]
    return E, F


def train_loop(arch: str, hparams: dict, graphs: dict[str, GraphSet], std: dict, loss_cfg: LossConfig,
               opt: OptimConfig, seed: int, dtype: str, ckpt_path: Path, fingerprint: str,
               resume: bool = False, stop_after_epochs: int | None = None,
               on_epoch: Callable[[dict], None] | None = None) -> TrainState:
    """Train on graphs['train'], early-stop on graphs['val'] force RMSE. Returns the final state.

    stop_after_epochs: leave after this many epochs in *this call* (a deterministic stand-in for an
    interrupt, used by tests of --resume). Checkpoint written after every epoch.
    """
    ent = entry(arch)
    module = build_module(arch, hparams)
    jdt = jnp.float64 if dtype == "float64" else jnp.float32
    train, val = graphs["train"], graphs["val"]
    N = train.n_atoms
    bs = min(opt.batch_size, len(train))
    steps_per_epoch = len(train) // bs
    tx = make_optimizer(opt, steps_per_epoch)
    params0 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jdt), init_params(arch, hparams, seed, jdt))
    st = TrainState(epoch=0, params=params0, opt_state=tx.init(params0), best_params=params0)
    if resume:
        st = load_checkpoint(ckpt_path, st, fingerprint)

    loss_fn = make_loss(module, ent.conservative, loss_cfg, std, N, jdt)

    @jax.jit
    def step(params, opt_state, batch):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, aux

    predictor = batch_predictor(module, ent.conservative, N, jdt)
    done_here = 0
    while st.epoch < opt.epochs and not st.stopped_early:
        if stop_after_epochs is not None and done_here >= stop_after_epochs:
            break
        t0 = time.perf_counter()
        order = np.random.default_rng([seed, st.epoch]).permutation(len(train))
        losses, e_terms, f_terms = [], [], []
        for b in range(steps_per_epoch):
            batch = {k: jnp.asarray(v) for k, v in train.take(order[b * bs:(b + 1) * bs]).items()}
            st.params, st.opt_state, loss, (e_t, f_t) = step(st.params, st.opt_state, batch)
            losses.append(loss)
            e_terms.append(e_t)
            f_terms.append(f_t)
        train_loss = float(np.mean(np.asarray(losses)))
        if not np.isfinite(train_loss):
            raise UserError(f"training diverged at epoch {st.epoch} (loss is {train_loss}); "
                            "lower optim.learning_rate or optim.grad_clip")
        _, Fv = predict_graphs(predictor, st.params, val, std, bs)
        val_f_rmse = float(np.sqrt(np.mean((Fv - val.forces) ** 2)))
        seconds = time.perf_counter() - t0
        improved = val_f_rmse < st.best_val
        if improved:
            st.best_val, st.best_epoch, st.bad_epochs = val_f_rmse, st.epoch, 0
            st.best_params = st.params
        else:
            st.bad_epochs += 1
            st.stopped_early = st.bad_epochs >= opt.patience
        rec = {"epoch": st.epoch, "train_loss": train_loss,
               "train_energy_term": float(np.mean(np.asarray(e_terms))),
               "train_force_term": float(np.mean(np.asarray(f_terms))),
               "val_force_rmse": val_f_rmse, "seconds": seconds,
               "configs_per_second": steps_per_epoch * bs / max(seconds, 1e-9)}
        st.history.append(rec)
        st.epoch += 1
        done_here += 1
        save_checkpoint(ckpt_path, st, fingerprint)
        if on_epoch is not None:
            on_epoch(rec)
    return st
