"""Force matching of CG models: HIP-NN-TS + repulsive prior, and a pairwise spline baseline.

CG frames are (X (F, M, 3) bead positions, Fb (F, M, 3) mapped forces, box (3, 3)), reduced units.

* priors (`mlffbench.cg.prior`): a fixed pair repulsion where the reference has no data, so
  force matching cannot leave an attractive hole there and CG MD cannot collapse. Models are
  fitted to F_ref - F_prior; the prior is stored beside the model (prior.json) and
  `load_cg_model` rebuilds model + prior.
* `fit_hipnn`: HIP-NN-TS trained by force matching with the project's trainer
  (`mlffbench.training.trainer.train_loop`, energy weight 0, the fixed prior inside the loss:
  -grad(E_model + E_prior) is compared with the mapped force), early stopping on a validation
  split, one record per epoch (the learning curve). The model is saved with one output scale
  (energy_scale = force_scale = RMS mapped force), which `trainer.output_scale` requires.
* `fit_spline`: the multiscale coarse-graining (MS-CG) baseline: a pair potential expanded in
  uniform cubic B-splines, U(r) = sum_k c_k b((r - r_k)/h), whose forces are linear in c, so force
  matching is a (ridge-regularised) linear least-squares problem solved exactly
  (Izvekov & Voth, J. Phys. Chem. B 109, 2469 (2005)).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mlffbench.cg.prior import ExponentialPrior, RepulsivePrior, prior_from_dict
from mlffbench.errors import UserError
from mlffbench.io import read_json, write_json
from mlffbench.neighbors import as_box_matrix, edge_vectors
from mlffbench.potentials.base import Potential
from mlffbench.potentials.gnn import GNN_MD_LIST_HEADROOM, load_model, params_digest, save_model
from mlffbench.potentials.gnn.hipnn_ts import HIPNNTS, hparams_with_defaults

Prior = RepulsivePrior | ExponentialPrior


# ------------------------------------------------------------------------------------------------
# geometry helpers (numpy, for fitting)
# ------------------------------------------------------------------------------------------------
def frame_edges(X: np.ndarray, box: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full edge lists of every frame within `cutoff` (minimum image), padded to a common size.

    Returns i, j (F, E) int (padding = 0) and mask (F, E) bool.
    """
    b = as_box_matrix(box)
    inv = np.linalg.inv(b)
    F, M, _ = X.shape
    lists = []
    for f in range(F):
        d = X[f][None, :, :] - X[f][:, None, :]
        s = d @ inv.T
        d = (s - np.round(s)) @ b.T
        r2 = np.sum(d * d, -1)
        np.fill_diagonal(r2, np.inf)
        lists.append(np.nonzero(r2 < cutoff * cutoff))
    E = max(len(a) for a, _ in lists)
    I = np.zeros((F, E), np.int32)
    J = np.zeros((F, E), np.int32)
    mask = np.zeros((F, E), bool)
    for f, (a, c) in enumerate(lists):
        I[f, :len(a)], J[f, :len(a)], mask[f, :len(a)] = a, c, True
    return I, J, mask


def _min_image(d, box):
    frac = d @ jnp.linalg.inv(box).T
    return (frac - jnp.round(frac)) @ box.T


# ------------------------------------------------------------------------------------------------
# prior
# ------------------------------------------------------------------------------------------------
def prior_forces(prior: Prior, X: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Prior forces on every frame, (F, M, 3)."""
    I, J, mask = frame_edges(X, box, prior.cutoff)
    b = jnp.asarray(as_box_matrix(box))

    @jax.jit
    def f(R, i, j, m):
        def e(R):
            return prior.energy_from_edges(jnp.where(m[:, None], _min_image(R[j] - R[i], b), 0.0), m)
        return -jax.grad(e)(R)

    return np.stack([np.asarray(f(jnp.asarray(X[k]), I[k], J[k], mask[k])) for k in range(len(X))])


# ------------------------------------------------------------------------------------------------
# HIP-NN-TS force matching (through the project's trainer, prior inside the loss)
# ------------------------------------------------------------------------------------------------
@dataclass
class TrainSettings:
    """Force-matching settings for `mlffbench.training.trainer.train_loop` (patience in epochs).

    loss: 'mse' or hippynn's 'rmse+mae' on standardised forces; schedule: 'cosine' or 'constant'."""

    loss: str = "mse"
    learning_rate: float = 3e-3
    batch_size: int = 4
    epochs: int = 30
    patience: int = 5
    schedule: str = "cosine"
    valid_fraction: float = 0.2
    dtype: str = "float32"
    seed: int = 0


@dataclass
class TrainResult:
    params: dict
    history: list = field(default_factory=list)
    best_valid_rmse: float = float("nan")
    steps: int = 0
    stopped: str = ""
    seconds: float = 0.0
    best_epoch: int = -1


def frame_boxes(box: np.ndarray, n: int) -> np.ndarray:
    """(n, 3, 3) box matrices from one box ((3,) or (3, 3)) or per-frame boxes (n, 3, 3)."""
    b = np.asarray(box, np.float64)
    if b.ndim == 3:
        if b.shape != (n, 3, 3):
            raise ValueError(f"per-frame boxes must have shape ({n}, 3, 3), got {b.shape}")
        return b
    return np.broadcast_to(as_box_matrix(b), (n, 3, 3))


def cg_frames(X: np.ndarray, F: np.ndarray, box: np.ndarray):
    """CG frames as the fields of an `io.Dataset` that `training.data.build_graphs` and
    `standardization` read: X, F (n, M, 3) bead positions (sigma) and mapped forces (epsilon/sigma),
    box (3, 3) or (3,), or (n, 3, 3) one per frame (frames of several state points); energies NaN
    (force matching)."""
    from types import SimpleNamespace

    n = len(X)
    return SimpleNamespace(positions=np.asarray(X, np.float64), forces=np.asarray(F, np.float64),
                           box=frame_boxes(box, n), energy=np.full(n, np.nan),
                           kT_target=np.full(n, np.nan))


def cg_graphs(X: np.ndarray, F: np.ndarray, box: np.ndarray, cutoff: float, index=None):
    """CG frames -> `training.data.GraphSet` (full edge lists, exactly `cutoff`, energies NaN);
    index: the frames to take (default all). Training keeps flat edge lists (segment sums): a
    training step on dense rows measured 0.8-0.9x as fast (docs/performance.md, "HIP-NN-TS
    neighbour sums"), while CG MD gains from them (`hipnn_cg_potential`)."""
    from mlffbench.training.data import build_graphs

    index = np.arange(len(X)) if index is None else np.asarray(index)
    return build_graphs(cg_frames(X, F, box), index, cutoff, half=False)


def fit_hipnn(X: np.ndarray, F_ref: np.ndarray, box: np.ndarray, hparams: dict, settings: TrainSettings,
              prior: Prior, progress=None, val_index: np.ndarray | None = None,
              members: int = 1) -> tuple[HIPNNTS, TrainResult, float]:
    """Force-match HIP-NN-TS + fixed prior to the mapped forces F_ref with the project's trainer.

    The loss compares -grad(E_model + E_prior) with F_ref (`trainer.make_loss(prior=...)`),
    standardised by one scale = RMS of the training frames' mapped force components; the
    validation split (`valid_fraction`, frames drawn with `seed`) drives early stopping and the
    learning curve (history: one record per epoch, val_force_rmse in epsilon/sigma, prior
    included). val_index: the validation frames (default: a random `valid_fraction` of them);
    box: one box or (n, 3, 3) per frame. members: a committee trained side by side by the
    trainer (member m initialised from seed + m, batches in its own order); then
    TrainResult.params is a list with every member's best parameters.
    Returns (module, TrainResult with the best-validation parameters, energy_scale).
    """
    import hashlib
    import tempfile

    from mlffbench.training.config import LossConfig, OptimConfig
    from mlffbench.training.data import standardization
    from mlffbench.training.trainer import member_params, train_loop

    hp = hparams_with_defaults(hparams)
    if prior.cutoff > hp["cutoff"]:
        raise UserError(f"prior cutoff {prior.cutoff:.3g} exceeds the model cutoff {hp['cutoff']:.3g}")
    if val_index is None:
        rng = np.random.default_rng(settings.seed)
        order = rng.permutation(len(X))
        n_val = max(1, int(round(settings.valid_fraction * len(X))))
        val, tr = np.sort(order[:n_val]), np.sort(order[n_val:])
    else:
        val = np.sort(np.asarray(val_index))
        tr = np.setdiff1d(np.arange(len(X)), val)
    graphs = {"train": cg_graphs(X, F_ref, box, hp["cutoff"], tr), "val": cg_graphs(X, F_ref, box, hp["cutoff"], val)}
    std = standardization(cg_frames(X, F_ref, box), tr, use_energy=False)  # one scale: RMS mapped force
    opt = OptimConfig(epochs=settings.epochs, batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                      schedule=settings.schedule, patience=settings.patience)
    loss_cfg = LossConfig(kind=settings.loss, energy_weight=0.0, force_weight=1.0)
    tag = hashlib.sha256(repr((hp, settings, np.asarray(X).shape, members)).encode()).hexdigest()[:16]
    seeds = [settings.seed + m for m in range(members)]

    def on_epoch(rec):
        if progress is not None:
            progress(rec["epoch"] + 1, settings.epochs, rec)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cg-hipnn-") as tmp:
        st = train_loop("hipnn-ts", hp, graphs, std, loss_cfg, opt, settings.seed, settings.dtype,
                        Path(tmp) / "checkpoint.msgpack", tag, on_epoch=on_epoch, prior=prior,
                        member_seeds=seeds if members > 1 else None)
    steps_per_epoch = len(tr) // min(settings.batch_size, len(tr))
    plist = [jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), member_params(st.best_params, m))
             for m in range(members)]
    res = TrainResult(params=plist[0] if members == 1 else plist, history=st.history,
                      best_valid_rmse=float(st.best_val[0]) if members == 1 else [float(v) for v in st.best_val],
                      steps=st.epoch * steps_per_epoch, stopped="early_stopping" if st.stopped_early else "max_epochs",
                      seconds=time.perf_counter() - t0,
                      best_epoch=int(st.best_epoch[0]) if members == 1 else [int(v) for v in st.best_epoch])
    return HIPNNTS(**hp), res, std["energy_scale"]


def hipnn_cg_potential(module: HIPNNTS, params, energy_scale: float, prior: Prior,
                       name: str = "cg:hipnn-ts", dtype=jnp.float64, rows: bool = True) -> Potential:
    """HIP-NN-TS + prior as a `Potential` (cutoff = the model's), computing in `dtype` (positions
    and parameters cast to it; the integrator keeps its own dtype). rows: dense neighbour rows,
    each pair both ways, summed by batched matmuls (the registry's layout for hipnn-ts); False:
    jax-md's sparse full list and segment sums (the same function; bench/hipnn_layout.py's peer).

    The fingerprint covers the parameters (`params_digest`): MD caches its compiled programs by
    fingerprint, so committee members that shared one would all run the first member's network."""
    p = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), params)

    def energy_fn(R, box, nbrs):
        dR, mask, i, j = edge_vectors(R, box, nbrs)
        e = energy_scale * jnp.sum(module.apply(p, dR, mask, None if rows else i, j, R.shape[0]))
        return e + prior.energy_from_edges(dR, mask)

    return Potential(name=name, cutoff=max(float(module.cutoff), prior.cutoff), energy_fn=energy_fn,
                     neighbor_format="dense" if rows else "full", dtype=dtype,
                     params={"prior": prior.as_dict(), "energy_scale": energy_scale, "module": repr(module)},
                     param_hash=params_digest(params), md_list_headroom=GNN_MD_LIST_HEADROOM)


# ------------------------------------------------------------------------------------------------
# pairwise spline baseline (MS-CG)
# ------------------------------------------------------------------------------------------------
def _bspline(u, xp=np):
    """Centred cubic B-spline b(u) (support |u| < 2) and its derivative db/du."""
    a = xp.abs(u)
    inner = 2.0 / 3.0 - a * a + 0.5 * a ** 3
    outer = (2.0 - a) ** 3 / 6.0
    val = xp.where(a < 1, inner, xp.where(a < 2, outer, 0.0))
    dinner = -2.0 * a + 1.5 * a * a
    douter = -0.5 * (2.0 - a) ** 2
    der = xp.sign(u) * xp.where(a < 1, dinner, xp.where(a < 2, douter, 0.0))
    return val, der


@dataclass(frozen=True)
class SplinePair:
    """U(r) = sum_k c_k b((r' - r_k)/h), r' = max(r, r_min), knots r_k = r_min + k h with
    r_k + 2h <= cutoff (so U and U' vanish at the cutoff). U is constant below r_min, where there
    are no data: a spline left free there would drop back to 0 and open an attractive hole at
    short range (CG MD would collapse into it); the prior provides the repulsion instead."""

    r_min: float
    cutoff: float
    h: float
    coef: tuple

    @property
    def knots(self) -> np.ndarray:
        return self.r_min + self.h * np.arange(len(self.coef))

    def energy(self, r):
        u = (jnp.maximum(r, self.r_min)[..., None] - jnp.asarray(self.knots, r.dtype)) / self.h
        val, _ = _bspline(u, jnp)
        return jnp.sum(val * jnp.asarray(self.coef, r.dtype), axis=-1)

    def as_dict(self) -> dict:
        return {"r_min": self.r_min, "cutoff": self.cutoff, "h": self.h, "coef": list(self.coef)}


def spline_knots(r_min: float, cutoff: float, n_knots: int) -> tuple[np.ndarray, float]:
    h = (cutoff - r_min) / (n_knots + 1)
    k = r_min + h * np.arange(n_knots)
    return k[k + 2 * h <= cutoff + 1e-12], h


def fit_spline(X: np.ndarray, F_target: np.ndarray, box: np.ndarray, r_min: float, cutoff: float,
               n_knots: int = 40, ridge: float = 1e-6) -> tuple[SplinePair, float]:
    """MS-CG least squares: pair forces sum_j -U'(r_ij) (r_i - r_j)/r_ij fitted to F_target.

    box: one box, or (F, 3, 3) one per frame (frames of several state points). Returns the spline and the training force RMSE (epsilon/sigma).
    """
    knots, h = spline_knots(r_min, cutoff, n_knots)
    K = len(knots)
    boxes = frame_boxes(box, len(X))
    A = np.zeros((K, K))
    y = np.zeros(K)
    ss = 0.0
    rows = []
    for f in range(len(X)):
        b = boxes[f]
        inv = np.linalg.inv(b)
        d = X[f][None, :, :] - X[f][:, None, :]  # d[i, j] = r_j - r_i
        s = d @ inv.T
        d = (s - np.round(s)) @ b.T
        r = np.linalg.norm(d, axis=-1)
        np.fill_diagonal(r, np.inf)
        i, j = np.nonzero(r < cutoff)
        rij = r[i, j]
        _, der = _bspline((rij[:, None] - knots[None, :]) / h)
        der = np.where((rij >= r_min)[:, None], der, 0.0)  # U is constant below r_min
        # force on i from U(r_ij): -U'(r) * (r_i - r_j)/r = U'(r) d_ij / r
        contrib = (der / h)[:, None, :] * (d[i, j] / rij[:, None])[:, :, None]  # (E, 3, K)
        G = np.zeros((X.shape[1], 3, K))
        np.add.at(G, i, contrib)
        G = G.reshape(-1, K)
        A += G.T @ G
        y += G.T @ F_target[f].ravel()
        ss += float(F_target[f].ravel() @ F_target[f].ravel())
        rows.append(G.shape[0])
    lam = ridge * np.trace(A) / K
    c = np.linalg.solve(A + lam * np.eye(K), y)
    sse = ss - 2 * c @ y + c @ A @ c
    rmse = float(np.sqrt(max(sse, 0.0) / sum(rows)))
    return SplinePair(float(r_min), float(cutoff), float(h), tuple(float(v) for v in c)), rmse


def spline_cg_potential(spline: SplinePair, prior: Prior, name: str = "cg:pair-spline",
                        dtype=jnp.float64) -> Potential:
    """Pair spline + prior as a `Potential` (half neighbour list), computing in `dtype`."""
    rc = max(spline.cutoff, prior.cutoff)

    def energy_fn(R, box, nbrs):
        dR, mask, i, j = edge_vectors(R, box, nbrs)
        r2 = jnp.sum(dR * dR, -1)
        ok = mask & (r2 > 0) & (r2 < rc * rc)
        r = jnp.sqrt(jnp.where(ok, r2, rc * rc))
        u = spline.energy(r) + prior.pair_energy(r)
        return jnp.sum(jnp.where(ok, u, 0.0))

    return Potential(name=name, cutoff=rc, energy_fn=energy_fn, neighbor_format="half", dtype=dtype,
                     params={"prior": prior.as_dict(), "spline": spline.as_dict()})


def model_forces(potential: Potential, X: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Forces of any Potential on every frame, (F, M, 3) (neighbour list allocated once).

    The neighbour update and the force call are one jitted program. jax-md's `update` called
    eagerly dispatches a `lax.cond` that is looked up in JAX's persistent compilation cache on
    every call; hundreds of such loads (one per frame) crashed the process in XLA's executable
    deserialisation (SIGSEGV in libgcc_s, issue 15), so no eager update remains here.
    """
    b = jnp.asarray(as_box_matrix(box))
    spec = potential.neighbors(b, skin=0.3, n_atoms=X.shape[1])
    nbrs = spec.allocate(jnp.asarray(X[0]), extra_capacity=16)

    @jax.jit
    def step(R, nb):
        nb = spec.update(R, nb)
        return nb, potential.forces(R, b, nb)

    out = []
    for k in range(len(X)):
        R = jnp.asarray(X[k])
        new, f = step(R, nbrs)
        if bool(new.did_buffer_overflow):
            nbrs = spec.allocate(R, extra_capacity=32)
            new, f = step(R, nbrs)
        nbrs = new
        out.append(np.asarray(f))
    return np.stack(out)


# ------------------------------------------------------------------------------------------------
# CG model directories: network (or spline) + prior, so that loading reproduces the CG MD
# ------------------------------------------------------------------------------------------------
PRIOR_FILE = "prior.json"


def save_cg_hipnn(outdir, hparams: dict, params, energy_scale: float, prior: Prior, history: list):
    """models/hipnn-ts/: params.msgpack + model_card.json (potentials.gnn.save_model) + prior.json."""
    # one output scale (trainer.output_scale): energy_scale (epsilon) = force_scale (epsilon/sigma) x 1 sigma
    std = {"energy_shift": 0.0, "energy_scale": energy_scale, "force_scale": energy_scale}
    out = save_model(outdir, "hipnn-ts", hparams, params, std,
                     card_extra={"cg": True, "prior": prior.as_dict(), "history": history,
                                 "note": "CG model; total energy = model + prior (prior.json); "
                                         "load with mlffbench.cg.fit.load_cg_model"})
    write_json(Path(out) / PRIOR_FILE, prior.as_dict())
    return out


def save_cg_spline(path, spline: SplinePair, prior: Prior, train_force_rmse: float) -> None:
    """models/pair_spline.json: spline coefficients, prior and training force RMSE (epsilon/sigma)."""
    write_json(path, {"spline": spline.as_dict(), "prior": prior.as_dict(), "train_force_rmse": train_force_rmse})


def load_cg_model(path, dtype=jnp.float64) -> Potential:
    """A CG model with its prior: a HIP-NN-TS directory (params + prior.json) or a pair-spline JSON,
    computing in `dtype`.

    UserError when the prior or the model is missing or malformed.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        d = read_json(path)
        if not isinstance(d, dict) or "spline" not in d or "prior" not in d:
            raise UserError(f"{path}: not a CG pair-spline file (needs 'spline' and 'prior')")
        sp = d["spline"]
        spline = SplinePair(float(sp["r_min"]), float(sp["cutoff"]), float(sp["h"]),
                            tuple(float(c) for c in sp["coef"]))
        return spline_cg_potential(spline, prior_from_dict(d["prior"]), dtype=dtype)
    if not (path / PRIOR_FILE).is_file():
        raise UserError(f"{path}: {PRIOR_FILE} is missing (not a CG model directory)")
    card, params = load_model(path)
    if card.get("architecture") != "hipnn-ts":
        raise UserError(f"{path}: CG models are hipnn-ts, got {card.get('architecture')!r}")
    module = HIPNNTS(**hparams_with_defaults(card["hparams"]))
    params = jax.tree_util.tree_map(jnp.asarray, params)
    return hipnn_cg_potential(module, params, float(card["standardization"]["energy_scale"]),
                              prior_from_dict(read_json(path / PRIOR_FILE)), dtype=dtype)
