"""Neighbour-list rebuild cost and LJ MD throughput from N = 256 to 32 000, LAMMPS beside us.

For each FCC crystal (lj/cut/shift, rc = 2.5 sigma, skin 0.3 sigma, kT = 0.5, dt = 0.005 tau,
NVE float64) it times one forced rebuild of the list `Potential.neighbors` gives (O(N) cell list
where the box holds >= 3 cells per side, all pairs below that), one force call, and, for sizes up
to --before-max, the list this project used before (jax-md, Cartesian positions with a (3, 3)
box: its cell-list size test fails and it enumerates all N^2 pairs). Then steady MD atom-steps/s
(compile apart) of `run_md` and of LAMMPS running the same crystal in the same process.

    python bench/neighbor_scaling.py [--sizes 256 864 ... 32000] [--steps 1000] [--before-max 4000]
                                     [--out bench/results/neighbor_scaling.json]

On a shared machine compare ratios within one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import mlffbench  # noqa: F401  (x64)
import jax
import jax.numpy as jnp

from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.io import device_description, package_versions
from mlffbench.neighbors import capacity, forced_rebuild
from mlffbench.peers import lammps_lj
from mlffbench.potentials import lennard_jones
from mlffbench.structures import fcc
from md_throughput import _best_ms  # same directory: the one best-of-n timer of the MD benchmarks

CELLS = {256: 4, 864: 6, 2048: 8, 4000: 10, 8788: 13, 16384: 16, 32000: 20}
A0, DT, SKIN, KT, RC = 1.5496, 0.005, 0.3, 0.5, 2.5


def _best_cpu_ms(fn, repeats: int) -> float:
    return _best_ms(fn, repeats, clock=time.process_time)


def _rebuild_ms(update, half_cell, R, nbrs, repeats: int, cpu: bool = False) -> float:
    rebuild = jax.jit(lambda r, nb: forced_rebuild(update, half_cell, r, nb).idx)
    jax.block_until_ready(rebuild(R, nbrs))
    return (_best_cpu_ms if cpu else _best_ms)(lambda: rebuild(R, nbrs), repeats)


def list_costs(n_cells: int, before: bool, repeats: int) -> dict:
    """ms for one forced rebuild (ours; before, when asked) and one force call (float64)."""
    s = fcc(n_cells, A0)
    pot = lennard_jones("lj/cut/shift")
    R, box = jnp.asarray(s.positions), jnp.asarray(s.box)
    half_cell = 0.5 * box[:, 0]
    spec = pot.neighbors(s.box, skin=SKIN, n_atoms=s.n_atoms)
    t0 = time.perf_counter()
    nbrs = spec.allocate(R)
    alloc_s = time.perf_counter() - t0
    forces = jax.jit(pot.forces)
    jax.block_until_ready(forces(R, box, nbrs))
    out = {"n_atoms": s.n_atoms, "cell_list": nbrs.cell_list_capacity is not None and not spec.multi_image,
           "edge_capacity": capacity(nbrs), "allocate_s_with_compile": alloc_s,
           "force_ms": _best_ms(lambda: forces(R, box, nbrs), repeats),
           "rebuild_ms": _rebuild_ms(spec.update, half_cell, R, nbrs, repeats)}
    out["force_cpu_ms"] = _best_cpu_ms(lambda: forces(R, box, nbrs), repeats)
    out["rebuild_cpu_ms"] = _rebuild_ms(spec.update, half_cell, R, nbrs, repeats, cpu=True)
    out["rebuild_us_per_atom"] = 1e3 * out["rebuild_ms"] / s.n_atoms
    out["rebuild_cpu_us_per_atom"] = 1e3 * out["rebuild_cpu_ms"] / s.n_atoms
    out["rebuild_over_force"] = out["rebuild_ms"] / out["force_ms"]
    if before:
        from jax_md import partition, space

        displacement, _ = space.periodic_general(box, fractional_coordinates=False)
        old = partition.neighbor_list(displacement, box, jnp.float64(RC), dr_threshold=jnp.float64(SKIN),
                                      capacity_multiplier=1.3, format=partition.NeighborListFormat.OrderedSparse)
        out["before_rebuild_ms"] = _rebuild_ms(old.update, half_cell, R, old.allocate(R), repeats)
    return out


def md_rates(n_cells: int, steps: int) -> dict:
    s = fcc(n_cells, A0)
    res = run_md(lennard_jones("lj/cut/shift"), s.positions, s.box, Integrator("nve", dt=DT), steps, kT=KT,
                 seed=1, sample_every=steps, chunk_steps=steps, skin=SKIN, max_kT=1e9)
    seconds = lammps_lj.time_nvt(s.positions, s.box, steps, KT, DT, RC, SKIN, ensemble="nve")
    ours = s.n_atoms * steps / res.run_seconds
    theirs = s.n_atoms * steps / seconds
    return {"steps": steps, "ours_atom_steps_per_s": ours, "ours_compile_s": res.compile_seconds,
            "lammps_atom_steps_per_s": theirs, "ratio_ours_over_lammps": ours / theirs, "status": res.status}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=sorted(CELLS), choices=sorted(CELLS))
    ap.add_argument("--steps", type=int, default=1000, help="MD steps at N = 256 (fewer for larger N)")
    ap.add_argument("--before-max", type=int, default=4000, help="largest N to time the old all-pairs list at")
    ap.add_argument("--md-max", type=int, default=32000, help="largest N to run the MD comparison at")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench/results/neighbor_scaling.json"))
    args = ap.parse_args()
    load0, cpu0, wall0 = os.getloadavg(), time.process_time(), time.perf_counter()
    rows = []
    for n in args.sizes:
        row = list_costs(CELLS[n], n <= args.before_max, args.repeats)
        if n <= args.md_max:
            row["md_nve_float64"] = md_rates(CELLS[n], max(100, args.steps * 256 // n // 100 * 100))
        row["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        rows.append(row)
        md = row.get("md_nve_float64")
        print(f"N={n:6d} rebuild {row['rebuild_ms']:8.1f} ms ({row['rebuild_us_per_atom']:.1f} us/atom; CPU "
              f"{row['rebuild_cpu_ms']:.1f} ms, {row['rebuild_cpu_us_per_atom']:.1f} us/atom"
              + (f"; before {row['before_rebuild_ms']:.0f} ms" if "before_rebuild_ms" in row else "")
              + f"), force {row['force_ms']:.1f} ms"
              + (f"; MD {md['ours_atom_steps_per_s']:.3g} vs LAMMPS {md['lammps_atom_steps_per_s']:.3g} "
                 f"atom-steps/s (ratio {md['ratio_ours_over_lammps']:.2f})" if md else ""), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "neighbor_scaling", "potential": "lj/cut/shift rc=2.5",
                                    "skin_sigma": SKIN, "timestep_tau": DT, "kT": KT, "units": {
                                        "rebuild_ms": "ms (wall, best of repeats)", "rebuild_cpu_ms": "ms (process CPU, best of repeats)",
                                        "force_ms": "ms", "rebuild_us_per_atom": "us",
                                        "atom_steps_per_s": "1/s", "peak_rss_gb": "GB"},
                                    "device": device_description(), "versions": package_versions(),
                                    "load_average_1_5_15_start": list(load0),
                                    "load_average_1_5_15_end": list(os.getloadavg()),
                                    "process_cpu_s": time.process_time() - cpu0,
                                    "wall_s": time.perf_counter() - wall0, "results": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
