"""`mlffbench run`: generate -> train -> battery (or the battery on --model), resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from mlffbench.progress import console


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        config: Path = typer.Option(None, "-c", "--config",
                                    help="Run config (default configs/run-<mode>.yaml)."),
        outdir: Path = typer.Option(..., "-o", "--outdir",
                                    help="Output directory; an unfinished run there is resumed."),
        model: str = typer.Option(None, "--model", "-m",
                                  help="Model directory or LJ name; omitted: generate data and train one."),
        benchmark: list[str] = typer.Option(None, "-b", "--benchmark", help="Run only these (repeatable)."),
        exclude: list[str] = typer.Option(None, "-e", "--exclude", help="Skip these (repeatable)."),
        mode: str = typer.Option(None, "--mode", help="quick | paper (overrides the config's mode)."),
        seed: int = typer.Option(None, "--seed", help="Override the config's seed."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Discard an existing OUTDIR and start afresh."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Run the benchmark battery: each benchmark on the model and on LJ through the same code.

        Writes OUTDIR/results.json (states, raw numbers with units, model-vs-LJ metrics, scores),
        OUTDIR/manifest.json, OUTDIR/benchmarks/<name>/ (result.json, plots) and OUTDIR/scorecard.md.
        Re-running on the same OUTDIR skips benchmarks whose stored results are complete and valid.
        """
        from mlffbench.benchmarks.runner import RunConfig, run_battery
        from mlffbench.config import load_config, resolve_path
        from mlffbench.errors import UserError

        if mode is not None and mode not in ("quick", "paper"):
            raise UserError(f"--mode must be quick or paper (got {mode!r})")
        if config is None:
            config = resolve_path(f"configs/run-{mode or 'quick'}.yaml")
        cfg = load_config(RunConfig, config, {"mode": mode, "seed": seed})
        doc = run_battery(cfg, outdir, model_spec=model, select=benchmark or None, exclude=exclude or None,
                          overwrite=overwrite, progress=not quiet, source=str(config),
                          log=lambda msg: console.print(msg, highlight=False))
        print_scorecard(doc, outdir)


def format_quantity(q: dict) -> str:
    """'0.0123 ± 0.004 eV' (no unit for dimensionless values, ± only where a spread exists)."""
    text = f"{q['value']:.3g}"
    if q.get("std"):
        text += f" ± {q['std']:.2g}"
    unit = q.get("unit")
    return text if unit in (None, "", "1") else f"{text} {unit}"


def print_scorecard(doc: dict, outdir: Path) -> None:
    from rich.table import Table

    table = Table(title=f"scorecard: {doc['model']['name']} vs {doc['reference']['name']} ({outdir})")
    for col in ("benchmark", "state", "score", "reason / headline"):
        table.add_column(col)
    style = {"passed": "green", "failed": "red", "not run": "yellow"}
    for name, r in doc["benchmarks"].items():
        score = "" if r.get("score") is None else f"{r['score']:.2f}"
        head = r.get("reason") or ""
        if not head:
            firsts = [(k, m) for k, m in r.get("metrics", {}).items() if m.get("score") is not None][:1]
            head = ", ".join(f"{k} = {format_quantity(m)}" for k, m in firsts)
        table.add_row(name, f"[{style[r['state']]}]{r['state']}[/]", score, head)
    s = doc["summary"]
    mean = "n/a" if s["score"] is None else f"{s['score']:.2f}"
    table.caption = f"{s['passed']} passed, {s['failed']} failed, {s['not run']} not run; mean score {mean}"
    console.print(table)
