"""`mlffbench pdos`: phonon DOS at 0 K and finite temperature, model vs the LJ oracle."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

DEFAULT_CONFIG = "configs/pdos-quick.yaml"


def register(app: typer.Typer) -> None:
    @app.command("pdos")
    def pdos(
        model: str = typer.Option("lj", "--model", "-m", help="'lj' (= lj/cut/shift), another LJ "
                                  "variant, or a trained-model directory."),
        config: Path = typer.Option(Path(DEFAULT_CONFIG), "--config", "-c", help="YAML config."),
        outdir: Path = typer.Option(Path("runs/pdos"), "--outdir", "-o", help="Output directory."),
        compare: Optional[str] = typer.Option(None, "--compare", help="'lj' to run the same workflow "
                                              "on the reference and compare; 'none' to skip. Default: "
                                              "lj for a learned model, none for LJ."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Overrides the config's seed (MD)."),
        zero_kelvin_only: bool = typer.Option(False, "--zero-kelvin-only", help="Skip the MD part."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTDIR."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ) -> None:
        """Phonon DOS (Hessian, q-mesh, dispersion; VACF and SED at finite T) of MODEL vs LJ.

        Writes result.json, total_dos.dat, band.yaml, pdos.png, dispersion.png, vdos.png,
        sed.png, manifest.json (and reference/ + comparison in result.json with --compare lj).
        """
        from mlffbench.config import load_config
        from mlffbench.io import atomic_outdir, check_outdir, manifest, write_json
        from mlffbench.errors import UserError
        from mlffbench.benchmarks.pdos import compare_finite_temperature, compare_zero_kelvin
        from mlffbench.potentials import LJ_ALIASES, load_potential, reference_potential
        from mlffbench.progress import console
        from mlffbench.workflows import pdos as wf

        overrides = {"seed": seed}
        if zero_kelvin_only:
            overrides["finite_temperature.enabled"] = False
        cfg = load_config(wf.PdosConfig, config, overrides)
        check_outdir(outdir, overwrite)
        if compare not in (None, "lj", "none"):
            raise UserError(f"--compare {compare!r}: choose 'lj' or 'none'")
        is_lj = model in LJ_ALIASES
        do_compare = (compare == "lj") or (compare is None and not is_lj)
        potential = reference_potential(cfg.potential) if model == "lj" else \
            load_potential(model, cutoff=cfg.potential.cutoff_sigma, r_onset=cfg.potential.r_onset_sigma)
        log = (lambda msg: None) if quiet or not cfg.progress else (lambda msg: console.print(f"[dim]{msg}[/dim]", highlight=False))
        t0 = time.perf_counter()
        ref = None
        lattice = None
        if do_compare:
            log("reference: LJ")
            ref = wf.run_one(reference_potential(cfg.potential), cfg, log=log)
            if not potential.conservative and cfg.zero_kelvin.lattice_constant is None:
                lattice = ref["zero_kelvin"]["a0"] if "zero_kelvin" in ref else None
                log("force-only model: using the LJ lattice constant")
        log(f"model: {potential.name}")
        res = wf.run_one(potential, cfg, lattice_constant=lattice, log=log)
        us = cfg.units.unit_system()
        result = {"command": "pdos", "model": model, "units": us.as_dict(), **wf.summarise(res)}
        if ref is not None:
            result["reference"] = wf.summarise(ref)
            result["comparison"] = {}
            if "zero_kelvin" in res and "zero_kelvin" in ref:
                result["comparison"]["zero_kelvin"] = compare_zero_kelvin(res["zero_kelvin"], ref["zero_kelvin"])
            if "finite_temperature" in res and "finite_temperature" in ref:
                result["comparison"]["finite_temperature"] = compare_finite_temperature(
                    res["finite_temperature"], ref["finite_temperature"])
        wall = time.perf_counter() - t0
        with atomic_outdir(outdir, overwrite) as tmp:
            wf.write_outputs(tmp, res, ref, us, potential.name)
            if ref is not None:
                (tmp / "reference").mkdir()
                wf.write_outputs(tmp / "reference", ref, None, us, "LJ")
            write_json(tmp / "result.json", result)
            write_json(tmp / "manifest.json", manifest("pdos", cfg, seed=cfg.seed, dtype=str(potential.describe()["dtype"]),
                                                       wall_times={"total": wall}, model=model))
        _print_summary(console, result)

    return pdos


def _print_summary(console, result: dict) -> None:
    from rich.table import Table

    table = Table(title="phonon DOS", show_lines=False)
    table.add_column("quantity")
    table.add_column("model")
    has_ref = "reference" in result
    if has_ref:
        table.add_column("LJ")
    zk = result.get("zero_kelvin")
    zr = result.get("reference", {}).get("zero_kelvin") if has_ref else None

    def row(name, get):
        vals = [get(zk)] + ([get(zr)] if has_ref and zr else [])
        table.add_row(name, *vals)

    if zk:
        row("a0 (Å)", lambda z: f"{z['lattice_constant']['value']:.5f}")
        row("ν_max (THz)", lambda z: f"{z['nu_max']['THz']:.4f}")
        row("mean ν (THz)", lambda z: f"{z['nu_mean']['THz']:.4f}")
        row("ν at X (THz)", lambda z: ", ".join(f"{x:.3f}" for x in z["nu_X"]["THz"]))
        row("ν at L (THz)", lambda z: ", ".join(f"{x:.3f}" for x in z["nu_L"]["THz"]))
        row("imaginary modes", lambda z: str(z["n_imaginary_modes"]))
        row("Hessian", lambda z: z.get("hessian", "autodiff"))
        row("Hessian asymmetry", lambda z: "n/a" if z["hessian_asymmetry"] is None else f"{z['hessian_asymmetry']:.2e}")
    console.print(table)
    ft = result.get("finite_temperature")
    if ft:
        t2 = Table(title="finite temperature (VACF)")
        for c in ("T (K)", "status", "Lindemann", "W1 to harmonic"):
            t2.add_column(c)
        for r in ft["runs"]:
            t2.add_row(f"{r['temperature']['value']:g}", r.get("status", "?"),
                       f"{r.get('lindemann_ratio', float('nan')):.3f}", f"{r.get('w1_to_harmonic', float('nan')):.4f}")
        console.print(t2)
    comp = result.get("comparison", {}).get("zero_kelvin")
    if comp:
        console.print(f"W1(DOS)/ν_max = {comp['w1_dos_over_ref_nu_max']:.4f}; "
                      f"rel. error ν_max = {comp['rel_error_nu_max']:+.2e}; "
                      f"<ν²> = {comp['rel_error_nu2_mean']:+.2e}")
