"""Benchmarks that call other commands' workflows (check-model, md, pdos, neb, vacancy).

Each adapter loads that command's own config (path + overrides from the run config), calls its
workflow function on one potential, and keeps the numbers the scorecard needs plus the workflow's
full result. Nothing here re-implements their physics. When a workflow is absent from this
version the benchmark is 'not run' with reason 'not available in this version'.
"""

from __future__ import annotations

import importlib

from mlffbench.io import value
from mlffbench.benchmarks import (NOT_AVAILABLE, BenchContext, BenchmarkFailed, BenchmarkNotRun, Benchmark,
                                  WorkflowSettings,
                                  register)


def workflow_function(module: str, name: str):
    """`module.name` or BenchmarkNotRun('not available in this version')."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise BenchmarkNotRun(NOT_AVAILABLE) from exc
    fn = getattr(mod, name, None)
    if fn is None:
        raise BenchmarkNotRun(NOT_AVAILABLE)
    return fn


def available(module: str, name: str):
    def check():
        try:
            workflow_function(module, name)
        except BenchmarkNotRun as exc:
            return exc.reason
        return None
    return check


def _not_wired(ctx: BenchContext):
    raise BenchmarkNotRun(NOT_AVAILABLE)


def _compare_none(model: dict, ref: dict) -> dict:
    return {}


def sub_config(model: type, ctx: BenchContext, extra: dict | None = None, potential=None):
    """The workflow's config from the benchmark settings (file + overrides, + float32_overrides
    for a float32 potential), with the run's units (and `extra`) imposed so that every workflow
    reports in the same unit system."""
    from mlffbench.benchmarks import is_float32
    from mlffbench.workflows.run import load_stage_config

    s: WorkflowSettings = ctx.settings
    forced = dict(s.float32_overrides) if potential is not None and is_float32(potential) else {}
    # impose only keys the workflow's config has (its schema may evolve independently)
    forced.update({k: v for k, v in (extra or {}).items() if k.split(".")[0] in model.model_fields})
    if "units" in model.model_fields and ctx.run_config is not None:
        forced["units"] = ctx.run_config.units.model_dump()
    return load_stage_config(model, s, f"benchmarks.{ctx.benchmark}", forced)


def memo_call(ctx: BenchContext, key, fn):
    """fn() once per potential per run (two benchmarks reading one workflow run share it)."""
    if key not in ctx.memo:
        ctx.memo[key] = fn()
    return ctx.memo[key]


def _plot(name: str, fn):
    """Wrap a plot function: matplotlib Agg, one figure, saved as <name>.png."""
    def plot(model: dict, ref: dict, outdir, units) -> list:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.4))
        fn(ax, model, ref)
        fig.tight_layout()
        fig.savefig(outdir / f"{name}.png", dpi=110)
        plt.close(fig)
        return [f"{name}.png"]
    return plot


# ----------------------------------------------------------------------------------------------
# integrity: `mlffbench check-model`
# ----------------------------------------------------------------------------------------------
def run_integrity(potential, ctx: BenchContext) -> dict:
    from mlffbench.workflows.check_model import CheckModelConfig, plot_dimer, run_checks

    cfg = sub_config(CheckModelConfig, ctx, potential=potential)
    res = run_checks(potential, cfg)
    try:
        plot_dimer(res, ctx.workdir / "dimer.png", ctx.units)
    except Exception:  # the numbers matter, the picture is a bonus
        pass
    checks = {c["name"]: c for c in res["checks"]}
    failed = [n for n, c in checks.items() if c.get("passed") is False]
    return {"checks_passed": value(res["n_passed"], "count"), "checks_applicable": value(res["n_checks"], "count"),
            "failed_checks": failed, "checks": checks, "dtype": res["dtype"]}


def compare_integrity(model: dict, ref: dict) -> dict:
    n = max(model["checks_applicable"]["value"], 1)
    frac = 1.0 - model["checks_passed"]["value"] / n
    return {"fraction_failed": value(frac, "1", failed=model["failed_checks"])}


register(Benchmark("integrity", "integrity checks (check-model)", run_integrity, compare_integrity, WorkflowSettings,
                   available=available("mlffbench.workflows.check_model", "run_checks"),
                   description="F = -grad E, translation/rotation/permutation invariance, smoothness at the "
                               "cutoff, extensivity; each check pass/fail with its number."))


# ----------------------------------------------------------------------------------------------
# migration barrier and harmonic TST: `mlffbench neb`
# ----------------------------------------------------------------------------------------------
def _neb_doc(potential, ctx: BenchContext) -> dict:
    from mlffbench.workflows.neb import NebConfig, run_neb

    cfg = sub_config(NebConfig, ctx, potential=potential)

    def go():
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        return run_neb(potential, cfg, ctx.workdir, model_spec=potential.name)

    return memo_call(ctx, ("neb", cfg.model_dump_json()), go)


def run_migration_barrier(potential, ctx: BenchContext) -> dict:
    doc = _neb_doc(potential, ctx)
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
    m, r = model["barrier_forward"]["value"], ref["barrier_forward"]["value"]
    return {"barrier_rel_error": value(abs(m - r) / abs(r), "1", signed=(m - r) / r),
            "barrier_error": value((m - r) * 1000.0, "meV")}


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
                               "vacancy, each potential at its own a0; force-only models: line integral."))


def run_htst(potential, ctx: BenchContext) -> dict:
    doc = _neb_doc(potential, ctx)
    if doc["status"] != "converged":
        raise BenchmarkFailed(f"no saddle: string method did not converge: {doc.get('message', '')}")
    if "htst" not in doc:
        raise BenchmarkNotRun("harmonic TST not computed (htst.enabled is false)")
    h = doc["htst"]
    raw = {"prefactor": h["prefactor"], "imaginary_frequency": h["imaginary_frequency"],
           "temperatures": h["temperatures"], "single_hop_rate": h["single_hop_rate"],
           "total_vacancy_hop_rate": h["total_vacancy_hop_rate"], "barrier_forward": doc["barrier"]["forward"],
           "unstable_modes_at_saddle": h["unstable_modes_at_saddle"]}
    if h["unstable_modes_at_saddle"] != 1:
        raise BenchmarkFailed(f"saddle has {h['unstable_modes_at_saddle']} unstable modes (expected 1)", raw)
    return raw


def compare_htst(model: dict, ref: dict) -> dict:
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
                               "exp(-E_m/kT), total vacancy hop rate 12 k(T)."))


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


# ----------------------------------------------------------------------------------------------
# Phonon DOS at 0 K and at finite temperature: `mlffbench pdos`
# ----------------------------------------------------------------------------------------------
def _pdos_run(potential, ctx: BenchContext, zero_k: bool, finite_t: bool) -> dict:
    from mlffbench.workflows.pdos import PdosConfig, run_one, write_outputs

    cfg = sub_config(PdosConfig, ctx, {"seed": ctx.seed, "progress": False,
                                       "zero_kelvin.enabled": zero_k, "finite_temperature.enabled": finite_t},
                     potential=potential)
    res = memo_call(ctx, ("pdos", cfg.model_dump_json()), lambda: run_one(potential, cfg, log=lambda m: None))
    try:
        write_outputs(ctx.workdir, res, None, cfg.units.unit_system(), potential.name)
    except Exception:
        pass
    return res


def _thz(pair: dict) -> dict:
    return value(pair["THz"], "THz", reduced=pair["reduced"])


def run_pdos_0k(potential, ctx: BenchContext) -> dict:
    import numpy as np

    zk = _pdos_run(potential, ctx, True, False)["zero_kelvin"]
    s = zk["summary"]
    raw = {"nu_max": _thz(s["nu_max"]), "nu_mean": _thz(s["nu_mean"]),
           "nu2_mean": value(s["nu2_mean"]["THz^2"], "THz^2", reduced=s["nu2_mean"]["reduced"]),
           "lattice_constant": s["lattice_constant"], "n_imaginary_modes": s["n_imaginary_modes"],
           "n_atoms": s["n_atoms"], "mesh": s["mesh"], "hessian_asymmetry": s["hessian_asymmetry"],
           "force_constant_method": s["force_constant_method"],
           "summary": s, "grid": np.asarray(zk["grid"]).tolist(), "dos": np.asarray(zk["dos"]).tolist(),
           "nu_gamma": np.asarray(zk["nu_gamma"]).tolist()}
    for point in ("X", "L"):
        for k, (thz, red) in enumerate(zip(s[f"nu_{point}"]["THz"], s[f"nu_{point}"]["reduced"]), 1):
            raw[f"nu_{point}_{k}"] = value(thz, "THz", reduced=red)
    if s["n_imaginary_modes"]:
        raise BenchmarkFailed(f"{s['n_imaginary_modes']} imaginary modes on the q-mesh (crystal unstable)", raw)
    return raw


def compare_pdos_0k(model: dict, ref: dict) -> dict:
    import numpy as np

    from mlffbench.workflows.pdos import compare

    def arrays(raw):
        return {"zero_kelvin": {"summary": raw["summary"], "grid": np.asarray(raw["grid"]),
                                "dos": np.asarray(raw["dos"]), "nu_gamma": np.asarray(raw["nu_gamma"])}}

    c = compare(arrays(model), arrays(ref))["zero_kelvin"]
    out = {"dos_w1_rel": value(c["w1_dos_over_ref_nu_max"], "1"),
           "nu_max_rel_error": value(abs(c["rel_error_nu_max"]), "1", signed=c["rel_error_nu_max"]),
           "nu_mean_rel_error": value(c["rel_error_nu_mean"], "1"),
           "nu2_mean_rel_error": value(c["rel_error_nu2_mean"], "1"),
           "gamma_histogram_w1_rel": value(c["w1_gamma_supercell_over_ref_nu_max"], "1")}
    for point in ("X", "L"):
        for k, e in enumerate(c[f"rel_error_nu_{point}"], 1):
            out[f"nu_{point}_{k}_rel_error"] = value(e, "1")
    return out


def _dos(ax, model, ref):
    for raw, label, st in ((ref, "LJ", "-"), (model, "model", "--")):
        if raw and "grid" in raw:
            tau = raw["nu_max"]["value"] / raw["nu_max"]["reduced"]  # THz per 1/tau
            ax.plot([g * tau for g in raw["grid"]], [d / tau for d in raw["dos"]], st, label=label)
    ax.set_xlabel("frequency (THz)")
    ax.set_ylabel("DOS (states/THz)")
    ax.set_title("phonon DOS, 0 K")
    ax.legend()


register(Benchmark("pdos_0k", "phonon DOS at 0 K", run_pdos_0k, compare_pdos_0k, WorkflowSettings,
                   plot=_plot("pdos", _dos), available=available("mlffbench.workflows.pdos", "run_one"),
                   reference_values={"nu_max": {"rel": 1e-7}, "nu_mean": {"rel": 1e-7}, "nu2_mean": {"rel": 1e-7},
                                     "nu_X_*": {"rel": 1e-7}, "nu_L_*": {"rel": 1e-7}},
                   description="exact-Hessian force constants of the relaxed supercell, q-mesh DOS (Gaussian); "
                               "W1 distance over LJ's nu_max, nu_max, moments, nu at X and L."))


def run_pdos_finite_t(potential, ctx: BenchContext) -> dict:
    import numpy as np

    ft = _pdos_run(potential, ctx, False, True)["finite_temperature"]
    runs, melted = [], []
    for r in ft["runs"]:
        entry = {k: v for k, v in r.items() if k not in ("_arrays", "sed")}
        entry["_arrays"] = {"nu": np.asarray(r["_arrays"]["nu"]).tolist(), "vdos": np.asarray(r["_arrays"]["vdos"]).tolist()}
        runs.append(entry)
        if r.get("status") != "ok":
            melted.append(f"{r['temperature']['value']:g} K: {r.get('status')}")
    raw = {"nu_top": ft["nu_top"], "runs": runs, "settings": ft["settings"]}
    if melted:
        raise BenchmarkFailed("finite-T run not usable: " + "; ".join(melted), raw)
    return raw


def compare_pdos_finite_t(model: dict, ref: dict) -> dict:
    import numpy as np

    from mlffbench.workflows.pdos import compare

    def arrays(raw):
        runs = [{**r, "_arrays": {k: np.asarray(v) for k, v in r["_arrays"].items()}} for r in raw["runs"]]
        return {"finite_temperature": {"nu_top": raw["nu_top"], "runs": runs}}

    rows = compare(arrays(model), arrays(ref))["finite_temperature"]
    out = {}
    w = [r["w1_vdos_over_ref_nu_max"] for r in rows if "w1_vdos_over_ref_nu_max" in r]
    for r in rows:
        if "w1_vdos_over_ref_nu_max" in r:
            out[f"vdos_w1_rel_{r['temperature_K']:g}K"] = value(r["w1_vdos_over_ref_nu_max"], "1")
    if w:
        out["dos_w1_rel"] = value(max(w), "1")
    return out


def _vdos(ax, model, ref):
    for raw, label, st in ((ref, "LJ", "-"), (model, "model", "--")):
        for r in (raw or {}).get("runs", []):
            ax.plot(r["_arrays"]["nu"], r["_arrays"]["vdos"], st, label=f"{label} {r['temperature']['value']:g} K")
    ax.set_xlabel("frequency (1/tau)")
    ax.set_ylabel("VDOS")
    ax.set_title("vibrational DOS from the VACF")
    ax.legend(fontsize=8)


register(Benchmark("pdos_finite_t", "vibrational DOS at finite temperature", run_pdos_finite_t,
                   compare_pdos_finite_t, WorkflowSettings, plot=_plot("vdos", _vdos),
                   available=available("mlffbench.workflows.pdos", "run_one"),
                   description="NVT then NVE MD of the crystal, VACF -> vibrational DOS; W1 distance to LJ's."))


# ----------------------------------------------------------------------------------------------
# Vacancy hop rates from MD: `mlffbench vacancy`
# ----------------------------------------------------------------------------------------------
def run_hop_rates(potential, ctx: BenchContext) -> dict:
    from mlffbench.workflows.vacancy import VacancyConfig, run_vacancy

    cfg = sub_config(VacancyConfig, ctx, {"seed": ctx.seed}, potential=potential)
    # the checkpoint lives in ctx.scratch, which survives a killed run: accumulated hops are kept
    scratch = ctx.scratch or ctx.workdir
    scratch.mkdir(parents=True, exist_ok=True)
    doc = run_vacancy(potential, cfg, ctx.workdir, scratch / "checkpoint.npz", model_spec=potential.name,
                      log=lambda m: None)
    rates = {}
    for r in doc["rates"]:
        tag = f"{r['temperature']['value']:g}K"
        rates[tag] = {"temperature": value(r["temperature"]["value"], "K"), "hops": r["hops"],
                      "simulated_time": r["simulated_time"],
                      "total_hop_rate": value(r["total_hop_rate"]["value"], "1/ps",
                                              ci95=r["total_hop_rate"].get("ci95"))}
    raw = {"rates": rates, "messages": doc.get("messages", []), "n_atoms": doc["system"]["n_atoms"],
           "total_hops": sum(r["hops"] for r in doc["rates"])}
    arr = doc.get("arrhenius", {})
    if "E_m" in arr:
        raw["arrhenius_E_m"] = arr["E_m"]
        raw["arrhenius_nu0"] = arr["nu0"]
    else:
        raw["arrhenius_note"] = arr.get("reason", "not fitted")
    return raw


def compare_hop_rates(model: dict, ref: dict) -> dict:
    import math

    out, errs = {}, []
    for tag, m in model["rates"].items():
        r = ref["rates"].get(tag)
        if r and m["hops"] > 0 and r["hops"] > 0:
            e = abs(math.log10(m["total_hop_rate"]["value"] / r["total_hop_rate"]["value"]))
            out[f"rate_log10_error_{tag}"] = value(e, "1", hops_model=m["hops"], hops_lj=r["hops"])
            errs.append(e)
    out["rate_log10_error"] = value(max(errs) if errs else float("nan"), "1",
                                    note="" if errs else "no temperature with hops in both runs (too short)")
    if "arrhenius_E_m" in model and "arrhenius_E_m" in ref:
        m, r = model["arrhenius_E_m"]["value"], ref["arrhenius_E_m"]["value"]
        out["arrhenius_E_m_rel_error"] = value(abs(m - r) / abs(r), "1")
    return out


def _arrhenius_md(ax, model, ref):
    for raw, label, mk in ((ref, "LJ", "o"), (model, "model", "s")):
        pts = [(1000.0 / r["temperature"]["value"], r["total_hop_rate"]["value"])
               for r in (raw or {}).get("rates", {}).values() if r["hops"] > 0]
        if pts:
            ax.semilogy(*zip(*pts), mk, label=label)
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel("vacancy hop rate (1/ps)")
    ax.set_title("hops counted in MD")
    ax.legend()


register(Benchmark("hop_rates", "vacancy hop rates from MD", run_hop_rates, compare_hop_rates, WorkflowSettings,
                   plot=_plot("arrhenius_md", _arrhenius_md),
                   available=available("mlffbench.workflows.vacancy", "run_vacancy"),
                   description="replicated NVT MD of the vacancy crystal; hops from lattice-site occupancy, "
                               "rates with Poisson intervals, Arrhenius fit."))
