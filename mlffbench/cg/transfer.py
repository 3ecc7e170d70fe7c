"""The CG transferability workflow: reference -> mapping -> force matching -> CG MD at every state.

`run_cg(cfg, outdir)` writes into `outdir` (see docs/cg.md for the layout):
  reference/<state>.npz        fine-grained frames (generated or imported copy)
  mapped/<state>.npz           CG frames: bead positions, mapped forces, box, times
  models/hipnn-ts/             params.msgpack + model_card.json (prior and energy scale in the card)
  models/pair_spline.json      the MS-CG baseline
  states/<state>/result.json   metrics of every model at that state
  rdf_<state>.png              RDF overlays (reference, HIP-NN-TS, pair spline)
  transferability.json         the state x metric table
Metric caveats (also in every result.json):
* pressure: force matching fits forces, not the volume dependence of the free energy, so a
  force-matched CG model's virial pressure is NOT expected to equal the all-atom pressure
  (Dunn & Noid); the reference pressure here is the atomistic virial pressure;
* diffusion: CG dynamics under Langevin friction gamma are not the mapped dynamics (lost
  friction makes CG diffusion faster); the ratio D_CG / D_ref is reported, not a target of 1.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mlffbench.cg.checks import (
    contact_check,
    frame_rdfs,
    min_pair_distances,
    split_half_distance,
)
from mlffbench.cg.config import CGConfig
from mlffbench.cg.data import AllAtomData, load_all_atom, save_all_atom
from mlffbench.cg.fit import (
    TrainSettings,
    fit_hipnn,
    fit_spline,
    hipnn_cg_potential,
    model_forces,
    prior_forces,
    save_cg_hipnn,
    save_cg_spline,
    spline_cg_potential,
)
from mlffbench.cg.mapping import get_mapping
from mlffbench.cg.prior import RepulsivePrior, fit_exponential_prior
from mlffbench.cg.reference import TrimerModel, simulate_state
from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.errors import UserError
from mlffbench.io import write_json
from mlffbench.properties.structure import (
    diffusion_coefficient,
    first_rise,
    msd,
    rdf,
    rdf_distance,
    unwrap,
)
from mlffbench.stats import block_average

PRESSURE_BLOCKS = 8  # block averages of the CG pressure series (mlffbench.stats.block_average)

CAVEATS = {
    "pressure": "force matching does not constrain the CG pressure; the reference is the atomistic virial "
                "pressure, so a mismatch is expected for any force-matched model (compare models, not to 1)",
    "diffusion": "CG Langevin dynamics (friction gamma) are faster than mapped all-atom dynamics; the ratio "
                 "D_CG/D_ref compares dynamics, it is not expected to be 1",
    "rdf_noise_floor": "split-half RDF distance of the mapped reference (first vs second half of its frames, "
                       "same metric): model distances within it are not resolved; an exact model sampled as "
                       "long as the reference is expected near 1/sqrt(2) of it",
    "contact": "a model fails a state when its CG MD (sampled frames) brings two beads closer than the "
               "reference's smallest sampled distance minus prior.margin",
    "force_rmse": "mapped forces carry a large irreducible fluctuation (orientations are integrated out); "
                  "the RMS of the mapped force is given as the zero-model value",
}


def _log(progress, msg: str) -> None:
    if progress is not None:
        progress(msg)


def reference_frames(cfg: CGConfig, outdir: Path, progress=None) -> dict[str, AllAtomData]:
    """Generate (trimer liquid) or import the all-atom frames of every state point."""
    ref = cfg.reference
    model = TrimerModel(**ref.molecule.model_dump())
    out = {}
    (outdir / "reference").mkdir(parents=True, exist_ok=True)
    for k, st in enumerate(cfg.states):
        t0 = time.perf_counter()
        if st.file is not None:
            data = load_all_atom(st.file, name=st.name)
            data.kT = st.kT
        else:
            data = simulate_state(st.name, st.kT, st.atom_density, ref.n_side, seed=cfg.seed + 100 * k,
                                  dt=ref.dt, gamma=ref.gamma, warmup_steps=ref.warmup_steps,
                                  equil_steps=ref.equil_steps, prod_steps=ref.prod_steps,
                                  sample_every=ref.sample_every, model=model)
        data.meta["wall_seconds"] = time.perf_counter() - t0
        save_all_atom(outdir / "reference" / f"{st.name}.npz", data)
        _log(progress, f"reference {st.name}: {data.positions.shape[0]} frames, "
                       f"{data.positions.shape[1]} atoms, {data.meta['wall_seconds']:.0f} s")
        out[st.name] = data
    return out


def _fg_diffusion(X: np.ndarray, box: np.ndarray, times: np.ndarray) -> float:
    if not np.all(np.isfinite(times)) or len(times) < 5:
        return float("nan")
    return diffusion_coefficient(times - times[0], msd(unwrap(X, box)))


def _cg_md(potential, X0, box, kT, masses, md, seed):
    integ = Integrator(ensemble="nvt_langevin", dt=md.dt, gamma=md.gamma)
    n = md.equil_steps + md.prod_steps
    res = run_md(potential, X0, box, integ, n, kT=kT, seed=seed, sample_every=md.sample_every,
                 record=("positions",), mass=masses, chunk_steps=1000, skin=0.3)
    return res


def run_cg(cfg: CGConfig, outdir: Path, progress=None) -> dict:
    """All stages; returns the transferability table (also written to transferability.json)."""
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    refs = reference_frames(cfg, outdir, progress)
    times["reference"] = time.perf_counter() - t0
    mapping = get_mapping(cfg.mapping)
    an = cfg.analysis

    # ---- mapping + reference observables ------------------------------------------------------
    mapped = {}
    (outdir / "mapped").mkdir(exist_ok=True)
    for name, d in refs.items():
        X, Fb = mapping(d)
        r, G = frame_rdfs(X, d.box, an.r_max, an.n_bins)
        mapped[name] = {"X": X, "F": Fb, "box": d.box, "masses": mapping.bead_masses(d), "r": r, "g": G.mean(0),
                        "noise_floor": split_half_distance(r, G, an.rdf_metric),
                        "r_min": float(min_pair_distances(X, d.box).min()),
                        "kT": d.kT, "times": d.times,
                        "pressure_ref": float(np.nanmean(d.pressure)) if d.pressure is not None else float("nan"),
                        "D_ref": _fg_diffusion(X, d.box, d.times)}
        np.savez_compressed(outdir / "mapped" / f"{name}.npz", positions=X, forces=Fb, box=d.box,
                            masses=mapped[name]["masses"], times=d.times)

    # ---- training at the training state --------------------------------------------------------
    tr = mapped[cfg.train_state]
    try:
        r_rise = first_rise(tr["r"], tr["g"], cfg.prior.rdf_threshold)
    except ValueError as exc:
        raise UserError(f"prior: {exc} at the training state") from None
    pc = cfg.prior
    if pc.form == "exponential":
        prior = fit_exponential_prior(tr["r_min"], float(np.mean(np.abs(tr["F"]))), pc.margin,
                                      max(st.kT for st in cfg.states), pc.barrier_kT, pc.fraction)
    else:
        prior = RepulsivePrior.from_rise(r_rise, pc.epsilon, pc.cut_factor)
    F_target = tr["F"] - prior_forces(prior, tr["X"], tr["box"])
    h = cfg.hipnn
    hp = {k: getattr(h, k) for k in ("n_features", "n_interactions", "n_atom_layers", "n_sensitivities",
                                     "cutoff", "min_soft", "max_soft")}
    settings = TrainSettings(loss=h.loss, learning_rate=h.learning_rate, batch_size=h.batch_size, epochs=h.epochs,
                             patience=h.patience, schedule=h.schedule, valid_fraction=h.valid_fraction,
                             dtype=h.dtype, seed=cfg.seed)
    t1 = time.perf_counter()
    module, tres, scale = fit_hipnn(tr["X"], tr["F"], tr["box"], hp, settings, prior,
                                    progress=lambda e, n, rec: _log(progress, f"hipnn-ts epoch {e}/{n}: validation "
                                                                              f"force RMSE {rec['val_force_rmse']:.4f}"))
    times["train_hipnn"] = time.perf_counter() - t1
    _log(progress, f"hipnn-ts: best validation force RMSE {tres.best_valid_rmse:.4f} at epoch {tres.best_epoch} "
                   f"({tres.steps} steps, {tres.stopped})")
    save_cg_hipnn(outdir / "models" / "hipnn-ts", hp, tres.params, scale, prior, tres.history)
    t1 = time.perf_counter()
    b = cfg.baseline
    spline, spline_rmse = fit_spline(tr["X"], F_target, tr["box"], r_min=r_rise, cutoff=b.cutoff,
                                     n_knots=b.n_knots, ridge=b.ridge)
    times["train_spline"] = time.perf_counter() - t1
    save_cg_spline(outdir / "models" / "pair_spline.json", spline, prior, spline_rmse)
    potentials = {"hipnn-ts": hipnn_cg_potential(module, tres.params, scale, prior),
                  "pair-spline": spline_cg_potential(spline, prior)}

    # ---- transfer: CG MD at every state ---------------------------------------------------------
    table = {}
    t1 = time.perf_counter()
    for k, st in enumerate(cfg.states):
        m = mapped[st.name]
        ref_rms = float(np.sqrt(np.mean(m["F"] ** 2)))
        res_state = {"state": st.model_dump(), "trained_here": st.name == cfg.train_state,
                     "n_frames_reference": int(len(m["X"])), "n_beads": int(m["X"].shape[1]),
                     "reference": {"pressure": {"value": m["pressure_ref"], "unit": "epsilon/sigma^3"},
                                   "diffusion": {"value": m["D_ref"], "unit": "sigma^2/tau"},
                                   "mapped_force_rms": {"value": ref_rms, "unit": "epsilon/sigma"},
                                   "rdf_noise_floor": m["noise_floor"],
                                   "min_distance": {"value": m["r_min"], "unit": "sigma"}},
                     "models": {}, "caveats": CAVEATS, "rdf_metric": an.rdf_metric}
        curves = {"reference (mapped)": m["g"]}
        for mname, pot in potentials.items():
            Fm = model_forces(pot, m["X"], m["box"])
            fm_rmse = float(np.sqrt(np.mean((Fm - m["F"]) ** 2)))
            md = _cg_md(pot, m["X"][-1], m["box"], m["kT"], m["masses"], cfg.cg_md, cfg.seed + 7 * k + 1)
            entry = {"force_rmse": {"value": fm_rmse, "unit": "epsilon/sigma"},
                     "force_rmse_relative": fm_rmse / ref_rms, "md_status": md.status, "md_message": md.message,
                     "md_seconds": md.run_seconds + md.compile_seconds}
            if md.status == "ok":
                contact = contact_check(float(min_pair_distances(md.samples["positions"], m["box"]).min()),
                                        m["r_min"], cfg.prior.margin)
                entry["contact"] = contact
                if not contact["ok"]:
                    entry.update({"md_status": "failed", "md_message": f"contact check: {contact['reason']}"})
                n_eq = cfg.cg_md.equil_steps // cfg.cg_md.sample_every
                Y = md.samples["positions"][n_eq:]
                t = md.samples["time"][n_eq:]
                r, g = rdf(Y, m["box"], an.r_max, an.n_bins)
                curves[mname] = g
                D = diffusion_coefficient(t - t[0], msd(unwrap(Y, m["box"])))
                P, P_err, P_blocks = block_average(md.samples["P"][n_eq:], PRESSURE_BLOCKS)
                entry.update({
                    "rdf_distance": rdf_distance(m["r"], m["g"], g, an.rdf_metric),
                    "rdf_noise_floor": m["noise_floor"],
                    "pressure": {"value": P, "unit": "epsilon/sigma^3", "std": P_err, "n": P_blocks},
                    "pressure_difference": {"value": P - m["pressure_ref"], "unit": "epsilon/sigma^3",
                                            "std": P_err, "n": P_blocks},
                    "diffusion": {"value": D, "unit": "sigma^2/tau"},
                    "diffusion_ratio": D / m["D_ref"] if m["D_ref"] and np.isfinite(m["D_ref"]) else None,
                    "mean_kT": float(np.mean(md.samples["T"][n_eq:])),
                    "rdf": {"r": m["r"], "g": g}})
            else:
                entry.update({"rdf_distance": None, "rdf_noise_floor": m["noise_floor"]})
            res_state["models"][mname] = entry
            _log(progress, f"{st.name} {mname}: rdf distance {entry.get('rdf_distance')}, "
                           f"force RMSE {fm_rmse:.3f}, MD {entry['md_status']}")
        res_state["reference"]["rdf"] = {"r": m["r"], "g": m["g"]}
        (outdir / "states" / st.name).mkdir(parents=True, exist_ok=True)
        write_json(outdir / "states" / st.name / "result.json", res_state)
        plot_rdf(outdir / f"rdf_{st.name}.png", m["r"], curves, st.name, st.name == cfg.train_state)
        table[st.name] = {mn: {"rdf_distance": e.get("rdf_distance"), "rdf_noise_floor": m["noise_floor"],
                               "min_distance": (e.get("contact") or {}).get("model_min", {}).get("value"),
                               "reference_min_distance": m["r_min"], "md_message": e["md_message"],
                               "pressure_difference": (e.get("pressure_difference") or {}).get("value"),
                               "pressure_difference_std": (e.get("pressure_difference") or {}).get("std"),
                               "diffusion_ratio": e.get("diffusion_ratio"),
                               "force_rmse": e["force_rmse"]["value"], "md_status": e["md_status"]}
                          for mn, e in res_state["models"].items()}
        table[st.name]["trained_here"] = st.name == cfg.train_state
    times["transfer"] = time.perf_counter() - t1
    summary = {"train_state": cfg.train_state, "rdf_metric": an.rdf_metric, "table": table,
               "prior": prior.as_dict(), "hipnn_training": {"best_valid_force_rmse": tres.best_valid_rmse,
                                                            "best_epoch": tres.best_epoch,
                                                            "steps": tres.steps, "stopped": tres.stopped,
                                                            "seconds": tres.seconds,
                                                            "learning_curve": learning_curve(tres.history)},
               "spline_train_force_rmse": spline_rmse, "wall_times_s": times, "caveats": CAVEATS}
    write_json(outdir / "transferability.json", summary)
    return summary


def learning_curve(history: list[dict]) -> list[dict]:
    """Per-epoch {epoch, train_force_term (standardised), val_force_rmse (epsilon/sigma, prior included)}."""
    return [{"epoch": h["epoch"], "train_force_term": h["train_force_term"], "val_force_rmse": h["val_force_rmse"]}
            for h in history]


def plot_rdf(path: Path, r: np.ndarray, curves: dict, state: str, trained: bool) -> None:
    from mlffbench.plotting import pyplot, save

    fig, ax = pyplot().subplots(figsize=(5, 3.5))
    styles = {"reference (mapped)": dict(color="k", lw=2)}
    for name, g in curves.items():
        ax.plot(r, g, label=name, **styles.get(name, {"lw": 1.3}))
    ax.axhline(1.0, color="0.7", lw=0.8)
    ax.set_xlabel("r (sigma)")
    ax.set_ylabel("g(r), bead centres")
    ax.set_title(f"{state}{' (training state)' if trained else ''}")
    ax.legend(frameon=False)
    save(fig, path)
