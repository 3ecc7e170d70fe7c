"""Benchmark: vacancy hop rates from direct MD: `mlffbench vacancy`."""

from __future__ import annotations

from mlffbench.io import value
from mlffbench.benchmarks import (Metric, BenchContext, Benchmark, WorkflowSettings,
                                  register)
from mlffbench.benchmarks._workflow import _plot, available, sub_config

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
    return hop_rates_raw(doc)


def hop_rates_raw(doc: dict) -> dict:
    """The raw numbers `compare_hop_rates` reads, from a `vacancy` result.json document: rates
    per temperature (with their Poisson spread), the Arrhenius fit (with its bootstrap spread)
    """
    rates = {}
    for r in doc["rates"]:
        tag = f"{r['temperature']['value']:g}K"
        rates[tag] = {"temperature": value(r["temperature"]["value"], "K"), "hops": r["hops"],
                      "simulated_time": r["simulated_time"],
                      "total_hop_rate": value(r["total_hop_rate"]["value"], "1/ps",
                                              std=r["total_hop_rate"].get("std"), n=r["hops"],
                                              ci95=r["total_hop_rate"].get("ci95")),
                      "stopped_replicas": sum(bool(rep.get("stopped")) for rep in r.get("replicas", []))}
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
    """|log10| rate ratio per temperature (std: Poisson errors of both counts propagated, 1/sqrt(n)
    relative each) and its maximum; relative error of the Arrhenius E_m (std: both bootstrap
    spreads propagated) where both runs were fitted."""
    import math

    out, errs = {}, []
    for tag, m in model["rates"].items():
        r = ref["rates"].get(tag)
        if r and m["hops"] > 0 and r["hops"] > 0:
            e = abs(math.log10(m["total_hop_rate"]["value"] / r["total_hop_rate"]["value"]))
            std = math.sqrt(1.0 / m["hops"] + 1.0 / r["hops"]) / math.log(10.0)
            out[f"rate_log10_error_{tag}"] = value(e, "1", std=std, hops_model=m["hops"], hops_lj=r["hops"])
            errs.append(e)
    stopped = sum(m.get("stopped_replicas", 0) for m in model["rates"].values())
    why = f"{stopped} model replicas stopped: Frenkel pair or melting" if stopped else "too short"
    out["rate_log10_error"] = value(max(errs) if errs else float("nan"), "1",
                                    note="" if errs else f"no temperature with hops in both runs ({why})")
    if "arrhenius_E_m" in model and "arrhenius_E_m" in ref:
        m, r = model["arrhenius_E_m"], ref["arrhenius_E_m"]
        spread = {}
        if "std" in m and "std" in r:
            spread["std"] = math.hypot(m["std"], r["std"] * m["value"] / r["value"]) / abs(r["value"])
        out["arrhenius_E_m_rel_error"] = value(abs(m["value"] - r["value"]) / abs(r["value"]), "1", **spread)
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
                               "rates with Poisson intervals, Arrhenius fit.",
                   metrics={"rate_log10_error": Metric("1", 0.15, 1.0,
                                      'MD hop counts carry Poisson noise of ~30% in quick runs (log10 0.15); an order of magnitude is a wrong barrier')}, order=110))
