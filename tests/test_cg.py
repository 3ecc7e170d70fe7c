"""CG pipeline: mapping by hand, import validation, force-matching fits, prior-stabilised CG MD."""

import numpy as np
import pytest

import mlffbench  # noqa: F401  (x64)
from mlffbench.cg.data import AllAtomData, load_all_atom, save_all_atom
from mlffbench.cg.fit import (RepulsivePrior, SplinePair, TrainSettings, fit_hipnn, fit_spline, model_forces,
                              spline_cg_potential)
from mlffbench.cg.checks import contact_check, min_pair_distances
from mlffbench.cg.mapping import CenterOfMass
from mlffbench.cg.prior import fit_exponential_prior
from mlffbench.errors import UserError


def _two_molecules():
    # atoms interleaved: molecule index [0, 1, 0, 1]; molecule 0 straddles the x boundary of a 10-box
    R = np.array([[[9.5, 1.0, 1.0], [5.0, 5.0, 5.0], [0.5, 1.0, 1.0], [6.0, 5.0, 5.0]]])
    F = np.array([[[1.0, 2.0, 3.0], [0.5, 0.0, 0.0], [-4.0, 0.0, 1.0], [0.0, -1.0, 2.0]]])
    return AllAtomData(positions=R, forces=F, masses=np.array([1.0, 2.0, 3.0, 2.0]),
                       molecule=np.array([0, 1, 0, 1]), box=np.eye(3) * 10.0, times=np.array([0.0]))


def test_com_mapping_by_hand():
    d = _two_molecules()
    X, Fb = CenterOfMass()(d)
    # molecule 0: atoms at x = 9.5 (m 1) and 10.5 (m 3, image of 0.5): x = (9.5 + 31.5) / 4 = 10.25 -> 0.25
    np.testing.assert_allclose(X[0, 0], [0.25, 1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(X[0, 1], [5.5, 5.0, 5.0], atol=1e-12)
    np.testing.assert_allclose(Fb[0, 0], [-3.0, 2.0, 4.0], atol=1e-12)
    np.testing.assert_allclose(Fb[0, 1], [0.5, -1.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(CenterOfMass().bead_masses(d), [4.0, 4.0])


def test_import_roundtrip_and_rejects_malformed(tmp_path):
    d = _two_molecules()
    save_all_atom(tmp_path / "ok.npz", d)
    back = load_all_atom(tmp_path / "ok.npz")
    np.testing.assert_array_equal(back.positions, d.positions)
    np.testing.assert_array_equal(back.molecule, d.molecule)
    good = dict(positions=d.positions, forces=d.forces, masses=d.masses, molecule=d.molecule, box=d.box)
    cases = {
        "missing.npz": {k: v for k, v in good.items() if k != "forces"},
        "shape.npz": {**good, "forces": d.forces[:, :3]},
        "mol.npz": {**good, "molecule": np.array([0, 1, 0])},
        "gap.npz": {**good, "molecule": np.array([0, 2, 0, 2])},
    }
    # replica labels (independent trajectories) survive the round trip; malformed ones are refused
    d2 = _two_molecules()
    d2.positions, d2.forces = np.repeat(d.positions, 4, 0), np.repeat(d.forces, 4, 0)
    d2.times, d2.replica = np.tile([0.0, 1.0], 2), np.array([0, 0, 1, 1])
    save_all_atom(tmp_path / "rep.npz", d2)
    np.testing.assert_array_equal(load_all_atom(tmp_path / "rep.npz").replica, [0, 0, 1, 1])
    assert back.replica is None
    four = {**good, "positions": d2.positions, "forces": d2.forces}
    cases["replica.npz"] = {**four, "replica": np.array([0, 1, 0, 1])}  # not contiguous
    cases["replicashape.npz"] = {**four, "replica": np.array([0, 1])}
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(UserError) as exc:
            load_all_atom(tmp_path / name)
        msg = str(exc.value)
        assert "\n" not in msg and name in msg
    # extxyz without the molecule column
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    atoms = Atoms("Ar4", positions=d.positions[0], cell=d.box, pbc=True)
    atoms.calc = SinglePointCalculator(atoms, forces=d.forces[0])
    write(tmp_path / "nomol.extxyz", atoms, format="extxyz")
    with pytest.raises(UserError, match="molecule"):
        load_all_atom(tmp_path / "nomol.extxyz")
    atoms.new_array("molecule", d.molecule)
    write(tmp_path / "ok.extxyz", atoms, format="extxyz")
    np.testing.assert_allclose(load_all_atom(tmp_path / "ok.extxyz").forces, d.forces)


def test_cli_rejects_bad_import_with_one_line_and_writes_nothing(tmp_path):
    from conftest import run_cli

    np.savez(tmp_path / "bad.npz", positions=np.zeros((2, 4, 3)), forces=np.zeros((2, 3, 3)),
             masses=np.ones(4), molecule=np.array([0, 0, 1, 1]), box=np.eye(3) * 5)
    cfg = tmp_path / "cg.yaml"
    cfg.write_text(f"train_state: a\nstates:\n  - {{name: a, kT: 1.0, file: {tmp_path / 'bad.npz'}}}\n")
    out = tmp_path / "out"
    code, output = run_cli(["cg", "-c", str(cfg), "-o", str(out), "-q"])
    assert code == 2, output
    assert "forces shape" in output and len(output.strip().splitlines()) == 1
    assert not out.exists()
    cfg.write_text("train_state: b\nstates:\n  - {name: a, kT: 1.0, atom_density: 0.7}\n")
    code, output = run_cli(["cg", "-c", str(cfg), "-o", str(out), "-q"])
    assert code == 2 and "train_state" in output


def _pair_frames(n_frames=12, M=40, L=6.0, seed=0):
    """Random bead configurations with forces of a known smooth pair potential."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, L, size=(n_frames, M, 3))
    box = np.eye(3) * L

    def dU(r):  # U = 2 exp(-(r/0.9)^2) - 0.5 exp(-((r - 1.6)/0.4)^2)
        return -2 * 2 * r / 0.81 * np.exp(-(r / 0.9) ** 2) + 0.5 * 2 * (r - 1.6) / 0.16 * np.exp(-((r - 1.6) / 0.4) ** 2)

    F = np.zeros_like(X)
    for f in range(n_frames):
        d = X[f][None] - X[f][:, None]  # r_j - r_i
        d -= L * np.round(d / L)
        r = np.linalg.norm(d, axis=-1)
        np.fill_diagonal(r, np.inf)
        w = np.where(r < 2.8, dU(np.where(np.isfinite(r), r, 1.0)) / r, 0.0)  # force on i: U'(r) d/r
        F[f] = np.sum(w[:, :, None] * d, axis=1)
    return X, F, box


def test_spline_force_matching_recovers_a_pair_force():
    X, F, box = _pair_frames()
    spline, rmse = fit_spline(X, F, box, r_min=0.05, cutoff=3.0, n_knots=40, ridge=1e-10)
    assert rmse < 1e-3 * np.sqrt(np.mean(F ** 2))
    r = np.linspace(0.5, 2.5, 9)
    exact = 2 * np.exp(-(r / 0.9) ** 2) - 0.5 * np.exp(-((r - 1.6) / 0.4) ** 2)
    fitted = np.asarray(spline.energy(r)) - float(spline.energy(np.array([3.0]))[0])
    np.testing.assert_allclose(fitted, exact, atol=2e-3)  # U recovered up to the constant
    # the fitted potential, used through the Potential interface, reproduces the forces
    pot = spline_cg_potential(spline, RepulsivePrior.from_rise(0.05))
    Fm = model_forces(pot, X[:3], box)
    assert np.sqrt(np.mean((Fm - F[:3]) ** 2)) < 1e-3 * np.sqrt(np.mean(F ** 2))


def test_hipnn_force_matching_loss_falls():
    """fit_hipnn trains through the project's trainer: the best validation force RMSE ends well
    below the zero-force model's (the RMS of the validation forces) and the learning curve has one
    record per epoch."""
    from mlffbench.cg.prior import ExponentialPrior

    X, F, box = _pair_frames(n_frames=10, M=24, L=5.0)
    hp = dict(n_features=8, n_sensitivities=6, n_interactions=1, n_atom_layers=1, cutoff=2.4, min_soft=0.5,
              max_soft=2.2)
    negligible = ExponentialPrior(onset=0.05, strength=1e-6, width=0.01)
    settings = TrainSettings(epochs=30, batch_size=4, learning_rate=5e-3, patience=100, schedule="constant")
    module, res, scale = fit_hipnn(X, F, box, hp, settings, negligible)
    val = np.sort(np.random.default_rng(settings.seed).permutation(10)[:2])
    zero_model = float(np.sqrt(np.mean(F[val] ** 2)))
    assert len(res.history) == 30 and res.steps == 60
    assert res.best_valid_rmse < 0.7 * zero_model, res.history
    assert scale == pytest.approx(float(np.sqrt(np.mean(np.delete(F, val, axis=0) ** 2))))


def test_cg_md_with_prior_is_stable_and_without_collapses():
    from mlffbench.dynamics.md import Integrator, run_md

    L, M = 6.0, 64
    X0 = (np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * 1.5
    # a deep attractive well that a force-matched model could produce below the sampled range
    knots = np.arange(7)
    coef = tuple(np.where(knots < 3, -6.0, 0.0))
    spline = SplinePair(r_min=0.8, cutoff=3.0, h=0.3, coef=coef)

    def min_dist(Y):
        d = Y[:, None] - Y[None]
        d -= L * np.round(d / L)
        r = np.linalg.norm(d, axis=-1)
        r[np.arange(M), np.arange(M)] = np.inf
        return r.min()

    integ = Integrator("nvt_langevin", dt=0.005, gamma=2.0)
    with_prior = spline_cg_potential(spline, RepulsivePrior.from_rise(0.8, epsilon=10.0))
    res = run_md(with_prior, X0, np.eye(3) * L, integ, 1000, kT=1.0, sample_every=50, record=("positions",),
                 mass=3.0, seed=2)
    assert res.status == "ok"
    ref = res.samples["positions"][10:]
    assert min(min_dist(Y) for Y in ref) > 0.45
    # contact check: the reference's second half passes against its first half's smallest distance
    box = np.eye(3) * L
    r_first = float(min_pair_distances(ref[:5], box).min())
    assert contact_check(float(min_pair_distances(ref[5:], box).min()), r_first, 0.05)["ok"]
    r_ref = float(min_pair_distances(ref, box).min())
    # the prior fitted from the reference (onset at its smallest distance) holds thermal beads
    # (no attraction: a collapsing model can still push through a 5 kT wall; the check catches that)
    flat = SplinePair(r_min=0.8, cutoff=3.0, h=0.3, coef=(0.0,) * 7)
    fitted = spline_cg_potential(flat, fit_exponential_prior(r_ref, mean_abs_force=1.0, margin=0.05, kT_max=1.0))
    res1 = run_md(fitted, X0, box, integ, 1000, kT=1.0, sample_every=50, record=("positions",), mass=3.0, seed=3)
    assert res1.status == "ok"
    assert contact_check(float(min_pair_distances(res1.samples["positions"], box).min()), r_ref, 0.05)["ok"]
    # prior switched off (tiny cutoff): pairs fall through the spline's floor and overlap
    without = spline_cg_potential(spline, RepulsivePrior(sigma=1e-3, epsilon=1e-9, cut_factor=1.01))
    res0 = run_md(without, X0, np.eye(3) * L, integ, 1000, kT=1.0, sample_every=100, record=("positions",),
                  mass=3.0, seed=2, max_step_displacement=10.0)
    assert res0.status != "ok" or min(min_dist(Y) for Y in res0.samples["positions"][5:]) < 0.3
    if res0.status == "ok":  # the contact check fails it, with the reason
        bad = contact_check(float(min_pair_distances(res0.samples["positions"], box).min()), r_ref, 0.05)
        assert not bad["ok"] and "margin" in bad["reason"]
    # a constructed overlap fails too
    Y = ref[-1:].copy()
    Y[0, 1] = Y[0, 0] + [0.3, 0.0, 0.0]
    assert not contact_check(float(min_pair_distances(Y, box).min()), r_ref, 0.05)["ok"]


def test_validation_frames_starts_and_decision():
    from mlffbench.cg.transfer import combine_members, decide, md_starts, short_range_pair_ratio, validation_frames

    r = np.arange(0.05, 1.0, 0.1)
    g_ref = np.array([0, 0, 0, 0.004, 0.01, 0.03, 0.07, 0.12, 0.2, 0.34])
    g_trap = g_ref.copy()
    g_trap[3] = 0.305  # a peak at 0.35 sigma (seen with a swapped-in prior): pairs by hand, r^2-weighted
    by_hand = (0.305 * 0.35 ** 2 + 0.01 * 0.45 ** 2) / (0.004 * 0.35 ** 2 + 0.01 * 0.45 ** 2)
    assert short_range_pair_ratio(r, g_ref, g_trap, 0.55) == pytest.approx(by_hand)
    assert short_range_pair_ratio(r, g_ref, g_ref, 0.55) == pytest.approx(1.0)
    assert short_range_pair_ratio(r, g_ref, g_trap, 0.3) is None  # no reference pairs below 0.3

    rep = np.repeat([0, 1, 2], 10)
    val = validation_frames(30, rep, 0.2)  # the last 2 frames of every replica, in time order
    np.testing.assert_array_equal(val, [8, 9, 18, 19, 28, 29])
    np.testing.assert_array_equal(validation_frames(10, None, 0.3), [7, 8, 9])
    X = np.arange(30)[:, None, None] * np.ones((1, 2, 3))
    np.testing.assert_array_equal(md_starts({"X": X, "replica": rep}, 4)[:, 0, 0], [9, 19, 29, 9])
    np.testing.assert_array_equal(md_starts({"X": X, "replica": None}, 3)[:, 0, 0], [9, 19, 29])
    a = {"rdf_distance": 0.10, "rdf_distance_std": 0.01}
    assert decide({"hipnn-ts": a, "pair-spline": {"rdf_distance": 0.05, "rdf_distance_std": 0.01}})["better"] \
        == "pair-spline"  # 0.05 > 2 sqrt(2) 0.01
    undecided = decide({"hipnn-ts": a, "pair-spline": {"rdf_distance": 0.08, "rdf_distance_std": 0.01}})
    assert undecided["better"] is None and "<=" in undecided["reason"]
    assert decide({"hipnn-ts": {"rdf_distance": None}, "pair-spline": a})["better"] is None

    def member(d, P, ok=True):
        return {"rdf_distance": d, "rdf_distance_std": 0.01, "rdf_noise_expected": 0.005, "rdf_distance_excess": d,
                "rdf_noise_floor": 0.004, "contact": {"ok": ok, "model_min": {"value": 0.5}},
                "force_rmse": {"value": 2.0}, "force_rmse_relative": 0.9, "md_status": "ok" if ok else "failed",
                "md_message": "" if ok else "contact check: x", "md_seconds": 1.0,
                "pressure": {"value": P}, "pressure_difference": {"value": P - 1}, "diffusion": {"value": 0.1},
                "diffusion_ratio": 2.0, "rdf": {"r": [0, 1], "g": np.array([0.0, d])}}
    c = combine_members([member(0.1, 3.0), member(0.2, 5.0, ok=False)])
    assert c["rdf_distance"] == pytest.approx(0.15) and c["rdf_distance_member_std"] == pytest.approx(np.std([0.1, 0.2], ddof=1))
    assert c["rdf_distance_std"] == pytest.approx(np.hypot(c["rdf_distance_member_std"], 0.01))
    assert c["pressure"]["std"] == pytest.approx(np.std([3.0, 5.0], ddof=1)) and c["pressure"]["n"] == 2
    assert c["md_status"] == "failed" and "member 1" in c["md_message"] and not c["contact"]["ok"]


def test_committee_members_run_their_own_network_in_cg_md():
    """MD caches compiled programs by the potential's fingerprint: two HIP-NN-TS members with
    different parameters must not share one (they did: every member ran member 0's network), and
    a member run after another gives the trajectory it gives alone."""
    import jax

    from mlffbench.cg.fit import hipnn_cg_potential
    from mlffbench.cg.prior import ExponentialPrior
    from mlffbench.dynamics import md
    from mlffbench.potentials.gnn.hipnn_ts import HIPNNTS

    module = HIPNNTS(n_features=4, n_interactions=1, n_atom_layers=1, n_sensitivities=4, cutoff=2.5,
                     min_soft=0.5, max_soft=2.3)
    dR = np.array([[1.0, 0.0, 0.0], [0.0, 1.1, 0.0]])
    args = (dR, np.ones(2, bool), np.array([0, 1]), np.array([1, 0]), 2)
    prior = ExponentialPrior(onset=0.6, strength=50.0, width=0.2)
    members = [hipnn_cg_potential(module, module.init(jax.random.PRNGKey(s), *args), 1.0, prior) for s in (0, 1)]
    assert members[0].fingerprint != members[1].fingerprint
    X0 = (np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * 1.6
    box = np.eye(3) * 6.4

    def final(pot):
        return md.run_md(pot, X0, box, md.Integrator("nvt_langevin", dt=0.005), 20, kT=1.0, seed=0,
                         sample_every=10).final["positions"]

    first, second = final(members[0]), final(members[1])
    assert np.max(np.abs(first - second)) > 1e-6
    md._PROGRAMS.clear()
    np.testing.assert_allclose(final(members[1]), second, rtol=0, atol=1e-12)
    # float32 MD of the same member: a different program, the same dynamics to float32 precision
    f32 = hipnn_cg_potential(module, module.init(jax.random.PRNGKey(1), *args), 1.0, prior, dtype=np.float32)
    assert f32.fingerprint != members[1].fingerprint and f32.is_float32
    np.testing.assert_allclose(final(f32), second, atol=1e-4)


def test_paired_decision_counts_the_shared_reference_noise_once():
    """Two models judged against one noisy reference sample: the paired bootstrap std of d_a - d_b
    matches the spread of d_a - d_b over independent repetitions of the whole experiment (known by
    simulation), while the unpaired sum of the two error bars overstates it; a committee adds the
    standard error of its mean over seeds."""
    from mlffbench.cg.transfer import _bootstrap_distance, decide, paired_difference_std
    from mlffbench.properties.structure import rdf_distance

    rng = np.random.default_rng(3)
    n_bins, zero = 30, np.zeros(30)
    truth = 1.0 + np.sin(np.linspace(0, 6, n_bins))
    bias_a = 0.02 * np.cos(np.linspace(0, 9, n_bins))  # model a errs a little; b is exact

    def experiment():
        ref = truth + 0.05 * rng.standard_normal((6, n_bins))  # 6 reference replicas, noisy
        a = truth + bias_a + 0.01 * rng.standard_normal((4, n_bins))  # 4 CG MD replicas each
        b = truth + 0.01 * rng.standard_normal((4, n_bins))
        return ref, a, b

    diffs, paired, unpaired = [], [], []
    for k in range(60):
        ref, a, b = experiment()
        diffs.append(rdf_distance(zero, ref.mean(0), a.mean(0)) - rdf_distance(zero, ref.mean(0), b.mean(0)))
        if k < 15:
            paired.append(paired_difference_std(ref, [a], [b], "l2", seed=k))
            unpaired.append(np.hypot(_bootstrap_distance(ref, a, "l2", k), _bootstrap_distance(ref, b, "l2", k)))
    true_sd = np.std(diffs, ddof=1)
    assert 0.6 * true_sd < np.mean(paired) < 1.6 * true_sd
    assert np.mean(unpaired) > 1.5 * np.mean(paired)  # the shared reference noise, counted twice

    # noise-free units: every bootstrap resample is the same, so u is the committee's
    # standard error alone, 0.006 / sqrt(3), by hand
    ref = np.repeat(truth[None], 6, 0)
    units = np.repeat((truth + bias_a)[None], 4, 0)
    entry = {"rdf_distance": 0.03, "rdf_distance_std": 0.01, "rdf_unit_means": units}
    committee = {"rdf_distance": 0.03, "rdf_distance_std": 0.01, "rdf_distance_member_std": 0.006, "n_members": 3,
                 "members": [dict(entry), dict(entry), dict(entry)]}
    got = decide({"hipnn-ts": committee, "pair-spline": entry}, ref_units=ref)
    assert got["uncertainty_method"] == "paired" and got["better"] is None
    assert got["uncertainty"] == pytest.approx(0.006 / np.sqrt(3), abs=1e-12)
    assert got["uncertainty_unpaired"] == pytest.approx(np.hypot(0.01, 0.01))
    assert decide({"hipnn-ts": committee, "pair-spline": entry})["uncertainty_method"] == "unpaired"
