"""The one lattice-constant policy: the potential's own 0 K FCC a0 unless a config pins one.

Every workflow that builds a crystal (md, pdos, neb, vacancy, the crystal benchmarks) asks
`lattice_constant(potential, pinned)`. The minimisation runs once per potential fingerprint and
supercell per process (a small LRU), so a battery that needs a0 in five places computes it once.
A force-only model has no energy to minimise: it must be given `pinned` (UserError otherwise).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from mlffbench.errors import UserError
from mlffbench.potentials.base import Potential

_CACHE: "OrderedDict[tuple, tuple[float, float]]" = OrderedDict()
_CACHE_SIZE = 8
_LOCK = threading.Lock()  # the battery's model and reference threads share the cache


def equilibrium_fcc(potential: Potential, n_cells: int = 2) -> tuple[float, float]:
    """(a0 sigma, E/atom epsilon) of the 0 K FCC crystal, memoised by fingerprint and n_cells."""
    from mlffbench.dynamics.minimize import fcc_lattice_constant

    key = (potential.fingerprint, int(n_cells))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    a0, e0 = fcc_lattice_constant(potential, n_cells=n_cells)  # outside the lock: other keys go on
    with _LOCK:
        _CACHE[key] = value = (float(a0), float(e0))
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def lattice_constant(potential: Potential, pinned: float | None = None, n_cells: int = 2) -> float:
    """Reduced FCC lattice constant (sigma): `pinned` if given, else the potential's own 0 K a0."""
    if pinned is not None:
        return float(pinned)
    if not potential.capabilities.energy:
        raise UserError(f"{potential.name} has no energy to find its lattice constant: "
                        "set system.lattice_constant in the config")
    return equilibrium_fcc(potential, n_cells)[0]
