"""`mlffbench train`: dataset + config -> trained model directory, metrics, plots.

OUTDIR layout:
    config.json          the validated config (and the dataset hash) this run was started with
    checkpoint.msgpack   training state after the last finished epoch (for --resume)
    model/               params.msgpack + model_card.json (loadable with --model OUTDIR/model); a
                         committee (ensemble.members K > 1) stores K members with a leading axis
    metrics.json         per split and per temperature: E MAE/RMSE per atom (eV/atom), F MAE/RMSE (eV/Å)
    learning_curve.png, parity.png, manifest.json

Unlike other commands OUTDIR is written in place (not renamed at the end), because an interrupted
run must leave its checkpoint where `--resume` finds it; the model directory and every JSON file
are still written atomically.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from mlffbench.errors import UserError
from mlffbench.io import check_outdir, load_dataset, manifest, read_json, sha256_file, write_json
from mlffbench.potentials.gnn import build_module, entry, save_model
from mlffbench.training.config import TrainConfig, member_plan, resolve_splits
from mlffbench.training.data import all_edges, build_graphs, read_ase_dataset, standardization
from mlffbench.training.metrics import split_metrics
from mlffbench.training.trainer import CHECKPOINT, batch_predictor, member_params, predict_graphs, train_loop


def model_hparams(cfg: TrainConfig) -> dict:
    """Hyperparameters with the cutoff converted to sigma when given as cutoff_A."""
    hp = dict(cfg.model.hparams)
    if cfg.model.cutoff_A is not None:
        hp["cutoff"] = cfg.model.cutoff_A / (cfg.units.sigma_A if cfg.units.system == "metal" else 1.0)
    return hp


def _fingerprint(cfg: TrainConfig, data_hash: str) -> str:
    from mlffbench.config import config_hash

    return hashlib.sha256((config_hash(cfg) + data_hash).encode()).hexdigest()


def load_training_data(cfg: TrainConfig, data_path: str | Path):
    """(Dataset, sha256 of the file): a `generate` OUTDIR or dataset.npz, or any ASE-readable file
    read with the keys of `cfg.data` (see `read_ase_dataset`)."""
    p = Path(data_path)
    data_file = p / "dataset.npz" if p.is_dir() else p
    if p.is_dir() or p.suffix == ".npz" or not p.exists():
        return load_dataset(p), sha256_file(data_file) if data_file.is_file() else ""
    d = cfg.data
    ds = read_ase_dataset(p, d.energy_key, d.forces_key, d.stress_key, cfg.units.unit_system(), d.format)
    return ds, sha256_file(p)


def _prepare_outdir(outdir: Path, resume: bool, overwrite: bool) -> None:
    if resume:
        if not (outdir / CHECKPOINT).is_file():
            raise UserError(f"--resume: {outdir / CHECKPOINT} not found (nothing to resume)")
        return
    check_outdir(outdir, overwrite)
    if outdir.exists() and overwrite:
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True, exist_ok=True)


def run_train(cfg: TrainConfig, data_path: str | Path, outdir: str | Path, resume: bool = False,
              overwrite: bool = False, on_epoch: Callable[[dict], None] | None = None,
              stop_after_epochs: int | None = None, source: str = "config") -> dict:
    """Train, evaluate, write OUTDIR. Returns metrics.json's content (plus 'finished': bool)."""
    t_start = time.perf_counter()
    ds, data_hash = load_training_data(cfg, data_path)
    arch = cfg.model.architecture
    ent = entry(arch)
    hparams = model_hparams(cfg)
    module = build_module(arch, hparams)  # validates hyperparameters before anything is written
    cutoff = float(module.cutoff)
    splits, overlap = resolve_splits(ds, cfg, source)
    empty = sorted(k for k, v in splits.items() if len(v) == 0)
    splits = {k: v for k, v in splits.items() if len(v)}
    out = Path(outdir)
    _prepare_outdir(out, resume, overwrite)
    fingerprint = _fingerprint(cfg, data_hash)
    if resume:
        saved = read_json(out / "config.json")
        if saved.get("fingerprint") != fingerprint:
            raise UserError(f"--resume: {out} was started with a different config or dataset")
    else:
        write_json(out / "config.json", {"config": cfg.model_dump(mode="json"), "dataset_sha256": data_hash,
                                         "fingerprint": fingerprint})

    half = ent.neighbor_format == "half"
    edges = all_edges(ds, np.concatenate(list(splits.values())), cutoff, half)
    n_edges = max(len(e[0]) for e in edges.values())
    graphs = {k: build_graphs(ds, idx, cutoff, half, n_edges, edges) for k, idx in splits.items()}
    use_energy = ent.conservative and cfg.loss.energy_weight > 0 and bool(np.all(np.isfinite(ds.energy)))
    std = standardization(ds, splits["train"], use_energy)
    t_prep = time.perf_counter() - t_start

    t0 = time.perf_counter()
    seeds, member_index = member_plan(cfg, len(splits["train"]))
    K = len(seeds)
    st = train_loop(arch, hparams, graphs, std, cfg.loss, cfg.optim, cfg.seed, cfg.model.dtype,
                    out / CHECKPOINT, fingerprint, resume=resume, stop_after_epochs=stop_after_epochs,
                    on_epoch=on_epoch, member_seeds=seeds, member_index=member_index)
    t_train = time.perf_counter() - t0
    finished = st.epoch >= cfg.optim.epochs or st.stopped_early
    if not finished:
        return {"finished": False, "epoch": st.epoch}

    units = cfg.units.unit_system()
    import jax.numpy as jnp

    jdt = jnp.float64 if cfg.model.dtype == "float64" else jnp.float32
    predictor = batch_predictor(module, ent.conservative, ds.positions.shape[1], jdt)
    bs = min(cfg.optim.batch_size, len(graphs["train"]))
    metrics: dict = {"architecture": arch, "conservative": ent.conservative, "splits": {}}
    parity: dict = {}
    for name, g in graphs.items():
        preds = [predict_graphs(predictor, member_params(st.best_params, m), g, std, bs) for m in range(K)]
        E = np.mean([p_[0] for p_ in preds], axis=0)
        F = np.mean([p_[1] for p_ in preds], axis=0)
        E = E if ent.conservative else np.full_like(E, np.nan)
        metrics["splits"][name] = split_metrics(E, g.energy, F, g.forces, g.kT_target, g.n_atoms, units,
                                                cfg.temperature_bins_K)
        if K > 1:
            metrics["splits"][name]["committee"] = committee_split_metrics([p_[1] for p_ in preds], g.forces, units)
        parity[name] = (F, g.forces)
    one = (lambda x: x[0]) if K == 1 else (lambda x: x)
    metrics.update({
        "members": K, "ensemble": cfg.ensemble.model_dump(), "member_seeds": seeds,
        "best_epoch": one(st.best_epoch), "epochs_run": st.epoch, "stopped_early": st.stopped_early,
        "overlap_removed_from_train": overlap, "empty_splits": empty,
        "split_sizes": {k: int(len(v)) for k, v in splits.items()},
        "standardization": std, "n_edges_padded": n_edges, "cutoff_sigma": cutoff,
        "history": st.history,
        "train_configs_per_second": float(np.median([h["configs_per_second"] for h in st.history])),
    })
    card_extra = {"training_data_sha256": data_hash, "config": cfg.model_dump(mode="json"),
                  "unit_system": units.as_dict(), "cutoff_A": cutoff * units.sigma_angstrom,
                  "metrics": {k: {m: v[m] for m in ("force_rmse", "force_mae", "energy_rmse_per_atom",
                                                    "force_rmse_over_std")}
                              for k, v in metrics["splits"].items()}}
    tmp_model = out / ".model.tmp"
    if tmp_model.exists():
        shutil.rmtree(tmp_model)
    best = jax.tree_util.tree_map(np.asarray, st.best_params if K > 1 else member_params(st.best_params, 0))
    committee = {"members": K, "vary": cfg.ensemble.vary, "seeds": seeds} if K > 1 else None
    save_model(tmp_model, arch, hparams, best, std, card_extra, committee=committee)
    if (out / "model").exists():
        shutil.rmtree(out / "model")
    tmp_model.rename(out / "model")
    write_json(out / "metrics.json", metrics)
    plot_learning_curve(st.history, out / "learning_curve.png", units)
    plot_parity(parity, out / "parity.png", units, cfg.parity_points, cfg.seed)
    write_json(out / "manifest.json", manifest(
        "train", cfg, cfg.seed, cfg.model.dtype,
        {"prepare": t_prep, "train": t_train, "total": time.perf_counter() - t_start},
        dataset_sha256=data_hash, checkpoint_sha256=sha256_file(out / "model" / "params.msgpack")))
    return {"finished": True, **metrics}


def committee_split_metrics(member_forces: list[np.ndarray], F_ref: np.ndarray, units) -> dict:
    """Per-member force RMSE and the committee's force spread on one split (eV/Å).

    member_forces: K arrays (F, N, 3) reduced; spread = RMS over components of the member std
    (ddof 0); rmse_members = each member's force RMSE against the reference.
    """
    from mlffbench.stats import from_samples

    fu = units.scale("force")
    stack = np.asarray(member_forces)
    rmse = np.sqrt(np.mean((stack - F_ref[None]) ** 2, axis=(1, 2, 3))) * fu
    return {"force_rmse_members": from_samples(rmse, "eV/Å"),
            "force_spread_rms": {"value": float(np.sqrt(np.mean(np.var(stack, axis=0)))) * fu, "unit": "eV/Å"}}


def plot_learning_curve(history: list[dict], path: Path, units) -> None:
    from mlffbench.plotting import pyplot, save

    plt = pyplot()

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].semilogy(ep, [h["train_loss"] for h in history], label="train loss (standardised)")
    ax[0].set_xlabel("epoch")
    ax[0].legend()
    ax[1].semilogy(ep, [h["val_force_rmse"] * units.scale("force") for h in history], label="val force RMSE")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("eV/Å")
    ax[1].legend()
    fig.tight_layout()
    save(fig, path, dpi=110, bbox_inches=None)


def plot_parity(parity: dict, path: Path, units, n_points: int, seed: int) -> None:
    from mlffbench.plotting import pyplot, save

    plt = pyplot()

    fu = units.scale("force")
    fig, axes = plt.subplots(1, len(parity), figsize=(3.6 * len(parity), 3.5), squeeze=False)
    rng = np.random.default_rng(seed)
    for ax, (name, (Fp, Fr)) in zip(axes[0], parity.items()):
        p, r = Fp.ravel() * fu, Fr.ravel() * fu
        sel = rng.choice(len(p), size=min(n_points, len(p)), replace=False)
        ax.plot(r[sel], p[sel], ".", ms=1.5, alpha=0.5)
        lim = [float(min(r.min(), p.min())), float(max(r.max(), p.max()))]
        ax.plot(lim, lim, "k-", lw=0.7)
        ax.set_title(name)
        ax.set_xlabel("LJ force (eV/Å)")
        ax.set_ylabel("model force (eV/Å)")
    fig.tight_layout()
    save(fig, path, dpi=110, bbox_inches=None)
