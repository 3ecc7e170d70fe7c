"""`mlffbench study`: which training data makes a force field generalize (recipes x committee x battery)."""

from __future__ import annotations

from pathlib import Path

import typer

from mlffbench.progress import console


def register(app: typer.Typer) -> None:
    @app.command("study")
    def study(
        config: Path = typer.Option(..., "-c", "--config", help="Study config (see configs/study-quick.yaml)."),
        outdir: Path = typer.Option(..., "-o", "--outdir", help="Output directory; an unfinished study is resumed."),
        seed: int = typer.Option(None, "--seed", help="Override the config's seed."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Discard an existing OUTDIR and start afresh."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
        recipe: list[str] = typer.Option(None, "--recipe",
                                         help="Run only this task (repeatable; a recipe or 'paper@N'); no table "
                                              "is written (run once without --recipe for it, as `mlffbench sweep` does)."),
        extra: bool = typer.Option(False, "--extra",
                                   help="Also run the config's extra.benchmarks (e.g. hop_rates, migration_barrier) on "
                                        "extra.tasks (default: the baseline), reusing the study's trained committees."),
    ) -> None:
        """Generate -> train a committee -> battery for every data recipe, with the same number of
        training frames each; then one table and one plot of each property's error per recipe
        (mean ± std over the committee), the gain over the baseline and whether it exceeds the noise.

        Writes OUTDIR/study.json, study.md, study.png and OUTDIR/recipes/<recipe>/ (ordinary run
        directories). Re-running resumes: finished recipes, stages and benchmarks are reused.
        """
        from mlffbench.benchmarks.study import StudyConfig, markdown_table, run_study
        from mlffbench.config import load_config

        cfg = load_config(StudyConfig, config, {"seed": seed})
        doc = run_study(cfg, outdir, source=str(config), overwrite=overwrite, progress=not quiet,
                        log=lambda msg: console.print(msg, highlight=False), recipes=recipe or None,
                        extra=extra)
        if doc["table"] is None:
            console.print(f"study: {', '.join(doc['tasks'])} done in {outdir}", highlight=False)
            return
        console.print(markdown_table(doc["table"], list(doc["tasks"]), doc["baseline"]), highlight=False)
