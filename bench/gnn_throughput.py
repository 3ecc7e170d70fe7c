"""The default GNN's cost at N = 256: energy+forces per call, FLOPs per edge, fraction of this
CPU's peak, and MD atom-steps/s, with LJ (the same code path) as the peer in the same process.

The default model is SchNet with the hyperparameters of configs/train-quick.yaml (32 features,
2 blocks, 16 Gaussians, pair term), float32, on a rattled 4x4x4 FCC crystal (256 atoms,
a = 1.5496 sigma), with the neighbour list MD uses (skin 0.3 sigma, capacity multiplier 1.3,
bucketed). Parameters are a seeded initialisation unless --model DIR names a trained model
(cost does not depend on the weights; MD stability does).

* `energy_forces`: interleaved calls (GNN, GNN on the compacted list, LJ) so load hits all alike;
  min and median ms, CPU time of the loop, 1-minute load average at start and end.
* `compacted`: the same list with its padding slots dropped (what a capacity of exactly the
  listed pairs would cost); energy and force differences against the padded list are reported
  (same parameters, same pairs: round-off only).
* `cost`: XLA's cost analysis of the compiled call (FLOPs, bytes accessed), FLOPs per listed
  pair; the CPU's attainable peak is a 1024^2 float32 matmul timed in the same process.
* `md_nve`: steady atom-steps/s of `run_md` (NVE, float32 state, dt 0.002 tau, kT 0.3) with the
  model and with LJ (float64), compile apart (the second of two identical runs is timed). The
  model runs with its own MD list head room (`Potential.md_list_headroom`, 1.1 for GNNs) and,
  as `gnn_headroom_1.3`, with LJ's 1.3, which every potential used before.

* `profile` (with --profile K): the K costliest XLA ops of the compiled call, ms per call, from
  a `jax.profiler` trace of 50 calls (the thunks the CPU runtime records); this is how the
  filter's pad+add transpose (1.9 of ~4 ms) was found (docs/performance.md).

    python bench/gnn_throughput.py [--out bench/results/gnn_throughput.json] [--repeats 50]
        [--md-steps 1000] [--model DIR] [--quick] [--profile K]

Goal (issue 18): <= 5 ms per call; >= 50k atom-steps/s in MD.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import gzip
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml

import mlffbench  # noqa: F401  (x64, compile cache)
from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.io import device_description, package_versions, write_json
from mlffbench.neighbors import capacity, edge_index
from mlffbench.potentials.gnn import init_params, load_model_potential, make_potential
from mlffbench.potentials.lj import lennard_jones
from mlffbench.structures import fcc

ROOT = Path(__file__).resolve().parents[1]
STD = {"energy_shift": -7.0, "energy_scale": 3.0, "force_scale": 3.0}
A0, N_CELLS, SKIN = 1.5496, 4, 0.3


def default_hparams() -> tuple[str, dict]:
    """(architecture, hparams) of the default model (configs/train-quick.yaml)."""
    cfg = yaml.safe_load((ROOT / "configs" / "train-quick.yaml").read_text())
    return cfg["model"]["architecture"], dict(cfg["model"]["hparams"])


def crystal(seed: int = 0):
    s = fcc(N_CELLS, A0)
    R = s.positions + np.random.default_rng(seed).uniform(-0.05, 0.05, s.positions.shape)
    return R, s.box


def compacted(nbrs, n_atoms: int):
    """The same sparse list with padding slots (index N) removed: shape (2, listed pairs)."""
    idx = np.asarray(nbrs.idx)
    keep = (idx[0] < n_atoms) & (idx[1] < n_atoms)
    return dataclasses.replace(nbrs, idx=jnp.asarray(idx[:, keep]), max_occupancy=int(keep.sum()))


def load_avg() -> float:
    return os.getloadavg()[0]


def timed_interleaved(fns: dict, repeats: int) -> dict:
    """{name: {min_ms, median_ms, cpu_ms_per_call}} for zero-argument jitted callables, called in
    turn `repeats` times (first call of each excluded: compilation)."""
    for f in fns.values():
        jax.block_until_ready(f())
    wall = {k: [] for k in fns}
    cpu = {k: 0.0 for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            jax.block_until_ready(f())
            wall[k].append(time.perf_counter() - t0)
            cpu[k] += time.process_time() - c0
    return {k: {"min_ms": 1e3 * min(v), "median_ms": 1e3 * float(np.median(v)),
                "cpu_ms_per_call": 1e3 * cpu[k] / repeats} for k, v in wall.items()}


def cost_analysis(jitted, *args) -> dict:
    """XLA's FLOP and byte counts of one compiled call (None where XLA gives none)."""
    try:
        ca = jitted.lower(*args).compile().cost_analysis()
    except Exception:  # pragma: no cover  (backend without cost analysis)
        return {"flops": None, "bytes_accessed": None}
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
    return {"flops": float(ca.get("flops", float("nan"))), "bytes_accessed": float(ca.get("bytes accessed", float("nan")))}


def matmul_peak_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Best float32 GFLOP/s of an n x n matmul here (this CPU's attainable peak, roughly)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def op_profile(fn, top: int, calls: int = 50) -> list[dict]:
    """The `top` costliest XLA ops of `fn()` (a zero-argument jitted call, compiled already), ms
    per call, from a jax.profiler trace of `calls` calls. Runtime bookkeeping events (the
    executor, block_until_ready, Python frames) are left out."""
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            for _ in range(calls):
                jax.block_until_ready(fn())
        path = glob.glob(f"{d}/**/*perfetto_trace.json.gz", recursive=True)[0]
        events = json.load(gzip.open(path))
    events = events["traceEvents"] if isinstance(events, dict) else events
    total: dict[str, float] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("ph") == "X" and ("fusion" in name or name.startswith(("wrapped_", "dot", "gather", "scatter"))):
            total[name] = total.get(name, 0.0) + e.get("dur", 0.0)
    ranked = sorted(total.items(), key=lambda kv: -kv[1])[:top]
    return [{"op": k, "ms_per_call": v / calls / 1e3} for k, v in ranked]


def md_rate(pot, steps: int, dtype, dt: float, capacity_multiplier: float | None = None) -> dict:
    """Steady NVE atom-steps/s (second of two identical runs: the first compiles). Neighbour-list
    head room: `capacity_multiplier`, else the potential's own `md_list_headroom`."""
    s = fcc(N_CELLS, A0)
    kw = dict(kT=0.3, seed=1, sample_every=steps // 10, chunk_steps=steps // 10, skin=SKIN, dtype=dtype,
              capacity_multiplier=capacity_multiplier)
    first = run_md(pot, s.positions, s.box, Integrator("nve", dt=dt), steps, **kw)
    res = run_md(pot, s.positions, s.box, Integrator("nve", dt=dt), steps, **kw)
    return {"steps": steps, "dt_tau": dt, "dtype": jnp.dtype(dtype).name,
            "compile_s_first_run": first.compile_seconds, "run_s": res.run_seconds,
            "atom_steps_per_s": res.atom_steps_per_second, "status": res.status,
            "neighbor_reallocations": res.neighbor_reallocations,
            "capacity_multiplier": capacity_multiplier or pot.md_list_headroom}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results/gnn_throughput.json")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--md-steps", type=int, default=1000)
    ap.add_argument("--model", default=None, help="a trained model directory (default: seeded init)")
    ap.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    ap.add_argument("--profile", type=int, default=0, metavar="K", help="record the K costliest XLA ops")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.md_steps = 5, 100
    load0 = list(os.getloadavg())
    cpu0, wall0 = time.process_time(), time.perf_counter()

    arch, hp = default_hparams()
    if args.model:
        gnn = load_model_potential(args.model, "float32")
    else:
        gnn = make_potential(arch, hp, init_params(arch, hp, 0), STD, dtype=jnp.float32)
    lj = lennard_jones("lj/cut/shift")
    R, box = crystal()
    N = len(R)
    R32, box32 = jnp.asarray(R, jnp.float32), jnp.asarray(box, jnp.float32)
    R64, box64 = jnp.asarray(R), jnp.asarray(box)
    nb = gnn.neighbors(box, skin=SKIN, n_atoms=N).allocate(R64)
    nb_c = compacted(nb, N)
    nb_lj = lj.neighbors(box, skin=SKIN, n_atoms=N).allocate(R64)
    i, j = (np.asarray(a) for a in edge_index(nb))
    real = (i < N) & (j < N)
    d = R[j[real]] - R[i[real]]
    frac = d @ np.linalg.inv(box).T
    d = (frac - np.round(frac)) @ box.T
    n_in_cutoff = int((np.linalg.norm(d, axis=1) < gnn.cutoff).sum())

    ef = jax.jit(lambda R, nbrs: gnn.energy_and_forces(R, box32, nbrs))
    ef_lj = jax.jit(lambda R, nbrs: lj.energy_and_forces(R, box64, nbrs))
    t0 = time.perf_counter()
    e_pad, f_pad = jax.block_until_ready(ef(R32, nb))
    compile_s = time.perf_counter() - t0
    e_c, f_c = jax.block_until_ready(ef(R32, nb_c))
    calls = timed_interleaved({"gnn": lambda: ef(R32, nb), "gnn_compacted": lambda: ef(R32, nb_c),
                               "lj": lambda: ef_lj(R64, nb_lj)}, args.repeats)
    cost = cost_analysis(ef, R32, nb)
    cost_c = cost_analysis(ef, R32, nb_c)
    peak = matmul_peak_gflops()
    n_pairs = int(real.sum())
    gflops_at_min = cost["flops"] / (calls["gnn"]["min_ms"] * 1e-3) / 1e9 if cost["flops"] else None

    md = {}
    if args.md_steps:
        md["gnn"] = md_rate(gnn, args.md_steps, jnp.float32, 0.002)
        md["gnn_headroom_1.3"] = md_rate(gnn, args.md_steps, jnp.float32, 0.002, capacity_multiplier=1.3)
        md["lj"] = md_rate(lj, args.md_steps, jnp.float64, 0.002)

    out = {
        "benchmark": "gnn_throughput",
        "model": {"architecture": arch, "hparams": hp, "source": args.model or "seeded init (seed 0)",
                  "dtype": "float32", "fingerprint": gnn.fingerprint},
        "system": {"n_atoms": N, "structure": "fcc 4x4x4 rattled 0.05 sigma", "skin_sigma": SKIN,
                   "capacity_multiplier": 1.3},
        "edges": {"slots": capacity(nb), "listed_pairs": n_pairs, "pairs_within_cutoff": n_in_cutoff,
                  "padding_fraction": 1 - n_pairs / capacity(nb)},
        "energy_forces": {"compile_s": compile_s, **calls, "repeats": args.repeats,
                          "unit": "ms per jitted energy+forces call"},
        "compacted_vs_padded": {
            "energy_abs_diff_epsilon": float(abs(e_c - e_pad)),
            "energy_rel_diff": float(abs(e_c - e_pad) / abs(e_pad)),
            "force_max_abs_diff_epsilon_per_sigma": float(jnp.max(jnp.abs(f_c - f_pad))),
            "force_rms_epsilon_per_sigma": float(jnp.sqrt(jnp.mean(f_pad ** 2)))},
        "cost": {**cost, "flops_compacted": cost_c["flops"],
                 "flops_per_listed_pair": cost["flops"] / n_pairs if cost["flops"] else None,
                 "flops_per_slot": cost["flops"] / capacity(nb) if cost["flops"] else None,
                 "gflops_per_s_at_min": gflops_at_min, "matmul_1024_float32_gflops_per_s": peak,
                 "fraction_of_matmul_peak": gflops_at_min / peak if gflops_at_min else None},
        "md_nve": md,
        **({"profile": op_profile(lambda: ef(R32, nb), args.profile)} if args.profile else {}),
        "goal": {"energy_forces_ms": 5.0, "md_atom_steps_per_s": 50000.0},
        "load_average_1min": {"start": load0[0], "end": load_avg()},
        "process": {"wall_s": time.perf_counter() - wall0, "cpu_s": time.process_time() - cpu0,
                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0},
        "device": device_description(), "versions": package_versions(),
    }
    write_json(args.out, out)
    c = calls["gnn"]
    print(f"GNN E+F N={N}: min {c['min_ms']:.2f} ms, median {c['median_ms']:.2f} ms "
          f"(compacted {calls['gnn_compacted']['median_ms']:.2f}; LJ {calls['lj']['median_ms']:.2f}); "
          f"{cost['flops'] / 1e6 if cost['flops'] else float('nan'):.1f} MFLOP, padding "
          f"{out['edges']['padding_fraction']:.0%}; MD "
          f"{md.get('gnn', {}).get('atom_steps_per_s', float('nan')):.3g} atom-steps/s; "
          f"load {load0[0]:.1f}->{load_avg():.1f}; wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
