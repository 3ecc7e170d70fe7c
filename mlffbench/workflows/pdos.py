"""`mlffbench pdos`: phonon DOS of ONE potential at 0 K (force constants, q-mesh, dispersion) and
at finite temperature (VACF, spectral energy density).

Everything goes through the `Potential` interface and its capabilities only: an autodiff Hessian
where the potential has one, finite differences of forces otherwise. Physics lives in
`properties/` (phonons, harmonic, vacf, sed), phonopy-format files in `mlffbench.phonopy_io`, the
model-vs-LJ comparison in `benchmarks/pdos.py`. Memory: Hessian-column batches are sized from
`memory_budget_gb`. Internal units are reduced (sigma, epsilon, m, tau; ordinary frequency nu in
1/tau); results carry THz too (nu_THz = nu / tau_ps).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, model_validator

from mlffbench.config import PotentialConfig, StrictModel, UnitsConfig, lj_defaults
from mlffbench.errors import SimulationError, UserError
from mlffbench import phonopy_io as pio
from mlffbench.io import value
from mlffbench.plotting import pyplot, save
from mlffbench.potentials.base import Potential
from mlffbench.properties import harmonic
from mlffbench.properties import phonons as ph
from mlffbench.properties import sed as sedmod
from mlffbench.properties import vacf as vf
from mlffbench.structures import fcc
from mlffbench.units import UnitSystem, convert_input

TWO_PI = 2.0 * math.pi


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------
class ZeroKelvinConfig(StrictModel):
    """0 K harmonic phonons. Frequencies in THz (units.system metal) or 1/tau (lj)."""

    enabled: bool = True
    supercell: int = Field(4, ge=1, le=12, description="conventional FCC cells per side")
    lattice_constant: float | None = Field(None, gt=0, description="Å / sigma; null = relax at P=0")
    lattice_n_cells: int = Field(3, ge=1, le=10, description=(
        "FCC cell of the P=0 lattice search (E/N of the perfect crystal does not depend on it with "
        "multi-image lists; the crystal benchmarks' n_cells shares their memoised a0)"))
    relax_positions: bool = True
    fmax: float = Field(1e-8, gt=0, description="relaxation threshold, epsilon/sigma")
    force_constants: Literal["auto", "bravais", "full"] = "auto"
    fd_step: float | None = Field(None, gt=0, le=0.1, description=(
        "central-difference step (sigma) for potentials without autodiff; null = eps^(1/3) of the "
        "potential's float type (6e-6 float64, 5e-3 float32)"))
    acoustic_sum_rule: bool = Field(True, description="set the on-site block to -sum of the others")
    mesh: int = Field(20, ge=1, le=96)
    gamma_centered: bool = True
    dos_method: Literal["gaussian"] = "gaussian"
    dos_sigma: float = Field(0.02, gt=0)
    dos_points: int = Field(501, ge=11)
    histogram_bins: int = Field(60, ge=5)
    band_points_per_segment: int = Field(51, ge=2)


class FiniteTConfig(StrictModel):
    """NVT equilibration then NVE production per temperature; replicas run vmapped."""

    enabled: bool = True
    supercell: int = Field(4, ge=1, le=12)
    temperatures: list[float] = Field(default_factory=lambda: [10.0, 40.0], min_length=1)
    replicas: int = Field(2, ge=1, le=64)
    dt: float = Field(10.0, gt=0, description="fs / tau")
    equilibration_time: float = Field(5000.0, ge=0, description="0 = start NVE from the harmonic sample")
    production_time: float = Field(20000.0, gt=0)
    sample_every: int = Field(4, ge=1)
    thermostat: Literal["nvt_nose_hoover", "nvt_langevin"] = "nvt_nose_hoover"
    thermostat_time: float = Field(500.0, gt=0, description="1/gamma (Langevin) or tau_T, fs / tau")
    max_lag_time: float = Field(10000.0, gt=0, description="VACF lag window, fs / tau")
    window: Literal["hann", "none"] = "hann"
    sed: bool = True
    melt_lindemann: float = Field(0.15, gt=0)

    @model_validator(mode="after")
    def _positive_temperatures(self):
        if any(t <= 0 for t in self.temperatures):
            raise ValueError("temperatures must all be > 0")
        return self


class PdosConfig(StrictModel):
    seed: int = 0
    memory_budget_gb: float = Field(2.0, gt=0, description=(
        "memory one batch of Hessian columns may use (GB); batches shrink to fit"))
    units: UnitsConfig = UnitsConfig()
    potential: PotentialConfig = PotentialConfig()
    zero_kelvin: ZeroKelvinConfig = ZeroKelvinConfig()
    finite_temperature: FiniteTConfig = FiniteTConfig()
    progress: bool = Field(True, description="print stage messages (the command's --quiet also hides them)")

    @model_validator(mode="before")
    @classmethod
    def _lj_defaults(cls, data):
        return lj_defaults(data, "finite_temperature", FiniteTConfig,
                           {"temperatures": "temperature", "dt": "time", "equilibration_time": "time",
                            "production_time": "time", "thermostat_time": "time", "max_lag_time": "time"})


# ----------------------------------------------------------------------------------------------
# 0 K
# ----------------------------------------------------------------------------------------------
def _freq_pair(nu: float, us: UnitSystem) -> dict:
    return {"THz": nu / us.tau_ps, "reduced": nu}


def crystal_lattice_constant(potential: Potential, cfg: PdosConfig,
                             lattice_constant: float | None = None) -> tuple[float, float]:
    """(a0 sigma, E/atom epsilon or NaN when a0 is given): `lattice_constant` if given, else the
    config's zero_kelvin.lattice_constant, else the potential's own 0 K a0 (the one policy,
    `dynamics.lattice`, memoised by fingerprint and `zero_kelvin.lattice_n_cells`, default 3 as
    the crystal benchmarks)."""
    from mlffbench.dynamics.lattice import equilibrium_fcc

    zk = cfg.zero_kelvin
    if lattice_constant is None and zk.lattice_constant is not None:
        lattice_constant = convert_input(zk.lattice_constant, "length", cfg.units.system, cfg.units.unit_system())
    if lattice_constant is not None:
        return float(lattice_constant), float("nan")
    if not potential.conservative:
        raise UserError("a force-only model has no energy to relax: set zero_kelvin.lattice_constant")
    return equilibrium_fcc(potential, n_cells=zk.lattice_n_cells)


def _relax_crystal(potential: Potential, s, fmax: float, budget: float) -> tuple[np.ndarray, float, str]:
    """Relax the crystal's positions: L-BFGS to the threshold the potential's precision can reach,
    then (if needed) Newton steps with the batched, memory-budgeted Hessian of `force_constants`
    (jax.hessian of all 3N columns at once needs ~3N x one column's memory: ~11 GB for the demo's
    GNN at 256 atoms). Returns (positions, max force component, note or '')."""
    from mlffbench.dynamics.minimize import newton_polish, reachable_fmax, relax_positions

    fmax = reachable_fmax(potential, fmax)
    rel = relax_positions(potential, s.positions, s.box, fmax=fmax, newton_max_dof=0)
    R, max_force = rel.positions, rel.max_force
    if max_force > fmax and potential.capabilities.autodiff:
        box = jnp.asarray(s.box)
        spec = potential.neighbors(box, skin=0.5, n_atoms=s.n_atoms)
        nbrs = spec.allocate(jnp.asarray(R))
        force = jax.jit(lambda x: potential.forces(x.reshape(R.shape), box,
                                                   spec.update(x.reshape(R.shape), nbrs)).reshape(-1))
        x, F, _ = newton_polish(lambda x: np.asarray(force(jnp.asarray(x)), np.float64),
                                lambda x: ph.force_constants(potential, x.reshape(R.shape), s.box, method="full",
                                                             memory_budget=budget).full_matrix(),
                                R.reshape(-1), fmax, norm=lambda f: float(np.max(np.abs(f))))
        R, max_force = x.reshape(R.shape), float(np.max(np.abs(F)))
    note = "" if max_force <= fmax else f"position relaxation stopped at max force {max_force:.3g}"
    return R, max_force, note


def zero_kelvin(potential: Potential, cfg: PdosConfig, lattice_constant: float | None = None,
                log=print) -> dict:
    """Relax, force constants, mesh DOS, band path, Gamma-point histogram. Returns arrays + summary.

    lattice_constant (sigma) overrides the config / relaxation (used for force-only models that
    have no energy to minimise).
    """
    zk = cfg.zero_kelvin
    us = cfg.units.unit_system()
    system = cfg.units.system
    budget = cfg.memory_budget_gb * 1e9
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    notes = []
    a0, e0 = crystal_lattice_constant(potential, cfg, lattice_constant)
    notes.append("lattice constant relaxed at zero pressure" if np.isfinite(e0) else "lattice constant given")
    timings["lattice_constant"] = time.perf_counter() - t0
    s = fcc(zk.supercell, a0)
    R = s.positions
    max_force = float("nan")
    t0 = time.perf_counter()
    if zk.relax_positions and potential.conservative:
        R, max_force, note = _relax_crystal(potential, s, zk.fmax, budget)
        if note:
            notes.append(note)
    timings["relax"] = time.perf_counter() - t0
    shift = ph.minimum_image(R - s.positions, s.box)
    shift = shift - shift.mean(axis=0)
    bravais_ok = float(np.max(np.abs(shift))) < 1e-6
    method = zk.force_constants
    if method == "auto":
        method = "bravais" if bravais_ok else "full"
    if method == "bravais" and not bravais_ok:
        raise SimulationError("relaxation broke the perfect lattice; use zero_kelvin.force_constants: full")
    log(f"force constants ({method}) of {len(R)} atoms, a = {a0:.6f} sigma")
    fc = ph.force_constants(potential, R, s.box, method=method, memory_budget=budget, fd_step=zk.fd_step)
    timings["force_constants"] = fc.seconds
    timings["force_constants_compile"] = fc.compile_seconds
    t0 = time.perf_counter()
    row = fc.row()
    if zk.acoustic_sum_rule:
        row = ph.impose_acoustic_sum_rule(row)
    images = ph.shortest_images(R, s.box)
    prim = ph.fcc_primitive_cell(a0)
    q_mesh = ph.mesh_qpoints(prim, zk.mesh, zk.gamma_centered)
    nu_mesh = ph.frequencies_at(row, images, q_mesh, fc.mass) / TWO_PI  # (nq, 3), 1/tau
    path = ph.band_path(a0, points_per_segment=zk.band_points_per_segment)
    nu_path = ph.frequencies_at(row, images, path["q"], fc.mass) / TWO_PI
    q_comm = ph.commensurate_qpoints(prim, s.box)
    nu_gamma = np.sort(ph.frequencies_at(row, images, q_comm, fc.mass).ravel()) / TWO_PI
    scale = TWO_PI / a0
    nu_X = ph.frequencies_at(row, images, ph.FCC_POINTS["X"][None] * scale, fc.mass)[0] / TWO_PI
    nu_L = ph.frequencies_at(row, images, ph.FCC_POINTS["L"][None] * scale, fc.mass)[0] / TWO_PI
    sigma_red = convert_input(zk.dos_sigma, "frequency", system, us)
    top = max(float(nu_mesh.max()), 1e-6)
    grid = np.linspace(min(0.0, float(nu_mesh.min())) - 3 * sigma_red, top + 5 * sigma_red, zk.dos_points)
    dos = ph.gaussian_dos(nu_mesh, grid, sigma_red, modes_per_point=3.0)
    hist, edges = np.histogram(nu_gamma, bins=zk.histogram_bins, range=(grid[0], grid[-1]), density=True)
    timings["dos_and_bands"] = time.perf_counter() - t0
    tol = 1e-4 * top  # acoustic modes at Gamma come out as +-1e-7: not imaginary
    imag = int(np.sum(nu_mesh < -tol))
    mom = ph.moments(nu_mesh)
    summary = {
        "lattice_constant": value(a0 * us.sigma_angstrom, "Å", reduced=a0),
        "energy_per_atom": value(e0 * us.epsilon_ev, "eV", reduced=e0),
        "max_force_after_relax": value(max_force, "epsilon/sigma"),
        "supercell": [zk.supercell] * 3, "n_atoms": len(R), "force_constant_method": method,
        "hessian": fc.hessian, "fd_step_sigma": fc.fd_step, "derivative_batch": fc.batch,
        "memory_budget_gb": cfg.memory_budget_gb,
        "hessian_asymmetry": fc.asymmetry, "acoustic_sum_rule_violation": fc.asr_violation,
        "n_derivative_passes": fc.n_derivative_passes,
        "mesh": [zk.mesh] * 3, "gamma_centered": zk.gamma_centered,
        "nu_max": _freq_pair(mom["max"], us), "nu_mean": _freq_pair(mom["mean"], us),
        "nu2_mean": {"THz^2": mom["second"] / us.tau_ps ** 2, "reduced": mom["second"]},
        "omega2_mean_reduced": mom["second"] * TWO_PI ** 2,
        "nu_X": {"THz": (nu_X / us.tau_ps).tolist(), "reduced": nu_X.tolist()},
        "nu_L": {"THz": (nu_L / us.tau_ps).tolist(), "reduced": nu_L.tolist()},
        "n_imaginary_modes": imag, "n_modes": int(nu_mesh.size),
        "gamma_supercell": {"nu_max": _freq_pair(float(nu_gamma.max()), us),
                            "nu_mean": _freq_pair(float(nu_gamma.mean()), us),
                            "n_modes": int(nu_gamma.size)},
        "dos_sigma": _freq_pair(sigma_red, us),
        "notes": notes, "timings_s": timings,
    }
    return {"summary": summary, "a0": a0, "positions": R, "box": s.box, "row": row, "images": images,
            "grid": grid, "dos": dos, "hist": (hist, edges), "nu_mesh": nu_mesh, "nu_gamma": nu_gamma,
            "path": path, "nu_path": nu_path, "prim": prim, "mass": fc.mass}


# ----------------------------------------------------------------------------------------------
# Finite temperature
# ----------------------------------------------------------------------------------------------
def _md_step_counts(ft, system: str, us) -> dict:
    """Time settings of the finite-T config -> integer step counts (reduced time tau)."""
    dt = convert_input(ft.dt, "time", system, us)
    n_eq = int(round(convert_input(ft.equilibration_time, "time", system, us) / dt))
    n_eq -= n_eq % 10
    n_prod = int(round(convert_input(ft.production_time, "time", system, us) / dt))
    n_prod -= n_prod % ft.sample_every
    dt_s = dt * ft.sample_every
    n_samples = n_prod // ft.sample_every
    max_lag = min(int(round(convert_input(ft.max_lag_time, "time", system, us) / dt_s)), n_samples // 2)
    if n_samples < 16 or max_lag < 8:
        raise UserError("finite_temperature.production_time is too short for the sampling interval")
    return {"dt": dt, "n_eq": n_eq, "n_prod": n_prod, "dt_s": dt_s, "n_samples": n_samples, "max_lag": max_lag,
            "t_therm": convert_input(ft.thermostat_time, "time", system, us)}


def _harmonic_reference(potential: Potential, cfg: PdosConfig, s, steps: dict) -> dict:
    """Exact Hessian of the MD cell itself, its frequencies and the harmonic VDOS on the grid."""
    ft = cfg.finite_temperature
    fc_md = ph.force_constants(potential, s.positions, s.box, method="bravais",
                               memory_budget=cfg.memory_budget_gb * 1e9, fd_step=cfg.zero_kelvin.fd_step)
    fc_md.fc[0] = ph.impose_acoustic_sum_rule(fc_md.fc[0])
    H = fc_md.full_matrix()
    nu_h = ph.signed_frequencies(np.linalg.eigvalsh(H)) / TWO_PI
    nu_top = max(float(nu_h.max()), 1e-6)
    nu_grid = np.linspace(0.0, 1.5 * nu_top, 601)
    dt_s = steps["dt_s"]
    if 0.5 / dt_s < 1.2 * nu_top:
        raise UserError(f"finite_temperature.sample_every too large: Nyquist {0.5 / dt_s:.3g}/tau below "
                        f"1.2 x the highest harmonic frequency {nu_top:.3g}/tau")
    g_harm = vf.harmonic_vdos(nu_h, steps["max_lag"] + 1, dt_s, nu_grid, 3 * s.n_atoms, ft.window)
    return {"fc": fc_md, "H": H, "nu_top": nu_top, "nu_grid": nu_grid, "g_harm": g_harm}


def _sed_modes(fc_md, s, a0: float, supercell: int, log):
    """(commensurate path, frequencies, eigenvectors) for the SED fits, or None where the cell has none."""
    try:
        cp = sedmod.commensurate_path(a0, supercell)
        images = ph.shortest_images(s.positions, s.box)
        nu_q, vec_q = ph.frequencies_at(fc_md.fc[0], images, cp["q"], eigenvectors=True)
        return cp, nu_q / TWO_PI, vec_q
    except ValueError as exc:
        log(f"SED skipped: {exc}")
        return None


def _equilibrated_starts(potential: Potential, cfg: PdosConfig, s, H, steps: dict, log):
    """Harmonic equipartitioned starts, NVT-equilibrated per temperature.

    Returns (R (n_T*n_rep, N, 3), V (same), per-temperature entries, compile s, run s)."""
    from mlffbench.dynamics.md import Integrator, run_md

    ft = cfg.finite_temperature
    us, system = cfg.units.unit_system(), cfg.units.system
    n, n_rep, n_eq = s.n_atoms, ft.replicas, steps["n_eq"]
    starts_R, starts_V, entries = [], [], []
    md_compile, md_run = 0.0, 0.0
    for k, T in enumerate(ft.temperatures):
        kT = convert_input(T, "temperature", system, us)
        u, v = harmonic.harmonic_sample(H, kT, n_rep, seed=cfg.seed * 7919 + k)
        R = s.positions[None] + u
        entry = {"temperature": value(T if system == "metal" else T * us.temperature_k, "K", reduced=kT)}
        if n_eq > 0:
            log(f"T = {T:g}: {n_eq} {ft.thermostat} steps x {n_rep} replicas")
            integ = Integrator(ft.thermostat, dt=steps["dt"], gamma=1.0 / steps["t_therm"], tau_T=steps["t_therm"])
            eq = run_md(potential, R if n_rep > 1 else R[0], s.box, integ, n_eq, kT=kT,
                        seed=cfg.seed + 1000 * k, sample_every=n_eq // 10, chunk_steps=n_eq,
                        velocities=v if n_rep > 1 else v[0])
            md_compile += eq.compile_seconds
            md_run += eq.run_seconds
            if eq.status != "ok":
                entry.update(status="blowup", message=eq.message)
            R = eq.final["positions"].reshape(n_rep, n, 3)
            v = eq.final["velocities"].reshape(n_rep, n, 3)
        v = v - v.mean(axis=1, keepdims=True)  # no centre-of-mass drift in the VACF
        starts_R.append(R)
        starts_V.append(v)
        entries.append(entry)
    return np.concatenate(starts_R), np.concatenate(starts_V), entries, md_compile, md_run


def _analyse_temperature(entry: dict, v, R_fin, T_inst, E_tot, s, a0: float, ft, harm: dict, sed_q, steps: dict,
                         us, log) -> dict:
    """VACF DOS, Lindemann ratio, W1 to the harmonic DOS and SED peaks of one temperature's replicas."""
    n, nu_grid, dt_s = s.n_atoms, harm["nu_grid"], steps["dt_s"]
    lind = vf.lindemann_ratio(R_fin, s.positions, s.box, a0 / math.sqrt(2.0))
    melted = lind > ft.melt_lindemann
    c = vf.vacf(v, steps["max_lag"])
    g = vf.vdos(c / c[0], dt_s, nu_grid, 3 * n, ft.window)
    T_md = float(np.mean(T_inst))
    entry.setdefault("status", "melted" if melted else "ok")
    entry.update(lindemann_ratio=lind, melted=melted,
                 mean_temperature=value(T_md * us.temperature_k, "K", reduced=T_md),
                 energy_fluctuation_per_atom=value(_etot_range(E_tot, n), "epsilon"),
                 vdos_mean_frequency=_freq_pair(float(np.trapezoid(nu_grid * g, nu_grid) /
                                                     np.trapezoid(g, nu_grid)), us),
                 w1_to_harmonic=ph.wasserstein1(nu_grid, g, nu_grid, harm["g_harm"], scale=harm["nu_top"]))
    if melted:
        log(f"the crystal MELTED at {entry['temperature']['value']:g} K (Lindemann ratio {lind:.3f})")
    arrays = {"nu": nu_grid, "vdos": g, "vacf": c}
    if sed_q is not None and not melted:
        entry["sed"], arrays["sed_map"] = sedmod.sed_peaks(v, s.positions, *sed_q, dt_s, harm["nu_top"], ft.window)
        entry["sed"]["frequency_resolution"] = _freq_pair(entry["sed"].pop("frequency_resolution_reduced"), us)
    entry["_arrays"] = arrays
    return entry


def finite_temperature(potential: Potential, cfg: PdosConfig, a0: float, log=print) -> dict:
    """MD -> VACF DOS per temperature, W1 to the harmonic DOS of the same cell, SED peaks.

    Per temperature: harmonic equipartitioned start (random phases), NVT equilibration (skipped
    when equilibration_time is 0); then one NVE production run with every temperature and
    replica vmapped together (one compilation).
    """
    from mlffbench.dynamics.md import Integrator, run_md

    ft = cfg.finite_temperature
    us, system = cfg.units.unit_system(), cfg.units.system
    s = fcc(ft.supercell, a0)
    n = s.n_atoms
    steps = _md_step_counts(ft, system, us)
    harm = _harmonic_reference(potential, cfg, s, steps)
    sed_q = _sed_modes(harm["fc"], s, a0, ft.supercell, log) if ft.sed else None
    n_T, n_rep, n_prod, n_samples = len(ft.temperatures), ft.replicas, steps["n_prod"], steps["n_samples"]
    R_all, V_all, entries, md_compile, md_run = _equilibrated_starts(potential, cfg, s, harm["H"], steps, log)
    log(f"NVE production: {n_prod} steps x {n_T * n_rep} systems of {n} atoms")
    single = len(R_all) == 1
    pr = run_md(potential, R_all[0] if single else R_all, s.box, Integrator("nve", dt=steps["dt"]), n_prod,
                kT=convert_input(ft.temperatures[0], "temperature", system, us),
                velocities=V_all[0] if single else V_all, sample_every=ft.sample_every,
                record=("velocities",), chunk_steps=min(n_prod, 4000 - 4000 % ft.sample_every or ft.sample_every))
    md_compile += pr.compile_seconds
    md_run += pr.run_seconds
    if pr.status != "ok":
        raise SimulationError(f"NVE production failed: {pr.message}")
    V = pr.samples["velocities"].reshape(n_samples, n_T, n_rep, n, 3)
    V = V - V.mean(axis=-2, keepdims=True)
    R_fin = pr.final["positions"].reshape(n_T, n_rep, n, 3)
    T_inst = pr.samples["T"].reshape(n_samples, n_T, n_rep)
    E_tot = pr.samples["Etot"].reshape(n_samples, n_T, n_rep)
    runs = [_analyse_temperature(entry, V[:, k], R_fin[k], T_inst[:, k], E_tot[:, k], s, a0, ft, harm, sed_q,
                                 steps, us, log) for k, entry in enumerate(entries)]
    return {"runs": runs, "nu_grid": harm["nu_grid"], "harmonic_vdos": harm["g_harm"], "nu_top": harm["nu_top"],
            "settings": {"supercell": ft.supercell, "n_atoms": n, "dt_tau": steps["dt"],
                         "equilibration_steps": steps["n_eq"], "production_steps": n_prod,
                         "sample_interval_tau": steps["dt_s"], "max_lag_tau": steps["max_lag"] * steps["dt_s"],
                         "replicas": n_rep, "thermostat": ft.thermostat, "window": ft.window,
                         "initial_state": "harmonic normal modes, kT each, random phases",
                         "volume": "fixed at the 0 K lattice constant (no thermal expansion)",
                         "md_compile_seconds": md_compile, "md_run_seconds": md_run}}


def _etot_range(etot: np.ndarray, n_atoms: int) -> float:
    """Largest peak-to-peak total energy per atom over replicas during NVE (NaN if no energy)."""
    e = np.asarray(etot, np.float64).reshape(len(etot), -1)
    return float(np.max(np.ptp(e, axis=0)) / n_atoms) if np.all(np.isfinite(e)) else float("nan")


# ----------------------------------------------------------------------------------------------
# Plots and files
# ----------------------------------------------------------------------------------------------
def plot_dos(path: Path, model: dict, ref: dict | None, us: UnitSystem, label: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    if ref is not None:
        ax.fill_between(ref["grid"] / us.tau_ps, ref["dos"] * us.tau_ps, color="0.8", label="LJ (reference)")
    ax.plot(model["grid"] / us.tau_ps, model["dos"] * us.tau_ps, color="C0", label=f"{label} (mesh)")
    hist, edges = model["hist"]
    ax.stairs(hist * 3.0 * us.tau_ps, edges / us.tau_ps, color="C1", alpha=0.7, label=f"{label} (supercell Γ histogram)")
    ax.set_xlabel("frequency (THz)")
    ax.set_ylabel("DOS (states / THz / atom)")
    ax.legend(frameon=False)
    save(fig, path)


def plot_dispersion(path: Path, model: dict, ref: dict | None, us: UnitSystem, label: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    p = model["path"]
    x = p["distance"]
    if ref is not None:
        ax.plot(ref["path"]["distance"], ref["nu_path"] / us.tau_ps, color="0.6", lw=2.5)
        ax.plot([], [], color="0.6", lw=2.5, label="LJ (reference)")
    ax.plot(x, model["nu_path"] / us.tau_ps, color="C0", lw=1.2)
    ax.plot([], [], color="C0", label=label)
    n = p["segment_nqpoint"][0]
    ticks = [x[0]] + [x[(k + 1) * n - 1] for k in range(len(p["segment_nqpoint"]))]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["Γ" if s == "G" else s for s in p["labels"]])
    for t in ticks:
        ax.axvline(t, color="k", lw=0.5)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylabel("frequency (THz)")
    ax.legend(frameon=False)
    save(fig, path)


def plot_vdos(path: Path, ft: dict, ft_ref: dict | None, us: UnitSystem, label: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    nu = ft["nu_grid"] / us.tau_ps
    ax.plot(nu, ft["harmonic_vdos"] * us.tau_ps, color="k", lw=1, ls="--", label="harmonic (same window)")
    for k, r in enumerate(ft["runs"]):
        if "_arrays" in r:
            ax.plot(nu, r["_arrays"]["vdos"] * us.tau_ps, color=f"C{k}", label=f"{label} {r['temperature']['value']:g} K")
    if ft_ref is not None:
        for k, r in enumerate(ft_ref["runs"]):
            if "_arrays" in r:
                ax.plot(ft_ref["nu_grid"] / us.tau_ps, r["_arrays"]["vdos"] * us.tau_ps, color=f"C{k}", ls=":",
                        label=f"LJ {r['temperature']['value']:g} K")
    ax.set_xlabel("frequency (THz)")
    ax.set_ylabel("VDOS (states / THz, 3N total)")
    ax.legend(frameon=False, fontsize=8)
    save(fig, path)


def plot_sed(path: Path, ft: dict, us: UnitSystem) -> None:
    runs = [r for r in ft["runs"] if "_arrays" in r and "sed_map" in r["_arrays"]]
    if not runs:
        return
    plt = pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 4), squeeze=False)
    for ax, r in zip(axes[0], runs):
        cp, nu_s, P = r["_arrays"]["sed_map"]
        x = np.arange(len(cp["q"]))
        ax.pcolormesh(x, nu_s / us.tau_ps, np.log10(P + P.max() * 1e-8), shading="nearest", cmap="magma")
        for pk in r["sed"]["peaks"]:
            if np.isfinite(pk["harmonic"]):
                ax.plot(pk["q_index"], pk["harmonic"] / us.tau_ps, "w.", ms=3)
        ax.set_ylim(0, 1.3 * ft["nu_top"] / us.tau_ps)
        ax.set_xlabel("q index along Γ-X-W-K-Γ-L (commensurate)")
        ax.set_ylabel("frequency (THz)")
        ax.set_title(f"SED {r['temperature']['value']:g} K (dots: harmonic)")
    save(fig, path)


def write_outputs(out: Path, res: dict, ref: dict | None, us: UnitSystem, label: str) -> None:
    """total_dos.dat, band.yaml, FORCE_CONSTANTS (eV/Å^2) and plots for one potential's results
    (`ref` overlays)."""
    zk = res.get("zero_kelvin")
    if zk:
        pio.write_total_dos(out / "total_dos.dat", zk["grid"] / us.tau_ps, zk["dos"] * us.tau_ps,
                            zk["summary"]["dos_sigma"]["THz"])
        pio.write_band_yaml(out / "band.yaml", zk, us)
        pio.write_force_constants(out / "FORCE_CONSTANTS", zk["row"][None] * us.epsilon_ev / us.sigma_angstrom ** 2)
        plot_dos(out / "pdos.png", zk, ref.get("zero_kelvin") if ref else None, us, label)
        plot_dispersion(out / "dispersion.png", zk, ref.get("zero_kelvin") if ref else None, us, label)
    ft = res.get("finite_temperature")
    if ft:
        plot_vdos(out / "vdos.png", ft, ref.get("finite_temperature") if ref else None, us, label)
        plot_sed(out / "sed.png", ft, us)
        rows = [ft["nu_grid"] / us.tau_ps, ft["harmonic_vdos"] * us.tau_ps]
        head = "# frequency_THz harmonic"
        for r in ft["runs"]:
            if "_arrays" in r:
                rows.append(r["_arrays"]["vdos"] * us.tau_ps)
                head += f" T={r['temperature']['value']:g}K"
        np.savetxt(out / "vdos.dat", np.column_stack(rows), header=head[2:], fmt="%.8e")


def run_one(potential: Potential, cfg: PdosConfig, lattice_constant: float | None = None, log=print) -> dict:
    """0 K and finite-T results for one potential."""
    res: dict = {"potential": potential.describe()}
    if cfg.zero_kelvin.enabled:
        res["zero_kelvin"] = zero_kelvin(potential, cfg, lattice_constant, log=log)
    if cfg.finite_temperature.enabled:
        a0 = res["zero_kelvin"]["a0"] if "zero_kelvin" in res else \
            crystal_lattice_constant(potential, cfg, lattice_constant)[0]
        res["finite_temperature"] = finite_temperature(potential, cfg, a0, log=log)
    return res


def summarise(res: dict) -> dict:
    """JSON-able part of a result (drops arrays)."""
    out = {"potential": res["potential"]}
    if "zero_kelvin" in res:
        out["zero_kelvin"] = res["zero_kelvin"]["summary"]
    if "finite_temperature" in res:
        ft = res["finite_temperature"]
        out["finite_temperature"] = {"settings": ft["settings"],
                                     "harmonic_nu_max": ft["nu_top"],
                                     "runs": [{k: v for k, v in r.items() if k != "_arrays"} for r in ft["runs"]]}
    return out
