"""GNN throughput on this machine: energy+force calls per second, MD atom-steps/s, training configs/s.

Compile time is reported apart from steady state; LJ (the same code path) is the peer, timed in the
same process. Variants show what each speed choice buys for the default model at N = 256:
features 64 / 3 blocks (the pitfalls-note baseline shape) vs 32 / 2 vs 16 / 2, full vs half list
(half = each pair's filter computed once), float64 vs float32, skin 0.3 vs the training lists' 0.

    python bench/gnn_throughput.py --out bench/gnn_throughput.json [--sizes 256 864] [--repeats 20]

Timings are medians of `repeats` calls; on a shared machine compare ratios within one run only.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

import mlffbench  # noqa: F401  (x64)
from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.io import device_description, package_versions
from mlffbench.potentials.gnn import init_params, make_potential
from mlffbench.potentials.gnn.models import SchNetLite
from mlffbench.potentials.lj import lennard_jones
from mlffbench.structures import fcc

STD = {"energy_shift": -7.0, "energy_scale": 3.0, "force_scale": 3.0}


def cells_for(n_atoms: int) -> int:
    return int(round((n_atoms / 4) ** (1 / 3)))


def time_calls(fn, args, repeats: int) -> dict:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "median_ms": 1e3 * float(np.median(times)), "min_ms": 1e3 * float(np.min(times))}


def ef_bench(pot, n_atoms: int, repeats: int, skin: float = 0.3) -> dict:
    s = fcc(cells_for(n_atoms), 1.5496)
    R = jnp.asarray(s.positions + np.random.default_rng(0).uniform(-0.05, 0.05, s.positions.shape))
    box = jnp.asarray(s.box)
    nb = pot.neighbors(s.box, skin=skin, n_atoms=len(R)).allocate(R)
    if pot.conservative:
        fn = jax.jit(lambda R, nb: pot.energy_and_forces(R, box, nb))
    else:
        fn = jax.jit(lambda R, nb: pot.forces(R, box, nb))
    out = time_calls(fn, (R, nb), repeats)
    out["n_edges"] = int(np.asarray(nb.idx).shape[-1])
    out["calls_per_s"] = 1e3 / out["median_ms"]
    return out


def md_bench(pot, n_atoms: int, steps: int = 200) -> dict:
    s = fcc(cells_for(n_atoms), 1.5496)
    res = run_md(pot, s.positions, s.box, Integrator("nve", dt=0.002), steps, kT=0.3, sample_every=steps,
                 chunk_steps=steps)
    return {"steps": steps, "compile_s": res.compile_seconds, "run_s": res.run_seconds,
            "atom_steps_per_s": res.atom_steps_per_second, "status": res.status}


def schnet(hp: dict, half: bool = True, dtype=jnp.float32):
    if half:
        return make_potential("schnet", hp, init_params("schnet", hp, 0), STD, dtype=dtype)
    # full-list variant of the same architecture, for the half-vs-full comparison
    from mlffbench.neighbors import edge_vectors
    from mlffbench.potentials.base import Potential
    from mlffbench.potentials.gnn.models import SCHNET_DEFAULTS

    module = SchNetLite(**{**SCHNET_DEFAULTS, **hp}, half_list=False)
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), init_params("schnet", hp, 0))

    def energy_fn(R, box, nbrs):
        dR, mask, i, j = edge_vectors(R, box, nbrs)
        return jnp.sum(STD["energy_shift"] + STD["energy_scale"] * module.apply(params, dR, mask, i, j, R.shape[0]))

    return Potential("schnet-full", module.cutoff, energy_fn=energy_fn, neighbor_format="full", dtype=dtype)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/gnn_throughput.json")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 864])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--md-steps", type=int, default=200)
    args = ap.parse_args()
    result = {"device": device_description(), "versions": package_versions(), "repeats": args.repeats,
              "note": "median wall ms per jitted energy+forces call (forces only for direct-force)",
              "variants_N256": {}, "models": {}}
    N = 256
    variants = {
        "baseline_F64_B3_full_float32": (schnet({"features": 64, "n_blocks": 3}, half=False), 0.3),
        "F64_B3_half_float32": (schnet({"features": 64, "n_blocks": 3}), 0.3),
        "F32_B2_half_float64": (schnet({"features": 32, "n_blocks": 2}, dtype=jnp.float64), 0.3),
        "F32_B2_half_float32 (default)": (schnet({"features": 32, "n_blocks": 2}), 0.3),
        "F32_B2_half_float32_skin0": (schnet({"features": 32, "n_blocks": 2}), 0.0),
        "F16_B2_half_float32": (schnet({"features": 16, "n_blocks": 2}), 0.3),
        "lj_cut_shift_float64 (peer)": (lennard_jones(), 0.3),
    }
    for name, (pot, skin) in variants.items():
        result["variants_N256"][name] = ef_bench(pot, N, args.repeats, skin)
        print(name, json.dumps(result["variants_N256"][name]), flush=True)
    models = {"schnet (default)": schnet({}), "direct-force (paper)":
              make_potential("direct-force", {}, init_params("direct-force", {}, 0), STD, dtype=jnp.float32),
              "lj (peer)": lennard_jones()}
    for name, pot in models.items():
        result["models"][name] = {}
        for n in args.sizes:
            blk = {"energy_forces": ef_bench(pot, n, max(3, args.repeats // 4))}
            if args.md_steps:
                blk["md_nve"] = md_bench(pot, n, args.md_steps)
            result["models"][name][str(n)] = blk
            print(name, n, json.dumps(blk), flush=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
