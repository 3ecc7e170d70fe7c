"""Configuration of `mlffbench cg` (reduced LJ units throughout; see docs/cg.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlffbench.config import StrictModel


class TrimerConfig(StrictModel):
    bond_length: float = Field(1.0, gt=0)
    k_bond: float = Field(100.0, gt=0)
    angle_deg: float = Field(120.0, gt=0, lt=180)
    k_angle: float = Field(20.0, ge=0)


class StateConfig(StrictModel):
    """A state point: temperature kT (epsilon) and atom number density (1/sigma^3) for the
    generated liquid, or `file` (npz/extxyz all-atom frames) to import a user's data."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    kT: float = Field(gt=0)
    atom_density: float | None = Field(None, gt=0)
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.atom_density is None) == (self.file is None):
            raise ValueError("give exactly one of atom_density (generate) or file (import)")
        return self


class ReferenceConfig(StrictModel):
    """Fine-grained Langevin MD of the trimer liquid (ignored for imported states)."""

    n_side: int = Field(5, ge=2, le=20)
    dt: float = Field(0.005, gt=0)
    gamma: float = Field(1.0, gt=0)
    warmup_steps: int = Field(1000, ge=100)
    equil_steps: int = Field(2000, ge=0)
    prod_steps: int = Field(4000, ge=100)
    sample_every: int = Field(50, ge=1)
    replicas: int = Field(1, ge=1, le=64)  # independent trajectories per state (noise floor from their spread)
    molecule: TrimerConfig = TrimerConfig()


class PriorConfig(StrictModel):
    """`exponential` (hippynn-style, onset at the reference's smallest sampled bead distance,
    strength mean |F|, wall of `barrier_kT` x the highest kT at onset - `margin`) or `r12` (the
    older wall below the RDF's first rise, `epsilon`, `cut_factor`). `margin` (sigma) is also the
    contact check's margin. `rdf_threshold` sets where the pair spline starts (and the r12 onset)."""

    form: Literal["exponential", "r12"] = "exponential"
    # exponential onset: the reference's smallest sampled bead distance (width = margin), or the
    # RDF's first rise above rdf_threshold with the width down to that distance (hippynn: the wall
    # covers where g ~ 0, so the network cannot open a hole there)
    onset: Literal["min_distance", "rdf_rise"] = "min_distance"
    margin: float = Field(0.05, gt=0)
    barrier_kT: float = Field(5.0, gt=0)
    fraction: float = Field(0.05, gt=0, lt=1)
    rdf_threshold: float = Field(0.02, gt=0, lt=1)
    epsilon: float = Field(10.0, gt=0)
    cut_factor: float = Field(1.25, gt=1)


class HipnnConfig(StrictModel):
    """Architecture (sigma for lengths) and force-matching training through the project's trainer
    (`mlffbench.training.trainer.train_loop`): epochs over the training frames, `patience` in
    epochs without a better validation force RMSE, AdamW with `schedule`."""

    n_features: int = Field(16, ge=1)
    n_interactions: int = Field(2, ge=1)
    n_atom_layers: int = Field(1, ge=0)
    n_sensitivities: int = Field(8, ge=2)
    cutoff: float = Field(3.0, gt=0)
    min_soft: float = Field(0.5, gt=0)
    max_soft: float = Field(2.8, gt=0)
    loss: Literal["mse", "rmse+mae"] = "mse"
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(4, ge=1)
    epochs: int = Field(30, ge=1)
    patience: int = Field(5, ge=1)
    schedule: Literal["cosine", "constant"] = "cosine"
    valid_fraction: float = Field(0.2, gt=0, lt=1)
    dtype: Literal["float32", "float64"] = "float32"
    frame_stride: int = Field(1, ge=1)  # train (HIP-NN-TS and the spline) on every k-th reference frame
    members: int = Field(1, ge=1, le=16)  # committee of seeds seed..seed+members-1; each runs its own CG MD


class BaselineConfig(StrictModel):
    cutoff: float = Field(3.0, gt=0)
    n_knots: int = Field(30, ge=4)
    ridge: float = Field(1e-6, ge=0)


class CGMDConfig(StrictModel):
    dt: float = Field(0.01, gt=0)
    gamma: float = Field(1.0, gt=0)
    equil_steps: int = Field(1000, ge=0)
    prod_steps: int = Field(4000, ge=100)
    sample_every: int = Field(50, ge=1)
    replicas: int = Field(1, ge=1, le=64)  # CG MD trajectories per state and model member, side by side
    # what the models compute in during CG MD (the integrator stays float64; force RMSEs are always
    # float64). float32 only where shown to leave the RDF distance unchanged (docs/cg.md).
    dtype: Literal["float32", "float64"] = "float64"


class AnalysisConfig(StrictModel):
    r_max: float = Field(3.5, gt=0)
    n_bins: int = Field(70, ge=5)
    rdf_metric: Literal["l2", "l1"] = "l2"
    force_stride: int = Field(1, ge=1, description="every n-th mapped reference frame for the force RMSE "
                                                   "(neighbouring frames are correlated, so a thinned set "
                                                   "gives nearly the same RMSE at 1/n of the cost)")


class CGConfig(StrictModel):
    seed: int = 0
    mapping: Literal["com"] = "com"
    states: list[StateConfig] = Field(min_length=1)
    train_state: str | list[str] = Field(description="state name, or a list of names (multi-state training)")
    reference: ReferenceConfig = ReferenceConfig()
    prior: PriorConfig = PriorConfig()
    hipnn: HipnnConfig = HipnnConfig()
    baseline: BaselineConfig = BaselineConfig()
    cg_md: CGMDConfig = CGMDConfig()
    analysis: AnalysisConfig = AnalysisConfig()

    @property
    def train_states(self) -> list[str]:
        """The training state names (one for single-state training)."""
        return [self.train_state] if isinstance(self.train_state, str) else list(self.train_state)

    @model_validator(mode="after")
    def _check(self):
        names = [s.name for s in self.states]
        if len(set(names)) != len(names):
            raise ValueError("state names must be unique")
        ts = self.train_states
        if not ts or len(set(ts)) != len(ts):
            raise ValueError("train_state must name at least one state, each once")
        for t in ts:
            if t not in names:
                raise ValueError(f"train_state {t!r} is not one of the states {names}")
        for stage, steps in (("reference", self.reference.prod_steps), ("cg_md", self.cg_md.prod_steps)):
            se = getattr(self, stage).sample_every
            if steps % se:
                raise ValueError(f"{stage}.prod_steps must be a multiple of {stage}.sample_every")
        if self.cg_md.equil_steps % self.cg_md.sample_every:
            raise ValueError("cg_md.equil_steps must be a multiple of cg_md.sample_every")
        return self
