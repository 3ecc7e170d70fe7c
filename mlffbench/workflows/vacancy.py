"""`mlffbench vacancy`: vacancy hop rates from direct MD, an Arrhenius fit, and HTST comparison.

Per temperature: `n_replicas` copies of the relaxed vacancy crystal run NVT together (one
vmapped, jitted `run_md` call) in segments of `segment_steps`; after every segment the sampled
positions go through the site-occupancy hop detector (`mlffbench.properties.hops`), replicas
that melt or grow extra vacancies are dropped with a message, and a checkpoint (positions,
velocities, detector states, accumulated hops and time) is written, so an interrupted run
resumes where it stopped and never loses counted hops. Rates are total vacancy hop rates
(hops / simulated time, all 12 directions) with exact Poisson intervals; the Arrhenius fit is a
Poisson maximum-likelihood fit with a parametric-bootstrap spread; HTST of the same potential
predicts 12 nu* exp(-E_m / kT). Comparison with another potential (LJ) is the `hop_rates`
benchmark's `compare` (`mlffbench.benchmarks.hop_rates`), not this module's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from mlffbench.config import PotentialConfig, StrictModel, UnitsConfig, config_hash, lj_defaults
from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.dynamics.minimize import relax
from mlffbench.errors import SimulationError, UserError
from mlffbench.io import atomic_write_bytes, manifest, value, write_json
from mlffbench.potentials.base import Potential
from mlffbench.properties.hops import HopDetector, remove_drift, site_occupancy
from mlffbench.properties.rates import arrhenius_bootstrap, arrhenius_fit, rate_with_interval
from mlffbench.units import convert_input
from mlffbench.workflows.neb import (N_HOP_DIRECTIONS, HTSTConfig, NebConfig, StringConfig, SystemConfig,
                                     compute_barrier, lattice_constant, vacancy_structure)


BOOTSTRAP_RESAMPLES = 1000  # Arrhenius-fit resamples (a few ms each)


class VacancyMD(StrictModel):
    """MD settings. timestep/thermostat_time in fs (metal) or tau (lj); langevin_friction in 1/fs
    (metal) or 1/tau (lj)."""

    timestep: float = Field(10.0, gt=0)
    thermostat: Literal["langevin", "nose_hoover"] = "langevin"
    thermostat_time: float = Field(500.0, gt=0)
    langevin_friction: float = Field(0.002, gt=0)
    skin_sigma: float = Field(1.0, gt=0)  # a hot crystal rebuilds a 0.5 skin every few steps
    sample_every: int = Field(20, ge=1)
    segment_steps: int = Field(2000, ge=1)


class VacancyRun(StrictModel):
    """temperatures: K (metal) or kT (lj), below melting. steps: production steps per replica
    per temperature; equilibration_steps: discarded first. persist_samples: samples a new empty
    site must last to count as a hop; defect_persist_samples: samples with extra empty sites
    that stop a replica."""

    temperatures: list[float] = Field(min_length=1)
    n_replicas: int = Field(4, ge=1)
    steps: int = Field(20000, ge=1)
    equilibration_steps: int = Field(1000, ge=0)
    persist_samples: int = Field(5, ge=1)
    defect_persist_samples: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _positive_temperatures(self):
        if any(t <= 0 for t in self.temperatures):
            raise ValueError("temperatures must be positive")
        return self


class CompareConfig(StrictModel):
    """HTST comparison: compute the barrier and prefactor (string method, same system) or read
    them from a previous `mlffbench neb` result.json (neb_result)."""

    htst: bool = True
    neb_result: str | None = None
    string: StringConfig = StringConfig(n_images=5)


class VacancyConfig(StrictModel):
    units: UnitsConfig = UnitsConfig()
    potential: PotentialConfig = PotentialConfig()
    seed: int = 0
    system: SystemConfig = SystemConfig(supercell=3)
    md: VacancyMD = VacancyMD()
    run: VacancyRun
    compare: CompareConfig = CompareConfig()

    @model_validator(mode="after")
    def _multiples(self):
        if self.md.segment_steps % self.md.sample_every:
            raise ValueError("md.segment_steps must be a multiple of md.sample_every")
        return self

    @model_validator(mode="before")
    @classmethod
    def _lj_defaults(cls, data):
        return lj_defaults(data, "md", VacancyMD, {"timestep": "time", "thermostat_time": "time",
                                                   "langevin_friction": "rate"})


def _integrator(cfg: VacancyConfig) -> Integrator:
    units, s = cfg.units.unit_system(), cfg.units.system
    dt = convert_input(cfg.md.timestep, "time", s, units)
    if cfg.md.thermostat == "langevin":
        gamma = (cfg.md.langevin_friction * 1000.0 * units.tau_ps) if s == "metal" else cfg.md.langevin_friction
        return Integrator("nvt_langevin", dt=dt, gamma=gamma)
    return Integrator("nvt_nose_hoover", dt=dt, tau_T=convert_input(cfg.md.thermostat_time, "time", s, units))


def _save_checkpoint(path: Path, state: dict, arrays: dict) -> None:
    import io as _io

    buf = _io.BytesIO()
    np.savez(buf, _state=json.dumps(state), **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _load_checkpoint(path: Path, chash: str):
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        state = json.loads(str(z["_state"]))
        arrays = {k: z[k] for k in z.files if k != "_state"}
    if state.get("config_hash") != chash:
        raise UserError(f"checkpoint {path} belongs to a different config; delete it or use the same config")
    return state, arrays


def run_vacancy(potential: Potential, cfg: VacancyConfig, outdir: Path, checkpoint: Path,
                progress_factory=None, model_spec: str = "lj", log=print) -> dict:
    """Run (or resume) the hop-rate study and write result.json, arrhenius.png, manifest.json.

    The checkpoint belongs to one (config, potential fingerprint) pair; `model_spec` is only
    echoed into the manifest."""
    t_start = time.perf_counter()
    units, sysname = cfg.units.unit_system(), cfg.units.system
    chash = config_hash(cfg) + ":" + potential.fingerprint
    a = lattice_constant(potential, cfg.system.lattice_constant, sysname, units)
    vac, _, _ = vacancy_structure(cfg.system.supercell, a)
    R0, _, _, _ = relax(potential, vac.positions, vac.box, 1e-6, cfg.md.skin_sigma)
    kTs = [convert_input(T, "temperature", sysname, units) for T in cfg.run.temperatures]
    state, arrays = _resume_or_start(checkpoint, chash, len(kTs), log)
    run = _HopRun(potential, cfg, vac, _integrator(cfg), checkpoint)
    while state["t_index"] < len(kTs):
        arrays = run.temperature(state, arrays, R0, kTs[state["t_index"]], progress_factory)

    doc = _result(potential, cfg, state, a, vac.n_atoms)
    if cfg.compare.htst:
        _compare_htst(potential, cfg, doc)
    _plot(outdir / "arrhenius.png", doc, potential.name)
    timings = {"md_s": state["md_seconds"], "total_s": time.perf_counter() - t_start}
    doc["timings_s"] = timings
    write_json(outdir / "result.json", doc)
    write_json(outdir / "manifest.json", manifest("vacancy", cfg, cfg.seed, potential.precision,
                                                  timings, model=model_spec))
    return doc


def _resume_or_start(checkpoint: Path, chash: str, n_temperatures: int, log) -> tuple[dict, dict]:
    """The checkpoint's (state, arrays), or a fresh state before the first temperature."""
    loaded = _load_checkpoint(checkpoint, chash)
    if loaded is None:
        return ({"config_hash": chash, "t_index": 0, "segment": 0, "equilibrated": False,
                 "detectors": None, "start_time": None, "time_offset": 0.0, "finished": [],
                 "messages": [], "alive": None, "md_seconds": 0.0}, {})
    state, arrays = loaded
    where = (f"temperature {state['t_index'] + 1}/{n_temperatures}, segment {state['segment']}"
             if state["t_index"] < n_temperatures else "all MD done")
    log(f"resuming from {checkpoint}: {where}")
    return state, arrays


def _take(array: np.ndarray, alive: list[int]) -> np.ndarray:
    """The alive replicas' rows, or the single replica's array (run_md's un-batched form)."""
    return array[alive[0]] if len(alive) == 1 else array[alive]


class _HopRun:
    """One temperature's replicas: equilibration, then segments of MD through the hop detector,
    a checkpoint after each. `state`/`arrays` are the checkpoint's contents, updated in place."""

    def __init__(self, potential: Potential, cfg: VacancyConfig, vac, integ: Integrator, checkpoint: Path):
        self.potential, self.cfg, self.vac, self.integ, self.checkpoint = potential, cfg, vac, integ, checkpoint
        self.n_seg = -(-cfg.run.steps // cfg.md.segment_steps)

    def temperature(self, state: dict, arrays: dict, R0: np.ndarray, kT: float, progress_factory) -> dict:
        """Run (the rest of) temperature `state['t_index']`; returns the arrays to continue with."""
        cfg = self.cfg
        if state["alive"] is None:
            arrays = self._start(state, R0)
        dets = [HopDetector.from_state(d) for d in state["detectors"]]
        seed_base = cfg.seed * 100003 + state["t_index"] * 1009
        if not state["equilibrated"] and cfg.run.equilibration_steps > 0:
            self._equilibrate(state, arrays, kT, seed_base + 999)
        progress_cm = (progress_factory(f"kT={kT:.3f} hops", self.n_seg) if progress_factory else None)
        update = progress_cm.__enter__() if progress_cm else None
        try:
            while state["segment"] < self.n_seg and state["alive"]:
                self._segment(state, arrays, dets, kT, seed_base + state["segment"])
                if update:
                    update(state["segment"], self.n_seg)
        finally:
            if progress_cm:
                progress_cm.__exit__(None, None, None)
        self._finish(state, dets, kT)
        return {"positions": np.zeros(0), "velocities": np.zeros(0)}

    def _start(self, state: dict, R0: np.ndarray) -> dict:
        n_rep, run = self.cfg.run.n_replicas, self.cfg.run
        state["alive"] = list(range(n_rep))
        state["detectors"] = [HopDetector(run.persist_samples, run.defect_persist_samples).state()
                              for _ in range(n_rep)]
        state["start_time"] = [0.0] * n_rep
        state["time_offset"] = 0.0
        state["segment"], state["equilibrated"] = 0, False
        return {"positions": np.repeat(R0[None], n_rep, axis=0), "velocities": np.zeros((0,)),
                "last_sample": np.repeat(R0[None], n_rep, axis=0), "drift": np.zeros((n_rep, 3))}

    def _store_final(self, arrays: dict, alive: list[int], md) -> None:
        arrays["positions"][alive] = md.final["positions"].reshape(len(alive), -1, 3)
        if arrays["velocities"].size == 0:
            arrays["velocities"] = np.zeros_like(arrays["positions"])
        arrays["velocities"][alive] = md.final["velocities"].reshape(len(alive), -1, 3)

    def _equilibrate(self, state: dict, arrays: dict, kT: float, seed: int) -> None:
        md_cfg, alive = self.cfg.md, state["alive"]
        n_eq = -(-self.cfg.run.equilibration_steps // md_cfg.sample_every) * md_cfg.sample_every
        md = run_md(self.potential, _take(arrays["positions"], alive), self.vac.box, self.integ, n_eq, kT=kT,
                    seed=seed, sample_every=md_cfg.sample_every, chunk_steps=md_cfg.segment_steps,
                    skin=md_cfg.skin_sigma)
        state["md_seconds"] += md.run_seconds + md.compile_seconds
        arrays["velocities"] = np.zeros_like(arrays["positions"])
        self._store_final(arrays, alive, md)
        state["equilibrated"] = True

    def _segment(self, state: dict, arrays: dict, dets: list[HopDetector], kT: float, seed: int) -> None:
        """One MD segment of the alive replicas, fed to their hop detectors; checkpointed."""
        md_cfg, seg, alive = self.cfg.md, state["segment"], state["alive"]
        steps = min(md_cfg.segment_steps, self.cfg.run.steps - seg * md_cfg.segment_steps)
        steps = max(md_cfg.sample_every, steps // md_cfg.sample_every * md_cfg.sample_every)
        V0 = _take(arrays["velocities"], alive) if arrays["velocities"].size else None
        md = run_md(self.potential, _take(arrays["positions"], alive), self.vac.box, self.integ, steps, kT=kT,
                    seed=seed, sample_every=md_cfg.sample_every, chunk_steps=steps, skin=md_cfg.skin_sigma,
                    velocities=V0, record=("positions",))
        state["md_seconds"] += md.run_seconds + md.compile_seconds
        if md.status != "ok":
            state["messages"].append(f"kT={kT:.4g}: MD stopped ({md.message}); replicas {alive} dropped")
            state["alive"] = []
            return
        pos = md.samples["positions"]
        pos = pos[:, None] if len(alive) == 1 else pos  # (S, R, N, 3)
        times = state["time_offset"] + md.samples["time"]
        for k, r in enumerate(alive):
            prev = arrays["last_sample"][r] if seg > 0 else None
            drift = arrays["drift"][r] if seg > 0 else None
            fixed, last, drift = remove_drift(pos[:, k], self.vac.box, prev, drift)
            arrays["last_sample"][r], arrays["drift"][r] = last, drift
            v, ne = site_occupancy(fixed, self.vac.sites, self.vac.box)
            dets[r].feed(v, ne, times)
        state["time_offset"] = float(times[-1])
        self._store_final(arrays, alive, md)
        for r in list(alive):
            if dets[r].stopped:
                state["messages"].append(f"kT={kT:.4g} replica {r}: {dets[r].stopped}")
                alive = [x for x in alive if x != r]
        state["segment"] = seg + 1
        state["alive"] = alive
        state["detectors"] = [d.state() for d in dets]
        _save_checkpoint(self.checkpoint, state, arrays)

    def _finish(self, state: dict, dets: list[HopDetector], kT: float) -> None:
        """Record the temperature's hops and valid time; checkpoint before the next one."""
        hops = sum(d.n_hops for d in dets)
        sim_time = sum(max(d.valid_time - state["start_time"][r], 0.0) for r, d in enumerate(dets))
        state["finished"].append({"kT": kT, "hops": hops, "time": sim_time,
                                  "per_replica": [{"hops": d.n_hops, "time": d.valid_time, "stopped": d.stopped,
                                                   "hop_times": [h.time for h in d.hops]} for d in dets]})
        state["t_index"] += 1
        state["alive"] = None
        _save_checkpoint(self.checkpoint, state, {"positions": np.zeros(0), "velocities": np.zeros(0)})


def _result(potential, cfg: VacancyConfig, state: dict, a: float, n_atoms: int) -> dict:
    units = cfg.units.unit_system()
    T, tps, L = units.scale("temperature"), units.tau_ps, units.scale("length")
    rows = []
    for f in state["finished"]:
        r = rate_with_interval(f["hops"], f["time"])
        rows.append({"temperature": value(f["kT"] * T, "K", reduced_kT=f["kT"]), "hops": f["hops"],
                     "simulated_time": value(f["time"] * tps, "ps", reduced_tau=f["time"]),
                     "total_hop_rate": value(r["rate"] / tps, "1/ps", reduced_per_tau=r["rate"],
                                             std=r["rate_std"] / tps, n=f["hops"],
                                             ci95=[r["rate_low"] / tps, r["rate_high"] / tps]),
                     "replicas": f["per_replica"]})
    doc = {"potential": potential.describe(), "units": units.as_dict(),
           "system": {"supercell": cfg.system.supercell, "n_atoms": n_atoms,
                      "lattice_constant": value(a * L, "Å", reduced=a)},
           "rates": rows, "messages": state["messages"],
           "definition": "total vacancy hop rate = detected hops / simulated time (all 12 directions); "
                         "exact Poisson 95% intervals"}
    kT = np.array([f["kT"] for f in state["finished"]])
    n = np.array([f["hops"] for f in state["finished"]])
    t = np.array([f["time"] for f in state["finished"]])
    try:
        fit = arrhenius_fit(kT, n, t)
        boot = arrhenius_bootstrap(kT, n, t, n_resamples=BOOTSTRAP_RESAMPLES, seed=cfg.seed)
        E = units.scale("energy")
        doc["arrhenius"] = {
            "method": "Poisson maximum likelihood, Gamma = nu0 exp(-E_m / kT); std and ci95 from a "
                      f"parametric bootstrap ({boot.n_resamples} resamples, seed {cfg.seed}; {boot.n_failed} "
                      "without a finite fit left out); stderr from the Fisher information",
            "E_m": value(fit.energy * E, "eV", std=boot.energy_std * E, n=int(n.sum()),
                         ci95=[c * E for c in boot.energy_ci95], reduced_epsilon=fit.energy,
                         stderr=fit.energy_err * E),
            "nu0": value(fit.nu0 / tps, "1/ps", std=boot.nu0_std / tps, n=int(n.sum()),
                         ci95=[c / tps for c in boot.nu0_ci95], reduced_per_tau=fit.nu0,
                         stderr_log=fit.log_nu0_err),
            "bootstrap_failed": boot.n_failed, "deviance": fit.deviance, "n_temperatures": fit.n_points}
    except ValueError as exc:
        doc["arrhenius"] = {"status": "not fitted", "reason": str(exc)}
    return doc


def _compare_htst(potential, cfg: VacancyConfig, doc: dict) -> None:
    units = cfg.units.unit_system()
    tps, E = units.tau_ps, units.scale("energy")
    if cfg.compare.neb_result:
        p = Path(cfg.compare.neb_result)
        if not p.is_file():
            raise UserError(f"compare.neb_result: file not found: {p}")
        nd = json.loads(p.read_text())
        if nd.get("status") != "converged" or "htst" not in nd:
            raise UserError(f"compare.neb_result: {p} holds no converged barrier with HTST")
        Em = nd["barrier"]["forward"]["reduced_epsilon"]
        pref = nd["htst"]["prefactor"]["reduced_per_tau"]
        pref = float("nan") if pref is None else pref
        why = nd["htst"].get("reason", "")
        source = str(p)
    else:
        ncfg = NebConfig(units=cfg.units, potential=cfg.potential, system=cfg.system, string=cfg.compare.string,
                         htst=HTSTConfig(enabled=True, temperatures=list(cfg.run.temperatures)))
        try:
            out = compute_barrier(potential, ncfg)
        except SimulationError as exc:  # keep the MD rates: they are the expensive part
            doc["htst"] = {"status": "failed", "reason": str(exc)}
            return
        if not out["string"].converged or "htst" not in out:
            doc["htst"] = {"status": "failed", "reason": out["string"].message}
            return
        Em, pref = out["barrier_forward"], out["htst"].prefactor
        why = out["htst"].why_not_applicable
        source = "computed (string method + climbing image, same system)"
    if not np.isfinite(pref):
        doc["htst"] = {"status": "not applicable", "reason": why, "source": source,
                       "E_m": value(Em * E, "eV", reduced_epsilon=Em)}
        return
    rows = []
    for r in doc["rates"]:
        kT = r["temperature"]["reduced_kT"]
        k = N_HOP_DIRECTIONS * pref * np.exp(-Em / kT)
        md_rate = r["total_hop_rate"]["reduced_per_tau"]
        rows.append({"temperature_K": r["temperature"]["value"], "htst_total_rate": value(k / tps, "1/ps", reduced_per_tau=k),
                     "md_over_htst": md_rate / k if k > 0 else None})
    doc["htst"] = {"status": "ok", "source": source, "E_m": value(Em * E, "eV", reduced_epsilon=Em),
                   "prefactor": value(pref / tps, "THz", reduced_per_tau=pref),
                   "total_rate_prefactor": value(N_HOP_DIRECTIONS * pref / tps, "1/ps"),
                   "comparison": rows}


def _plot(path: Path, doc: dict, name: str) -> None:
    """MD rates with Poisson intervals vs 1000/T, the Arrhenius fit and the HTST line."""
    from mlffbench.plotting import MODEL_COLOR, pyplot, save

    fig, ax = pyplot().subplots(figsize=(5, 3.6))
    T = np.array([r["temperature"]["value"] for r in doc["rates"]])
    k = np.array([r["total_hop_rate"]["value"] for r in doc["rates"]])
    lo = np.array([r["total_hop_rate"]["ci95"][0] for r in doc["rates"]])
    hi = np.array([r["total_hop_rate"]["ci95"][1] for r in doc["rates"]])
    x = 1000.0 / T
    ok = k > 0
    ax.errorbar(x[ok], k[ok], yerr=[k[ok] - lo[ok], hi[ok] - k[ok]], fmt="o", color=MODEL_COLOR,
                label="MD (95% Poisson CI)")
    if (~ok).any():
        ax.plot(x[~ok], hi[~ok], "v", color=MODEL_COLOR, label="MD upper bound (0 hops)")
    xs = np.linspace(x.min() * 0.97, x.max() * 1.03, 50)
    if "E_m" in doc.get("arrhenius", {}):
        Em = doc["arrhenius"]["E_m"]["value"]
        nu0 = doc["arrhenius"]["nu0"]["value"]
        ax.plot(xs, nu0 * np.exp(-Em / (8.617333262e-5 * 1000.0 / xs)), "-",
                label=f"Arrhenius fit: E_m = {Em * 1000:.1f} meV")
    if "prefactor" in doc.get("htst", {}):
        Em = doc["htst"]["E_m"]["value"]
        pre = doc["htst"]["total_rate_prefactor"]["value"]
        ax.plot(xs, pre * np.exp(-Em / (8.617333262e-5 * 1000.0 / xs)), "--", label="harmonic TST (12 k)")
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel("total vacancy hop rate (1/ps)")
    ax.set_title(f"vacancy hopping, {name}")
    ax.legend(fontsize=8)
    save(fig, path)
