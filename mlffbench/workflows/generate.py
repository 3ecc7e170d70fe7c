"""`mlffbench generate`: the paper's training-data protocol for LJ argon.

Per trajectory (each with its own seed): FCC crystal at the potential's 0 K lattice constant ->
NPT at low T to reach the zero-pressure density -> NVT at that T -> temperature ramp (NPT at zero
pressure by default, or NVT) -> optional fixed-temperature hold segments (NVT or NPT). Frames
(positions, forces, energy, stress, box, temperature, phase label) are taken every `frame_every`
steps of the NVT, ramp and hold segments. Optional vacancy trajectories (off by default: the
benchmark's point is that the model never saw a vacancy) go to a separate file because their
atom count differs.

Protocols (configs/): `generate-quick.yaml` and `generate-paper.yaml` heat the crystal through
melting: the ramp runs at zero pressure (NPT) to 105 K, where the 256-atom crystal melts (it
superheats to ~100 K), then an NPT hold at 105 K keeps the liquid, so the data span the crystal
from 10 K to melting, the liquid and the densities in between. `generate-fixed-density.yaml` is
the named variant `fixed-density`: the NVT ramp at the 10 K density, which never melts.

Phase label: the translational order parameter |rho_k| = |(1/N) sum_j exp(i k.r_j)| averaged over
the four <111> reciprocal vectors of the FCC supercell. It is ~exp(-k^2<u^2>/6) (0.6-0.9) in the
crystal and ~N^-1/2 (< 0.1) in the liquid; frames above `solid_threshold` are 'solid'.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Literal

import numpy as np
from pydantic import Field, model_validator

from mlffbench.config import PotentialConfig, StrictModel, UnitsConfig, lj_defaults
from mlffbench.dynamics.md import Integrator, MDResult, run_md
from mlffbench.dynamics.lattice import lattice_constant
from mlffbench.potentials import reference_potential
from mlffbench.io import Dataset, manifest, save_dataset_npz, sha256_file, write_extxyz, write_json
from mlffbench.potentials.base import Potential
from mlffbench.properties.structure import fcc_order_parameter
from mlffbench.structures import fcc, remove_atom
from mlffbench.units import UnitSystem, convert_input


class Segment(StrictModel):
    """A fixed-temperature MD segment. temperature in K (metal) or kT (lj); steps >= 0."""

    temperature: float = Field(gt=0)
    steps: int = Field(ge=0)


class HoldSegment(Segment):
    """A fixed-temperature segment after the ramp; ensemble 'npt' holds at zero pressure."""

    ensemble: Literal["nvt", "npt"] = "nvt"


class RampSegment(StrictModel):
    """Linear temperature ramp from `start` to `stop` over `steps` steps; 'npt' = at zero pressure."""

    start: float = Field(gt=0)
    stop: float = Field(gt=0)
    steps: int = Field(ge=0)
    ensemble: Literal["nvt", "npt"] = "npt"


class SystemConfig(StrictModel):
    """supercell: n for n x n x n conventional FCC cells (4 n^3 atoms). lattice_constant: Å (metal)
    or sigma (lj); null = the potential's own 0 K lattice constant."""

    supercell: int = Field(4, ge=1, le=20)
    lattice_constant: float | None = Field(None, gt=0)


class MDSettings(StrictModel):
    """Integrator settings. Times in fs (metal) or tau (lj)."""

    timestep: float = Field(5.0, gt=0)
    thermostat: Literal["nose_hoover", "langevin"] = "nose_hoover"
    thermostat_time: float = Field(500.0, gt=0)
    barostat_time: float = Field(5000.0, gt=0)
    langevin_friction: float = Field(0.01, gt=0, description="1/fs (metal) or 1/tau (lj)")
    skin_sigma: float = Field(0.3, gt=0)
    chunk_steps: int = Field(2000, ge=1)


class ProtocolConfig(StrictModel):
    """The data protocol. frame_every: steps between saved frames."""

    n_trajectories: int = Field(2, ge=1)
    npt: Segment = Segment(temperature=10.0, steps=2000)
    nvt: Segment = Segment(temperature=10.0, steps=1000)
    ramp: RampSegment = RampSegment(start=10.0, stop=105.0, steps=10000)
    hold: list[HoldSegment] = []
    frame_every: int = Field(50, ge=1)
    solid_threshold: float = Field(0.3, gt=0, lt=1)


class VacancyConfig(StrictModel):
    """Optional vacancy-containing trajectories (off by default)."""

    n_trajectories: int = Field(0, ge=0)


class GenerateConfig(StrictModel):
    """Top-level config of `mlffbench generate`."""

    units: UnitsConfig = UnitsConfig()
    potential: PotentialConfig = PotentialConfig()
    seed: int = 0
    system: SystemConfig = SystemConfig()
    md: MDSettings = MDSettings()
    protocol: ProtocolConfig = ProtocolConfig()
    vacancies: VacancyConfig = VacancyConfig()

    @model_validator(mode="after")
    def _frames_fit(self):
        p = self.protocol
        for name, steps in (("protocol.nvt.steps", p.nvt.steps), ("protocol.ramp.steps", p.ramp.steps),
                            *((f"protocol.hold.{k}.steps", h.steps) for k, h in enumerate(p.hold))):
            if steps % p.frame_every:
                raise ValueError(f"{name} ({steps}) must be a multiple of protocol.frame_every ({p.frame_every})")
        if p.npt.steps % p.frame_every:
            raise ValueError(f"protocol.npt.steps ({p.npt.steps}) must be a multiple of protocol.frame_every")
        return self

    @model_validator(mode="before")
    @classmethod
    def _lj_defaults(cls, data):
        return lj_defaults(data, "md", MDSettings, {"timestep": "time", "thermostat_time": "time",
                                                    "barostat_time": "time", "langevin_friction": "rate"})


def _in_reduced(cfg: GenerateConfig, value: float, quantity: str) -> float:
    return convert_input(value, quantity, cfg.units.system, cfg.units.unit_system())


def integrators(cfg: GenerateConfig) -> dict[str, Integrator]:
    """The NVT, NPT integrators of the config, in reduced units."""
    md = cfg.md
    dt = _in_reduced(cfg, md.timestep, "time")
    tau_T = _in_reduced(cfg, md.thermostat_time, "time")
    tau_P = _in_reduced(cfg, md.barostat_time, "time")
    gamma = 1.0 / _in_reduced(cfg, 1.0 / md.langevin_friction, "time")
    nvt = "nvt_nose_hoover" if md.thermostat == "nose_hoover" else "nvt_langevin"
    return {"nvt": Integrator(nvt, dt=dt, tau_T=tau_T, gamma=gamma),
            "npt": Integrator("npt_nose_hoover", dt=dt, tau_T=tau_T, tau_P=tau_P, pressure=0.0)}


def check_box(cfg: GenerateConfig, a: float) -> None:
    """Refuse cells where cutoff + skin exceeds half the box (NPT needs the minimum image)."""
    half = 0.5 * cfg.system.supercell * a
    reach = cfg.potential.cutoff_sigma + cfg.md.skin_sigma
    if reach > half:
        from mlffbench.errors import UserError

        raise UserError(f"potential.cutoff_sigma + md.skin_sigma = {reach:g} sigma is larger than half the box "
                        f"({half:.3g} sigma); use a larger system.supercell")


def _frames(res: MDResult, kT_target: np.ndarray, traj: int, first_frame: int) -> dict[str, np.ndarray]:
    s = res.samples
    return {"positions": s["positions"], "forces": s["forces"], "energy": s["Epot"],
            "stress": s["stress"], "box": s["box"], "temperature": s["T"],
            "kT_target": kT_target, "trajectory": np.full(len(s["T"]), traj),
            "frame": first_frame + np.arange(len(s["T"]))}


def run_trajectory(potential: Potential, cfg: GenerateConfig, a0: float, traj: int, vacancy: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """One trajectory of the protocol -> (frame arrays, thermo log lines)."""
    p = cfg.protocol
    T = lambda t: _in_reduced(cfg, t, "temperature")  # noqa: E731
    integ = integrators(cfg)
    crystal = fcc(cfg.system.supercell, a0)
    if vacancy:
        crystal = remove_atom(crystal, 0)
    seed = cfg.seed * 1000 + traj
    record = ("positions", "forces", "stress", "box")
    common = dict(sample_every=p.frame_every, skin=cfg.md.skin_sigma, chunk_steps=cfg.md.chunk_steps)
    steps_total = p.npt.steps + p.nvt.steps + p.ramp.steps + sum(h.steps for h in p.hold)
    done = [0]

    def sub_progress(k: int, _n: int, base: int) -> None:
        if progress:
            progress(base + k, steps_total)

    R, V, box = crystal.positions, None, crystal.box
    logs: list[str] = []
    frames: list[dict] = []
    frame_no = 0

    def segment(name: str, integrator: Integrator, kT, steps: int, keep: bool, seg_seed: int):
        nonlocal R, V, box, frame_no
        if steps == 0:
            return
        base = done[0]
        res = run_md(potential, R, box, integrator, steps, kT=kT, seed=seg_seed, velocities=V, record=record,
                     progress=lambda k, n: sub_progress(k, n, base), **common)
        if res.status != "ok":
            from mlffbench.errors import SimulationError

            raise SimulationError(f"trajectory {traj}, {name} segment: {res.message}")
        kT_arr = np.broadcast_to(np.asarray(kT, float), (steps,))[p.frame_every - 1::p.frame_every]
        for k in range(len(res.samples["T"])):
            s = res.samples
            logs.append(f"{name} {int(s['step'][k]) + base} {s['time'][k] + base * integrator.dt:.6f} "
                        f"{s['T'][k]:.6f} {s['Epot'][k]:.8f} {s['Ekin'][k]:.8f} {s['Etot'][k]:.8f} {s['P'][k]:.6f}")
        if keep:
            frames.append(_frames(res, kT_arr, traj, frame_no))
            frame_no += len(kT_arr)
        R, V, box = res.final["positions"], res.final["velocities"], res.final["box"]
        done[0] += steps

    segment("npt", integ["npt"], T(p.npt.temperature), p.npt.steps, False, seed)
    # the NVT segments continue in the final NPT box: the crystal's zero-pressure density at low T
    segment("nvt", integ["nvt"], T(p.nvt.temperature), p.nvt.steps, True, seed + 1)
    ramp = np.linspace(T(p.ramp.start), T(p.ramp.stop), p.ramp.steps) if p.ramp.steps else np.zeros(0)
    segment("ramp", integ["npt"] if p.ramp.ensemble == "npt" else integ["nvt"], ramp, p.ramp.steps, True, seed + 2)
    for k, hold in enumerate(p.hold):
        segment(f"hold{k}", integ[hold.ensemble], T(hold.temperature), hold.steps, True, seed + 3 + k)
    out = {key: np.concatenate([f[key] for f in frames]) for key in frames[0]} if frames else {}
    return out, logs


def phase_labels(positions: np.ndarray, boxes: np.ndarray, n_cells: int, threshold: float) -> np.ndarray:
    """0 (solid) / 1 (liquid) per frame: the FCC order parameter with each frame's own box.

    positions (F, N, 3), boxes (F, 3, 3) -> (F,) int64. The box matters: the <111> vectors of the
    10 K cell are ~4 % off the Bragg peaks of a crystal that expanded on heating at zero
    pressure, which would halve |rho_k| of a hot crystal and mislabel it liquid.
    """
    order = np.array([fcc_order_parameter(R, b, n_cells) for R, b in zip(positions, boxes)])
    return (order < threshold).astype(np.int64)


def run_generate(cfg: GenerateConfig, outdir: Path, potential: Potential | None = None,
                 progress_factory=None) -> dict:
    """Run the protocol and write dataset.npz, dataset.extxyz, thermo.log and manifest.json into
    `outdir` (an existing, empty directory: the caller makes it atomic). Returns a summary dict."""
    units: UnitSystem = cfg.units.unit_system()
    potential = potential or reference_potential(cfg.potential)
    t_start = time.perf_counter()
    if cfg.system.lattice_constant is not None:
        a0 = _in_reduced(cfg, cfg.system.lattice_constant, "length")
    else:
        a0 = lattice_constant(potential)
    check_box(cfg, a0)
    t_lattice = time.perf_counter() - t_start
    p = cfg.protocol
    steps_total = p.npt.steps + p.nvt.steps + p.ramp.steps + sum(h.steps for h in p.hold)

    def collect(n_traj: int, vacancy: bool, label: str):
        parts, logs = [], []
        for traj in range(n_traj):
            desc = f"{label} {traj + 1}/{n_traj}"
            if progress_factory is None:
                arrays, lines = run_trajectory(potential, cfg, a0, traj + (1000 if vacancy else 0), vacancy)
            else:
                with progress_factory(desc, steps_total) as update:
                    arrays, lines = run_trajectory(potential, cfg, a0, traj + (1000 if vacancy else 0),
                                                   vacancy, progress=update)
            parts.append(arrays)
            logs += [f"{traj + (1000 if vacancy else 0)} {line}" for line in lines]
        arrays = {k: np.concatenate([p_[k] for p_ in parts]) for k in parts[0]}
        arrays["phase"] = phase_labels(arrays["positions"], arrays["box"], cfg.system.supercell,
                                       p.solid_threshold)
        return Dataset(arrays, units.as_dict(), {"potential": potential.describe(), "lattice_constant_sigma": a0}), logs

    t0 = time.perf_counter()
    ds, logs = collect(p.n_trajectories, False, "trajectory")
    wall = {"lattice_constant": t_lattice, "md": time.perf_counter() - t0}
    save_dataset_npz(outdir / "dataset.npz", ds)
    write_extxyz(outdir / "dataset.extxyz", ds, units)
    _write_thermo(outdir / "thermo.log", logs, units)
    files = {"dataset_npz_sha256": sha256_file(outdir / "dataset.npz")}
    if cfg.vacancies.n_trajectories:
        vds, vlogs = collect(cfg.vacancies.n_trajectories, True, "vacancy trajectory")
        save_dataset_npz(outdir / "vacancy_dataset.npz", vds)
        write_extxyz(outdir / "vacancy_dataset.extxyz", vds, units)
        _write_thermo(outdir / "vacancy_thermo.log", vlogs, units)
        files["vacancy_dataset_npz_sha256"] = sha256_file(outdir / "vacancy_dataset.npz")
    wall["total"] = time.perf_counter() - t_start
    summary = summarize(ds, units, a0, potential)
    plot_generate(ds, units, outdir / "generate.png")
    write_json(outdir / "manifest.json",
               {**manifest("generate", cfg, seed=cfg.seed, dtype="float64", wall_times=wall,
                           dataset_sha256=files["dataset_npz_sha256"], **files),
                "potential": potential.describe(), "units": units.as_dict(), "summary": summary})
    return summary


def summarize(ds: Dataset, units: UnitSystem, a0: float, potential: Potential) -> dict:
    """Numbers worth printing about a dataset (metal units)."""
    T = ds.temperature * units.scale("temperature")
    rho = frame_density(ds, units)
    return {
        "frames": len(ds), "atoms": int(ds.positions.shape[1]),
        "trajectories": int(len(np.unique(ds.trajectory))),
        "potential": potential.name,
        "lattice_constant_A": a0 * units.scale("length"),
        "temperature_K": [float(T.min()), float(T.max())],
        "solid_frames": int(np.sum(ds.phase == 0)), "liquid_frames": int(np.sum(ds.phase == 1)),
        "density_g_cm3": [float(x) for x in np.array([rho.min(), rho.max()])],
        "energy_per_atom_eV": [float(x) for x in np.array([ds.energy.min(), ds.energy.max()])
                               / ds.positions.shape[1] * units.scale("energy")],
        "force_std_eV_per_A": float(np.std(ds.forces) * units.scale("force")),
    }


def frame_density(ds: Dataset, units: UnitSystem) -> np.ndarray:
    """Mass density of every frame (g/cm^3), shape (F,)."""
    from ase.units import _amu  # kg

    volume_cm3 = np.abs(np.linalg.det(ds.box)) * (units.sigma_angstrom * 1e-8) ** 3
    return ds.positions.shape[1] * units.mass_amu * _amu * 1e3 / volume_cm3


def _write_thermo(path: Path, lines: list[str], units: UnitSystem) -> None:
    """Thermo log in metal units: one line per sample."""
    out = ["# trajectory segment step time_ps T_K Epot_eV Ekin_eV Etot_eV P_bar"]
    for line in lines:
        tr, seg, step, t, T, ep, ek, et, P = line.split()
        out.append(" ".join([tr, seg, step, f"{float(t) * units.tau_ps:.4f}",
                             f"{float(T) * units.temperature_k:.3f}",
                             *(f"{float(x) * units.epsilon_ev:.6f}" for x in (ep, ek, et)),
                             f"{float(P) * units.scale('pressure'):.3f}"]))
    path.write_text("\n".join(out) + "\n")


def plot_generate(ds: Dataset, units: UnitSystem, path: Path) -> None:
    """Potential energy per atom and density of every saved frame against temperature, by phase."""
    from mlffbench.plotting import PALETTE, pyplot, save

    plt = pyplot()
    T = ds.temperature * units.temperature_k
    e = ds.energy / ds.positions.shape[1] * units.epsilon_ev
    rho = frame_density(ds, units)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for phase, colour, label in ((0, PALETTE[0], "solid"), (1, PALETTE[3], "liquid")):
        sel = ds.phase == phase
        ax[0].scatter(T[sel], e[sel], s=4, c=colour, label=f"{label} ({sel.sum()})")
        ax[1].scatter(T[sel], rho[sel], s=4, c=colour, label=label)
    ax[0].set_ylabel("potential energy per atom (eV)")
    ax[1].set_ylabel("density (g/cm³)")
    for a in ax:
        a.set_xlabel("instantaneous temperature (K)")
    ax[0].set_title("generated frames")
    ax[0].legend()
    fig.tight_layout()
    save(fig, path)
