"""`mlffbench check-model`: integrity checks (F = -grad E, invariances, smoothness through a
neighbour-shell crossing under strain, closed-loop work of force-only models, extensivity)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlffbench.progress import console


def register(app: typer.Typer) -> None:
    @app.command("check-model")
    def check_model(
        model: str = typer.Option(..., "--model", help="lj | lj/cut | lj/cut/shift | lj/smooth | model directory."),
        outdir: Path = typer.Option(..., "-o", "--outdir", help="Output directory (check_model.json, dimer.png)."),
        config: Path | None = typer.Option(None, "-c", "--config", help="Optional YAML (tolerances, structure)."),
        dtype: str = typer.Option("float64", "--dtype", help="float64 (tight checks) or float32 (as used in MD)."),
        seed: int | None = typer.Option(None, "--seed", help="Override the seed of the random structure."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTDIR."),
    ) -> None:
        """Run the integrity checks on a potential; each prints pass/fail with its number.

        Exit code 1 when a check fails (so scripts can gate property runs on it).
        """
        from mlffbench.config import load_config, validate
        from mlffbench.errors import SimulationError, UserError
        from mlffbench.io import atomic_outdir, check_outdir, manifest, write_json
        from mlffbench.potentials import load_potential
        from mlffbench.units import ARGON
        from mlffbench.workflows.check_model import (
            CheckModelConfig,
            plot_dimer,
            run_checks,
        )

        if dtype not in ("float32", "float64"):
            raise UserError(f"--dtype must be float32 or float64, got {dtype!r}")
        cfg = (load_config(CheckModelConfig, config, {"seed": seed}) if config
               else validate(CheckModelConfig, {} if seed is None else {"seed": seed}))
        check_outdir(outdir, overwrite)
        pot = load_potential(model, dtype=dtype)
        result = run_checks(pot, cfg)
        with atomic_outdir(outdir, overwrite) as tmp:
            write_json(tmp / "check_model.json", {"model": model, **result})
            plot_dimer(result, tmp / "dimer.png", ARGON)
            write_json(tmp / "manifest.json", manifest("check-model", cfg, cfg.seed, dtype, model=model))
        table = Table(title=f"check-model {model} ({dtype})", header_style="bold")
        for col in ("check", "value", "tolerance", "result"):
            table.add_column(col, justify="right" if col != "check" else "left")
        for c in result["checks"]:
            res = "n/a" if c["passed"] is None else ("[green]pass" if c["passed"] else "[red]FAIL")
            val = "n/a" if c["value"] is None else f"{c['value']:.3e}"
            table.add_row(c["name"], val, f"{c['tolerance']:.1e}", res)
        console.print(table)
        console.print(f"{result['n_passed']}/{result['n_checks']} checks passed; results in {outdir}/check_model.json")
        if not result["passed"]:
            raise SimulationError(f"{model}: {result['n_checks'] - result['n_passed']} integrity check(s) failed")
