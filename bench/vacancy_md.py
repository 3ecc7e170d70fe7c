"""Vacancy-MD hop throughput: hops observed per CPU-minute (and per wall-minute) of direct MD of
the vacancy crystal, for LJ and, with --model, a trained model; LAMMPS (same crystal, same
Langevin MD, same machine, same run) is the peer for the MD cost.

Each potential runs `--replicas` copies of its relaxed vacancy crystal (its own 0 K lattice
constant) at `--kT` for `--steps` Langevin steps in one vmapped, jitted `run_md` call; hops come
from the same site-occupancy detector `mlffbench vacancy` uses. Compile time is reported apart
and excluded from the throughput. The LAMMPS peer runs the LJ crystal for replicas x steps
single-threaded; its "hops per CPU-minute" is our measured LJ hop rate per simulated time times
the simulated time LAMMPS covers per CPU-minute.

    python bench/vacancy_md.py [--model DIR] [--supercell 3] [--replicas 8] [--steps 4000]
                               [--kT 1.0] [--skin-lj 0.3 0.7 1.0] [--repeats 3]
                               [--out bench/results/vacancy_md.json]

The LJ runs and the LAMMPS peer are interleaved `--repeats` times in this process (LAMMPS at
each of its skins, ours at each of `--skin-lj`); each repeat's ratio compares our fastest skin
with LAMMPS' fastest, and the reported ratio is the median over repeats. Peak RSS and the load
average are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

import mlffbench  # noqa: F401  (x64)
from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.io import device_description, package_versions
from mlffbench.potentials import load_potential
from mlffbench.properties.hops import count_hops, remove_drift
from mlffbench.workflows.neb import lattice_constant, relax, vacancy_structure

DT, GAMMA, SAMPLE_EVERY = 0.005, 1.0, 20
WARM_STEPS = 400  # warm-up steps (not counted), also the chunk length of the timed run
LAMMPS_SKINS = (0.3, 0.5, 1.0)  # the peer runs at each and is reported at its fastest


def hops_of(samples: np.ndarray, times: np.ndarray, vac) -> list[int]:
    """Hops per replica (-1 for a replica stopped by defects), same detector as `mlffbench vacancy`."""
    out = []
    for r in range(samples.shape[1]):
        fixed, _, _ = remove_drift(samples[:, r], vac.box)
        det = count_hops(fixed, vac.sites, vac.box, times, persist=5, defect_persist=10)
        out.append(det.n_hops if not det.stopped else -1)
    return out


def ours(spec: str, args, skin: float) -> dict:
    pot = load_potential(spec)
    a = lattice_constant(pot, None, "lj", None)
    vac, _, _ = vacancy_structure(args.supercell, a)
    R0, _, _, _ = relax(pot, vac.positions, vac.box, 1e-6, skin)
    integ = Integrator("nvt_langevin", dt=DT, gamma=GAMMA)
    start = np.repeat(R0[None], args.replicas, 0)
    # warm-up run: compiles, and equilibrates (its hops are not counted)
    warm = run_md(pot, start, vac.box, integ, WARM_STEPS, kT=args.kT, seed=args.seed, sample_every=SAMPLE_EVERY,
                  chunk_steps=WARM_STEPS, skin=skin, record=("positions",))
    cpu0, t0 = time.process_time(), time.perf_counter()
    # chunks of the warm-up's length: the program the warm-up compiled, so no compilation is timed
    md = run_md(pot, warm.final["positions"], vac.box, integ, args.steps, kT=args.kT, seed=args.seed + 1,
                sample_every=SAMPLE_EVERY, chunk_steps=WARM_STEPS, skin=skin, record=("positions",),
                velocities=warm.final["velocities"])
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    hops = hops_of(md.samples["positions"], md.samples["time"], vac)
    counted = [h for h in hops if h >= 0]
    sim_time = len(counted) * args.steps * integ.dt
    n = int(sum(counted))
    return {"potential": pot.describe(), "skin_sigma": skin, "n_atoms": vac.n_atoms, "lattice_constant_sigma": a,
            "replicas": args.replicas, "steps": args.steps, "kT": args.kT, "dt_tau": integ.dt,
            "hops": n, "hops_per_replica": hops, "replicas_stopped": hops.count(-1),
            "simulated_time_tau": sim_time, "hop_rate_per_tau": n / sim_time if sim_time else None,
            "mean_kT": float(np.mean(md.samples["T"])), "compile_s": warm.compile_seconds,
            "compile_s_in_timed_run": md.compile_seconds,
            "cpu_s": cpu, "wall_s": wall, "replica_steps_per_cpu_s": args.replicas * args.steps / cpu,
            "hops_per_cpu_minute": n / (cpu / 60.0), "hops_per_wall_minute": n / (wall / 60.0), "status": md.status}


def lammps_peer(lj: dict, args) -> dict:
    from mlffbench.peers import lammps_lj

    pot = load_potential("lj")
    vac, _, _ = vacancy_structure(args.supercell, lj["lattice_constant_sigma"])
    R0, _, _, _ = relax(pot, vac.positions, vac.box, 1e-6, 0.5)
    n_steps = args.replicas * args.steps
    runs = {skin: lammps_lj.time_nvt(R0, vac.box, n_steps, args.kT, DT, 2.5, skin, ensemble="langevin",
                                     gamma=GAMMA, cpu_time=True) for skin in LAMMPS_SKINS}
    skin, cpu = min(runs.items(), key=lambda kv: kv[1])
    steps_per_cpu_s = n_steps / cpu
    rate = lj["hop_rate_per_tau"] or 0.0
    return {"replica_steps": n_steps, "cpu_s_by_skin": {str(k): v for k, v in runs.items()}, "skin_sigma": skin,
            "cpu_s": cpu, "replica_steps_per_cpu_s": steps_per_cpu_s,
            "hops_per_cpu_minute_at_our_lj_rate": rate * steps_per_cpu_s * DT * 60.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a trained-model directory (optional)")
    ap.add_argument("--supercell", type=int, default=3)
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--kT", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skin-lj", type=float, nargs="+", default=[0.3, 0.7, 1.0],
                    help="sigma; LJ runs at each (the fastest counts)")
    ap.add_argument("--skin-model", type=float, default=0.5, help="sigma (a GNN pays per edge: smaller)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved LJ/LAMMPS repeats")
    ap.add_argument("--out", type=Path, default=Path("bench/results/vacancy_md.json"))
    args = ap.parse_args()
    load0, cpu0, wall0 = os.getloadavg(), time.process_time(), time.perf_counter()
    repeats = []
    for rep in range(args.repeats):
        by_skin = {skin: ours("lj", args, skin) for skin in args.skin_lj}
        best = max(by_skin.values(), key=lambda r: r["replica_steps_per_cpu_s"])
        peer = lammps_peer(best, args)
        ratio = best["replica_steps_per_cpu_s"] / peer["replica_steps_per_cpu_s"]
        repeats.append({"lj_by_skin": list(by_skin.values()), "lj": best, "lammps": peer,
                        "ratio_ours_over_lammps_per_cpu_s": ratio, "load_average_1min": os.getloadavg()[0]})
        print(f"repeat {rep}: ours " + ", ".join(f"skin {k} {v['replica_steps_per_cpu_s']:.0f}" for k, v in by_skin.items())
              + f" replica-steps per CPU-s; LAMMPS (skin {peer['skin_sigma']}) {peer['replica_steps_per_cpu_s']:.0f}; "
              f"ratio {ratio:.3f} (load {os.getloadavg()[0]:.1f})", flush=True)
    ratios = [r["ratio_ours_over_lammps_per_cpu_s"] for r in repeats]
    median = sorted(repeats, key=lambda r: r["ratio_ours_over_lammps_per_cpu_s"])[len(repeats) // 2]
    rows = {"lj": median["lj"], "lammps": median["lammps"]}
    if args.model:
        rows["model"] = ours(args.model, args, args.skin_model)
    for k, r in rows.items():
        print(f"{k}: {r.get('hops', '-')} hops, {r['replica_steps_per_cpu_s']:.0f} replica-steps per CPU-s, "
              f"hops per CPU-minute {r.get('hops_per_cpu_minute', r.get('hops_per_cpu_minute_at_our_lj_rate')):.3g}",
              flush=True)
    ratio = float(np.median(ratios))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "vacancy_md", "settings": vars(args) | {"out": str(args.out)},
                                    "langevin_gamma_per_tau": GAMMA,
                                    "sample_every": SAMPLE_EVERY, "results": rows, "repeats": repeats,
                                    "lj_md_cost_ratio_ours_over_lammps_per_cpu_s": ratio,
                                    "ratios_by_repeat": ratios,
                                    "load_average_1_5_15_start": list(load0),
                                    "load_average_1_5_15_end": list(os.getloadavg()),
                                    "process_cpu_s": time.process_time() - cpu0,
                                    "wall_s": time.perf_counter() - wall0,
                                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                                    "device": device_description(), "versions": package_versions()},
                                   indent=2, default=float))
    print(f"LJ MD throughput per CPU-second, ours / LAMMPS: median {ratio:.3f} of {[round(r, 3) for r in ratios]}; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
