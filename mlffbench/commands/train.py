"""`mlffbench train`: train a learned force field on a generated dataset."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlffbench.progress import console


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        config: Path = typer.Option(..., "-c", "--config", help="YAML config (see configs/train-quick.yaml)."),
        data: Path = typer.Option(..., "--data", help="Dataset: OUTDIR of `mlffbench generate` or its dataset.npz."),
        outdir: Path = typer.Option(..., "-o", "--outdir", help="Output directory."),
        seed: int | None = typer.Option(None, "--seed", help="Override the config's seed."),
        resume: bool = typer.Option(False, "--resume", help="Continue from OUTDIR/checkpoint.msgpack."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTDIR."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
        stop_after_epochs: int | None = typer.Option(None, "--stop-after-epochs", hidden=True,
                                                     help="Leave after this many epochs (tests of --resume)."),
    ) -> None:
        """Train a GNN force field (default: conservative SchNet-class; `direct-force` = the paper's).

        Writes OUTDIR/model/ (params.msgpack + model_card.json, usable as --model OUTDIR/model),
        metrics.json (per split and temperature, eV and eV/Å), learning_curve.png, parity.png,
        checkpoint.msgpack (every epoch; --resume continues bit-identically) and manifest.json.
        """
        from mlffbench.config import load_config
        from mlffbench.training.config import TrainConfig
        from mlffbench.workflows.train import run_train

        cfg = load_config(TrainConfig, config, {"seed": seed})
        units = cfg.units.unit_system()

        def on_epoch(rec: dict) -> None:
            if not quiet:
                console.print(f"epoch {rec['epoch']:4d}  loss {rec['train_loss']:.4g}  "
                              f"val F RMSE {rec['val_force_rmse'] * units.scale('force') * 1e3:.3f} meV/Å  "
                              f"{rec['configs_per_second']:.0f} configs/s", highlight=False)

        result = run_train(cfg, data, outdir, resume=resume, overwrite=overwrite, on_epoch=on_epoch,
                           stop_after_epochs=stop_after_epochs, source=str(config))
        if not result["finished"]:
            console.print(f"stopped after epoch {result['epoch']}; continue with --resume")
            return
        table = Table(title=f"model written to {outdir}/model", header_style="bold")
        for col in ("split", "frames", "F RMSE (meV/Å)", "F RMSE / std", "E RMSE (meV/atom)"):
            table.add_column(col, justify="right")
        for name, m in result["splits"].items():
            e = m["energy_rmse_per_atom"]["value"]
            table.add_row(name, str(m["n_frames"]), f"{m['force_rmse']['value'] * 1e3:.3f}",
                          f"{m['force_rmse_over_std']:.4f}", "n/a" if e is None else f"{e * 1e3:.4f}")
        console.print(table)
