"""`mlffbench train`: a tiny model overfits a tiny LJ dataset, --resume is bit-identical,
force matching and force-only models train, bad input is a one-line error (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import run_cli

from mlffbench.config import validate
from mlffbench.io import save_dataset_npz
from mlffbench.training.config import TrainConfig
from mlffbench.training.toy import lj_toy_dataset
from mlffbench.workflows.train import run_train

BASE = {
    "seed": 3,
    "units": {"system": "lj"},
    "model": {"architecture": "schnet", "hparams": {"features": 16, "n_blocks": 1, "n_basis": 12}},
    "splits": {"train": {"trajectories": [0, 1]}, "val": {"trajectories": [2]},
               "test": {"hot": {"temperature_K": [0.4, 1.0]}}},
    "loss": {"energy_weight": 0.1},
    "optim": {"epochs": 3, "batch_size": 4, "learning_rate": 0.005, "warmup_epochs": 0},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """32-atom LJ crystals at kT 0.05, 0.1 (train), 0.08 (val), 0.5 (hot test); exact LJ labels."""
    ds = lj_toy_dataset(2, kTs=(0.05, 0.1, 0.08, 0.5), frames_per_T=8, seed=1)
    path = tmp_path_factory.mktemp("data") / "dataset.npz"
    save_dataset_npz(path, ds)
    return path


def _cfg(**over) -> TrainConfig:
    d = json.loads(json.dumps(BASE))
    for key, val in over.items():
        node = d
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = val
    return validate(TrainConfig, d)


def test_tiny_model_overfits_tiny_dataset(data, tmp_path):
    """Force RMSE on the training frames falls >= 10x from the untrained model."""
    m = run_train(_cfg(**{"optim.epochs": 60, "optim.learning_rate": 0.01, "optim.patience": 60}), data,
                  tmp_path / "o")
    hist = m["history"]
    first = hist[0]["train_force_term"]  # MSE of standardised forces after epoch 0
    train_rmse_ratio = m["splits"]["train"]["force_rmse_over_std"]
    assert train_rmse_ratio < 0.1, train_rmse_ratio
    assert np.sqrt(hist[-1]["train_force_term"]) < np.sqrt(first) / 10
    for f in ("metrics.json", "learning_curve.png", "parity.png", "manifest.json", "model/model_card.json",
              "model/params.msgpack"):
        assert (tmp_path / "o" / f).is_file(), f
    card = json.loads((tmp_path / "o" / "model" / "model_card.json").read_text())
    assert card["conservative"] and card["training_data_sha256"]
    assert m["splits"]["test:hot"]["per_temperature"][0]["n_frames"] == 8


def test_resume_equals_uninterrupted(data, tmp_path):
    cfg = _cfg()
    full = run_train(cfg, data, tmp_path / "full")
    part = run_train(cfg, data, tmp_path / "part", stop_after_epochs=1)
    assert part == {"finished": False, "epoch": 1}
    assert not (tmp_path / "part" / "model").exists()
    resumed = run_train(cfg, data, tmp_path / "part", resume=True)
    a = (tmp_path / "full" / "model" / "params.msgpack").read_bytes()
    b = (tmp_path / "part" / "model" / "params.msgpack").read_bytes()
    assert a == b
    assert [h["train_loss"] for h in full["history"]] == [h["train_loss"] for h in resumed["history"]]


@pytest.mark.slow
def test_resume_after_kill_9_via_cli(data, tmp_path):
    """A real SIGKILL in the middle of training, then --resume: same parameters as uninterrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg_path = tmp_path / "c.yaml"
    d = json.loads(json.dumps(BASE))
    d["optim"]["epochs"] = 6
    cfg_path.write_text(yaml.safe_dump(d))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "mlffbench", "train", "-c", str(cfg_path), "--data", str(data),
                             "-o", str(out), "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "checkpoint.msgpack").exists() and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    code, msg = run_cli(["train", "-c", str(cfg_path), "--data", str(data), "-o", str(out), "--resume", "-q"])
    assert code == 0, msg
    code, msg = run_cli(["train", "-c", str(cfg_path), "--data", str(data), "-o", str(tmp_path / "clean"), "-q"])
    assert code == 0, msg
    assert (out / "model" / "params.msgpack").read_bytes() == (tmp_path / "clean" / "model" / "params.msgpack").read_bytes()


def test_force_matching_and_direct_force_models_train(data, tmp_path):
    m = run_train(_cfg(**{"loss.energy_weight": 0.0, "optim.epochs": 1}), data, tmp_path / "fm")
    assert m["standardization"]["energy_shift"] == 0.0
    m = run_train(_cfg(**{"model.architecture": "direct-force", "model.hparams": {"features": 8, "n_blocks": 1,
                                                                                 "n_basis": 8},
                          "optim.epochs": 1}), data, tmp_path / "df")
    assert m["conservative"] is False
    assert m["splits"]["val"]["energy_rmse_per_atom"]["value"] is None
    assert np.isfinite(m["splits"]["val"]["force_rmse"]["value"])


@pytest.mark.parametrize("edit,needle", [
    ({"optim": {"epochs": 0}}, "optim.epochs"),
    ({"bogus": 1}, "bogus: unknown key"),
    ({"model": {"architecture": "nope"}}, "unknown model architecture"),
    ({"model": {"hparams": {"widht": 3}}}, "unknown hyperparameter"),
    ({"splits": {"val": {"trajectories": [99]}}}, "splits.val"),
])
def test_bad_configs_are_one_line_errors(data, tmp_path, edit, needle):
    d = json.loads(json.dumps(BASE))
    for k, v in edit.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k].update(v)
        else:
            d[k] = v
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d))
    code, out = run_cli(["train", "-c", str(path), "--data", str(data), "-o", str(tmp_path / "o")])
    assert code == 2, out
    assert needle in out and "Traceback" not in out
    assert not (tmp_path / "o").exists()


def test_missing_data_and_resume_without_checkpoint(data, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    code, out = run_cli(["train", "-c", str(path), "--data", str(tmp_path / "nope.npz"), "-o", str(tmp_path / "o")])
    assert code == 2 and "dataset not found" in out
    code, out = run_cli(["train", "-c", str(path), "--data", str(data), "-o", str(tmp_path / "o2"), "--resume"])
    assert code == 2 and "nothing to resume" in out
