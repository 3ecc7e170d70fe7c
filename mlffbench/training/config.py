"""`mlffbench train` configuration (YAML -> pydantic) and split selection.

Temperatures are given in K and lengths in Å when ``units.system`` is 'metal' (reduced otherwise).
Splits are filters over dataset frames, so out-of-distribution splits are declared, not sampled:

    splits:
      train: {phase: solid, temperature_K: [0, 60]}
      val:   {trajectories: [3]}
      test:
        hot_solid: {phase: solid, temperature_K: [60, 90]}
        liquid:    {phase: liquid}

Frames selected by val or any test split are removed from train (reported as overlap_removed).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from mlffbench.config import StrictModel, UnitsConfig
from mlffbench.errors import UserError
from mlffbench.io import Dataset
from mlffbench.units import convert_input


class SplitSpec(StrictModel):
    """Which frames belong to a split (all given conditions must hold).

    phase: 'solid', 'liquid' or 'any'. temperature_K: [lo, hi) on the thermostat target
    (in the config's temperature unit). trajectories / exclude_trajectories: trajectory ids.
    frames: [lo, hi) on the frame index within a trajectory. stride: keep every k-th selected
    frame. max_frames: keep at most this many (evenly spaced, deterministic).
    """

    phase: Literal["solid", "liquid", "any"] = "any"
    temperature_K: tuple[float, float] | None = None
    trajectories: list[int] | None = None
    exclude_trajectories: list[int] | None = None
    frames: tuple[int, int] | None = None
    stride: int = Field(1, ge=1)
    max_frames: int | None = Field(None, ge=1)


class SplitsConfig(StrictModel):
    train: SplitSpec = SplitSpec()
    val: SplitSpec
    test: dict[str, SplitSpec] = {}


class ModelConfig(StrictModel):
    """architecture: a registered name ('schnet', 'direct-force', ...). hparams: passed to it
    (cutoff in sigma); cutoff_A overrides hparams.cutoff in Å (metal) or sigma (lj)."""

    architecture: str = "schnet"
    hparams: dict = {}
    cutoff_A: float | None = Field(None, gt=0)
    dtype: Literal["float32", "float64"] = "float32"


class LossConfig(StrictModel):
    """Weights on the standardised energy-per-atom and force errors; energy_weight 0 = force matching.
    kind: mse, mae, or rmse+mae (hippynn's CG force loss, sqrt(mean d^2) + mean |d|)."""

    kind: Literal["mse", "mae", "rmse+mae"] = "mse"
    energy_weight: float = Field(0.1, ge=0)
    force_weight: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _some_weight(self):
        if self.energy_weight == 0 and self.force_weight == 0:
            raise ValueError("energy_weight and force_weight cannot both be 0")
        return self


class OptimConfig(StrictModel):
    """AdamW with warmup + cosine decay (or constant), global-norm clipping, early stopping."""

    epochs: int = Field(50, ge=1)
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = Field(1, ge=0)
    final_lr_fraction: float = Field(0.02, ge=0, le=1)
    grad_clip: float = Field(10.0, gt=0)
    patience: int = Field(20, ge=1)


class EnsembleConfig(StrictModel):
    """A committee of `members` models of one architecture, trained together in one vmapped program.

    vary: 'seed' - member m initialises and shuffles with seed + m on the same training frames;
    'bootstrap' - in addition, member m trains on its own resample (with replacement, same size)
    of the training frames, drawn from default_rng([seed, m]).
    """

    members: int = Field(1, ge=1, le=64)
    vary: Literal["seed", "bootstrap"] = "seed"


class DataConfig(StrictModel):
    """How `--data FILE` is read when it is not a dataset.npz: any ASE-readable file in ASE's units
    (Å, eV, eV/Å, eV/Å^3 with ASE's stress sign), converted with `units`' epsilon and sigma. Keys
    are looked up in the calculator's results, then atoms.info / atoms.arrays; energy_key or
    stress_key null = not used. `format`: an ase.io format name (null = guess from the name)."""

    energy_key: str | None = "energy"
    forces_key: str = "forces"
    stress_key: str | None = "stress"
    format: str | None = None


class TrainConfig(StrictModel):
    seed: int = 0
    units: UnitsConfig = UnitsConfig()
    model: ModelConfig = ModelConfig()
    splits: SplitsConfig
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    temperature_bins_K: list[float] | None = None
    parity_points: int = Field(4000, ge=10)
    ensemble: EnsembleConfig = EnsembleConfig()
    data: DataConfig = DataConfig()


def member_plan(cfg: TrainConfig, n_train: int) -> tuple[list[int], list[np.ndarray]]:
    """(seed per member, index array into the n_train training frames per member); see EnsembleConfig."""
    ens = cfg.ensemble
    seeds = [cfg.seed + m for m in range(ens.members)]
    if ens.vary == "bootstrap":
        index = [np.random.default_rng([cfg.seed, m]).integers(0, n_train, n_train) for m in range(ens.members)]
    else:
        index = [np.arange(n_train)] * ens.members
    return seeds, index


def to_reduced(cfg: TrainConfig, value: float, quantity: str) -> float:
    return convert_input(value, quantity, cfg.units.system, cfg.units.unit_system())


def select(ds: Dataset, spec: SplitSpec, cfg: TrainConfig) -> np.ndarray:
    """Frame indices (sorted) matching `spec`."""
    keep = np.ones(len(ds), bool)
    if spec.phase != "any":
        keep &= ds.phase == (0 if spec.phase == "solid" else 1)
    if spec.temperature_K is not None:
        lo, hi = (to_reduced(cfg, t, "temperature") for t in spec.temperature_K)
        keep &= (ds.kT_target >= lo) & (ds.kT_target < hi)
    if spec.trajectories is not None:
        keep &= np.isin(ds.trajectory, spec.trajectories)
    if spec.exclude_trajectories is not None:
        keep &= ~np.isin(ds.trajectory, spec.exclude_trajectories)
    if spec.frames is not None:
        keep &= (ds.frame >= spec.frames[0]) & (ds.frame < spec.frames[1])
    idx = np.nonzero(keep)[0][::spec.stride]
    if spec.max_frames is not None and len(idx) > spec.max_frames:
        idx = idx[np.linspace(0, len(idx) - 1, spec.max_frames).round().astype(int)]
    return idx


def resolve_splits(ds: Dataset, cfg: TrainConfig, source: str = "config") -> tuple[dict[str, np.ndarray], int]:
    """{'train', 'val', 'test:<name>'...} -> frame indices; train minus val/test. (splits, overlap removed)."""
    out = {"val": select(ds, cfg.splits.val, cfg)}
    for name, spec in cfg.splits.test.items():
        out[f"test:{name}"] = select(ds, spec, cfg)
    held = np.unique(np.concatenate([v for v in out.values()] + [np.zeros(0, int)]))
    train_all = select(ds, cfg.splits.train, cfg)
    train = np.setdiff1d(train_all, held)
    for name, idx in [("train", train), ("val", out["val"])]:
        if len(idx) == 0:
            raise UserError(f"{source}: splits.{name}: selects no frames of the dataset "
                            f"({len(ds)} frames; phases {sorted(set(ds.phase.tolist()))}, "
                            f"trajectories {sorted(set(ds.trajectory.tolist()))})")
    return {"train": train, **out}, int(len(train_all) - len(train))
