"""LJ MD throughput of mlffbench (jax-md core) against LAMMPS, same machine, same run.

For each system size, ensemble (NVE, NVT Nose-Hoover) and dtype (float64, float32) it runs the
same crystal with the same potential (lj/cut shifted, rc = 2.5 sigma), skin (0.3 sigma) and
timestep (0.005 tau) in both codes and reports atom-steps per second and our/LAMMPS ratios.
Compile time (ahead-of-time, per run) is reported apart from steady-state time. It also times one
neighbour-list rebuild against one force call, since rebuilds dominated LJ MD in a first look.

    python bench/md_throughput.py --out bench/results/md_throughput.json [--sizes 256 864] [--steps 1000]
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
import numpy as np

from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.io import device_description, package_versions
from mlffbench.peers import lammps_lj
from mlffbench.potentials import lennard_jones
from mlffbench.structures import fcc

CELLS = {256: 4, 864: 6, 2048: 8, 4000: 10}
A0, DT, SKIN, KT = 1.5496, 0.005, 0.3, 0.5


def ours(n_cells: int, ensemble: str, dtype, steps: int) -> dict:
    s = fcc(n_cells, A0)
    pot = lennard_jones("lj/cut/shift", dtype=dtype)
    integ = Integrator("nve" if ensemble == "nve" else "nvt_nose_hoover", dt=DT, tau_T=0.5)
    res = run_md(pot, s.positions, s.box, integ, steps, kT=KT, seed=1, sample_every=steps,
                 chunk_steps=steps, skin=SKIN, dtype=dtype, max_kT=1e9)
    return {"atom_steps_per_s": s.n_atoms * steps / res.run_seconds, "compile_s": res.compile_seconds,
            "run_s": res.run_seconds, "status": res.status}


def lammps(n_cells: int, ensemble: str, steps: int) -> dict:
    s = fcc(n_cells, A0)
    seconds = lammps_lj.time_nvt(s.positions, s.box, steps, KT, DT, 2.5, SKIN, ensemble=ensemble)
    return {"atom_steps_per_s": s.n_atoms * steps / seconds, "run_s": seconds}


def _best_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def rebuild_vs_force(n_cells: int, repeats: int = 5) -> dict:
    """Milliseconds for one forced neighbour-list rebuild (each jax-md format, with and without
    cell lists) and for one LJ force call with the default half list (float64)."""
    from jax_md import partition, space

    s = fcc(n_cells, A0)
    pot = lennard_jones("lj/cut/shift")
    R = jnp.asarray(s.positions)
    box = jnp.asarray(s.box)
    moved = R + SKIN  # every atom moved more than skin/2: update must rebuild
    nbrs = pot.neighbors(s.box, skin=SKIN, n_atoms=s.n_atoms).allocate(R)
    forces = jax.jit(pot.forces)
    jax.block_until_ready(forces(R, box, nbrs))
    out = {"force_ms": _best_ms(lambda: forces(R, box, nbrs), repeats), "rebuild_ms": {}}
    displacement, _ = space.periodic_general(box, fractional_coordinates=False)
    for fmt in ("OrderedSparse", "Sparse", "Dense"):
        for cell_list in (True, False):
            fns = partition.neighbor_list(displacement, box, jnp.float64(2.5), dr_threshold=jnp.float64(SKIN),
                                          capacity_multiplier=1.3, disable_cell_list=not cell_list,
                                          format=getattr(partition.NeighborListFormat, fmt))
            nb = fns.allocate(R)
            update = jax.jit(fns.update)
            jax.block_until_ready(update(moved, nb).idx)
            key = f"{fmt}{'+cells' if cell_list else ''}"
            out["rebuild_ms"][key] = _best_ms(lambda: update(moved, nb).idx, repeats)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=sorted(CELLS))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("bench/results/md_throughput.json"))
    args = ap.parse_args()
    rows, rebuilds = [], []
    for n in args.sizes:
        cells = CELLS[n]
        steps = max(100, args.steps * 256 // max(n, 256) // 100 * 100)
        rebuilds.append({"n_atoms": n, **rebuild_vs_force(cells)})
        for ensemble in ("nve", "nvt"):
            ref = lammps(cells, ensemble, steps)
            for dtype in (jnp.float64, jnp.float32):
                r = ours(cells, ensemble, dtype, steps)
                row = {"n_atoms": n, "ensemble": ensemble, "dtype": jnp.dtype(dtype).name, "steps": steps,
                       "ours": r, "lammps": ref,
                       "ratio_ours_over_lammps": r["atom_steps_per_s"] / ref["atom_steps_per_s"]}
                rows.append(row)
                print(f"N={n:5d} {ensemble} {row['dtype']}: ours {r['atom_steps_per_s']:.3g} atom-steps/s "
                      f"(compile {r['compile_s']:.1f} s), LAMMPS {ref['atom_steps_per_s']:.3g}, "
                      f"ratio {row['ratio_ours_over_lammps']:.2f}", flush=True)
        rb = rebuilds[-1]
        print(f"N={n:5d} force {rb['force_ms']:.2f} ms; rebuild " +
              ", ".join(f"{k} {v:.1f} ms" for k, v in rb["rebuild_ms"].items()), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "md_throughput", "potential": "lj/cut/shift rc=2.5",
                                    "timestep_tau": DT, "skin_sigma": SKIN, "kT": KT,
                                    "device": device_description(), "versions": package_versions(),
                                    "load_average_1_5_15": list(os.getloadavg()),
                                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                                    "results": rows, "neighbor_rebuild": rebuilds}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
