"""`mlffbench md`: MD with any potential: time to failure, NVE drift, RDF, MSD; --compare runs a second
potential and compares through the md_stability benchmark's compare function."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlffbench.progress import console


def register(app: typer.Typer) -> None:
    @app.command("md")
    def md(
        model: str = typer.Option(..., "--model", help="lj | lj/cut | lj/cut/shift | lj/smooth | model directory."),
        config: Path = typer.Option(..., "-c", "--config", help="YAML config (see configs/md-quick.yaml)."),
        outdir: Path = typer.Option(..., "-o", "--outdir", help="Output directory."),
        compare: str | None = typer.Option(None, "--compare", help="Run the same with this potential (e.g. lj)."),
        dtype: str | None = typer.Option(None, "--dtype", help="float32 (default for models) or float64."),
        seed: int | None = typer.Option(None, "--seed", help="Override the config's seed."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTDIR."),
    ) -> None:
        """NVT equilibration then NVE of an FCC crystal at each temperature, replicas vmapped.

        Writes md.json (time to failure, NVE drift in eV/atom/ps, order parameter, RDF, MSD and,
        with --compare, the RDF distance), md.png, trajectory_<T>.extxyz (replica 0, up to the
        failure point) and manifest.json.
        """
        import tempfile
        import time

        import numpy as np

        from mlffbench.benchmarks.md_stability import compare_md_stability, md_raw
        from mlffbench.config import load_config
        from mlffbench.io import atomic_outdir, check_outdir, manifest, write_json
        from mlffbench.potentials import load_potential
        from mlffbench.workflows.md_run import MDRunConfig, plot_md, run_md_benchmark

        cfg = load_config(MDRunConfig, config, {"seed": seed})
        check_outdir(outdir, overwrite)
        pot = load_potential(model, dtype=dtype)
        ref = load_potential(compare) if compare else None
        t0 = time.perf_counter()
        with atomic_outdir(outdir, overwrite) as tmp:
            result = run_md_benchmark(pot, cfg, tmp)
            reference = None
            if ref is not None:
                with tempfile.TemporaryDirectory() as scratch:  # the reference's trajectories are not kept
                    reference = run_md_benchmark(ref, cfg, Path(scratch))
                metrics = compare_md_stability(md_raw(result)[0], md_raw(reference)[0])
                result["comparison"] = {"potential": ref.describe(), "metrics": metrics}
                for t, r in zip(result["temperatures"], reference["temperatures"]):
                    t["compare"] = r
                    d = metrics.get(f"rdf_distance_{t['temperature_K']:g}K")
                    t["rdf_distance_l2"] = None if d is None else d["value"]
            result["model"], result["compare_model"] = model, compare
            write_json(tmp / "md.json", result)
            plot_md(result, tmp / "md.png", reference)
            write_json(tmp / "manifest.json", manifest("md", cfg, cfg.seed, dtype or "default",
                                                       {"total": time.perf_counter() - t0}, model=model))
        table = Table(title=f"md {model}", header_style="bold")
        for col in ("T (K)", "failed replicas", "time to failure (ps)", "NVE drift (meV/atom/ps)", "min order",
                    "RDF dist (L2)"):
            table.add_column(col, justify="right")
        for t in result["temperatures"]:
            drifts = [r["nve_drift_eV_per_atom_per_ps"] for r in t["replicas"] if r["nve_drift_eV_per_atom_per_ps"] is not None]
            table.add_row(f"{t['temperature_K']:g}", f"{sum(r['failed'] for r in t['replicas'])}/{len(t['replicas'])}",
                          "-" if t["time_to_failure_ps"] is None else f"{t['time_to_failure_ps']:.2f}",
                          "n/a" if not drifts else f"{np.max(np.abs(drifts)) * 1e3:.3g}",
                          f"{min(r['min_order_parameter'] for r in t['replicas']):.3f}",
                          "-" if t.get("rdf_distance_l2") is None else f"{t['rdf_distance_l2']:.4f}")
        console.print(table)

