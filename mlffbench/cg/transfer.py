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

import jax.numpy as jnp
import numpy as np

from mlffbench.cg.checks import contact_check, frame_rdfs, min_pair_distances, noise_floor
from mlffbench.cg.config import CGConfig
from mlffbench.cg.data import AllAtomData, load_all_atom, save_all_atom
from mlffbench.cg.fit import (
    Prior,
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
from mlffbench.neighbors import edge_vectors
from mlffbench.potentials.base import Potential
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
BLOCKS = 4  # contiguous blocks that stand in for independent units when a trajectory has no replicas
BOOTSTRAP = 200  # resamples of the RDF distance's sampling error

CAVEATS = {
    "pressure": "force matching does not constrain the CG pressure; the reference is the atomistic virial "
                "pressure, so a mismatch is expected for any force-matched model (compare models, not to 1)",
    "diffusion": "CG Langevin dynamics (friction gamma) are faster than mapped all-atom dynamics; the ratio "
                 "D_CG/D_ref compares dynamics, it is not expected to be 1",
    "rdf_noise_floor": "expected RDF distance between two independent halves of the mapped reference (from the "
                       "spread of independent replicas, or the split-half distance of one trajectory; same "
                       "metric): model distances within it are not resolved; an exact model sampled as long as "
                       "the reference is expected near 1/sqrt(2) of it",
    "rdf_distance_std": "sampling error of the RDF distance (bootstrap over the reference's and the CG MD's "
                        "replicas, or 4 contiguous blocks of one trajectory); for a committee also the spread "
                        "over members (added in quadrature, conservative)",
    "rdf_noise_expected": "the RDF distance an exact model would show with this sampling: "
                          "sqrt(mean_bins var(g_ref mean) + var(g_model mean)); rdf_distance_excess = "
                          "sqrt(d^2 - expected^2) estimates the model's own error",
    "decision": "HIP-NN-TS vs the pair spline: the committee-mean RDF distances differ by more than z u; u from a "
                "paired bootstrap (one resample of the reference's replicas serves both models, so its noise "
                "is counted once; each member's CG MD replicas resampled on their own) plus each committee's "
                "squared standard error from its member spread (training seeds). uncertainty_unpaired: the "
                "older, conservative sqrt(std_a^2 + std_b^2) of the per-model error bars",
    "contact": "a model fails a state when its CG MD (sampled frames) brings two beads closer than the "
               "reference's smallest sampled distance minus prior.margin",
    "short_range_pair_ratio": "pairs closer than the reference's RDF rise (prior.rdf_threshold), model / reference; "
                              ">> 1 means the model traps beads where the reference has almost none (reported, "
                              "not a failure)",
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
                                  sample_every=ref.sample_every, model=model, replicas=ref.replicas)
        data.meta["wall_seconds"] = time.perf_counter() - t0
        save_all_atom(outdir / "reference" / f"{st.name}.npz", data)
        _log(progress, f"reference {st.name}: {data.positions.shape[0]} frames, "
                       f"{data.positions.shape[1]} atoms, {data.meta['wall_seconds']:.0f} s")
        out[st.name] = data
    return out


def _fg_diffusion(X: np.ndarray, box: np.ndarray, times: np.ndarray, replica: np.ndarray | None) -> float:
    """Bead diffusion coefficient of the mapped reference (sigma^2/tau), the mean over replicas."""
    if not np.all(np.isfinite(times)) or len(times) < 5:
        return float("nan")
    groups = [np.arange(len(X))] if replica is None else [np.nonzero(replica == k)[0] for k in np.unique(replica)]
    Ds = [diffusion_coefficient(times[g] - times[g][0], msd(unwrap(X[g], box))) for g in groups if len(g) >= 5]
    return float(np.mean(Ds)) if Ds else float("nan")


def _units(n: int, replica: np.ndarray | None, n_blocks: int = BLOCKS) -> list[np.ndarray]:
    """Independent sampling units of n frames: the replicas, or `n_blocks` contiguous blocks of one trajectory."""
    if replica is not None and len(np.unique(replica)) >= 2:
        return [np.nonzero(replica == k)[0] for k in np.unique(replica)]
    return [b for b in np.array_split(np.arange(n), min(n_blocks, n)) if len(b)]


def _rise_or_nan(r, g, threshold: float) -> float:
    try:
        return first_rise(r, g, threshold)
    except ValueError:
        return float("nan")


def map_references(cfg: CGConfig, refs: dict[str, AllAtomData], outdir: Path) -> dict[str, dict]:
    """Mapped (bead) frames and reference observables of every state; writes mapped/<state>.npz."""
    mapping = get_mapping(cfg.mapping)
    an = cfg.analysis
    mapped = {}
    (outdir / "mapped").mkdir(exist_ok=True)
    for name, d in refs.items():
        X, Fb = mapping(d)
        r, G = frame_rdfs(X, d.box, an.r_max, an.n_bins)
        floor, method = noise_floor(r, G, d.replica, an.rdf_metric)
        mapped[name] = {"X": X, "F": Fb, "box": d.box, "masses": mapping.bead_masses(d), "r": r, "g": G.mean(0),
                        "G": G, "replica": d.replica, "noise_floor": floor, "noise_floor_method": method,
                        "r_min": float(min_pair_distances(X, d.box).min()),
                        "r_rise": _rise_or_nan(r, G.mean(0), cfg.prior.rdf_threshold),
                        "kT": d.kT, "times": d.times,
                        "pressure_ref": float(np.nanmean(d.pressure)) if d.pressure is not None else float("nan"),
                        "D_ref": _fg_diffusion(X, d.box, d.times, d.replica)}
        extra = {} if d.replica is None else {"replica": d.replica}
        np.savez_compressed(outdir / "mapped" / f"{name}.npz", positions=X, forces=Fb, box=d.box,
                            masses=mapped[name]["masses"], times=d.times, **extra)
    return mapped


def validation_frames(n: int, replica: np.ndarray | None, fraction: float) -> np.ndarray:
    """The last `fraction` of every replica's frames (at least one): contiguous in time, so the
    validation frames are not the time neighbours of training frames."""
    out = []
    for u in _units(n, replica, n_blocks=1):
        k = max(1, int(round(fraction * len(u))))
        out.append(u[-k:])
    return np.sort(np.concatenate(out))


def build_prior(cfg: CGConfig, train: list[dict]) -> tuple[Prior, float]:
    """The fixed repulsive prior from the training states' mapped frames, and the pair spline's
    lower edge (the first r where any training state's g_mapped exceeds prior.rdf_threshold)."""
    pc = cfg.prior
    try:
        r_rise = min(first_rise(t["r"], t["g"], pc.rdf_threshold) for t in train)
    except ValueError as exc:
        raise UserError(f"prior: {exc} at a training state") from None
    if pc.form == "exponential":
        mean_abs_f = float(np.mean(np.concatenate([np.abs(t["F"]).ravel() for t in train])))
        r_min = min(t["r_min"] for t in train)
        # rdf_rise: the wall starts where g first exceeds rdf_threshold and spans the sparse region
        # down to the smallest sampled distance (its barrier_kT x kT_max energy is reached there)
        onset, width = (r_min, pc.margin) if pc.onset == "min_distance" else (r_rise, max(r_rise - r_min, pc.margin))
        prior = fit_exponential_prior(onset, mean_abs_f, width,
                                      max(st.kT for st in cfg.states), pc.barrier_kT, pc.fraction)
    else:
        prior = RepulsivePrior.from_rise(r_rise, pc.epsilon, pc.cut_factor)
    return prior, r_rise


def thin(t: dict, stride: int) -> dict:
    """Every `stride`-th frame of a mapped state (X, F, replica), for training."""
    if stride == 1:
        return t
    rep = t["replica"]
    return {**t, "X": t["X"][::stride], "F": t["F"][::stride], "replica": None if rep is None else rep[::stride]}


def train_models(cfg: CGConfig, train: list[dict], prior: Prior, r_rise: float, outdir: Path,
                 progress=None) -> tuple[dict, dict, dict]:
    """Force-match HIP-NN-TS (a committee of `hipnn.members` seeds) and the pair spline on the
    training states' frames (every `hipnn.frame_stride`-th), both on the same training frames, and score both on the same
    held-out frames (`validation_frames`). Returns ({model: [Potential per member]},
    the same in `cg_md.dtype` for CG MD, training info for transferability.json, wall times)."""
    times: dict[str, float] = {}
    h = cfg.hipnn
    train = [thin(t, h.frame_stride) for t in train]
    X = np.concatenate([t["X"] for t in train])
    F = np.concatenate([t["F"] for t in train])
    boxes = np.concatenate([np.broadcast_to(t["box"], (len(t["X"]), 3, 3)) for t in train])
    offsets = np.cumsum([0] + [len(t["X"]) for t in train])
    val = np.concatenate([o + validation_frames(len(t["X"]), t["replica"], h.valid_fraction)
                          for o, t in zip(offsets, train)])
    tr = np.setdiff1d(np.arange(len(X)), val)
    hp = {k: getattr(h, k) for k in ("n_features", "n_interactions", "n_atom_layers", "n_sensitivities",
                                     "cutoff", "min_soft", "max_soft")}
    settings = TrainSettings(loss=h.loss, learning_rate=h.learning_rate, batch_size=h.batch_size, epochs=h.epochs,
                             patience=h.patience, schedule=h.schedule, valid_fraction=h.valid_fraction,
                             dtype=h.dtype, seed=cfg.seed)
    t1 = time.perf_counter()
    module, tres, scale = fit_hipnn(
        X, F, boxes, hp, settings, prior, val_index=val, members=h.members,
        progress=lambda e, n, rec: _log(progress, f"hipnn-ts epoch {e}/{n}: validation force RMSE "
                                                  f"{rec['val_force_rmse']:.4f}"))
    times["train_hipnn"] = time.perf_counter() - t1
    members = tres.params if h.members > 1 else [tres.params]
    _log(progress, f"hipnn-ts: best validation force RMSE {tres.best_valid_rmse} at epoch {tres.best_epoch} "
                   f"({tres.steps} steps, {tres.stopped})")
    for m, params in enumerate(members):
        save_cg_hipnn(outdir / "models" / ("hipnn-ts" if m == 0 else f"hipnn-ts-{m}"), hp, params, scale, prior,
                      tres.history)
    t1 = time.perf_counter()
    b = cfg.baseline
    F_target = np.concatenate([t["F"] - prior_forces(prior, t["X"], t["box"]) for t in train])
    spline, spline_rmse = fit_spline(X[tr], F_target[tr], boxes[tr], r_min=r_rise, cutoff=b.cutoff,
                                     n_knots=b.n_knots, ridge=b.ridge)
    times["train_spline"] = time.perf_counter() - t1
    save_cg_spline(outdir / "models" / "pair_spline.json", spline, prior, spline_rmse)
    models = {"hipnn-ts": [hipnn_cg_potential(module, p, scale, prior) for p in members],
              "pair-spline": [spline_cg_potential(spline, prior)]}
    md_dtype = jnp.dtype(cfg.cg_md.dtype)
    md_models = {"hipnn-ts": [hipnn_cg_potential(module, p, scale, prior, dtype=md_dtype) for p in members],
                 "pair-spline": [spline_cg_potential(spline, prior, dtype=md_dtype)]}
    info = {"hipnn_training": {"members": h.members, "best_valid_force_rmse": tres.best_valid_rmse,
                               "best_epoch": tres.best_epoch, "steps": tres.steps, "stopped": tres.stopped,
                               "seconds": tres.seconds, "learning_curve": learning_curve(tres.history)},
            "spline_train_force_rmse": spline_rmse,
            "heldout": heldout_force_rmse({"pair-spline": models["pair-spline"]}, prior, train, offsets, val, X, F,
                                          boxes)}
    # the trainer's best validation force RMSE is HIP-NN-TS + prior on exactly these frames
    info["heldout"]["hipnn-ts"] = tres.best_valid_rmse
    return models, md_models, info, times


def heldout_force_rmse(models: dict, prior: Prior, train: list[dict], offsets, val, X, F, boxes) -> dict:
    """Force RMSE (epsilon/sigma) of every model and of the prior alone on the held-out frames,
    with the RMS of the mapped force there (the zero model). Force matching a mapped force that
    is mostly orientational noise cannot go below the mean force's error; the pair spline, an
    exact least-squares fit of the pair part of the mean force, is the floor to compare with."""
    out: dict = {"n_frames": int(len(val)), "unit": "epsilon/sigma",
                 "mapped_force_rms": float(np.sqrt(np.mean(F[val] ** 2)))}
    prior_only = Potential(name="cg:prior", cutoff=prior.cutoff, neighbor_format="full", params={"prior": prior.as_dict()},
                           energy_fn=lambda R, box, nbrs: prior.energy_from_edges(*edge_vectors(R, box, nbrs)[:2]))
    cands = {"prior only": [prior_only], **models}
    for name, pots in cands.items():
        vals = []
        for pot in pots:
            err2, n = 0.0, 0
            for o, t in zip(offsets, train):
                idx = val[(val >= o) & (val < o + len(t["X"]))]
                if len(idx):
                    Fm = model_forces(pot, X[idx], t["box"])
                    err2 += float(np.sum((Fm - F[idx]) ** 2))
                    n += Fm.size
            vals.append(float(np.sqrt(err2 / n)))
        out[name] = vals[0] if len(vals) == 1 else vals
    return out


def _cg_md(potential, X0, box, kT, masses, md, seed):
    integ = Integrator(ensemble="nvt_langevin", dt=md.dt, gamma=md.gamma)
    n = md.equil_steps + md.prod_steps
    res = run_md(potential, X0, box, integ, n, kT=kT, seed=seed, sample_every=md.sample_every,
                 record=("positions",), mass=masses, chunk_steps=1000, skin=0.3)
    return res


def md_starts(m: dict, n: int) -> np.ndarray:
    """n CG MD start configurations from the mapped reference: the last frame of each reference
    replica (cycled), or n evenly spaced frames of one trajectory (the last one included)."""
    X = m["X"]
    if m["replica"] is not None and len(np.unique(m["replica"])) >= 2:
        last = [u[-1] for u in _units(len(X), m["replica"])]
        idx = [last[k % len(last)] for k in range(n)]
    else:
        idx = [(k + 1) * len(X) // n - 1 for k in range(n)]
    return X[np.asarray(idx)]


def _bootstrap_distance(g_ref_units: np.ndarray, g_mod_units: np.ndarray, metric: str, seed: int,
                        n: int = BOOTSTRAP) -> float:
    """Std of the RDF distance when the reference's and the model's independent units (replica or
    block means, (U, n_bins)) are resampled with replacement."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = g_ref_units[rng.integers(0, len(g_ref_units), len(g_ref_units))].mean(0)
        b = g_mod_units[rng.integers(0, len(g_mod_units), len(g_mod_units))].mean(0)
        out.append(rdf_distance(np.zeros(len(a)), a, b, metric))
    return float(np.std(out, ddof=1))


def paired_difference_std(ref_units: np.ndarray, a_units: list[np.ndarray], b_units: list[np.ndarray],
                          metric: str, seed: int, n: int = BOOTSTRAP) -> float:
    """Sampling std of mean_j d(g_ref, g_a_j) - mean_k d(g_ref, g_b_k) (the RDF distances of two
    models, j and k over members), by a bootstrap in which one resample of the reference's units
    (U, n_bins) serves both models: they are judged against the same reference sample, so its
    noise is shared by both distances, not independent. Each member's units (its CG MD replicas
    or blocks) are resampled on their own."""
    rng = np.random.default_rng(seed)

    def draw(u: np.ndarray) -> np.ndarray:
        return u[rng.integers(0, len(u), len(u))].mean(0)

    zero = np.zeros(ref_units.shape[-1])
    out = []
    for _ in range(n):
        g_ref = draw(ref_units)
        da = np.mean([rdf_distance(zero, g_ref, draw(u), metric) for u in a_units])
        db = np.mean([rdf_distance(zero, g_ref, draw(u), metric) for u in b_units])
        out.append(da - db)
    return float(np.std(out, ddof=1))


def reference_units(m: dict) -> np.ndarray:
    """The mapped reference's independent units of g(r) (U, n_bins): replica means, or block means
    of one trajectory."""
    return np.stack([m["G"][u].mean(0) for u in _units(len(m["G"]), m["replica"])])


def _mean_var(unit_means: np.ndarray) -> np.ndarray:
    """Per-bin variance of the mean of U independent unit means (U, n_bins)."""
    return unit_means.var(axis=0, ddof=1) / len(unit_means)


def member_metrics(cfg: CGConfig, m: dict, pot, seed: int, md_pot=None) -> dict:
    """One model (one member) at one state: force RMSE on the state's frames (every
    `analysis.force_stride`-th), CG MD (cg_md.replicas side by side) of `md_pot` (the same model
    in cg_md.dtype; default `pot`), contact check, RDF distance with its noise, pressure and
    diffusion."""
    an, md_cfg = cfg.analysis, cfg.cg_md
    Xf, Ff = m["X"][::an.force_stride], m["F"][::an.force_stride]
    ref_rms = float(np.sqrt(np.mean(Ff ** 2)))
    fm_rmse = float(np.sqrt(np.mean((model_forces(pot, Xf, m["box"]) - Ff) ** 2)))
    R = md_cfg.replicas
    X0 = md_starts(m, R)
    md = _cg_md(pot if md_pot is None else md_pot, X0 if R > 1 else X0[0], m["box"], m["kT"], m["masses"], md_cfg,
                seed)
    e = {"force_rmse": {"value": fm_rmse, "unit": "epsilon/sigma"}, "force_rmse_relative": fm_rmse / ref_rms,
         "md_status": md.status, "md_message": md.message, "md_seconds": md.run_seconds + md.compile_seconds}
    if md.status != "ok":
        return e
    P = md.samples["positions"]  # (S, N, 3) or (S, R, N, 3)
    P = P if R > 1 else P[:, None]
    contact = contact_check(float(min_pair_distances(P.reshape(-1, *P.shape[2:]), m["box"]).min()),
                            m["r_min"], cfg.prior.margin)
    e["contact"] = contact
    if not contact["ok"]:
        e.update({"md_status": "failed", "md_message": f"contact check: {contact['reason']}"})
    n_eq = md_cfg.equil_steps // md_cfg.sample_every
    Y = P[n_eq:]  # (S', R, N, 3)
    t = md.samples["time"][n_eq:]
    G = np.stack([frame_rdfs(Y[:, k], m["box"], an.r_max, an.n_bins)[1] for k in range(R)], 1)  # (S', R, B)
    g = G.reshape(-1, G.shape[-1]).mean(0)
    mod_units = G.mean(0) if R > 1 else np.stack([G[u, 0].mean(0) for u in _units(len(G), None)])
    ref_units = reference_units(m)
    d = rdf_distance(m["r"], m["g"], g, an.rdf_metric)
    v = _mean_var(ref_units) + _mean_var(mod_units)
    expect = float(np.sqrt(np.mean(v))) if an.rdf_metric == "l2" else float(np.mean(np.sqrt(2 / np.pi * v)))
    D_rep = [diffusion_coefficient(t - t[0], msd(unwrap(Y[:, k], m["box"]))) for k in range(R)]
    D = float(np.mean(D_rep))
    D_err = float(np.std(D_rep, ddof=1) / np.sqrt(R)) if R > 1 else float("nan")
    Pseries = md.samples["P"][n_eq:]
    Pseries = Pseries.mean(1) if R > 1 else Pseries
    Pm, P_err, P_blocks = block_average(Pseries, PRESSURE_BLOCKS)
    ok_D = m["D_ref"] and np.isfinite(m["D_ref"])
    e.update({
        "short_range_pair_ratio": short_range_pair_ratio(m["r"], m["g"], g, m["r_rise"]),
        "rdf_distance": d,
        "rdf_distance_std": _bootstrap_distance(ref_units, mod_units, an.rdf_metric, seed),
        "rdf_noise_expected": expect,
        "rdf_distance_excess": float(np.sqrt(max(d * d - expect * expect, 0.0))) if an.rdf_metric == "l2" else None,
        "rdf_noise_floor": m["noise_floor"],
        "pressure": {"value": Pm, "unit": "epsilon/sigma^3", "std": P_err, "n": P_blocks},
        "pressure_difference": {"value": Pm - m["pressure_ref"], "unit": "epsilon/sigma^3",
                                "std": P_err, "n": P_blocks},
        "diffusion": {"value": D, "unit": "sigma^2/tau", "std": D_err, "n": R},
        "diffusion_ratio": D / m["D_ref"] if ok_D else None,
        "diffusion_ratio_std": D_err / m["D_ref"] if ok_D and np.isfinite(D_err) else None,
        "mean_kT": float(np.mean(md.samples["T"][n_eq:])),
        "rdf": {"r": m["r"], "g": g}, "rdf_unit_means": mod_units})
    return e


def short_range_pair_ratio(r: np.ndarray, g_ref: np.ndarray, g: np.ndarray, r_rise: float) -> float | None:
    """Pairs closer than the reference's RDF rise, model / reference: sum_b g_b r_b^2 over bins with
    r_b < r_rise (the same grid and density, so the ratio of pair counts). None when the reference
    has no such pairs. Far above 1: the model samples contacts the reference almost never shows
    (a trap inside the prior that the minimum-distance contact check does not catch)."""
    sel = np.asarray(r) < r_rise
    ref = float(np.sum(np.asarray(g_ref)[sel] * np.asarray(r)[sel] ** 2))
    return None if ref <= 0 else float(np.sum(np.asarray(g)[sel] * np.asarray(r)[sel] ** 2) / ref)


def combine_members(entries: list[dict]) -> dict:
    """A model's entry from its members' (a committee of seeds): member 0's full entry when there is
    one member; else the member means, with `std` = the spread (ddof 1) over members, the
    members' entries under 'members', and md_status failed if any member failed."""
    if len(entries) == 1:
        return entries[0]
    ok = [e for e in entries if "rdf_distance" in e]
    out = {"members": entries, "n_members": len(entries),
           "md_status": "ok" if all(e["md_status"] == "ok" for e in entries) else "failed",
           "md_message": "; ".join(f"member {k}: {e['md_message']}" for k, e in enumerate(entries) if e["md_message"]),
           "md_seconds": float(sum(e["md_seconds"] for e in entries))}
    fr = [e["force_rmse"]["value"] for e in entries]
    out["force_rmse"] = {"value": float(np.mean(fr)), "unit": "epsilon/sigma", "std": float(np.std(fr, ddof=1)),
                         "n": len(fr)}
    out["force_rmse_relative"] = float(np.mean([e["force_rmse_relative"] for e in entries]))
    if not ok:
        out.update({"rdf_distance": None})
        return out

    def spread(vals):
        vals = [v for v in vals if v is not None and np.isfinite(v)]
        return (float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan"), len(vals)) \
            if vals else (None, None, 0)

    d, d_sd, n = spread([e["rdf_distance"] for e in ok])
    samp = float(np.sqrt(np.mean([e["rdf_distance_std"] ** 2 for e in ok])))
    out.update({"rdf_distance": d, "rdf_distance_member_std": d_sd,
                # conservative: the member spread already contains the sampling noise
                "rdf_distance_std": float(np.sqrt((0.0 if not np.isfinite(d_sd) else d_sd ** 2) + samp ** 2)),
                "rdf_noise_expected": float(np.mean([e["rdf_noise_expected"] for e in ok])),
                "rdf_noise_floor": ok[0]["rdf_noise_floor"],
                "contact": {"ok": all(e.get("contact", {}).get("ok", True) for e in ok),
                            "model_min": {"value": float(min(e["contact"]["model_min"]["value"] for e in ok)),
                                          "unit": "sigma"}}})
    srr = [e.get("short_range_pair_ratio") for e in ok]
    out["short_range_pair_ratio"] = None if any(x is None for x in srr) else float(np.mean(srr))
    ex = [e["rdf_distance_excess"] for e in ok]
    out["rdf_distance_excess"] = None if any(x is None for x in ex) else spread(ex)[0]
    for key, unit in (("pressure", "epsilon/sigma^3"), ("pressure_difference", "epsilon/sigma^3"),
                      ("diffusion", "sigma^2/tau")):
        v, sd, n = spread([e[key]["value"] for e in ok])
        out[key] = {"value": v, "unit": unit, "std": sd, "n": n}
    v, sd, n = spread([e["diffusion_ratio"] for e in ok])
    out["diffusion_ratio"], out["diffusion_ratio_std"] = v, sd
    out["rdf"] = {"r": ok[0]["rdf"]["r"], "g": np.mean([e["rdf"]["g"] for e in ok], 0),
                  "g_members": [e["rdf"]["g"] for e in ok]}
    return out


def _member_units(entry: dict) -> list[np.ndarray] | None:
    """Each member's RDF unit means (a single model is its own member); None when any lacks them."""
    members = entry.get("members") or [entry]
    units = [e.get("rdf_unit_means") for e in members if e.get("rdf_distance") is not None]
    return None if not units or any(u is None for u in units) else [np.asarray(u) for u in units]


def _seed_variance(entry: dict) -> float:
    """Squared standard error of a committee's mean distance from its member spread (0 for one model)."""
    sd, n = entry.get("rdf_distance_member_std"), entry.get("n_members", 1)
    return 0.0 if sd is None or n < 2 or not np.isfinite(sd) else float(sd) ** 2 / n


def decide(entries: dict, a: str = "hipnn-ts", b: str = "pair-spline", z: float = 2.0,
           ref_units: np.ndarray | None = None, metric: str = "l2", seed: int = 0) -> dict:
    """Which model's RDF distance (committee mean) is smaller beyond the noise: |d_a - d_b| > z u.

    With the reference's units and every member's, u^2 = the paired bootstrap variance of
    d_a - d_b (`paired_difference_std`: the shared reference noise counted once) + each
    committee's squared standard error from its member spread (training seeds; this also counts
    the members' MD sampling a second time, conservatively). Without them, the unpaired
    u = sqrt(std_a^2 + std_b^2) of the per-model error bars (member spread, not standard error),
    which is also reported as `uncertainty_unpaired`."""
    ea, eb = entries.get(a, {}), entries.get(b, {})
    da, db = ea.get("rdf_distance"), eb.get("rdf_distance")
    if da is None or db is None:
        return {"better": None, "reason": "a model has no RDF distance (MD failed)"}
    u_unpaired = float(np.sqrt(ea.get("rdf_distance_std", 0.0) ** 2 + eb.get("rdf_distance_std", 0.0) ** 2))
    ua, ub = _member_units(ea), _member_units(eb)
    if ref_units is not None and ua is not None and ub is not None:
        boot = paired_difference_std(np.asarray(ref_units), ua, ub, metric, seed)
        u, method = float(np.sqrt(boot ** 2 + _seed_variance(ea) + _seed_variance(eb))), "paired"
    else:
        u, method = u_unpaired, "unpaired"
    diff = float(da - db)
    better = (a if diff < 0 else b) if abs(diff) > z * u else None
    return {"better": better, "difference": diff, "uncertainty": u, "uncertainty_unpaired": u_unpaired,
            "uncertainty_method": method, "z": z,
            "reason": None if better else f"|{diff:.4f}| <= {z:g} x {u:.4f}"}


def evaluate_state(cfg: CGConfig, k: int, st, m: dict, models: dict, progress=None,
                   md_models: dict | None = None) -> dict:
    """Every model (all members) at state st (index k): the result.json document. md_models: the
    same models in cg_md.dtype for CG MD (default: `models`)."""
    an = cfg.analysis
    ref_rms = float(np.sqrt(np.mean(m["F"] ** 2)))
    doc = {"state": st.model_dump(), "trained_here": st.name in cfg.train_states,
           "n_frames_reference": int(len(m["X"])), "n_beads": int(m["X"].shape[1]),
           "n_replicas_reference": 1 if m["replica"] is None else int(len(np.unique(m["replica"]))),
           "reference": {"pressure": {"value": m["pressure_ref"], "unit": "epsilon/sigma^3"},
                         "diffusion": {"value": m["D_ref"], "unit": "sigma^2/tau"},
                         "mapped_force_rms": {"value": ref_rms, "unit": "epsilon/sigma"},
                         "rdf_noise_floor": m["noise_floor"], "rdf_noise_floor_method": m["noise_floor_method"],
                         "min_distance": {"value": m["r_min"], "unit": "sigma"},
                         "rdf_rise": {"value": m["r_rise"], "unit": "sigma"}},
           "models": {}, "caveats": CAVEATS, "rdf_metric": an.rdf_metric}
    for mname, pots in models.items():
        md_pots = pots if md_models is None else md_models[mname]
        entries = [member_metrics(cfg, m, pot, cfg.seed + 7 * k + 1 + 1000 * j, md_pot)
                   for j, (pot, md_pot) in enumerate(zip(pots, md_pots))]
        e = combine_members(entries)
        if "rdf_distance" not in e:
            e.update({"rdf_distance": None, "rdf_noise_floor": m["noise_floor"]})
        doc["models"][mname] = e
        _log(progress, f"{st.name} {mname}: rdf distance {e.get('rdf_distance')} +- {e.get('rdf_distance_std')}, "
                       f"force RMSE {e['force_rmse']['value']:.3f}, MD {e['md_status']}")
    ref_units = reference_units(m)
    doc["decision"] = decide(doc["models"], ref_units=ref_units, metric=an.rdf_metric, seed=cfg.seed + 7 * k)
    doc["reference"]["rdf"] = {"r": m["r"], "g": m["g"], "unit_means": ref_units}
    return doc


def table_row(doc: dict, m: dict) -> dict:
    row = {}
    for mn, e in doc["models"].items():
        pdiff = e.get("pressure_difference") or {}
        row[mn] = {"rdf_distance": e.get("rdf_distance"), "rdf_distance_std": e.get("rdf_distance_std"),
                   "rdf_noise_expected": e.get("rdf_noise_expected"),
                   "rdf_distance_excess": e.get("rdf_distance_excess"),
                   "rdf_noise_floor": m["noise_floor"],
                   "min_distance": (e.get("contact") or {}).get("model_min", {}).get("value"),
                   "reference_min_distance": m["r_min"], "md_message": e["md_message"],
                   "short_range_pair_ratio": e.get("short_range_pair_ratio"),
                   "pressure_difference": pdiff.get("value"), "pressure_difference_std": pdiff.get("std"),
                   "diffusion_ratio": e.get("diffusion_ratio"), "diffusion_ratio_std": e.get("diffusion_ratio_std"),
                   "force_rmse": e["force_rmse"]["value"], "md_status": e["md_status"]}
    row["trained_here"] = doc["trained_here"]
    row["decision"] = doc["decision"]
    return row


def run_cg(cfg: CGConfig, outdir: Path, progress=None) -> dict:
    """All stages; returns the transferability table (also written to transferability.json)."""
    t0 = time.perf_counter()
    refs = reference_frames(cfg, outdir, progress)
    times: dict[str, float] = {"reference": time.perf_counter() - t0}
    mapped = map_references(cfg, refs, outdir)
    train = [mapped[n] for n in cfg.train_states]
    prior, r_rise = build_prior(cfg, train)
    models, md_models, info, t_train = train_models(cfg, train, prior, r_rise, outdir, progress)
    times.update(t_train)
    table = {}
    t1 = time.perf_counter()
    for k, st in enumerate(cfg.states):
        m = mapped[st.name]
        doc = evaluate_state(cfg, k, st, m, models, progress, md_models)
        (outdir / "states" / st.name).mkdir(parents=True, exist_ok=True)
        write_json(outdir / "states" / st.name / "result.json", doc)
        curves = {"reference (mapped)": m["g"], **{mn: e["rdf"]["g"] for mn, e in doc["models"].items() if "rdf" in e}}
        plot_rdf(outdir / f"rdf_{st.name}.png", m["r"], curves, st.name, doc["trained_here"])
        table[st.name] = table_row(doc, m)
    times["transfer"] = time.perf_counter() - t1
    ts = cfg.train_states
    summary = {"train_state": ts[0] if len(ts) == 1 else ts, "train_states": ts, "rdf_metric": cfg.analysis.rdf_metric,
               "table": table, "prior": prior.as_dict(), "cg_md_dtype": cfg.cg_md.dtype, **info, "wall_times_s": times, "caveats": CAVEATS}
    write_json(outdir / "transferability.json", summary)
    return summary


def learning_curve(history: list[dict]) -> list[dict]:
    """Per-epoch {epoch, train_force_term (standardised), val_force_rmse (epsilon/sigma, prior
    included; the member mean for a committee, per member under 'members')}."""
    out = []
    for h in history:
        rec = {"epoch": h["epoch"], "train_force_term": h["train_force_term"], "val_force_rmse": h["val_force_rmse"]}
        if "members" in h:
            rec["members_val_force_rmse"] = h["members"]["val_force_rmse"]
        out.append(rec)
    return out


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
