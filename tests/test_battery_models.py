"""The battery on models that are not `lj`: compare, scores and declared metrics exercised.

`lj/smooth` (a different pair function, exact numbers known) runs the cheap crystal benchmarks;
its errors against lj/cut/shift are checked against an independent numpy lattice sum of both pair
functions. One shared run per session (module fixture)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from scipy.optimize import minimize_scalar

from mlffbench.benchmarks import PASSED, battery
from mlffbench.benchmarks.runner import RunConfig, run_battery
from mlffbench.config import load_config
from mlffbench.units import ARGON

ROOT = Path(__file__).resolve().parents[1]
CHEAP = ["lattice_constant", "cohesive_energy", "vacancy_formation"]
RC, R_ON = 2.5, 2.0  # lj/smooth switch from 0.8 rc (the factory default)


@pytest.fixture(scope="module")
def smooth_run(tmp_path_factory) -> dict:
    cfg = load_config(RunConfig, ROOT / "configs" / "run-quick.yaml")
    out = tmp_path_factory.mktemp("smooth") / "run"
    res = run_battery(cfg, out, model_spec="lj/smooth", select=CHEAP, log=lambda m: None)
    res["outdir"] = out
    return res


def _pair(r, smooth: bool):
    """LJ (epsilon, sigma = 1): cut and shifted at rc, or multiplied by jax-md's C1 switch."""
    phi = 4 * (r ** -12 - r ** -6)
    if not smooth:
        return np.where(r < RC, phi - 4 * (RC ** -12 - RC ** -6), 0.0)
    s = (RC ** 2 - r ** 2) ** 2 * (RC ** 2 + 2 * r ** 2 - 3 * R_ON ** 2) / (RC ** 2 - R_ON ** 2) ** 3
    return np.where(r < R_ON, phi, np.where(r < RC, phi * s, 0.0))


def _lattice(smooth: bool) -> tuple[float, float]:
    """(a0 (sigma), energy per atom (epsilon)) of the infinite FCC crystal by a direct lattice sum."""
    g = np.arange(-5, 6)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    keep = ((x + y + z) % 2 == 0) & ((x ** 2 + y ** 2 + z ** 2) > 0)
    d = np.sqrt(x[keep] ** 2 + y[keep] ** 2 + z[keep] ** 2) / 2  # distances in units of a

    def e(a):
        return 0.5 * float(np.sum(_pair(a * d, smooth)))

    res = minimize_scalar(e, bounds=(1.4, 1.7), method="bounded", options={"xatol": 1e-10})
    return float(res.x), float(res.fun)


def test_reference_alongside_gives_the_numbers_of_one_after_the_other(smooth_run, tmp_path):
    """The fixture's run computes each reference in a second thread (the default); run one after
    the other, every stored number is the same, bit for bit."""
    cfg = load_config(RunConfig, ROOT / "configs" / "run-quick.yaml").model_copy(update={"reference_alongside": False})
    serial = run_battery(cfg, tmp_path / "serial", model_spec="lj/smooth", select=["vacancy_formation"],
                         log=lambda m: None)["benchmarks"]["vacancy_formation"]
    alongside = smooth_run["benchmarks"]["vacancy_formation"]
    assert serial["state"] == alongside["state"] == PASSED
    assert len(_numbers(serial["model"])) > 10  # E_f, a0, energies, relaxation residuals, ...
    for part in ("reference", "model", "metrics"):
        assert _numbers(serial[part]) == _numbers(alongside[part]), part


def _numbers(tree, path=""):
    """{path: value} of every number in a result, timings left out."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() if "second" not in key and "time" not in key
                for k, v in _numbers(sub, f"{path}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in _numbers(sub, f"{path}[{i}]").items()}
    return {path: tree} if isinstance(tree, (int, float)) and not isinstance(tree, bool) else {}


def test_smooth_lj_battery_compares_and_scores(smooth_run):
    reg = battery()
    for name in CHEAP:
        res = smooth_run["benchmarks"][name]
        assert res["state"] == PASSED, (name, res.get("reason"))
        for metric, decl in reg[name].metrics.items():  # every declared metric produced, unit as declared
            assert metric in res["metrics"], (name, metric, sorted(res["metrics"]))
            m = res["metrics"][metric]
            assert m["unit"] == decl.unit, (name, metric)
            if decl.scored:
                assert 0.0 <= m["score"] <= 1.0, (name, metric, m)
        assert res["score"] is not None and 0.0 <= res["score"] <= 1.0


def test_smooth_lj_errors_match_independent_lattice_sums(smooth_run):
    """The switch removes attraction between 0.8 rc and rc: a weaker crystal than lj/cut/shift (a0 0.055 % smaller)."""
    a_s, e_s = _lattice(True)
    a_c, e_c = _lattice(False)
    b = smooth_run["benchmarks"]
    rel_a = b["lattice_constant"]["metrics"]["lattice_constant_rel_error"]
    assert abs(rel_a["signed"] - (a_s - a_c) / a_c) < 1e-6
    de = b["cohesive_energy"]["metrics"]["cohesive_energy_error"]  # meV/atom, cohesive energy = -E/atom
    assert de["unit"] == "meV/atom"
    assert abs(de["value"] - (-(e_s - e_c)) * ARGON.epsilon_ev * 1e3) < 1e-3
    assert abs(de["value"]) > 1.0  # a real difference, not a self-comparison


def test_report_renders_failed_not_run_and_scored_benchmarks_with_missing_plots(smooth_run, tmp_path):
    """A run whose benchmarks are scored, failed and not run, with every plot file gone, renders
    in Markdown and HTML (the report's own tests check the content in detail)."""
    run = tmp_path / "run"
    shutil.copytree(smooth_run["outdir"], run)
    for png in run.rglob("*.png"):
        png.unlink()
    results = json.loads((run / "results.json").read_text())
    b = results["benchmarks"]
    b["cohesive_energy"].update(state="failed", reason="model: did not converge (edited)", metrics={}, score=None)
    b["hop_rates"] = {**b.get("hop_rates", {}), "name": "hop_rates", "state": "not run",
                      "reason": "deselected (edited)", "metrics": {}, "score": None}
    (run / "results.json").write_text(json.dumps(results))
    for fmt in ("md", "html"):
        code, out = run_cli(["report", str(run), "--format", fmt, "-o", str(tmp_path / f"r.{fmt}")])
        assert code == 0, out
        text = (tmp_path / f"r.{fmt}").read_text()
        assert "lattice_constant" in text and "cohesive_energy" in text and "did not converge" in text


# --- the battery on a tiny trained model (`mlffbench run --model DIR`, as a user runs it)
TRAINED_CHEAP = ["lattice_constant", "cohesive_energy"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> dict:
    """A 1-block, 8-feature SchNet trained 20 epochs on 32-atom LJ crystals, then the cheap crystal
    benchmarks on it through the CLI."""
    from mlffbench.config import validate
    from mlffbench.io import save_dataset_npz
    from mlffbench.training.config import TrainConfig
    from mlffbench.training.toy import lj_toy_dataset
    from mlffbench.workflows.train import run_train

    root = tmp_path_factory.mktemp("trained")
    save_dataset_npz(root / "d.npz", lj_toy_dataset(2, kTs=(0.05, 0.1, 0.08, 0.5), frames_per_T=4, seed=1))
    cfg = validate(TrainConfig, {
        "seed": 3, "units": {"system": "lj"},
        "model": {"architecture": "schnet", "hparams": {"features": 8, "n_blocks": 1, "n_basis": 8}},
        "splits": {"train": {"trajectories": [0, 1]}, "val": {"trajectories": [2]},
                   "test": {"hot": {"temperature_K": [0.4, 1.0]}}},
        "loss": {"energy_weight": 0.1},
        "optim": {"epochs": 20, "batch_size": 4, "learning_rate": 0.01, "warmup_epochs": 0, "patience": 100}})
    run_train(cfg, root / "d.npz", root / "train")
    out = root / "run"
    args = ["run", "-c", str(ROOT / "configs" / "run-quick.yaml"), "-o", str(out), "-m", str(root / "train" / "model"),
            "-q"] + [x for name in TRAINED_CHEAP for x in ("-b", name)]
    code, log = run_cli(args)
    assert code == 0, log
    return json.loads((out / "results.json").read_text())


def test_trained_model_battery_declared_metrics_and_scores(trained_run):
    reg = battery()
    for name in TRAINED_CHEAP:
        res = trained_run["benchmarks"][name]
        assert res["state"] == PASSED, (name, res.get("reason"))
        assert set(res["metrics"]) == set(reg[name].metrics), (name, sorted(res["metrics"]))
        for metric, decl in reg[name].metrics.items():
            m = res["metrics"][metric]
            assert m["unit"] == decl.unit, (name, metric)
            if decl.scored:
                assert 0.0 <= m["score"] <= 1.0, (name, metric, m)
        assert 0.0 <= res["score"] <= 1.0


def test_trained_model_compare_equals_raw_differences_and_lj_equals_lattice_sum(trained_run):
    """Each metric recomputed from the two raw values in results.json; LJ's raw values against an
    independent numpy lattice sum of lj/cut/shift (exact for a periodic cell with L > 2 rc)."""
    b = trained_run["benchmarks"]
    a_m = b["lattice_constant"]["model"]["lattice_constant"]
    a_r = b["lattice_constant"]["reference"]["lattice_constant"]
    met = b["lattice_constant"]["metrics"]
    assert abs(met["lattice_constant_error"]["value"] - (a_m["value"] - a_r["value"])) < 1e-12
    assert abs(met["lattice_constant_rel_error"]["value"] - abs(a_m["value"] - a_r["value"]) / a_r["value"]) < 1e-12
    e_m = b["cohesive_energy"]["model"]["cohesive_energy"]
    e_r = b["cohesive_energy"]["reference"]["cohesive_energy"]
    met = b["cohesive_energy"]["metrics"]
    assert abs(met["cohesive_energy_error"]["value"] - (e_m["value"] - e_r["value"]) * 1e3) < 1e-9
    assert abs(met["cohesive_energy_rel_error"]["value"] - abs(e_m["value"] - e_r["value"]) / abs(e_r["value"])) < 1e-12
    a_c, e_c = _lattice(False)
    assert abs(a_r["reduced"] - a_c) < 1e-5 * a_c
    assert abs(e_r["reduced"] - (-e_c)) < 1e-6 * abs(e_c)
    assert abs(a_m["reduced"] - a_c) > 1e-6  # the model is not LJ: a real comparison
