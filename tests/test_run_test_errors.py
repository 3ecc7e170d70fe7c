"""The test-set benchmark on a small dataset labelled by ASE's LennardJones (independent labels)."""

from __future__ import annotations

import numpy as np
import pytest

from mlffbench.benchmarks import PASSED
from mlffbench.benchmarks.dataset_errors import ErrorBinSettings, compare_test_errors
from mlffbench.io import Dataset
from mlffbench.potentials import lennard_jones
from mlffbench.structures import fcc
from mlffbench.units import ARGON
from mlffbench.benchmarks import runner as run_wf


def ase_labelled_dataset(n_frames: int = 6) -> Dataset:
    from ase import Atoms
    from ase.calculators.lj import LennardJones

    s = fcc(3, 1.5496)
    rng = np.random.default_rng(0)
    L = ARGON.sigma_angstrom
    pos, frc, en = [], [], []
    kT = np.linspace(0.1, 0.8, n_frames)  # 12 K .. 96 K targets
    for k in range(n_frames):
        R = s.positions + rng.normal(0, 0.02 + 0.05 * k / n_frames, s.positions.shape)
        at = Atoms(f"Ar{len(R)}", positions=R * L, cell=s.box.T * L, pbc=True)
        at.calc = LennardJones(sigma=L, epsilon=ARGON.epsilon_ev, rc=2.5 * L, smooth=False)
        pos.append(R)
        en.append(at.get_potential_energy() / ARGON.epsilon_ev)
        frc.append(at.get_forces() / (ARGON.epsilon_ev / L))
    F = len(pos)
    arrays = {"positions": np.array(pos), "forces": np.array(frc), "energy": np.array(en),
              "stress": np.zeros((F, 3, 3)), "box": np.repeat(s.box[None], F, 0), "temperature": kT,
              "kT_target": kT, "phase": (kT > 0.7).astype(int), "trajectory": np.zeros(F, int),
              "frame": np.arange(F)}
    return Dataset(arrays, ARGON.as_dict())


def test_test_errors_zero_for_lj_and_positive_for_another_potential(tmp_path):
    ds = ase_labelled_dataset()
    lj = lennard_jones("lj/cut/shift", cutoff=2.5)
    other = lennard_jones("lj/smooth", cutoff=2.5, r_onset=2.0)
    base = {"units": ARGON, "seed": 0, "mode": "quick", "dataset": ds, "dataset_path": None,
            "reference_potential": lj, "progress": False, "run_config": None}
    bench = run_wf.battery()["test_errors"]
    settings = ErrorBinSettings(bins_K=[0, 50, 1000], max_frames_per_bin=10)
    res = run_wf.execute(bench, settings, other, lj, False, tmp_path, base, ({}, {}), {})
    assert res["state"] == PASSED, res["reason"]
    for b in res["reference"]["bins"]:  # LJ reproduces ASE's labels to round-off
        assert b["force_rmse"]["value"] < 1e-12 and b["energy_mae"]["value"] < 1e-9
    assert sum(b["frames"] for b in res["reference"]["bins"]) == len(ds)
    m = res["metrics"]
    assert m["force_rmse_rel_worst_bin"]["value"] > 1e-4  # the switched LJ differs beyond 2 sigma
    assert set(compare_test_errors(res["model"], res["reference"])) == set(m)
    assert (tmp_path / "test_errors.png").is_file()


def test_frames_with_different_boxes_share_one_list_and_match_ase():
    """NPT frames: every frame its own box. One list built in the first box serves them all."""
    from ase import Atoms
    from ase.calculators.lj import LennardJones

    from mlffbench.benchmarks.dataset_errors import evaluate_frames, shared_list_skin

    L = ARGON.sigma_angstrom
    rng = np.random.default_rng(3)
    base = fcc(4, 1.5496)
    pos, boxes, ref = [], [], []
    for scale in (1.0, 1.03, 0.985, 1.05):
        box = base.box * scale
        R = base.positions * scale + rng.normal(0, 0.05, base.positions.shape)
        at = Atoms(f"Ar{len(R)}", positions=R * L, cell=box.T * L, pbc=True)
        at.calc = LennardJones(sigma=L, epsilon=ARGON.epsilon_ev, rc=2.5 * L, smooth=False)
        pos.append(R)
        boxes.append(box)
        ref.append(at.get_forces() / (ARGON.epsilon_ev / L))
    # the frame compressed by 1.5 % is the one stretched most when mapped into the first box
    assert shared_list_skin(np.array(boxes), 2.5) == pytest.approx(0.3 + 2.5 * (1 / 0.985 - 1))
    _, F = evaluate_frames(lennard_jones("lj/cut/shift"), np.array(pos), np.array(boxes))
    np.testing.assert_allclose(F, np.array(ref), atol=1e-10)
