"""What the report says, independent of its format: the scorecard, one section per benchmark
(figure with caption, metrics), the manifests. `build` makes it; HTML, Markdown and JSON render it.

Headline metric of a benchmark row: its first scored metric (one with `good`/`bad` thresholds),
the same metric in every column so that models compare on one number.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from mlffbench.report import figures
from mlffbench.report.fmt import fmt_num, fmt_quantity, pretty_name, spread_note
from mlffbench.report.runs import Run, Series, benchmark_names, series_for

REPORT_VERSION = 1
ABSENT = "absent from this run"
#: run-config settings that say nothing about the physics of a figure
_QUIET_SETTINGS = {"enabled", "modes", "float32_overrides", "config", "overrides", "save_trajectory", "progress"}


@dataclass
class Figure:
    """One figure: PNG bytes, its caption, and a file name for formats that link images."""

    benchmark: str
    png: bytes
    caption: str
    file: str
    source: str  # 'generated from results.json' or the run PNG it embeds

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode()


@dataclass
class Section:
    """One benchmark: title, description, per-run state and metrics, figures."""

    name: str
    title: str
    description: str
    cells: dict[str, dict]                   # run label -> scorecard cell
    metrics: dict[str, dict]                 # run label -> {metric: quantity}
    figures: list[Figure] = field(default_factory=list)
    checks: dict[str, dict] | None = None    # integrity: run label -> {check: passed}


@dataclass
class Report:
    runs: list[Run]
    sections: list[Section]
    footnotes: list[dict]                    # [{"n", "reason", "cells": ["bench / run", ...]}]

    @property
    def title(self) -> str:
        return "mlffbench scorecard" if len(self.runs) == 1 else "mlffbench comparison"


# ----------------------------------------------------------------------------------------------
# scorecard
# ----------------------------------------------------------------------------------------------
def headline_metric(name: str, runs: list[Run]) -> str | None:
    """The first scored metric of benchmark `name` in any run (None if nothing is scored)."""
    for r in runs:
        for key, m in ((r.bench(name) or {}).get("metrics") or {}).items():
            if "good" in m:
                return key
    return None


def scorecard_cell(run: Run, name: str, headline: str | None) -> dict:
    """state, reason, score and the headline metric (value, unit, std, n, ci95) of one cell."""
    b = run.bench(name)
    if b is None:
        return {"state": "not run", "reason": ABSENT, "score": None, "headline": None}
    cell = {"state": b["state"], "reason": b.get("reason") or "", "score": b.get("score"), "headline": None}
    m = (b.get("metrics") or {}).get(headline) if headline else None
    if m is not None and b["state"] == "passed":
        cell["headline"] = {"metric": headline, **{k: m[k] for k in ("value", "unit", "std", "n", "ci95",
                                                                     "exceeds_spread", "score_withheld") if k in m}}
    return cell


def footnotes(sections: list[Section]) -> list[dict]:
    """One numbered footnote per distinct reason of a failed or not-run cell; cells get its 'note'."""
    notes: dict[str, dict] = {}
    for sec in sections:
        for label, cell in sec.cells.items():
            if cell["state"] == "passed":
                continue
            reason = cell["reason"] or cell["state"]
            note = notes.setdefault(reason, {"n": len(notes) + 1, "reason": reason, "cells": []})
            note["cells"].append(f"{sec.name} / {label}")
            cell["note"] = note["n"]
    return list(notes.values())


# ----------------------------------------------------------------------------------------------
# captions: the settings that matter, taken from the results
# ----------------------------------------------------------------------------------------------
def fcc_cell(n_atoms: int | None) -> str | None:
    """'3x3x3 FCC, 108 atoms' (or '... with one vacancy, 107 atoms') from an atom count."""
    if not isinstance(n_atoms, int) or n_atoms <= 0:
        return None
    for vac, extra in ((0, ""), (1, " with one vacancy")):
        n = round(((n_atoms + vac) / 4) ** (1 / 3))
        if 4 * n ** 3 == n_atoms + vac:
            return f"{n}x{n}x{n} FCC{extra}, {n_atoms} atoms"
    return f"{n_atoms} atoms"


def cell_text(raw: dict) -> str | None:
    """The simulation cell(s) a raw result used."""
    if isinstance(raw.get("cells"), dict) and raw["cells"]:
        return "; ".join(t for t in (fcc_cell(c.get("n_atoms")) for c in raw["cells"].values()) if t)
    summary = raw.get("summary") if isinstance(raw.get("summary"), dict) else {}
    settings = raw.get("settings") if isinstance(raw.get("settings"), dict) else {}
    n_atoms = raw.get("n_atoms", summary.get("n_atoms", settings.get("n_atoms")))
    if isinstance(raw.get("n_cells"), int) and not n_atoms:
        n_atoms = 4 * raw["n_cells"] ** 3
    text = fcc_cell(n_atoms)
    mesh = raw.get("mesh", summary.get("mesh"))
    if text and isinstance(mesh, list):
        text += ", " + "x".join(str(m) for m in mesh) + " q-mesh"
    return text


def own_a0(run: Run, role: str) -> float | None:
    """The potential's own 0 K lattice constant (Å) where the run computed it."""
    for name in ("lattice_constant", "cohesive_energy"):
        b = run.bench(name) or {}
        q = (b.get(role) or {}).get("lattice_constant")
        if b.get("state") == "passed" and q and q.get("value"):
            return q["value"]
    return None


def a0_text(s: Series) -> str | None:
    """'a = 5.269 Å (LJ's 0 K a0)': the lattice constant a raw result used, and whose it is."""
    q = s.raw.get("lattice_constant")
    if not isinstance(q, dict) or q.get("value") is None:
        return None
    a = q["value"]
    src = s.raw.get("lattice_constant_source")
    if not src:
        same = lambda x: x is not None and abs(x - a) <= 1e-6 * abs(a)
        if same(own_a0(s.run, "reference" if s.reference else "model")):
            src = "own 0 K a0"
        elif same(own_a0(s.run, "reference")):
            src = "LJ's 0 K a0"
    return f"a = {fmt_num(a, 4)} Å" + (f" ({src})" if src else "")


def temperatures(raw, depth: int = 0) -> list:
    """Every temperature (K) a raw result names: 'temperature_K', 'temperature' or 'temperatures'
    entries, and 'lo-hi' strings for temperature bins."""
    out: list[float] = []
    if depth > 3 or not isinstance(raw, dict):
        return out
    for k, v in raw.items():
        if k == "members":
            continue
        if k == "temperature_K" and isinstance(v, (int, float)):
            out.append(float(v))
        elif k in ("temperature", "temperatures") and isinstance(v, dict) and v.get("unit") == "K":
            vals = v.get("value")
            out += [float(x) for x in (vals if isinstance(vals, list) else [vals]) if isinstance(x, (int, float))]
        elif isinstance(v, dict):
            out += temperatures(v, depth + 1)
        elif isinstance(v, list) and k in ("runs", "bins"):
            for item in v:
                out += temperatures(item, depth + 1)
                if isinstance(item, dict) and "T_low_K" in item:
                    out.append(f"{item['T_low_K']:g}-{item['T_high_K']:g}")
    return out


def settings_text(settings: dict | None, float32: bool) -> str:
    """'config X; overrides a=1, b=2' of the run config's benchmark settings."""
    if not settings:
        return ""
    parts = []
    if settings.get("config"):
        parts.append(f"config {settings['config']}")
    over = dict(settings.get("overrides") or {})
    if float32:
        over.update(settings.get("float32_overrides") or {})
    over.update({k: v for k, v in settings.items() if k not in _QUIET_SETTINGS})
    over = {k: v for k, v in over.items() if k.split(".")[-1] not in _QUIET_SETTINGS}
    if over:
        parts.append(", ".join(f"{k} = {fmt_num(v, 4)}" for k, v in over.items()))
    return "; ".join(parts)


def caption(name: str, series: list[Series], runs: list[Run]) -> str:
    """The settings behind benchmark `name`'s figure: per potential its cell, lattice constant
    (and whose) and dtype; the temperatures; the run-config settings (once if all runs agree)."""
    per = []
    for s in series:
        dtype = s.run.results.get("reference" if s.reference else "model", {}).get("dtype")
        bits = [t for t in (cell_text(s.raw), a0_text(s), dtype) if t]
        members = len(s.raw.get("members") or [])
        if members > 1:
            bits.append(f"committee of {members}")
        if bits:
            per.append(f"{s.label}: " + ", ".join(bits))
    temps: list = []
    for s in series:
        temps += [t for t in temperatures(s.raw) if t not in temps]
    out = "; ".join(per) + "." if per else ""
    if temps:
        out += " Temperatures: " + ", ".join(t if isinstance(t, str) else f"{t:g}" for t in temps) + " K."
    texts = {}
    for r in runs:
        b = r.bench(name)
        if b and b.get("settings"):
            t = settings_text(b["settings"], r.results.get("model", {}).get("dtype") == "float32")
            if t:
                texts.setdefault(t, []).append(r.label)
    for t, labels in texts.items():
        out += f" Settings{'' if len(texts) == 1 else ' (' + ', '.join(labels) + ')'}: {t}."
    return out.strip()


# ----------------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------------
def section_figures(name: str, runs: list[Run], series: list[Series], draw: bool = True) -> list[Figure]:
    """The benchmark's figure drawn from the raw numbers, else (or with draw=False) the runs' own PNGs."""
    drawn = figures.draw(name, series) if draw else None
    cap = caption(name, series, runs)
    if drawn is not None:
        png, what = drawn
        return [Figure(name, png, f"{what}. {cap}".strip(), f"{name}.png", "generated from results.json")]
    out = []
    for r in runs:
        for png in (r.bench(name) or {}).get("plots") or []:
            p = r.outdir / "benchmarks" / name / png
            if p.is_file():
                stem = png.rsplit(".", 1)[0]
                out.append(Figure(name, p.read_bytes(), f"{stem} plot of {r.label} (the run's own figure). {cap}",
                                  f"{name}-{len(out) + 1}.png", str(p)))
    return out


def integrity_checks(runs: list[Run], name: str) -> dict[str, dict] | None:
    """{run label: {check name: passed}} of the integrity benchmark's model raw, if any."""
    out = {}
    for r in runs:
        checks = ((r.bench(name) or {}).get("model") or {}).get("checks")
        if isinstance(checks, dict):
            out[r.label] = {k: c.get("passed") for k, c in checks.items() if isinstance(c, dict)}
    return out or None


def build(runs: list[Run], draw: bool = True) -> Report:
    """The report's content for the given runs (footnotes numbered). draw=False uses the runs' own
    PNGs instead of drawing figures (the quick scorecard `mlffbench run` leaves in its OUTDIR)."""
    sections = []
    for name in benchmark_names(runs):
        first = next(r.bench(name) for r in runs if r.bench(name))
        head = headline_metric(name, runs)
        series = series_for(name, runs)
        sections.append(Section(
            name, first.get("title", name), first.get("description", ""),
            {r.label: scorecard_cell(r, name, head) for r in runs},
            {r.label: (r.bench(name) or {}).get("metrics") or {} for r in runs},
            section_figures(name, runs, series, draw),
            integrity_checks(runs, name)))
    return Report(runs, sections, footnotes(sections))


def overall(run: Run) -> str:
    """'mean score 0.85 over 5 scored; 5 passed, 2 failed, 4 not run'."""
    s = run.results.get("summary", {})
    sc = s.get("score")
    return (f"mean score {'n/a' if sc is None else f'{sc:.2f}'} over {s.get('scored', 0)} scored; "
            f"{s.get('passed', 0)} passed, {s.get('failed', 0)} failed, {s.get('not run', 0)} not run")


def run_line(run: Run) -> str:
    """One line about a run: model, dtype, kind, reference, mode."""
    m = run.results.get("model", {})
    members = (m.get("capabilities") or {}).get("members", 1)
    kind = "conservative" if m.get("conservative") else "force-only"
    return (f"{run.label}: model {m.get('name')} ({m.get('dtype')}, {kind}"
            f"{f', committee of {members}' if members and members > 1 else ''}), reference "
            f"{run.results.get('reference', {}).get('name')}, mode {run.results.get('mode')}, {run.outdir}")


def cell_summary(cell: dict) -> str:
    """A cell as one line of text: 'score 0.85: lattice constant rel error 0.06 %' or the state."""
    if cell["state"] != "passed":
        return cell["state"]
    score = "no score" if cell.get("score") is None else f"score {cell['score']:.2f}"
    h = cell.get("headline")
    return f"{score}: {pretty_name(h['metric'])} {fmt_quantity(h, h['metric'])}" if h else score


def metric_spread_note(q: dict, name: str) -> str:
    """Spread details of a metric (n, 95 % interval, whether the error exceeds the committee spread)."""
    note = spread_note(q, name)
    if "exceeds_spread" in q:
        note += ("; " if note else "") + ("error exceeds the spread" if q["exceeds_spread"] else "within the spread")
    if q.get("score_withheld"):
        note += ("; " if note else "") + f"not scored: {q['score_withheld']}"
    return note


def manifest_rows(man: dict) -> list[tuple[str, str]]:
    """The manifest as (key, text) rows, nested dicts flattened one level."""
    rows = []
    for k, v in man.items():
        if k == "config":
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{a}={fmt_num(b, 4) if isinstance(b, float) else b}" for a, b in v.items()
                          if not isinstance(b, (dict, list)))
        elif isinstance(v, float):
            v = fmt_num(v, 4)
        rows.append((k, str(v)))
    return rows


def to_json(report: Report, figure_dir: str | None = None) -> dict:
    """The report for machines: scorecard + metrics (value, unit, spread, score) + figure captions."""
    return {
        "report_version": REPORT_VERSION,
        "runs": [{"label": r.label, "outdir": str(r.outdir), "model": r.results.get("model", {}),
                  "reference": {k: r.results.get("reference", {}).get(k) for k in ("name", "id", "dtype")},
                  "mode": r.results.get("mode"), "summary": r.results.get("summary", {})} for r in report.runs],
        "scorecard": {s.name: {label: {k: v for k, v in c.items()} for label, c in s.cells.items()}
                      for s in report.sections},
        "benchmarks": {s.name: {"title": s.title, "headline_metric": next(
            (c["headline"]["metric"] for c in s.cells.values() if c.get("headline")), None),
            "metrics": {label: {k: {f: v for f, v in m.items() if f != "rationale"} for k, m in ms.items()}
                        for label, ms in s.metrics.items()},
            "figures": [{"caption": f.caption, "source": f.source,
                         **({"file": f"{figure_dir}/{f.file}"} if figure_dir else {})} for f in s.figures]}
            for s in report.sections},
        "footnotes": report.footnotes,
    }
