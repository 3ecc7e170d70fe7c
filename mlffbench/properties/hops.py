"""Vacancy hops from lattice-site occupancy.

Every sample, each atom is mapped to its nearest perfect-lattice site (minimum image); the
vacancy is the one site nobody occupies. A *hop* is a change of the empty site that persists
for `persist` consecutive samples, so an atom that rattles towards the vacancy and comes back
(a back-and-forth vibration) is not counted, while a real hop followed later by a real back-hop
counts twice. Samples where the map is not one-vacancy (two atoms on one site, several empty
sites) are ambiguous: they neither confirm nor break a pending hop. When the crystal holds more
than one empty site for `defect_persist` samples in a row (a Frenkel pair, or melting), the
replica is marked defective and the detector stops counting.

Detection is streaming (`HopDetector.feed`), so long runs can be processed chunk by chunk and
checkpointed (`state()` / `from_state()`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np


def site_occupancy(positions, sites, box) -> tuple[np.ndarray, np.ndarray]:
    """Vacant site and number of empty sites per sample.

    Args:
        positions: (S, N, 3) or (N, 3) Cartesian positions (any image).
        sites: (M, 3) perfect-lattice sites, M > N.
        box: (3, 3) box, columns = lattice vectors.

    Returns:
        vacancy: (S,) index of the empty site, or -1 when there is not exactly one;
        n_empty: (S,) number of empty sites.
    """
    P = np.asarray(positions, dtype=np.float64)
    single = P.ndim == 2
    P = P[None] if single else P
    vac, n_empty = _occupancy_jit(jnp.asarray(P), jnp.asarray(np.asarray(sites, np.float64)),
                                  jnp.asarray(np.asarray(box, np.float64)))
    vac, n_empty = np.asarray(vac), np.asarray(n_empty)
    return (vac[0], n_empty[0]) if single else (vac, n_empty)


@jax.jit
def _occupancy_jit(P, sites, box):
    inv = jnp.linalg.inv(box)
    M = sites.shape[0]

    def one(R):
        d = R[:, None, :] - sites[None, :, :]
        f = d @ inv.T
        d = (f - jnp.round(f)) @ box.T
        nearest = jnp.argmin(jnp.sum(d * d, axis=-1), axis=1)
        counts = jnp.zeros(M, jnp.int32).at[nearest].add(1)
        empty = counts == 0
        n_empty = jnp.sum(empty)
        vac = jnp.where(n_empty == 1, jnp.argmax(empty), -1)
        return vac, n_empty

    return jax.lax.map(one, P)


@dataclass
class Hop:
    """One detected hop: time it started (the first sample at the new site), from/to sites."""

    time: float
    from_site: int
    to_site: int

    def as_dict(self) -> dict:
        return {"time": self.time, "from_site": self.from_site, "to_site": self.to_site}


@dataclass
class HopDetector:
    """Streaming hop counter for one replica (see module docstring).

    Attributes:
        persist: samples the new empty site must hold before a change counts as a hop.
        defect_persist: consecutive samples with more than one empty site that stop the replica.
        site: the committed vacancy site (-1 before the first unambiguous sample).
        hops: detected hops.
        stopped: a message when the replica was stopped (defects / melting), else ''.
        valid_time: simulated time up to which counting is valid (last sample before a stop).
    """

    persist: int = 5
    defect_persist: int = 5
    site: int = -1
    candidate: int = -1
    candidate_count: int = 0
    candidate_time: float = 0.0
    defect_count: int = 0
    defect_start: float = 0.0
    hops: list = field(default_factory=list)
    stopped: str = ""
    valid_time: float = 0.0
    n_samples: int = 0

    def feed(self, vacancy: np.ndarray, n_empty: np.ndarray, times: np.ndarray) -> int:
        """Process samples in order. Returns the number of new hops."""
        new = 0
        for v, ne, t in zip(np.asarray(vacancy).tolist(), np.asarray(n_empty).tolist(),
                            np.asarray(times, dtype=float).tolist()):
            if self.stopped:
                break
            self.n_samples += 1
            if ne > 1:
                if self.defect_count == 0:
                    self.defect_start = t
                self.defect_count += 1
                if self.defect_count >= self.defect_persist:
                    self.stopped = (f"{ne} empty lattice sites for {self.defect_count} samples from "
                                    f"t = {self.defect_start:.4g}: Frenkel pair or melting; replica stopped")
                    self.valid_time = min(self.valid_time, self.defect_start)
                    break
            else:
                self.defect_count = 0
            self.valid_time = t
            if v < 0:
                continue  # ambiguous sample: neither confirms nor breaks a pending hop
            if self.site < 0:
                self.site = v
                continue
            if v == self.site:
                self.candidate, self.candidate_count = -1, 0
                continue
            if v == self.candidate:
                self.candidate_count += 1
            else:
                self.candidate, self.candidate_count, self.candidate_time = v, 1, t
            if self.candidate_count >= self.persist:
                self.hops.append(Hop(self.candidate_time, self.site, self.candidate))
                self.site, self.candidate, self.candidate_count = self.candidate, -1, 0
                new += 1
        return new

    @property
    def n_hops(self) -> int:
        return len(self.hops)

    def state(self) -> dict:
        """JSON-able state for checkpoints."""
        d = {k: getattr(self, k) for k in ("persist", "defect_persist", "site", "candidate",
                                          "candidate_count", "candidate_time", "defect_count",
                                          "defect_start", "stopped", "valid_time", "n_samples")}
        d["hops"] = [h.as_dict() for h in self.hops]
        return d

    @classmethod
    def from_state(cls, d: dict) -> "HopDetector":
        d = dict(d)
        hops = [Hop(h["time"], h["from_site"], h["to_site"]) for h in d.pop("hops", [])]
        return cls(hops=hops, **d)


def count_hops(positions, sites, box, times, persist: int = 5, defect_persist: int = 5) -> HopDetector:
    """Convenience: run a `HopDetector` over a whole (S, N, 3) trajectory of one replica."""
    vac, ne = site_occupancy(positions, sites, box)
    det = HopDetector(persist=persist, defect_persist=defect_persist)
    det.feed(vac, ne, times)
    return det


def remove_drift(positions, box, previous=None, drift=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subtract the crystal's centre-of-mass drift (Langevin noise makes it random-walk, which
    would slowly carry every atom towards a neighbouring site).

    The drift is accumulated sample to sample from minimum-image displacements (samples must be
    close enough that no atom moves half a box in between). positions: (S, N, 3) wrapped;
    previous: (N, 3) last sample of the previous chunk (None: start here with zero drift);
    drift: (3,) accumulated so far. Returns (corrected (S, N, 3), last raw sample, drift).
    """
    P = np.asarray(positions, np.float64)
    box = np.asarray(box, np.float64)
    inv = np.linalg.inv(box)
    prev = P[0] if previous is None else np.asarray(previous, np.float64)
    d = np.zeros(3) if drift is None else np.asarray(drift, np.float64).copy()
    out = np.empty_like(P)
    for s in range(len(P)):
        step = P[s] - prev
        f = step @ inv.T
        d = d + np.mean((f - np.round(f)) @ box.T, axis=0)
        out[s] = P[s] - d
        prev = P[s]
    return out, prev, d
