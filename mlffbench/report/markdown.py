"""The report as Markdown (terminals, pull requests): the same content as the HTML page, the
figures as PNG files in a folder beside the report."""

from __future__ import annotations

from collections.abc import Callable

from mlffbench.report.content import (
    Figure,
    Report,
    Section,
    cell_summary,
    manifest_rows,
    overall,
    run_line,
)
from mlffbench.report.fmt import fmt_quantity, pretty_name


def md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def md_cell(cell: dict) -> str:
    text = cell_summary(cell)
    return text + (f" [{cell['note']}]" if cell.get("note") else "")


def section_md(s: Section, labels: list[str], link: Callable[[Figure], str]) -> list[str]:
    out = [f"### {s.name}: {s.title}", ""]
    if s.description:
        out += [s.description, ""]
    out += [f"- {label}: {c['state']}" + (f": {c['reason']}" if c["reason"] else "")
            for label, c in s.cells.items() if c["state"] != "passed"]
    for f in s.figures:
        out += ["", f"![{s.name}]({link(f)})", "", f"*Figure: {f.caption}*"]
    if s.checks:
        mark = {True: "pass", False: "FAIL", None: "n/a"}
        checks = list(dict.fromkeys(k for c in s.checks.values() for k in c))
        out += ["", md_table(["check"] + list(s.checks),
                             [[pretty_name(k)] + [mark[c.get(k)] for c in s.checks.values()] for k in checks])]
    names = list(dict.fromkeys(k for label in labels for k in s.metrics[label]))
    if names:
        rows = []
        for k in names:
            th = next((s.metrics[label][k] for label in labels if "good" in s.metrics[label].get(k, {})), None)
            vals = []
            for label in labels:
                q = s.metrics[label].get(k)
                v = fmt_quantity(q, k) if q else ""
                if q and q.get("score") is not None:
                    v += f" (score {q['score']:.2f})"
                vals.append(v)
            bounds = "" if th is None else (f"{fmt_quantity({'value': th['good'], 'unit': th.get('unit')}, k)} / "
                                            f"{fmt_quantity({'value': th['bad'], 'unit': th.get('unit')}, k)}")
            rows.append([pretty_name(k)] + vals + [bounds])
        out += ["", md_table(["metric"] + labels + ["good / bad"], rows)]
    return out + [""]


def render_md(report: Report, link: Callable[[Figure], str]) -> str:
    """The Markdown text; `link(figure)` is the image path written into it."""
    labels = [r.label for r in report.runs]
    parts = [f"# {report.title}", ""] + [f"- {run_line(r)}" for r in report.runs] + ["", "## Scorecard", ""]
    rows = [[s.name] + [md_cell(s.cells[label]) for label in labels] for s in report.sections]
    rows.append(["overall"] + [overall(r) for r in report.runs])
    parts += [md_table(["benchmark"] + labels, rows), ""]
    parts += [("Score 1: within the good threshold of LJ, 0: beyond bad; the headline is the first scored "
               "metric, ± one standard deviation where a spread exists."), ""]
    parts += [f"{n['n']}. {n['reason']} ({', '.join(n['cells'])})" for n in report.footnotes]
    parts += ["", "## Benchmarks", ""]
    for s in report.sections:
        if any(c["state"] != "not run" for c in s.cells.values()):
            parts += section_md(s, labels, link)
    parts += ["## Manifests", ""]
    for r in report.runs:
        parts += [f"### manifest of {r.label}", "", md_table(["key", "value"], manifest_rows(r.manifest)), ""]
    return "\n".join(parts) + "\n"
