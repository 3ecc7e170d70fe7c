"""`mlffbench generate`: LJ argon training data following the paper's protocol."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlffbench.progress import console, progress_bar


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        config: Path = typer.Option(..., "-c", "--config", help="YAML config (see configs/generate-quick.yaml)."),
        outdir: Path = typer.Option(..., "-o", "--outdir", help="Output directory (must not exist)."),
        seed: int | None = typer.Option(None, "--seed", help="Override the config's seed."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTDIR."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Generate LJ argon MD frames: NPT -> NVT -> zero-pressure ramp through melting -> liquid hold.

        Writes OUTDIR/dataset.extxyz (ASE-readable, metal units), OUTDIR/dataset.npz (reduced
        units, for training), thermo.log, generate.png and manifest.json. Atomic: an interrupted
        run leaves nothing behind.
        """
        from mlffbench.config import load_config
        from mlffbench.io import atomic_outdir, check_outdir
        from mlffbench.workflows.generate import GenerateConfig, run_generate

        cfg = load_config(GenerateConfig, config, {"seed": seed})
        check_outdir(outdir, overwrite)
        factory = None if quiet else (lambda desc, total: progress_bar(desc, total, "steps"))
        with atomic_outdir(outdir, overwrite) as tmp:
            summary = run_generate(cfg, tmp, progress_factory=factory)
        print_summary(summary, outdir)


def print_summary(summary: dict, outdir: Path) -> None:
    table = Table(title=f"dataset written to {outdir}", show_header=True, header_style="bold")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        ("frames", f"{summary['frames']}"),
        ("atoms per frame", f"{summary['atoms']}"),
        ("trajectories", f"{summary['trajectories']}"),
        ("potential", summary["potential"]),
        ("0 K lattice constant", f"{summary['lattice_constant_A']:.4f} Å"),
        ("temperature range", f"{summary['temperature_K'][0]:.1f} - {summary['temperature_K'][1]:.1f} K"),
        ("solid / liquid frames", f"{summary['solid_frames']} / {summary['liquid_frames']}"),
        ("density range", f"{summary['density_g_cm3'][0]:.3f} - {summary['density_g_cm3'][1]:.3f} g/cm³"),
        ("Epot per atom", f"{summary['energy_per_atom_eV'][0]:.5f} .. {summary['energy_per_atom_eV'][1]:.5f} eV"),
        ("force std", f"{summary['force_std_eV_per_A']:.4f} eV/Å"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
