"""`mlffbench neb`: vacancy migration barrier by the string method, and harmonic-TST rates.

Pipeline (any `Potential`: the LJ oracle or a learned model, the same code path):
1. n x n x n FCC at the potential's own 0 K lattice constant, one atom removed (site 0); the
   final state moves a nearest neighbour into the vacancy. Both are relaxed at fixed box.
2. Simplified string method (all images in one jitted, vmapped step), then a climbing image
   converged to `tol` in the true force (`mlffbench.properties.string_method`).
3. Optional Newton polish of the saddle with the exact Hessian (quadratic convergence), and a
   check that it has exactly one unstable mode.
4. Harmonic TST (Vineyard) from exact Hessians at the minimum and the saddle; k(T) and the
   total vacancy hop rate 12 k(T).

Force-only models have no energy: end states are relaxed by FIRE on the forces, the string runs
without a climbing image, and the barrier is the line integral of the force along the converged
path (stated as such in the result). Potentials without autodiff get finite-difference Hessians
(`mlffbench.properties.hessian`); the result says which.

This module is the pipeline only: the physics lives in `properties.string_method` (string, saddle
polish), `properties.rates` (harmonic TST), `properties.hessian` and `dynamics.minimize`
(relaxations); figures go through `mlffbench.plotting`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from mlffbench.config import PotentialConfig, StrictModel, UnitsConfig, lj_defaults
from mlffbench.dynamics.minimize import reachable_fmax, relax
from mlffbench.errors import SimulationError
from mlffbench.io import manifest, value, write_json
from mlffbench.potentials.base import Potential
from mlffbench.properties.rates import harmonic_tst
from mlffbench.properties.string_method import (StringResult, StringSettings, integrate_path_energy,
                                                polish_saddle, vacancy_string)
from mlffbench.structures import Structure, fcc, nearest_neighbor_of_site, remove_atom
from mlffbench.units import UnitSystem, convert_input

N_HOP_DIRECTIONS = 12  # nearest neighbours of a vacancy in FCC


class SystemConfig(StrictModel):
    """supercell: n for n x n x n conventional FCC cells minus one atom (4 n^3 - 1 atoms);
    lattice_constant: Å (metal) or sigma (lj); null = the potential's own 0 K value."""

    supercell: int = Field(4, ge=2, le=12)
    lattice_constant: float | None = Field(None, gt=0)


class StringConfig(StrictModel):
    """String method settings. Forces in eV/Å (metal) or epsilon/sigma (lj); lengths Å or sigma.

    tol: convergence on the largest per-atom perpendicular force (and the true force on the
    climbing image). relax_fmax: end-state relaxation threshold. dt/dt_max: FIRE time steps in
    reduced time units (tau) for unit mass.
    """

    n_images: int = Field(9, ge=3, le=64)
    tol: float = Field(1e-4, gt=0)
    climb: bool = True
    climb_start_tol: float | None = Field(None, gt=0)
    optimizer: Literal["fire", "steepest"] = "fire"
    dt: float = Field(0.1, gt=0)
    dt_max: float = Field(0.3, gt=0)
    max_step: float = Field(0.05, gt=0)
    max_iter: int = Field(20000, ge=1)
    chunk: int = Field(50, ge=1)
    skin_sigma: float = Field(0.5, gt=0)
    relax_fmax: float = Field(1e-8, gt=0)
    saddle_polish: bool = True


class HTSTConfig(StrictModel):
    """Harmonic TST: temperatures (K in metal, kT in lj) at which k(T) is tabulated.

    hessian_step: central finite-difference step (Å in metal, sigma in lj) for potentials
    without autodiff; null = eps^(1/3) sigma of the potential's float type (6e-6 sigma in
    float64, 5e-3 sigma in float32). Autodiff potentials ignore it.
    """

    enabled: bool = True
    temperatures: list[float] = [40.0, 50.0, 60.0, 70.0]
    hessian_step: float | None = Field(None, gt=0)


class NebConfig(StrictModel):
    units: UnitsConfig = UnitsConfig()
    potential: PotentialConfig = PotentialConfig()
    system: SystemConfig = SystemConfig()
    string: StringConfig = StringConfig()
    htst: HTSTConfig = HTSTConfig()

    @model_validator(mode="before")
    @classmethod
    def _lj_defaults(cls, data):
        return lj_defaults(data, "htst", HTSTConfig, {"temperatures": "temperature"})


# ----------------------------------------------------------------------------------------------
# Building blocks (used by `mlffbench vacancy` too)
# ----------------------------------------------------------------------------------------------
def nearest_images(R_from: np.ndarray, R_to: np.ndarray, box: np.ndarray) -> np.ndarray:
    """`R_to` with each atom moved to its periodic image nearest to the same atom in `R_from`.

    Relaxations may wrap an atom across the cell; the straight-line start of a path between two
    end states must join each atom to its nearest image, or it drags that atom through the crystal
    (seen with lj/smooth in the 2x2x2 cell: 1e9 epsilon/sigma forces on the first images).
    """
    frac = (np.asarray(R_to) - np.asarray(R_from)) @ np.linalg.inv(box).T
    return np.asarray(R_from) + (frac - np.round(frac)) @ np.asarray(box).T


def lattice_constant(potential: Potential, given: float | None, system: str, units: UnitSystem) -> float:
    """Reduced lattice constant: the config value, or the potential's own 0 K value (dynamics.lattice)."""
    from mlffbench.dynamics.lattice import lattice_constant as policy

    return policy(potential, None if given is None else convert_input(given, "length", system, units))


def vacancy_structure(n: int, a: float) -> tuple[Structure, int, int]:
    """(vacancy crystal with site 0 empty, hopping atom index, vacant site index)."""
    perfect = fcc(n, a)
    vac = remove_atom(perfect, 0)
    return vac, nearest_neighbor_of_site(vac, 0), 0


# ----------------------------------------------------------------------------------------------
# The workflow
# ----------------------------------------------------------------------------------------------
def compute_barrier(potential: Potential, cfg: NebConfig, progress_factory=None) -> dict:
    """Everything `mlffbench neb` computes, in reduced units plus metal conversions (a dict with
    arrays; `run_neb` writes it)."""
    units = cfg.units.unit_system()
    sysname = cfg.units.system
    sc = cfg.string
    tol = convert_input(sc.tol, "force", sysname, units)
    fmax = reachable_fmax(potential, convert_input(sc.relax_fmax, "force", sysname, units))
    climb_tol = None if sc.climb_start_tol is None else convert_input(sc.climb_start_tol, "force", sysname, units)
    max_step = convert_input(sc.max_step, "length", sysname, units)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    a = lattice_constant(potential, cfg.system.lattice_constant, sysname, units)
    vac, hopper, site = vacancy_structure(cfg.system.supercell, a)
    box = vac.box
    R_fin0 = vac.positions.copy()
    R_fin0[hopper] = vac.sites[site]
    Ri, Ei, fi, ok_i = relax(potential, vac.positions, box, fmax, sc.skin_sigma)
    Rf, Ef, ff, ok_f = relax(potential, R_fin0, box, fmax, sc.skin_sigma)
    timings["relax_s"] = time.perf_counter() - t0
    Rf = nearest_images(Ri, Rf, box)
    if not (ok_i and ok_f):
        raise SimulationError(f"end-state relaxation did not reach relax_fmax (max force {max(fi, ff):.3g} "
                              "epsilon/sigma)")

    settings = StringSettings(tol=tol, climb=sc.climb, climb_start_tol=climb_tol, optimizer=sc.optimizer,
                              dt=sc.dt, dt_max=sc.dt_max, max_step=max_step, max_iter=sc.max_iter,
                              chunk=sc.chunk)
    t0 = time.perf_counter()
    if progress_factory is not None:
        with progress_factory("string method", sc.max_iter) as update:
            res = vacancy_string(potential, Ri, Rf, box, settings, sc.n_images, sc.skin_sigma, (Ei, Ef), update)
    else:
        res = vacancy_string(potential, Ri, Rf, box, settings, sc.n_images, sc.skin_sigma, (Ei, Ef))
    timings["string_s"] = time.perf_counter() - t0

    out: dict = {"lattice_constant": a, "n_atoms": vac.n_atoms, "box": box, "hopping_atom": hopper,
                 "vacant_site": site, "R_initial": Ri, "R_final": Rf, "E_initial": Ei, "E_final": Ef,
                 "string": res, "tol": tol, "relax_fmax": fmax, "timings": timings,
                 "conservative": potential.capabilities.energy}
    if potential.capabilities.energy:
        energies = res.energies - Ei
        method = "energy at the climbing image" if sc.climb else "highest image energy (no climbing image)"
    else:
        energies = integrate_path_energy(res.images, res.forces)
        method = "line integral of the predicted force along the converged path (force-only model)"
    out["path_energies"] = energies
    out["barrier_method"] = method
    c = res.climbing if res.climbing > 0 else int(np.argmax(energies[1:-1]) + 1)
    out["saddle_index"] = c
    R_saddle = res.images[c]
    E_saddle_rel = float(energies[c])
    out["barrier_forward"] = E_saddle_rel
    out["barrier_backward"] = float(E_saddle_rel - energies[-1])
    out["polish"] = None
    h_step = (None if cfg.htst.hessian_step is None
              else convert_input(cfg.htst.hessian_step, "length", sysname, units))
    if res.converged and sc.saddle_polish and potential.capabilities.energy and sc.climb:
        t0 = time.perf_counter()
        p = polish_saddle(potential, R_saddle, box, tol, skin=sc.skin_sigma, hessian_step=h_step)
        timings["polish_s"] = time.perf_counter() - t0
        Ep = p.energy
        out["polish"] = {"iterations": p.iterations, "max_force": p.max_force,
                         "n_unstable_modes": p.n_unstable_modes, "hessian": p.hessian_method,
                         "barrier_forward": Ep - Ei, "barrier_backward": Ep - Ef,
                         "shift_from_climbing_image": float(np.max(np.linalg.norm(p.positions - R_saddle, axis=1)))}
        if p.n_unstable_modes == 1 and p.max_force < tol:
            R_saddle = p.positions
            out["barrier_forward"], out["barrier_backward"] = Ep - Ei, Ep - Ef
            out["barrier_method"] = f"climbing image, then Newton polish of the saddle ({p.hessian_method} Hessian)"
    out["R_saddle"] = R_saddle

    if cfg.htst.enabled and res.converged:
        t0 = time.perf_counter()
        h, H_min, H_sad = harmonic_tst(potential, Ri, R_saddle, box, skin=sc.skin_sigma, step=h_step)
        out["htst_hessian"] = {"method": H_min.method, "description": H_min.describe(),
                               "step_sigma": H_min.step,
                               "asymmetry_minimum": H_min.asymmetry, "asymmetry_saddle": H_sad.asymmetry}
        timings["htst_s"] = time.perf_counter() - t0
        kT = np.array([convert_input(T, "temperature", sysname, units) for T in cfg.htst.temperatures])
        out["htst"] = h
        out["htst_kT"] = kT
        out["htst_rate"] = h.rate(out["barrier_forward"], kT)
    return out


def result_json(potential: Potential, cfg: NebConfig, out: dict) -> dict:
    """The JSON document for result.json (values with units, reduced and metal)."""
    units = cfg.units.unit_system()
    E, L, T, F = (units.scale(q) for q in ("energy", "length", "temperature", "force"))
    freq = units.scale("frequency")
    res: StringResult = out["string"]
    ok = res.converged
    doc = {
        "potential": potential.describe(),
        "units": units.as_dict(),
        "status": "converged" if ok else "failed",
        "message": res.message,
        "system": {"supercell": cfg.system.supercell, "n_atoms": out["n_atoms"],
                   "lattice_constant": value(out["lattice_constant"] * L, "Å", reduced=out["lattice_constant"]),
                   "hopping_atom": out["hopping_atom"], "vacant_site": out["vacant_site"]},
        "end_states": {"energy_initial": value(out["E_initial"] * E, "eV", reduced=out["E_initial"]),
                       "energy_final": value(out["E_final"] * E, "eV", reduced=out["E_final"])},
    }
    fwd, bwd = out["barrier_forward"], out["barrier_backward"]
    doc["barrier"] = {
        "method": out["barrier_method"],
        "forward": value(fwd * E if ok else None, "eV", reduced_epsilon=fwd if ok else None),
        "backward": value(bwd * E if ok else None, "eV", reduced_epsilon=bwd if ok else None),
        "polish": out["polish"],
    }
    doc["path"] = {"n_images": len(res.images), "arc_length": res.arc,
                   "energy": value(np.asarray(out["path_energies"]) * E, "eV",
                                   reduced_epsilon=np.asarray(out["path_energies"])),
                   "climbing_image": res.climbing, "saddle_index": out["saddle_index"]}
    doc["saddle"] = {"positions": value(out["R_saddle"] * L, "Å"),
                     "hopping_atom_position": value(out["R_saddle"][out["hopping_atom"]] * L, "Å")}
    stride = max(1, len(res.history) // 400)
    doc["convergence"] = {
        "converged": ok, "iterations": res.iterations, "tolerance": value(out["tol"] * F, "eV/Å", reduced=out["tol"]),
        "end_state_relax_fmax": value(out["relax_fmax"] * F, "eV/Å", reduced=out["relax_fmax"]),
        "max_perpendicular_force": value(res.max_perp_force * F, "eV/Å", reduced=res.max_perp_force),
        "climbing_image_force": value(res.climb_force * F, "eV/Å", reduced=res.climb_force),
        "wall_seconds": res.wall_seconds, "compile_seconds": res.compile_seconds,
        "history": {"iteration": [h[0] for h in res.history[::stride]],
                    "max_perpendicular_force_reduced": [h[1] for h in res.history[::stride]],
                    "climbing_force_reduced": [h[2] for h in res.history[::stride]]},
    }
    if "htst" in out:
        h = out["htst"]
        k = out["htst_rate"]
        why = h.why_not_applicable
        doc["htst"] = {
            "method": f"Vineyard harmonic TST, {out['htst_hessian']['description']}, 3 translations removed",
            "hessian": out["htst_hessian"],
            "status": "not applicable" if why else "ok", "reason": why,
            "prefactor": value(h.prefactor * freq, "THz", reduced_per_tau=h.prefactor),
            "unstable_modes_at_saddle": h.n_negative_saddle, "unstable_modes_at_minimum": h.n_negative_min,
            "imaginary_frequency": value(h.imaginary_frequency * freq, "THz", reduced_per_tau=h.imaginary_frequency),
            "temperatures": value(out["htst_kT"] * T, "K", reduced_kT=out["htst_kT"]),
            "single_hop_rate": value(k * freq, "1/ps", reduced_per_tau=k),
            "total_vacancy_hop_rate": value(N_HOP_DIRECTIONS * k * freq, "1/ps",
                                            reduced_per_tau=N_HOP_DIRECTIONS * k),
        }
    doc["timings_s"] = out["timings"]
    return doc


def write_images(path: Path, out: dict, units: UnitSystem) -> None:
    """Path images as extxyz with energies and forces (metal units), readable by `ase nebplot`."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    res: StringResult = out["string"]
    L, E, F = units.scale("length"), units.scale("energy"), units.scale("force")
    frames = []
    for k, X in enumerate(res.images):
        atoms = Atoms(f"Ar{len(X)}", positions=X * L, cell=np.asarray(out["box"]).T * L, pbc=True)
        e = out["path_energies"][k] + (out["E_initial"] if out["conservative"] else 0.0)
        atoms.calc = SinglePointCalculator(atoms, energy=float(e * E), forces=res.forces[k] * F)
        frames.append(atoms)
    write(str(path), frames, format="extxyz")


def plot_mep(path: Path, out: dict, units: UnitSystem, title: str) -> None:
    """Energy along the converged path (meV vs normalised arc length), the saddle starred."""
    from mlffbench.plotting import MODEL_COLOR, PALETTE, pyplot, save

    res: StringResult = out["string"]
    E = units.scale("energy")
    fig, ax = pyplot().subplots(figsize=(5, 3.6))
    ax.plot(res.arc, np.asarray(out["path_energies"]) * E * 1000, "o-", color=MODEL_COLOR)
    c = out["saddle_index"]
    ax.plot([res.arc[c]], [out["barrier_forward"] * E * 1000], "*", color=PALETTE[3], ms=12,
            label=f"saddle: {out['barrier_forward'] * E * 1000:.2f} meV")
    ax.set_xlabel("normalised arc length")
    ax.set_ylabel("E - E_initial (meV)")
    ax.set_title(title + ("" if res.converged else " (NOT converged)"))
    ax.legend()
    save(fig, path)


def run_neb(potential: Potential, cfg: NebConfig, outdir: Path, progress_factory=None,
            model_spec: str = "lj") -> dict:
    """Compute and write result.json, mep.png, images.extxyz, saddle.extxyz, manifest.json."""
    t0 = time.perf_counter()
    out = compute_barrier(potential, cfg, progress_factory)
    units = cfg.units.unit_system()
    doc = result_json(potential, cfg, out)
    write_json(outdir / "result.json", doc)
    write_images(outdir / "images.extxyz", out, units)
    from ase import Atoms
    from ase.io import write

    L = units.scale("length")
    write(str(outdir / "saddle.extxyz"), Atoms(f"Ar{out['n_atoms']}", positions=out["R_saddle"] * L,
                                               cell=np.asarray(out["box"]).T * L, pbc=True), format="extxyz")
    plot_mep(outdir / "mep.png", out, units, f"vacancy migration, {potential.name}")
    out["timings"]["total_s"] = time.perf_counter() - t0
    write_json(outdir / "manifest.json", manifest("neb", cfg, None, potential.precision,
                                                  out["timings"], model=model_spec))
    # in memory only (result.json is written above): the converged images, sigma, for callers that
    # evaluate other potentials along the same path (the calibration benchmark)
    doc["_path_reduced"] = {"positions": np.asarray(out["string"].images, dtype=float),
                            "box": np.asarray(out["box"], dtype=float)}
    return doc
