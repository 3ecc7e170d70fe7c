"""Benchmark: MD stability: `mlffbench md`."""

from __future__ import annotations

from mlffbench.io import value
from mlffbench.stats import from_samples
from mlffbench.benchmarks import (Metric, BenchContext, BenchmarkFailed, Benchmark, WorkflowSettings,
                                  register)
from mlffbench.benchmarks._workflow import _plot, available, sub_config

# ----------------------------------------------------------------------------------------------
# MD stability: `mlffbench md`
# ----------------------------------------------------------------------------------------------
def md_raw(res: dict) -> tuple[dict, list[str]]:
    """(raw result, failure descriptions) from `run_md_benchmark`'s output for one potential."""
    import numpy as np

    temps, failures = {}, []
    for t in res["temperatures"]:
        drifts = [abs(r["nve_drift_eV_per_atom_per_ps"]) for r in t["replicas"]
                  if r["nve_drift_eV_per_atom_per_ps"] is not None]
        tag = f"{t['temperature_K']:g}K"
        drift = from_samples(drifts, "eV/atom/ps") if drifts else value(None, "eV/atom/ps")
        if drifts:
            drift["max"] = max(drifts)
        temps[tag] = {
            "temperature_K": t["temperature_K"],
            "mean_T": value(t["mean_T_K"], "K", std=t.get("mean_T_K_stderr")),
            "time_to_failure": value(t["time_to_failure_ps"], "ps"),
            "simulated": value(t["replicas"][0]["simulated_ps"], "ps"),
            "replicas_failed": [r["failure"] for r in t["replicas"] if r["failed"]],
            "nve_drift_abs": drift,
            "min_order_parameter": min(r["min_order_parameter"] for r in t["replicas"]),
            "rdf": None if t["rdf"] is None else {
                "r_A": np.asarray(t["rdf"]["r_A"]).tolist(), "g": np.asarray(t["rdf"]["g"]).tolist(),
                "g_replicas": np.asarray(t["rdf"]["g_replicas"]).tolist()}}
        if t["any_failed"]:
            failures.append(f"{', '.join(sorted(set(temps[tag]['replicas_failed'])))} at "
                            f"{t['time_to_failure_ps']:.3g} ps ({tag})")
    raw = {"n_atoms": res["n_atoms"], "lattice_constant": value(res["lattice_constant_A"], "Å"),
           "lattice_constant_source": res.get("lattice_constant_source"), "temperatures": temps}
    return raw, failures


def run_md_stability(potential, ctx: BenchContext) -> dict:
    """The md workflow at each temperature for one potential; failed on blow-up or melting."""
    from mlffbench.workflows.md_run import MDRunConfig, run_md_benchmark

    cfg = sub_config(MDRunConfig, ctx, {"seed": ctx.seed}, potential=potential)
    raw, failures = md_raw(run_md_benchmark(potential, cfg, ctx.workdir))
    if failures:
        raise BenchmarkFailed("; ".join(failures), raw)
    return raw


def rdf_distances(model_t: dict, ref_t: dict) -> dict:
    """L2 distance of the model's g(r) to the reference's, with its spread and the noise floor.

    value: distance of the replica-mean g(r)s; std/n: over the model's replicas (each replica's
    g(r) against the reference mean); noise_floor: the same distance between the reference's own
    replicas (split by replica), i.e. what sampling alone gives.
    """
    import numpy as np

    from mlffbench.properties.structure import rdf_distance

    r, g_ref = ref_t["rdf"]["r_A"], ref_t["rdf"]["g"]
    d = rdf_distance(r, g_ref, model_t["rdf"]["g"], "l2")
    per_rep = [rdf_distance(r, g_ref, g, "l2") for g in model_t["rdf"].get("g_replicas") or []]
    ref_reps = np.asarray(ref_t["rdf"].get("g_replicas") or [])
    noise = None
    if len(ref_reps) >= 2:
        half = len(ref_reps) // 2
        noise = rdf_distance(r, ref_reps[:half].mean(axis=0), ref_reps[half:].mean(axis=0), "l2")
    spread = from_samples(per_rep, "1") if len(per_rep) >= 2 else {}
    return value(d, "1", **({"std": spread["std"], "n": spread["n"]} if spread else {}),
                 **({"noise_floor": noise} if noise is not None else {}))


def compare_md_stability(model: dict, ref: dict) -> dict:
    """RDF distance to LJ per temperature (replica spread, noise floor) and the worst NVE drift."""
    out, dists, drifts = {}, [], []
    for tag, t in model["temperatures"].items():
        r = ref["temperatures"].get(tag)
        if r and t["rdf"] and r["rdf"]:
            out[f"rdf_distance_{tag}"] = rdf_distances(t, r)
            dists.append(out[f"rdf_distance_{tag}"])
        drift = t["nve_drift_abs"]
        if drift.get("value") is not None:
            drifts.append(drift)
    if dists:
        out["rdf_distance"] = max(dists, key=lambda q: q["value"])
    if drifts:
        worst = max(drifts, key=lambda q: q.get("max", q["value"]))
        out["nve_drift_abs"] = value(worst.get("max", worst["value"]), "eV/atom/ps",
                                     **({"std": worst["std"], "n": worst["n"]} if "std" in worst else {}))
    return out


def _rdf(ax, model, ref):
    """g(r) of model and LJ per temperature."""
    for raw, label, st in ((ref, "LJ", "-"), (model, "model", "--")):
        for tag, t in (raw or {}).get("temperatures", {}).items():
            if t.get("rdf"):
                ax.plot(t["rdf"]["r_A"], t["rdf"]["g"], st, label=f"{label} {tag}")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.legend(fontsize=8)


register(Benchmark("md_stability", "MD stability", run_md_stability, compare_md_stability, WorkflowSettings,
                   plot=_plot("rdf", _rdf), available=available("mlffbench.workflows.md_run", "run_md_benchmark"),
                   description="NVT then NVE of the crystal with each potential: time to failure (blow-up or "
                               "melting = failed), NVE drift, RDF distance to LJ at the same state point.",
                   metrics={"rdf_distance": Metric("1", 0.02, 0.3,
                                      "L2 distance of g(r) to LJ's at the same state point: 0.02 is sampling noise of a short run, 0.3 a different structure"),
                            "nve_drift_abs": Metric("eV/atom/ps", 5e-05, 0.001,
                                      '|NVE energy drift|: LJ itself (lj/cut/shift, force jump at rc, 5 fs) drifts ~3e-5 eV/atom/ps; 1e-3 heats the crystal by ~4 K per ps')}, order=30))
