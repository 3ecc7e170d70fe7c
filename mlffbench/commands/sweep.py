"""`mlffbench sweep`: many `mlffbench run`s (models x benchmark selections x seeds) on a Dask cluster."""

from __future__ import annotations

from pathlib import Path

import typer

from mlffbench.progress import console


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep(
        config: Path = typer.Option(..., "-c", "--config", help="Sweep config (see configs/sweep-quick.yaml)."),
        outdir: Path = typer.Option(..., "-o", "--outdir", help="Output directory; an unfinished sweep is resumed."),
        scheduler: str = typer.Option(None, "--scheduler",
                                      help="local (default; a LocalCluster) or tcp://HOST:PORT (an existing "
                                           "Dask scheduler); the config's cluster: section otherwise."),
        workers: int = typer.Option(2, "--workers", "-w", min=1, help="LocalCluster worker processes."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Discard an existing OUTDIR and start afresh."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Fan `mlffbench run` tasks out on Dask: each in a fresh process with pinned threads, each
        into OUTDIR/runs/<task> (the run cache: finished tasks are skipped, a dead worker's task is
        re-run). Writes OUTDIR/results.json (all tasks) and OUTDIR/report.md (every model side by side).
        """
        from mlffbench.benchmarks.sweep import SweepConfig, run_sweep
        from mlffbench.config import load_config

        cfg = load_config(SweepConfig, config)
        doc = run_sweep(cfg, outdir, scheduler=scheduler, workers=workers, overwrite=overwrite,
                        progress=not quiet, source=str(config),
                        log=lambda msg: console.print(msg, highlight=False))
        s = doc["summary"]
        console.print(f"sweep: {s['computed']} computed, {s['cached']} reused, {s['failed']} failed; "
                      f"results in {outdir / 'results.json'}, report {outdir / 'report.md'}", highlight=False)
        if s["failed"]:
            raise typer.Exit(1)
