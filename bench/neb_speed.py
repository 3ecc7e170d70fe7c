"""Speed: string method + climbing image (JAX) vs ASE CI-NEB (FIRE, ASE's LJ calculator), same
255-atom LJ vacancy hop, same end states, same number of images, same force tolerance, same run. Writes JSON (default
bench/results/neb_speed.json). Vacancy-MD hop throughput is in bench/vacancy_md.py.

    python bench/neb_speed.py [--supercell 4] [--images 7] [--tol-eV-A 1e-4] [--out FILE]

Compile time of the jitted string step is reported apart from the steady-state time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import mlffbench  # noqa: F401
from mlffbench.dynamics.minimize import fcc_lattice_constant, relax
from mlffbench.io import device_description, package_versions, write_json
from mlffbench.potentials import load_potential
from mlffbench.properties.string_method import StringSettings, vacancy_string
from mlffbench.units import ARGON
from mlffbench.workflows.neb import vacancy_structure


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--supercell", type=int, default=4)
    ap.add_argument("--images", type=int, default=7)
    ap.add_argument("--tol-eV-A", type=float, nargs="+", default=[1e-4, 1e-5])
    ap.add_argument("--ase-maxstep", type=float, nargs="+", default=[0.05, 0.2],
                    help="ASE FIRE maxstep values to try (sigma); the fastest is the peer")
    ap.add_argument("--out", default="bench/results/neb_speed.json")
    args = ap.parse_args()

    pot = load_potential("lj")
    a, _ = fcc_lattice_constant(pot)
    vac, hopper, site = vacancy_structure(args.supercell, a)
    Rf0 = vac.positions.copy()
    Rf0[hopper] = vac.sites[site]
    Ri, Ei, _, _ = relax(pot, vac.positions, vac.box, 1e-8)
    Rf, Ef, _, _ = relax(pot, Rf0, vac.box, 1e-8)

    rows = []
    for tol_ev in args.tol_eV_A:
        tol = tol_ev / ARGON.scale("force")
        mine = ours(pot, Ri, Rf, Ei, Ef, vac.box, args.images, tol)
        ase_runs = [ase_ci_neb(Ri, Rf, vac.box, args.images, tol, m) for m in args.ase_maxstep]
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

    out = {"benchmark": "neb_speed",
           "system": {"supercell": args.supercell, "n_atoms": vac.n_atoms, "n_images": args.images},
           "results": rows, "versions": package_versions(), "device": device_description()}
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
