"""`mlffbench report`: one or several run OUTDIRs as a scorecard page (HTML or Markdown) plus its JSON."""

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
        """Scorecard heat map, one figure per benchmark (models over LJ), metrics, manifests; several
        OUTDIRs side by side. Writes FILE, FILE's .json (scorecard + metrics) and, for md, FILE_figures/."""
        from mlffbench.report import write_report

        path = write_report(outdirs, fmt, output)
        console.print(f"report written to {path} (numbers: {path.with_suffix('.json')})")
