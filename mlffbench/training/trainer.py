"""Architecture-agnostic training loop: loss, optimiser, batches, checkpoints, early stopping.

Any architecture in the registry trains here (the default SchNet, the direct-force model, the
CG helper's HIP-NN-TS): the model only has to follow the registry contract. With
``energy_weight = 0`` the loss is pure force matching (coarse-grained models). A fixed prior
(``prior``: any object with ``energy_from_edges(dR, mask)`` and ``cutoff``, e.g. the CG priors of
`mlffbench.cg.prior`) is added to the model's energy inside the loss and the validation
predictions, so the network is fitted to what the prior leaves (E_total = E_model + E_prior).

Committees: K members of one architecture train in ONE vmapped program (parameters and optimiser
state carry a leading member axis). Member m has its own seed (init and shuffles) and its own
index array into the training frames (all of one length: the training split itself, or a
bootstrap resample), and its own early-stopping state; it computes exactly what a single run with
that seed on those frames computes (to float round-off). A single model is the committee K = 1.

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


def frame_predict_fn(module, conservative: bool, n_atoms: int, prior=None, scale: float = 1.0) -> Callable:
    """(params, R, box, recv, send, shifts, mask, atoms=None) -> (normalised energy sum, normalised forces (N,3)).

    prior: optional fixed pair term, prior.energy_from_edges(dR (E, 3) full edge list, mask (E,)) in
    epsilon; it enters the normalised energy as E_prior / scale (scale = the output scale, epsilon),
    so the returned energy and forces are those of E_model + E_prior. Conservative models only.

    atoms: (N,) bool, the real atoms; a ghost atom (the padding of a vacancy frame) has no edges,
    but a GNN still gives it the isolated-atom energy, so it is masked out of the sum.
    """

    def edges(R, box, recv, send, shifts, mask):
        dR = R[send] - R[recv] + shifts.astype(R.dtype) @ box.T
        return jnp.where(mask[:, None], dR, 0.0)

    if prior is not None and not conservative:
        raise ValueError("a prior term needs a conservative model (forces = -grad of model + prior energy)")
    if conservative:
        def predict(params, R, box, recv, send, shifts, mask, atoms=None):
            def e_sum(Rx):
                dR = edges(Rx, box, recv, send, shifts, mask)
                e_atom = module.apply(params, dR, mask, recv, send, n_atoms)
                e = jnp.sum(e_atom if atoms is None else jnp.where(atoms, e_atom, 0.0))
                return e if prior is None else e + prior.energy_from_edges(dR, mask) / scale
            e, g = jax.value_and_grad(e_sum)(R)
            return e, -g
    else:
        def predict(params, R, box, recv, send, shifts, mask, atoms=None):
            f = module.apply(params, edges(R, box, recv, send, shifts, mask), mask, recv, send, n_atoms)
            f = f if atoms is None else jnp.where(atoms[:, None], f, 0.0)
            return jnp.asarray(jnp.nan, R.dtype), f
    return predict


def output_scale(std: dict) -> float:
    """The one scale (epsilon/sigma) that turns normalised forces into physical ones.

    The trainer compares -dE'/dR (conservative, undone by `energy_scale` in `make_potential`) and f'
    (direct, undone by `force_scale`) with F / force_scale, so both scales must be one quantity
    (energy_scale = force_scale * 1 sigma, see `training.data.standardization`). Raises ValueError
    when they differ, rather than silently training one scale and predicting with another.
    """
    escale, fscale = float(std["energy_scale"]), float(std["force_scale"])
    if not np.isclose(escale, fscale, rtol=1e-12, atol=0.0):
        raise ValueError(f"standardization: energy_scale {escale} != force_scale {fscale} (epsilon/sigma, "
                         "1 sigma length unit); the trainer needs them equal")
    return fscale


def error_term(kind: str, d):
    """Mean error of residuals d: 'mse' mean d^2, 'mae' mean |d|, 'rmse+mae' (hippynn's CG force
    loss) sqrt(mean d^2) + mean |d|."""
    if kind == "mse":
        return jnp.mean(jnp.square(d))
    if kind == "mae":
        return jnp.mean(jnp.abs(d))
    if kind == "rmse+mae":
        return jnp.sqrt(jnp.mean(jnp.square(d))) + jnp.mean(jnp.abs(d))
    raise ValueError(f"unknown loss kind {kind!r}")


def make_loss(module, conservative: bool, loss_cfg: LossConfig, std: dict, n_atoms: int, dtype,
              prior=None) -> Callable:
    """(params, batch) -> (loss, (energy_err_per_atom, force_err)) in standardised units.

    prior: a fixed energy term added to the model's (see `frame_predict_fn`): the loss is then
    that of E_model + E_prior against the reference."""
    shift = std["energy_shift"]
    escale = fscale = output_scale(std)
    predict = frame_predict_fn(module, conservative, n_atoms, prior, escale)
    use_energy = conservative and loss_cfg.energy_weight > 0
    kind = loss_cfg.kind

    def loss_fn(params, batch):
        R = batch["R"].astype(dtype)
        box = batch["box"].astype(dtype)
        e, f = jax.vmap(predict, in_axes=(None, 0, 0, 0, 0, 0, 0, 0))(
            params, R, box, batch["recv"], batch["send"], batch["shifts"], batch["mask"], batch["atoms"])
        f_ref = batch["F"].astype(dtype) / fscale
        f_term = error_term(kind, f - f_ref)
        loss = loss_cfg.force_weight * f_term
        e_term = jnp.zeros((), dtype)
        if use_energy:
            n_real = jnp.sum(batch["atoms"], axis=-1).astype(dtype)  # N, or N-1 for a ghost-padded frame
            e_ref = (batch["E"].astype(dtype) / n_real - shift) / escale
            e_term = error_term(kind, e / n_real - e_ref)
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
    """Training state of K members: params, opt_state, best_params with a leading member axis;
    best_val, best_epoch, bad_epochs, stopped: one entry per member. history: one record per epoch
    (member means, plus per-member lists under 'members' when K > 1)."""

    epoch: int
    params: Any
    opt_state: Any
    best_params: Any
    best_val: list[float]
    best_epoch: list[int]
    bad_epochs: list[int]
    stopped: list[bool]
    history: list[dict] = field(default_factory=list)

    @property
    def stopped_early(self) -> bool:
        """True when every member has stopped early."""
        return all(self.stopped)


def member_params(stacked: Any, m: int) -> Any:
    """Member m's parameters from a tree with a leading member axis."""
    return jax.tree_util.tree_map(lambda x: x[m], stacked)


def save_checkpoint(path: Path, st: TrainState, fingerprint: str) -> None:
    """One msgpack file (arrays + JSON metadata), written atomically (temp file + rename)."""
    arrays = serialization.to_state_dict({"params": st.params, "opt_state": st.opt_state,
                                          "best_params": st.best_params})
    meta = {"epoch": st.epoch, "best_val": st.best_val, "best_epoch": st.best_epoch,
            "bad_epochs": st.bad_epochs, "stopped": st.stopped, "history": st.history,
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
        stopped = meta["stopped"]
    except Exception as exc:
        raise UserError(f"{path}: checkpoint is corrupt ({type(exc).__name__})") from None
    if meta.get("fingerprint") != fingerprint:
        raise UserError(f"{path}: checkpoint was written for a different config or dataset; "
                        "start a new OUTDIR or pass the same config and data")
    return TrainState(epoch=meta["epoch"], params=arrays["params"], opt_state=arrays["opt_state"],
                      best_params=arrays["best_params"], best_val=meta["best_val"], best_epoch=meta["best_epoch"],
                      bad_epochs=meta["bad_epochs"], stopped=stopped, history=meta["history"])


def batch_predictor(module, conservative: bool, n_atoms: int, dtype, prior=None, scale: float = 1.0) -> Callable:
    """jit(vmap) predictor: (params, batch) -> (E_norm_sum (B,), F_norm (B,N,3)); prior: see `frame_predict_fn`."""
    predict = frame_predict_fn(module, conservative, n_atoms, prior, scale)

    @jax.jit
    def run(params, batch):
        return jax.vmap(predict, in_axes=(None, 0, 0, 0, 0, 0, 0, 0))(
            params, batch["R"].astype(dtype), batch["box"].astype(dtype), batch["recv"], batch["send"],
            batch["shifts"], batch["mask"], batch["atoms"])

    return run


def predict_graphs(predictor, params, graphs: GraphSet, std: dict, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(energies (F,) epsilon, forces (F,N,3) epsilon/sigma); energies NaN for force-only models.

    The last batch is padded with repeats of its first frame, so one compiled shape serves all.
    """
    n = len(graphs)
    N = graphs.n_atoms
    scale = output_scale(std)
    E, F = np.zeros(n), np.zeros((n, N, 3))
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        pad = np.concatenate([idx, np.full(batch_size - len(idx), idx[0])])
        batch = graphs.take(pad)
        n_real = np.sum(batch["atoms"], axis=-1)[: len(idx)] if "atoms" in batch else N
        e, f = predictor(params, {k: jnp.asarray(v) for k, v in batch.items()})
        E[idx] = np.asarray(e, np.float64)[: len(idx)] * scale + n_real * std["energy_shift"]
        F[idx] = np.asarray(f, np.float64)[: len(idx)] * scale
    return E, F


def train_loop(arch: str, hparams: dict, graphs: dict[str, GraphSet], std: dict, loss_cfg: LossConfig,
               opt: OptimConfig, seed: int, dtype: str, ckpt_path: Path, fingerprint: str,
               resume: bool = False, stop_after_epochs: int | None = None,
               on_epoch: Callable[[dict], None] | None = None,
               member_seeds: list[int] | None = None, member_index: list[np.ndarray] | None = None,
               prior=None) -> TrainState:
    """Train on graphs['train'], early-stop on graphs['val'] force RMSE. Returns the final state.

    member_seeds / member_index: a committee (see the module docstring); member m initialises
    from member_seeds[m] and draws its batches from graphs['train'] frames member_index[m] (one
    length for all). Default: one member, `seed`, every training frame.
    stop_after_epochs: leave after this many epochs in *this call* (a deterministic stand-in for an
    interrupt, used by tests of --resume). Checkpoint written after every epoch.
    prior: a fixed energy term in the loss and the validation predictions (`frame_predict_fn`);
    its cutoff must not exceed the model's (the edges are the model's).
    """
    ent = entry(arch)
    module = build_module(arch, hparams)
    jdt = jnp.float64 if dtype == "float64" else jnp.float32
    train, val = graphs["train"], graphs["val"]
    seeds = list(member_seeds) if member_seeds is not None else [seed]
    index = list(member_index) if member_index is not None else [np.arange(len(train))] * len(seeds)
    if len(index) != len(seeds) or len({len(ix) for ix in index}) != 1:
        raise ValueError("member_index needs one index array per member seed, all of one length")
    K, n_train = len(seeds), len(index[0])
    N = train.n_atoms
    bs = min(opt.batch_size, n_train)
    steps_per_epoch = n_train // bs
    tx = make_optimizer(opt, steps_per_epoch)
    params0 = jax.tree_util.tree_map(
        lambda *xs: jnp.stack([jnp.asarray(x, jdt) for x in xs]),
        *[init_params(arch, hparams, s_, jdt) for s_ in seeds])
    st = TrainState(epoch=0, params=params0, opt_state=jax.vmap(tx.init)(params0), best_params=params0,
                    best_val=[float("inf")] * K, best_epoch=[-1] * K, bad_epochs=[0] * K, stopped=[False] * K)
    if resume:
        st = load_checkpoint(ckpt_path, st, fingerprint)

    if prior is not None and float(prior.cutoff) > float(module.cutoff):
        raise ValueError(f"prior cutoff {prior.cutoff} exceeds the model cutoff {module.cutoff}")
    loss_fn = make_loss(module, ent.conservative, loss_cfg, std, N, jdt, prior=prior)

    def member_step(params, opt_state, batch):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, aux

    step = jax.jit(jax.vmap(member_step))
    predictor = batch_predictor(module, ent.conservative, N, jdt, prior=prior, scale=output_scale(std))
    done_here = 0
    while st.epoch < opt.epochs and not st.stopped_early:
        if stop_after_epochs is not None and done_here >= stop_after_epochs:
            break
        t0 = time.perf_counter()
        orders = [ix[np.random.default_rng([s_, st.epoch]).permutation(n_train)] for s_, ix in zip(seeds, index)]
        losses, e_terms, f_terms = [], [], []
        for b in range(steps_per_epoch):
            parts = [train.take(o[b * bs:(b + 1) * bs]) for o in orders]
            batch = {k: jnp.asarray(np.stack([p_[k] for p_ in parts])) for k in parts[0]}
            st.params, st.opt_state, loss, (e_t, f_t) = step(st.params, st.opt_state, batch)
            losses.append(loss)
            e_terms.append(e_t)
            f_terms.append(f_t)
        train_loss = np.mean(np.asarray(losses), axis=0)  # (K,)
        if not np.all(np.isfinite(train_loss)):
            raise UserError(f"training diverged at epoch {st.epoch} (loss is {train_loss.tolist()}); "
                            "lower optim.learning_rate or optim.grad_clip")
        val_f_rmse = []
        for m in range(K):
            _, Fv = predict_graphs(predictor, member_params(st.params, m), val, std, bs)
            val_f_rmse.append(float(np.sqrt(np.mean((Fv - val.forces) ** 2))))
        seconds = time.perf_counter() - t0
        improved = np.array([v < b_ and not s_ for v, b_, s_ in zip(val_f_rmse, st.best_val, st.stopped)])
        for m in range(K):
            if improved[m]:
                st.best_val[m], st.best_epoch[m], st.bad_epochs[m] = val_f_rmse[m], st.epoch, 0
            elif not st.stopped[m]:
                st.bad_epochs[m] += 1
                st.stopped[m] = st.bad_epochs[m] >= opt.patience
        st.best_params = jax.tree_util.tree_map(
            lambda new, old, keep=improved: jnp.where(keep.reshape((K,) + (1,) * (new.ndim - 1)), new, old),
            st.params, st.best_params)
        e_mean, f_mean = np.mean(np.asarray(e_terms), axis=0), np.mean(np.asarray(f_terms), axis=0)
        rec = {"epoch": st.epoch, "train_loss": float(np.mean(train_loss)),
               "train_energy_term": float(np.mean(e_mean)), "train_force_term": float(np.mean(f_mean)),
               "val_force_rmse": float(np.mean(val_f_rmse)), "seconds": seconds,
               "configs_per_second": K * steps_per_epoch * bs / max(seconds, 1e-9)}
        if K > 1:
            rec["members"] = {"train_loss": train_loss.tolist(), "train_force_term": f_mean.tolist(),
                              "val_force_rmse": val_f_rmse}
        st.history.append(rec)
        st.epoch += 1
        done_here += 1
        save_checkpoint(ckpt_path, st, fingerprint)
        if on_epoch is not None:
            on_epoch(rec)
    return st
