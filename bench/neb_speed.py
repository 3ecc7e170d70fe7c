"""Speed: string method + climbing image (JAX) vs ASE CI-NEB (FIRE, ASE's LJ calculator), same
255-atom LJ vacancy hop, same end states, same number of images, same force tolerance, same run;
and vacancy-MD hops per CPU-minute. Writes JSON (default bench/neb_speed.json).

    python bench/neb_speed.py [--supercell 4] [--images 7] [--tol-eV-A 1e-4] [--md-steps 4000] [--out FILE]

Compile time of the jitted string step is reported apart from the steady-state time.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import mlffbench  # noqa: F401
from mlffbench.dynamics.minimize import fcc_lattice_constant
from mlffbench.io import device_description, package_versions, write_json
from mlffbench.potentials import load_potential
from mlffbench.properties.string_method import StringSettings
from mlffbench.units import ARGON
from mlffbench.workflows.neb import relax, vacancy_string, vacancy_structure


def ase_ci_neb(Ri, Rf, box, n_images, fmax, max_steps=20000):
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
    opt = FIRE(neb, logfile=None, maxstep=0.05)
    t0 = time.perf_counter()
    ok = opt.run(fmax=fmax, steps=max_steps)
    wall = time.perf_counter() - t0
    e = np.array([im.get_potential_energy() for im in images])
    return {"converged": bool(ok), "steps": int(opt.nsteps), "wall_s": wall, "barrier_epsilon": float(e.max() - e[0])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--supercell", type=int, default=4)
    ap.add_argument("--images", type=int, default=7)
    ap.add_argument("--tol-eV-A", type=float, default=1e-4)
    ap.add_argument("--md-steps", type=int, default=4000)
    ap.add_argument("--out", default="bench/neb_speed.json")
    args = ap.parse_args()

    pot = load_potential("lj")
    tol = args.tol_eV_A / ARGON.scale("force")
    a, _ = fcc_lattice_constant(pot)
    vac, hopper, site = vacancy_structure(args.supercell, a)
    Rf0 = vac.positions.copy()
    Rf0[hopper] = vac.sites[site]
    Ri, Ei, _, _ = relax(pot, vac.positions, vac.box, 1e-8)
    Rf, Ef, _, _ = relax(pot, Rf0, vac.box, 1e-8)

    s = StringSettings(tol=tol, climb=True, max_iter=20000)
    res = vacancy_string(pot, Ri, Rf, vac.box, s, args.images, end_energies=(Ei, Ef))
    ours = {"converged": res.converged, "iterations": res.iterations, "wall_s": res.wall_seconds,
            "compile_s": res.compile_seconds, "steady_s": res.wall_seconds - res.compile_seconds,
            "barrier_epsilon": float(res.energies[res.climbing] - Ei)}
    # second run: everything already compiled (jit caches are per function object, so time a
    # fresh call of the same shapes and count its compile separately)
    res2 = vacancy_string(pot, Ri, Rf, vac.box, s, args.images, end_energies=(Ei, Ef))
    ours["second_run_wall_s"] = res2.wall_seconds
    ours["second_run_compile_s"] = res2.compile_seconds
    ase = ase_ci_neb(Ri, Rf, vac.box, args.images, tol)

    # vacancy MD throughput: hops per CPU-minute at kT = 1.0 (3x3x3, 8 replicas)
    from mlffbench.dynamics.md import Integrator, run_md
    from mlffbench.properties.hops import HopDetector, remove_drift, site_occupancy

    small, _, _ = vacancy_structure(3, a)
    R0, _, _, _ = relax(pot, small.positions, small.box, 1e-6)
    n_rep = 8
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    md = run_md(pot, np.repeat(R0[None], n_rep, 0), small.box, Integrator("nvt_langevin", dt=0.005, gamma=1.0),
                args.md_steps, kT=1.0, seed=1, sample_every=20, chunk_steps=args.md_steps, skin=0.5,
                record=("positions",))
    hops = 0
    for r in range(n_rep):
        fixed, _, _ = remove_drift(md.samples["positions"][:, r], small.box)
        v, ne = site_occupancy(fixed, small.sites, small.box)
        det = HopDetector(persist=5, defect_persist=10)
        det.feed(v, ne, md.samples["time"])
        hops += det.n_hops
    md_wall = time.perf_counter() - t0
    md_cpu = time.process_time() - cpu0
    out = {
        "benchmark": "neb_speed",
        "system": {"supercell": args.supercell, "n_atoms": vac.n_atoms, "n_images": args.images,
                   "tolerance_eV_per_A": args.tol_eV_A, "tolerance_reduced": tol},
        "string_method_jax": ours,
        "ase_ci_neb_fire": ase,
        "barrier_difference_epsilon": ours["barrier_epsilon"] - ase["barrier_epsilon"],
        "speedup_wall_including_compile": ase["wall_s"] / ours["wall_s"],
        "speedup_steady_state": ase["wall_s"] / max(ours["steady_s"], 1e-9),
        "vacancy_md": {"n_atoms": small.n_atoms, "replicas": n_rep, "steps": args.md_steps, "kT": 1.0,
                       "hops": hops, "wall_s": md_wall, "cpu_s": md_cpu, "md_compile_s": md.compile_seconds,
                       "hops_per_cpu_minute": hops / (md_cpu / 60.0), "hops_per_wall_minute": hops / (md_wall / 60.0)},
        "versions": package_versions(), "device": device_description(),
    }
    write_json(args.out, out)
    print(json.dumps({k: out[k] for k in ("barrier_difference_epsilon", "speedup_wall_including_compile",
                                          "speedup_steady_state")}, indent=1))


if __name__ == "__main__":
    main()
