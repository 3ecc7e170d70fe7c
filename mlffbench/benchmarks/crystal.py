"""0 K crystal benchmarks on the foundation's minimisers: lattice constant, cohesive energy,
vacancy formation energy.

All three need an energy (a force-only model gives 'not run'). Each potential is evaluated at
its OWN 0 K lattice constant (a model with a wrong lattice constant is not also penalised for
strain in the vacancy energy); the lattice constant is computed once per potential per run and
shared through `ctx.memo`.
"""

from __future__ import annotations

import time

import numpy as np
from pydantic import Field

from mlffbench.benchmarks import Metric, BenchContext, BenchmarkFailed, BenchSettings, Benchmark, register
from mlffbench.io import value


class LatticeSettings(BenchSettings):
    """n_cells: FCC supercell (n x n x n conventional cells) used for E(a); multi-image
    neighbour lists make n = 2, 3 valid with rc = 2.5 sigma."""

    n_cells: int = Field(3, ge=1, le=10)


class VacancySettings(BenchSettings):
    """n_cells: supercell sizes (one vacancy each); fmax: force tolerance of the relaxation
    (epsilon/sigma); fmax_float32: the same for a potential computing in float32 (its forces carry
    ~1e-6 relative noise); lattice_n_cells: supercell for the lattice constant; at_reference_a0:
    also evaluate the model at LJ's a0 (largest cell), which separates the model's defect energetics
    from its lattice-constant error."""

    n_cells: list[int] = Field(default_factory=lambda: [3])
    at_reference_a0: bool = True
    fmax: float = Field(1e-8, gt=0)
    fmax_float32: float = Field(1e-2, gt=0)
    lattice_n_cells: int = Field(3, ge=1, le=10)


def lattice(potential, ctx: BenchContext, n_cells: int) -> tuple[float, float, float]:
    """(a0 sigma, E/atom epsilon, seconds) for `potential` (the one policy, memoised by fingerprint)."""
    from mlffbench.dynamics.lattice import equilibrium_fcc

    t0 = time.perf_counter()
    a0, e0 = equilibrium_fcc(potential, n_cells)
    return a0, e0, time.perf_counter() - t0


def energy_curve(potential, ctx: BenchContext, n_cells: int, a0: float, points: int = 21) -> dict:
    """E/N of the perfect crystal for a in [0.96, 1.06] a0 (metal units), for the plot."""
    from mlffbench.dynamics.minimize import fcc_energy_per_atom

    key = ("energy_curve", n_cells)
    if key not in ctx.memo:
        e_of_a = fcc_energy_per_atom(potential, n_cells)
        a = np.linspace(0.96, 1.06, points) * a0
        ctx.memo[key] = {"a": (a * ctx.units.scale("length")).tolist(),
                         "energy_per_atom": [e_of_a(x) * ctx.units.scale("energy") for x in a],
                         "unit": "Å, eV/atom"}
    return ctx.memo[key]


def run_lattice_constant(potential, ctx: BenchContext) -> dict:
    """0 K FCC a0 (Å, sigma beside) and the E(a) curve of one potential."""
    a0, e0, secs = lattice(potential, ctx, ctx.settings.n_cells)
    L = ctx.units.scale("length")
    return {"lattice_constant": value(a0 * L, "Å", reduced=a0, reduced_unit="sigma"),
            "n_cells": ctx.settings.n_cells, "seconds": secs,
            "energy_curve": energy_curve(potential, ctx, ctx.settings.n_cells, a0)}


def compare_lattice_constant(model: dict, ref: dict) -> dict:
    """Relative and absolute a0 error of the model against LJ."""
    m, r = model["lattice_constant"]["value"], ref["lattice_constant"]["value"]
    return {"lattice_constant_rel_error": value(abs(m - r) / abs(r), "1", signed=(m - r) / r),
            "lattice_constant_error": value(m - r, "Å")}


def run_cohesive_energy(potential, ctx: BenchContext) -> dict:
    """Cohesive energy -E/N (eV/atom) at the potential's own a0."""
    a0, e0, secs = lattice(potential, ctx, ctx.settings.n_cells)
    E = ctx.units.scale("energy")
    return {"cohesive_energy": value(-e0 * E, "eV/atom", reduced=-e0, reduced_unit="epsilon/atom"),
            "lattice_constant": value(a0 * ctx.units.scale("length"), "Å", reduced=a0, reduced_unit="sigma"),
            "n_cells": ctx.settings.n_cells, "seconds": secs,
            "energy_curve": energy_curve(potential, ctx, ctx.settings.n_cells, a0)}


def compare_cohesive_energy(model: dict, ref: dict) -> dict:
    """Relative and absolute (meV/atom) cohesive-energy error."""
    m, r = model["cohesive_energy"]["value"], ref["cohesive_energy"]["value"]
    return {"cohesive_energy_rel_error": value(abs(m - r) / abs(r), "1", signed=(m - r) / r),
            "cohesive_energy_error": value((m - r) * 1000.0, "meV/atom")}


def vacancy_formation_energy(potential, a0: float, e0: float, n_cells: int, fmax: float) -> dict:
    """Relaxed and unrelaxed vacancy formation energies (epsilon) in an n^3 FCC supercell at a0.

    E_f = E(N-1 atoms, relaxed) - (N-1) * E_perfect/N, the perfect crystal's energy per atom e0
    taken at the same lattice constant (constant volume, one vacancy per supercell).
    """
    import jax.numpy as jnp

    from mlffbench.dynamics.minimize import relax_positions
    from mlffbench.structures import fcc, remove_atom

    crystal = fcc(n_cells, a0)
    vac = remove_atom(crystal, 0)
    n = crystal.n_atoms
    box = jnp.asarray(vac.box)
    spec = potential.neighbors(box, skin=0.5, n_atoms=vac.n_atoms)
    e_unrelaxed = float(potential.energy(jnp.asarray(vac.positions), box, spec.allocate(jnp.asarray(vac.positions))))
    t0 = time.perf_counter()
    rel = relax_positions(potential, vac.positions, vac.box, fmax=fmax)
    disp = np.linalg.norm(rel.positions - vac.positions, axis=1)
    return {"n_cells": n_cells, "n_atoms": n - 1,
            "E_f_relaxed": rel.energy - (n - 1) * e0, "E_f_unrelaxed": e_unrelaxed - (n - 1) * e0,
            "max_force": rel.max_force, "converged": bool(rel.converged), "iterations": rel.iterations,
            "relax_fmax": rel.fmax, "relax_method": rel.method,
            "max_displacement": float(disp.max()), "seconds": time.perf_counter() - t0}


def formation_at_reference_a0(potential, ctx: BenchContext, s: VacancySettings, fmax: float) -> dict:
    """E_f of the model in the largest cell at the reference potential's a0 (eV)."""
    from mlffbench.dynamics.minimize import fcc_energy_per_atom

    a_ref = lattice(ctx.reference_potential, ctx, s.lattice_n_cells)[0]
    n = s.n_cells[-1]
    # E/N of the perfect crystal does not depend on the cell: the lattice search's own program
    e0 = fcc_energy_per_atom(potential, s.lattice_n_cells)(a_ref)
    r = vacancy_formation_energy(potential, a_ref, e0, n, fmax)
    E, L = ctx.units.scale("energy"), ctx.units.scale("length")
    return {"lattice_constant": value(a_ref * L, "Å", reduced=a_ref, reduced_unit="sigma"),
            "lattice_constant_source": "reference (LJ) 0 K a0", "n_cells": n,
            "formation_energy": value(r["E_f_relaxed"] * E, "eV", reduced=r["E_f_relaxed"], reduced_unit="epsilon"),
            "converged": r["converged"]}


def run_vacancy_formation(potential, ctx: BenchContext) -> dict:
    """Relaxed and unrelaxed vacancy formation energies per cell size at the own a0 (and, for the model, at LJ's a0)."""

    s: VacancySettings = ctx.settings
    fmax = s.fmax_float32 if potential.is_float32 else s.fmax
    a0, e0, _ = lattice(potential, ctx, s.lattice_n_cells)
    E, L, F = (ctx.units.scale(q) for q in ("energy", "length", "force"))
    cells = {}
    for n in s.n_cells:
        r = vacancy_formation_energy(potential, a0, e0, n, fmax)
        cells[f"n{n}"] = ({"n_cells": n, "n_atoms": r["n_atoms"],
                      "formation_energy": value(r["E_f_relaxed"] * E, "eV", reduced=r["E_f_relaxed"],
                                                reduced_unit="epsilon"),
                      "unrelaxed_formation_energy": value(r["E_f_unrelaxed"] * E, "eV",
                                                          reduced=r["E_f_unrelaxed"], reduced_unit="epsilon"),
                      "max_force": value(r["max_force"] * F, "eV/Å", reduced=r["max_force"]),
                      "converged": r["converged"], "iterations": r["iterations"],
                      # the threshold actually applied (a potential without autodiff relaxes to
                      # max(fmax, FD_RELAX_FMAX)) and the route that finished the relaxation
                      "relax_fmax": value(r["relax_fmax"] * F, "eV/Å", reduced=r["relax_fmax"]),
                      "relax_method": r["relax_method"],
                      "max_displacement": value(r["max_displacement"] * L, "Å"),
                      "seconds": r["seconds"]})
    raw = {"lattice_constant": value(a0 * L, "Å", reduced=a0, reduced_unit="sigma"), "cells": cells,
           "lattice_constant_source": "own 0 K a0",
           # the headline number: the largest cell
           "formation_energy": cells[f"n{s.n_cells[-1]}"]["formation_energy"]}
    if s.at_reference_a0 and ctx.role == "model" and ctx.reference_potential is not None:
        raw["at_reference_a0"] = formation_at_reference_a0(potential, ctx, s, fmax)
    bad = [c["n_cells"] for c in cells.values() if not c["converged"]]
    if bad:
        raise BenchmarkFailed(f"vacancy relaxation did not converge to fmax={fmax} "
                              f"(epsilon/sigma) for n_cells={bad}", raw)
    return raw


def compare_vacancy_formation(model: dict, ref: dict) -> dict:
    """E_f errors per cell (eV) and the relative error of the largest cell, at both lattice constants."""
    out = {}
    for tag, cm in model["cells"].items():
        m, r = cm["formation_energy"]["value"], ref["cells"][tag]["formation_energy"]["value"]
        out[f"formation_energy_error_{tag}"] = value(m - r, "eV")
    m, r = model["formation_energy"]["value"], ref["formation_energy"]["value"]
    out["formation_energy_rel_error"] = value(abs(m - r) / abs(r), "1", signed=(m - r) / r)
    at_ref = model.get("at_reference_a0")
    if at_ref and at_ref.get("converged"):
        m = at_ref["formation_energy"]["value"]
        out["formation_energy_rel_error_at_lj_a0"] = value(abs(m - r) / abs(r), "1", signed=(m - r) / r)
    return out


def plot_energy_curve(model: dict, ref: dict, outdir, units) -> list:
    """E/N against a for model and LJ, each a0 marked."""
    from mlffbench.plotting import pyplot, save

    fig, ax = pyplot().subplots(figsize=(4.5, 3.2))
    for raw, label, st in ((ref, "LJ", "-"), (model, "model", "--")):
        if raw and "energy_curve" in raw:
            c = raw["energy_curve"]
            ax.plot(c["a"], [e * 1000 for e in c["energy_per_atom"]], st, label=label)
            ax.axvline(raw["lattice_constant"]["value"], ls=st, lw=0.6, color="grey")
    ax.set_xlabel("lattice constant (Å)")
    ax.set_ylabel("E/N (meV/atom)")
    ax.legend()
    save(fig, outdir / "energy_vs_a.png")
    return ["energy_vs_a.png"]


def plot_vacancy(model: dict, ref: dict, outdir, units) -> list:
    """Vacancy formation energy against supercell size, model and LJ."""
    from mlffbench.plotting import pyplot, save

    fig, ax = pyplot().subplots(figsize=(4.5, 3.2))
    for raw, label, mk in ((ref, "LJ", "o"), (model, "model", "s")):
        if not raw or "cells" not in raw:
            continue
        cells = sorted(raw["cells"].values(), key=lambda c: c["n_atoms"])
        n = [c["n_atoms"] + 1 for c in cells]
        ax.plot(n, [c["formation_energy"]["value"] for c in cells], mk + "-", label=label)
    ax.set_xlabel("atoms in perfect supercell")
    ax.set_ylabel("vacancy formation energy (eV)")
    ax.legend()
    save(fig, outdir / "vacancy_formation.png")
    return ["vacancy_formation.png"]


register(Benchmark("lattice_constant", "0 K FCC lattice constant", run_lattice_constant,
                   compare_lattice_constant, LatticeSettings, needs_energy=True, plot=plot_energy_curve,
                   reference_values={"lattice_constant": {"rel": 1e-8}},
                   description="a0 minimising E/N of the perfect FCC crystal (Brent + Newton).",
                   metrics={"lattice_constant_error": Metric("Å"),
                            "lattice_constant_rel_error": Metric("1", 0.001, 0.02,
                                      '0.1% is the spread of good DFT-trained MLFFs on a0; 2% strains the crystal enough to shift phonons by ~10%')}, order=40))
register(Benchmark("cohesive_energy", "cohesive energy", run_cohesive_energy, compare_cohesive_energy,
                   LatticeSettings, needs_energy=True, reference_values={"cohesive_energy": {"rel": 1e-9}},
                   plot=plot_energy_curve,
                   description="-E/N of the perfect crystal at its own a0.",
                   metrics={"cohesive_energy_rel_error": Metric("1"),
                            "cohesive_energy_error": Metric("meV/atom", 1.0, 20.0,
                                      "1 meV/atom is typical MLFF energy accuracy; 20 meV/atom is ~25% of argon's 80 meV/atom cohesion")}, order=50))
register(Benchmark("vacancy_formation", "vacancy formation energy", run_vacancy_formation,
                   compare_vacancy_formation, VacancySettings, needs_energy=True, plot=plot_vacancy,
                   reference_values={"cells.*.formation_energy": {"abs": 1e-8},
                                     "cells.*.unrelaxed_formation_energy": {"abs": 1e-8}},
                   description="relaxed single-vacancy formation energy at constant volume, per cell size.",
                   metrics={"formation_energy_rel_error": Metric("1", 0.02, 0.3,
                                      '2% of E_f changes equilibrium vacancy concentration at 80 K by <10%; 30% changes it by orders of magnitude'),
                            "formation_energy_rel_error_at_lj_a0": Metric("1", 0.02, 0.3,
                                      "the same at LJ's lattice constant: the model's defect energetics without its a0 error")}, order=60))
