"""`mlffbench train`: train a learned force field on a generated dataset."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mlffbench.progress import console


@contextlib.contextmanager
def epoch_progress(cfg, enabled: bool = True) -> Iterator[Callable[[dict], None]]:
    """A Rich bar over epochs showing the last epoch's loss, validation force RMSE (meV/Å), ETA.

    Yields on_epoch(record) for `run_train`; a no-op when not enabled (-q). The bar appears at
    the first finished epoch (a resumed run starts where its checkpoint is).
    """
    if not enabled:
        yield lambda rec: None
        return
    fu = cfg.units.unit_system().scale("force") * 1e3
    K = cfg.ensemble.members
    columns = [TextColumn("[bold]train" + (f" ({K} members)" if K > 1 else "")), BarColumn(),
               TextColumn("epoch {task.completed}/{task.total}"),
               TextColumn("loss {task.fields[loss]}  val F RMSE {task.fields[val]} meV/Å"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as prog:
        task = prog.add_task("train", total=cfg.optim.epochs, loss="-", val="-")

        def on_epoch(rec: dict) -> None:
            prog.update(task, completed=rec["epoch"] + 1, loss=f"{rec['train_loss']:.4g}",
                        val=f"{rec['val_force_rmse'] * fu:.3f}")

        yield on_epoch


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        config: Path = typer.Option(..., "-c", "--config", help="YAML config (see configs/train-quick.yaml)."),
        data: Path = typer.Option(..., "--data", help="Dataset: OUTDIR of `mlffbench generate`, its dataset.npz, or "
                                  "any ASE-readable file (extxyz, ASE db, ...; keys in the config's `data`)."),
        outdir: Path = typer.Option(..., "-o", "--outdir", help="Output directory."),
        seed: int | None = typer.Option(None, "--seed", help="Override the config's seed."),
        resume: bool = typer.Option(False, "--resume", help="Continue from OUTDIR/checkpoint.msgpack."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTDIR."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        stop_after_epochs: int | None = typer.Option(None, "--stop-after-epochs", hidden=True,
                                                     help="Leave after this many epochs (tests of --resume)."),
    ) -> None:
        """Train a GNN force field (default: conservative SchNet-class; `direct-force` = the paper's).

        Writes OUTDIR/model/ (params.msgpack + model_card.json, usable as --model OUTDIR/model),
        metrics.json (per split and temperature, eV and eV/Å), learning_curve.png, parity.png,
        checkpoint.msgpack (every epoch; --resume continues bit-identically) and manifest.json.
        With `ensemble: {members: K}` the K members train in one vmapped program and OUTDIR/model
        is a committee (metrics are of the member mean, plus member spread).
        """
        from mlffbench.config import load_config
        from mlffbench.training.config import TrainConfig
        from mlffbench.workflows.train import run_train

        cfg = load_config(TrainConfig, config, {"seed": seed})
        with epoch_progress(cfg, enabled=not quiet) as on_epoch:
            result = run_train(cfg, data, outdir, resume=resume, overwrite=overwrite, on_epoch=on_epoch,
                               stop_after_epochs=stop_after_epochs, source=str(config))
        if not result["finished"]:
            console.print(f"stopped after epoch {result['epoch']}; continue with --resume")
            return
        table = Table(title=f"model written to {outdir}/model", header_style="bold")
        committee = result["members"] > 1
        for col in ("split", "frames", "F RMSE (meV/Å)", "F RMSE / std", "E RMSE (meV/atom)",
                    *(["member F spread (meV/Å)"] if committee else [])):
            table.add_column(col, justify="right")
        for name, m in result["splits"].items():
            e = m["energy_rmse_per_atom"]["value"]
            spread = [f"{m['committee']['force_spread_rms']['value'] * 1e3:.3f}"] if committee else []
            table.add_row(name, str(m["n_frames"]), f"{m['force_rmse']['value'] * 1e3:.3f}",
                          f"{m['force_rmse_over_std']:.4f}", "n/a" if e is None else f"{e * 1e3:.4f}", *spread)
        console.print(table)
