"""`mlffbench md`: MD with one potential; time to failure, NVE drift, RDF, MSD (comparison: benchmarks.md_stability).

Protocol per temperature: perfect FCC crystal -> NVT (Nose-Hoover) equilibration -> NVE
production, `replicas` independent copies in one vmapped, jitted run (`run_md`). A replica
*fails* at the first sample where the run blew up (non-finite values, an atom jumping further
than allowed in one step, runaway temperature) or where the crystal order parameter
|rho_k| (mean over the four <111> FCC reciprocal vectors) falls below `melt_threshold`: a crystal
that should stay solid has melted. Outputs are cut at the failure point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import Field, model_validator

from mlffbench.properties.structure import fcc_order_parameter
from mlffbench.config import StrictModel, UnitsConfig, lj_defaults
from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.potentials.base import Potential
from mlffbench.properties.structure import msd, rdf_from_counts, rdf_pair_counts, unwrap
from mlffbench.structures import fcc
from mlffbench.stats import block_average
from mlffbench.units import UnitSystem, convert_input


class MDSystemConfig(StrictModel):
    supercell: int = Field(4, ge=2, le=12)
    lattice_constant: float | None = Field(None, gt=0, description="Å (metal) or sigma; null = the potential's own 0 K a0")


class MDRunConfig(StrictModel):
    """Times in fs, temperatures in K, lengths in Å when units.system = 'metal'."""

    seed: int = 0
    units: UnitsConfig = UnitsConfig()
    system: MDSystemConfig = MDSystemConfig()
    temperatures: list[float] = Field([40.0], min_length=1)
    replicas: int = Field(2, ge=1, le=64)
    timestep: float = Field(5.0, gt=0)
    equilibration: float = Field(2000.0, ge=0, description="NVT time before NVE (fs)")
    duration: float = Field(10000.0, gt=0, description="NVE time (fs)")
    thermostat_time: float = Field(500.0, gt=0)
    sample_every: int = Field(20, ge=1)
    skin_sigma: float = Field(0.3, ge=0)
    melt_threshold: float = Field(0.3, gt=0, lt=1)
    rdf_bins: int = Field(100, ge=10)
    save_trajectory: bool = True

    @model_validator(mode="before")
    @classmethod
    def _lj_defaults(cls, data):
        return lj_defaults(data, None, cls, {"timestep": "time", "equilibration": "time", "duration": "time",
                                             "thermostat_time": "time", "temperatures": "temperature"})


def _steps(cfg: MDRunConfig, fs: float) -> int:
    """A duration -> a multiple of sample_every steps."""
    dt = cfg.timestep
    n = int(round(fs / dt))
    return max(cfg.sample_every, (n // cfg.sample_every) * cfg.sample_every) if n > 0 else 0


def lattice_constant(pot: Potential, cfg: MDRunConfig) -> float:
    """Reduced lattice constant: the config's, or the potential's own 0 K value (dynamics.lattice)."""
    from mlffbench.dynamics.lattice import lattice_constant as policy

    pinned = cfg.system.lattice_constant
    if pinned is not None:
        pinned = convert_input(pinned, "length", cfg.units.system, cfg.units.unit_system())
    return policy(pot, pinned)


def run_one(pot: Potential, cfg: MDRunConfig, kT: float, a: float, seed: int,
            progress: Callable[[int, int], None] | None = None) -> dict:
    """One temperature, all replicas: raw arrays (reduced) and per-replica failure analysis."""
    u = cfg.units
    dt = convert_input(cfg.timestep, "time", u.system, u.unit_system())
    tau_T = convert_input(cfg.thermostat_time, "time", u.system, u.unit_system())
    s = fcc(cfg.system.supercell, a)
    R0 = np.broadcast_to(s.positions, (cfg.replicas, *s.positions.shape)).copy()
    n_eq, n_prod = _steps(cfg, cfg.equilibration), _steps(cfg, cfg.duration)
    eq = None
    R_start, V_start = R0, None
    if n_eq:
        eq = run_md(pot, R0, s.box, Integrator("nvt_nose_hoover", dt=dt, tau_T=tau_T), n_eq, kT=kT, seed=seed,
                    sample_every=cfg.sample_every, skin=cfg.skin_sigma, record=("positions",))
        R_start, V_start = eq.final["positions"], eq.final["velocities"]
    if eq is not None and eq.status != "ok":
        prod = None
    else:
        prod = run_md(pot, R_start, s.box, Integrator("nve", dt=dt), n_prod, kT=kT, seed=seed + 1,
                      sample_every=cfg.sample_every, skin=cfg.skin_sigma, velocities=V_start,
                      record=("positions",), progress=progress)
    return {"eq": eq, "prod": prod, "structure": s, "dt": dt, "n_eq": n_eq, "n_prod": n_prod}


def analyse(run: dict, cfg: MDRunConfig, kT: float, units: UnitSystem) -> dict:
    """Failure time, drift, order parameter, RDF, MSD per replica (metal units out)."""
    s, dt = run["structure"], run["dt"]
    n_atoms = s.n_atoms
    t_ps = units.scale("time")
    eV = units.scale("energy")
    parts = [p for p in (run["eq"], run["prod"]) if p is not None and p.samples]
    times = np.concatenate([p.samples["time"] + (run["n_eq"] * dt if p is run["prod"] else 0.0) for p in parts])
    pos = np.concatenate([p.samples["positions"] for p in parts])  # (S, R, N, 3)
    etot = np.concatenate([p.samples["Etot"] for p in parts])  # (S, R)
    in_prod = np.concatenate([np.full(len(p.samples["time"]), p is run["prod"]) for p in parts])
    order = fcc_order_parameter(pos, s.box, cfg.system.supercell)  # (S, R)
    total_time = (run["n_eq"] + run["n_prod"]) * dt
    blown = [p for p in (run["eq"], run["prod"]) if p is not None and p.status != "ok"]
    blow_time = None
    if blown:
        p = blown[0]
        offset = run["n_eq"] * dt if p is run["prod"] else 0.0
        blow_time = offset + p.steps_done * dt
    reps = []
    for r in range(pos.shape[1]):
        melted = np.nonzero(order[:, r] < cfg.melt_threshold)[0]
        t_melt = float(times[melted[0]]) if len(melted) else None
        candidates = [t for t in (t_melt, blow_time) if t is not None]
        t_fail = min(candidates) if candidates else None
        why = None if t_fail is None else ("melted" if t_fail == t_melt else "blow-up")
        good = (times <= (t_fail if t_fail is not None else np.inf)) & in_prod
        e = etot[good, r] / n_atoms
        drift = None
        if good.sum() >= 3 and np.all(np.isfinite(e)):
            slope = np.polyfit(times[good] * t_ps, e * eV, 1)[0]
            drift = float(slope)
        reps.append({"replica": r, "failed": t_fail is not None, "failure": why,
                     "time_to_failure_ps": None if t_fail is None else t_fail * t_ps,
                     "simulated_ps": total_time * t_ps,
                     "nve_drift_eV_per_atom_per_ps": drift,
                     "final_order_parameter": float(order[good | ~in_prod, r][-1]) if np.any(good | ~in_prod) else None,
                     "min_order_parameter": float(np.min(order[:, r]))})
    prod_frames = pos[in_prod]
    first_fail = min([x["time_to_failure_ps"] for x in reps if x["failed"]], default=None)
    keep = in_prod & ((times * t_ps) <= (first_fail if first_fail is not None else np.inf))
    frames = pos[keep]  # (S', R, N, 3)
    half = 0.5 * float(np.min(np.diag(s.box)))
    g_r = g = g_replicas = None
    msd_t = msd_v = None
    if len(frames) >= 2:
        # pair counts per replica, once: their sum is the pooled histogram (integers add exactly)
        per_replica = [rdf_pair_counts(frames[:, k], s.box, half, cfg.rdf_bins) for k in range(frames.shape[1])]
        g_r, g = rdf_from_counts(np.sum(per_replica, axis=0), frames.shape[0] * frames.shape[1], n_atoms,
                                 s.box, half)
        g_replicas = np.stack([rdf_from_counts(c, frames.shape[0], n_atoms, s.box, half)[1] for c in per_replica])
        unw = np.stack([unwrap(frames[:, k], s.box) for k in range(frames.shape[1])])  # (R, S', N, 3)
        msd_v = np.mean([msd(u_) for u_ in unw], axis=0)
        msd_t = (np.arange(len(msd_v)) * cfg.sample_every * dt)
    T_K = kT * units.temperature_k
    T_series = np.concatenate([p.samples["T"].mean(axis=-1) if p.samples["T"].ndim > 1 else p.samples["T"]
                               for p in parts])  # replica-mean T per sample
    mean_T, T_err, _ = block_average(T_series * units.temperature_k)
    return {
        "temperature_K": T_K,
        "replicas": reps,
        "any_failed": any(x["failed"] for x in reps),
        "time_to_failure_ps": first_fail,
        "order_parameter": {"time_ps": times * t_ps, "values": order.T},
        "mean_T_K": mean_T,
        "mean_T_K_stderr": T_err,
        "rdf": None if g is None else {"r_A": g_r * units.sigma_angstrom, "g": g, "g_replicas": g_replicas},
        "msd": None if msd_v is None else {"time_ps": msd_t * t_ps, "msd_A2": msd_v * units.sigma_angstrom ** 2},
        "_frames": frames, "_box": s.box, "_prod_frames": len(prod_frames),
        "compile_seconds": sum(p.compile_seconds for p in (run["eq"], run["prod"]) if p is not None),
        "run_seconds": sum(p.run_seconds for p in (run["eq"], run["prod"]) if p is not None),
        "atom_steps_per_second": (run["prod"].atom_steps_per_second if run["prod"] is not None else None),
    }


def write_extxyz(path: Path, frames: np.ndarray, box: np.ndarray, units: UnitSystem, dt_ps: float) -> None:
    """Replica 0's frames (S, N, 3) in Å as extxyz."""
    from ase import Atoms
    from ase.io import write

    L = units.sigma_angstrom
    atoms = [Atoms(f"Ar{frames.shape[1]}", positions=R * L, cell=box.T * L, pbc=True,
                   info={"time_ps": k * dt_ps}) for k, R in enumerate(frames)]
    write(str(path), atoms, format="extxyz")


def run_md_benchmark(pot: Potential, cfg: MDRunConfig, outdir: Path) -> dict:
    """All temperatures for ONE potential; writes trajectories; returns md.json content."""
    units = cfg.units.unit_system()
    a = lattice_constant(pot, cfg)
    out: dict = {"potential": pot.describe(), "lattice_constant_A": a * units.sigma_angstrom,
                 "lattice_constant_source": "config" if cfg.system.lattice_constant is not None else "own 0 K a0",
                 "n_atoms": 4 * cfg.system.supercell ** 3, "temperatures": []}
    for k, T in enumerate(cfg.temperatures):
        kT = convert_input(T, "temperature", cfg.units.system, units)
        raw = run_one(pot, cfg, kT, a, cfg.seed + 1000 * k)
        res = analyse(raw, cfg, kT, units)
        if cfg.save_trajectory and len(res["_frames"]):
            write_extxyz(outdir / f"trajectory_{T:g}.extxyz", res["_frames"][:, 0], res["_box"], units,
                         cfg.sample_every * raw["dt"] * units.scale("time"))
        out["temperatures"].append({k2: v for k2, v in res.items() if not k2.startswith("_")})
    return out


def plot_md(result: dict, path: Path, reference: dict | None = None) -> None:
    """Order parameter, g(r) and MSD per temperature; `reference` (another md result) overlaid."""
    from mlffbench.plotting import pyplot, save

    plt = pyplot()
    temps = result["temperatures"]
    ref_temps = {t["temperature_K"]: t for t in (reference or {}).get("temperatures", [])}
    fig, ax = plt.subplots(len(temps), 3, figsize=(12, 3.2 * len(temps)), squeeze=False)
    for row, t in zip(ax, temps):
        op = t["order_parameter"]
        for v in np.atleast_2d(op["values"]):
            row[0].plot(op["time_ps"], v, lw=0.8)
        row[0].set_title(f"{t['temperature_K']:g} K: crystal order |rho_k|")
        row[0].set_xlabel("time (ps)")
        for label, blk, style in (("model", t, "-"), ("reference", ref_temps.get(t["temperature_K"]), "--")):
            if blk and blk["rdf"] is not None:
                row[1].plot(blk["rdf"]["r_A"], blk["rdf"]["g"], style, label=label)
            if blk and blk["msd"] is not None:
                row[2].plot(blk["msd"]["time_ps"], blk["msd"]["msd_A2"], style, label=label)
        row[1].set_xlabel("r (Å)")
        row[1].set_title("g(r)")
        if row[1].get_legend_handles_labels()[0]:
            row[1].legend()
        row[2].set_xlabel("time (ps)")
        row[2].set_title("MSD (Å²)")
    fig.tight_layout()
    save(fig, path)
