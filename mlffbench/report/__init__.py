"""Scorecards: `mlffbench run` outputs -> one report a reader takes in at a glance.

The page opens with a heat map (benchmarks x runs, coloured by score, the headline error with its
± spread; failed and not-run cells marked, their reasons on hover and in footnotes), then one
section per benchmark: a figure drawn from the raw numbers (every model over LJ, error bands where
the data has a spread) whose caption states the settings behind it, the scored metrics, all
metrics collapsed; the manifests come last, collapsed. Formats: self-contained HTML (images
embedded), Markdown (figures in `<report>_figures/`), and always a JSON file beside it with the
scorecard and metrics (value, unit, std, n, ci95, score).

Modules: `runs` (loading run directories, the curves of a benchmark), `figures` (one drawer per
benchmark), `content` (scorecard, captions, JSON), `html`, `markdown`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from mlffbench.errors import UserError
from mlffbench.io import atomic_write_bytes, write_json
from mlffbench.report.content import Report, build, to_json
from mlffbench.report.html import render_html
from mlffbench.report.markdown import render_md
from mlffbench.report.runs import load_run, load_runs

__all__ = ["build_report", "load_run", "render", "write_report"]
FORMATS = ("md", "html")


def build_report(outdirs: list[str | Path], draw: bool = True) -> Report:
    """The report's content for one or several run directories (UserError if one is not a run);
    draw=False: the runs' own PNGs instead of figures drawn from the raw numbers."""
    if not outdirs:
        raise UserError("give at least one run directory")
    return build(load_runs(outdirs), draw)


def figure_dir_name(report_path: Path) -> str:
    """The folder (beside the report) that holds a Markdown report's figures."""
    return f"{report_path.stem}_figures"


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UserError(f"--format must be md or html (got {fmt!r})")


def render(outdirs: list[str | Path], fmt: str = "md", report_path: Path | None = None) -> str:
    """The report text, nothing written. HTML: the full page. Markdown: the runs' own PNGs linked
    relative to `report_path` (default OUTDIR/report.md) instead of drawn figures, which only
    `write_report` writes (the quick scorecard.md of `mlffbench run`)."""
    _check_format(fmt)
    if fmt == "html":
        return render_html(build_report(outdirs))
    base = (Path(report_path) if report_path else Path(outdirs[0]) / "report.md").resolve().parent
    return render_md(build_report(outdirs, draw=False), lambda f: os.path.relpath(Path(f.source).resolve(), base))


def write_report(outdirs: list[str | Path], fmt: str = "md", output: str | Path | None = None) -> Path:
    """Render and write the report (default OUTDIR/report.<fmt> for one run, ./comparison.<fmt>
    for several), its JSON beside it (<stem>.json) and, for Markdown, its figures
    (<stem>_figures/). Everything is built before anything is written."""
    _check_format(fmt)
    if output is None:
        output = Path(outdirs[0]) / f"report.{fmt}" if len(outdirs) == 1 else Path(f"comparison.{fmt}")
    output = Path(output)
    if output.suffix == ".json":
        raise UserError(f"{output}: the report's JSON is written beside it; give a .{fmt} file")
    report = build_report(outdirs)
    figdir = figure_dir_name(output) if fmt == "md" else None
    text = render_html(report) if fmt == "html" else render_md(report, lambda f: f"{figdir}/{f.file}")
    doc = to_json(report, figdir)
    output.parent.mkdir(parents=True, exist_ok=True)
    if figdir is not None:
        tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{figdir}."))
        for s in report.sections:
            for f in s.figures:
                (tmp / f.file).write_bytes(f.png)
        final = output.parent / figdir
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    write_json(output.with_suffix(".json"), doc)
    atomic_write_bytes(output, text.encode())
    return output
