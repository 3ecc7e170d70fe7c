"""Vacancy-MD checkpoint/resume: a run killed mid-way and resumed from its checkpoint counts
exactly the hops and simulated time of the same run left alone (nothing lost, nothing counted
twice), whether it stops inside a temperature or between two."""

import numpy as np
import pytest

import mlffbench  # noqa: F401
import mlffbench.workflows.vacancy as vacancy_workflow
from mlffbench.config import validate
from mlffbench.potentials import load_potential
from mlffbench.workflows.vacancy import VacancyConfig, run_vacancy

CONFIG = {
    "units": {"system": "lj"},
    "system": {"supercell": 3, "lattice_constant": 1.5496034241},  # LJ a0 (sigma), saves its search
    "md": {"timestep": 0.005, "sample_every": 10, "segment_steps": 500},
    # hot enough for a few hops in 1000 steps x 2 replicas; the crystal stays solid (the detector
    # would stop a melting replica, which the comparison below would show)
    "run": {"temperatures": [1.2, 1.3], "n_replicas": 2, "steps": 1000, "equilibration_steps": 100,
            "persist_samples": 3},
    "compare": {"htst": False},
}


class Interrupted(Exception):
    pass


def _rows(doc):
    return [(r["temperature"]["reduced_kT"], r["hops"], r["simulated_time"]["reduced_tau"],
             [rep["hop_times"] for rep in r["replicas"]]) for r in doc["rates"]]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    cfg = validate(VacancyConfig, CONFIG)
    pot = load_potential("lj")
    d = tmp_path_factory.mktemp("whole")
    doc = run_vacancy(pot, cfg, d, d / "ckpt.npz", log=lambda m: None)
    return cfg, pot, doc


# md calls per temperature: 1 equilibration + 2 segments; stop after the 1st segment of the
# first temperature (inside it) or after the first temperature has finished (between them)
@pytest.mark.parametrize("calls_before_kill", [2, 3])
def test_resume_loses_no_hops_or_time(uninterrupted, tmp_path, monkeypatch, calls_before_kill):
    cfg, pot, whole = uninterrupted
    assert whole["rates"][0]["hops"] > 0, "settings too cold to test that hops survive a resume"
    assert not whole["messages"], whole["messages"]

    real_run_md, calls = vacancy_workflow.run_md, []

    def dying_run_md(*args, **kwargs):
        if len(calls) == calls_before_kill:
            raise Interrupted
        calls.append(1)
        return real_run_md(*args, **kwargs)

    ckpt = tmp_path / "ckpt.npz"
    monkeypatch.setattr(vacancy_workflow, "run_md", dying_run_md)
    with pytest.raises(Interrupted):
        run_vacancy(pot, cfg, tmp_path, ckpt, log=lambda m: None)
    assert ckpt.is_file()
    monkeypatch.setattr(vacancy_workflow, "run_md", real_run_md)

    messages = []
    resumed = run_vacancy(pot, cfg, tmp_path, ckpt, log=messages.append)
    assert any("resuming" in m for m in messages)
    assert _rows(resumed) == _rows(whole)


def test_checkpoint_of_other_config_is_refused(uninterrupted, tmp_path):
    cfg, pot, _ = uninterrupted
    ckpt = tmp_path / "ckpt.npz"
    # a checkpoint written for one config ...
    state = {"config_hash": "something else", "t_index": 0}
    vacancy_workflow._save_checkpoint(ckpt, state, {"positions": np.zeros(0)})
    # ... is not silently mixed into another
    from mlffbench.errors import UserError

    with pytest.raises(UserError, match="different config"):
        run_vacancy(pot, cfg, tmp_path, ckpt, log=lambda m: None)


def test_sigkill_resumes_to_identical_hops(uninterrupted, tmp_path):
    """A real kill: `mlffbench vacancy` in a subprocess gets SIGKILL (no exception handler, no
    finally block runs) right after its first checkpoint; resuming from that checkpoint counts
    exactly the hops, hop times and simulated time of the run left alone."""
    import json

    from conftest import sigkill_when_file_appears

    cfg, pot, whole = uninterrupted
    cfg_file = tmp_path / "vacancy.yaml"
    cfg_file.write_text(json.dumps(CONFIG))  # JSON is YAML
    ckpt = tmp_path / "ckpt.npz"
    sigkill_when_file_appears(["vacancy", "-c", str(cfg_file), "-o", str(tmp_path / "vac"), "--checkpoint",
                               str(ckpt), "-q"], ckpt, tmp_path / "stderr.txt")
    assert ckpt.is_file() and not (tmp_path / "vac").exists()  # killed mid-run: no output committed
    state = json.loads(str(np.load(ckpt)["_state"]))
    assert state["t_index"] == 0 and state["segment"] >= 1  # inside the first temperature

    messages = []
    (tmp_path / "resumed").mkdir()
    resumed = run_vacancy(pot, cfg, tmp_path / "resumed", ckpt, log=messages.append)
    assert any("resuming" in m for m in messages)
    assert _rows(resumed) == _rows(whole)
