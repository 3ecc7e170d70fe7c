"""Benchmark: MD stability: `mlffbench md`."""

from __future__ import annotations

from mlffbench.io import value
from mlffbench.benchmarks import (BenchContext, BenchmarkFailed, Benchmark, WorkflowSettings,
                                  register)
from mlffbench.benchmarks._workflow import _plot, available, sub_config

# ----------------------------------------------------------------------------------------------
# MD stability: `mlffbench md`
# ----------------------------------------------------------------------------------------------
def run_md_stability(potential, ctx: BenchContext) -> dict:
    import numpy as np

    from mlffbench.workflows.md_run import MDRunConfig, plot_md, run_md_benchmark

    cfg = sub_config(MDRunConfig, ctx, {"seed": ctx.seed}, potential=potential)
    res = run_md_benchmark(potential, cfg, ctx.workdir, compare=None)
    try:
        plot_md(res, ctx.workdir / "md.png")
    except Exception:
        pass
    temps, failures = {}, []
    for t in res["temperatures"]:
        drifts = [r["nve_drift_eV_per_atom_per_ps"] for r in t["replicas"]
                  if r["nve_drift_eV_per_atom_per_ps"] is not None]
        tag = f"{t['temperature_K']:g}K"
        temps[tag] = {
            "temperature_K": t["temperature_K"], "mean_T": value(t["mean_T_K"], "K"),
            "time_to_failure": value(t["time_to_failure_ps"], "ps"),
            "simulated": value(t["replicas"][0]["simulated_ps"], "ps"),
            "replicas_failed": [r["failure"] for r in t["replicas"] if r["failed"]],
            "nve_drift_max_abs": value(max((abs(d) for d in drifts), default=None), "eV/atom/ps"),
            "min_order_parameter": min(r["min_order_parameter"] for r in t["replicas"]),
            "rdf": None if t["rdf"] is None else {"r_A": np.asarray(t["rdf"]["r_A"]).tolist(),
                                                 "g": np.asarray(t["rdf"]["g"]).tolist()}}
        if t["any_failed"]:
            failures.append(f"{', '.join(sorted(set(temps[tag]['replicas_failed'])))} at "
                            f"{t['time_to_failure_ps']:.3g} ps ({tag})")
    raw = {"n_atoms": res["n_atoms"], "lattice_constant": value(res["lattice_constant_A"], "Å"), "temperatures": temps}
    if failures:
        raise BenchmarkFailed("; ".join(failures), raw)
    return raw


def compare_md_stability(model: dict, ref: dict) -> dict:
    from mlffbench.properties.structure import rdf_distance

    out, dists, drifts = {}, [], []
    for tag, t in model["temperatures"].items():
        r = ref["temperatures"].get(tag)
        if r and t["rdf"] and r["rdf"]:
            d = rdf_distance(r["rdf"]["r_A"], r["rdf"]["g"], t["rdf"]["g"], "l2")
            out[f"rdf_distance_{tag}"] = value(d, "1")
            dists.append(d)
        if t["nve_drift_max_abs"]["value"] is not None:
            drifts.append(t["nve_drift_max_abs"]["value"])
    if dists:
        out["rdf_distance"] = value(max(dists), "1")
    if drifts:
        out["nve_drift_abs"] = value(max(drifts), "eV/atom/ps")
    return out


def _rdf(ax, model, ref):
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
                               "melting = failed), NVE drift, RDF distance to LJ at the same state point."))
