"""The report as one self-contained HTML page: scorecard heat map, one section per benchmark
(figure embedded as base64 PNG, caption, scored metrics, details collapsed), manifests collapsed."""

from __future__ import annotations

from html import escape

from mlffbench.plotting import score_color
from mlffbench.report.content import (
    Report,
    Section,
    cell_summary,
    manifest_rows,
    metric_spread_note,
    overall,
    run_line,
)
from mlffbench.report.fmt import fmt_quantity, pretty_name

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.runs{margin:.3em 0 1em;padding-left:1.2em;font-size:90%;color:#444}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #d0d0d0;padding:4px 8px;font-size:90%;vertical-align:top;text-align:left}
th{background:#f3f3f3}
table.heatmap td.hm-cell{min-width:150px;text-align:center;vertical-align:middle}
table.heatmap th.bench{white-space:nowrap}
table.heatmap th.bench a{color:#222;text-decoration:none}
table.heatmap th.bench small{font-weight:normal;color:#666}
.hm-cell .score{font-size:130%;font-weight:bold;display:block}
.hm-cell .head{font-size:85%}
td.hm-failed{background:repeating-linear-gradient(45deg,#d6d6d6,#d6d6d6 6px,#f7f7f7 6px,#f7f7f7 12px);
color:#8a2a0a;font-weight:bold}
td.hm-notrun{background:#f4f4f4;color:#777;font-style:italic}
td.hm-noscore{background:#ffffff;color:#333}
tfoot td{font-size:85%;color:#333;background:#fafafa}
.legend{font-size:85%;color:#444;margin:.3em 0 .8em}
.legend .bar{display:inline-block;width:160px;height:12px;vertical-align:middle;border:1px solid #999;
margin:0 .4em}
.legend .sw{display:inline-block;width:28px;height:12px;vertical-align:middle;border:1px solid #999;margin:0 .3em 0 1em}
ol.footnotes{font-size:85%;color:#444}
figure{margin:.8em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:88%;color:#333;max-width:760px}
.state-failed{color:#8a2a0a;font-weight:bold}.state-notrun{color:#777;font-style:italic}
.desc{color:#444}
details{margin:.4em 0}summary{cursor:pointer;color:#0b4f8a}
.rationale{color:#555;font-size:85%}
"""


def _gradient() -> str:
    stops = ", ".join(score_color(x / 4)[0] for x in range(5))
    return f"linear-gradient(to right, {stops})"


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table of already-escaped cell HTML."""
    h = "".join(f"<th>{c}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{f' class={cls!r}' if cls else ''}><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def heat_cell(name: str, label: str, cell: dict) -> str:
    """One heat-map <td>: coloured by score; failed hatched, not run grey; reason as title + note."""
    attrs = f'data-benchmark="{escape(name)}" data-run="{escape(label)}"'
    note = f'<sup><a href="#fn-{cell["note"]}">[{cell["note"]}]</a></sup>' if cell.get("note") else ""
    if cell["state"] != "passed":
        cls = "hm-failed" if cell["state"] == "failed" else "hm-notrun"
        return (f'<td class="hm-cell {cls}" {attrs} title="{escape(cell["reason"] or cell["state"])}">'
                f'{escape(cell["state"])}{note}</td>')
    h = cell.get("headline")
    head = f'<span class="head">{escape(pretty_name(h["metric"]))}: {escape(fmt_quantity(h, h["metric"]))}</span>' \
        if h else '<span class="head">no scored metric</span>'
    if cell.get("score") is None:
        return f'<td class="hm-cell hm-noscore" {attrs} title="{escape(cell_summary(cell))}">' \
               f'<span class="score">–</span>{head}</td>'
    bg, fg = score_color(cell["score"])
    tip = cell_summary(cell) + (f" ({metric_spread_note(h, h['metric'])})" if h and metric_spread_note(h, h["metric"])
                                else "")
    return (f'<td class="hm-cell hm-passed" {attrs} style="background:{bg};color:{fg}" '
            f'title="{escape(tip)}"><span class="score">{cell["score"]:.2f}</span> {head}</td>')


def heatmap(report: Report) -> str:
    """The scorecard: one row per benchmark, one cell per run, then the overall row."""
    head = "".join(f"<th>{escape(r.label)}</th>" for r in report.runs)
    rows = []
    for s in report.sections:
        cells = "".join(heat_cell(s.name, r.label, s.cells[r.label]) for r in report.runs)
        rows.append(f'<tr><th class="bench" scope="row"><a href="#b-{escape(s.name)}">{escape(s.name)}</a><br>'
                    f'<small>{escape(s.title)}</small></th>{cells}</tr>')
    foot = "".join(f"<td>{escape(overall(r))}</td>" for r in report.runs)
    table = (f'<table class="heatmap"><thead><tr><th>benchmark</th>{head}</tr></thead><tbody>{"".join(rows)}'
             f'</tbody><tfoot><tr><th>overall</th>{foot}</tr></tfoot></table>')
    legend = (f'<p class="legend">score 0<span class="bar" style="background:{_gradient()}"></span>1 '
              f'(1: within the good threshold of LJ, 0: beyond bad; headline: the first scored metric, '
              f'± one standard deviation where a spread exists)'
              f'<span class="sw" style="background:repeating-linear-gradient(45deg,#d6d6d6,#d6d6d6 4px,#f7f7f7 4px,'
              f'#f7f7f7 8px)"></span>failed<span class="sw" style="background:#f4f4f4"></span>not run</p>')
    notes = "".join(f'<li id="fn-{n["n"]}" value="{n["n"]}">{escape(n["reason"])} '
                    f'<span class="rationale">({escape(", ".join(n["cells"]))})</span></li>'
                    for n in report.footnotes)
    return table + legend + (f'<ol class="footnotes">{notes}</ol>' if notes else "")


def metrics_tables(s: Section, labels: list[str]) -> str:
    """Scored metrics in the open (value ± std, score, thresholds, rationale); all metrics collapsed."""
    names = list(dict.fromkeys(k for label in labels for k in s.metrics[label]))
    scored = [k for k in names if any("good" in s.metrics[label].get(k, {}) for label in labels)]

    def val(label, k, with_score):
        q = s.metrics[label].get(k)
        if not q:
            return ""
        text = escape(fmt_quantity(q, k))
        note = metric_spread_note(q, k)
        if note:
            text = f'<span title="{escape(note)}">{text}</span>'
        if with_score and q.get("score") is not None:
            text += f" <small>(score {q['score']:.2f})</small>"
        return text

    out = ""
    if scored:
        rows = []
        for k in scored:
            th = next(s.metrics[label][k] for label in labels if "good" in s.metrics[label].get(k, {}))
            bounds = f"{fmt_quantity({'value': th['good'], 'unit': th.get('unit')}, k)} / " \
                     f"{fmt_quantity({'value': th['bad'], 'unit': th.get('unit')}, k)}"
            rows.append([escape(pretty_name(k))] + [val(label, k, True) for label in labels]
                        + [escape(bounds), f'<span class="rationale">{escape(th.get("rationale", ""))}</span>'])
        out += _table(["metric"] + [escape(x) for x in labels] + ["good / bad", "why"], rows)
    if len(names) > len(scored):
        rows = [[escape(pretty_name(k))] + [val(label, k, False) for label in labels] for k in names]
        out += (f"<details><summary>all {len(names)} metrics</summary>"
                f"{_table(['metric'] + [escape(x) for x in labels], rows)}</details>")
    return out


def section_html(s: Section, labels: list[str]) -> str:
    parts = [f'<section id="b-{escape(s.name)}"><h3>{escape(s.name)}: {escape(s.title)}</h3>']
    if s.description:
        parts.append(f'<p class="desc">{escape(s.description)}</p>')
    states = [(label, c) for label, c in s.cells.items() if c["state"] != "passed"]
    if states:
        parts.append("<ul>" + "".join(
            f'<li>{escape(label)}: <span class="state-{c["state"].replace(" ", "")}">{escape(c["state"])}</span>'
            f'{": " + escape(c["reason"]) if c["reason"] else ""}</li>' for label, c in states) + "</ul>")
    for f in s.figures:
        parts.append(f'<figure><img alt="{escape(s.name)} figure" src="{f.data_uri}">'
                     f"<figcaption>{escape(f.caption)}</figcaption></figure>")
    if s.checks:
        checks = list(dict.fromkeys(k for c in s.checks.values() for k in c))
        mark = {True: "pass", False: "FAIL", None: "n/a"}
        parts.append(_table(["check"] + [escape(x) for x in s.checks],
                            [[escape(pretty_name(k))] + [mark[c.get(k)] for c in s.checks.values()] for k in checks]))
    parts.append(metrics_tables(s, labels))
    parts.append("</section>")
    return "".join(parts)


def render_html(report: Report) -> str:
    """The whole page."""
    labels = [r.label for r in report.runs]
    runs = "".join(f"<li>{escape(run_line(r))}</li>" for r in report.runs)
    parts = [(f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(report.title)}</title>"
              f"<style>{STYLE}</style></head><body><h1>{escape(report.title)}</h1><ul class='runs'>{runs}</ul>"),
             "<h2>Scorecard</h2>", heatmap(report), "<h2>Benchmarks</h2>"]
    parts += [section_html(s, labels) for s in report.sections if any(c["state"] != "not run" for c in s.cells.values())]
    parts.append("<h2>Manifests</h2>")
    for r in report.runs:
        rows = [[escape(k), escape(v)] for k, v in manifest_rows(r.manifest)]
        parts.append(f"<details><summary>manifest of {escape(r.label)}</summary>{_table(['key', 'value'], rows)}"
                     f"</details>")
    parts.append("</body></html>")
    return "\n".join(parts)

