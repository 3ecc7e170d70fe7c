"""`mlffbench cg`: coarse-grained force-field transferability (HIP-NN-TS vs a pair-spline baseline)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlffbench.progress import console


def register(app: typer.Typer) -> None:
    @app.command("cg")
    def cg(
        config: Path = typer.Option(..., "-c", "--config", help="YAML config (see configs/cg-quick.yaml)."),
        outdir: Path = typer.Option(..., "-o", "--outdir", help="Output directory (must not exist)."),
        seed: int | None = typer.Option(None, "--seed", help="Override the config's seed."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTDIR."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress messages."),
    ) -> None:
        """Coarse-grain a molecular liquid and test how CG force fields transfer across state points.

        Stages: fine-grained reference (flexible LJ trimers simulated here, or imported all-atom
        npz/extxyz frames) -> centre-of-mass mapping -> force matching at `train_state`
        (HIP-NN-TS + repulsive prior, and an MS-CG pair spline baseline) -> CG Langevin MD at every
        state -> RDF distance, pressure, diffusion ratio, force error per state. Writes
        states/<state>/result.json, rdf_<state>.png, transferability.json, models/ and
        manifest.json. Reduced LJ units throughout.
        """
        import time

        from mlffbench.cg.config import CGConfig
        from mlffbench.cg.transfer import run_cg
        from mlffbench.config import load_config
        from mlffbench.io import atomic_outdir, check_outdir, manifest, write_json

        cfg = load_config(CGConfig, config, {"seed": seed})
        check_outdir(outdir, overwrite)
        log = None if quiet else (lambda msg: console.print(f"[dim]cg:[/dim] {msg}"))
        t0 = time.perf_counter()
        with atomic_outdir(outdir, overwrite) as tmp:
            summary = run_cg(cfg, tmp, progress=log)
            write_json(tmp / "manifest.json", manifest("cg", cfg, seed=cfg.seed, dtype="float64",
                                                       wall_times={**summary["wall_times_s"],
                                                                   "total": time.perf_counter() - t0}))
        print_summary(summary, outdir)


def _fmt(x, spec=".3f") -> str:
    return "-" if x is None else format(x, spec)


def print_summary(summary: dict, outdir: Path) -> None:
    trained = ", ".join(summary.get("train_states") or [summary["train_state"]])
    table = Table(title=f"CG transferability (trained at {trained}), written to {outdir}",
                  header_style="bold")
    for col in ("state", "model", f"RDF dist ({summary['rdf_metric']})", "exact-model", "ref noise", "min r (ref)",
                "ΔP (ε/σ³)", "D/D_ref", "force RMSE (ε/σ)", "MD"):
        table.add_column(col, justify="right" if col not in ("state", "model", "MD") else "left")
    failures, decisions = [], []
    for state, row in summary["table"].items():
        label = f"{state}{' *' if row.get('trained_here') else ''}"
        dec = row.get("decision") or {}
        decisions.append(f"{state}: {dec.get('better') or 'not decided'}"
                         + (f" ({dec['reason']})" if dec.get("reason") else ""))
        for model, m in row.items():
            if model in ("trained_here", "decision"):
                continue
            dist = _fmt(m["rdf_distance"])
            if m.get("rdf_distance_std") is not None and m["rdf_distance"] is not None:
                dist += f" ± {m['rdf_distance_std']:.3f}"
            dp = _fmt(m["pressure_difference"], ".2f")
            if m.get("pressure_difference_std") is not None and m["pressure_difference"] is not None:
                dp += f" ± {m['pressure_difference_std']:.2f}"
            table.add_row(label, model, dist, _fmt(m.get("rdf_noise_expected")), _fmt(m["rdf_noise_floor"]),
                          f"{_fmt(m['min_distance'], '.2f')} ({m['reference_min_distance']:.2f})", dp,
                          _fmt(m["diffusion_ratio"], ".2f"), _fmt(m["force_rmse"], ".2f"), m["md_status"])
            if m["md_status"] != "ok":
                failures.append(f"{state} {model}: {m['md_message']}")
            label = ""
    console.print(table)
    console.print("smaller RDF distance beyond 2u (paired bootstrap + seed standard error): " + "; ".join(decisions))
    for line in failures:
        console.print(f"[red]failed[/red] {line}")
    console.print("* training state. exact-model: the distance an exact model would show with this sampling. "
                  "ref noise: the mapped reference's own noise floor (distances within it are not resolved). min r: smallest bead distance of the model's CG MD (reference). "
                  "Pressure and diffusion caveats: see transferability.json.")
