"""`mlffbench check`: a run's LJ numbers against versioned reference values (CI regression).

Reference files (reference_data/*.json) hold, under ``values``, entries keyed by a dotted path
into a benchmark's raw LJ result, e.g. ``vacancy_formation.cells.n3.formation_energy``::

    {"value": 0.0761, "unit": "eV", "tolerance": {"abs": 1e-6, "rel": 1e-6},
     "modes": ["quick", "paper"], "provenance": {...}}

A value that a mode computes differently from the others is stored under ``<key>@<mode>`` (as
scripts/make_reference.py writes it) with ``"modes": [<mode>]``; it is looked up at ``<key>``.

A value passes when |run - reference| <= max(abs + rel * |reference|, SPREAD_K * sqrt(std_run^2 +
std_ref^2)), where std_run is the run value's reported spread (``"std"``: committee members, block
averages, replicas) and std_ref the reference entry's ``"std"``; with neither, the spread term is 0
(the plain tolerance). A value with a spread passes within SPREAD_K = 2 combined standard deviations
(about 95 %); a non-finite or negative std is ignored. A non-finite run value is drift,
a non-finite reference value is a malformed file. Values of benchmarks that were
not run (deselected, unavailable) or of another mode are listed as skipped and do not fail the
check; a value that is missing from a benchmark that ran, a failed benchmark, or a unit mismatch
is drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mlffbench.errors import UserError
from mlffbench.io import read_json

WITHIN, DRIFT, SKIPPED = "ok", "DRIFT", "skipped"
SPREAD_K = 2.0  # combined standard deviations a value with a reported spread may deviate by


@dataclass
class Row:
    key: str
    reference: float | None
    value: float | None
    unit: str
    deviation: float | None
    allowed: float | None
    status: str
    note: str = ""


def lookup(raw: dict, path: list[str]):
    node = raw
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def split_key(key: str) -> tuple[str, list[str], str | None]:
    """'<benchmark>.<path>[@<mode>]' -> (benchmark, path parts, mode tag or None)."""
    base, at, tag = key.partition("@")
    bench, *path = base.split(".")
    return bench, path, (tag if at else None)


def load_reference(path: str | Path) -> dict:
    """A reference file, validated; UserError (exit 2) when malformed."""
    ref = read_json(path)
    if not isinstance(ref, dict) or not isinstance(ref.get("values"), dict) or not ref["values"]:
        raise UserError(f"{path}: not a reference file (needs a non-empty 'values' mapping)")
    for key, entry in ref["values"].items():
        if "." not in key:
            raise UserError(f"{path}: values.{key}: key must be '<benchmark>.<path>'")
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), (int, float)):
            raise UserError(f"{path}: values.{key}.value: missing or not a number")
        if not math.isfinite(entry["value"]):
            raise UserError(f"{path}: values.{key}.value: not a finite number ({entry['value']})")
        tag = split_key(key)[2]
        if tag is not None and entry.get("modes") != [tag]:
            raise UserError(f"{path}: values.{key}.modes: a '@{tag}' value needs modes: [{tag!r}]")
        if "unit" not in entry:
            raise UserError(f"{path}: values.{key}.unit: required key is missing")
        tol = entry.get("tolerance")
        if not isinstance(tol, dict) or not set(tol) <= {"abs", "rel"} or not tol:
            raise UserError(f"{path}: values.{key}.tolerance: needs 'abs' and/or 'rel'")
        if any(not isinstance(v, (int, float)) or v < 0 for v in tol.values()):
            raise UserError(f"{path}: values.{key}.tolerance: must be non-negative numbers")
        std = entry.get("std")
        if std is not None and (not isinstance(std, (int, float)) or not math.isfinite(std) or std < 0):
            raise UserError(f"{path}: values.{key}.std: must be a non-negative finite number")
    return ref


def _std(node: dict) -> float:
    """A reported std (>= 0, finite) or 0."""
    s = node.get("std") if isinstance(node, dict) else None
    return float(s) if isinstance(s, (int, float)) and math.isfinite(s) and s >= 0 else 0.0


def allowed_deviation(tol: dict, r_val: float, std_run: float = 0.0, std_ref: float = 0.0) -> float:
    """max(abs + rel |ref|, SPREAD_K sqrt(std_run^2 + std_ref^2)): the tolerance, widened to the
    combined reported spread where the values have one."""
    plain = tol.get("abs", 0.0) + tol.get("rel", 0.0) * abs(r_val)
    return max(plain, SPREAD_K * math.hypot(std_run, std_ref))


def compare_to_reference(results: dict, ref: dict) -> list[Row]:
    """One Row per reference value."""
    benches = results.get("benchmarks", {})
    mode = results.get("mode")
    rows = []
    for key, entry in ref["values"].items():
        bench, path, _ = split_key(key)
        r_val, unit = float(entry["value"]), entry["unit"]
        tol = entry["tolerance"]
        allowed = allowed_deviation(tol, r_val, 0.0, _std(entry))
        modes = entry.get("modes")
        res = benches.get(bench)
        if modes and mode not in modes:
            rows.append(Row(key, r_val, None, unit, None, allowed, SKIPPED, f"value for mode {'/'.join(modes)}"))
            continue
        if res is None or res["state"] == "not run":
            why = "benchmark absent" if res is None else f"not run: {res.get('reason', '')}"
            rows.append(Row(key, r_val, None, unit, None, allowed, SKIPPED, why))
            continue
        node = lookup(res.get("reference", {}), path)
        if res["state"] == "failed" and node is None:
            rows.append(Row(key, r_val, None, unit, None, allowed, DRIFT, f"benchmark failed: {res.get('reason')}"))
            continue
        if not isinstance(node, dict) or not isinstance(node.get("value"), (int, float)):
            rows.append(Row(key, r_val, None, unit, None, allowed, DRIFT, "value missing from the run"))
            continue
        if node.get("unit") != unit:
            rows.append(Row(key, r_val, float(node["value"]), str(node.get("unit")), None, allowed, DRIFT,
                            f"unit {node.get('unit')!r} differs from the reference's {unit!r}"))
            continue
        v = float(node["value"])
        if _std(node) or _std(entry):
            allowed = allowed_deviation(tol, r_val, _std(node), _std(entry))
        dev = v - r_val
        ok = math.isfinite(v) and abs(dev) <= allowed
        note = ("" if ok else f"|deviation| {abs(dev):.3e} > tolerance {allowed:.3e}" if math.isfinite(v)
                else f"run value is {v}")
        rows.append(Row(key, r_val, v, unit, dev, allowed, WITHIN if ok else DRIFT, note))
    return rows


def check_run(outdir: str | Path, reference: str | Path) -> tuple[list[Row], int]:
    """(rows, exit code): 0 all within tolerance, 1 any drift. UserError (exit 2) on bad input."""
    from mlffbench.report import load_run

    ref = load_reference(reference)
    results, _ = load_run(outdir)
    rows = compare_to_reference(results, ref)
    if all(r.status == SKIPPED for r in rows):
        raise UserError(f"{outdir}: none of the reference values in {reference} were computed in this run "
                        "(check the benchmark selection and mode)")
    return rows, (1 if any(r.status == DRIFT for r in rows) else 0)
