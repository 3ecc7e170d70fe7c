"""`mlffbench check` logic on synthetic run results (no simulation): tolerances, skipped values,
drift naming, unit mismatch, malformed reference files."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from mlffbench.benchmarks.check import DRIFT, SKIPPED, WITHIN, compare_to_reference, load_reference
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
