"""Fine-grained -> coarse-grained mappings.

A mapping turns all-atom frames into bead frames. The force-matching ("mapped") force of a bead
is the sum of the forces on the atoms it contains; this is the right mapped force for a mapping
where every atom belongs to exactly one bead and the bead position is a linear combination of
its atoms' positions with weights summing to 1 (Noid et al., J. Chem. Phys. 128, 244114 (2008)).

Adding a mapping: write a class with `name`, `n_beads(data)`, `bead_masses(data)` and
`__call__(data) -> (positions (F, M, 3), forces (F, M, 3))`, and add it to MAPPINGS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlffbench.cg.data import AllAtomData
from mlffbench.neighbors import as_box_matrix


def whole_molecules(positions: np.ndarray, molecule: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Make every molecule whole: each atom is moved to the periodic image nearest to the first
    atom of its molecule. (F, n, 3) -> (F, n, 3). Valid while a molecule is smaller than half
    the box."""
    b = as_box_matrix(box)
    inv = np.linalg.inv(b)
    first = np.array([np.nonzero(molecule == m)[0][0] for m in range(int(molecule.max()) + 1)])
    anchor = positions[:, first[molecule]]
    d = (positions - anchor) @ inv.T
    d -= np.round(d)
    return anchor + d @ b.T


def wrap(positions: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Wrap Cartesian positions into the cell [0, 1)^3 in fractional coordinates."""
    b = as_box_matrix(box)
    s = positions @ np.linalg.inv(b).T
    return (s - np.floor(s)) @ b.T


@dataclass(frozen=True)
class CenterOfMass:
    """One bead per molecule at its centre of mass; bead force = sum of the molecule's forces."""

    name: str = "com"

    def n_beads(self, data: AllAtomData) -> int:
        return data.n_molecules

    def bead_masses(self, data: AllAtomData) -> np.ndarray:
        return np.bincount(data.molecule, weights=data.masses, minlength=data.n_molecules)

    def __call__(self, data: AllAtomData) -> tuple[np.ndarray, np.ndarray]:
        M = data.n_molecules
        whole = whole_molecules(data.positions, data.molecule, data.box)
        mtot = self.bead_masses(data)
        # one-hot (n, M) matrices make the sums explicit and exact
        onehot = np.zeros((len(data.molecule), M))
        onehot[np.arange(len(data.molecule)), data.molecule] = 1.0
        weights = onehot * data.masses[:, None] / mtot[None, :]
        X = np.einsum("fnk,nm->fmk", whole, weights)
        Fb = np.einsum("fnk,nm->fmk", data.forces, onehot)
        return wrap(X, data.box), Fb


MAPPINGS = {"com": CenterOfMass}


def get_mapping(name: str):
    from mlffbench.errors import UserError

    if name not in MAPPINGS:
        raise UserError(f"unknown mapping {name!r}; available: {', '.join(sorted(MAPPINGS))}")
    return MAPPINGS[name]()
