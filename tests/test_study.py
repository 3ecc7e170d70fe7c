"""`mlffbench study` on tiny settings: 2 recipes x 2 committee members, killed and resumed.

What is checked: the table holds every recipe with a committee spread (std from 2 members), the
gain over the baseline is the difference of the two headline errors, a study killed after its
first recipe resumes without regenerating or retraining that recipe, and bad configs are one-line
errors that write nothing.
"""

from __future__ import annotations

import json

import pytest
import yaml

from mlffbench.benchmarks import study as study_mod
from mlffbench.benchmarks.study import StudyConfig, run_study
from mlffbench.errors import UserError

TINY_GENERATE = {"protocol.n_trajectories": 1, "protocol.npt": {"temperature": 10.0, "steps": 100},
                 "protocol.nvt": {"temperature": 10.0, "steps": 100},
                 "protocol.ramp": {"start": 10.0, "stop": 60.0, "steps": 200, "ensemble": "npt"},
                 "protocol.hold": [], "protocol.frame_every": 50, "md.chunk_steps": 100}
TINY_TRAIN = {"optim.epochs": 1, "optim.batch_size": 2,
              "model.hparams": {"features": 8, "n_blocks": 1, "n_basis": 8, "pair_term": True},
              "splits.train": {"phase": "any", "trajectories": [0], "frames": [2, 100]},
              "splits.val": {"trajectories": [0], "frames": [0, 2]}, "splits.test": {}}


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    run_cfg = root / "run.yaml"
    run_cfg.write_text(yaml.safe_dump({
        "generate": {"config": "configs/generate-quick.yaml", "overrides": TINY_GENERATE},
        "train": {"config": "configs/train-quick.yaml", "overrides": TINY_TRAIN},
        "benchmarks": {"lattice_constant": {"n_cells": 2}}}))
    cfg = StudyConfig(run=str(run_cfg), frames=4, members=2, benchmarks=["lattice_constant"],
                      recipes={"paper": {}, "hotter": {"overrides": {"protocol.ramp.stop": 90.0}}})
    return root, cfg


def test_killed_study_resumes_and_writes_the_table(tiny_study, monkeypatch):
    root, cfg = tiny_study
    out = root / "out"
    from mlffbench.benchmarks import runner

    real = runner.run_battery
    calls = []

    def dies_on_second_recipe(rcfg, outdir, **kw):
        calls.append(outdir.name)
        if outdir.name == "hotter" and calls.count("hotter") == 1:
            raise KeyboardInterrupt
        return real(rcfg, outdir, **kw)

    monkeypatch.setattr(runner, "run_battery", dies_on_second_recipe)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, out, log=lambda m: None)
    data_manifest = out / "recipes" / "paper" / "data" / "manifest.json"
    stamp = data_manifest.stat().st_mtime_ns
    model_stamp = (out / "recipes" / "paper" / "train" / "model" / "params.msgpack").stat().st_mtime_ns
    doc = run_study(cfg, out, log=lambda m: None)  # the same command again
    assert data_manifest.stat().st_mtime_ns == stamp  # paper's data was not regenerated
    assert (out / "recipes" / "paper" / "train" / "model" / "params.msgpack").stat().st_mtime_ns == model_stamp

    row = doc["table"]["lattice_constant"]
    assert row["metric"] == "lattice_constant_rel_error"
    paper, hotter = row["tasks"]["paper"], row["tasks"]["hotter"]
    for t in (paper, hotter):
        assert t["state"] == "passed" and t["n"] == 2 and t["std"] >= 0
    assert hotter["gain"] == pytest.approx(paper["value"] - hotter["value"])
    assert hotter["gain_exceeds_noise"] == (abs(hotter["gain"]) > hotter["noise"])
    stored = json.loads((out / "study.json").read_text())
    assert set(stored["tasks"]) == {"paper", "hotter"}
    assert "± " in (out / "study.md").read_text() and (out / "study.png").is_file()
    # the committee really has two different members
    res = json.loads((out / "recipes" / "paper" / "benchmarks" / "lattice_constant" / "result.json").read_text())
    members = res["metrics"]["lattice_constant_rel_error"]["members"]
    assert len(members) == 2 and members[0] != members[1]


def test_bad_study_configs(tmp_path):
    with pytest.raises(Exception, match="baseline"):
        StudyConfig(recipes={"a": {}}, baseline="paper")
    cfg = StudyConfig(recipes={"paper": {}}, benchmarks=["no_such_benchmark"])
    with pytest.raises(UserError, match="unknown benchmark"):
        run_study(cfg, tmp_path / "o", log=lambda m: None)
    cfg = StudyConfig(recipes={"paper": {"config": "nope.yaml"}})
    with pytest.raises(UserError, match="recipes.paper.config"):
        run_study(cfg, tmp_path / "o", log=lambda m: None)
    assert not (tmp_path / "o").exists()
    assert study_mod.plan(StudyConfig(recipes={"paper": {}}, frames=10, learning_curve=[5, 10])) == {
        "paper": (StudyConfig(recipes={"paper": {}}).recipes["paper"], 10),
        "paper@5": (StudyConfig(recipes={"paper": {}}).recipes["paper"], 5)}


def test_study_configs_with_the_new_recipes_validate(tmp_path):
    from pathlib import Path

    from mlffbench.benchmarks.runner import RunConfig, stage_configs
    from mlffbench.config import load_config

    root = Path(__file__).resolve().parents[1]
    for name in ("study-quick", "study-paper"):
        cfg = load_config(StudyConfig, root / "configs" / f"{name}.yaml")
        assert {"paper", "fixed-density", "+hot", "+strain", "+vacancy"} <= set(cfg.recipes)
        base = load_config(RunConfig, root / cfg.run)
        tasks = study_mod.plan(cfg)
        study_mod.validate_recipes(cfg, base, tasks, name)
        gen, train = stage_configs(study_mod.recipe_run_config(cfg, base, *tasks["+strain"]), name)
        assert gen.strain.enabled and not gen.vacancies.in_dataset
        assert train.splits.train.max_frames == cfg.frames and 2000 in train.splits.train.trajectories
        gen, train = stage_configs(study_mod.recipe_run_config(cfg, base, *tasks["+vacancy"]), name)
        assert gen.vacancies.in_dataset and gen.vacancies.n_trajectories >= 1 and not gen.strain.enabled
        assert 1000 in train.splits.train.trajectories
        gen, _ = stage_configs(study_mod.recipe_run_config(cfg, base, *tasks["paper"]), name)
        assert not gen.strain.enabled and gen.vacancies.n_trajectories == 0
    # a bad recipe fails up front, naming the recipe, and writes nothing
    cfg = StudyConfig(run=str(root / "configs/run-quick.yaml"),
                      recipes={"paper": {}, "+strain": {"overrides": {"strain.volume_strains": [0.5]}}})
    with pytest.raises(UserError, match=r"recipes\.\+strain.*volume_strains"):
        run_study(cfg, tmp_path / "o", log=lambda m: None)
    assert not (tmp_path / "o").exists()


def test_headline_error_is_the_members_error_magnitude():
    # members erring in opposite directions must not read as a small error (signed mean 0.1)
    metric = {"value": 0.1, "std": 7.0, "n": 3, "members": [8.7, -4.7, -3.7], "good": 1.0, "unit": "meV/atom"}
    out = study_mod.error_magnitude(metric)
    assert out["value"] == pytest.approx(17.1 / 3) and out["std"] == pytest.approx(7.0 ** 0.5)
    assert out["signed_value"] == 0.1 and out["n"] == 3
    single = study_mod.error_magnitude({"value": -0.2, "unit": "1"})
    assert single["value"] == 0.2 and single["std"] == 0.0
    docs = {t: {"benchmarks": {"b": {"state": "passed", "metrics": {"e": {**metric, "members": ms}}}}}
            for t, ms in (("paper", [8.7, -4.7, -3.7]), ("other", [1.0, -1.0, 2.0]))}
    row = study_mod.compare_recipes(docs, "paper")["b"]["tasks"]["other"]
    assert row["value"] == pytest.approx(4.0 / 3) and row["gain"] == pytest.approx(17.1 / 3 - 4.0 / 3)


def test_a_passed_benchmark_without_a_value_is_a_no_value_cell_not_a_crash():
    # hop_rates passes with rate_log10_error = nan (JSON null) when the model's replicas all stop
    # (melting): the table must say so, and `study` must still write its table (it crashed here)
    from mlffbench.benchmarks.hop_rates import compare_hop_rates, hop_rates_raw
    from mlffbench.benchmarks.runner import committee_metrics

    def vacancy_doc(hops: int, stopped: list[str]) -> dict:  # a `vacancy` result.json, one temperature
        return {"rates": [{"temperature": {"value": 135.0}, "hops": hops, "simulated_time": {"value": 2.0, "unit": "ps"},
                           "total_hop_rate": {"value": hops / 2.0}, "replicas": [{"stopped": s} for s in stopped]}],
                "system": {"n_atoms": 107}, "arrhenius": {}}

    lj = hop_rates_raw(vacancy_doc(9, ["", ""]))
    melted = hop_rates_raw(vacancy_doc(0, ["19 empty lattice sites ...; replica stopped", "", "4 empty ..."]))
    note = "no temperature with hops in both runs (2 model replicas stopped: Frenkel pair or melting)"
    assert compare_hop_rates(melted, lj)["rate_log10_error"]["note"] == note
    per_member = [compare_hop_rates(melted, lj) for _ in range(3)]
    metric = {**committee_metrics(per_member)["rate_log10_error"], "good": 0.15}
    assert metric["note"] == note
    docs = {t: {"benchmarks": {"hop_rates": {"state": "passed", "metrics": {"rate_log10_error": m}}}}
            for t, m in (("paper", {**metric, "value": None}), ("other", {"value": 0.3, "unit": "1", "good": 0.15}))}
    table = study_mod.compare_recipes(docs, "paper")
    cell = table["hop_rates"]["tasks"]["paper"]
    assert cell["state"] == "no value" and "value" not in cell and "melting" in cell["reason"]
    assert "gain" not in table["hop_rates"]["tasks"]["other"]
    md = study_mod.markdown_table(table, ["paper", "other"], "paper")
    assert "| hop_rates: rate_log10_error | no value | 0.3 |" in md and f"- no value, `paper` hop_rates: {note}" in md
    # one member of three with hops: its value, marked as one member's
    docs["other"]["benchmarks"]["hop_rates"]["metrics"]["rate_log10_error"]["members"] = [0.3, None, None]
    md = study_mod.markdown_table(study_mod.compare_recipes(docs, "paper"), ["paper", "other"], "paper")
    assert "| 0.3 (1 of 3 members) |" in md


def test_value_rows_whole_committee_cells_and_shared_dataset(tmp_path):
    # an unscored extra metric is a signed value row without gain; a whole-committee metric (no
    # members) has no spread, so whether its gain beats the noise is unknown (None), not True
    def doc(lat_members, rho, log_ratio):
        return {"benchmarks": {
            "lattice_constant": {"state": "passed", "metrics": {
                "lattice_constant_rel_error": {"value": 0.0, "members": lat_members, "good": 0.01, "unit": "1"}}},
            "calibration": {"state": "passed", "metrics": {
                "spread_to_error_log10_ratio_path": {"value": log_ratio, "good": 0.15, "unit": "1"},
                "spread_error_rank_correlation": {"value": rho, "unit": "1", "n": 9}}}}}
    docs = {"paper": doc([0.02, -0.01, 0.03], -0.4, 0.3), "other": doc([0.01, 0.01, -0.01], 0.8, 0.1)}
    table = study_mod.compare_recipes(docs, "paper", {"calibration": ["spread_error_rank_correlation"]})
    rho = table["calibration: spread_error_rank_correlation"]
    assert rho["kind"] == "value" and rho["tasks"]["paper"]["value"] == -0.4 and "gain" not in rho["tasks"]["other"]
    head = table["calibration"]["tasks"]["other"]
    assert head["gain"] == pytest.approx(0.2) and head["gain_exceeds_noise"] is None
    lat = table["lattice_constant"]["tasks"]["other"]
    assert lat["gain"] == pytest.approx(0.02 - 0.01) and lat["gain_exceeds_noise"] is (abs(lat["gain"]) > lat["noise"])
    md = study_mod.markdown_table(table, ["paper", "other"], "paper")
    assert "| calibration: spread_error_rank_correlation | -0.4 | 0.8 |" in md and "(+0.2?)" in md

    # a task with the same generate config gets the earlier task's dataset (linked), not a new one
    from mlffbench.benchmarks.runner import MARKER as RUN_MARKER
    from mlffbench.config import config_hash

    cfg = StudyConfig(recipes={"paper": {}})
    first = tmp_path / "paper"
    (first / "data").mkdir(parents=True)
    (first / "data" / "dataset.npz").write_bytes(b"frames")
    (first / "data" / "manifest.json").write_text(json.dumps({"config_hash": config_hash(cfg)}))
    assert study_mod.share_dataset(tmp_path / "other", StudyConfig(recipes={"x": {}}, baseline="x"), [first]) is None
    assert study_mod.share_dataset(tmp_path / "lc", cfg, [first]) == first
    assert (tmp_path / "lc" / "data" / "dataset.npz").read_bytes() == b"frames"
    assert (tmp_path / "lc" / RUN_MARKER).is_file() and (tmp_path / "lc" / study_mod.SHARED).read_text().strip() == "paper"
    assert study_mod.share_dataset(tmp_path / "lc", cfg, [first]) is None  # already there


def _pdos_raw(scale: float) -> dict:
    """A `pdos_0k` raw result whose frequencies are LJ-like ones times `scale` (a Gaussian DOS)."""
    import numpy as np

    nu = lambda x: {"reduced": x * scale}  # noqa: E731
    grid = np.linspace(0.0, 2.0, 201)
    dos = np.exp(-0.5 * ((grid - 0.8 * scale) / 0.1) ** 2)
    return {"summary": {"nu_max": nu(1.5), "nu_mean": nu(0.8), "nu2_mean": {"reduced": 0.7 * scale ** 2},
                        "nu_X": {"reduced": [1.0 * scale, 1.0 * scale, 1.5 * scale]},
                        "nu_L": {"reduced": [0.7 * scale, 0.7 * scale, 1.4 * scale]},
                        "lattice_constant": {"reduced": 1.55}, "n_imaginary_modes": 0},
            "grid": grid.tolist(), "dos": dos.tolist(), "nu_gamma": [0.0, 0.8 * scale, 1.5 * scale]}


def test_study_quick_pdos_rows_at_both_lattice_constants_are_committee_cells():
    # study-quick's pdos_0k rows (headline dos_w1_rel, and table_metrics at the model's and LJ's a0)
    # must name metrics compare_pdos_0k reports (a typo would leave a 'no value' row), one value per
    # member, and a cell that is the mean +- std (ddof=1) of the members' |error|
    from pathlib import Path

    import numpy as np

    from mlffbench.benchmarks import battery
    from mlffbench.benchmarks.pdos import compare_pdos_0k
    from mlffbench.benchmarks.runner import committee_metrics
    from mlffbench.benchmarks.scoring import load_thresholds, score_metrics
    from mlffbench.config import load_config

    cfg = load_config(StudyConfig, Path(__file__).resolve().parents[1] / "configs" / "study-quick.yaml")
    assert "pdos_0k" in cfg.benchmarks
    extra = cfg.table_metrics["pdos_0k"]
    assert {"nu_max_rel_error", "dos_w1_rel_at_lj_a0", "nu_max_rel_error_at_lj_a0"} <= set(extra)
    ref = _pdos_raw(1.0)
    scales = {"paper": ([1.3, 0.9, 0.85], [1.04, 0.99, 1.02]), "other": ([1.1, 0.95, 1.05], [1.01, 0.98, 1.0])}
    thresholds = load_thresholds(None, battery())
    docs = {}
    for task, (own, at_lj) in scales.items():
        members = [{**_pdos_raw(a), "at_reference_a0": _pdos_raw(b)} for a, b in zip(own, at_lj)]
        metrics, _ = score_metrics("pdos_0k", committee_metrics([compare_pdos_0k(m, ref) for m in members]),
                                   thresholds)
        docs[task] = {"benchmarks": {"pdos_0k": {"state": "passed", "metrics": metrics}}}
    table = study_mod.compare_recipes(docs, "paper", cfg.table_metrics)
    assert table["pdos_0k"]["metric"] == "dos_w1_rel"
    for suffix, k in (("", 0), ("_at_lj_a0", 1)):
        row = table[f"pdos_0k: nu_max_rel_error{suffix}"]
        assert row["kind"] == "error"
        for task, sc in scales.items():
            want = np.abs(np.asarray(sc[k]) - 1.0)  # nu_max scales with the member's frequencies
            cell = row["tasks"][task]
            assert cell["n"] == 3 and cell["members"] == pytest.approx(list(want))
            assert cell["value"] == pytest.approx(want.mean()) and cell["std"] == pytest.approx(want.std(ddof=1))
        assert row["tasks"]["other"]["gain"] == pytest.approx(row["tasks"]["paper"]["value"]
                                                              - row["tasks"]["other"]["value"])
        w1 = table[f"pdos_0k: dos_w1_rel{suffix}" if suffix else "pdos_0k"]["tasks"]["paper"]
        assert w1["n"] == 3 and len(set(w1["members"])) == 3 and w1["std"] > 0
    md = study_mod.markdown_table(table, list(scales), "paper")
    for label in ("pdos_0k: dos_w1_rel", "pdos_0k: nu_max_rel_error", "pdos_0k: dos_w1_rel_at_lj_a0",
                  "pdos_0k: nu_max_rel_error_at_lj_a0"):
        assert f"| {label} | " in md


def test_a_failed_benchmark_says_why_once_under_the_table():
    # paper@32's pdos_0k failed (a member's crystal is unstable): its four rows read `failed`, and
    # the reason is one line under the table, not four and not none
    docs = {"paper": {"benchmarks": {"pdos_0k": {"state": "passed", "metrics": {
                "dos_w1_rel": {"value": 0.17, "unit": "1", "good": 0.05},
                "nu_max_rel_error": {"value": 0.27, "unit": "1", "good": 0.05}}}}},
            "small": {"benchmarks": {"pdos_0k": {"state": "failed", "metrics": {},
                "reason": "model: member 1: 16351 imaginary modes on the q-mesh (crystal unstable)"}}}}
    table = study_mod.compare_recipes(docs, "paper", {"pdos_0k": ["nu_max_rel_error"]})
    md = study_mod.markdown_table(table, ["paper", "small"], "paper")
    assert "| pdos_0k: dos_w1_rel | 0.17 | failed |" in md
    assert "| pdos_0k: nu_max_rel_error | 0.27 | failed |" in md
    lines = [ln for ln in md.splitlines() if ln.startswith("- failed, `small` pdos_0k:")]
    assert lines == ["- failed, `small` pdos_0k: model: member 1: 16351 imaginary modes on the q-mesh (crystal unstable)"]
