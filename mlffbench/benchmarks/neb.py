"""Benchmark: vacancy migration barrier and harmonic-TST rate: `mlffbench neb`."""

from __future__ import annotations

from mlffbench.io import value
from mlffbench.benchmarks import (Metric, BenchContext, BenchmarkFailed, BenchmarkNotRun, Benchmark, WorkflowSettings,
                                  register)
from mlffbench.benchmarks._workflow import _plot, available, memo_call, reference_a0_override, sub_config

# ----------------------------------------------------------------------------------------------
# migration barrier and harmonic TST: `mlffbench neb`
# ----------------------------------------------------------------------------------------------
def _neb_doc(potential, ctx: BenchContext, extra: dict | None = None, subdir: str = "") -> dict:
    from mlffbench.workflows.neb import NebConfig, run_neb

    cfg = sub_config(NebConfig, ctx, extra, potential=potential)
    where = ctx.workdir / subdir

    def go():
        where.mkdir(parents=True, exist_ok=True)
        return run_neb(potential, cfg, where, model_spec=potential.name)

    return memo_call(ctx, ("neb", cfg.model_dump_json()), go)


def run_migration_barrier(potential, ctx: BenchContext) -> dict:
    """Barrier of ONE potential at its own a0 (the `neb` workflow, shared with `htst_rate` through the
    memo) and, for the model when `at_reference_a0` is set, at LJ's a0 too."""
    raw = migration_barrier_raw(_neb_doc(potential, ctx))
    at_ref = reference_a0_override(ctx)
    if at_ref:
        try:
            raw["at_reference_a0"] = migration_barrier_raw(_neb_doc(potential, ctx, at_ref, "at_reference_a0"))
        except BenchmarkFailed as exc:
            raw["at_reference_a0"] = {"failed": exc.reason}
    return raw


def migration_barrier_raw(doc: dict) -> dict:
    """The raw numbers `compare_migration_barrier` reads, from a `neb` result.json document.
    Raises BenchmarkFailed (with the numbers) when the string did not converge."""
    conv = doc["convergence"]
    raw = {"barrier_forward": doc["barrier"]["forward"], "barrier_backward": doc["barrier"]["backward"],
           "method": doc["barrier"]["method"], "lattice_constant": doc["system"]["lattice_constant"],
           "n_atoms": doc["system"]["n_atoms"], "converged": conv["converged"], "iterations": conv["iterations"],
           "max_perpendicular_force": conv["max_perpendicular_force"],
           "path": {"arc_length": doc["path"]["arc_length"], "energy": doc["path"]["energy"]}}
    if doc["status"] != "converged":
        raise BenchmarkFailed(f"string method did not converge: {doc.get('message', '')}", raw)
    return raw


def compare_migration_barrier(model: dict, ref: dict) -> dict:
    """Relative and absolute (meV) error of the forward barrier against the reference."""
    m, r = model["barrier_forward"]["value"], ref["barrier_forward"]["value"]
    out = {"barrier_rel_error": value(abs(m - r) / abs(r), "1", signed=(m - r) / r),
           "barrier_error": value((m - r) * 1000.0, "meV")}
    at_ref = model.get("at_reference_a0") or {}
    if "barrier_forward" in at_ref:
        m = at_ref["barrier_forward"]["value"]
        out["barrier_rel_error_at_lj_a0"] = value(abs(m - r) / abs(r), "1", signed=(m - r) / r)
    return out


def _mep(ax, model, ref):
    for raw, label, mk in ((ref, "LJ", "o-"), (model, "model", "s--")):
        if raw and "path" in raw:
            ax.plot(raw["path"]["arc_length"], [e * 1000 for e in raw["path"]["energy"]["value"]], mk, label=label)
    ax.set_xlabel("normalised arc length")
    ax.set_ylabel("E - E_initial (meV)")
    ax.set_title("vacancy migration path")
    ax.legend()


register(Benchmark("migration_barrier", "vacancy migration barrier (string method)", run_migration_barrier,
                   compare_migration_barrier, WorkflowSettings, plot=_plot("mep", _mep),
                   available=available("mlffbench.workflows.neb", "run_neb"),
                   reference_values={"barrier_forward": {"abs": 2e-7}},
                   description="string method + climbing image (+ Newton polish) in an n^3 FCC cell with one "
                               "vacancy, each potential at its own a0; force-only models: line integral.",
                   metrics={"barrier_rel_error": Metric("1", 0.02, 0.3,
                                      '2% of E_m changes the hop rate at 80 K by <10%; 30% changes it by orders of magnitude (exponential in E_m/kT)'),
                            "barrier_rel_error_at_lj_a0": Metric("1", 0.02, 0.3,
                                      "the same at LJ's lattice constant: the model's barrier without its a0 error")}, order=90))


def run_htst(potential, ctx: BenchContext) -> dict:
    """Harmonic-TST prefactor and rates of ONE potential (the `neb` workflow's result)."""
    return htst_raw(_neb_doc(potential, ctx))


def htst_raw(doc: dict) -> dict:
    """The raw numbers `compare_htst` reads, from a `neb` result.json document. Raises
    BenchmarkFailed without a first-order saddle, BenchmarkNotRun when HTST was disabled."""
    if doc["status"] != "converged":
        raise BenchmarkFailed(f"no saddle: string method did not converge: {doc.get('message', '')}")
    if "htst" not in doc:
        raise BenchmarkNotRun("harmonic TST not computed (htst.enabled is false)")
    h = doc["htst"]
    raw = {"prefactor": h["prefactor"], "imaginary_frequency": h["imaginary_frequency"],
           "temperatures": h["temperatures"], "single_hop_rate": h["single_hop_rate"],
           "total_vacancy_hop_rate": h["total_vacancy_hop_rate"], "barrier_forward": doc["barrier"]["forward"],
           "unstable_modes_at_saddle": h["unstable_modes_at_saddle"], "hessian": h.get("hessian")}
    if h["unstable_modes_at_saddle"] != 1:
        raise BenchmarkFailed(f"saddle has {h['unstable_modes_at_saddle']} unstable modes (expected 1)", raw)
    return raw


def compare_htst(model: dict, ref: dict) -> dict:
    """|log10| ratio of the prefactors and the largest |log10| ratio of the rates over temperatures."""
    import math

    pm, pr = model["prefactor"]["value"], ref["prefactor"]["value"]
    km, kr = model["single_hop_rate"]["value"], ref["single_hop_rate"]["value"]
    errs = [abs(math.log10(a / b)) for a, b in zip(km, kr) if a and b and a > 0 and b > 0]
    return {"prefactor_log10_error": value(abs(math.log10(pm / pr)), "1", ratio=pm / pr),
            "rate_log10_error": value(max(errs) if errs else float("nan"), "1",
                                      temperatures_K=model["temperatures"]["value"])}


def _arrhenius_htst(ax, model, ref):
    for raw, label, mk in ((ref, "LJ", "o-"), (model, "model", "s--")):
        if raw and "single_hop_rate" in raw:
            T = raw["temperatures"]["value"]
            ax.semilogy([1000.0 / t for t in T], raw["total_vacancy_hop_rate"]["value"], mk, label=label)
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel("vacancy hop rate 12 k(T) (1/ps)")
    ax.set_title("harmonic TST")
    ax.legend()


register(Benchmark("htst_rate", "harmonic-TST hop rate (Vineyard)", run_htst, compare_htst, WorkflowSettings,
                   plot=_plot("htst_arrhenius", _arrhenius_htst),
                   available=available("mlffbench.workflows.neb", "run_neb"),
                   reference_values={"prefactor": {"rel": 1e-5}},
                   description="Vineyard prefactor from exact Hessians at minimum and saddle; k(T) = nu* "
                               "exp(-E_m/kT), total vacancy hop rate 12 k(T).",
                   metrics={"prefactor_log10_error": Metric("1", 0.05, 1.0,
                                      'log10 error of the Vineyard prefactor: 0.05 is a 12% rate error; 1.0 is an order of magnitude'),
                            "rate_log10_error": Metric("1", 0.1, 1.0,
                                      'log10 error of the HTST hop rate at the reference temperature: 0.1 is 26%, 1.0 an order of magnitude')}, order=100))
