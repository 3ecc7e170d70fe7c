"""`mlffbench check`: compare a run's LJ values with reference_data (exit 0 ok, 1 drift, 2 bad input)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mlffbench.progress import console


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check(
        outdir: Path = typer.Argument(..., help="An `mlffbench run` output directory."),
        reference: Path = typer.Option(..., "--reference", "-r", help="Reference file, e.g. reference_data/lj_argon.json."),
    ) -> None:
        """Every reference value against the run, with per-value tolerances; a table of deviations.

        Exit 0: all within tolerance. Exit 1: drift (the drifting values are named). Exit 2: bad input.
        """
        from rich.table import Table

        from mlffbench.benchmarks.check import DRIFT, SKIPPED, check_run

        rows, code = check_run(outdir, reference)
        table = Table(title=f"{outdir} vs {reference}")
        for col in ("value", "reference", "run", "unit", "deviation", "tolerance", "status"):
            table.add_column(col)
        colour = {DRIFT: "red", SKIPPED: "yellow"}
        g = lambda x: "" if x is None else f"{x:.10g}"  # noqa: E731
        for r in rows:
            status = r.status + (f" ({r.note})" if r.note else "")
            table.add_row(r.key, g(r.reference), g(r.value), r.unit, "" if r.deviation is None else f"{r.deviation:+.3e}",
                          "" if r.allowed is None else f"{r.allowed:.3e}", f"[{colour.get(r.status, 'green')}]{status}[/]")
        console.print(table)
        drift = [r.key for r in rows if r.status == DRIFT]
        if drift:
            console.print(f"[bold red]drift:[/bold red] {', '.join(drift)}", highlight=False)
            # sys.exit, not typer.Exit: cli.main runs click with standalone_mode=False, where
            # click returns an Exit's code instead of raising it, and the code would be lost
            sys.exit(code)
        console.print(f"all {sum(r.status != SKIPPED for r in rows)} checked values within tolerance "
                      f"({sum(r.status == SKIPPED for r in rows)} skipped)")
