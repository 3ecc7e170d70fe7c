"""Speed: string method + climbing image (JAX) vs ASE CI-NEB (FIRE, ASE's LJ calculator), same
255-atom LJ vacancy hop, same end states, same number of images, same force tolerance, same run. Writes JSON (default
bench/results/neb_speed.json). Vacancy-MD hop throughput is in bench/vacancy_md.py.

    python bench/neb_speed.py [--supercell 4] [--images 7] [--tol-eV-A 1e-4] [--out FILE]

Compile time of the jitted string step is reported apart from the steady-state time.

Whole processes (issue 18's figure): for each tolerance, fresh interpreters converge the same path
from the same relaxed end states (written once by this process): ours (`--worker ours`: import
mlffbench, build the potential, compile, converge) and ASE (`--worker ase`: ASE and numpy only,
no JAX), each run twice, interleaved. The first `ours` process gets an empty compilation cache
(MLFFBENCH_CACHE_DIR in a temporary directory), the second finds it filled: "second invocation".
Each worker reports its peak RSS (VmHWM).

    python bench/neb_speed.py --quick   # 1e-4 eV/Å only, ASE maxstep 0.2 only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _whole_process import run_worker, second_invocation  # same directory (bench/)

import numpy as np

# mlffbench (JAX) is imported where it is used, so that an ASE worker process carries none of it


def ase_ci_neb(Ri, Rf, box, n_images, fmax, maxstep, max_steps=5000):
    """ASE climbing-image NEB (improved tangent) with FIRE and ASE's LJ calculator, in reduced
    units (sigma = epsilon = 1, shifted at rc = 2.5 like lj/cut/shift)."""
    from ase import Atoms
    from ase.calculators.lj import LennardJones
    from ase.mep import NEB
    from ase.optimize import FIRE

    def atoms(R):
        at = Atoms(f"Ar{len(R)}", positions=R, cell=np.asarray(box).T, pbc=True)
        at.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=2.5, smooth=False)
        return at

    images = [atoms(Ri)] + [atoms(Ri) for _ in range(n_images - 2)] + [atoms(Rf)]
    neb = NEB(images, climb=True, method="improvedtangent")
    neb.interpolate()
    opt = FIRE(neb, logfile=None, maxstep=maxstep)
    t0 = time.perf_counter()
    ok = opt.run(fmax=fmax, steps=max_steps)
    wall = time.perf_counter() - t0
    e = np.array([im.get_potential_energy() for im in images])
    return {"maxstep_sigma": maxstep, "converged": bool(ok), "steps": int(opt.nsteps), "wall_s": wall,
            "barrier_epsilon": float(e.max() - e[0])}


def ours(pot, Ri, Rf, Ei, Ef, box, n_images, tol) -> dict:
    from mlffbench.properties.string_method import StringSettings, vacancy_string

    s = StringSettings(tol=tol, climb=True, max_iter=20000)
    res = vacancy_string(pot, Ri, Rf, box, s, n_images, end_energies=(Ei, Ef))
    out = {"converged": res.converged, "iterations": res.iterations, "wall_s": res.wall_seconds,
           "compile_s": res.compile_seconds, "steady_s": res.wall_seconds - res.compile_seconds,
           "barrier_epsilon": float(res.energies[res.climbing] - Ei)}
    # a second call of the same shapes (each call builds and compiles its own jitted step; the
    # steady-state time is the one that scales with the number of paths)
    res2 = vacancy_string(pot, Ri, Rf, box, s, n_images, end_energies=(Ei, Ef))
    out["second_run_steady_s"] = res2.wall_seconds - res2.compile_seconds
    return out


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM, MB; ru_maxrss would carry the parent's over fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def end_states(supercell: int) -> dict:
    """Relaxed initial and final vacancy states (lj/cut/shift rc 2.5, reduced units)."""
    import mlffbench  # noqa: F401
    from mlffbench.dynamics.minimize import fcc_lattice_constant, relax
    from mlffbench.potentials import load_potential
    from mlffbench.workflows.neb import vacancy_structure

    pot = load_potential("lj")
    a, _ = fcc_lattice_constant(pot)
    vac, hopper, site = vacancy_structure(supercell, a)
    Rf0 = vac.positions.copy()
    Rf0[hopper] = vac.sites[site]
    Ri, Ei, _, _ = relax(pot, vac.positions, vac.box, 1e-8)
    Rf, Ef, _, _ = relax(pot, Rf0, vac.box, 1e-8)
    return {"Ri": np.asarray(Ri), "Rf": np.asarray(Rf), "Ei": float(Ei), "Ef": float(Ef),
            "box": np.asarray(vac.box), "n_atoms": int(vac.n_atoms)}


def worker(which: str, ends_file: str, n_images: int, tol: float, maxstep: float) -> None:
    """One whole-process path (the parent times the process): print a JSON line."""
    d = np.load(ends_file)
    if which == "ours":
        from mlffbench.potentials import load_potential

        out = ours_once(load_potential("lj"), d["Ri"], d["Rf"], float(d["Ei"]), float(d["Ef"]), d["box"],
                        n_images, tol)
    else:
        out = ase_ci_neb(d["Ri"], d["Rf"], d["box"], n_images, tol, maxstep)
    out["peak_rss_MB"] = peak_rss_mb()
    out["imports_jax"] = "jax" in sys.modules
    print(json.dumps(out))


def ours_once(pot, Ri, Rf, Ei, Ef, box, n_images, tol) -> dict:
    from mlffbench.properties.string_method import StringSettings, vacancy_string

    res = vacancy_string(pot, Ri, Rf, box, StringSettings(tol=tol, climb=True, max_iter=20000), n_images,
                         end_energies=(Ei, Ef))
    return {"converged": res.converged, "iterations": res.iterations, "wall_s": res.wall_seconds,
            "compile_s": res.compile_seconds, "barrier_epsilon": float(res.energies[res.climbing] - Ei)}


def whole_process(which: str, ends_file: str, n_images: int, tol: float, maxstep: float, env: dict) -> dict:
    return run_worker([__file__, "--worker", which, "--ends", ends_file, "--images", str(n_images),
                       "--tol-reduced", repr(tol), "--maxstep", repr(maxstep)], env, which)


def whole_processes(ends_file: str, n_images: int, tol: float, maxstep: float) -> dict:
    """ours and ASE, each twice in fresh processes, interleaved; ours' first with an empty cache."""
    out = second_invocation(lambda which, env: whole_process(which, ends_file, n_images, tol, maxstep, env),
                            "ours", "ase", "mlffbench-neb-cache-")
    runs = out["runs"]
    out.update(peer_converged=[r["converged"] for r in runs["ase"]],
               ours_converged=[r["converged"] for r in runs["ours"]], ase_maxstep_sigma=maxstep)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--supercell", type=int, default=4)
    ap.add_argument("--images", type=int, default=7)
    ap.add_argument("--tol-eV-A", type=float, nargs="+", default=[1e-4, 1e-5])
    ap.add_argument("--ase-maxstep", type=float, nargs="+", default=[0.05, 0.2],
                    help="ASE FIRE maxstep values to try (sigma); the fastest is the peer")
    ap.add_argument("--no-whole-process", action="store_true", help="skip the fresh-process comparison")
    ap.add_argument("--quick", action="store_true", help="1e-4 eV/Å only, ASE maxstep 0.2 only")
    ap.add_argument("--out", default="bench/results/neb_speed.json")
    ap.add_argument("--worker", choices=["ours", "ase"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ends", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tol-reduced", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--maxstep", type=float, default=0.2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.ends, args.images, args.tol_reduced, args.maxstep)
    if args.quick:
        args.tol_eV_A, args.ase_maxstep = [1e-4], [0.2]
    from mlffbench.io import device_description, package_versions, write_json
    from mlffbench.potentials import load_potential
    from mlffbench.units import ARGON

    load0 = os.getloadavg()[0]
    ends = end_states(args.supercell)
    Ri, Rf, Ei, Ef, box = ends["Ri"], ends["Rf"], ends["Ei"], ends["Ef"], ends["box"]
    ends_file = str(Path(tempfile.mkdtemp(prefix="mlffbench-neb-")) / "ends.npz")
    np.savez(ends_file, **ends)
    pot = load_potential("lj")

    rows, whole = [], []
    for tol_ev in args.tol_eV_A:
        tol = tol_ev / ARGON.scale("force")
        mine = ours(pot, Ri, Rf, Ei, Ef, box, args.images, tol)
        ase_runs = [ase_ci_neb(Ri, Rf, box, args.images, tol, m) for m in args.ase_maxstep]
        ok = [r for r in ase_runs if r["converged"]] or ase_runs
        best = min(ok, key=lambda r: r["wall_s"])
        steady = min(mine["steady_s"], mine["second_run_steady_s"])
        row = {"tolerance_eV_per_A": tol_ev, "tolerance_reduced": tol, "string_method_jax": mine,
               "ase_ci_neb_fire": ase_runs, "ase_fastest_maxstep": best["maxstep_sigma"],
               "barrier_difference_epsilon": mine["barrier_epsilon"] - best["barrier_epsilon"],
               "speedup_wall_including_compile": best["wall_s"] / mine["wall_s"],
               "speedup_steady_state": best["wall_s"] / max(steady, 1e-9)}
        rows.append(row)
        print(f"tol {tol_ev:g} eV/A: ours {mine['iterations']} it, {steady:.2f} s steady + "
              f"{mine['compile_s']:.2f} s compile; ASE {best['steps']} steps {best['wall_s']:.2f} s; "
              f"speed-up {row['speedup_steady_state']:.1f}x steady, {row['speedup_wall_including_compile']:.1f}x "
              f"with compile; barrier diff {row['barrier_difference_epsilon']:.1e} eps", flush=True)
        if not args.no_whole_process:
            wp = whole_processes(ends_file, args.images, tol, best["maxstep_sigma"])
            wp.update(tolerance_eV_per_A=tol_ev, steady_in_process_ratio=row["speedup_steady_state"])
            whole.append(wp)
            print(f"  whole process: ours {wp['ours_first_s']:.1f} s then {wp['ours_second_s']:.1f} s, ASE "
                  f"{wp['peer_first_s']:.1f} s then {wp['peer_second_s']:.1f} s: second invocation "
                  f"{wp['ratio_second_invocation']:.2f}x", flush=True)

    out = {"benchmark": "neb_speed",
           "system": {"supercell": args.supercell, "n_atoms": ends["n_atoms"], "n_images": args.images},
           "results": rows, "whole_process": whole,
           "load_average_1min": {"start": load0, "end": os.getloadavg()[0]},
           "versions": package_versions(), "device": device_description()}
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
