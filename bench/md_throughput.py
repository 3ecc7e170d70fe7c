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


def rebuild_vs_force(n_cells: int, repeats: int = 5) -> dict:
    """Milliseconds for one forced neighbour-list rebuild and for one force call (float64)."""
    s = fcc(n_cells, A0)
    pot = lennard_jones("lj/cut/shift")
    R = jnp.asarray(s.positions)
    box = jnp.asarray(s.box)
    spec = pot.neighbors(s.box, skin=SKIN, n_atoms=s.n_atoms)
    nbrs = spec.allocate(R)
    moved = R + 0.2 * SKIN  # more than skin/2 from the reference: update must rebuild
    update = jax.jit(spec.update)
    forces = jax.jit(pot.forces)
    jax.block_until_ready(update(moved, nbrs).idx)
    jax.block_until_ready(forces(R, box, nbrs))

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            times.append(time.perf_counter() - t0)
        return 1e3 * min(times)

    return {"rebuild_ms": best(lambda: update(moved, nbrs).idx), "force_ms": best(lambda: forces(R, box, nbrs)),
            "cell_list": s.n_atoms >= 1500}


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
        print(f"N={n:5d} rebuild {rebuilds[-1]['rebuild_ms']:.2f} ms, force {rebuilds[-1]['force_ms']:.2f} ms",
              flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "md_throughput", "potential": "lj/cut/shift rc=2.5",
                                    "timestep_tau": DT, "skin_sigma": SKIN, "kT": KT,
                                    "device": device_description(), "versions": package_versions(),
                                    "results": rows, "neighbor_rebuild": rebuilds}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
