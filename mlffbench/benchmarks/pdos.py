"""Benchmark: phonon densities of states: `mlffbench pdos`."""

from __future__ import annotations

from mlffbench.io import value
from mlffbench.benchmarks import (Metric, BenchContext, BenchmarkFailed, Benchmark, WorkflowSettings,
                                  register)
from mlffbench.benchmarks._workflow import _plot, available, memo_call, sub_config

# ----------------------------------------------------------------------------------------------
# Phonon DOS at 0 K and at finite temperature: `mlffbench pdos`
# ----------------------------------------------------------------------------------------------
def _pdos_run(potential, ctx: BenchContext, zero_k: bool, finite_t: bool,
              lattice_constant: float | None = None, subdir: str = "") -> dict:
    """The `pdos` workflow for ONE potential (memoised per config and lattice constant, sigma;
    None = the config's / the potential's own a0); outputs under ctx.workdir / subdir."""
    from mlffbench.workflows.pdos import run_one, write_outputs

    cfg = _pdos_config(potential, ctx, zero_k, finite_t)
    res = memo_call(ctx, ("pdos", cfg.model_dump_json(), lattice_constant),
                    lambda: run_one(potential, cfg, lattice_constant, log=lambda m: None))
    try:
        (ctx.workdir / subdir).mkdir(parents=True, exist_ok=True)
        write_outputs(ctx.workdir / subdir, res, None, cfg.units.unit_system(), potential.name)
    except Exception:
        pass
    return res


def _pdos_config(potential, ctx: BenchContext, zero_k: bool, finite_t: bool):
    from mlffbench.workflows.pdos import PdosConfig

    return sub_config(PdosConfig, ctx, {"seed": ctx.seed, "progress": False,
                                        "zero_kelvin.enabled": zero_k, "finite_temperature.enabled": finite_t},
                      potential=potential)


def reference_lattice_constant(potential, ctx: BenchContext) -> float | None:
    """LJ's 0 K a0 (sigma) exactly as the reference's own `pdos` run finds it (the config's
    zero_kelvin.lattice_constant, else its relaxed a0), when the settings ask for the model's second
    evaluation at it (`at_reference_a0`, model role, a reference potential); None otherwise."""
    if not getattr(ctx.settings, "at_reference_a0", False) or ctx.role != "model" or ctx.reference_potential is None:
        return None
    from mlffbench.workflows.pdos import crystal_lattice_constant

    return crystal_lattice_constant(ctx.reference_potential, _pdos_config(potential, ctx, True, False))[0]


# ----------------------------------------------------------------------------------------------
# Comparison (the model against the reference: used by the battery and by `pdos --compare`)
# ----------------------------------------------------------------------------------------------
def compare_zero_kelvin(zm: dict, zr: dict) -> dict:
    """Model vs reference 0 K phonons (each a `workflows.pdos.zero_kelvin` result, or a raw dict
    with its summary, grid, dos and nu_gamma): relative errors (model / reference - 1) of nu_max,
    moments, nu at X and L, the lattice constant; W1 distances over the reference nu_max."""
    import numpy as np

    from mlffbench.properties import phonons as ph

    sm, sr = zm["summary"], zr["summary"]
    top = sr["nu_max"]["reduced"]
    return {
        "w1_dos_over_ref_nu_max": ph.wasserstein1(zm["grid"], np.clip(zm["dos"], 0, None),
                                                  zr["grid"], np.clip(zr["dos"], 0, None), scale=top),
        "w1_gamma_supercell_over_ref_nu_max": _w1_samples(zm["nu_gamma"], zr["nu_gamma"]) / top,
        "rel_error_nu_max": sm["nu_max"]["reduced"] / top - 1.0,
        "rel_error_nu_mean": sm["nu_mean"]["reduced"] / sr["nu_mean"]["reduced"] - 1.0,
        "rel_error_nu2_mean": sm["nu2_mean"]["reduced"] / sr["nu2_mean"]["reduced"] - 1.0,
        "rel_error_nu_X": (np.array(sm["nu_X"]["reduced"]) / np.array(sr["nu_X"]["reduced"]) - 1.0).tolist(),
        "rel_error_nu_L": (np.array(sm["nu_L"]["reduced"]) / np.array(sr["nu_L"]["reduced"]) - 1.0).tolist(),
        "rel_error_lattice_constant": sm["lattice_constant"]["reduced"] / sr["lattice_constant"]["reduced"] - 1.0,
        "model_imaginary_modes": sm["n_imaginary_modes"],
    }


def compare_finite_temperature(fm: dict, fr: dict) -> list[dict]:
    """Model vs reference finite-T spectra per temperature (each a `workflows.pdos.finite_temperature`
    result with `nu_top` and `runs`): W1 of the VACF DOS over the reference's harmonic nu_max, SED
    peak shifts."""
    import numpy as np

    from mlffbench.properties import phonons as ph

    rows = []
    for rm, rr in zip(fm["runs"], fr["runs"]):
        row = {"temperature_K": rm["temperature"]["value"], "model_status": rm.get("status"),
               "reference_status": rr.get("status")}
        if "_arrays" in rm and "_arrays" in rr:
            am, ar = rm["_arrays"], rr["_arrays"]
            row["w1_vdos_over_ref_nu_max"] = ph.wasserstein1(am["nu"], am["vdos"], ar["nu"], ar["vdos"],
                                                             scale=fr["nu_top"])
            if "sed" in rm and "sed" in rr:
                shifts = []
                for pm, pr in zip(rm["sed"]["peaks"], rr["sed"]["peaks"]):
                    if pm["ok"] and pr["ok"]:
                        shifts.append({"q_index": pm["q_index"], "branch": pm["branch"],
                                       "shift_reduced": pm["centre"] - pr["centre"],
                                       "rel_shift": pm["centre"] / pr["centre"] - 1.0,
                                       "fwhm_ratio": pm["fwhm"] / pr["fwhm"] if pr["fwhm"] else float("nan")})
                row["sed_peak_shifts"] = shifts
                if shifts:
                    row["sed_mean_abs_rel_shift"] = float(np.mean([abs(x["rel_shift"]) for x in shifts]))
        rows.append(row)
    return rows


def _w1_samples(a, b) -> float:
    import numpy as np
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(np.ravel(a), np.ravel(b)))



def _thz(pair: dict) -> dict:
    return value(pair["THz"], "THz", reduced=pair["reduced"])


def zero_kelvin_raw(zk: dict) -> dict:
    """The raw numbers `compare_pdos_0k` reads, from a `workflows.pdos.zero_kelvin` result (JSON-able)."""
    import numpy as np

    s = zk["summary"]
    raw = {"nu_max": _thz(s["nu_max"]), "nu_mean": _thz(s["nu_mean"]),
           "nu2_mean": value(s["nu2_mean"]["THz^2"], "THz^2", reduced=s["nu2_mean"]["reduced"]),
           "lattice_constant": s["lattice_constant"], "n_imaginary_modes": s["n_imaginary_modes"],
           "n_atoms": s["n_atoms"], "mesh": s["mesh"], "hessian_asymmetry": s["hessian_asymmetry"],
           "force_constant_method": s["force_constant_method"], "hessian": s["hessian"],
           "summary": s, "grid": np.asarray(zk["grid"]).tolist(), "dos": np.asarray(zk["dos"]).tolist(),
           "nu_gamma": np.asarray(zk["nu_gamma"]).tolist()}
    for point in ("X", "L"):
        for k, (thz, red) in enumerate(zip(s[f"nu_{point}"]["THz"], s[f"nu_{point}"]["reduced"]), 1):
            raw[f"nu_{point}_{k}"] = value(thz, "THz", reduced=red)
    return raw


def run_pdos_0k(potential, ctx: BenchContext) -> dict:
    """0 K phonons of ONE potential at its own a0 and, for the model when `at_reference_a0` is set,
    at LJ's a0 too (raw['at_reference_a0']; {'failed': reason} when unstable there)."""
    raw = zero_kelvin_raw(_pdos_run(potential, ctx, True, False)["zero_kelvin"])
    a_ref = reference_lattice_constant(potential, ctx)
    if a_ref is not None:
        at = zero_kelvin_raw(_pdos_run(potential, ctx, True, False, a_ref, "at_reference_a0")["zero_kelvin"])
        at["lattice_constant_source"] = "reference (LJ) 0 K a0"
        if at["n_imaginary_modes"]:
            at["failed"] = f"{at['n_imaginary_modes']} imaginary modes on the q-mesh at LJ's a0"
        raw["at_reference_a0"] = at
    if raw["n_imaginary_modes"]:
        raise BenchmarkFailed(f"{raw['n_imaginary_modes']} imaginary modes on the q-mesh (crystal unstable)", raw)
    return raw


def compare_pdos_0k(model: dict, ref: dict) -> dict:
    """DOS W1, nu_max, moment and X/L errors of the model against the reference, at the model's own
    a0 and (suffix `_at_lj_a0`, when the model has a usable `at_reference_a0` block) at LJ's a0."""
    out = _compare_pdos_0k_one(model, ref)
    at_ref = model.get("at_reference_a0") or {}
    if "summary" in at_ref and "failed" not in at_ref:
        out.update({f"{k}_at_lj_a0": v for k, v in _compare_pdos_0k_one(at_ref, ref).items()})
    return out


def _compare_pdos_0k_one(model: dict, ref: dict) -> dict:
    import numpy as np

    def arrays(raw):
        return {"summary": raw["summary"], "grid": np.asarray(raw["grid"]),
                "dos": np.asarray(raw["dos"]), "nu_gamma": np.asarray(raw["nu_gamma"])}

    c = compare_zero_kelvin(arrays(model), arrays(ref))
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
    at_ref = (model or {}).get("at_reference_a0")
    for raw, label, st in ((ref, "LJ", "-"), (model, "model", "--"), (at_ref, "model at LJ's a0", ":")):
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
                               "W1 distance over LJ's nu_max, nu_max, moments, nu at X and L; at the model's "
                               "own a0 and (at_reference_a0) at LJ's a0.",
                   metrics={"dos_w1_rel": Metric("1", 0.01, 0.2,
                                      "Wasserstein-1 of the DOS over LJ's nu_max: 1% is below the smearing width; 20% moves the whole spectrum"),
                            "nu_max_rel_error": Metric("1", 0.01, 0.2,
                                      '1% in the highest frequency is below experimental resolution; 20% changes Debye temperature-level physics'),
                            "dos_w1_rel_at_lj_a0": Metric("1", 0.01, 0.2,
                                      "the same at LJ's lattice constant: the model's force constants without its a0 error"),
                            "nu_max_rel_error_at_lj_a0": Metric("1", 0.01, 0.2,
                                      "the same at LJ's lattice constant: the model's force constants without its a0 error")},
                   order=70))


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

    def arrays(raw):
        runs = [{**r, "_arrays": {k: np.asarray(v) for k, v in r["_arrays"].items()}} for r in raw["runs"]]
        return {"nu_top": raw["nu_top"], "runs": runs}

    rows = compare_finite_temperature(arrays(model), arrays(ref))
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
                   description="NVT then NVE MD of the crystal, VACF -> vibrational DOS; W1 distance to LJ's.",
                   metrics={"dos_w1_rel": Metric("1", 0.02, 0.25,
                                      'VACF spectra are noisier than harmonic DOS: 2% is within statistical noise of a short run, 25% a different spectrum')}, order=80))
