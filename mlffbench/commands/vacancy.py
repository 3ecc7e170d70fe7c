"""`mlffbench vacancy`: vacancy hop rates from direct MD, Arrhenius fit, HTST comparison."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlffbench.progress import console, progress_bar


def register(app: typer.Typer) -> None:
    @app.command("vacancy")
    def vacancy(
        config: Path = typer.Option(..., "-c", "--config", help="YAML config (see configs/vacancy-quick.yaml)."),
        outdir: Path = typer.Option(..., "-o", "--outdir", help="Output directory (must not exist)."),
        model: str | None = typer.Option(None, "--model", help="lj | lj/cut | lj/cut/shift | lj/smooth | "
                                         "a trained-model directory | a model spec .yaml. Default: the config's "
                                         "potential."),
        compare: str | None = typer.Option(None, "--compare", help="Also run the same workflow on this potential "
                                           "(e.g. lj) into OUTDIR/reference and write comparison.json with the "
                                           "battery's hop_rates metrics."),
        seed: int | None = typer.Option(None, "--seed", help="Override the config's seed."),
        checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Checkpoint file (default: "
                                               "OUTDIR's parent/.OUTDIR-name.vacancy-checkpoint.npz). "
                                               "An existing one for the same config is resumed."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTDIR."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Vacancy hopping rates from direct NVT MD (many replicas at once), hop detection from
        lattice-site occupancy, Poisson confidence intervals, Arrhenius fit and harmonic-TST
        comparison. Writes OUTDIR/result.json, arrhenius.png, manifest.json. Interrupted runs
        resume from the checkpoint (removed after success)."""
        from mlffbench.benchmarks.hop_rates import hop_rates_raw
        from mlffbench.commands.neb import compare_docs
        from mlffbench.config import load_config
        from mlffbench.io import atomic_outdir, check_outdir, write_json
        from mlffbench.potentials import load_potential
        from mlffbench.workflows.vacancy import VacancyConfig, run_vacancy

        cfg = load_config(VacancyConfig, config, {"seed": seed})
        check_outdir(outdir, overwrite)
        spec = model or cfg.potential.name
        potential = load_potential(spec, cutoff=cfg.potential.cutoff_sigma, r_onset=cfg.potential.r_onset_sigma)
        reference = (load_potential(compare, cutoff=cfg.potential.cutoff_sigma, r_onset=cfg.potential.r_onset_sigma)
                     if compare else None)
        ckpt = checkpoint or outdir.parent / f".{outdir.name}.vacancy-checkpoint.npz"
        ref_ckpt = ckpt.with_name(ckpt.stem + ".reference.npz")
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        factory = None if quiet else (lambda desc, total: progress_bar(desc, total, "segments"))
        with atomic_outdir(outdir, overwrite) as tmp:
            doc = run_vacancy(potential, cfg, tmp, ckpt, progress_factory=factory, model_spec=spec,
                              log=lambda m: console.print(m))
            if reference is not None:
                (tmp / "reference").mkdir()
                ref_doc = run_vacancy(reference, cfg, tmp / "reference", ref_ckpt, progress_factory=factory,
                                      model_spec=compare, log=lambda m: console.print(m))
                write_json(tmp / "comparison.json",
                           compare_docs(doc, ref_doc, compare, {"hop_rates": hop_rates_raw}))
        ckpt.unlink(missing_ok=True)
        ref_ckpt.unlink(missing_ok=True)
        print_summary(doc, outdir)


def print_summary(doc: dict, outdir: Path) -> None:
    table = Table(title=f"vacancy hopping ({doc['potential']['name']}) -> {outdir}", header_style="bold")
    for col in ("T (K)", "hops", "time (ps)", "rate (1/ps)", "95% CI", "HTST 12k (1/ps)"):
        table.add_column(col, justify="right")
    htst = {r["temperature_K"]: r for r in doc.get("htst", {}).get("comparison", [])}
    for r in doc["rates"]:
        T = r["temperature"]["value"]
        k = r["total_hop_rate"]
        h = htst.get(T)
        table.add_row(f"{T:.1f}", str(r["hops"]), f"{r['simulated_time']['value']:.1f}", f"{k['value']:.3g}",
                      f"[{k['ci95'][0]:.2g}, {k['ci95'][1]:.2g}]",
                      f"{h['htst_total_rate']['value']:.3g}" if h else "-")
    console.print(table)
    a = doc.get("arrhenius", {})
    if "E_m" in a:
        lo, hi = a["E_m"].get("ci95", [float("nan")] * 2)
        console.print(f"Arrhenius fit: E_m = {a['E_m']['value'] * 1000:.2f} ± {a['E_m']['stderr'] * 1000:.2f} meV "
                      f"(bootstrap 95% CI [{lo * 1000:.2f}, {hi * 1000:.2f}] meV), nu0 = {a['nu0']['value']:.3g} 1/ps")
    h = doc.get("htst", {})
    if h.get("status") == "ok":
        console.print(f"string method: E_m = {h['E_m']['value'] * 1000:.2f} meV, "
                      f"HTST prefactor {h['prefactor']['value']:.3g} THz")
    elif h:
        em = f"string method: E_m = {h['E_m']['value'] * 1000:.2f} meV; " if "E_m" in h else ""
        console.print(f"[yellow]{em}HTST {h.get('status', 'failed')}: {h.get('reason', '')}[/yellow]")
    for m in doc.get("messages", []):
        console.print(f"[yellow]{m}[/yellow]")
