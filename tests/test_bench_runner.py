"""bench/run_all.py: the summary of issue 18's figures from (fake) benchmark outputs, and the
per-stage process record (exit status, peak RSS) of a tiny child. No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ra():
    spec = importlib.util.spec_from_file_location("bench_run_all", ROOT / "bench" / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run_all"] = mod
    spec.loader.exec_module(mod)
    return mod


def _rec(stage, json_name, rc=0, rss=1000.0):
    return {"stage": stage, "command": f"python bench/{stage}.py", "returncode": rc, "wall_s": 12.0, "cpu_s": 20.0,
            "peak_rss_mb": rss, "load_average_1min": {"start": 4.0, "end": 6.0}, "quick": False,
            "log": f"logs/{stage}.log", "json": json_name}


FAKE = {
    "md_throughput.json": {"results": [
        {"n_atoms": 256, "ensemble": "nve", "dtype": "float64", "ours": {"atom_steps_per_s": 4.0e5},
         "lammps": {"atom_steps_per_s": 1.0e6}, "ratio_ours_over_lammps": 0.4},
        {"n_atoms": 256, "ensemble": "nvt", "dtype": "float64", "ours": {"atom_steps_per_s": 1.0},
         "lammps": {"atom_steps_per_s": 1.0}, "ratio_ours_over_lammps": 1.0},
        {"n_atoms": 4000, "ensemble": "nve", "dtype": "float64", "ours": {"atom_steps_per_s": 3.0e5},
         "lammps": {"atom_steps_per_s": 1.0e6}, "ratio_ours_over_lammps": 0.3, "skin_sigma": 0.5},
        {"n_atoms": 4000, "ensemble": "nve", "dtype": "float64", "ours": {"atom_steps_per_s": 2.0e5},
         "lammps": {"atom_steps_per_s": 1.0e6}, "ratio_ours_over_lammps": 0.2, "skin_sigma": 0.3}]},
    "neighbor_scaling.json": {"results": [
        {"n_atoms": 256, "rebuild_ms": 1.0, "force_ms": 1.0, "rebuild_us_per_atom": 99.0},
        {"n_atoms": 864, "rebuild_ms": 10.0, "force_ms": 2.0, "rebuild_us_per_atom": 12.0},
        {"n_atoms": 4000, "rebuild_ms": 50.0, "force_ms": 5.0, "rebuild_us_per_atom": 12.5},
        {"n_atoms": 32000, "rebuild_ms": 480.0, "force_ms": 40.0, "rebuild_us_per_atom": 15.0}]},
    "vacancy_md.json": {"results": {"lj": {"replica_steps_per_cpu_s": 900.0},
                                    "lammps": {"replica_steps_per_cpu_s": 20000.0}},
                        "lj_md_cost_ratio_ours_over_lammps_per_cpu_s": 0.045},
    "gnn_throughput.json": {"energy_forces": {"gnn": {"median_ms": 4.0, "min_ms": 3.5},
                                              "lj": {"median_ms": 0.5, "min_ms": 0.4}},
                            "md_nve": {"gnn": {"atom_steps_per_s": 40000.0}, "lj": {"atom_steps_per_s": 400000.0}},
                            "cost": {"flops": 9.0e7}},
    "neb_speed.json": {"whole_process": [
        {"tolerance_eV_per_A": 1e-4, "ours_second_s": 10.0, "peer_second_s": 30.0},
        {"tolerance_eV_per_A": 1e-5, "ours_second_s": 10.0, "peer_second_s": 60.0}]},
    "pdos_speed.json": {"whole_process": {"ours_second_s": 8.0, "peer_second_s": 4.0}},
    "md_cli.json": {"n_atoms": 4000, "steps": 4000, "ours": {"process_wall_s": 100.0},
                    "lammps": {"process_wall_s": 10.0}},
    "pdos_external.json": {"whole_process": {
        "mlffbench_kind_ase": [{"process_wall_s": 5.0}, {"process_wall_s": 4.0}],
        "phonopy_same_calculator": [{"process_wall_s": 3.0}, {"process_wall_s": 6.0}]}},
    "external_overhead.json": {"seconds_per_step": {"in_process": {"value": 0.011}, "bare": {"value": 0.010}}},
    "demo-out/manifest.json": {"benchmark_peak_rss": {
        "pdos_0k": {"model": {"value": 900.0, "unit": "MiB"}, "reference": {"value": 500.0, "unit": "MiB"}},
        "md_stability": {"model": {"value": 700.0, "unit": "MiB"}}},
        "stage_peak_rss": {"train": {"value": 1200.0, "unit": "MiB"}}},
}
STAGE_OF = {"md_throughput.json": "md_throughput", "neighbor_scaling.json": "neighbor_scaling",
            "vacancy_md.json": "vacancy_md", "gnn_throughput.json": "gnn_throughput", "neb_speed.json": "neb_speed",
            "pdos_speed.json": "pdos_speed", "md_cli.json": "md_cli", "pdos_external.json": "pdos_external",
            "external_overhead.json": "external_overhead"}


@pytest.fixture()
def results(tmp_path):
    for name, data in FAKE.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(data))
    records = {stage: _rec(stage, name) for name, stage in STAGE_OF.items()}
    records["demo"] = {**_rec("demo", None, rss=3.5 * 1024), "wall_s": 400.0}
    records["test_suite"] = {**_rec("test_suite", None), "wall_s": 450.0}
    return tmp_path, records


def _by_figure(rows, text):
    hits = [r for r in rows if text in r["figure"]]
    assert len(hits) == 1, (text, [r["figure"] for r in rows])
    return hits[0]


def test_every_issue_figure_has_a_row_with_ratio_and_peak_rss(ra, results):
    path, records = results
    doc = ra.write_summary(path, records)
    rows = doc["figures"]
    assert all(r["status"] == "ok" for r in rows), [(r["figure"], r["status"]) for r in rows]
    md = _by_figure(rows, "N = 4000, 4000 steps")
    assert md["ours"] == 100.0 and md["peer"] == 10.0 and md["ratio"] == pytest.approx(0.1)
    assert md["goal_met"] is False and md["peak_rss_mb"] == 1000.0 and md["command"] == "python bench/md_cli.py"
    assert md["load_average_1min"] == {"start": 4.0, "end": 6.0}
    assert _by_figure(rows, "steady atom-steps/s, N = 256")["ratio"] == pytest.approx(0.4)
    n4000 = _by_figure(rows, "steady atom-steps/s, N = 4000")
    assert n4000["ratio"] == pytest.approx(0.3) and n4000["goal_met"] is False  # goal 0.5
    assert n4000["detail"]["our_skin_sigma"] == 0.5  # our fastest skin, as LAMMPS's fastest is its peer
    assert _by_figure(rows, "steady atom-steps/s, N = 256")["goal_met"] is True  # goal 0.3
    curve = _by_figure(rows, "cost per atom")
    assert curve["ours"] == 15.0 and curve["peer"] == 12.0  # N = 256 (99 us) is outside 864 ... 32 000
    assert curve["ratio"] == pytest.approx(12.0 / 15.0)
    rb = _by_figure(rows, "rebuild, N = 4000")
    assert rb["ours"] == 50.0 and rb["ratio"] == pytest.approx(0.1)
    vac = _by_figure(rows, "vacancy MD")
    assert vac["ratio"] == pytest.approx(0.045) and vac["goal_met"] is False
    gnn = _by_figure(rows, "GNN energy+forces")
    assert gnn["ours"] == 4.0 and gnn["goal_met"] is True and gnn["ratio"] == pytest.approx(0.125)
    assert gnn["detail"]["mflop"] == pytest.approx(90.0)
    gmd = _by_figure(rows, "GNN MD")
    assert gmd["ours"] == 40000.0 and gmd["goal_met"] is False
    neb4, neb5 = _by_figure(rows, "1e-4 eV/Å"), _by_figure(rows, "1e-5 eV/Å")
    assert (neb4["ratio"], neb4["goal_met"]) == (pytest.approx(3.0), False)
    assert (neb5["ratio"], neb5["goal_met"]) == (pytest.approx(6.0), True)
    pdos = _by_figure(rows, "0 K PDOS")
    assert pdos["ratio"] == pytest.approx(0.5) and pdos["goal_met"] is False
    rss = _by_figure(rows, "`make demo` peak RSS")
    assert rss["ours"] == pytest.approx(3.5) and rss["goal_met"] is True
    assert rss["detail"]["benchmark_peak_rss_mb"] == {"pdos_0k": 900.0, "md_stability": 700.0,
                                                         "train": 1200.0}
    wall = _by_figure(rows, "`make demo` wall")
    assert wall["ours"] == 400.0 and wall["goal_met"] is False
    assert _by_figure(rows, "`make test` wall")["goal_met"] is True
    ext = _by_figure(rows, "FD PDOS")  # best process of each side: 4.0 vs 3.0
    assert ext["ratio"] == pytest.approx(0.75)
    ovh = _by_figure(rows, "MD step, in process")
    assert ovh["ratio"] == pytest.approx(0.010 / 0.011) and ovh["goal_met"] is True
    written = json.loads((path / "summary.json").read_text())
    assert [r["figure"] for r in written["figures"]] == [r["figure"] for r in rows]
    table = (path / "summary.md").read_text()
    for r in rows:
        assert f"| {r['figure']} |" in table
    assert "| 0.10x |" in table and "0.98 GB" in table  # md_cli: ratio and peak RSS (1000 MB)


def test_missing_failed_and_unrun_stages_are_marked_not_invented(ra, results):
    path, records = results
    (path / "gnn_throughput.json").unlink()
    records["neb_speed"] = _rec("neb_speed", "neb_speed.json", rc=3)
    records.pop("md_cli")
    (path / "md_cli.json").unlink()
    records.pop("vacancy_md")  # its JSON is still there: read, and said to have no process record
    (path / "pdos_speed.json").write_text(json.dumps({"speedup_steady_state": 40.0}))  # an old format
    rows = ra.write_summary(path, records)["figures"]
    gnn = _by_figure(rows, "GNN energy+forces")
    assert gnn["ours"] is None and gnn["goal_met"] is None and "missing" in gnn["status"]
    neb = _by_figure(rows, "1e-4 eV/Å")
    assert neb["ours"] is None and "exit 3" in neb["status"]
    assert _by_figure(rows, "4000 steps, whole process")["status"] == "not run"
    pdos = _by_figure(rows, "0 K PDOS")
    assert pdos["ours"] is None and pdos["status"].startswith("not in pdos_speed.json")
    vac = _by_figure(rows, "vacancy MD")
    assert vac["ratio"] == pytest.approx(0.045) and vac["peak_rss_mb"] is None and "no process record" in vac["status"]
    table = ra.summary_markdown(rows)
    assert "not run" in table and "exit 3" in table


def test_a_rerun_of_some_stages_keeps_the_others(ra, results):
    path, records = results
    ra.write_summary(path, records)
    kept = ra.previous_records(path)
    assert set(kept) == set(records) and kept["vacancy_md"]["peak_rss_mb"] == 1000.0


def test_stage_record_has_exit_status_and_the_childs_peak_rss(ra, tmp_path):
    """A child that holds ~200 MB and exits 2: the record says so (RSS from wait4, not the parent)."""
    import subprocess

    code = "import sys; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); sys.exit(2)"
    # run_stage runs in a fresh small process, as under `make bench`: a child forked from this
    # pytest worker (JAX loaded, GBs resident) would carry the worker's RSS in its ru_maxrss
    runner = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import run_all as ra; "
              f"from pathlib import Path; t = Path({str(tmp_path)!r}); "
              f"stage = ra.Stage('fake', None, lambda results, quick, model: [sys.executable, '-c', {code!r}]); "
              "print(json.dumps(ra.run_stage(stage, t, False, None, t / 'logs')))")
    out = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, check=True).stdout
    rec = json.loads(out.strip().splitlines()[-1])
    assert rec["returncode"] == 2
    assert 200 <= rec["peak_rss_mb"] < 400
    assert rec["wall_s"] >= 0 and rec["cpu_s"] >= 0 and set(rec["load_average_1min"]) == {"start", "end"}
    assert (tmp_path / "logs" / "fake.log").is_file()


def test_quick_skips_the_demo_and_the_test_suite(ra):
    slow = {n for n, s in ra.STAGES.items() if s.slow}
    assert slow == {"demo", "test_suite"}
    figure_stages = {f.stage for f in ra.FIGURES}
    assert figure_stages <= set(ra.STAGES)
