"""Benchmark: committee calibration, "does the model know where it is wrong?".

Along the converged vacancy-migration string of the committee mean (the `neb` workflow, shared with
`migration_barrier` through the memo when that ran on the same potential with the same settings),
at the saddle and at the relaxed vacancy (image 0): the committee's force spread (RMS over atoms
of the per-atom member standard deviation) against the true force error of the member mean vs the
reference (LJ) at the same configuration; `mlffbench.stats.calibration` gives the ratio per
configuration and the Spearman rank correlation over the images.

The reference has no spread: its stage only records that (no simulation). A single model is
'not run'. Units: forces and spreads in the run's force unit (eV/Å in metal units).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mlffbench.benchmarks import (BenchContext, Benchmark, BenchmarkFailed, BenchmarkNotRun, Metric,
                                  WorkflowSettings, register)
from mlffbench.benchmarks._workflow import available
from mlffbench.io import value

NEEDS_COMMITTEE = "needs a committee (a model trained with ensemble: members >= 2)"


def _force_series(potential, fn, configs: np.ndarray, box: np.ndarray) -> np.ndarray:
    """fn(potential, R, box, nbrs) -> forces, at each of `configs` (C, N, 3): one jitted step,
    the neighbour list allocated once (at configs[0]) and updated (re-allocated on overflow)."""
    import jax
    import jax.numpy as jnp

    boxj = jnp.asarray(box)
    spec = potential.neighbors(boxj, n_atoms=configs.shape[1])
    step = jax.jit(lambda R, nb: (lambda nb2: (nb2, fn(potential, R, boxj, nb2)))(spec.update(R, nb)))
    nbrs, out = spec.allocate(jnp.asarray(configs[0])), []
    for R in configs:
        R = jnp.asarray(R)
        new, F = step(R, nbrs)
        if bool(new.did_buffer_overflow):
            new = spec.allocate(R)
            F = fn(potential, R, boxj, new)
        nbrs = new
        out.append(np.asarray(F, dtype=float))
    return np.stack(out)


def member_and_reference_forces(committee, reference, configs: np.ndarray, box: np.ndarray
                                ) -> tuple[np.ndarray, np.ndarray]:
    """Every member's forces and the reference's at each configuration.

    configs: (C, N, 3) positions (sigma); box: (3, 3) sigma, columns the cell vectors.
    Returns (member forces (K, C, N, 3), reference forces (C, N, 3)), epsilon/sigma, float64."""
    Fm = _force_series(committee, lambda p, R, b, nb: p.evaluate_members(R, b, nb).forces, configs, box)
    Fr = _force_series(reference, lambda p, R, b, nb: p.forces(R, b, nb), configs, box)
    return np.moveaxis(Fm, 1, 0), Fr


def _neb_settings(ctx: BenchContext) -> WorkflowSettings:
    """This benchmark's neb settings; without its own config/overrides, migration_barrier's (so the
    string run by that benchmark is reused)."""
    s = ctx.settings
    if s.config or s.overrides or ctx.run_config is None:
        return s
    mb = (ctx.run_config.benchmarks or {}).get("migration_barrier") or {}
    return WorkflowSettings.model_validate({k: v for k, v in mb.items() if k not in ("enabled", "modes")})


def _converged_path(potential, ctx: BenchContext) -> dict:
    """The committee mean's converged string (memoised neb doc); BenchmarkFailed if not converged."""
    from mlffbench.benchmarks.neb import _neb_doc

    doc = _neb_doc(potential, dataclasses.replace(ctx, settings=_neb_settings(ctx)))
    if doc["status"] != "converged":
        raise BenchmarkFailed(f"string method did not converge: {doc.get('message', '')}")
    return doc


def _ratio(x) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def run_calibration(potential, ctx: BenchContext) -> dict:
    """Spread, error and their ratio over the committee's converged path, saddle and vacancy."""
    from mlffbench.potentials.committee import Committee
    from mlffbench.stats import calibration, committee_force_spread, force_rms_error

    if ctx.role == "reference":
        return {"note": "the reference (LJ) has no committee spread; nothing to compute"}
    if not isinstance(potential, Committee) or potential.size < 2:
        raise BenchmarkNotRun(NEEDS_COMMITTEE)
    doc = _converged_path(potential, ctx)
    path = doc["_path_reduced"]
    images, box = path["positions"], path["box"]
    L, F = ctx.units.scale("length"), ctx.units.scale("force")
    saddle = np.asarray(doc["saddle"]["positions"]["value"], dtype=float)[None] / L
    configs = np.concatenate([images, saddle])
    Fm, Fr = member_and_reference_forces(potential, ctx.reference_potential, configs, box)
    spread = committee_force_spread(Fm) * F
    error = force_rms_error(Fm.mean(axis=0), Fr) * F
    M = images.shape[0]
    cal = calibration(spread[:M], error[:M])
    at = {name: calibration(spread[i:i + 1], error[i:i + 1]) for name, i in (("saddle", M), ("vacancy", 0))}
    unit = "eV/Å"
    return {"n_members": potential.size, "n_images": M, "climbing_image": doc["path"]["climbing_image"],
            "spread_path": value(spread[:M].tolist(), unit), "error_path": value(error[:M].tolist(), unit),
            "ratio_path": value(cal["ratio"], "1"),
            "spread_saddle": value(float(spread[M]), unit), "error_saddle": value(float(error[M]), unit),
            "spread_vacancy": value(float(spread[0]), unit), "error_vacancy": value(float(error[0]), unit),
            "calibration": {k: v for k, v in cal.items() if k != "ratio"},
            "ratio_saddle": _ratio(at["saddle"]["ratio"][0]) if at["saddle"]["applicable"] else None,
            "ratio_vacancy": _ratio(at["vacancy"]["ratio"][0]) if at["vacancy"]["applicable"] else None,
            "lattice_constant": doc["system"]["lattice_constant"], "n_atoms": doc["system"]["n_atoms"]}


def compare_calibration(model: dict, ref: dict) -> dict:
    """The calibration metrics (the reference side carries no numbers: LJ has no spread)."""
    cal = model["calibration"]
    why = {} if cal["applicable"] else {"reason": cal["reason"]}
    mean = cal["mean_ratio"]
    log_err = None if mean is None or mean <= 0 else abs(math.log10(mean))
    return {"spread_to_error_ratio_path": value(mean, "1", n=cal["n"], **why),
            "spread_to_error_log10_ratio_path": value(log_err, "1", **why),
            "spread_error_rank_correlation": value(cal["spearman"], "1", p=cal["spearman_p"], n=cal["n"], **why),
            "spread_to_error_ratio_saddle": value(model["ratio_saddle"], "1"),
            "spread_to_error_ratio_vacancy": value(model["ratio_vacancy"], "1")}


def _ratio_plot(ax, model, ref):
    if model and "spread_path" in model:
        x = range(len(model["spread_path"]["value"]))
        ax.semilogy(x, model["error_path"]["value"], "o-", label="true error vs LJ")
        ax.semilogy(x, model["spread_path"]["value"], "s--", label="committee spread")
        ax.set_ylabel(f"RMS force ({model['spread_path']['unit']})")
    ax.set_xlabel("image along the migration path")
    ax.set_title("committee calibration")
    ax.legend()


def _plot(model, ref, outdir, units) -> list:
    from mlffbench.benchmarks._workflow import _plot as house

    return house("calibration", _ratio_plot)(model, ref, outdir, units)


register(Benchmark(
    "calibration", "committee calibration (spread vs true error along the migration path)",
    run_calibration, compare_calibration, WorkflowSettings, plot=_plot, whole_committee=True,
    available=available("mlffbench.workflows.neb", "run_neb"),
    description="force spread of the committee members against the member mean's force error vs LJ, "
                "per image of the committee's converged vacancy-migration string, at the saddle and at "
                "the relaxed vacancy: ratio (1 = calibrated, < 1 over-confident) and Spearman rank "
                "correlation over the images.",
    metrics={"spread_to_error_ratio_path": Metric("1", rationale="mean spread/error over the images; 1 is calibrated, scored through its |log10| below"),
             "spread_to_error_log10_ratio_path": Metric("1", 0.15, 1.0,
                 "|log10| of the mean spread/error ratio: 0.15 is a factor 1.4 (a useful error bar), 1.0 a factor 10 (the spread says nothing about the size of the error)"),
             "spread_error_rank_correlation": Metric("1", rationale="Spearman rho over the images: does the spread rise where the error does (1 = same order)"),
             "spread_to_error_ratio_saddle": Metric("1", rationale="spread/error at the saddle, where the barrier is decided"),
             "spread_to_error_ratio_vacancy": Metric("1", rationale="spread/error at the relaxed vacancy (image 0)")},
    order=95))
