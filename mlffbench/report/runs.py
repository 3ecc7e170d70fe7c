"""Run directories as the report reads them, and the curves (one per potential) of a benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlffbench.errors import UserError
from mlffbench.io import read_json
from mlffbench.plotting import REFERENCE_COLOR, series_color


@dataclass
class Run:
    """One `mlffbench run` OUTDIR: its results.json, manifest.json and a label unique in the report."""

    outdir: Path
    results: dict
    manifest: dict
    label: str

    def bench(self, name: str) -> dict | None:
        return self.results["benchmarks"].get(name)

    @property
    def tau_ps(self) -> float | None:
        """The LJ time unit in ps (converts reduced frequencies 1/tau to THz), if the run stored it."""
        return self.results.get("units", {}).get("tau_ps")


def load_run(outdir: str | Path) -> tuple[dict, dict]:
    """(results, manifest) of a run directory; UserError if it is not one."""
    out = Path(outdir)
    if not (out / "results.json").is_file():
        raise UserError(f"{out}: no results.json (not an `mlffbench run` output directory)")
    try:
        res = read_json(out / "results.json")
    except ValueError as exc:
        raise UserError(f"{out}/results.json: not valid JSON ({exc})") from exc
    if not isinstance(res, dict) or not isinstance(res.get("benchmarks"), dict):
        raise UserError(f"{out}/results.json: no 'benchmarks' (not an `mlffbench run` result)")
    man = read_json(out / "manifest.json") if (out / "manifest.json").is_file() else {}
    return res, man


def run_label(outdir: Path, res: dict) -> str:
    """'OUTDIR-name (model)': an LJ name as given, a model directory or file by its last path part."""
    model = res.get("model", {})
    spec = str(model.get("spec", "?"))
    return f"{outdir.name} ({spec if model.get('kind') == 'lj' else Path(spec).name})"


def expand_sweeps(outdirs: list[str | Path]) -> list[Path]:
    """An `mlffbench sweep` OUTDIR stands for its tasks' run directories (OUTDIR/runs/<task>)."""
    out: list[Path] = []
    for o in map(Path, outdirs):
        if (o / ".mlffbench-sweep").is_file() and (o / "results.json").is_file():
            tasks = read_json(o / "results.json").get("tasks", {})
            out += [o / t["dir"] for t in tasks.values() if t.get("results") is not None]
        else:
            out.append(o)
    return out


def load_runs(outdirs: list[str | Path]) -> list[Run]:
    """Every OUTDIR loaded (a sweep: each of its runs), labels made unique (a repeated label gets
    ' #2', ' #3')."""
    runs: list[Run] = []
    seen: dict[str, int] = {}
    for o in expand_sweeps(outdirs):
        res, man = load_run(o)
        label = run_label(Path(o), res)
        seen[label] = seen.get(label, 0) + 1
        runs.append(Run(Path(o), res, man, label if seen[label] == 1 else f"{label} #{seen[label]}"))
    return runs


def benchmark_names(runs: list[Run]) -> list[str]:
    """Benchmarks of all runs, in the first run's (battery) order, then any others."""
    names: list[str] = []
    for r in runs:
        names += [n for n in r.results["benchmarks"] if n not in names]
    return names


@dataclass
class Series:
    """One potential's raw numbers for one benchmark, with its style in the figures.

    label: legend label ('LJ' or the run label); reference: the LJ oracle; failed: the benchmark
    failed (the numbers are what was obtained before it did).
    """

    label: str
    raw: dict
    color: str
    reference: bool
    run: Run
    failed: bool = False

    @property
    def ls(self) -> str:
        return "-" if self.reference else "--"

    @property
    def marker(self) -> str:
        return "o" if self.reference else "s"

    def other(self, bench: str) -> dict:
        """This potential's raw result of another benchmark of the same run ({} if absent)."""
        b = self.run.bench(bench) or {}
        return b.get("reference" if self.reference else "model") or {}


def series_for(name: str, runs: list[Run]) -> list[Series]:
    """The LJ reference(s) (once per distinct reference potential), then every run's model."""
    out: list[Series] = []
    refs: dict[str, Series] = {}
    for r in runs:
        b = r.bench(name)
        if not b or not b.get("reference"):
            continue
        ref = r.results.get("reference", {})
        rid = str(ref.get("fingerprint") or ref.get("id", ""))  # the potential, not the code version
        if rid not in refs:
            refs[rid] = Series("LJ", b["reference"], REFERENCE_COLOR, True, r,
                               failed=b["state"] == "failed" and str(b.get("reason", "")).startswith("reference"))
    if len(refs) > 1:
        for s in refs.values():
            s.label = f"LJ ({s.run.label})"
    out += list(refs.values())
    for k, r in enumerate(runs):
        b = r.bench(name)
        if b and b.get("model") and b["state"] != "not run":
            failed = b["state"] == "failed"
            out.append(Series(r.label + (" (failed)" if failed else ""), b["model"], series_color(k), False, r,
                              failed))
    return out
