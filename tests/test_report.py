"""`mlffbench report` read as a reader meets it: the HTML parsed (heat map, images, captions, no
Markdown left), the JSON beside it, the Markdown with the same content, bad input, and (slow,
where Chromium is installed) a headless-browser screenshot.

The inputs are hand-written results.json files: scored, failed and not-run benchmarks, a benchmark
absent from one run, a committee (members) and MD replicas with spread, Poisson intervals, a
missing plot, and a run PNG the report must embed.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from mlffbench.plotting import axis_label
from mlffbench.report import write_report
from mlffbench.report.fmt import fmt_quantity

ROOT = Path(__file__).resolve().parents[1]
A_LJ, A_MODEL = 5.2687, 5.3900   # Å


def q(value, unit, **extra):
    return {"value": value, "unit": unit, **extra}


def curve(a0, depth):
    a = np.linspace(0.96, 1.06, 11) * a0
    return {"a": a.tolist(), "energy_per_atom": (-depth + 0.5 * (a - a0) ** 2).tolist(), "unit": "Å, eV/atom"}


def rdf(shift):
    r = np.linspace(0.5, 8.0, 40)
    g = np.exp(-((r - 3.7 - shift) ** 2) / 0.05) * 6
    return {"r_A": r.tolist(), "g": g.tolist(), "g_replicas": [(g * 0.95).tolist(), (g * 1.05).tolist()]}


def md_raw(a, source, shift=0.0):
    return {"n_atoms": 108, "lattice_constant": q(a, "Å"), "lattice_constant_source": source,
            "temperatures": {"40K": {"temperature_K": 40.0, "mean_T": q(39.0, "K", std=0.4), "rdf": rdf(shift)}}}


def bins(rmse):
    return [{"T_low_K": lo, "T_high_K": hi, "frames": 8, "force_rmse": q(rmse * (1 + k), "eV/Å"),
             "force_std": q(0.05 * (1 + k), "eV/Å")} for k, (lo, hi) in enumerate(((0, 40), (40, 90)))]


def vdos_run(T):
    nu = np.linspace(0, 1.5, 30)   # 1/tau
    return {"temperature": q(T, "K"), "status": "ok", "_arrays": {"nu": nu.tolist(), "vdos": np.sin(nu * 2).tolist()}}


def scored(value, unit, score, **extra):
    return {"value": value, "unit": unit, "score": score, "good": 0.001, "bad": 0.02,
            "rationale": "a threshold with its reason", **extra}


def bench(state, reason="", model=None, reference=None, metrics=None, score=None, plots=(), settings=None):
    return {"title": "a title", "description": "what it does", "state": state, "reason": reason,
            "model": model or {}, "reference": reference or {}, "metrics": metrics or {}, "score": score,
            "plots": list(plots), "settings": settings or {"enabled": True, "modes": ["quick"]}}


def results(spec, benchmarks, dtype="float64"):
    return {"results_version": 1, "mode": "quick",
            "model": {"spec": spec, "name": spec, "kind": "gnn", "dtype": dtype, "conservative": True,
                      "capabilities": {"members": 2}},
            "reference": {"id": "ref-1", "name": "lj/cut/shift", "dtype": "float64"},
            "units": {"tau_ps": 2.15345}, "summary": {"passed": 3, "failed": 1, "not run": 1, "scored": 2,
                                                      "score": 0.5}, "benchmarks": benchmarks}


def lattice_bench(a, score, std):
    members = [{"lattice_constant": q(a - 0.01, "Å"), "energy_curve": curve(a - 0.01, 0.080)},
               {"lattice_constant": q(a + 0.01, "Å"), "energy_curve": curve(a + 0.01, 0.082)}]
    return bench("passed", model={"lattice_constant": q(a, "Å"), "n_cells": 3, "energy_curve": curve(a, 0.081),
                                  "members": members},
                 reference={"lattice_constant": q(A_LJ, "Å"), "n_cells": 3, "energy_curve": curve(A_LJ, 0.080)},
                 metrics={"lattice_constant_rel_error": scored(abs(a - A_LJ) / A_LJ, "1", score, std=std, n=2,
                                                               ci95=[0.01, 0.03]),
                          "lattice_constant_error": q(a - A_LJ, "Å")},
                 score=score, settings={"enabled": True, "modes": ["quick"], "n_cells": 3})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    base = tmp_path_factory.mktemp("runs")
    rates = {"80K": {"temperature": q(80.0, "K"), "hops": 9, "total_hop_rate": q(0.02, "1/ps", ci95=[0.009, 0.038])},
             "100K": {"temperature": q(100.0, "K"), "hops": 30, "total_hop_rate": q(0.09, "1/ps", ci95=[0.06, 0.13])}}
    htst = {"temperatures": q([80.0, 100.0], "K"), "total_vacancy_hop_rate": q([0.015, 0.08], "1/ps"),
            "prefactor": q(2.0, "THz")}
    a = {"integrity": bench("passed", model={"checks": {"forces_are_gradient": {"passed": True},
                                                        "smooth_at_cutoff": {"passed": False}}},
                            reference={"checks": {}}, metrics={"fraction_failed": q(0.5, "1")},
                            plots=["dimer.png"]),
         "md_stability": bench("passed", model=md_raw(A_LJ, "reference (LJ) 0 K a0", 0.05),
                               reference=md_raw(A_LJ, "own 0 K a0"),
                               metrics={"rdf_distance": scored(0.04, "1", 0.7, std=0.01, n=2)}, score=0.7,
                               settings={"enabled": True, "modes": ["quick"], "config": "configs/md-quick.yaml",
                                         "overrides": {"system.supercell": 3, "save_trajectory": False}}),
         "lattice_constant": lattice_bench(A_MODEL, 0.3, 0.002),
         "migration_barrier": bench("failed", "model: string method did not converge: not converged",
                                    reference={"path": {"arc_length": [0, 0.5, 1.0],
                                                        "energy": q([0.0, 0.061, 0.0], "eV")}}),
         "pdos_0k": bench("passed", model={"nu_max": q(2.0, "THz")}, reference={"nu_max": q(1.99, "THz")},
                          metrics={"dos_w1_rel": scored(0.01, "1", 0.4)}, score=0.4, plots=["pdos.png"]),
         "hop_rates": bench("not run", "deselected (not in -b)")}
    b = {"md_stability": bench("failed", "model: melted at 1.2 ps (40K)", model=md_raw(A_LJ, "reference (LJ) 0 K a0"),
                               reference=md_raw(A_LJ, "own 0 K a0")),
         "lattice_constant": lattice_bench(5.30, 0.8, 0.001),
         "hop_rates": bench("passed", model={"rates": rates, "n_atoms": 107}, reference={"rates": rates, "n_atoms": 107},
                            metrics={"rate_log10_error": scored(0.1, "1", 1.0, std=0.05)}, score=1.0),
         "htst_rate": bench("passed", model=htst, reference=htst, metrics={"prefactor_log10_error": scored(0.0, "1", 1.0)},
                            score=1.0),
         "test_errors": bench("passed", model={"bins": bins(0.01)}, reference={"bins": bins(1e-9)},
                              metrics={"force_rmse_rel_coldest_bin": scored(0.05, "1", 0.5)}, score=0.5),
         "pdos_finite_t": bench("passed", model={"runs": [vdos_run(20.0)]}, reference={"runs": [vdos_run(20.0)]},
                                metrics={"dos_w1_rel": scored(0.01, "1", 0.6)}, score=0.6),
         "vacancy_formation": bench("passed", model={"cells": {"n3": {"n_atoms": "107"}}}, reference={"cells": {}})}
    out = []
    for name, spec, doc, dtype in (("alpha", "models/alpha", a, "float32"), ("beta", "models/beta", b, "float64")):
        d = base / name
        (d / "benchmarks" / "integrity").mkdir(parents=True)
        (d / "results.json").write_text(json.dumps(results(spec, doc, dtype)))
        (d / "manifest.json").write_text(json.dumps({"command": "run", "config_hash": f"hash-{name}", "seed": 0,
                                                     "versions": {"jax": "0.4"}}))
        out.append(d)
    from mlffbench.plotting import figure, save

    fig, ax = figure(2, 1.5)
    ax.plot([0, 1], [1, 0])
    save(fig, out[0] / "benchmarks" / "integrity" / "dimer.png")
    return out


class Page(HTMLParser):
    """The parts of the page the tests read: heat-map cells, images, figures, visible text."""

    def __init__(self):
        super().__init__()
        self.cells, self.imgs, self.figures, self.text, self.details = [], [], [], [], 0
        self._stack, self._fig = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._stack.append(tag)
        if tag == "td" and "hm-cell" in (a.get("class") or ""):
            self.cells.append({**a, "text": ""})
        if tag == "img":
            self.imgs.append(a["src"])
            if self._fig is not None:
                self._fig["img"] = True
        if tag == "figure":
            self._fig = {"img": False, "caption": ""}
        if tag == "details":
            self.details += 1

    def handle_endtag(self, tag):
        while self._stack and self._stack.pop() != tag:
            pass
        if tag == "figure":
            self.figures.append(self._fig)
            self._fig = None

    def handle_data(self, data):
        if "style" in self._stack:
            return
        self.text.append(data)
        if "td" in self._stack and self.cells and self._stack.count("td") and "tbody" in self._stack:
            self.cells[-1]["text"] += data
        if self._fig is not None and "figcaption" in self._stack:
            self._fig["caption"] += data


@pytest.fixture(scope="module")
def page(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "cmp.html"
    write_report(runs, "html", out)
    p = Page()
    p.feed(out.read_text())
    return out, p


def test_html_heat_map_one_cell_per_benchmark_and_run_failed_and_not_run_marked(page):
    _, p = page
    names = ["integrity", "md_stability", "lattice_constant", "migration_barrier", "pdos_0k", "hop_rates", "htst_rate",
             "test_errors", "pdos_finite_t", "vacancy_formation"]
    labels = ["alpha (alpha)", "beta (beta)"]
    got = sorted((c["data-benchmark"], c["data-run"]) for c in p.cells)
    assert got == sorted((n, r) for n in names for r in labels)
    cell = {(c["data-benchmark"], c["data-run"]): c for c in p.cells}
    failed = cell[("md_stability", "beta (beta)")]
    assert "hm-failed" in failed["class"] and failed["title"] == "model: melted at 1.2 ps (40K)"
    assert "hm-notrun" in cell[("migration_barrier", "beta (beta)")]["class"]       # absent from beta
    assert "hm-notrun" in cell[("hop_rates", "alpha (alpha)")]["class"]
    assert "deselected (not in -b)" in cell[("hop_rates", "alpha (alpha)")]["title"]
    ok = cell[("lattice_constant", "alpha (alpha)")]
    assert "hm-passed" in ok["class"] and "background:" in ok["style"]
    # the headline error with its spread: |5.39 - 5.2687| / 5.2687 = 2.302 %, std 0.002 -> 0.20 %
    assert "0.30" in ok["text"] and "2.30 ± 0.20 %" in ok["text"]
    text = "".join(p.text)
    assert "model: melted at 1.2 ps (40K)" in text and "deselected (not in -b)" in text   # footnotes


def test_html_images_decode_figures_captioned_no_markdown_left(page):
    import matplotlib.image as mpimg

    out, p = page
    assert p.imgs and all(src.startswith("data:image/png;base64,") for src in p.imgs)
    for src in p.imgs:
        img = mpimg.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert img.ndim == 3 and img.shape[0] > 10 and img.shape[1] > 10
    # lattice (committee band), md (replica band), migration (failed model: LJ path), hop rates +
    # HTST, test errors, VDOS, integrity's own PNG embedded; pdos_0k has neither arrays nor its PNG,
    # vacancy_formation has raw numbers of another layout: no figure, and no crash
    assert len(p.figures) == len(p.imgs) == 8
    assert all(f["img"] and len(f["caption"].strip()) > 20 for f in p.figures)
    text = "".join(p.text)
    for md in ("**", "](", "|---", "`", "\n#"):
        assert md not in text, md
    assert not re.search(r"\d 1(?![\d.%])", text), "a dimensionless number printed with the unit 1"
    assert p.details >= 2 and "hash-alpha" in out.read_text()   # manifests collapsed at the end


def test_captions_state_cell_lattice_constant_whose_dtype_and_temperature(page):
    _, p = page
    md = next(f["caption"] for f in p.figures if "Radial distribution" in f["caption"])
    assert "3x3x3 FCC, 108 atoms" in md and "a = 5.269 Å (reference (LJ) 0 K a0)" in md
    assert "float32" in md and "40 K" in md and "system.supercell = 3" in md
    assert "save_trajectory" not in md
    lat = next(f["caption"] for f in p.figures if "lattice constant" in f["caption"])
    assert "a = 5.39 Å (own 0 K a0)" in lat and "committee of 2" in lat
    hop = next(f["caption"] for f in p.figures if "Poisson" in f["caption"])
    assert "80, 100 K" in hop


def test_report_json_beside_the_page(page):
    out, _ = page
    doc = json.loads(out.with_suffix(".json").read_text())
    cell = doc["scorecard"]["lattice_constant"]["alpha (alpha)"]
    assert cell["state"] == "passed" and cell["score"] == 0.3
    assert cell["headline"]["metric"] == "lattice_constant_rel_error" and cell["headline"]["unit"] == "1"
    assert cell["headline"]["std"] == 0.002 and cell["headline"]["ci95"] == [0.01, 0.03]
    assert doc["scorecard"]["md_stability"]["beta (beta)"]["reason"] == "model: melted at 1.2 ps (40K)"
    assert doc["scorecard"]["migration_barrier"]["beta (beta)"]["state"] == "not run"
    assert doc["benchmarks"]["md_stability"]["metrics"]["alpha (alpha)"]["rdf_distance"]["std"] == 0.01
    assert all(f["caption"] for b in doc["benchmarks"].values() for f in b["figures"])


def test_markdown_same_content_figures_beside(runs, tmp_path):
    code, out = run_cli(["report", str(runs[0]), str(runs[1]), "--format", "md", "-o", str(tmp_path / "r.md")])
    assert code == 0, out
    md = (tmp_path / "r.md").read_text()
    for name in ("integrity", "md_stability", "lattice_constant", "migration_barrier", "hop_rates", "htst_rate"):
        assert f"| {name} |" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) >= 6 and all((tmp_path / link).is_file() for link in links)
    assert md.count("*Figure: ") == len(links)
    assert "2.30 ± 0.20 %" in md and "model: melted at 1.2 ps (40K)" in md and "hash-beta" in md
    assert (tmp_path / "r.json").is_file()


def test_bad_input_one_line_error_nothing_written(runs, tmp_path):
    code, out = run_cli(["report", str(tmp_path / "nope"), "-o", str(tmp_path / "x.html"), "--format", "html"])
    assert code == 2 and "results.json" in out and not (tmp_path / "x.html").exists()
    code, out = run_cli(["report", str(runs[0]), "-o", str(tmp_path / "x.json")])
    assert code == 2 and not (tmp_path / "x.json").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text("{not json")
    code, out = run_cli(["report", str(broken), "-o", str(tmp_path / "b.md")])
    assert code == 2 and not (tmp_path / "b.md").exists()


def test_dimensionless_shown_without_unit_and_relative_errors_in_percent():
    assert axis_label("normalised arc length", "1") == "normalised arc length"
    assert axis_label("r", "Å") == "r (Å)"
    assert fmt_quantity(q(0.011, "1"), "rdf_distance") == "0.011"
    assert fmt_quantity(q(0.0484, "1", std=0.003), "formation_energy_rel_error") == "4.84 ± 0.30 %"
    assert fmt_quantity(q(3.72, "meV/atom"), "cohesive_energy_error") == "3.72 meV/atom"
    assert fmt_quantity(q(61.234, "meV", std=1.5), "barrier_error") == "61.2 ± 1.5 meV"
    assert fmt_quantity(q(2e-6, "eV/atom/ps", std=3e-7), "drift") == "2.00e-06 ± 3.0e-07 eV/atom/ps"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
def test_screenshot_in_headless_chromium(page, tmp_path):
    out, _ = page
    shot = tmp_path / "shot.png"
    res = subprocess.run(["bash", str(ROOT / "scripts" / "screenshot_report.sh"), str(out), str(shot), "1280,2000"],
                         check=False, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[:2] == (2000, 1280)
    assert img[..., :3].std() > 0.05   # not a blank page


def test_render_md_alone_links_the_runs_own_pngs(runs):
    """`mlffbench run`'s scorecard.md: nothing drawn or written, the run's own (existing) PNGs linked."""
    from mlffbench.report import render

    md = render([runs[0]], "md", report_path=runs[0] / "scorecard.md")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links == ["benchmarks/integrity/dimer.png"]   # pdos.png is listed but missing: skipped
    assert "| lattice_constant |" in md and "hash-alpha" in md


def test_heat_map_hover_gives_the_spread(page):
    _, p = page
    cell = next(c for c in p.cells if (c["data-benchmark"], c["data-run"]) == ("lattice_constant", "alpha (alpha)"))
    assert "n = 2" in cell["title"] and "95 % interval [1, 3] %" in cell["title"]
