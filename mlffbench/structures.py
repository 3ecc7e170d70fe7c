"""Crystal structures in reduced units: FCC supercells, vacancies, lattice sites, displacements."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FCC_BASIS = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])


@dataclass(frozen=True)
class Structure:
    """Positions (N, 3) and box (3, 3, columns = lattice vectors), reduced units.

    `sites` holds the perfect-lattice sites (M, 3) the structure was cut from (M >= N); for a
    vacancy crystal `occupied` maps each atom to its site (N,), and the empty sites are the rest.
    """

    positions: np.ndarray
    box: np.ndarray
    sites: np.ndarray
    occupied: np.ndarray

    @property
    def n_atoms(self) -> int:
        return len(self.positions)

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.box)))

    @property
    def vacant_sites(self) -> np.ndarray:
        """Indices into `sites` that no atom occupies."""
        return np.setdiff1d(np.arange(len(self.sites)), self.occupied)


def fcc(n: int | tuple[int, int, int], a: float) -> Structure:
    """FCC supercell of n x n x n conventional cells (4 n^3 atoms) with lattice constant a."""
    reps = (n, n, n) if isinstance(n, int) else tuple(n)
    if min(reps) < 1:
        raise ValueError("supercell size must be >= 1")
    cells = np.array([(i, j, k) for i in range(reps[0]) for j in range(reps[1])
                      for k in range(reps[2])], dtype=float)
    frac = (cells[:, None, :] + FCC_BASIS[None, :, :]).reshape(-1, 3)
    positions = frac * a
    box = np.diag(np.array(reps, dtype=float) * a)
    return Structure(positions=positions, box=box, sites=positions.copy(),
                     occupied=np.arange(len(positions)))


def remove_atom(structure: Structure, index: int = 0) -> Structure:
    """The same crystal with atom `index` removed (a vacancy on its site)."""
    keep = np.delete(np.arange(structure.n_atoms), index)
    return Structure(positions=structure.positions[keep], box=structure.box, sites=structure.sites,
                     occupied=structure.occupied[keep])


def nearest_neighbor_of_site(structure: Structure, site: int) -> int:
    """Index of an atom on a nearest-neighbour site of `site` (a hop partner for a vacancy)."""
    d = minimum_image(structure.positions - structure.sites[site], structure.box)
    return int(np.argmin(np.linalg.norm(d, axis=1)))


def minimum_image(d: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Wrap displacement vectors (..., 3) into the minimum image of `box`."""
    frac = d @ np.linalg.inv(box).T
    frac -= np.round(frac)
    return frac @ box.T


def wrap_positions(R: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Positions folded into the cell [0, 1) in fractional coordinates."""
    frac = R @ np.linalg.inv(box).T
    return (frac % 1.0) @ box.T


def nearest_sites(R: np.ndarray, sites: np.ndarray, box: np.ndarray) -> np.ndarray:
    """For each position (N, 3), the index of the nearest lattice site (minimum image), shape (N,)."""
    d = minimum_image(R[:, None, :] - sites[None, :, :], box)
    return np.argmin(np.einsum("nmk,nmk->nm", d, d), axis=1)


def random_displacements(structure: Structure, amplitude: float, seed: int) -> Structure:
    """Uniform displacements in [-amplitude, amplitude]^3 per atom, from an explicit seed."""
    rng = np.random.default_rng(seed)
    shifted = structure.positions + rng.uniform(-amplitude, amplitude, structure.positions.shape)
    return Structure(positions=shifted, box=structure.box, sites=structure.sites,
                     occupied=structure.occupied)


def scaled(structure: Structure, factor: float) -> Structure:
    """Uniformly scaled copy (positions, box and sites)."""
    return Structure(positions=structure.positions * factor, box=structure.box * factor,
                     sites=structure.sites * factor, occupied=structure.occupied)


def fcc_lattice_sum(a: float, pair, cutoff: float, shells: int = 8) -> float:
    """Energy per atom of a perfect FCC crystal by direct lattice sum: 0.5 sum_R phi(|R|).

    Independent numpy reference (no neighbour lists). `pair` is a numpy function of r.
    """
    cells = np.arange(-shells, shells + 1)
    g = np.array(np.meshgrid(cells, cells, cells, indexing="ij")).reshape(3, -1).T
    pts = (g[:, None, :] + FCC_BASIS[None]).reshape(-1, 3) * a
    r = np.linalg.norm(pts, axis=1)
    r = r[(r > 1e-12) & (r < cutoff)]
    return 0.5 * float(np.sum(pair(r)))
