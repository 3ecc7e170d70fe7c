"""What the mapped reference can and cannot decide (reduced units: r in sigma).

* Noise floor: `split_half_distance` of per-frame RDFs, i.e. the RDF distance (the benchmark's
  own `rdf_distance`, same grid and metric) between the first and the second half of the mapped
  reference trajectory. Contiguous halves keep the time correlation inside each half, so this is
  the distance two independent reference runs of half the length would show. For i.i.d. per-frame
  noise of variance sigma^2 per bin, F frames: E[l2^2] = 4 sigma^2 / F; an exact model sampled as
  long as the reference is expected at about 1/sqrt(2) of the floor. A model distance within
  the floor is not distinguishable from the reference.
  With independent replicas (`reference.replicas` >= 2), `replica_noise_floor` replaces it: the
  same expectation from the spread of the replica means, which needs no assumption about the
  time correlation inside a trajectory.
* Contact check: `contact_check` fails a model whose CG MD brings two beads closer than the
  reference's smallest sampled distance minus a margin (the reference never shows such pairs, so
  nothing in the data supports them).
"""

from __future__ import annotations

import numpy as np

from mlffbench.neighbors import as_box_matrix
from mlffbench.properties.structure import rdf, rdf_distance


def frame_rdfs(X: np.ndarray, box: np.ndarray, r_max: float, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame g(r): X (F, M, 3) -> r (n_bins,), G (F, n_bins); G.mean(0) is `rdf` of all frames."""
    out = [rdf(x[None], box, r_max, n_bins) for x in np.asarray(X)]
    return out[0][0], np.stack([g for _, g in out])


def split_half_distance(r: np.ndarray, G: np.ndarray, metric: str = "l2") -> float:
    """RDF distance between the mean g of the first and of the second half of G (F, n_bins), F >= 2
    (an odd last frame is dropped)."""
    G = np.asarray(G, np.float64)
    h = len(G) // 2
    if h < 1:
        raise ValueError("the noise floor needs at least 2 frames")
    return rdf_distance(r, G[:h].mean(0), G[h:2 * h].mean(0), metric)


def replica_noise_floor(r: np.ndarray, G: np.ndarray, replica: np.ndarray, metric: str = "l2") -> float:
    """Expected RDF distance between two independent halves of the replicas, from the spread of
    the replica means: G (F, n_bins) per-frame g(r), replica (F,) int with R >= 2 distinct values.

    Replica k's mean g_k has per-bin variance s_b^2 (unbiased sample variance over the R
    replicas, which are independent whatever the time correlation inside each); the difference of
    two half-means (R/2 replicas each) has variance 4 s_b^2 / R. So 'l2' -> sqrt(mean_b 4 s_b^2/R)
    (the root of E[l2^2], as `split_half_distance` estimates for i.i.d. frames) and 'l1' ->
    mean_b sqrt(2/pi) sqrt(4 s_b^2/R) (Gaussian |X|). Replicas of unequal length are weighted
    equally (their means are the samples)."""
    G = np.asarray(G, np.float64)
    replica = np.asarray(replica)
    if replica.shape != (len(G),):
        raise ValueError(f"replica must have shape ({len(G)},), got {replica.shape}")
    ids = np.unique(replica)
    if len(ids) < 2:
        raise ValueError("the replica noise floor needs at least 2 replicas")
    means = np.stack([G[replica == k].mean(0) for k in ids])
    var_diff = 4.0 * means.var(axis=0, ddof=1) / len(ids)
    if metric == "l2":
        return float(np.sqrt(np.mean(var_diff)))
    if metric == "l1":
        return float(np.mean(np.sqrt(2.0 / np.pi) * np.sqrt(var_diff)))
    raise ValueError(f"unknown RDF metric {metric!r} (choose 'l2' or 'l1')")


def noise_floor(r: np.ndarray, G: np.ndarray, replica: np.ndarray | None, metric: str = "l2") -> tuple[float, str]:
    """(floor, method): `replica_noise_floor` when the frames come from >= 2 independent replicas,
    else `split_half_distance` of the one trajectory (which underestimates when the trajectory's
    slow fluctuations outlast a half)."""
    if replica is not None and len(np.unique(replica)) >= 2:
        return replica_noise_floor(r, G, replica, metric), f"replicas ({len(np.unique(replica))})"
    return split_half_distance(r, G, metric), "split-half"


def min_pair_distances(X: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Smallest bead-bead distance of every frame (minimum image), (F,) in sigma; X (F, M, 3)."""
    b = as_box_matrix(box)
    inv = np.linalg.inv(b)
    X = np.asarray(X, np.float64)
    i, j = np.triu_indices(X.shape[1], 1)
    out = np.empty(len(X))
    for f, x in enumerate(X):
        d = (x[j] - x[i]) @ inv.T
        d = (d - np.round(d)) @ b.T
        out[f] = np.sqrt(np.min(np.sum(d * d, -1)))
    return out


def contact_check(model_min: float, reference_min: float, margin: float) -> dict:
    """{ok, model_min, reference_min, margin (sigma), reason}: ok iff model_min >= reference_min - margin."""
    ok = bool(model_min >= reference_min - margin)
    reason = None if ok else (f"beads at {model_min:.3f} sigma, closer than the reference's smallest sampled "
                              f"distance {reference_min:.3f} minus the margin {margin:g}")
    return {"ok": ok, "model_min": {"value": float(model_min), "unit": "sigma"},
            "reference_min": {"value": float(reference_min), "unit": "sigma"},
            "margin": {"value": float(margin), "unit": "sigma"}, "reason": reason}
