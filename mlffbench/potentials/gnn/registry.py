"""Registry of learned-model architectures (the contract every GNN in mlffbench follows).

A conservative architecture is a Flax linen module called on one configuration's graph:

    model.apply(params, dR, mask, receivers, senders, n_atoms) -> per-atom energies (N,)

with dR (E, 3) edge vectors r_j - r_i (reduced units, from `mlffbench.neighbors.edge_vectors`),
mask (E,) bool for real edges, receivers/senders (E,) int clipped to [0, N-1] and `n_atoms`
a static int. An architecture registered with neighbor_format='dense' also accepts receivers=None:
the edges are then dense rows (E = N K, row-major, row i = atom i's neighbours), which it may sum
without a scatter. Total energy = sum of per-atom energies (after the standardisation shift/scale
stored with the model). A force-only architecture returns per-atom forces (N, 3) instead and
registers with `conservative=False`.

Register with:

    @register_model("schnet", conservative=True, neighbor_format="full")
    def build(hparams: dict) -> flax.linen.Module: ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import flax.linen as nn


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[[dict], nn.Module]
    conservative: bool
    neighbor_format: str  # 'half', 'full', or 'dense' (full edges in per-atom rows, receivers=None)


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, conservative: bool = True, neighbor_format: str = "full"):
    """Decorator adding an architecture builder to MODELS under `name`."""

    def deco(build: Callable[[dict], nn.Module]) -> Callable[[dict], nn.Module]:
        MODELS[name] = ModelEntry(name, build, conservative, neighbor_format)
        return build

    return deco
