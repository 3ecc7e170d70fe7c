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
                                         "a trained-model directory | a model spec .yaml. Default: the config's "
                                         "potential."),
        compare: str | None = typer.Option(None, "--compare", help="Also run the same workflow on this potential "
                                           "(e.g. lj) into OUTDIR/reference and write comparison.json with the "
                                           "battery's migration_barrier and htst_rate metrics."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTDIR."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Vacancy migration barrier by the string method with a climbing image, and harmonic TST.

        Writes OUTDIR/result.json (barriers in eV and epsilon, saddle, path, convergence, HTST),
        mep.png, images.extxyz (readable by `ase nebplot`), saddle.extxyz and manifest.json.
        A path that does not converge is written with status 'failed' and exits with code 1.
        """
        from mlffbench.benchmarks.neb import htst_raw, migration_barrier_raw
        from mlffbench.config import load_config
        from mlffbench.errors import SimulationError
        from mlffbench.io import atomic_outdir, check_outdir, write_json
        from mlffbench.potentials import load_potential
        from mlffbench.workflows.neb import NebConfig, run_neb

        cfg = load_config(NebConfig, config)
        check_outdir(outdir, overwrite)
        spec = model or cfg.potential.name
        potential = load_potential(spec, cutoff=cfg.potential.cutoff_sigma, r_onset=cfg.potential.r_onset_sigma)
        reference = (load_potential(compare, cutoff=cfg.potential.cutoff_sigma, r_onset=cfg.potential.r_onset_sigma)
                     if compare else None)
        factory = None if quiet else (lambda desc, total: progress_bar(desc, total, "iterations"))
        with atomic_outdir(outdir, overwrite) as tmp:
            doc = run_neb(potential, cfg, tmp, progress_factory=factory, model_spec=spec)
            if reference is not None:
                (tmp / "reference").mkdir()
                ref_doc = run_neb(reference, cfg, tmp / "reference", progress_factory=factory, model_spec=compare)
                write_json(tmp / "comparison.json", compare_docs(
                    doc, ref_doc, compare, {"migration_barrier": migration_barrier_raw, "htst_rate": htst_raw}))
        print_summary(doc, outdir)
        if doc["status"] != "converged":
            raise SimulationError(f"string method failed: {doc['message']} (see {outdir}/result.json)")


def compare_docs(doc: dict, ref_doc: dict, reference: str, raws: dict) -> dict:
    """{benchmark: metrics | {"status", "reason"}} from two workflow documents: each benchmark's
    raw numbers (`raws[name](doc)`) compared by the battery's own `compare`."""
    from mlffbench.benchmarks import BenchmarkFailed, BenchmarkNotRun, battery

    benches = battery()
    out: dict = {"reference": reference, "reference_potential": ref_doc["potential"]}
    for name, raw in raws.items():
        try:
            out[name] = benches[name].compare(raw(doc), raw(ref_doc))
        except (BenchmarkFailed, BenchmarkNotRun) as exc:
            out[name] = {"status": "failed" if isinstance(exc, BenchmarkFailed) else "not run",
                         "reason": exc.reason}
    return out


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
