"""Test-set errors per temperature bin: energies and forces of the LJ dataset frames.

On LJ the errors are the dataset's own round-off (a check that the labels are the oracle's); on a
model they show where in temperature (solid, near melting, liquid) its accuracy degrades. Bins
above the training temperatures are out of distribution by construction.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from mlffbench.benchmarks import Metric, BenchContext, BenchSettings, Benchmark, register
from mlffbench.io import value


class ErrorBinSettings(BenchSettings):
    """bins_K: temperature bin edges (K, by the thermostat target of each frame);
    max_frames_per_bin: frames evaluated per bin (a seeded random subset; keeps CPU time small);
    phase: which frames ('all', 'solid', 'liquid')."""

    bins_K: list[float] = Field(default_factory=lambda: [0.0, 40.0, 70.0, 90.0, 1000.0])
    max_frames_per_bin: int = Field(20, ge=1)
    phase: str = Field("all", pattern="^(all|solid|liquid)$")


def shared_list_skin(boxes: np.ndarray, cutoff: float, skin: float = 0.3) -> float:
    """Skin that makes one list, built in the first box, valid for every frame's box.

    The list is built from each frame's positions mapped into the first box (same fractional
    coordinates), so a pair at distance d in frame k is at most s_max(box_0 box_k^-1) * d apart
    there; the skin covers that stretch of the cutoff plus the usual margin.
    """
    inv = np.linalg.inv(boxes)
    stretch = max(float(np.linalg.norm(boxes[0] @ b_inv, 2)) for b_inv in inv)
    return skin + cutoff * max(stretch - 1.0, 0.0)


def evaluate_frames(potential, positions: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """(energies (F,) or None for force-only models, forces (F, N, 3)) for frames of equal size.

    Frames of NPT segments all have different boxes. One neighbour list of fixed capacity serves
    them all (one compilation), built from positions mapped into the first frame's box with a skin
    that covers the boxes' spread (`shared_list_skin`); energies and forces use each frame's own
    box. Cells too small for the minimum image get a list per distinct box instead.
    """
    import jax
    import jax.numpy as jnp

    from mlffbench.neighbors import needs_multi_image

    boxes = np.asarray(boxes, dtype=np.float64)
    box0 = boxes[0]
    skin = shared_list_skin(boxes, potential.cutoff)
    shared = not needs_multi_image(box0, potential.cutoff, skin)
    if not shared:
        skin = 0.3
    energies, forces = [], []
    spec = nbrs = fn = box_prev = None

    def make(spec):
        def f(R, R_list, box, nb):
            nb = spec.update(R_list, nb)
            e, F = potential.energy_and_forces(R, box, nb)  # E is NaN for a force-only model
            return e, F, nb.did_buffer_overflow
        return jax.jit(f)

    for R, box in zip(np.asarray(positions), boxes):
        R_list = (R @ np.linalg.inv(box).T) @ box0.T if shared else R
        if spec is None or not (shared or np.allclose(box, box_prev)):
            spec = potential.neighbors(jnp.asarray(box0 if shared else box), skin=skin, n_atoms=len(R),
                                       capacity_multiplier=1.5)
            nbrs = spec.allocate(jnp.asarray(R_list))
            fn = make(spec)
            box_prev = box
        e, F, ov = fn(jnp.asarray(R), jnp.asarray(R_list), jnp.asarray(box), nbrs)
        if bool(ov):  # more neighbours than the list holds: a bigger list (and one recompile)
            nbrs = spec.allocate(jnp.asarray(R_list))
            e, F, _ = fn(jnp.asarray(R), jnp.asarray(R_list), jnp.asarray(box), nbrs)
        energies.append(float(e))
        forces.append(np.asarray(F, dtype=np.float64))
    E = np.array(energies) if potential.conservative else None
    return E, np.array(forces)


def run_test_errors(potential, ctx: BenchContext) -> dict:
    """Energy/force errors on the LJ dataset's frames, per temperature bin (a seeded subset per bin)."""
    s: ErrorBinSettings = ctx.settings
    ds = ctx.dataset
    units = ctx.units
    Tk = ds.kT_target * units.scale("temperature")
    keep = np.all(np.isfinite(ds.positions), axis=(1, 2))  # ghost-padded vacancy frames: training only
    if s.phase != "all":
        keep &= ds.phase == (0 if s.phase == "solid" else 1)
    rng = np.random.default_rng(ctx.seed)
    E_s, F_s = units.scale("energy"), units.scale("force")
    n_atoms = ds.positions.shape[1]
    selected = []
    for lo, hi in zip(s.bins_K[:-1], s.bins_K[1:]):
        idx = np.flatnonzero(keep & (Tk >= lo) & (Tk < hi))
        if len(idx) > s.max_frames_per_bin:
            idx = np.sort(rng.choice(idx, s.max_frames_per_bin, replace=False))
        if len(idx):
            selected.append((lo, hi, idx))
    every = np.concatenate([idx for _, _, idx in selected]) if selected else np.zeros(0, int)
    E_all, F_all = evaluate_frames(potential, ds.positions[every], ds.box[every]) if len(every) else (None, None)
    bins, start = [], 0
    for lo, hi, idx in selected:
        F = F_all[start:start + len(idx)]
        E = None if E_all is None else E_all[start:start + len(idx)]
        start += len(idx)
        dF = (F - ds.forces[idx]) * F_s
        entry = {"T_low_K": lo, "T_high_K": hi, "frames": len(idx),
                 "liquid_fraction": float(np.mean(ds.phase[idx] == 1)),
                 "force_rmse": value(float(np.sqrt(np.mean(dF ** 2))), "eV/Å"),
                 "force_mae": value(float(np.mean(np.abs(dF))), "eV/Å"),
                 "force_std": value(float(np.std(ds.forces[idx]) * F_s), "eV/Å")}
        if E is not None:
            dE = (E - ds.energy[idx]) / n_atoms * E_s * 1000.0
            entry["energy_mae"] = value(float(np.mean(np.abs(dE))), "meV/atom")
            entry["energy_rmse"] = value(float(np.sqrt(np.mean(dE ** 2))), "meV/atom")
        bins.append(entry)
    return {"bins": bins, "phase": s.phase, "frames": int(sum(b["frames"] for b in bins))}


def compare_test_errors(model: dict, ref: dict) -> dict:
    """Force RMSE relative to the force spread per bin, the coldest bin and the worst bin."""
    out = {}
    worst = 0.0
    for b in model["bins"]:
        tag = f"{b['T_low_K']:g}-{b['T_high_K']:g}K"
        rel = b["force_rmse"]["value"] / max(b["force_std"]["value"], 1e-300)
        worst = max(worst, rel)
        out[f"force_rmse_rel_{tag}"] = value(rel, "1")
        out[f"force_rmse_{tag}"] = b["force_rmse"]
        if "energy_mae" in b:
            out[f"energy_mae_{tag}"] = b["energy_mae"]
    out["force_rmse_rel_worst_bin"] = value(worst, "1")
    if model["bins"]:
        out["force_rmse_rel_coldest_bin"] = out[f"force_rmse_rel_{model['bins'][0]['T_low_K']:g}-{model['bins'][0]['T_high_K']:g}K"]
    return out


def plot_test_errors(model: dict, ref: dict, outdir, units) -> list:
    """Force RMSE and the force spread per temperature bin."""
    from mlffbench.plotting import pyplot, save

    fig, ax = pyplot().subplots(figsize=(5, 3.2))
    mids = [0.5 * (b["T_low_K"] + min(b["T_high_K"], 2 * max(b["T_low_K"], 1.0))) for b in model["bins"]]
    labels = [f"{b['T_low_K']:g}-{b['T_high_K']:g}" for b in model["bins"]]
    x = np.arange(len(mids))
    ax.bar(x - 0.2, [b["force_rmse"]["value"] for b in model["bins"]], 0.4, label="model force RMSE")
    ax.bar(x + 0.2, [b["force_std"]["value"] for b in model["bins"]], 0.4, label="force std (LJ)", alpha=0.5)
    ax.set_xticks(x, labels)
    ax.set_xlabel("temperature bin (K)")
    ax.set_ylabel("eV/Å")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    save(fig, outdir / "test_errors.png")
    return ["test_errors.png"]


register(Benchmark("test_errors", "test-set errors per temperature bin", run_test_errors, compare_test_errors,
                   ErrorBinSettings, needs_dataset=True, plot=plot_test_errors,
                   description="energy/force errors on LJ dataset frames, binned by temperature.",
                   metrics={"force_rmse_rel_coldest_bin": Metric("1", 0.03, 0.3,
                                      'in-distribution (solid, training temperatures) force RMSE below 3% of the force spread is a well-trained model; 30% is barely learned'),
                            "force_rmse_rel_worst_bin": Metric("1", 0.05, 0.5,
                                      'the hottest/liquid bin is out of distribution; within 5% of the force spread the model transfers, at 50% it does not')}, order=20))
