"""Writers of phonopy's file formats, so phonopy's own tools (and its users) read our results.

* `total_dos.dat`: '# Sigma = ...' then frequency (THz) and DOS (states/THz) per line.
* `band.yaml`: the band structure along a path (q in primitive reciprocal coordinates, frequency
  in THz, distance in 1/Å without 2 pi, lattice in Å).
* `FORCE_CONSTANTS`: phonopy's text force constants, full (N, N, 3, 3) or compact (n_rows, N, 3, 3)
  (header 'n_rows N', then per block '<i> <j>' 1-based and three rows), read by
  `phonopy.file_IO.parse_FORCE_CONSTANTS`. Atoms are in mlffbench's supercell order.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mlffbench.units import UnitSystem

TWO_PI = 2.0 * math.pi


def write_force_constants(path: Path, fc: np.ndarray, row_atoms: np.ndarray | None = None) -> None:
    """phonopy's FORCE_CONSTANTS text layout for fc of shape (n_rows, N, 3, 3) (units as given;
    phonopy expects eV/Å^2). `row_atoms`: supercell index of each stored row (default 0..n_rows-1);
    n_rows < N is phonopy's compact form (one row per primitive-cell atom)."""
    fc = np.asarray(fc, np.float64)
    n_rows, n = fc.shape[:2]
    rows = np.arange(n_rows) if row_atoms is None else np.asarray(row_atoms)
    lines = [f"{n_rows:4d}{n:4d}"]
    for a, i in enumerate(rows):
        for j in range(n):
            lines.append(f"{i + 1} {j + 1}")
            lines += ["%22.15f%22.15f%22.15f" % tuple(v) for v in fc[a, j]]
    Path(path).write_text("\n".join(lines) + "\n")


def write_total_dos(path: Path, grid_thz: np.ndarray, dos_per_thz: np.ndarray, sigma_thz: float) -> None:
    """phonopy's total_dos.dat layout: '# Sigma = ...' then '%20.10f%20.10f' per line (THz)."""
    lines = [f"# Sigma = {sigma_thz:f}"] + [f"{f:20.10f}{d:20.10f}" for f, d in zip(grid_thz, dos_per_thz)]
    path.write_text("\n".join(lines) + "\n")


def write_band_yaml(path: Path, zk: dict, us: UnitSystem) -> None:
    """phonopy's band.yaml layout (q in primitive reciprocal coordinates, frequency in THz,
    distance in 1/Å without 2 pi, lattice in Å)."""
    p = zk["path"]
    prim_A = zk["prim"] * us.sigma_angstrom
    rec = np.linalg.inv(prim_A)  # rows: a*, b*, c* without 2 pi
    q_red = p["q"] @ zk["prim"] / TWO_PI
    dist = p["distance"] / us.sigma_angstrom
    freqs = zk["nu_path"] / us.tau_ps
    segs = p["segment_nqpoint"]
    labels = p["labels"]
    text = [f"nqpoint: {int(np.sum(segs)):<7d}", f"npath: {len(segs):<7d}", "segment_nqpoint:"]
    text += [f"- {n}" for n in segs]
    text.append("labels:")
    names = {"G": "$\\Gamma$"}
    text += [f"- [ '{names.get(a, a)}', '{names.get(b, b)}' ]" for a, b in zip(labels[:-1], labels[1:])]
    text.append("reciprocal_lattice:")
    for vec, ax in zip(rec, ("a*", "b*", "c*")):
        text.append("- [ %12.8f, %12.8f, %12.8f ] # %2s" % (tuple(vec) + (ax,)))
    text.append("natom: 1      ")
    text.append("lattice:")
    for vec, ax in zip(prim_A.T, "abc"):
        text.append("- [ %21.15f, %21.15f, %21.15f ] # %s" % (tuple(vec) + (ax,)))
    text += ["points:", "- symbol: Ar # 1", "  coordinates: [  0.000000000000000,  0.000000000000000,  0.000000000000000 ]",
             f"  mass: {us.mass_amu:f}", "", "phonon:", ""]
    for q, d, f in zip(q_red, dist, freqs):
        text.append("- q-position: [ %12.7f, %12.7f, %12.7f ]" % tuple(q))
        text.append("  distance: %12.7f" % d)
        text.append("  band:")
        for k, fk in enumerate(f):
            text.append(f"  - # {k + 1}")
            text.append("    frequency: %15.10f" % fk)
        text.append("")
    path.write_text("\n".join(text) + "\n")
