"""Per-step overhead of the `kind: ase` route over a bare calculator call, same run.

ASE's LennardJones (argon, rc 8.5 Å) on the 256-atom FCC crystal (4x4x4), three ways, interleaved
`--repeats` times so machine load hits all of them alike:

* bare: `calc.calculate(atoms, ["energy", "forces", "stress"])` on a fresh rattled configuration
  per call (no mlffbench code at all);
* in process: NVE steps of `run_md` with the calculator inside the compiled loop
  (`jax.pure_callback` + `custom_vjp`), compile time excluded;
* out of process: the same with `python:` set (the calculator in a child interpreter, frames over
  a pipe).

Native jax-md LJ steps are timed for context. Aim: in-process route <= 1.2 x bare.

    python bench/external_overhead.py [--steps 40] [--repeats 3] [--out bench/results/external_overhead.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

import mlffbench  # noqa: F401  (x64)
from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.potentials import load_potential
from mlffbench.potentials.external import ase_potential, read_spec
from mlffbench.stats import from_samples, quantity
from mlffbench.structures import fcc
from mlffbench.units import ARGON

A0 = 1.5496034240894725  # lj/cut/shift rc = 2.5 sigma, 0 K
SPEC = {"kind": "ase", "calculator": "ase.calculators.lj:LennardJones",
        "kwargs": {"epsilon": 0.010321, "sigma": 3.4, "rc": 8.5, "smooth": False}, "cutoff_A": 8.5}


def bare_seconds_per_call(R, box, n_calls: int, seed: int) -> float:
    """Mean wall time of one bare ASE call (energy, forces, stress) on rattled configurations."""
    from ase import Atoms
    from ase.calculators.calculator import all_changes
    from ase.calculators.lj import LennardJones

    s = ARGON.sigma_angstrom
    atoms = Atoms("Ar" * len(R), positions=R * s, cell=box.T * s, pbc=True)
    calc = LennardJones(**SPEC["kwargs"])
    rng = np.random.default_rng(seed)
    configs = [R * s + 0.02 * rng.standard_normal(R.shape) for _ in range(n_calls)]
    t0 = time.perf_counter()
    for x in configs:
        atoms.positions = x
        calc.calculate(atoms, ["energy", "forces", "stress"], all_changes)
    return (time.perf_counter() - t0) / n_calls


def md_seconds_per_step(pot, R, box, n_steps: int) -> float:
    """Steady-state wall time per NVE step (the compiled program is warmed up first)."""
    kw = dict(kT=0.3, seed=0, sample_every=n_steps, chunk_steps=n_steps)
    run_md(pot, R, box, Integrator(dt=0.005), n_steps, **kw)  # compile + warm cache of programs
    res = run_md(pot, R, box, Integrator(dt=0.005), n_steps, **kw)
    return res.run_seconds / res.steps_done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="bench/results/external_overhead.json")
    args = ap.parse_args()

    s = fcc(4, A0)
    R, box = s.positions, s.box
    tmp = Path(tempfile.mkdtemp())
    spec_in = tmp / "ase-lj.yaml"
    spec_in.write_text(yaml.safe_dump(SPEC))
    spec_host = tmp / "ase-lj-host.yaml"
    spec_host.write_text(yaml.safe_dump({**SPEC, "python": sys.executable}))
    pot_in, ev_in = ase_potential(read_spec(spec_in), str(spec_in), tmp, ARGON)
    pot_host, ev_host = ase_potential(read_spec(spec_host), str(spec_host), tmp, ARGON)
    native = load_potential("lj")

    times: dict[str, list[float]] = {"bare": [], "in_process": [], "out_of_process": [], "native": []}
    calls = {"in_process": 0, "out_of_process": 0}
    for rep in range(args.repeats):
        times["bare"].append(bare_seconds_per_call(R, box, args.steps, rep))
        c0 = ev_in.calls
        times["in_process"].append(md_seconds_per_step(pot_in, R, box, args.steps))
        calls["in_process"] += ev_in.calls - c0
        c0 = ev_host.calls
        times["out_of_process"].append(md_seconds_per_step(pot_host, R, box, args.steps))
        calls["out_of_process"] += ev_host.calls - c0
        times["native"].append(md_seconds_per_step(native, R, box, args.steps))
        print(f"repeat {rep}: " + ", ".join(f"{k} {v[-1] * 1e3:.2f} ms" for k, v in times.items()), flush=True)

    bare = np.array(times["bare"])
    ratio = {k: np.array(times[k]) / bare for k in ("in_process", "out_of_process")}
    out = {
        "benchmark": "external_overhead",
        "system": {"atoms": len(R), "structure": "fcc 4x4x4", "calculator": "ase.calculators.lj:LennardJones",
                   "rc_A": 8.5},
        "steps_per_repeat": args.steps, "repeats": args.repeats,
        "seconds_per_step": {k: from_samples(np.array(v), "s") for k, v in times.items()},
        "overhead_over_bare": {k: quantity(float(np.mean(v) - 1.0), "fraction", std=float(np.std(v, ddof=1))
                                           if len(v) > 1 else None, n=len(v)) for k, v in ratio.items()},
        # 2 warm-up + timed runs of `steps` each, plus the initial force of each run
        "calculator_calls_per_step": {k: quantity(v / (args.repeats * 2 * (args.steps + 1)), "calls/step")
                                      for k, v in calls.items()},
        "aim": "in_process overhead <= 0.20",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_1min": os.getloadavg()[0]},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out["overhead_over_bare"], indent=2))


if __name__ == "__main__":
    main()
