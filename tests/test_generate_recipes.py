"""`generate`'s study recipes: strained cells and vacancy trajectories in the main dataset.

What is checked, against independent means:
* strain: each strained state's volume and shear strain, read back from the stored cell matrices
  (volume from det(box) against the volume-conserving sheared cells; shear from ASE's cell angle
  of the extxyz file), equal the requested ones; every strained frame's energy, forces and stress
  equal ASE's LennardJones (truncated and shifted, like lj/cut/shift) on that frame.
* vacancies.in_dataset: the vacancy frames sit in dataset.npz with N-1 real atoms (one ghost: NaN
  position, zero force), their energy and forces equal ASE's LennardJones on the N-1 atoms, the
  extxyz holds them with N-1 atoms, training's edge lists give the ghost no edge and the real
  atoms exactly ASE's neighbour pairs, and a one-epoch training on them runs and reports them.
* bad strain settings are one-line validation errors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlffbench.config import validate
from mlffbench.io import load_dataset
from mlffbench.workflows.generate import STRAIN_TRAJECTORY, VACANCY_TRAJECTORY, GenerateConfig, run_generate

RC = 2.5
VOLUME = [-0.05, 0.04]
SHEAR = [0.05]
STEPS, EVERY = 100, 50
TINY = {"units": {"system": "metal"}, "potential": {"name": "lj/cut/shift", "cutoff_sigma": RC},
        "system": {"supercell": 4}, "md": {"chunk_steps": 100},
        # npt as long as the ramp (also NPT, and 100 steps = one chunk): both segments run one
        # compiled program (NPT programs take the box as an argument), for the main and the
        # vacancy trajectory; a 50-step npt segment (kept no frames either way) was a compile each
        "protocol": {"n_trajectories": 1, "npt": {"temperature": 10.0, "steps": 100},
                     "nvt": {"temperature": 10.0, "steps": 50},
                     "ramp": {"start": 10.0, "stop": 20.0, "steps": 100, "ensemble": "npt"},
                     "hold": [], "frame_every": EVERY},
        # no equilibration segment: the strain states start from the strained 0 K lattice, and each
        # state's box is compiled into its own MD programs, so an equilibration segment (a second
        # program per state: it records nothing) would cost three more compiles
        "strain": {"volume_strains": VOLUME, "shear_strains": SHEAR, "temperature": 10.0,
                   "equilibration_steps": 0, "steps": STEPS},
        "vacancies": {"n_trajectories": 1, "in_dataset": True}}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    cfg = validate(GenerateConfig, TINY, "test")
    summary = run_generate(cfg, out)
    return out, load_dataset(out), summary


def _ase_lj(R, box):
    from ase import Atoms
    from ase.calculators.lj import LennardJones

    atoms = Atoms(f"Ar{len(R)}", positions=R, cell=box.T, pbc=True)
    atoms.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=RC, smooth=False)
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)


def test_strained_cells_have_the_requested_strains(generated):
    from ase.io import read

    out, ds, summary = generated
    per_state = STEPS // EVERY
    sel = np.flatnonzero(ds.trajectory == STRAIN_TRAJECTORY)
    assert len(sel) == (len(VOLUME) + len(SHEAR)) * per_state == summary["strain_frames"]
    boxes = ds.box[sel]
    volumes = np.abs(np.linalg.det(boxes))
    v0 = volumes[len(VOLUME) * per_state:]  # simple shear conserves the volume of the 0 K cell
    assert np.allclose(v0, v0[0], rtol=1e-12)
    for k, dv in enumerate(VOLUME):
        assert volumes[k * per_state:(k + 1) * per_state] / v0[0] - 1 == pytest.approx(np.full(per_state, dv),
                                                                                        abs=1e-12)
    frames = read(out / "dataset.extxyz", ":")
    for k, gamma in enumerate(SHEAR):
        for f in sel[(len(VOLUME) + k) * per_state:(len(VOLUME) + k + 1) * per_state]:
            a, b, c, alpha, beta, gamma_angle = frames[f].cell.cellpar()
            assert np.tan(np.radians(90.0 - gamma_angle)) == pytest.approx(gamma, abs=1e-9)
            assert (alpha, beta) == pytest.approx((90.0, 90.0), abs=1e-9)
    # the unstrained reference frames keep their cubic cell
    assert np.allclose(ds.box[ds.trajectory == 0][:, [0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]], 0.0)


def test_strained_frames_match_ase_lennard_jones(generated):
    _, ds, _ = generated
    sel = np.flatnonzero(ds.trajectory == STRAIN_TRAJECTORY)
    pressures = []
    for f in sel:
        e, F, S = _ase_lj(ds.positions[f], ds.box[f])
        assert ds.energy[f] == pytest.approx(e, rel=1e-9)
        assert np.max(np.abs(ds.forces[f] - F)) < 1e-8 * np.max(np.abs(F))
        assert np.max(np.abs(ds.stress[f] - S)) < 1e-8 * np.max(np.abs(S))
        pressures.append(-np.trace(S) / 3)
    # E(V) is in the data: compressed cells are under positive pressure, expanded ones negative
    per_state = STEPS // EVERY
    p_state = np.array(pressures).reshape(-1, per_state).mean(axis=1)
    assert p_state[0] > 0 > p_state[1]  # dV/V = -5 %, +4 %
    shear = ds.stress[sel[len(VOLUME) * per_state:]][:, 0, 1]
    assert np.all(np.abs(shear) > 5 * np.abs(ds.stress[ds.trajectory == 0][:, 0, 1]).max())


def test_vacancy_frames_are_in_the_main_dataset(generated):
    from ase.io import read

    out, ds, summary = generated
    N = ds.positions.shape[1]
    vac = np.flatnonzero(ds.trajectory == VACANCY_TRAJECTORY)
    assert len(vac) > 0 and summary["vacancy_frames"] == len(vac)
    assert np.all(ds.n_atoms[vac] == N - 1) and np.all(ds.n_atoms[ds.trajectory != VACANCY_TRAJECTORY] == N)
    assert np.all(np.isnan(ds.positions[vac, N - 1])) and np.all(ds.forces[vac, N - 1] == 0)
    assert np.all(np.isfinite(ds.positions[vac, : N - 1]))
    for f in vac:
        e, F, _ = _ase_lj(ds.positions[f, : N - 1], ds.box[f])
        assert ds.energy[f] == pytest.approx(e, rel=1e-9)
        assert np.max(np.abs(ds.forces[f, : N - 1] - F)) < 1e-8 * np.max(np.abs(F))
    frames = read(out / "dataset.extxyz", ":")
    assert [len(a) for a in frames] == list(ds.n_atoms)
    assert not (out / "vacancy_dataset.npz").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["summary"]["vacancy_frames"] == len(vac)


def test_training_edges_ignore_the_ghost(generated):
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    from mlffbench.training.data import build_graphs

    _, ds, _ = generated
    N = ds.positions.shape[1]
    f = int(np.flatnonzero(ds.trajectory == VACANCY_TRAJECTORY)[0])
    g = build_graphs(ds, np.array([f]), RC, half=False)
    recv, send = g.receivers[0][g.mask[0]], g.senders[0][g.mask[0]]
    assert not np.any(recv == N - 1) and not np.any(send == N - 1)
    assert np.all(np.isfinite(g.positions))
    atoms = Atoms(f"Ar{N - 1}", positions=ds.positions[f, : N - 1], cell=ds.box[f].T, pbc=True)
    i, j = neighbor_list("ij", atoms, RC)
    assert sorted(zip(recv.tolist(), send.tolist())) == sorted(zip(i.tolist(), j.tolist()))


def test_ghost_padded_frame_predicts_the_real_atoms_energy(generated, tmp_path):
    """The trainer's energy of a ghost-padded vacancy frame equals the saved model's `Potential` on
    the N-1 real atoms alone (no ghost): the ghost's isolated-atom energy is masked out. Without
    the mask the two differ by that energy (checked too, so this can fail)."""
    import jax
    import jax.numpy as jnp

    from mlffbench.potentials.gnn import build_module, entry, init_params, load_model_potential, save_model
    from mlffbench.training.data import build_graphs, standardization
    from mlffbench.training.trainer import batch_predictor, predict_graphs

    _, ds, _ = generated
    N = ds.positions.shape[1]
    f = int(np.flatnonzero(ds.trajectory == VACANCY_TRAJECTORY)[0])
    arch, hp = "schnet", {"features": 8, "n_blocks": 1, "n_basis": 8}
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), init_params(arch, hp, seed=3))
    std = standardization(ds, np.arange(len(ds.positions)), use_energy=True)
    save_model(tmp_path / "m", arch, hp, params, std)
    pot = load_model_potential(tmp_path / "m", dtype="float64")
    g = build_graphs(ds, np.array([f]), pot.cutoff, entry(arch).neighbor_format == "half")
    assert g.atom_mask[0].tolist() == [True] * (N - 1) + [False]
    predictor = batch_predictor(build_module(arch, hp), True, N, jnp.float64)
    E_masked, F_masked = predict_graphs(predictor, params, g, std, batch_size=1)
    R, box = jnp.asarray(ds.positions[f, : N - 1]), jnp.asarray(ds.box[f])
    nb = pot.neighbors(np.asarray(box), skin=0.3, n_atoms=N - 1).allocate(R)
    ev = jax.jit(lambda R_: pot.evaluate(R_, box, nb))(R)  # one compiled program, not op by op
    assert abs(E_masked[0] - float(ev.energy)) < 1e-9 * abs(float(ev.energy))
    assert np.max(np.abs(F_masked[0, : N - 1] - np.asarray(ev.forces))) < 1e-9
    assert np.all(F_masked[0, N - 1] == 0)
    g.atom_mask = None  # every atom counted: the ghost adds its isolated-atom energy and one shift
    E_unmasked, _ = predict_graphs(predictor, params, g, std, batch_size=1)
    assert abs(E_unmasked[0] - E_masked[0]) > 1e-6


def test_training_reads_vacancy_and_strain_frames(generated, tmp_path):
    from mlffbench.config import load_stage_config
    from mlffbench.workflows.train import TrainConfig, run_train

    out, ds, _ = generated
    cfg = load_stage_config(TrainConfig, "configs/train-quick.yaml", {
        "optim.epochs": 1, "optim.batch_size": 4,
        "model.hparams": {"features": 8, "n_blocks": 1, "n_basis": 8, "pair_term": True},
        "splits.train": {"phase": "any", "trajectories": [0, VACANCY_TRAJECTORY, STRAIN_TRAJECTORY]},
        "splits.val": {"trajectories": [0], "frames": [0, 1]}, "splits.test": {}}, "test")
    res = run_train(cfg, out / "dataset.npz", tmp_path / "train")
    n_extra = int(np.sum(ds.trajectory != 0))
    assert res["finished"] and res["split_sizes"]["train"] == int(np.sum(ds.trajectory == 0)) - 1 + n_extra
    assert np.isfinite(res["history"][-1]["train_loss"])
    assert np.isfinite(res["splits"]["train"]["force_rmse"]["value"])


@pytest.mark.parametrize("bad,match", [
    ({"volume_strains": [0.5]}, "volume_strains"),
    ({"shear_strains": [0.0]}, "shear_strains"),
    ({"volume_strains": [0.03], "steps": 120}, "multiples of protocol.frame_every"),
])
def test_bad_strain_settings(bad, match):
    from mlffbench.errors import UserError

    with pytest.raises((UserError, ValueError), match=match):
        validate(GenerateConfig, {**TINY, "strain": {**TINY["strain"], **bad}}, "test")


def test_default_protocols_have_no_strain_or_vacancy_frames():
    from pathlib import Path

    from mlffbench.config import load_config

    for name in ("quick", "paper", "fixed-density"):
        cfg = load_config(GenerateConfig, Path(__file__).resolve().parents[1] / f"configs/generate-{name}.yaml")
        assert not cfg.strain.enabled and cfg.vacancies.n_trajectories == 0 and not cfg.vacancies.in_dataset
