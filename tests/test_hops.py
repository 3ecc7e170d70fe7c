"""Hop detection on synthetic trajectories with known hops, vibrations and back-hops."""

import numpy as np

import mlffbench  # noqa: F401
from mlffbench.properties.hops import HopDetector, count_hops, site_occupancy
from mlffbench.structures import fcc, remove_atom


def _synthetic(seed=0, persist=5):
    """A vacancy walk with 4 real hops (one of them straight back), plus transient rattles.

    Returns positions (S, N, 3), sites, box, times, the true hop list [(from, to)]."""
    rng = np.random.default_rng(seed)
    crystal = fcc(3, 1.55)
    vac = remove_atom(crystal, 0)
    sites, box = vac.sites, vac.box
    occupied = vac.occupied.copy()  # atom -> site
    S = 400
    traj = np.empty((S, vac.n_atoms, 3))
    true_hops = []
    hop_at = {60: None, 140: None, 220: "back", 300: None}
    empty = 0
    previous_empty = None
    rattle = set(range(20, 23)) | set(range(100, 103)) | set(range(250, 254))  # shorter than persist
    rattler = None
    for t in range(S):
        if t in hop_at:
            d = np.linalg.norm((sites[occupied] - sites[empty] + 0.5 * np.diag(box)) % np.diag(box)
                               - 0.5 * np.diag(box), axis=1)
            nn = np.flatnonzero(np.abs(d - 1.55 / np.sqrt(2)) < 1e-6)
            if hop_at[t] == "back":
                atom = int(np.flatnonzero(occupied == previous_empty)[0]) if previous_empty is not None else nn[0]
                atom = atom if atom in nn else nn[0]
            else:
                atom = int(rng.choice(nn))
            true_hops.append((empty, int(occupied[atom])))
            previous_empty = empty
            empty, occupied[atom] = int(occupied[atom]), empty
        R = sites[occupied] + rng.normal(0, 0.05, (vac.n_atoms, 3))  # thermal vibrations
        if t in rattle:  # a neighbour swings most of the way into the vacancy and comes back
            if rattler is None or t - 1 not in rattle:
                d = np.linalg.norm(sites[occupied] - sites[empty], axis=1)
                rattler = int(np.argmin(np.where(d > 1e-9, d, np.inf)))
            R[rattler] = sites[empty] + 0.1 * (sites[occupied[rattler]] - sites[empty])
        traj[t] = R
    return traj, sites, box, np.arange(S) * 0.1, true_hops


def test_site_occupancy_finds_the_vacancy():
    crystal = fcc(3, 1.55)
    vac = remove_atom(crystal, 17)
    v, n = site_occupancy(vac.positions, vac.sites, vac.box)
    assert v == 17 and n == 1


def test_counts_exactly_the_injected_hops():
    traj, sites, box, times, true_hops = _synthetic()
    det = count_hops(traj, sites, box, times, persist=5)
    assert det.n_hops == len(true_hops) == 4
    assert [(h.from_site, h.to_site) for h in det.hops] == true_hops
    # the back-hop is counted as a hop in its own right
    assert true_hops[2] == (true_hops[1][1], true_hops[1][0])
    np.testing.assert_allclose([h.time for h in det.hops], [6.0, 14.0, 22.0, 30.0])
    # without persistence the rattles would be counted: the filter is what removes them
    assert count_hops(traj, sites, box, times, persist=1).n_hops == 4 + 2 * 3


def test_streaming_and_checkpoint_state_give_the_same_count():
    traj, sites, box, times, true_hops = _synthetic(seed=3)
    v, n = site_occupancy(traj, sites, box)
    det = HopDetector(persist=5)
    for lo in range(0, len(v), 37):  # chunks split pending hops
        det = HopDetector.from_state(det.state())
        det.feed(v[lo:lo + 37], n[lo:lo + 37], times[lo:lo + 37])
    assert det.n_hops == len(true_hops)


def test_multiple_vacancies_stop_the_replica():
    crystal = fcc(3, 1.55)
    vac = remove_atom(crystal, 0)
    R = np.repeat(vac.positions[None], 20, axis=0)
    R[10:, 5] = vac.positions[6] + 0.01  # atom 5 leaves its site: a Frenkel pair from t = 10
    det = count_hops(R, vac.sites, vac.box, np.arange(20.0), persist=3, defect_persist=4)
    assert det.stopped and det.n_hops == 0
    assert det.valid_time == 10.0


def test_drift_of_the_whole_crystal_is_not_a_hop():
    """Langevin noise random-walks the centre of mass; after drift removal a crystal that slid by
    more than half a neighbour distance still shows no hop."""
    from mlffbench.properties.hops import remove_drift
    from mlffbench.structures import wrap_positions

    crystal = fcc(3, 1.55)
    vac = remove_atom(crystal, 0)
    S = 60
    shift = np.linspace(0, 1.0, S)[:, None] * np.array([1.0, 0.4, 0.0])  # slides 1.08 sigma
    traj = np.array([wrap_positions(vac.positions + s, vac.box) for s in shift])
    raw = count_hops(traj, vac.sites, vac.box, np.arange(S) * 1.0, persist=3)
    assert raw.n_hops > 0 or raw.stopped  # without drift removal the mapping breaks
    fixed, _, drift = remove_drift(traj[:30], vac.box)
    fixed2, _, drift = remove_drift(traj[30:], vac.box, traj[29], drift)
    det = count_hops(np.concatenate([fixed, fixed2]), vac.sites, vac.box, np.arange(S) * 1.0, persist=3)
    assert det.n_hops == 0 and not det.stopped
    np.testing.assert_allclose(drift, shift[-1], atol=1e-12)
