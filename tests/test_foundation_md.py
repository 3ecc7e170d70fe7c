"""MD core: NVE against LAMMPS step by step, energy drift, thermostats, barostat, overflow recovery."""

from __future__ import annotations

import numpy as np
import pytest

from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.neighbors import brute_force_pairs
from mlffbench.potentials import lennard_jones
from mlffbench.structures import fcc, random_displacements

from conftest import A0_LJ


@pytest.fixture(scope="module")
def lj():
    return lennard_jones("lj/cut/shift")


def _velocities(n: int, kT: float, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(0, np.sqrt(kT), (n, 3))
    return v - v.mean(axis=0)


def test_nve_trajectory_matches_lammps(lj):
    """Same start, same velocity Verlet: positions after 200 steps agree with LAMMPS."""
    from mlffbench.peers import lammps_lj

    s = random_displacements(fcc(4, A0_LJ), 0.03, 1)
    v0 = _velocities(s.n_atoms, 0.3, 2)
    integ = Integrator("nve", dt=0.005)
    res = run_md(lj, s.positions, s.box, integ, 200, velocities=v0, sample_every=200)
    x_ref, v_ref, _ = lammps_lj.run_nve(s.positions, v0, s.box, 200, timestep=integ.dt)
    # our positions are wrapped; compare minimum-image differences
    d = res.final["positions"] - x_ref
    frac = d @ np.linalg.inv(s.box).T
    d = (frac - np.round(frac)) @ s.box.T
    assert np.max(np.abs(d)) < 1e-9
    assert np.max(np.abs(res.final["velocities"] - v_ref)) < 1e-8


def test_nve_energy_drift_is_bounded(lj):
    s = fcc(4, A0_LJ)
    res = run_md(lj, s.positions, s.box, Integrator("nve", dt=0.005), 4000, kT=0.2, seed=3,
                 sample_every=100)
    e = res.samples["Etot"] / s.n_atoms
    assert res.status == "ok"
    # drift per atom over 20 tau well below the per-atom kinetic fluctuation scale
    assert abs(e[-1] - e[0]) < 1e-4
    assert np.std(e) < 1e-4


@pytest.mark.parametrize("ensemble", ["nvt_nose_hoover", "nvt_langevin"])
def test_nvt_mean_temperature_matches_target(lj, ensemble):
    s = fcc(4, A0_LJ)
    kT = 0.4
    res = run_md(lj, s.positions, s.box, Integrator(ensemble, dt=0.005, tau_T=0.25, gamma=2.0), 6000,
                 kT=kT, seed=4, sample_every=20)
    T = res.samples["T"][100:]  # drop 2000 steps of equilibration
    # statistical error from 10 block means (correlated samples)
    blocks = np.array_split(T, 10)
    sem = np.std([b.mean() for b in blocks], ddof=1) / np.sqrt(len(blocks))
    assert abs(T.mean() - kT) < max(4 * sem, 0.01 * kT), (T.mean(), sem)
    # canonical fluctuations of the instantaneous kT: std = kT sqrt(2 / 3N)
    assert np.std(T) == pytest.approx(kT * np.sqrt(2 / (3 * s.n_atoms)), rel=0.3)


def test_npt_reaches_zero_pressure_density(lj):
    """At kT = 0.02 the zero-pressure lattice constant is the 0 K one plus a tiny thermal expansion."""
    s = fcc(4, 1.60)  # start 3% too large
    res = run_md(lj, s.positions, s.box, Integrator("npt_nose_hoover", dt=0.005, tau_T=0.25, tau_P=2.5),
                 6000, kT=0.02, seed=5, sample_every=20, record=("box",))
    a = res.samples["box"][:, 0, 0] / 4
    late = slice(len(a) // 2, None)
    assert abs(a[late].mean() - A0_LJ) / A0_LJ < 2e-3
    assert abs(res.samples["P"][late].mean()) < 0.05


def test_npt_segments_in_other_boxes_share_one_program_and_match_a_fresh_one(lj):
    """NPT programs take the box as an argument (fractional all-pairs lists): a segment that starts
    in the box the last one ended in compiles nothing, and its trajectory equals the one from a
    program built for that box."""
    from mlffbench.dynamics import md

    integ = Integrator("npt_nose_hoover", dt=0.005, tau_T=0.25, tau_P=1.0)
    s = random_displacements(fcc(4, 1.60), 0.02, 3)
    kw = dict(kT=0.1, sample_every=100, chunk_steps=200, record=("box",))
    first = run_md(lj, s.positions, s.box, integ, 200, seed=1, **kw)
    R, V, box = first.final["positions"], first.final["velocities"], first.final["box"]
    assert abs(box[0, 0] - s.box[0, 0]) > 1e-3  # the barostat moved the box
    shared = run_md(lj, R, box, integ, 200, seed=2, velocities=V, **kw)
    assert shared.compile_seconds == 0.0
    md._PROGRAMS.clear()
    fresh = run_md(lj, R, box, integ, 200, seed=2, velocities=V, **kw)
    assert fresh.compile_seconds > 0.0
    for key in ("positions", "velocities", "box"):
        np.testing.assert_allclose(shared.final[key], fresh.final[key], rtol=0, atol=1e-10)


def _brute_forces(R: np.ndarray, box: np.ndarray, rc: float = 2.5) -> np.ndarray:
    F = np.zeros_like(R)
    for i, _j, d in brute_force_pairs(R, box, rc):
        r = np.linalg.norm(d)
        dphi = -48 * r**-13 + 24 * r**-7
        F[i] += dphi * d / r
    return F


def test_neighbor_overflow_is_recovered_with_exact_forces(lj):
    """A list sized with no head room for a dilute crystal, then compressed by a barostat."""
    # The stretched crystal (a = 1.75 > a0 = 1.55) collapses to a/a0 ~ 0.88 within the first
    # ~150 steps at any small pressure: at 2 epsilon/sigma^3 that takes 2 re-allocations (each a
    # new list shape, i.e. a compile); pressure 8 took 4, and 1500 steps only ran on in the
    # compressed box. 500 steps = 2 chunks: the middle sample is in the second chunk (measured
    # 2026-12-07: 2 re-allocations, box ratio 0.882 at the end).
    s = random_displacements(fcc(5, 1.75), 0.02, 6)
    res = run_md(lj, s.positions, s.box, Integrator("npt_nose_hoover", dt=0.004, tau_T=0.2, tau_P=0.5,
                                                    pressure=2.0),
                 500, kT=0.1, seed=7, sample_every=50, chunk_steps=250, capacity_multiplier=1.0,
                 record=("positions", "forces", "box"))
    assert res.status == "ok"
    assert res.neighbor_reallocations >= 1
    assert res.samples["box"][-1][0, 0] < 0.95 * s.box[0, 0]
    for k in (-1, len(res.samples["T"]) // 2):
        R, box, F = res.samples["positions"][k], res.samples["box"][k], res.samples["forces"][k]
        np.testing.assert_allclose(F, _brute_forces(R, box), rtol=0, atol=1e-9 * np.abs(F).max())


def test_blowup_stops_with_message_and_last_good_state(lj):
    s = fcc(4, A0_LJ)
    R = s.positions.copy()
    R[1] = R[0] + np.array([0.35, 0.0, 0.0])  # overlapping pair: enormous repulsion
    res = run_md(lj, R, s.box, Integrator("nve", dt=0.005), 1000, kT=0.1, sample_every=10, chunk_steps=100)
    assert res.status == "blowup"
    assert "moved" in res.message or "temperature" in res.message
    assert res.steps_done == 0
    np.testing.assert_allclose(res.final["positions"], R)


def test_replicas_match_single_runs(lj):
    """vmapped replicas give the same trajectories as one-at-a-time runs with the same seeds."""
    s = fcc(4, A0_LJ)
    both = run_md(lj, np.stack([s.positions, s.positions]), s.box, Integrator("nvt_langevin", dt=0.005), 200,
                  kT=0.3, seed=11, sample_every=100)
    assert both.samples["T"].shape == (2, 2)
    single = run_md(lj, s.positions, s.box, Integrator("nvt_langevin", dt=0.005), 200, kT=0.3, seed=11,
                    sample_every=100)
    np.testing.assert_allclose(both.final["positions"][0], single.final["positions"], atol=1e-10)
    assert not np.allclose(both.final["positions"][0], both.final["positions"][1])


def test_small_cell_forces_stay_exact_after_atoms_wrap(lj):
    """3x3x3 cells use multi-image lists with explicit image shifts; atoms crossing the cell
    boundary between rebuilds must not corrupt them (energy drifted before this was handled)."""
    s = fcc(3, A0_LJ)
    res = run_md(lj, s.positions, s.box, Integrator("nve", dt=0.005), 1000, kT=0.6, seed=8, sample_every=50,
                 record=("positions", "forces"))
    frac = res.samples["positions"] @ np.linalg.inv(s.box).T
    assert np.any(frac < 0.02) or np.any(frac > 0.98)  # some atoms sit at the boundary
    for k in (len(res.samples["T"]) // 2, -1):
        R, F = res.samples["positions"][k], res.samples["forces"][k]
        np.testing.assert_allclose(F, _brute_forces(R, s.box), rtol=0, atol=1e-9 * np.abs(F).max())
    e = res.samples["Etot"] / s.n_atoms
    assert e.max() - e.min() < 2e-3


def test_chunks_are_even_where_a_divisor_allows_and_never_change_the_trajectory(lj):
    # each distinct chunk length is its own compilation: 2500 steps in chunks of at most 2000
    # run as 2 x 1250 (one program), not 2000 + 500; a prime number of samples keeps the old split
    from mlffbench.dynamics.md import even_chunk

    assert even_chunk(2500, 2000, 50) == 1250 and even_chunk(7000, 2000, 50) == 1750
    assert even_chunk(970, 100, 10) == 100 and even_chunk(500, 2000, 50) == 500
    s = random_displacements(fcc(2, A0_LJ), 0.03, 5)
    integ = Integrator("nvt_langevin", dt=0.005)
    # 200 + 50 (25 samples: no even split) vs 5 x 50: different chunk boundaries, and the second
    # run's 50-step program is the first run's remainder chunk (2 compilations; 200 + 50 vs 1 x 250
    # compiled 3 multi-image programs)
    assert even_chunk(250, 200, 10) == 200 and even_chunk(250, 50, 10) == 50
    runs = [run_md(lj, s.positions, s.box, integ, 250, kT=0.3, seed=2, sample_every=10, chunk_steps=c,
                   record=("positions",)) for c in (200, 50)]
    assert runs[0].steps_done == runs[1].steps_done == 250
    np.testing.assert_array_equal(runs[0].samples["positions"], runs[1].samples["positions"])


def test_replica_lists_are_sized_for_the_fullest_replica():
    """A batch of replicas allocates its neighbour list for the replica with the most neighbours,
    not for replica 0: a dilute lattice (6 neighbours within rc + skin) beside a dense cluster (up
    to 56) runs without a re-allocation (sized from replica 0, the cluster overflowed at once), and
    the cluster's trajectory equals its run alone."""
    lj = lennard_jones("lj/cut/shift")
    box = np.eye(3) * 10.0
    g = np.arange(4)
    sc = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3).astype(float)
    dilute, cluster = sc * 2.5 + 0.3, sc * 1.2 + 0.3
    R = np.stack([dilute, cluster])
    integ = Integrator("nve", dt=0.002)
    both = run_md(lj, R, box, integ, 40, velocities=np.zeros_like(R), sample_every=20)
    alone = run_md(lj, cluster, box, integ, 40, velocities=np.zeros_like(cluster), sample_every=20)
    assert both.status == alone.status == "ok"
    assert both.neighbor_reallocations == 0
    assert np.abs(both.final["positions"][1] - cluster).max() > 1e-3  # the cluster moved
    np.testing.assert_allclose(both.final["positions"][1], alone.final["positions"], rtol=0, atol=1e-12)
