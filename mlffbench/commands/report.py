"""`mlffbench report`: render one or several run OUTDIRs as a Markdown or HTML scorecard."""

from __future__ import annotations

from pathlib import Path

import typer

from mlffbench.progress import console


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        outdirs: list[Path] = typer.Argument(..., help="One or more `mlffbench run` output directories."),
        fmt: str = typer.Option("md", "--format", "-f", help="md | html"),
        output: Path = typer.Option(None, "-o", "--output",
                                    help="Report file (default OUTDIR/report.<fmt>, or ./comparison.<fmt>)."),
    ) -> None:
        """Scorecard, per-benchmark metrics and plots, and the manifest; several OUTDIRs side by side."""
        from mlffbench.report import write_report

        path = write_report(outdirs, fmt, output)
        console.print(f"report written to {path}")
