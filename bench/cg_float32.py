"""Is float32 CG MD the same model? RDF distances of float64 and float32 CG MD of trained CG
models, at every state of a finished `mlffbench cg` run, and the speed of each.

For each state and model (HIP-NN-TS member 0 and the pair spline, both loaded from the run's
`models/`), CG MD runs exactly as the benchmark runs it (`transfer.member_metrics`: the run's
`cg_md` settings, the same start frames) in float64 and in float32 (models only; the integrator
stays float64), each with two seeds. A state passes when the float32 mean distance is within
2 sigma of the float64 one, sigma from the bootstrap errors of the four runs. The RDF distance
between float32 and float64 runs with different seeds is shown beside the distance between the
two float64 seeds (what sampling alone gives).

    python bench/cg_float32.py RUN_DIR -c CONFIG [--states NAME ...] [--out bench/results/cg_float32.json]

CONFIG is the run's config; references come from RUN_DIR/reference/<state>.npz (no all-atom MD
is re-run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import mlffbench  # noqa: F401  (x64)
from mlffbench.cg.config import CGConfig
from mlffbench.cg.data import load_all_atom
from mlffbench.cg.fit import load_cg_model
from mlffbench.cg.transfer import map_references, member_metrics
from mlffbench.config import load_config
from mlffbench.io import device_description, package_versions
from mlffbench.properties.structure import rdf_distance

MODELS = {"hipnn-ts": "hipnn-ts", "pair-spline": "pair_spline.json"}


def _runs(cfg, m: dict, k: int, path: Path) -> dict:
    """Two seeds per precision of the model at `path` on state k: distances, errors, g(r), wall."""
    pot64 = load_cg_model(path, jnp.float64)
    out = {}
    for name, dtype in (("float64", jnp.float64), ("float32", jnp.float32)):
        md_pot = pot64 if dtype == jnp.float64 else load_cg_model(path, dtype)
        runs = []
        for seed in (cfg.seed + 7 * k + 1, cfg.seed + 7 * k + 501):
            t0 = time.perf_counter()
            e = member_metrics(cfg, m, pot64, seed, md_pot)
            runs.append({"seed": seed, "md_status": e["md_status"], "rdf_distance": e.get("rdf_distance"),
                         "rdf_distance_std": e.get("rdf_distance_std"), "md_seconds": e["md_seconds"],
                         "wall_seconds": time.perf_counter() - t0, "g": e.get("rdf", {}).get("g")})
        out[name] = runs
    return out


def _compare(r: np.ndarray, runs: dict, metric: str) -> dict:
    a, b = runs["float64"], runs["float32"]
    if any(x["rdf_distance"] is None for x in a + b):
        return {"pass": False, "reason": "a run failed"}
    d64 = np.mean([x["rdf_distance"] for x in a])
    d32 = np.mean([x["rdf_distance"] for x in b])
    u = float(np.sqrt(sum(x["rdf_distance_std"] ** 2 for x in a + b) / 4.0))
    within = rdf_distance(r, a[0]["g"], a[1]["g"], metric)
    across = float(np.mean([rdf_distance(r, b[0]["g"], a[1]["g"], metric),
                            rdf_distance(r, b[1]["g"], a[0]["g"], metric)]))
    speed = float(np.mean([x["md_seconds"] for x in a]) / np.mean([x["md_seconds"] for x in b]))
    return {"rdf_distance_float64": float(d64), "rdf_distance_float32": float(d32), "difference": float(d32 - d64),
            "uncertainty": u, "pass": bool(abs(d32 - d64) <= 2 * u),
            "g_distance_float64_seeds": float(within), "g_distance_float32_vs_float64": across,
            "md_speedup_float32": speed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("-c", "--config", type=Path, required=True, help="the run's config")
    ap.add_argument("--states", nargs="*")
    ap.add_argument("--out", type=Path, default=Path("bench/results/cg_float32.json"))
    args = ap.parse_args()
    cfg = load_config(CGConfig, args.config)
    states = [s for s in cfg.states if not args.states or s.name in args.states]
    refs = {}
    for st in states:
        refs[st.name] = load_all_atom(args.run_dir / "reference" / f"{st.name}.npz", name=st.name)
        refs[st.name].kT = st.kT
    scratch = Path(tempfile.mkdtemp(prefix="cg_float32_"))
    try:
        mapped = map_references(cfg, refs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    t0 = time.perf_counter()
    result = {"run_dir": str(args.run_dir), "cg_md": cfg.cg_md.model_dump(), "states": {},
              "device": device_description(), "versions": package_versions()}
    for st in states:
        k = [s.name for s in cfg.states].index(st.name)
        m = mapped[st.name]
        entry = {}
        for model, fname in MODELS.items():
            runs = _runs(cfg, m, k, args.run_dir / "models" / fname)
            entry[model] = {**_compare(m["r"], runs, cfg.analysis.rdf_metric),
                            "runs": {p: [{k2: v for k2, v in x.items() if k2 != "g"} for x in rs]
                                     for p, rs in runs.items()}}
            c = entry[model]
            print(f"{st.name} {model}: d64 {c.get('rdf_distance_float64', float('nan')):.4f} "
                  f"d32 {c.get('rdf_distance_float32', float('nan')):.4f} +- {c.get('uncertainty', float('nan')):.4f} "
                  f"pass {c['pass']}; g32-g64 {c.get('g_distance_float32_vs_float64', float('nan')):.4f} "
                  f"(seeds {c.get('g_distance_float64_seeds', float('nan')):.4f}); "
                  f"MD {c.get('md_speedup_float32', float('nan')):.2f}x", flush=True)
        result["states"][st.name] = entry
    result["all_pass"] = all(e[mn]["pass"] for e in result["states"].values() for mn in e)
    result["wall_seconds"] = time.perf_counter() - t0
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    result["load_average"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"all pass: {result['all_pass']}; wrote {args.out}")


if __name__ == "__main__":
    main()
