"""HIP-NN-TS neighbour sums: dense per-atom rows (batched matmuls) vs a flat edge list (segment sums).

The same module and parameters on the same configurations, two edge layouts, timed side by
side in one process (repeats interleaved):

* the energy + forces call of one 125-bead CG liquid-like configuration (cg-medium's model size
  and cutoff, bead density 0.25 / sigma^3), float32 and float64;
* with --run-dir (a finished `mlffbench cg` run: its models/hipnn-ts and mapped/<state>.npz), the
  trained member 0 on that state's frames, and 4-replica Langevin CG MD (`run_md`) from them,
  steady steps per second apart from compile time (a random-parameter model blows up in MD).

Agreement is checked too: energies and forces of the two layouts (max |dF|).

    python bench/hipnn_layout.py [--run-dir RUN --state T1.5_rho0.75] [--repeats 5] [--md-steps 500]
    (--repeats: interleaved repeats of the force calls and of the MD runs)
                                 [--out bench/results/hipnn_layout.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import mlffbench  # noqa: F401  (x64)
from mlffbench.cg.fit import hipnn_cg_potential
from mlffbench.cg.prior import ExponentialPrior, prior_from_dict
from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.io import device_description, package_versions, read_json
from mlffbench.potentials.gnn import init_params, load_model
from mlffbench.potentials.gnn.hipnn_ts import HIPNNTS, hparams_with_defaults

# cg-medium's HIP-NN-TS
HPARAMS = dict(n_features=16, n_interactions=2, n_atom_layers=1, n_sensitivities=8, cutoff=3.0,
               min_soft=0.5, max_soft=2.8)
PRIOR = ExponentialPrior(onset=0.8, strength=30.0, width=0.1, fraction=0.05)


def configurations(n_frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n_frames, 125, 3) jittered simple-cubic beads at density 0.25 / sigma^3 and the (3, 3) box."""
    a = 0.25 ** (-1 / 3)
    g = np.arange(5) * a
    base = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    return base[None] + rng.normal(0.0, 0.25, size=(n_frames, *base.shape)), np.eye(3) * 5 * a


def mean_call_seconds(fn, args, inner: int = 20) -> float:
    """Mean seconds per call over `inner` calls, after one warm call."""
    jax.block_until_ready(fn(*args))
    t = time.perf_counter()
    for _ in range(inner):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - t) / inner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--md-steps", type=int, default=500)
    ap.add_argument("--run-dir", type=Path, help="a finished mlffbench cg run (trained model and frames)")
    ap.add_argument("--state", default="T1.5_rho0.75", help="the run's state whose frames are used")
    ap.add_argument("--out", type=Path, default=Path("bench/results/hipnn_layout.json"))
    args = ap.parse_args()
    hp, prior, scale, kT, mass = HPARAMS, PRIOR, 1.0, 1.5, 3.0
    params = init_params("hipnn-ts", HPARAMS, seed=0, dtype=jnp.float64)
    X, box = configurations(8)
    if args.run_dir is not None:
        card, params = load_model(args.run_dir / "models" / "hipnn-ts")
        hp = hparams_with_defaults(card["hparams"])
        scale = float(card["standardization"]["energy_scale"])
        prior = prior_from_dict(read_json(args.run_dir / "models" / "hipnn-ts" / "prior.json"))
        d = np.load(args.run_dir / "mapped" / f"{args.state}.npz")
        X, box, mass = d["positions"][:: max(1, len(d["positions"]) // 8)][:8], d["box"], d["masses"]
        kT = float(read_json(args.run_dir / "states" / args.state / "result.json")["state"]["kT"])
    module = HIPNNTS(**hparams_with_defaults(hp))
    result = {"hparams": hp, "run_dir": None if args.run_dir is None else str(args.run_dir),
              "state": args.state if args.run_dir else None, "n_beads": int(X.shape[1]), "device": device_description(),
              "versions": package_versions(), "force_call_ms": {}, "agreement": {}}
    pots = {}
    for name, dtype in (("float32", jnp.float32), ("float64", jnp.float64)):
        rows = hipnn_cg_potential(module, params, scale, prior, dtype=dtype)
        edges = hipnn_cg_potential(module, params, scale, prior, dtype=dtype, rows=False)  # the peer
        pots[name] = {"rows": rows, "edges": edges}
        R = jnp.asarray(X[0], dtype)
        b = jnp.asarray(box, dtype)
        calls = {}
        for lay, pot in pots[name].items():
            nb = pot.neighbors(b, skin=0.3).allocate(R)
            calls[lay] = (jax.jit(pot.energy_and_forces), (R, b, nb), int(np.size(nb.idx) // (1 if lay == "rows" else 2)))
        (e_r, f_r), (e_e, f_e) = (calls[k][0](*calls[k][1]) for k in ("rows", "edges"))
        result["agreement"][name] = {"energy_rel": float(abs(e_r - e_e) / abs(e_e)),
                                     "force_max_abs": float(jnp.max(jnp.abs(f_r - f_e))),
                                     "force_max": float(jnp.max(jnp.abs(f_e)))}
        times = {k: [] for k in calls}
        for _ in range(args.repeats):  # interleaved
            for k, (fn, a, _) in calls.items():
                times[k].append(mean_call_seconds(fn, a) * 1e3)
        result["force_call_ms"][name] = {k: {"median": float(np.median(v)), "min": float(np.min(v)),
                                             "edge_slots": calls[k][2]} for k, v in times.items()}
        result["force_call_ms"][name]["speedup_median"] = float(np.median(times["edges"]) / np.median(times["rows"]))
        print(name, json.dumps(result["force_call_ms"][name]), result["agreement"][name], flush=True)

    if args.run_dir is None:
        return _write(result, args.out)
    # CG MD, 4 replicas, float32 model, Langevin at the state's kT (cg-medium's settings)
    integ = Integrator(ensemble="nvt_langevin", dt=0.01, gamma=1.0)
    md = {lay: {"runs": []} for lay in ("rows", "edges")}
    for rep in range(args.repeats):  # interleaved; the first run of each layout also compiles
        for lay in md:
            res = run_md(pots["float32"][lay], X[:4], box, integ, args.md_steps, kT=kT, seed=1 + rep,
                         sample_every=25, mass=mass, chunk_steps=args.md_steps, skin=0.3)
            md[lay]["runs"].append({"status": res.status, "compile_s": res.compile_seconds, "run_s": res.run_seconds,
                                    "reallocations": res.neighbor_reallocations,
                                    "replica_steps_per_s": 4 * res.steps_done / max(res.run_seconds, 1e-9)})
    for lay in ("rows", "edges"):
        md[lay]["replica_steps_per_s_median"] = float(np.median([r["replica_steps_per_s"] for r in md[lay]["runs"]]))
    md["speedup_median"] = md["rows"]["replica_steps_per_s_median"] / max(md["edges"]["replica_steps_per_s_median"], 1e-9)
    result["cg_md_4_replicas"] = md
    print("cg md", json.dumps(md), flush=True)
    _write(result, args.out)


def _write(result: dict, out: Path) -> None:
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    result["load_average"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
