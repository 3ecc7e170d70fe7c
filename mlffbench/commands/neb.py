"""`mlffbench neb`: vacancy migration barrier (string method + climbing image) and HTST rates."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlffbench.progress import console, progress_bar


def register(app: typer.Typer) -> None:
    @app.command("neb")
    def neb(
        config: Path = typer.Option(..., "-c", "--config", help="YAML config (see configs/neb-quick.yaml)."),
        outdir: Path = typer.Option(..., "-o", "--outdir", help="Output directory (must not exist)."),
        model: str | None = typer.Option(None, "--model", help="lj | lj/cut | lj/cut/shift | lj/smooth | "
                                         "a trained-model directory. Default: the config's potential."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTDIR."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Vacancy migration barrier by the string method with a climbing image, and harmonic TST.

        Writes OUTDIR/result.json (barriers in eV and epsilon, saddle, path, convergence, HTST),
        mep.png, images.extxyz (readable by `ase nebplot`), saddle.extxyz and manifest.json.
        A path that does not converge is written with status 'failed' and exits with code 1.
        """
        from mlffbench.config import load_config
        from mlffbench.errors import SimulationError
        from mlffbench.io import atomic_outdir, check_outdir
        from mlffbench.potentials import load_potential
        from mlffbench.workflows.neb import NebConfig, run_neb

        cfg = load_config(NebConfig, config)
        check_outdir(outdir, overwrite)
        spec = model or cfg.potential.name
        from mlffbench.potentials import reference_potential
        potential = (reference_potential(cfg.potential) if model is None
                     else load_potential(model, cutoff=cfg.potential.cutoff_sigma))
        factory = None if quiet else (lambda desc, total: progress_bar(desc, total, "iterations"))
        with atomic_outdir(outdir, overwrite) as tmp:
            doc = run_neb(potential, cfg, tmp, progress_factory=factory, model_spec=spec)
        print_summary(doc, outdir)
        if doc["status"] != "converged":
            raise SimulationError(f"string method failed: {doc['message']} (see {outdir}/result.json)")


def print_summary(doc: dict, outdir: Path) -> None:
    table = Table(title=f"vacancy migration ({doc['potential']['name']}) -> {outdir}", header_style="bold")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    b = doc["barrier"]
    conv = doc["convergence"]
    rows = [("status", doc["status"]), ("atoms", str(doc["system"]["n_atoms"])),
            ("iterations", str(conv["iterations"])),
            ("string wall time", f"{conv['wall_seconds']:.2f} s (compile {conv['compile_seconds']:.2f} s)")]
    if doc["status"] == "converged":
        rows += [("barrier forward", f"{b['forward']['value'] * 1000:.3f} meV ({b['forward']['reduced_epsilon']:.6f} ε)"),
                 ("barrier backward", f"{b['backward']['value'] * 1000:.3f} meV"), ("method", b["method"])]
    if "htst" in doc:
        h = doc["htst"]
        rows.append(("HTST prefactor ν*", f"{h['prefactor']['value']:.4g} THz" if h["status"] == "ok"
                     else f"not applicable: {h['reason']}"))
    for r in rows:
        table.add_row(*r)
    console.print(table)
