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
path (stated as such in the result).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field

from mlffbench.config import PotentialConfig, StrictModel, UnitsConfig
from mlffbench.dynamics.minimize import fcc_lattice_constant, relax_positions
from mlffbench.errors import SimulationError, UserError
from mlffbench.io import manifest, value, write_json
from mlffbench.potentials.base import Potential
from mlffbench.properties.rates import hessian, vineyard_prefactor
from mlffbench.properties.string_method import (StringResult, StringSettings, integrate_path_energy,
                                                linear_path, potential_batched_ef, string_method)
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
    """Harmonic TST: temperatures (K in metal, kT in lj) at which k(T) is tabulated."""

    enabled: bool = True
    temperatures: list[float] = [40.0, 50.0, 60.0, 70.0]


class NebConfig(StrictModel):
    units: UnitsConfig = UnitsConfig()
    potential: PotentialConfig = PotentialConfig()
    system: SystemConfig = SystemConfig()
    string: StringConfig = StringConfig()
    htst: HTSTConfig = HTSTConfig()


# ----------------------------------------------------------------------------------------------
# Building blocks (used by `mlffbench vacancy` too)
# ----------------------------------------------------------------------------------------------
def lattice_constant(potential: Potential, given: float | None, system: str, units: UnitSystem) -> float:
    """Reduced lattice constant: the config value, or the potential's own 0 K value."""
    if given is not None:
        return convert_input(given, "length", system, units)
    if not potential.conservative:
        raise UserError(f"{potential.name} predicts forces only: give system.lattice_constant in the config")
    return fcc_lattice_constant(potential)[0]


def vacancy_structure(n: int, a: float) -> tuple[Structure, int, int]:
    """(vacancy crystal with site 0 empty, hopping atom index, vacant site index)."""
    perfect = fcc(n, a)
    vac = remove_atom(perfect, 0)
    return vac, nearest_neighbor_of_site(vac, 0), 0


# float32 force round-off stalls relaxations near 2e-4 epsilon/sigma (measured on a trained
# SchNet); a tighter end-state threshold would fail every float32 model for a reason not its own
FLOAT32_RELAX_FMAX = 1e-3


def reachable_fmax(potential: Potential, fmax: float) -> float:
    """The relaxation threshold (epsilon/sigma) this potential's precision can reach."""
    single = jnp.dtype(potential.dtype).itemsize < 8
    return max(fmax, FLOAT32_RELAX_FMAX) if single else fmax


def relax(potential: Potential, R, box, fmax: float, skin: float = 0.5):
    """Relax positions at fixed box: L-BFGS + Newton for energies, FIRE for force-only models.
    Returns (positions, energy (NaN without an energy), max force component, converged)."""
    if potential.conservative:
        r = relax_positions(potential, R, box, fmax=fmax, skin=skin)
        return r.positions, r.energy, r.max_force, r.converged
    return relax_forces_fire(potential, R, box, fmax=fmax, skin=skin)


def relax_forces_fire(potential: Potential, R, box, fmax: float, skin: float = 0.5,
                      max_iter: int = 20000):
    """FIRE relaxation that needs only forces (force-only models); float64 parameters."""
    X = jnp.asarray(np.asarray(R, np.float64))[None]
    bef, aux_init, aux_overflow = potential_batched_ef(potential, box, skin=skin)
    nbrs = aux_init(X)

    @jax.jit
    def run(X, V, dt, alpha, npos, nbrs):
        def step(c, _):
            X, V, dt, alpha, npos, nbrs = c
            _, F, nbrs = bef(X, nbrs)
            P = jnp.vdot(F, V)
            vn, fn = jnp.sqrt(jnp.vdot(V, V)), jnp.sqrt(jnp.vdot(F, F))
            Vm = (1 - alpha) * V + alpha * vn * F / jnp.maximum(fn, 1e-300)
            pos = P > 0
            grow = pos & (npos > 5)
            V = jnp.where(pos, Vm, 0.0) + 0.0
            dt = jnp.where(pos, jnp.where(grow, jnp.minimum(dt * 1.1, 0.1), dt), dt * 0.5)
            alpha = jnp.where(pos, jnp.where(grow, alpha * 0.99, alpha), 0.1)
            npos = jnp.where(pos, npos + 1, 0)
            V = V + dt * F
            dX = dt * V
            big = jnp.max(jnp.linalg.norm(dX, axis=-1))
            X = X + dX * jnp.minimum(1.0, 0.05 / jnp.maximum(big, 1e-300))
            return (X, V, dt, alpha, npos, nbrs), jnp.max(jnp.abs(F))
        return jax.lax.scan(step, (X, V, dt, alpha, npos, nbrs), None, length=100)

    carry = (X, jnp.zeros_like(X), jnp.float64(0.01), jnp.float64(0.1), jnp.asarray(0), nbrs)
    fm = np.inf
    for _ in range(max_iter // 100):
        carry, fs = run(*carry)
        if aux_overflow(carry[-1]):
            carry = carry[:5] + (aux_init(carry[0]),)
            continue
        _, F, _ = bef(carry[0], carry[-1])
        fm = float(jnp.max(jnp.abs(F)))
        if fm <= fmax:
            break
    return np.asarray(carry[0][0]), float("nan"), fm, fm <= fmax


def polish_saddle(potential: Potential, R, box, tol: float, max_iter: int = 10, skin: float = 0.5):
    """Newton steps on |F| = 0 with the exact Hessian from a climbing-image saddle estimate.

    Converges quadratically onto the first-order saddle the climbing image found. Returns
    (R, E, max per-atom |F|, n_negative_modes, iterations). The three translational zero modes
    are dropped through the pseudo-inverse.
    """
    box_j = jnp.asarray(np.asarray(box, np.float64))
    R = np.asarray(R, np.float64)
    spec = potential.neighbors(box_j, skin=skin, n_atoms=len(R))
    nbrs = spec.allocate(jnp.asarray(R), extra_capacity=4)
    shape = R.shape

    @jax.jit
    def forces(x):
        r = x.reshape(shape)
        return potential.forces(r, box_j, spec.update(r, nbrs)).reshape(-1).astype(jnp.float64)

    jac = jax.jit(jax.jacfwd(forces))
    x = R.reshape(-1)
    f = np.asarray(forces(jnp.asarray(x)))
    fnorm = lambda f: float(np.max(np.linalg.norm(f.reshape(-1, 3), axis=1)))  # noqa: E731
    it = 0
    for it in range(1, max_iter + 1):
        H = -np.asarray(jac(jnp.asarray(x)))
        H = 0.5 * (H + H.T)
        step = np.linalg.lstsq(H, f, rcond=1e-10)[0]
        x_new = x + step
        f_new = np.asarray(forces(jnp.asarray(x_new)))
        if fnorm(f_new) >= fnorm(f):
            break
        x, f = x_new, f_new
        if fnorm(f) < tol * 1e-3:
            break
    H = -np.asarray(jac(jnp.asarray(x)))
    lam = np.linalg.eigvalsh(0.5 * (H + H.T))
    n_neg = int(np.sum(lam < -1e-8 * np.max(np.abs(lam))))
    e = float(potential.energy(jnp.asarray(x.reshape(shape)), box_j, spec.update(jnp.asarray(x.reshape(shape)), nbrs))) \
        if potential.conservative else float("nan")
    return x.reshape(shape), e, fnorm(f), n_neg, it


def vacancy_string(potential: Potential, R_initial, R_final, box, settings: StringSettings,
                   n_images: int, skin: float = 0.5, end_energies=(np.nan, np.nan),
                   progress: Callable[[int, int], None] | None = None) -> StringResult:
    """String method between two relaxed states of atoms (reduced units)."""
    bef, aux_init, aux_overflow = potential_batched_ef(potential, box, skin=skin)
    path0 = linear_path(R_initial, R_final, n_images)
    return string_method(bef, path0, settings, aux_init=aux_init, aux_overflow=aux_overflow,
                         end_energies=end_energies, energy_known=potential.conservative,
                         remove_translation=True, progress=progress)


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
                 "conservative": potential.conservative}
    if potential.conservative:
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
    if res.converged and sc.saddle_polish and potential.conservative and sc.climb:
        t0 = time.perf_counter()
        Rp, Ep, fp, n_neg, its = polish_saddle(potential, R_saddle, box, tol, skin=sc.skin_sigma)
        timings["polish_s"] = time.perf_counter() - t0
        out["polish"] = {"iterations": its, "max_force": fp, "n_unstable_modes": n_neg,
                         "barrier_forward": Ep - Ei, "barrier_backward": Ep - Ef,
                         "shift_from_climbing_image": float(np.max(np.linalg.norm(Rp - R_saddle, axis=1)))}
        if n_neg == 1 and fp < tol:
            R_saddle = Rp
            out["barrier_forward"], out["barrier_backward"] = Ep - Ei, Ep - Ef
            out["barrier_method"] = "climbing image, then Newton polish of the saddle (exact Hessian)"
    out["R_saddle"] = R_saddle

    if cfg.htst.enabled and res.converged:
        t0 = time.perf_counter()
        H_min = hessian(potential, Ri, box, skin=sc.skin_sigma)
        H_sad = hessian(potential, R_saddle, box, skin=sc.skin_sigma)
        h = vineyard_prefactor(H_min, H_sad)
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
            "method": "Vineyard harmonic TST, exact autodiff Hessians, 3 translations removed",
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res: StringResult = out["string"]
    E = units.scale("energy")
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(res.arc, np.asarray(out["path_energies"]) * E * 1000, "o-")
    c = out["saddle_index"]
    ax.plot([res.arc[c]], [out["barrier_forward"] * E * 1000], "r*", ms=12,
            label=f"saddle: {out['barrier_forward'] * E * 1000:.2f} meV")
    ax.set_xlabel("normalised arc length")
    ax.set_ylabel("E - E_initial (meV)")
    ax.set_title(title + ("" if res.converged else " (NOT converged)"))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    write_json(outdir / "manifest.json", manifest("neb", cfg, None, jnp.dtype(potential.dtype).name,
                                                  out["timings"], model=model_spec))
    return doc
