"""Trainer standardisation: energy_scale and force_scale are one quantity (issue 15)."""
import numpy as np
import pytest

from mlffbench.training.trainer import make_loss, output_scale, predict_graphs
from mlffbench.training.config import LossConfig


class _Graphs:
    """Duck-typed GraphSet: n frames of N atoms (only what predict_graphs reads)."""

    def __init__(self, n, N):
        self.n, self.n_atoms = n, N

    def __len__(self):
        return self.n

    def take(self, idx):
        return {"R": np.zeros((len(idx), self.n_atoms, 3))}


def _std(escale, fscale, shift=0.25):
    return {"energy_shift": shift, "energy_scale": escale, "force_scale": fscale}


def test_output_scale_requires_equal_scales():
    assert output_scale(_std(2.5, 2.5)) == 2.5
    with pytest.raises(ValueError, match="energy_scale"):
        output_scale(_std(2.5, 1.0))


def test_predict_graphs_undoes_one_scale_analytically():
    """A predictor returning unit normalised outputs: E = scale + N*shift, F = scale (by hand)."""
    N, scale, shift = 4, 3.0, 0.25

    def predictor(params, batch):
        B = batch["R"].shape[0]
        return np.ones(B), np.ones((B, N, 3))

    E, F = predict_graphs(predictor, None, _Graphs(5, N), _std(scale, scale, shift), batch_size=2)
    np.testing.assert_allclose(E, np.full(5, 3.0 + 4 * 0.25))
    np.testing.assert_allclose(F, np.full((5, N, 3), 3.0))
    with pytest.raises(ValueError):
        predict_graphs(predictor, None, _Graphs(5, N), _std(scale, 1.0, shift), batch_size=2)


def test_make_loss_rejects_unequal_scales():
    with pytest.raises(ValueError, match="force_scale"):
        make_loss(None, True, LossConfig(), _std(2.0, 1.0), n_atoms=4, dtype=np.float32)
