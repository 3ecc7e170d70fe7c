"""Scorecards: `mlffbench run` outputs -> one readable Markdown or HTML report.

With one OUTDIR: scorecard (state, score, headline metric per benchmark), every benchmark's metrics
with their thresholds and rationale, its plots, and the manifest. With several: the same scorecard
side by side (one column per model), then each run's details.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from mlffbench.errors import UserError
from mlffbench.io import read_json

STATE_MARK = {"passed": "passed", "failed": "FAILED", "not run": "not run"}


def load_run(outdir: str | Path) -> tuple[dict, dict]:
    """(results, manifest) of a run directory; UserError if it is not one."""
    out = Path(outdir)
    if not (out / "results.json").is_file():
        raise UserError(f"{out}: no results.json (not an `mlffbench run` output directory)")
    res = read_json(out / "results.json")
    if "benchmarks" not in res:
        raise UserError(f"{out}/results.json: no 'benchmarks' (not an `mlffbench run` result)")
    man = read_json(out / "manifest.json") if (out / "manifest.json").is_file() else {}
    return res, man


def fmt_num(x, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(fmt_num(v, digits) for v in x) + "]"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (int, float)):
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}"
    return str(x)


def cell(r: dict) -> str:
    """Scorecard cell: state, and the score when passed."""
    if r["state"] == "passed":
        return "passed" + ("" if r.get("score") is None else f", score {r['score']:.2f}")
    reason = r.get("reason") or ""
    return f"{STATE_MARK[r['state']]}: {reason}" if reason else STATE_MARK[r["state"]]


def run_label(outdir: Path, res: dict) -> str:
    spec = str(res.get("model", {}).get("spec", "?"))
    return f"{outdir.name} ({Path(spec).name if '/' in spec else spec})"


def scorecard_rows(runs: list[tuple[Path, dict, dict]]) -> tuple[list[str], list[list[str]]]:
    names: list[str] = []
    for _, res, _ in runs:
        for n in res["benchmarks"]:
            if n not in names:
                names.append(n)
    header = ["benchmark"] + [run_label(o, r) for o, r, _ in runs]
    rows = []
    for n in names:
        title = next((r["benchmarks"][n]["title"] for _, r, _ in runs if n in r["benchmarks"]), n)
        rows.append([f"{n} ({title})"] + [cell(r["benchmarks"][n]) if n in r["benchmarks"] else "absent"
                                           for _, r, _ in runs])
    overall = []
    for _, r, _ in runs:
        s = r.get("summary", {})
        sc = s.get("score")
        overall.append(f"{'n/a' if sc is None else f'{sc:.2f}'} over {s.get('scored', 0)} scored; "
                       f"{s.get('passed', 0)} passed, {s.get('failed', 0)} failed, {s.get('not run', 0)} not run")
    rows.append(["**overall**"] + overall)
    return header, rows


def md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def metric_rows(r: dict) -> list[list[str]]:
    rows = []
    for name, m in r.get("metrics", {}).items():
        rng = "" if "good" not in m else f"{fmt_num(m['good'])} / {fmt_num(m['bad'])}"
        rows.append([name, fmt_num(m.get("value")), m.get("unit", ""),
                     "" if m.get("score") is None else f"{m['score']:.2f}", rng, m.get("rationale", "")])
    return rows


def headline_values(raw: dict) -> list[tuple[str, str]]:
    """Top-level {'value', 'unit'} entries of a raw result."""
    out = []
    for k, v in raw.items():
        if isinstance(v, dict) and "value" in v and "unit" in v:
            out.append((k, f"{fmt_num(v['value'])} {v['unit']}"))
    return out


def manifest_rows(man: dict) -> list[list[str]]:
    rows = [[k, str(man.get(k))] for k in ("command", "config_hash", "dataset_sha256", "checkpoint_sha256",
                                           "dtype", "seed", "model_spec") if k in man]
    if "seeds" in man:
        rows.append(["seeds", ", ".join(f"{k}={v}" for k, v in man["seeds"].items())])
    if "versions" in man:
        rows.append(["versions", ", ".join(f"{k} {v}" for k, v in man["versions"].items())])
    if "device" in man:
        rows.append(["device", ", ".join(f"{k}={v}" for k, v in man["device"].items())])
    if "wall_times_s" in man:
        rows.append(["wall times (s)", ", ".join(f"{k} {v:.1f}" for k, v in man["wall_times_s"].items()
                                                if isinstance(v, (int, float)))])
    return rows


def render(outdirs: list[str | Path], fmt: str = "md", report_path: Path | None = None) -> str:
    """The report as a string. `report_path` (where it will be written) makes image links relative."""
    if fmt not in ("md", "html"):
        raise UserError(f"--format must be md or html (got {fmt!r})")
    runs = []
    for o in outdirs:
        res, man = load_run(o)
        runs.append((Path(o), res, man))
    base = (report_path.parent if report_path else Path(outdirs[0])).resolve()
    return _render_md(runs, base) if fmt == "md" else _render_html(runs)


def _render_md(runs, base: Path) -> str:
    title = "mlffbench scorecard" if len(runs) == 1 else "mlffbench comparison"
    parts = [f"# {title}", ""]
    for o, res, _ in runs:
        m = res.get("model", {})
        parts.append(f"- **{run_label(o, res)}**: model `{m.get('name')}` ({m.get('dtype')}, "
                     f"{'conservative' if m.get('conservative') else 'force-only'}), reference "
                     f"`{res.get('reference', {}).get('name')}`, mode {res.get('mode')}")
    parts += ["", "States: *passed* (ran on model and LJ; the score says how close), *FAILED* (with the "
              "reason), *not run* (deselected, unavailable, or impossible for this model). "
              "Scores: 1 = within the `good` threshold of LJ, 0 = beyond `bad` (configs/metrics.yaml).", ""]
    header, rows = scorecard_rows(runs)
    parts += [md_table(header, rows), ""]
    for o, res, man in runs:
        if len(runs) > 1:
            parts += [f"## {run_label(o, res)}", ""]
        for name, r in res["benchmarks"].items():
            if r["state"] == "not run" and not r.get("reference"):
                continue
            parts += [f"### {name}: {r['title']}", "", f"State: **{cell(r)}**", ""]
            if r.get("description"):
                parts += [r["description"], ""]
            vals = [(k, v) for k, v in headline_values(r.get("model", {}))]
            refs = dict(headline_values(r.get("reference", {})))
            if vals or refs:
                keys = list(dict.fromkeys([k for k, _ in vals] + list(refs)))
                mv = dict(vals)
                parts += [md_table(["quantity", "model", "LJ"], [[k, mv.get(k, ""), refs.get(k, "")] for k in keys]), ""]
            mrows = metric_rows(r)
            if mrows:
                parts += [md_table(["metric", "value", "unit", "score", "good / bad", "rationale"], mrows), ""]
            for png in r.get("plots", []):
                path = (o / "benchmarks" / name / png).resolve()
                parts += [f"![{name}]({os.path.relpath(path, base)})", ""]
        parts += ["### manifest" if len(runs) == 1 else f"### manifest ({o.name})", "",
                  md_table(["key", "value"], manifest_rows(man)), ""]
    return "\n".join(parts) + "\n"


def _html_table(header, rows) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _render_html(runs) -> str:
    """Self-contained HTML (plots embedded as base64 PNG)."""
    title = "mlffbench scorecard" if len(runs) == 1 else "mlffbench comparison"
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}th{background:#eee}"
             "img{max-width:520px;margin:4px}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style>"
             f"</head><body><h1>{title}</h1>"]
    header, rows = scorecard_rows(runs)
    parts.append(_html_table(header, rows))
    for o, res, man in runs:
        parts.append(f"<h2>{html.escape(run_label(o, res))}</h2>")
        for name, r in res["benchmarks"].items():
            if r["state"] == "not run" and not r.get("reference"):
                continue
            parts.append(f"<h3>{html.escape(name)}: {html.escape(r['title'])}</h3><p>State: <b>"
                         f"{html.escape(cell(r))}</b></p>")
            mv, refs = dict(headline_values(r.get("model", {}))), dict(headline_values(r.get("reference", {})))
            keys = list(dict.fromkeys(list(mv) + list(refs)))
            if keys:
                parts.append(_html_table(["quantity", "model", "LJ"], [[k, mv.get(k, ""), refs.get(k, "")] for k in keys]))
            mrows = metric_rows(r)
            if mrows:
                parts.append(_html_table(["metric", "value", "unit", "score", "good / bad", "rationale"], mrows))
            for png in r.get("plots", []):
                p = o / "benchmarks" / name / png
                if p.is_file():
                    data = base64.b64encode(p.read_bytes()).decode()
                    parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
        parts.append("<h3>manifest</h3>" + _html_table(["key", "value"], manifest_rows(man)))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(outdirs: list[str | Path], fmt: str = "md", output: str | Path | None = None) -> Path:
    """Render and write the report; default OUTDIR/report.<fmt> (one run) or ./comparison.<fmt>."""
    if output is None:
        output = Path(outdirs[0]) / f"report.{fmt}" if len(outdirs) == 1 else Path(f"comparison.{fmt}")
    output = Path(output)
    text = render(outdirs, fmt, report_path=output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return output
