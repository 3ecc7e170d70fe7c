"""The one potential interface: (positions, box, neighbour list) -> energy; forces and stress derived.

LJ and every learned model are a `Potential`. Workflows (MD, phonons, string method, rates)
receive a `Potential` and never ask which kind it is; the only branch allowed downstream is
`potential.conservative`, because a direct-force model has no energy to report.

Units: everything reduced (see `mlffbench.units`). Shapes: R (N, 3) Cartesian, box (3, 3) with
lattice vectors as columns, energy scalar, forces (N, 3), stress (3, 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp

from mlffbench.neighbors import NeighborSpec, neighbor_spec

Array = jnp.ndarray
EnergyFn = Callable[[Array, Array, Any], Array]
ForceFn = Callable[[Array, Array, Any], Array]


@dataclass(frozen=True)
class Potential:
    """A potential energy surface (or a force field without one).

    Attributes:
        name: variant name echoed into every result, e.g. 'lj/cut/shift' or 'gnn:schnet'.
        cutoff: interaction range in reduced units (sigma).
        energy_fn: (R, box, nbrs) -> total energy (epsilon), or None for a force-only model.
        direct_force_fn: (R, box, nbrs) -> forces (N, 3); only for models without an energy.
        neighbor_format: 'half' or 'full', the list layout energy_fn expects.
        dtype: float dtype the model computes in (positions are cast to it).
        params: JSON-able description (parameters, hyperparameters) echoed into results.
        per_atom_energy_fn: optional (R, box, nbrs) -> (N,) energies.
    """

    name: str
    cutoff: float
    energy_fn: EnergyFn | None = None
    direct_force_fn: ForceFn | None = None
    neighbor_format: str = "full"
    dtype: Any = jnp.float64
    params: dict = field(default_factory=dict)
    per_atom_energy_fn: EnergyFn | None = None

    def __post_init__(self) -> None:
        if (self.energy_fn is None) == (self.direct_force_fn is None):
            raise ValueError("a Potential needs exactly one of energy_fn or direct_force_fn")

    @property
    def conservative(self) -> bool:
        """True when forces are -grad E (an energy exists)."""
        return self.energy_fn is not None

    def _cast(self, R: Array, box: Array) -> tuple[Array, Array]:
        return jnp.asarray(R, self.dtype), jnp.asarray(box, self.dtype)

    def energy(self, R: Array, box: Array, nbrs) -> Array:
        """Total potential energy (epsilon). Raises for force-only models."""
        if self.energy_fn is None:
            raise TypeError(f"{self.name} predicts forces directly and has no energy")
        R, box = self._cast(R, box)
        return self.energy_fn(R, box, nbrs)

    def forces(self, R: Array, box: Array, nbrs) -> Array:
        """Forces (epsilon/sigma), shape (N, 3): -dE/dR, or the model's direct prediction."""
        if self.direct_force_fn is not None:
            Rc, boxc = self._cast(R, box)
            return self.direct_force_fn(Rc, boxc, nbrs)
        return -jax.grad(self.energy)(R, box, nbrs)

    def energy_and_forces(self, R: Array, box: Array, nbrs) -> tuple[Array, Array]:
        """(E, F) in one pass."""
        e, g = jax.value_and_grad(self.energy)(R, box, nbrs)
        return e, -g

    def stress(self, R: Array, box: Array, nbrs) -> Array:
        """Configurational (virial) stress, shape (3, 3), ASE sign: (1/V) dE/d(strain).

        Positive under tension. jax-md's `quantity.stress` has the opposite sign. The strain is
        applied to positions and box together; the neighbour list stays valid because the
        strain is infinitesimal. Needs an energy.
        """
        volume = jnp.abs(jnp.linalg.det(box))

        def strained_energy(eps):
            deform = jnp.eye(3, dtype=eps.dtype) + 0.5 * (eps + eps.T)
            return self.energy(R @ deform.T, deform @ box, nbrs)

        dE = jax.grad(strained_energy)(jnp.zeros((3, 3), dtype=jnp.result_type(R)))
        return dE / volume

    def neighbors(self, box, skin: float = 0.3, fractional: bool = False, n_atoms: int | None = None,
                  capacity_multiplier: float = 1.3) -> NeighborSpec:
        """Neighbour-list functions suitable for this potential in `box`."""
        return neighbor_spec(box, self.cutoff, skin=skin, fmt=self.neighbor_format,
                             fractional=fractional, n_atoms=n_atoms,
                             capacity_multiplier=capacity_multiplier)

    def describe(self) -> dict:
        """What every result echoes about the potential."""
        return {"name": self.name, "cutoff_sigma": self.cutoff, "conservative": self.conservative,
                "dtype": jnp.dtype(self.dtype).name, "params": self.params}
