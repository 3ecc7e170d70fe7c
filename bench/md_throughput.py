"""LJ MD throughput of mlffbench (jax-md core) against LAMMPS, same machine, same process.

For each system size, ensemble (NVE, NVT Nose-Hoover) and dtype (float64, float32) it runs the
same crystal with the same potential (lj/cut shifted, rc = 2.5 sigma), timestep (0.005 tau) and
start (FCC, velocities drawn at kT = 0.5) in both codes, `--repeats` times, ours and LAMMPS
interleaved, and reports steady atom-steps per second (compile time apart) and our/LAMMPS ratios.
Skins: ours at each of `--skins`, LAMMPS at each of `--lammps-skins`; every row gives the ratio
at the same skin and against LAMMPS at its fastest skin. It also times one rebuild of our list
against one force call (and, with --jaxmd-rebuilds, jax-md's own lists).

    python bench/md_throughput.py --out bench/results/md_throughput.json [--sizes 256 4000]
        [--steps 1000] [--skins 0.3 0.5] [--lammps-skins 0.3 0.4 0.5] [--repeats 3]
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


def ours(n_cells: int, ensemble: str, dtype, steps: int, skin: float = SKIN) -> dict:
    s = fcc(n_cells, A0)
    pot = lennard_jones("lj/cut/shift", dtype=dtype)
    integ = Integrator("nve" if ensemble == "nve" else "nvt_nose_hoover", dt=DT, tau_T=0.5)
    def run():
        return run_md(pot, s.positions, s.box, integ, steps, kT=KT, seed=1, sample_every=steps,
                      chunk_steps=steps, skin=skin, dtype=dtype, max_kT=1e9)

    first = run()  # compiles (programs are cached by run_md): the timed run below is steady
    cpu0 = time.process_time()
    res = run()
    cpu = time.process_time() - cpu0
    return {"atom_steps_per_s": s.n_atoms * steps / res.run_seconds, "atom_steps_per_cpu_s": s.n_atoms * steps / cpu,
            "compile_s": first.compile_seconds, "run_s": res.run_seconds, "process_cpu_s": cpu,
            "skin_sigma": skin, "status": res.status}


def lammps(n_cells: int, ensemble: str, steps: int, skin: float = SKIN) -> dict:
    s = fcc(n_cells, A0)
    wall, cpu = lammps_lj.time_nvt(s.positions, s.box, steps, KT, DT, 2.5, skin, ensemble=ensemble, both=True)
    return {"atom_steps_per_s": s.n_atoms * steps / wall, "atom_steps_per_cpu_s": s.n_atoms * steps / cpu,
            "run_s": wall, "process_cpu_s": cpu, "skin_sigma": skin}


def _best_ms(fn, repeats: int, clock=time.perf_counter) -> float:
    """Best milliseconds of `repeats` calls by `clock` (wall; `time.process_time`: process CPU, all
    threads, steadier than wall time on a machine shared with other jobs)."""
    times = []
    for _ in range(repeats):
        t0 = clock()
        jax.block_until_ready(fn())
        times.append(clock() - t0)
    return 1e3 * min(times)


def rebuild_vs_force(n_cells: int, repeats: int = 5, jaxmd: bool = False) -> dict:
    """Milliseconds for one LJ force call with the default (dense) list and one forced rebuild of
    that list (float64), and with `jaxmd` one rebuild of each jax-md format, with and without
    cell lists."""
    from jax_md import partition, space

    from mlffbench.neighbors import forced_rebuild

    s = fcc(n_cells, A0)
    pot = lennard_jones("lj/cut/shift")
    R = jnp.asarray(s.positions)
    box = jnp.asarray(s.box)
    moved = R + SKIN  # every atom moved more than skin/2: update must rebuild
    nbrs = pot.neighbors(s.box, skin=SKIN, n_atoms=s.n_atoms).allocate(R)
    forces = jax.jit(pot.forces)
    jax.block_until_ready(forces(R, box, nbrs))
    out = {"force_ms": _best_ms(lambda: forces(R, box, nbrs), repeats), "slots_per_row": int(nbrs.idx.shape[1]),
           "rebuild_ms": {}}
    rebuild = jax.jit(lambda r, nb: forced_rebuild(nbrs.update_fn, 0.5 * box[:, 0], r, nb).idx)
    jax.block_until_ready(rebuild(R, nbrs))
    out["ours_rebuild_ms"] = _best_ms(lambda: rebuild(R, nbrs), repeats)
    if not jaxmd:
        return out
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


def _compare(n: int, ensemble: str, dtype, steps: int, skins, lammps_skins, repeats: int) -> list[dict]:
    """Rows for one (size, ensemble, dtype): ours at each skin and LAMMPS at each of its skins,
    interleaved `repeats` times in this process; each repeat's ratios use that repeat's runs.
    Each skin's repeat with the median ratio (vs LAMMPS at its best skin) comes first, marked
    "summary": it carries `lammps` (LAMMPS' fastest run of that repeat) and
    `ratio_ours_over_lammps` (against it), the fields `bench/run_all.py` reads."""
    cells, rows = CELLS[n], []
    for rep in range(repeats):
        theirs = {sk: lammps(cells, ensemble, steps, sk) for sk in lammps_skins}
        best = max(theirs.values(), key=lambda r: r["atom_steps_per_s"])
        for skin in skins:
            r = ours(cells, ensemble, dtype, steps, skin)
            same = theirs.get(skin)
            row = {"n_atoms": n, "ensemble": ensemble, "dtype": jnp.dtype(dtype).name, "steps": steps,
                   "repeat": rep, "skin_sigma": skin, "ours": r, "lammps_by_skin": list(theirs.values()),
                   "lammps_best_skin_sigma": best["skin_sigma"],
                   "ratio_vs_lammps_same_skin": None if same is None else r["atom_steps_per_s"] / same["atom_steps_per_s"],
                   "ratio_vs_lammps_best_skin": r["atom_steps_per_s"] / best["atom_steps_per_s"],
                   "ratio_per_cpu_s_vs_lammps_best_skin": r["atom_steps_per_cpu_s"] / max(
                       x["atom_steps_per_cpu_s"] for x in theirs.values()),
                   "load_average_1min": os.getloadavg()[0]}
            row["lammps"] = best
            row["ratio_ours_over_lammps"] = row["ratio_vs_lammps_best_skin"]
            rows.append(row)
            same_txt = "-" if same is None else f"{row['ratio_vs_lammps_same_skin']:.2f}"
            print(f"N={n:5d} {ensemble} {row['dtype']} skin {skin}: ours {r['atom_steps_per_s']:.3g} atom-steps/s "
                  f"(compile {r['compile_s']:.1f} s); LAMMPS " +
                  ", ".join(f"skin {x['skin_sigma']} {x['atom_steps_per_s']:.3g}" for x in theirs.values()) +
                  f"; ratio same skin {same_txt}, vs LAMMPS best {row['ratio_vs_lammps_best_skin']:.2f} "
                  f"(per CPU-s {row['ratio_per_cpu_s_vs_lammps_best_skin']:.2f}) "
                  f"(load {row['load_average_1min']:.1f})", flush=True)
    summary = []
    for skin in skins:
        mine = sorted((r for r in rows if r["skin_sigma"] == skin), key=lambda r: r["ratio_ours_over_lammps"])
        summary.append(dict(mine[len(mine) // 2], summary="median of repeats"))
    return summary + rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=sorted(CELLS), choices=sorted(CELLS))
    ap.add_argument("--steps", type=int, default=1000, help="MD steps at every size")
    ap.add_argument("--skins", type=float, nargs="+", default=[SKIN], help="our skins (sigma)")
    ap.add_argument("--lammps-skins", type=float, nargs="+", default=[0.3, 0.4, 0.5])
    ap.add_argument("--ensembles", nargs="+", default=["nve", "nvt"], choices=["nve", "nvt"])
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jaxmd-rebuilds", action="store_true", help="also time jax-md's own lists (slow)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/md_throughput.json"))
    args = ap.parse_args()
    load0, cpu0, wall0 = os.getloadavg(), time.process_time(), time.perf_counter()
    rows, rebuilds = [], []
    for n in args.sizes:
        rb = {"n_atoms": n, **rebuild_vs_force(CELLS[n], jaxmd=args.jaxmd_rebuilds)}
        rebuilds.append(rb)
        print(f"N={n:5d} force {rb['force_ms']:.2f} ms ({rb['slots_per_row']} slots per row); rebuild ours "
              f"{rb['ours_rebuild_ms']:.1f} ms" + "".join(f", {k} {v:.1f} ms" for k, v in rb["rebuild_ms"].items()),
              flush=True)
        for ensemble in args.ensembles:
            for dt_name in args.dtypes:
                rows += _compare(n, ensemble, getattr(jnp, dt_name), args.steps, args.skins, args.lammps_skins,
                                 args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "md_throughput", "potential": "lj/cut/shift rc=2.5",
                                    "timestep_tau": DT, "kT": KT, "settings": vars(args) | {"out": str(args.out)},
                                    "device": device_description(), "versions": package_versions(),
                                    "load_average_1_5_15_start": list(load0),
                                    "load_average_1_5_15_end": list(os.getloadavg()),
                                    "process_cpu_s": time.process_time() - cpu0,
                                    "wall_s": time.perf_counter() - wall0,
                                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                                    "results": rows, "neighbor_rebuild": rebuilds}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
