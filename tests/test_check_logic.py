"""`mlffbench check` logic on synthetic run results (no simulation): tolerances, skipped values,
drift naming, unit mismatch, malformed reference files."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from mlffbench.benchmarks.check import (
    DRIFT,
    SKIPPED,
    WITHIN,
    compare_to_reference,
    load_reference,
)
from mlffbench.errors import UserError


def results(state="passed", e=1.0, unit="eV"):
    return {"mode": "quick", "benchmarks": {
        "a": {"state": state, "reason": "", "reference": {"x": {"value": e, "unit": unit}, "c": {"n3": {"y": {"value": 2.0, "unit": "Å"}}}}},
        "b": {"state": "not run", "reason": "not available in this version", "reference": {}}}}


def reference(**over):
    vals = {"a.x": {"value": 1.0, "unit": "eV", "tolerance": {"abs": 1e-6}, "modes": ["quick"]},
            "a.c.n3.y": {"value": 2.0, "unit": "Å", "tolerance": {"rel": 1e-6}, "modes": ["quick"]},
            "b.z": {"value": 3.0, "unit": "eV", "tolerance": {"rel": 1e-3}, "modes": ["quick"]},
            "a.p": {"value": 3.0, "unit": "eV", "tolerance": {"rel": 1e-3}, "modes": ["paper"]}}
    vals.update(over)
    return {"values": vals}


def status(rows):
    return {r.key: r.status for r in rows}


def test_tolerances_and_states():
    assert status(compare_to_reference(results(), reference())) == {
        "a.x": WITHIN, "a.c.n3.y": WITHIN, "b.z": SKIPPED, "a.p": SKIPPED}
    assert status(compare_to_reference(results(e=1.0 + 9e-7), reference()))["a.x"] == WITHIN
    rows = compare_to_reference(results(e=1.0 + 2e-6), reference())
    assert status(rows)["a.x"] == DRIFT and "tolerance" in next(r for r in rows if r.key == "a.x").note
    assert status(compare_to_reference(results(unit="meV"), reference()))["a.x"] == DRIFT
    assert status(compare_to_reference(results(state="failed"), reference()))["a.x"] == WITHIN  # numbers kept
    failed = results(state="failed")
    failed["benchmarks"]["a"]["reference"] = {}
    assert status(compare_to_reference(failed, reference()))["a.x"] == DRIFT
    missing = reference(**{"a.q": {"value": 1.0, "unit": "eV", "tolerance": {"abs": 1.0}, "modes": ["quick"]}})
    assert status(compare_to_reference(results(), missing))["a.q"] == DRIFT


@pytest.mark.parametrize("bad", [
    {}, {"values": {}}, {"values": {"nodot": {"value": 1, "unit": "eV", "tolerance": {"abs": 1}}}},
    {"values": {"a.x": {"value": "1", "unit": "eV", "tolerance": {"abs": 1}}}},
    {"values": {"a.x": {"value": 1, "tolerance": {"abs": 1}}}},
    {"values": {"a.x": {"value": 1, "unit": "eV", "tolerance": {"abs": -1}}}},
    {"values": {"a.x": {"value": 1, "unit": "eV", "tolerance": {"foo": 1}}}},
])
def test_malformed_reference_is_user_error(tmp_path, bad):
    p = tmp_path / "r.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(UserError):
        load_reference(p)


def test_cli_exit_codes_on_synthetic_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(results(e=1.5)))
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(reference()))
    code, out = run_cli(["check", str(run), "--reference", str(ref)])
    assert code == 1 and "drift" in out and "a.x" in out.split("drift:")[-1]
    (run / "results.json").write_text(json.dumps(results()))
    assert run_cli(["check", str(run), "--reference", str(ref)])[0] == 0
    only_skipped = {"values": {"b.z": reference()["values"]["b.z"]}}
    ref.write_text(json.dumps(only_skipped))
    assert run_cli(["check", str(run), "--reference", str(ref)])[0] == 2


def test_mode_tagged_value_is_looked_up_at_its_untagged_path():
    """make_reference writes '<key>@<mode>' when a mode's value differs from another mode's."""
    ref = {"values": {
        "a.x": {"value": 1.0, "unit": "eV", "tolerance": {"abs": 1e-6}, "modes": ["quick"]},
        "a.x@paper": {"value": 1.5, "unit": "eV", "tolerance": {"abs": 1e-6}, "modes": ["paper"]}}}
    paper = results(e=1.5)
    paper["mode"] = "paper"
    assert status(compare_to_reference(paper, ref)) == {"a.x": SKIPPED, "a.x@paper": WITHIN}
    assert status(compare_to_reference(results(e=1.0), ref)) == {"a.x": WITHIN, "a.x@paper": SKIPPED}
    paper["benchmarks"]["a"]["reference"]["x"]["value"] = 1.0  # the quick value in a paper run: drift
    assert status(compare_to_reference(paper, ref))["a.x@paper"] == DRIFT


def test_combined_abs_and_rel_tolerance():
    """allowed = abs + rel |ref| = 1e-3 + 1e-2 * 2 = 0.021: a deviation of 0.02 passes only with both."""
    def row(e, tol):
        ref = {"values": {"a.x": {"value": 2.0, "unit": "eV", "tolerance": tol, "modes": ["quick"]}}}
        (r,) = compare_to_reference(results(e=e), ref)
        return r
    both = {"abs": 1e-3, "rel": 1e-2}
    r = row(2.02, both)
    assert r.status == WITHIN and abs(r.allowed - 0.021) < 1e-15 and abs(r.deviation - 0.02) < 1e-12
    assert row(2.0 - 0.02, both).status == WITHIN
    assert row(2.022, both).status == DRIFT and row(2.0 - 0.022, both).status == DRIFT
    assert row(2.02, {"abs": 1e-3}).status == DRIFT and row(2.02, {"rel": 1e-2}).status == DRIFT


def test_nan_run_value_is_drift_and_nan_reference_is_malformed(tmp_path):
    rows = compare_to_reference(results(e=float("nan")), reference())
    r = next(r for r in rows if r.key == "a.x")
    assert r.status == DRIFT and "nan" in r.note
    inf = next(r for r in compare_to_reference(results(e=float("inf")), reference()) if r.key == "a.x")
    assert inf.status == DRIFT
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"values": {"a.x": {"value": float("nan"), "unit": "eV", "tolerance": {"abs": 1}}}}))
    with pytest.raises(UserError, match="finite"):
        load_reference(p)
    p.write_text(json.dumps({"values": {"a.x@paper": {"value": 1.0, "unit": "eV", "tolerance": {"abs": 1},
                                                       "modes": ["quick"]}}}))
    with pytest.raises(UserError, match="@paper"):
        load_reference(p)


def test_reported_spread_widens_the_tolerance():
    """allowed = max(abs + rel |ref|, 2 sqrt(std_run^2 + std_ref^2)); no std: the plain tolerance."""
    def row(e, std_run=None, std_ref=None):
        res = results(e=e)
        if std_run is not None:
            res["benchmarks"]["a"]["reference"]["x"]["std"] = std_run
        entry = {"value": 1.0, "unit": "eV", "tolerance": {"abs": 1e-3}, "modes": ["quick"]}
        if std_ref is not None:
            entry["std"] = std_ref
        (r,) = compare_to_reference(res, {"values": {"a.x": entry}})
        return r
    assert row(1.05).status == DRIFT and row(1.0005).status == WITHIN          # old behaviour
    r = row(1.05, std_run=0.03)                                                # 0.05 <= 2 * 0.03
    assert r.status == WITHIN and abs(r.allowed - 0.06) < 1e-15
    assert row(1.07, std_run=0.03).status == DRIFT                             # outside both
    assert row(1.0 - 0.05, std_run=0.03).status == WITHIN
    r = row(1.09, std_run=0.03, std_ref=0.04)                                  # 2 * hypot = 0.1
    assert r.status == WITHIN and abs(r.allowed - 0.1) < 1e-15
    assert row(1.11, std_run=0.03, std_ref=0.04).status == DRIFT
    assert row(1.05, std_ref=0.03).status == WITHIN                            # reference spread alone
    assert abs(row(1.0005, std_run=1e-6).allowed - 1e-3) < 1e-15               # tolerance still the floor
    assert row(1.05, std_run=float("nan")).status == DRIFT                     # a NaN std widens nothing


def test_negative_reference_std_is_malformed(tmp_path):
    p = tmp_path / "ref.json"
    p.write_text(json.dumps({"values": {"a.x": {"value": 1.0, "unit": "eV", "tolerance": {"abs": 1}, "std": -1}}}))
    with pytest.raises(UserError, match="std"):
        load_reference(p)
