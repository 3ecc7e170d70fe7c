"""Time to the 0 K phonon DOS of the 256-atom FCC cell: mlffbench (autodiff Hessian, 3 JVPs for a
Bravais crystal) vs phonopy finite displacements driven by ASE's LJ calculator, same run.

The finite-difference route (the same LJ reporting no autodiff) is timed as well.
Both sides start from the same lattice constant, produce supercell force constants and a
Gaussian-smeared DOS on the same q-mesh. Compile time of the JAX side is reported apart.

    python bench/pdos_speed.py [--model MODEL_DIR] [--mesh 20] [--repeats 3] [--out bench_pdos.json]

The first mlffbench call is cold (compilation); later calls reuse the compiled functions and give
the steady-state time. phonopy's mesh uses its symmetry-reduced q-points; ours the full mesh.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time

import numpy as np

import mlffbench  # noqa: F401  (x64)
from mlffbench.potentials import Capabilities, lennard_jones, load_potential
from mlffbench.properties import phonons as ph
from mlffbench.structures import fcc

A0 = 1.5496034240894725  # lj/cut/shift rc = 2.5 (fcc_lattice_constant)


def ours(potential, mesh: int, sigma: float) -> dict:
    t0 = time.perf_counter()
    s = fcc(4, A0)
    fc = ph.force_constants(potential, s.positions, s.box, method="bravais")
    t1 = time.perf_counter()
    images = ph.shortest_images(s.positions, s.box)
    q = ph.mesh_qpoints(ph.fcc_primitive_cell(A0), mesh)
    nu = ph.frequencies_at(fc.fc[0], images, q) / (2 * math.pi)
    grid = np.linspace(0, nu.max() * 1.1, 501)
    dos = ph.gaussian_dos(nu, grid, sigma)
    t2 = time.perf_counter()
    return {"total_s": t2 - t0, "jvp_compile_s": fc.compile_seconds, "force_constants_s": t1 - t0, "mesh_and_dos_s": t2 - t1, "nu_max": float(nu.max()),
            "dos_checksum": float(np.trapezoid(dos, grid))}


def phonopy_ase(mesh: int, sigma: float) -> dict:
    from ase import Atoms
    from ase.calculators.lj import LennardJones
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    t0 = time.perf_counter()
    unit = PhonopyAtoms(symbols=["Ar"] * 4, cell=np.eye(3) * A0,
                        scaled_positions=[[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]], masses=[1.0] * 4)
    phn = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int) * 4, primitive_matrix="F")
    phn.unit_conversion_factor = 1.0 / (2 * math.pi)  # sqrt(eigenvalue) / 2 pi: nu in 1/tau
    phn.generate_displacements(distance=1e-3)
    calc = LennardJones(sigma=1.0, epsilon=1.0, rc=2.5, smooth=False)
    forces = []
    for sc in phn.supercells_with_displacements:
        atoms = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        atoms.calc = calc
        forces.append(atoms.get_forces())
    t1 = time.perf_counter()
    phn.forces = forces
    phn.produce_force_constants()
    t2 = time.perf_counter()
    phn.run_mesh([mesh] * 3, is_gamma_center=True)
    phn.run_total_dos(sigma=sigma, freq_min=0.0, freq_max=float(np.max(phn.mesh.frequencies)) * 1.1,
                      freq_pitch=None)
    t3 = time.perf_counter()
    return {"total_s": t3 - t0, "displacements_and_ase_forces_s": t1 - t0, "produce_force_constants_s": t2 - t1,
            "mesh_and_dos_s": t3 - t2, "n_displacements": len(forces),
            "nu_max": float(np.max(phn.mesh.frequencies))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="trained-model directory to time as well")
    ap.add_argument("--mesh", type=int, default=20)
    ap.add_argument("--sigma", type=float, default=0.05, help="Gaussian width, 1/tau")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="bench_pdos.json")
    args = ap.parse_args()
    lj = lennard_jones("lj/cut/shift", cutoff=2.5)
    res: dict = {"n_atoms": 256, "mesh": [args.mesh] * 3, "repeats": args.repeats}
    # first call: cold (XLA compilation of the batched JVPs and of the neighbour-list update);
    # later calls reuse the compiled code: steady state
    runs = [ours(lj, args.mesh, args.sigma) for _ in range(args.repeats + 1)]
    peer = [phonopy_ase(args.mesh, args.sigma) for _ in range(args.repeats)]
    cold, warm = runs[0], min(runs[1:], key=lambda r: r["total_s"])
    best_peer = min(peer, key=lambda r: r["total_s"])
    res["mlffbench_lj"] = {"cold": cold, "warm_runs": runs[1:], "warm_best": warm,
                           "compile_s": cold["total_s"] - warm["total_s"]}
    res["phonopy_ase_lj"] = {"runs": peer, "best": best_peer}
    res["nu_max_relative_difference"] = warm["nu_max"] / best_peer["nu_max"] - 1
    res["speedup_steady_state"] = best_peer["total_s"] / warm["total_s"]
    res["speedup_including_compile"] = best_peer["total_s"] / cold["total_s"]
    # the finite-difference route (a potential without autodiff: atom 0's six +-displacements)
    fd_pot = dataclasses.replace(lj, capabilities=Capabilities(autodiff=False))
    fd_runs = [ours(fd_pot, args.mesh, args.sigma) for _ in range(args.repeats + 1)]
    fd_warm = min(fd_runs[1:], key=lambda r: r["total_s"])
    res["mlffbench_lj_finite_difference"] = {"cold": fd_runs[0], "warm_best": fd_warm}
    res["fd_speedup_steady_state"] = best_peer["total_s"] / fd_warm["total_s"]
    res["fd_nu_max_relative_difference"] = fd_warm["nu_max"] / best_peer["nu_max"] - 1
    res["speedup_force_constants_steady_state"] = (
        (best_peer["displacements_and_ase_forces_s"] + best_peer["produce_force_constants_s"])
        / warm["force_constants_s"])
    if args.model:
        model = load_potential(args.model)
        mr = [ours(model, args.mesh, args.sigma) for _ in range(args.repeats + 1)]
        mwarm = min(mr[1:], key=lambda r: r["total_s"])
        res["mlffbench_model"] = {"model": args.model, "cold": mr[0], "warm_best": mwarm,
                                  "compile_s": mr[0]["total_s"] - mwarm["total_s"]}
        res["model_speedup_steady_state"] = best_peer["total_s"] / mwarm["total_s"]
    import jax

    res["device"] = str(jax.devices()[0])
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=2)
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, dict)}, indent=2))


if __name__ == "__main__":
    main()
