"""`generate`'s default protocol melts: a reduced quick protocol (zero-pressure ramp + liquid hold)
labels >= 20 % of its frames liquid, and an independent structural criterion agrees frame by frame.

The independent criterion is Steinhardt's global bond-orientational order Q6 (Steinhardt, Nelson,
Ronchetti, PRB 28, 784 (1983)) over each atom's 12 nearest neighbours, found with ASE's neighbour
list and scipy's spherical harmonics: 0.5745 for perfect FCC, 0.4-0.55 for the crystal up to
melting, ~N_bonds^-1/2 (~0.05) in the liquid. A frame is liquid when Q6 < 0.2. It shares nothing
with the translational order parameter |rho_k| that labels the frames. The two disagree only while
the box melts (a few frames where crystal and liquid coexist), so the test demands agreement on
every frame where Q6 is unambiguous (> 0.35 or < 0.1) and on most frames overall.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from mlffbench.config import validate
from mlffbench.structures import fcc
from mlffbench.workflows.generate import GenerateConfig, phase_labels, run_generate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _q6lm(R: np.ndarray, box: np.ndarray, n_neighbors: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Per-atom q6m (N, 13) over each atom's 12 nearest neighbours, and those neighbours (N, 12).

    R (N, 3), box (3, 3) columns = lattice vectors. Neighbours from ASE's neighbour list.
    """
    from ase import Atoms
    from ase.neighborlist import neighbor_list
    from scipy.special import sph_harm_y

    atoms = Atoms(f"Ar{len(R)}", positions=R, cell=box.T, pbc=True)
    i, j, D = neighbor_list("ijD", atoms, 2.0)  # sigma: holds >= 12 neighbours down to density 0.5
    d = np.linalg.norm(D, axis=1)
    order = np.lexsort((d, i))
    i, j, D, d = i[order], j[order], D[order], d[order]
    start = np.searchsorted(i, np.arange(len(R)))
    assert np.all(np.diff(np.append(start, len(i))) >= n_neighbors)
    keep = np.concatenate([np.arange(s, s + n_neighbors) for s in start])
    j, D, d = j[keep], D[keep], d[keep]
    theta = np.arccos(np.clip(D[:, 2] / d, -1.0, 1.0))
    phi = np.arctan2(D[:, 1], D[:, 0])
    ylm = np.stack([sph_harm_y(6, m, theta, phi) for m in range(-6, 7)], axis=1)  # (N*12, 13)
    return ylm.reshape(len(R), n_neighbors, 13).mean(axis=1), j.reshape(len(R), n_neighbors)


def q6_global(R: np.ndarray, box: np.ndarray) -> float:
    """Global Steinhardt Q6 of one frame (0.5745 for perfect FCC)."""
    qlm = _q6lm(R, box)[0].mean(axis=0)
    return float(np.sqrt(4 * np.pi / 13 * np.sum(np.abs(qlm) ** 2)))


def test_q6_criterion_on_known_structures():
    s = fcc(4, 1.55)
    assert q6_global(np.asarray(s.positions), np.asarray(s.box)) == pytest.approx(0.57452, abs=1e-4)
    gas = np.random.default_rng(0).uniform(0, 6.8, (256, 3))
    assert q6_global(gas, np.eye(3) * 6.8) < 0.1


def test_expanded_crystal_is_solid_with_its_own_box():
    """A crystal that expanded 4 % on heating (NPT) stays 'solid': the label uses each frame's box."""
    s = fcc(4, 1.55)
    R = np.stack([np.asarray(s.positions), np.asarray(s.positions) * 1.04])
    boxes = np.stack([np.asarray(s.box), np.asarray(s.box) * 1.04])
    np.testing.assert_array_equal(phase_labels(R, boxes, 4, 0.3), [0, 0])


def test_protocol_configs():
    """quick and paper heat through melting at zero pressure and hold the liquid; fixed-density is
    today's NVT ramp at the 10 K density."""
    for name in ("quick", "paper"):
        p = validate(GenerateConfig, yaml.safe_load((CONFIGS / f"generate-{name}.yaml").read_text())).protocol
        assert p.ramp.ensemble == "npt" and p.hold and p.hold[0].ensemble == "npt"
        assert p.hold[0].temperature >= 100.0 and p.ramp.stop >= 105.0
    p = validate(GenerateConfig, yaml.safe_load((CONFIGS / "generate-fixed-density.yaml").read_text())).protocol
    assert p.ramp.ensemble == "nvt" and not p.hold


@pytest.fixture(scope="module")
def melted(tmp_path_factory):
    """The quick protocol, shortened: 1 trajectory, ramp 10 -> 115 K in 12 ps at zero pressure,
    6 ps liquid hold at 100 K (72 frames)."""
    d = yaml.safe_load((CONFIGS / "generate-quick.yaml").read_text())
    d["protocol"].update(n_trajectories=1, npt={"temperature": 10.0, "steps": 400},
                         nvt={"temperature": 10.0, "steps": 0},
                         ramp={"start": 10.0, "stop": 115.0, "steps": 2400, "ensemble": "npt"},
                         hold=[{"temperature": 100.0, "steps": 1200, "ensemble": "npt"}])
    d["md"]["chunk_steps"] = 1200
    out = tmp_path_factory.mktemp("melt")
    summary = run_generate(validate(GenerateConfig, d), out)
    from mlffbench.io import load_dataset

    return load_dataset(out), summary


def test_quick_protocol_melts_and_q6_agrees(melted):
    ds, summary = melted
    assert len(ds) == 72
    liquid = ds.phase == 1
    q6 = np.array([q6_global(R, b) for R, b in zip(ds.positions, ds.box)])
    q6_liquid = q6 < 0.2
    assert liquid.mean() >= 0.2, liquid.mean()
    assert q6_liquid.mean() >= 0.2, q6_liquid.mean()
    detail = (np.round(q6, 3).tolist(), ds.phase.tolist())
    clear = (q6 > 0.35) | (q6 < 0.1)
    assert clear.mean() >= 0.8 and np.array_equal(liquid[clear], q6_liquid[clear]), detail
    assert np.mean(liquid == q6_liquid) >= 0.85, detail
    assert q6[0] > 0.5 and q6[-1] < 0.1  # cold crystal first, liquid last
    # more than one density: the crystal expands, the liquid is less dense
    lo, hi = summary["density_g_cm3"]
    assert hi / lo > 1.2
    assert summary["liquid_frames"] == int(liquid.sum())
