"""Time to the 0 K phonon DOS of the 256-atom FCC cell: mlffbench (autodiff Hessian, 3 JVPs for a
Bravais crystal) vs phonopy finite displacements driven by ASE's LJ calculator, same run.

The finite-difference route (the same LJ reporting no autodiff) is timed as well.
Both sides start from the same lattice constant, produce supercell force constants and a
Gaussian-smeared DOS on the same q-mesh. Compile time of the JAX side is reported apart.

    python bench/pdos_speed.py [--model MODEL_DIR] [--mesh 20] [--repeats 3] [--out bench_pdos.json]

The first mlffbench call is cold (compilation); later calls reuse the compiled functions and give
the steady-state time. phonopy's mesh uses its symmetry-reduced q-points; ours the full mesh.

    python bench/pdos_speed.py --external [--mesh 20] [--repeats 3] [--out bench/results/pdos_external.json]

Finite-difference PDOS of a model without autodiff: ASE's LennardJones (argon, eV and Å) through
`kind: ase` against phonopy + the very same ASE calculator, same 4x4x4 supercell, displacement,
q-mesh and smearing. Timed in this process (first call cold, best of the rest steady state) and as
whole fresh processes (`--worker`: import, spec load, compile, forces, mesh, DOS), each reporting
its peak RSS. Both report nu_max in 1/tau.

Whole processes for the autodiff route too (issue 18's figure, "second invocation"): after the
in-process timings the default mode runs fresh interpreters, interleaved, twice each: ours
(`--worker ours-lj`: import mlffbench, LJ, Hessian by JVPs, mesh, DOS) and phonopy + ASE's LJ
(`--worker phonopy-lj`: no JAX imported). The first ours process gets an empty compilation cache
(MLFFBENCH_CACHE_DIR in a temporary directory), the second the cache the first filled.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from _whole_process import run_worker, second_invocation  # same directory (bench/)

import numpy as np

# mlffbench (JAX) is imported where it is used, so that a phonopy worker process carries none of it

A0 = 1.5496034240894725  # lj/cut/shift rc = 2.5 (fcc_lattice_constant)


def ours(potential, mesh: int, sigma: float, fd_step: float | None = None) -> dict:
    from mlffbench.properties import phonons as ph
    from mlffbench.structures import fcc

    t0 = time.perf_counter()
    s = fcc(4, A0)
    fc = ph.force_constants(potential, s.positions, s.box, method="bravais", fd_step=fd_step)
    t1 = time.perf_counter()
    images = ph.shortest_images(s.positions, s.box)
    q = ph.mesh_qpoints(ph.fcc_primitive_cell(A0), mesh)
    nu = ph.frequencies_at(fc.fc[0], images, q) / (2 * math.pi)
    grid = np.linspace(0, nu.max() * 1.1, 501)
    dos = ph.gaussian_dos(nu, grid, sigma)
    t2 = time.perf_counter()
    return {"total_s": t2 - t0, "jvp_compile_s": fc.compile_seconds, "force_constants_s": t1 - t0, "mesh_and_dos_s": t2 - t1, "nu_max": float(nu.max()),
            "dos_checksum": float(np.trapezoid(dos, grid))}


def _displacement_forces(phn, calc) -> list:
    """Forces (calculator units) of every phonopy displaced supercell, one calculator call each."""
    from ase import Atoms

    forces = []
    for sc in phn.supercells_with_displacements:
        atoms = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        atoms.calc = calc
        forces.append(atoms.get_forces())
    return forces


def phonopy_ase(mesh: int, sigma: float) -> dict:
    from ase.calculators.lj import LennardJones
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    t0 = time.perf_counter()
    unit = PhonopyAtoms(symbols=["Ar"] * 4, cell=np.eye(3) * A0,
                        scaled_positions=[[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]], masses=[1.0] * 4)
    phn = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int) * 4, primitive_matrix="F")
    phn.unit_conversion_factor = 1.0 / (2 * math.pi)  # sqrt(eigenvalue) / 2 pi: nu in 1/tau
    phn.generate_displacements(distance=1e-3)
    forces = _displacement_forces(phn, LennardJones(sigma=1.0, epsilon=1.0, rc=2.5, smooth=False))
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


# ----- the finite-difference route: an ASE calculator through kind: ase vs phonopy + the same one -----
ASE_LJ = {"epsilon": 0.010321, "sigma": 3.4, "rc": 8.5, "smooth": False}  # argon, eV and Å (rc 2.5 sigma)
ARGON_MASS_AMU = 39.948


def ase_lj_potential():
    """(Potential, evaluator): ASE's LennardJones from a `kind: ase` spec (in process), as
    `load_model_spec` builds it; the evaluator counts calculator calls."""
    import mlffbench  # noqa: F401  (x64)
    from mlffbench.potentials.external import ase_potential, read_spec
    from mlffbench.units import ARGON

    spec = Path(tempfile.mkdtemp()) / "ase-lj.yaml"
    spec.write_text(json.dumps({"kind": "ase", "calculator": "ase.calculators.lj:LennardJones",
                                "kwargs": ASE_LJ, "cutoff_A": 8.5, "name": "ase-lj"}))
    return ase_potential(read_spec(spec), str(spec), spec.parent, ARGON)


def phonopy_same_calculator(mesh: int, sigma: float, step_A: float) -> dict:
    """phonopy (symmetry-reduced displacements, symmetrised force constants, irreducible q-mesh)
    driven by ASE's LennardJones in eV and Å; frequencies converted to 1/tau of argon."""
    from ase.calculators.lj import LennardJones
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    t0 = time.perf_counter()
    a = A0 * ASE_LJ["sigma"]
    unit = PhonopyAtoms(symbols=["Ar"] * 4, cell=np.eye(3) * a, masses=[ARGON_MASS_AMU] * 4,
                        scaled_positions=[[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    phn = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int) * 4, primitive_matrix="F")
    # sqrt(eV / (Å^2 amu)) -> 1/tau (tau = sigma sqrt(m / epsilon)), / 2 pi: nu in 1/tau
    phn.unit_conversion_factor = ASE_LJ["sigma"] * math.sqrt(ARGON_MASS_AMU / ASE_LJ["epsilon"]) / (2 * math.pi)
    phn.generate_displacements(distance=step_A)
    forces = _displacement_forces(phn, LennardJones(**ASE_LJ))
    t1 = time.perf_counter()
    phn.forces = forces
    phn.produce_force_constants()
    t2 = time.perf_counter()
    phn.run_mesh([mesh] * 3, is_gamma_center=True)
    nu_max = float(np.max(phn.mesh.frequencies))
    phn.run_total_dos(sigma=sigma, freq_min=0.0, freq_max=nu_max * 1.1, freq_pitch=nu_max * 1.1 / 500)
    t3 = time.perf_counter()
    return {"total_s": t3 - t0, "displacements_and_forces_s": t1 - t0, "produce_force_constants_s": t2 - t1,
            "mesh_and_dos_s": t3 - t2, "calculator_calls": len(forces), "nu_max": nu_max}


def ours_counted(potential, evaluator, mesh: int, sigma: float, step: float) -> dict:
    """`ours` with the finite-difference step given and the calculator calls counted."""
    calls = evaluator.calls
    out = ours(potential, mesh, sigma, fd_step=step)
    out["calculator_calls"] = evaluator.calls - calls
    return out


def worker(which: str, mesh: int, sigma: float, step_sigma: float) -> None:
    """One whole-process run (the parent times the process): print a JSON line with peak RSS."""
    if which == "ours":
        out = ours_counted(*ase_lj_potential(), mesh, sigma, step_sigma)
    elif which == "ours-lj":
        from mlffbench.potentials import lennard_jones

        out = ours(lennard_jones("lj/cut/shift", cutoff=2.5), mesh, sigma)
    elif which == "phonopy-lj":
        out = phonopy_ase(mesh, sigma)
    else:
        out = phonopy_same_calculator(mesh, sigma, step_sigma * ASE_LJ["sigma"])
    out["peak_rss_MB"] = peak_rss_mb()
    out["imports_jax"] = "jax" in sys.modules
    print(json.dumps(out))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM, MB). Not getrusage's ru_maxrss: Linux carries
    that over exec from the forked parent, so every child would report at least the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def whole_process(which: str, mesh: int, sigma: float, step_sigma: float, env: dict | None = None) -> dict:
    """Wall time of a fresh interpreter doing the whole PDOS (imports and compilation included)."""
    return run_worker([__file__, "--worker", which, "--mesh", str(mesh), "--sigma", str(sigma),
                       "--fd-step", str(step_sigma)], env, which)


def second_invocation_pdos(mesh: int, sigma: float, step_sigma: float) -> dict:
    """The autodiff PDOS as fresh processes: ours and phonopy + ASE, twice each, interleaved;
    ours' first with an empty compilation cache, its second with the cache the first filled."""
    out = second_invocation(lambda which, env: whole_process(which, mesh, sigma, step_sigma, env),
                            "ours-lj", "phonopy-lj", "mlffbench-pdos-cache-")
    o, p = out["runs"]["ours-lj"], out["runs"]["phonopy-lj"]
    out["nu_max_relative_difference"] = o[1]["nu_max"] / p[1]["nu_max"] - 1
    return out


def external_main(args) -> dict:
    """The finite-difference PDOS: kind: ase vs phonopy + the same calculator (see module doc)."""
    step = args.fd_step
    pot, ev = ase_lj_potential()
    runs = [ours_counted(pot, ev, args.mesh, args.sigma, step) for _ in range(args.repeats + 1)]
    peer = [phonopy_same_calculator(args.mesh, args.sigma, step * ASE_LJ["sigma"]) for _ in range(args.repeats)]
    procs = {"ours": [], "phonopy": []}
    for _ in range(args.repeats):  # interleaved so that load hits both alike
        for k in procs:
            procs[k].append(whole_process(k, args.mesh, args.sigma, step))
    warm = min(runs[1:], key=lambda r: r["total_s"])
    best = min(peer, key=lambda r: r["total_s"])
    best_proc = {k: min(v, key=lambda r: r["process_wall_s"]) for k, v in procs.items()}
    return {
        "benchmark": "pdos_external", "n_atoms": 256, "mesh": [args.mesh] * 3, "repeats": args.repeats,
        "calculator": "ase.calculators.lj:LennardJones", "calculator_kwargs": ASE_LJ,
        "fd_step": {"value": step, "unit": "sigma", "angstrom": step * ASE_LJ["sigma"]},
        "mlffbench_kind_ase": {"cold": runs[0], "warm_runs": runs[1:], "warm_best": warm},
        "phonopy_same_calculator": {"runs": peer, "best": best},
        "whole_process": {"mlffbench_kind_ase": procs["ours"], "phonopy_same_calculator": procs["phonopy"]},
        "nu_max_relative_difference": warm["nu_max"] / best["nu_max"] - 1,
        "ratio_steady_state": {"value": warm["total_s"] / best["total_s"], "unit": "ours / phonopy time"},
        "ratio_cold_in_process": {"value": runs[0]["total_s"] / best["total_s"], "unit": "ours / phonopy time"},
        "ratio_whole_process": {"value": best_proc["ours"]["process_wall_s"] / best_proc["phonopy"]["process_wall_s"],
                                "unit": "ours / phonopy time"},
        "peak_rss_MB": {k: v["peak_rss_MB"] for k, v in best_proc.items()},
        "aim": "ours no slower than phonopy + the same calculator (ratio <= 1)",
        "machine": {"cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--external", action="store_true",
                    help="the finite-difference PDOS of kind: ase vs phonopy + the same ASE calculator")
    ap.add_argument("--worker", choices=["ours", "phonopy", "ours-lj", "phonopy-lj"], default=None,
                    help=argparse.SUPPRESS)
    ap.add_argument("--no-whole-process", action="store_true", help="skip the fresh-process comparison")
    ap.add_argument("--fd-step", type=float, default=1e-3 / 3.4, help="displacement, sigma (both sides)")
    ap.add_argument("--model", default=None, help="trained-model directory to time as well")
    ap.add_argument("--mesh", type=int, default=20)
    ap.add_argument("--sigma", type=float, default=0.05, help="Gaussian width, 1/tau")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="bench_pdos.json")
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.mesh, args.sigma, args.fd_step)
    if args.external:
        res = external_main(args)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))
        print(json.dumps({k: v for k, v in res.items() if k.startswith(("ratio", "nu_max", "peak", "machine"))}, indent=2))
        return None
    from mlffbench.potentials import Capabilities, lennard_jones, load_potential

    load0 = os.getloadavg()[0]
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
    if not args.no_whole_process:
        res["whole_process"] = second_invocation_pdos(args.mesh, args.sigma, args.fd_step)
        wp = res["whole_process"]
        wp["steady_in_process_ratio"] = res["speedup_steady_state"]
        print(f"whole process: ours {wp['ours_first_s']:.1f} s then {wp['ours_second_s']:.1f} s, phonopy "
              f"{wp['peer_first_s']:.1f} s then {wp['peer_second_s']:.1f} s: second invocation "
              f"{wp['ratio_second_invocation']:.2f}x", flush=True)
    import jax

    res["device"] = str(jax.devices()[0])
    res["load_average_1min"] = {"start": load0, "end": os.getloadavg()[0]}
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=2)
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, dict)}, indent=2))


if __name__ == "__main__":
    main()
