"""Committee calibration statistic (mlffbench.stats) on synthetic committees whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from mlffbench.stats import calibration, committee_force_spread, force_rms_error


def synthetic(a, b, K=3, N=5, seed=0):
    """Members F0 + t_k a_c x_hat with t = (-1, 0, 1) (sample variance a_c^2 along x, so spread = a_c
    exactly) and truth F0 + b_c y_hat (the member mean is F0, so the error is b_c exactly)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    C = a.size
    F0 = rng.normal(size=(C, N, 3))
    t = np.linspace(-1.0, 1.0, K) / np.sqrt(np.var(np.linspace(-1.0, 1.0, K), ddof=1))
    members = F0[None] + t[:, None, None, None] * a[None, :, None, None] * np.array([1.0, 0, 0])
    truth = F0 + b[:, None, None] * np.array([0, 1.0, 0])
    return members, truth


def test_spread_and_error_are_the_constructed_ones():
    a, b = [0.1, 0.2, 0.4, 0.8], [1.0, 2.0, 3.0, 5.0]
    members, truth = synthetic(a, b)
    np.testing.assert_allclose(committee_force_spread(members), a, rtol=1e-12)
    np.testing.assert_allclose(force_rms_error(members.mean(axis=0), truth), b, rtol=1e-12)


def test_spread_proportional_to_error_gives_the_factor_and_rank_correlation_one():
    b = np.array([0.3, 1.0, 0.2, 2.5, 0.7, 1.4])
    members, truth = synthetic(0.5 * b, b)
    c = calibration(committee_force_spread(members), force_rms_error(members.mean(axis=0), truth))
    assert c["applicable"] and c["n"] == 6
    np.testing.assert_allclose(c["ratio"], 0.5, rtol=1e-12)
    assert abs(c["mean_ratio"] - 0.5) < 1e-12 and abs(c["spearman"] - 1.0) < 1e-12
    # monotone but not proportional: still rank correlation 1; reversed order: -1
    assert abs(calibration(b ** 2, b)["spearman"] - 1.0) < 1e-12
    assert abs(calibration(1.0 / b, b)["spearman"] + 1.0) < 1e-12


def test_independent_noise_has_no_rank_correlation():
    rng = np.random.default_rng(3)
    s, e = rng.lognormal(size=2000), rng.lognormal(size=2000)
    c = calibration(s, e)
    assert abs(c["spearman"]) < 4 / np.sqrt(2000)  # 4 standard errors of rho under independence
    # cross-check with an independent rank computation (Pearson of the ranks)
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    assert abs(c["spearman"] - np.corrcoef(rank(s), rank(e))[0, 1]) < 1e-12


def test_identical_members_give_zero_spread_and_no_statistic():
    members, truth = synthetic(np.zeros(4), [1.0, 2.0, 3.0, 4.0])
    s = committee_force_spread(members)
    assert np.all(s == 0.0)
    c = calibration(s, force_rms_error(members.mean(axis=0), truth))
    assert not c["applicable"] and "identical" in c["reason"]
    assert c["mean_ratio"] is None and c["spearman"] is None
    assert not calibration([0.1, 0.2, 0.3], [0.0, 0.0, 0.0])["applicable"]
    assert np.all(np.isnan(committee_force_spread(members[:1])))  # one member: no spread


# ----------------------------------------------------------------------------------------------
# the calibration benchmark on a committee of two LJ variants (no training)
# ----------------------------------------------------------------------------------------------
NEB_TINY = {"system.supercell": 2, "string.n_images": 5, "string.tol": 1e-3, "string.saddle_polish": False,
            "htst.enabled": False}


def _execute(model, tmp_path, same=False):
    from mlffbench.benchmarks import WorkflowSettings, battery
    from mlffbench.benchmarks import runner as run_wf
    from mlffbench.benchmarks.scoring import load_thresholds
    from mlffbench.potentials import load_potential

    lj = load_potential("lj")
    cfg = run_wf.RunConfig()
    base = {"units": cfg.units.unit_system(), "seed": 0, "mode": "quick", "dataset": None, "dataset_path": None,
            "reference_potential": lj, "progress": False, "run_config": cfg}
    tmp_path.mkdir(parents=True, exist_ok=True)
    bench = battery()["calibration"]
    return run_wf.execute(bench, WorkflowSettings(overrides=NEB_TINY), model, lj, same, tmp_path, base, ({}, {}),
                          load_thresholds())


def _ase_forces(atoms, smooth):
    """ASE's LennardJones in metal units (Ar epsilon, sigma; rc = 2.5 sigma; lj/smooth: ro = 0.8 rc)."""
    from ase.calculators.lj import LennardJones

    from mlffbench.units import ARGON

    s, e = ARGON.sigma_angstrom, ARGON.epsilon_ev
    atoms = atoms.copy()
    atoms.calc = LennardJones(sigma=s, epsilon=e, rc=2.5 * s, ro=2.0 * s, smooth=smooth)
    return atoms.get_forces()


def test_committee_of_two_lj_variants_spread_matches_ase_and_ratio_is_sqrt2(tmp_path, monkeypatch):
    """Members lj/cut/shift and lj/smooth, reference lj/cut/shift (= member 0): with d = F1 - F0 the
    member mean's error is |d|/2 and the K=2 sample spread |d|/sqrt(2), so spread/error = sqrt(2) at
    every configuration and the rank correlation is 1. The spread is recomputed independently from
    ASE's LennardJones forces at the images the benchmark wrote."""
    from ase.io import read

    from mlffbench.benchmarks import PASSED
    from mlffbench.potentials import load_potential
    from mlffbench.potentials.committee import make_committee

    from mlffbench.benchmarks import runner as run_wf

    committee = make_committee([load_potential("lj"), load_potential("lj/smooth")])
    real = run_wf.load_model
    monkeypatch.setattr(run_wf, "load_model", lambda cfg, spec: committee if spec == "two-lj" else real(cfg, spec))
    cfg = run_wf.RunConfig(benchmarks={"calibration": {"overrides": NEB_TINY}})
    doc = run_wf.run_battery(cfg, tmp_path / "run", model_spec="two-lj", select=["calibration"], log=lambda m: None)
    res = doc["benchmarks"]["calibration"]
    assert res["state"] == PASSED, res["reason"]
    assert "calibration" in (tmp_path / "run" / "scorecard.md").read_text()
    raw, m = res["model"], res["metrics"]
    where = tmp_path / "run" / "benchmarks" / "calibration" / "model"
    images = read(str(where / "images.extxyz"), index=":")
    saddle = read(str(where / "saddle.extxyz"))
    assert raw["n_images"] == len(images) == 5
    ase_spread, ase_error = [], []
    for atoms in [*images, saddle]:
        F0, F1 = _ase_forces(atoms, False), _ase_forces(atoms, True)
        d = F1 - F0
        ase_spread.append(np.sqrt(np.mean(np.sum(np.var(np.stack([F0, F1]), axis=0, ddof=1), axis=-1))))
        ase_error.append(np.sqrt(np.mean(np.sum((d / 2) ** 2, axis=-1))))
    assert raw["spread_path"]["unit"] == "eV/Å"
    np.testing.assert_allclose(raw["spread_path"]["value"], ase_spread[:-1], rtol=1e-6)
    np.testing.assert_allclose(raw["error_path"]["value"], ase_error[:-1], rtol=1e-6)
    np.testing.assert_allclose(raw["spread_saddle"]["value"], ase_spread[-1], rtol=1e-6)
    np.testing.assert_allclose(raw["spread_vacancy"]["value"], ase_spread[0], rtol=1e-6)
    assert min(ase_spread) > 0  # the variants differ inside the switch region: a real spread
    for name in ("spread_to_error_ratio_path", "spread_to_error_ratio_saddle", "spread_to_error_ratio_vacancy"):
        assert m[name]["value"] == pytest.approx(np.sqrt(2.0), rel=1e-9), name
    assert m["spread_error_rank_correlation"]["value"] == pytest.approx(1.0, abs=1e-12)
    assert m["spread_to_error_log10_ratio_path"]["value"] == pytest.approx(np.log10(np.sqrt(2.0)), rel=1e-9)
    assert 0.0 < m["spread_to_error_log10_ratio_path"]["score"] < 1.0 and res["score"] is not None
    assert res["reference"].get("note") and "members" not in res["model"]  # one run on the whole committee


def test_single_model_and_lj_itself_are_not_run_with_the_reason(tmp_path):
    from mlffbench.benchmarks import NOT_RUN
    from mlffbench.potentials import load_potential

    for i, (model, same) in enumerate(((load_potential("lj/smooth"), False), (load_potential("lj"), True))):
        res = _execute(model, tmp_path / f"s{i}", same=same)
        assert res["state"] == NOT_RUN and "needs a committee" in res["reason"], res
        assert not (tmp_path / f"s{i}" / "model" / "images.extxyz").exists()  # nothing was computed


def test_identical_members_report_no_ratio_and_no_score():
    """A committee of identical members has no spread: the metrics carry no value and the reason,
    and nothing is scored (calibration() itself is checked on synthetic data above)."""
    from mlffbench.benchmarks import battery
    from mlffbench.benchmarks.calibration import compare_calibration
    from mlffbench.benchmarks.scoring import load_thresholds, score_metrics

    cal = calibration(np.zeros(5), np.ones(5))
    raw = {"calibration": {k: v for k, v in cal.items() if k != "ratio"}, "ratio_saddle": None, "ratio_vacancy": None}
    m = compare_calibration(raw, {})
    assert set(m) == set(battery()["calibration"].metrics)
    assert all(q["value"] is None for q in m.values())
    assert "identical" in m["spread_to_error_ratio_path"]["reason"]
    _, score = score_metrics("calibration", m, load_thresholds())
    assert score is None


def test_a_committee_metric_that_some_members_could_not_compute_is_not_scored():
    # hop_rates: one member counted a hop, two melted (nan): the survivors' value is kept for
    # information, but a score from it would grade the survivors, not the committee
    from mlffbench.benchmarks.runner import committee_metrics
    from mlffbench.benchmarks.scoring import load_thresholds, score_metrics

    per_member = [{"rate_log10_error": {"value": v, "unit": "1"}} for v in (0.17, float("nan"), float("nan"))]
    m = committee_metrics(per_member)
    assert m["rate_log10_error"]["value"] == 0.17 and m["rate_log10_error"]["n_nonfinite"] == 2
    scored, score = score_metrics("hop_rates", m, load_thresholds())
    assert score is None and scored["rate_log10_error"]["score"] is None
    assert scored["rate_log10_error"]["score_withheld"] == "2 of 3 members have no value"
    whole = committee_metrics([{"rate_log10_error": {"value": v, "unit": "1"}} for v in (0.17, 0.1, 0.12)])
    assert score_metrics("hop_rates", whole, load_thresholds())[1] is not None
