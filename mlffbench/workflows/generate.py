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

VACANCY_TRAJECTORY = 1000  # trajectory ids of the vacancy trajectories start here
STRAIN_TRAJECTORY = 2000   # trajectory id of the strained-cell frames


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


class StrainConfig(StrictModel):
    """Optional strained cells (off by default: both lists empty).

    Each strain state is the 0 K crystal (lattice constant a0) deformed by F, then NVT at
    `temperature` for `equilibration_steps` (not saved) + `steps` (saved every frame_every), so
    the data hold E(V) and the elastic response with their stress. volume_strains: fractional
    volume changes dV/V0 (box scaled by (1 + dV/V0)^(1/3)); shear_strains: engineering shear
    strains gamma of the volume-conserving simple shear F = I + gamma e_x e_y^T (xy). Frames get
    trajectory id STRAIN_TRAJECTORY (2000), frame numbers running over the states in order.
    """

    volume_strains: list[float] = []
    shear_strains: list[float] = []
    temperature: float = Field(10.0, gt=0)
    equilibration_steps: int = Field(200, ge=0)
    steps: int = Field(500, ge=1)

    @model_validator(mode="after")
    def _strains_in_range(self):
        for name, vals in (("volume_strains", self.volume_strains), ("shear_strains", self.shear_strains)):
            bad = [v for v in vals if not (0 < abs(v) <= 0.2)]
            if bad:
                raise ValueError(f"{name}: {bad} must be nonzero with |value| <= 0.2")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.volume_strains or self.shear_strains)


class VacancyConfig(StrictModel):
    """Optional vacancy-containing trajectories (off by default).

    in_dataset: false writes them to vacancy_dataset.* (their own atom count); true appends them
    to the main dataset, each frame padded to N atoms with one ghost atom (NaN position, zero
    force: an atom infinitely far away, LJ energy 0) and an `n_atoms` array (N - 1 for them).
    """

    n_trajectories: int = Field(0, ge=0)
    in_dataset: bool = False


class GenerateConfig(StrictModel):
    """Top-level config of `mlffbench generate`."""

    units: UnitsConfig = UnitsConfig()
    potential: PotentialConfig = PotentialConfig()
    seed: int = 0
    system: SystemConfig = SystemConfig()
    md: MDSettings = MDSettings()
    protocol: ProtocolConfig = ProtocolConfig()
    strain: StrainConfig = StrainConfig()
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
        st = self.strain
        if st.enabled and (st.steps % p.frame_every or st.equilibration_steps % p.frame_every):
            raise ValueError(f"strain.steps ({st.steps}) and strain.equilibration_steps "
                             f"({st.equilibration_steps}) must be multiples of protocol.frame_every ({p.frame_every})")
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
        logs.extend(_log_lines(name, res, base, integrator.dt))
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


def _log_lines(name: str, res: MDResult, base: int, dt: float) -> list[str]:
    """Thermo lines (reduced units) of one segment's samples; `base` = steps before the segment."""
    s = res.samples
    return [f"{name} {int(s['step'][k]) + base} {s['time'][k] + base * dt:.6f} {s['T'][k]:.6f} "
            f"{s['Epot'][k]:.8f} {s['Ekin'][k]:.8f} {s['Etot'][k]:.8f} {s['P'][k]:.6f}"
            for k in range(len(s["T"]))]


def strain_deformations(st: StrainConfig) -> list[tuple[str, np.ndarray]]:
    """(label, deformation gradient F (3, 3)) per strain state: the volume strains, then the shears.

    A deformed cell has box F @ box0 (columns = lattice vectors) and positions R0 @ F.T.
    """
    out = [(f"volume{dv:+g}", np.eye(3) * (1.0 + dv) ** (1.0 / 3.0)) for dv in st.volume_strains]
    for g in st.shear_strains:
        F = np.eye(3)
        F[0, 1] = g
        out.append((f"shear{g:+g}", F))
    return out


def run_strain(potential: Potential, cfg: GenerateConfig, a0: float,
               progress: Callable[[int, int], None] | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every strain state of `cfg.strain`: NVT at the strain's temperature -> (frame arrays, thermo lines).

    Frames carry trajectory id STRAIN_TRAJECTORY; their stress is the strained cell's own."""
    st, p = cfg.strain, cfg.protocol
    integ = integrators(cfg)["nvt"]
    kT = _in_reduced(cfg, st.temperature, "temperature")
    common = dict(sample_every=p.frame_every, skin=cfg.md.skin_sigma, chunk_steps=cfg.md.chunk_steps)
    states = strain_deformations(st)
    per_state = st.equilibration_steps + st.steps
    frames, logs, frame_no = [], [], 0
    for k, (label, F) in enumerate(states):
        crystal = fcc(cfg.system.supercell, a0)
        R, box, V = crystal.positions @ F.T, F @ crystal.box, None
        seed = cfg.seed * 1000 + STRAIN_TRAJECTORY + k
        base = k * per_state
        for name, steps, record in (("equil", st.equilibration_steps, ()),
                                    ("run", st.steps, ("positions", "forces", "stress", "box"))):
            if steps == 0:
                continue
            res = run_md(potential, R, box, integ, steps, kT=kT, seed=seed, velocities=V, record=record,
                         progress=(lambda j, n, b=base: progress(b + j, len(states) * per_state))
                         if progress else None, **common)
            if res.status != "ok":
                from mlffbench.errors import SimulationError

                raise SimulationError(f"strain state {label}, {name} segment: {res.message}")
            logs.extend(_log_lines(f"{label}-{name}", res, base, integ.dt))
            R, V, base = res.final["positions"], res.final["velocities"], base + steps
            seed += 7919
        n = st.steps // p.frame_every
        frames.append(_frames(res, np.full(n, kT), STRAIN_TRAJECTORY, frame_no))
        frame_no += n
    return {key: np.concatenate([f[key] for f in frames]) for key in frames[0]}, logs


def pad_with_ghost(arrays: dict[str, np.ndarray], n_atoms: int) -> dict[str, np.ndarray]:
    """Frames of n_atoms - 1 atoms padded to n_atoms: one ghost atom (NaN position, zero force).

    The ghost is an atom infinitely far away: it has no neighbours and LJ energy 0, so the
    frame's energy and stress are unchanged. Adds `n_atoms` (F,) = n_atoms - 1.
    """
    out = dict(arrays)
    F = len(arrays["positions"])
    out["positions"] = np.concatenate([arrays["positions"], np.full((F, 1, 3), np.nan)], axis=1)
    out["forces"] = np.concatenate([arrays["forces"], np.zeros((F, 1, 3))], axis=1)
    out["n_atoms"] = np.full(F, n_atoms - 1, np.int64)
    return out


def phase_labels(positions: np.ndarray, boxes: np.ndarray, n_cells: int, threshold: float) -> np.ndarray:
    """0 (solid) / 1 (liquid) per frame: the FCC order parameter with each frame's own box.

    positions (F, N, 3), boxes (F, 3, 3) -> (F,) int64. The box matters: the <111> vectors of the
    10 K cell are ~4 % off the Bragg peaks of a crystal that expanded on heating at zero
    pressure, which would halve |rho_k| of a hot crystal and mislabel it liquid.
    """
    order = np.array([fcc_order_parameter(R, b, n_cells) for R, b in zip(positions, boxes)])
    return (order < threshold).astype(np.int64)


def check_strained_boxes(cfg: GenerateConfig, a0: float) -> None:
    """Refuse strain states whose cell is thinner than 2 (cutoff + skin) in some direction."""
    from mlffbench.errors import UserError
    from mlffbench.neighbors import perpendicular_widths

    reach = cfg.potential.cutoff_sigma + cfg.md.skin_sigma
    for label, F in strain_deformations(cfg.strain):
        half = 0.5 * float(np.min(perpendicular_widths(F @ fcc(cfg.system.supercell, a0).box)))
        if reach > half:
            raise UserError(f"strain state {label}: potential.cutoff_sigma + md.skin_sigma = {reach:g} sigma is "
                            f"larger than half the strained cell's width ({half:.3g} sigma); use a larger "
                            "system.supercell or smaller strains")


def frame_atoms(ds: Dataset) -> np.ndarray:
    """Real atoms per frame (F,): `n_atoms` where frames are ghost-padded, else N for every frame."""
    n = ds.positions.shape[1]
    return np.asarray(ds.arrays.get("n_atoms", np.full(len(ds), n)), np.int64)


def merge_parts(parts: list[dict[str, np.ndarray]], n_atoms: int) -> dict[str, np.ndarray]:
    """Concatenate frame arrays; when any part is ghost-padded, every part gets `n_atoms`."""
    if any("n_atoms" in part for part in parts):
        parts = [part if "n_atoms" in part else {**part, "n_atoms": np.full(len(part["energy"]), n_atoms, np.int64)}
                 for part in parts]
    return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}


def write_dataset_extxyz(path: Path, ds: Dataset, units: UnitSystem) -> None:
    """dataset.extxyz; ghost-padded frames are written with their real atoms only (their own N)."""
    if "n_atoms" not in ds.arrays:
        write_extxyz(path, ds, units)
        return
    n = frame_atoms(ds)
    edges = np.flatnonzero(np.diff(n)) + 1
    chunks = []
    for k, idx in enumerate(np.split(np.arange(len(ds)), edges)):
        sub = ds.subset(idx)
        m = int(n[idx[0]])
        sub.arrays["positions"], sub.arrays["forces"] = sub.positions[:, :m], sub.forces[:, :m]
        tmp = path.parent / f".{path.name}.part{k}"
        write_extxyz(tmp, sub, units)
        chunks.append(tmp.read_text())
        tmp.unlink()
    path.write_text("".join(chunks))


def run_generate(cfg: GenerateConfig, outdir: Path, potential: Potential | None = None,
                 progress_factory=None) -> dict:
    """Run the protocol and write dataset.npz, dataset.extxyz, thermo.log and manifest.json into
    `outdir` (an existing, empty directory: the caller makes it atomic). Returns a summary dict.

    Strained cells (cfg.strain) go into the main dataset; vacancy trajectories into
    vacancy_dataset.* or, with vacancies.in_dataset, ghost-padded into the main dataset."""
    units: UnitSystem = cfg.units.unit_system()
    potential = potential or reference_potential(cfg.potential)
    t_start = time.perf_counter()
    if cfg.system.lattice_constant is not None:
        a0 = _in_reduced(cfg, cfg.system.lattice_constant, "length")
    else:
        a0 = lattice_constant(potential)
    check_box(cfg, a0)
    check_strained_boxes(cfg, a0)
    t_lattice = time.perf_counter() - t_start
    p = cfg.protocol
    steps_total = p.npt.steps + p.nvt.steps + p.ramp.steps + sum(h.steps for h in p.hold)
    n_cells = cfg.system.supercell

    def with_progress(desc: str, total: int, fn):
        if progress_factory is None:
            return fn(None)
        with progress_factory(desc, total) as update:
            return fn(update)

    def collect(n_traj: int, vacancy: bool, label: str):
        parts, logs = [], []
        for traj in range(n_traj):
            tid = traj + (VACANCY_TRAJECTORY if vacancy else 0)
            arrays, lines = with_progress(f"{label} {traj + 1}/{n_traj}", steps_total,
                                          lambda up, t=tid: run_trajectory(potential, cfg, a0, t, vacancy, up))
            parts.append(arrays)
            logs += [f"{tid} {line}" for line in lines]
        arrays = {k: np.concatenate([p_[k] for p_ in parts]) for k in parts[0]}
        arrays["phase"] = phase_labels(arrays["positions"], arrays["box"], n_cells, p.solid_threshold)
        return arrays, logs

    meta = {"potential": potential.describe(), "lattice_constant_sigma": a0}
    t0 = time.perf_counter()
    main, logs = collect(p.n_trajectories, False, "trajectory")
    n_atoms = main["positions"].shape[1]
    parts = [main]
    if cfg.strain.enabled:
        st = cfg.strain
        total = len(strain_deformations(st)) * (st.equilibration_steps + st.steps)
        sarr, slogs = with_progress("strained cells", total, lambda up: run_strain(potential, cfg, a0, up))
        sarr["phase"] = phase_labels(sarr["positions"], sarr["box"], n_cells, p.solid_threshold)
        parts.append(sarr)
        logs += [f"{STRAIN_TRAJECTORY} {line}" for line in slogs]
    vac = None
    if cfg.vacancies.n_trajectories:
        vac = collect(cfg.vacancies.n_trajectories, True, "vacancy trajectory")
        if cfg.vacancies.in_dataset:
            parts.append(pad_with_ghost(vac[0], n_atoms))
            logs += vac[1]
            vac = None
    ds = Dataset(merge_parts(parts, n_atoms), units.as_dict(), meta)
    wall = {"lattice_constant": t_lattice, "md": time.perf_counter() - t0}
    save_dataset_npz(outdir / "dataset.npz", ds)
    write_dataset_extxyz(outdir / "dataset.extxyz", ds, units)
    _write_thermo(outdir / "thermo.log", logs, units)
    files = {"dataset_npz_sha256": sha256_file(outdir / "dataset.npz")}
    if vac is not None:
        vds = Dataset(vac[0], units.as_dict(), meta)
        save_dataset_npz(outdir / "vacancy_dataset.npz", vds)
        write_extxyz(outdir / "vacancy_dataset.extxyz", vds, units)
        _write_thermo(outdir / "vacancy_thermo.log", vac[1], units)
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
    n = frame_atoms(ds)
    return {
        "frames": len(ds), "atoms": int(ds.positions.shape[1]),
        "strain_frames": int(np.sum(ds.trajectory == STRAIN_TRAJECTORY)),
        "vacancy_frames": int(np.sum(n < ds.positions.shape[1])),
        "trajectories": int(len(np.unique(ds.trajectory))),
        "potential": potential.name,
        "lattice_constant_A": a0 * units.scale("length"),
        "temperature_K": [float(T.min()), float(T.max())],
        "solid_frames": int(np.sum(ds.phase == 0)), "liquid_frames": int(np.sum(ds.phase == 1)),
        "density_g_cm3": [float(x) for x in np.array([rho.min(), rho.max()])],
        "energy_per_atom_eV": [float(x) for x in np.array([(ds.energy / n).min(), (ds.energy / n).max()])
                               * units.scale("energy")],
        "force_std_eV_per_A": float(np.std(ds.forces[n == ds.positions.shape[1]]) * units.scale("force")),
    }


def frame_density(ds: Dataset, units: UnitSystem) -> np.ndarray:
    """Mass density of every frame (g/cm^3), shape (F,)."""
    from ase.units import _amu  # kg

    volume_cm3 = np.abs(np.linalg.det(ds.box)) * (units.sigma_angstrom * 1e-8) ** 3
    return frame_atoms(ds) * units.mass_amu * _amu * 1e3 / volume_cm3


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
    e = ds.energy / frame_atoms(ds) * units.epsilon_ev
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
