"""Molecular dynamics with jax-md integrators, run in jit-compiled chunks.

Design (why it looks like this):
* Steps run inside `lax.scan` chunks of `chunk_steps`; Python only sees chunk boundaries. The
  neighbour list is updated every step inside the chunk and its overflow flag is checked after
  the chunk, outside `jit` (it is a device value). On overflow the list is re-allocated with
  more room, sized from the positions that overflowed, and the *whole chunk is re-run from its
  start*, so no step ever used a truncated list.
* Blow-up detection: the largest single-step displacement and non-finite values are tracked in
  the scan; a chunk that exceeds `max_step_displacement` or `max_kT` stops the run, and the state
  at the start of that chunk is returned as the last good frame.
* Replicas: positions of shape (n_replicas, N, 3) run as one vmapped, jitted call sharing the
  box. Each replica gets its own RNG key (seed, replica index).
* Temperatures may follow a per-step schedule (the generate ramp) passed through the scan.

Units: reduced (sigma, epsilon, tau, m = 1, k_B = 1). Temperature counts 3N degrees of freedom,
like jax-md's thermostats (LAMMPS `compute temp` uses 3N - 3).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax_md import simulate, space

from mlffbench.errors import SimulationError
from mlffbench.neighbors import (as_box_matrix, batched_update, capacity, forced_rebuild, over_batch,
                                 pad_to_capacity)
from mlffbench.potentials.base import Potential
from mlffbench.sharding import pad_leading, padded_size, shard_batch

ENSEMBLES = ("nve", "nvt_nose_hoover", "nvt_langevin", "npt_nose_hoover")
RECORDABLE = ("positions", "velocities", "forces", "stress", "box")


@dataclass(frozen=True)
class Integrator:
    """Integrator settings, reduced units.

    Attributes:
        ensemble: one of ENSEMBLES.
        dt: time step (tau), rounded to the nearest float32 (jax-md integrates that value).
        tau_T: thermostat time constant (tau), Nose-Hoover.
        gamma: Langevin friction (1/tau).
        pressure: target pressure for NPT (epsilon/sigma^3).
        tau_P: barostat time constant (tau).
        chain_length: Nose-Hoover chain length (>= 2: length 1 is wrong in jax-md, issue #351).
    """

    ensemble: str = "nve"
    dt: float = 0.002
    tau_T: float = 0.2
    gamma: float = 1.0
    pressure: float = 0.0
    tau_P: float = 2.0
    chain_length: int = 3

    def __post_init__(self) -> None:
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {self.ensemble!r}")
        if self.chain_length < 2:
            raise ValueError("Nose-Hoover chain_length must be >= 2 (length 1 is wrong in jax-md)")
        if self.dt <= 0:
            raise ValueError("dt must be positive")
        # jax-md's velocity Verlet casts dt to float32 whatever the dtype; use that value
        # everywhere so that reported times (and peers such as LAMMPS) use the step integrated.
        object.__setattr__(self, "dt", float(np.float32(self.dt)))


@dataclass
class MDResult:
    """What a run produced.

    samples: dict of arrays with leading axis n_samples (then n_replicas if replicated):
        'step', 'time', 'kT', 'T', 'Epot', 'Ekin', 'Etot', 'P' (reduced; Epot/P NaN for force-only
        models) and any recorded 'positions', 'velocities', 'forces', 'stress', 'box'.
    final: dict with 'positions', 'velocities', 'box' of the last good state (Cartesian).
    status: 'ok' or 'blowup'; message says why it stopped.
    """

    samples: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    status: str = "ok"
    message: str = ""
    steps_done: int = 0
    neighbor_reallocations: int = 0
    compile_seconds: float = 0.0
    run_seconds: float = 0.0

    @property
    def atom_steps_per_second(self) -> float:
        n_atoms = int(np.prod(self.final["positions"].shape[:-1]))
        return n_atoms * self.steps_done / max(self.run_seconds, 1e-12)


def _make_integrator(potential: Potential, box: jnp.ndarray, integ: Integrator, kT0: float,
                     dtype=jnp.float64):
    """jax-md (init_fn, apply_fn, shift_fn) for the chosen ensemble."""
    dt = jnp.asarray(integ.dt, dtype)
    if integ.ensemble == "npt_nose_hoover":
        if not potential.conservative:
            raise SimulationError("NPT needs an energy (pressure); this model predicts forces only")
        potential.require("stress", "NPT")
        _, shift = space.periodic_general(box, fractional_coordinates=True)

        def energy_frac(S, neighbor=None, box=None, perturbation=None, **_):
            # jax-md's barostat takes dU/dV through `perturbation` (a scalar 1 + eps or a matrix
            # applied to every displacement, see space.periodic_general); honour it as a strain.
            if perturbation is not None:
                p = jnp.asarray(perturbation)
                box = p * box if p.ndim == 0 else p @ box
            # space.transform (not S @ box.T): its custom JVP makes grad w.r.t. fractional S the
            # real-space force, which is what jax-md's NPT integrator adds to Cartesian momenta.
            return potential.energy(space.transform(box, S), box, neighbor)

        init, apply = simulate.npt_nose_hoover(
            energy_frac, shift, dt, jnp.asarray(integ.pressure, dtype),
            jnp.asarray(kT0, dtype),
            barostat_kwargs={"chain_length": integ.chain_length, "tau": integ.tau_P},
            thermostat_kwargs={"chain_length": integ.chain_length, "tau": integ.tau_T})
        return init, apply, shift

    _, shift = space.periodic_general(box, fractional_coordinates=False)
    if potential.conservative:
        def field_fn(R, neighbor=None, **_):
            return potential.energy(R, box, neighbor)
    else:
        def field_fn(R, neighbor=None, **_):
            return potential.forces(R, box, neighbor).astype(R.dtype)

    if integ.ensemble == "nve":
        init, apply = simulate.nve(field_fn, shift, dt)
    elif integ.ensemble == "nvt_nose_hoover":
        init, apply = simulate.nvt_nose_hoover(field_fn, shift, dt, jnp.asarray(kT0, dtype),
                                               chain_length=integ.chain_length, tau=integ.tau_T)
    else:
        init, apply = simulate.nvt_langevin(field_fn, shift, dt, jnp.asarray(kT0, dtype),
                                            gamma=integ.gamma)
    return init, apply, shift


def _cartesian(state, npt: bool):
    if npt:
        box = simulate.npt_box(state)
        return state.position @ box.T, box
    return state.position, None


def _observe(potential: Potential, R, box, momentum, force, nbrs, record, mass) -> dict:
    """Observables of one system at one sample (reduced units). mass: scalar or (N, 1).

    Energy and stress come from `potential.evaluate` (what the model has; NaN where it has
    none); the forces are the integrator's (its evaluation's unused forces are compiled away).
    """
    n = R.shape[0]
    ekin = 0.5 * jnp.sum(momentum * momentum / mass)
    kT_inst = 2.0 * ekin / (3 * n)
    volume = jnp.abs(jnp.linalg.det(box))
    ev = potential.evaluate(R, box, nbrs, stress=True)
    nan = jnp.asarray(jnp.nan, jnp.float64)
    epot = nan if ev.energy is None else ev.energy.astype(jnp.float64)
    if ev.stress is None:
        stress, pressure = jnp.full((3, 3), jnp.nan), nan
    else:
        stress = ev.stress.astype(jnp.float64)
        pressure = 2.0 * ekin / (3.0 * volume) - jnp.trace(stress) / 3.0
    out = {"T": kT_inst, "Ekin": ekin, "Epot": epot, "Etot": epot + ekin, "P": pressure}
    if "positions" in record:
        out["positions"] = R
    if "velocities" in record:
        out["velocities"] = momentum / mass
    if "forces" in record:
        out["forces"] = force
    if "stress" in record:
        out["stress"] = stress
    if "box" in record:
        out["box"] = box
    return out


def _replica_neighbor_update(update_nbrs: Callable, box0, skin: float, n_rep: int, npt: bool) -> Callable:
    """(R (n_rep, N, 3), nbrs batched, boxes or None) -> nbrs for all replicas: one rebuild
    decision for the batch (`neighbors.batched_update`); NPT (one system, the box changes) uses
    jax-md's update directly."""
    if npt:
        return over_batch(lambda r, nb, box: update_nbrs(r, nb, box=box), n_rep)
    update = batched_update(update_nbrs, box0, skin)
    return lambda R, nbrs, boxes=None: update(R, nbrs)


def _chunk_fn(potential: Potential, apply, update_nbrs, box0, npt: bool, sample_every: int,
              record: tuple[str, ...], mass, n_rep: int, skin: float):
    """Replicas batched on a leading axis: (state, nbrs, kT per step (n_steps,)) ->
    (state, nbrs, max step displacement per replica (n_rep,), samples (n_samples, n_rep, ...))."""
    update_all = _replica_neighbor_update(update_nbrs, box0, skin, n_rep, npt)

    def step_displacement(old, new):
        if npt:
            df = new.position - old.position
            d = (df - jnp.round(df)) @ simulate.npt_box(new).T
        else:
            d = new.position - old.position  # shift_fn wraps; unwrap by minimum image
            frac = d @ jnp.linalg.inv(box0).T
            d = (frac - jnp.round(frac)) @ box0.T
        disp = jnp.max(jnp.sqrt(jnp.sum(d * d, axis=-1))).astype(jnp.float64)
        return jnp.where(jnp.isfinite(disp), disp, jnp.inf)

    def boxes(state):
        return jax.vmap(simulate.npt_box)(state) if npt else None

    def step(carry, kT):
        state, nbrs, max_disp = carry
        nbrs = update_all(state.position, nbrs, boxes(state))
        new = over_batch(lambda s, nb: apply(s, neighbor=nb, kT=kT), n_rep)(state, nbrs)
        disp = over_batch(step_displacement, n_rep)(state, new)
        return (new, nbrs, jnp.maximum(max_disp, disp)), None

    def observe(state, nbrs):
        R, box = _cartesian(state, npt)
        return _observe(potential, R, box0 if box is None else box, state.momentum, state.force, nbrs,
                        record, mass)

    def block(carry, kTs):
        carry, _ = lax.scan(step, carry, kTs)
        state, nbrs, _ = carry
        nbrs_now = update_all(state.position, nbrs, boxes(state))
        obs = over_batch(observe, n_rep)(state, nbrs_now)
        obs["kT"] = jnp.broadcast_to(kTs[-1], (n_rep,))
        return carry, obs

    def chunk(state, nbrs, kT_steps):
        n_blocks = kT_steps.shape[0] // sample_every
        blocks = kT_steps.reshape(n_blocks, sample_every)
        start = (state, nbrs, jnp.zeros((n_rep,), jnp.float64))
        (state, nbrs, max_disp), samples = lax.scan(block, start, blocks)
        return state, nbrs, max_disp, samples

    return chunk


@dataclass
class _Program:
    """Everything jit-compiled for one (potential, box, integrator, shapes) combination, kept so
    that repeated `run_md` calls (segments of a long run) do not re-trace and re-compile."""

    spec: Any
    npt: bool
    init: Callable
    chunk: Callable
    update_from_one: Callable
    update_each: Callable
    rebuild_into: Callable
    compiled: dict = field(default_factory=dict)
    template: Any = None  # a list of the capacity compiled so far, rebuilt into by later runs

    def list_coords(self, R: np.ndarray, box) -> jnp.ndarray:
        """Positions in the coordinates the neighbour list is built from (fractional for NPT).
        box: (3, 3), the box R is in."""
        if not self.npt:
            return jnp.asarray(R)
        return jnp.asarray(R @ np.linalg.inv(np.asarray(box, np.float64)).T.astype(np.asarray(R).dtype))

    def neighbors(self, R: np.ndarray, box, extra: int = 0):
        """Lists for positions R (n_rep, N, 3), Cartesian, in `box` (3, 3): rebuilt into the
        capacity already compiled when they fit (a fresh allocation sizes the list from these
        positions, i.e. a new shape and a new compilation every run), else one allocation per
        replica with `extra` head room, the largest kept, then each replica's own list in its
        capacity. (Sizing from replica 0 alone overflowed at the first rebuild whenever another
        replica started with more neighbours: one more allocation and compilation per run.)"""
        coords = self.list_coords(R, box)
        box = jnp.asarray(box)
        if self.template is not None and extra == 0:
            nbrs = self.rebuild_into(coords, self.template, box)
            if not bool(jnp.any(nbrs.did_buffer_overflow)):
                return nbrs
        kw = {"box": box} if self.npt else {}
        nb = max((self.spec.allocate(c, extra_capacity=extra, **kw) for c in coords), key=capacity)
        if self.template is not None:
            nb = pad_to_capacity(nb, capacity(self.template))
        self.template = nb
        return self.update_from_one(coords, nb, box)

    def run_chunk(self, state, nbrs, kT_steps) -> tuple[tuple, float]:
        """One compiled chunk: ((state, nbrs, max step displacement (n_rep,), samples), compile
        seconds). Programs are compiled ahead of time per (length, list shapes), so compile time
        is timed apart (a persistent-cache hit makes it a load)."""
        state, nbrs = shard_batch((state, nbrs))  # replicas over devices (no-op on one device)
        key = (kT_steps.shape[0], jax.tree_util.tree_structure(nbrs),
               tuple(jnp.shape(x) for x in jax.tree_util.tree_leaves(nbrs)))
        compile_s = 0.0
        if key not in self.compiled:
            t0 = time.perf_counter()
            self.compiled[key] = self.chunk.lower(state, nbrs, kT_steps).compile()
            compile_s = time.perf_counter() - t0
        return self.compiled[key](state, nbrs, kT_steps), compile_s


def even_chunk(n_steps: int, chunk_steps: int, sample_every: int) -> int:
    """Steps per chunk: a multiple of `sample_every`, at most `chunk_steps` (rounded down to one)
    where possible, and dividing `n_steps` evenly when a divisor needs at most twice the chunks.

    Each distinct chunk length is its own XLA compilation: 2500 steps in chunks of 2000 compile a
    2000- and a 500-step program, in chunks of 1250 one. `n_steps` is a multiple of sample_every."""
    per = max(1, chunk_steps // sample_every)  # samples per chunk, requested
    blocks = max(1, n_steps // sample_every)
    fewest = -(-blocks // per)
    for n_chunks in range(fewest, 2 * fewest + 1):
        if blocks % n_chunks == 0:
            return blocks // n_chunks * sample_every
    return per * sample_every


def _headroom(potential: Potential, capacity_multiplier: float | None) -> float:
    """The caller's neighbour-list capacity multiplier, else the potential's own MD head room."""
    return potential.md_list_headroom if capacity_multiplier is None else float(capacity_multiplier)


_PROGRAMS: OrderedDict[tuple, _Program] = OrderedDict()
_MAX_PROGRAMS = 8


def _program(potential: Potential, box_m, integrator: Integrator, dtype, npt: bool,
             sample_every: int, record: tuple[str, ...], mass_j, n_rep: int, n_atoms: int, skin: float,
             capacity_multiplier: float) -> _Program:
    """The cached `_Program` for these settings (built on first use; least recently used of
    `_MAX_PROGRAMS` evicted). Keyed by the potential's fingerprint, never its id, and by the box
    unless nothing in the program depends on it: NPT with a box-free neighbour list (fractional
    all-pairs, `NeighborSpec.box_free`) takes the box as an argument everywhere, so every NPT
    segment of a protocol (each starts in the box the last one ended in) shares one program."""
    box_np, mass_np = np.asarray(box_m), np.asarray(mass_j)
    spec = potential.neighbors(box_m, skin=skin, fractional=npt, n_atoms=n_atoms,
                               capacity_multiplier=capacity_multiplier)
    box_key = None if (npt and spec.box_free) else box_np.tobytes()
    # kT0 is not part of the key: jax-md's integrators take kT from the call whenever it is
    # passed (init and every step here pass it), so the value they were built with never matters
    key = (potential.fingerprint, box_key, jnp.dtype(dtype).name, integrator, npt, sample_every,
           record, mass_np.shape, mass_np.tobytes(), n_rep, n_atoms, float(skin), float(capacity_multiplier))
    hit = _PROGRAMS.get(key)
    if hit is not None:
        _PROGRAMS.move_to_end(key)
        return hit
    # half a cell along the first lattice vector, in the coordinates the list is built from
    half_cell = jnp.asarray([0.5, 0.0, 0.0], dtype) if npt else 0.5 * box_m[:, 0]
    init, apply, _ = _make_integrator(potential, box_m, integrator, 1.0, dtype)

    def update(r, nb, box):
        """The spec's update in `box` (NPT: fractional r, distances in the box given)."""
        return spec.update(r, nb, box=box) if npt else spec.update(r, nb)

    def rebuild(r, nb, box):
        return forced_rebuild(lambda r_, nb_: update(r_, nb_, box), half_cell, r, nb)

    def init_one(key, r, nb, kT, v, box):
        if npt:
            state = init(key, r @ jnp.linalg.inv(box).T, box, neighbor=nb, kT=kT, mass=mass_j)
        else:
            state = init(key, r, neighbor=nb, kT=kT, mass=mass_j)
        return state if v is None else state.set(momentum=v * mass_j)

    init_drawn = jax.jit(jax.vmap(lambda k, r, nb, kT, box: init_one(k, r, nb, kT, None, box),
                                  in_axes=(0, 0, 0, None, None)))
    init_given = jax.jit(jax.vmap(init_one, in_axes=(0, 0, 0, None, 0, None)))

    def init_all(keys, R, nbrs, kT, V=None, box=box_m):
        """Initial states in `box`; velocities drawn at kT (reduced) unless V is given."""
        kT, box = jnp.asarray(kT, dtype), jnp.asarray(box, dtype)
        return init_drawn(keys, R, nbrs, kT, box) if V is None else init_given(keys, R, nbrs, kT, V, box)

    prog = _Program(
        spec=spec, npt=npt, init=init_all,
        chunk=jax.jit(_chunk_fn(potential, apply, spec.update, box_m, npt, sample_every, record, mass_j,
                                n_rep, spec.skin)),
        update_from_one=jax.jit(jax.vmap(update, in_axes=(0, None, None))),
        update_each=jax.jit(jax.vmap(update, in_axes=(0, 0, None))),
        rebuild_into=jax.jit(jax.vmap(rebuild, in_axes=(0, None, None))))
    _PROGRAMS[key] = prog
    while len(_PROGRAMS) > _MAX_PROGRAMS:
        _PROGRAMS.popitem(last=False)
    return prog


def _mass_array(mass, dtype) -> jnp.ndarray:
    """Scalar mass, or (N,) masses as (N, 1) to broadcast over momenta."""
    m = jnp.asarray(mass, dtype)
    return m.reshape(-1, 1) if m.ndim == 1 else m


def _replica_keys(seed: int, n_rep: int) -> jnp.ndarray:
    """One RNG key per replica: fold_in(PRNGKey(seed), replica index)."""
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(jnp.arange(n_rep))


def simulation(potential: Potential, box, integrator: Integrator, *, n_atoms: int, n_replicas: int = 1,
               sample_every: int = 100, record: tuple[str, ...] = (), skin: float = 0.3,
               mass: float | np.ndarray = 1.0, dtype=jnp.float64,
               capacity_multiplier: float | None = None) -> tuple[Callable, Callable]:
    """MD for (potential, box, integrator) in jax-md's style: returns (init_fn, chunk_fn).

    Batch-first: replicas are the leading axis of every array. The compiled programs behind the
    two functions are cached by the potential's fingerprint and the shapes (bounded LRU), so
    building the same simulation twice compiles once.

        init_fn(R (B, N, 3), kT, seed=0, velocities=None) -> (state, nbrs)
            Cartesian reduced positions; velocities drawn at kT (reduced) unless given (B, N, 3).
        chunk_fn(state, nbrs, kT_steps (n,)) -> (state, nbrs, max_step_displacement (B,), samples)
            n steps (a multiple of sample_every) at a per-step target kT; samples holds
            (n / sample_every, B, ...) arrays: 'kT', 'T', 'Ekin', 'Epot', 'Etot', 'P' and `record`.
            The caller checks `nbrs.did_buffer_overflow` (then re-allocate and re-run, as
            `run_md` does) and the displacement for blow-ups.
    """
    npt = integrator.ensemble == "npt_nose_hoover"
    box_m = jnp.asarray(as_box_matrix(box), dtype)
    mass_j = _mass_array(mass, dtype)
    prog = _program(potential, box_m, integrator, dtype, npt, sample_every, tuple(record), mass_j,
                    n_replicas, n_atoms, skin, _headroom(potential, capacity_multiplier))
    np_dtype = np.dtype(jnp.dtype(dtype).name)

    def init_fn(R, kT, seed: int = 0, velocities=None):
        R = np.asarray(R, np_dtype)
        nbrs = prog.neighbors(R, box_m)
        V = None if velocities is None else jnp.asarray(np.asarray(velocities, np_dtype))
        keys, R_dev, nbrs, V = shard_batch((_replica_keys(seed, R.shape[0]), jnp.asarray(R), nbrs, V))
        return prog.init(keys, R_dev, nbrs, kT, V, box_m), nbrs

    def chunk_fn(state, nbrs, kT_steps):
        return prog.run_chunk(state, nbrs, jnp.asarray(kT_steps, dtype))[0]

    return init_fn, chunk_fn


def run_md(potential: Potential, positions, box, integrator: Integrator, n_steps: int, *,
           kT: float | np.ndarray = 0.0, seed: int = 0, sample_every: int = 100,
           chunk_steps: int = 1000, skin: float = 0.3, velocities=None,
           record: tuple[str, ...] = (), max_step_displacement: float = 0.25,
           max_kT: float = 50.0, capacity_multiplier: float | None = None,
           mass: float | np.ndarray = 1.0, dtype=jnp.float64,
           progress: Callable[[int, int], None] | None = None) -> MDResult:
    """Run MD; see the module docstring for chunking, overflow and blow-up handling.

    Args:
        potential: any `Potential`.
        positions: (N, 3) or (n_replicas, N, 3) Cartesian reduced positions.
        box: (3,) or (3, 3) reduced box (the initial box for NPT).
        integrator: ensemble and its settings.
        n_steps: number of steps; a multiple of `sample_every`.
        kT: target temperature, scalar or per-step schedule of length n_steps (reduced). Also
            used to draw initial velocities when `velocities` is None.
        seed: RNG seed for velocities and Langevin noise (replica r uses fold_in(seed, r)).
        sample_every: steps between samples.
        chunk_steps: steps per jit-compiled chunk at most (a multiple of sample_every; lowered
            so that the chunks are equal where that takes at most twice as many: `even_chunk`).
        skin: neighbour-list skin (sigma).
        velocities: optional initial velocities (sigma/tau), same shape as positions.
        record: any of RECORDABLE, stored at every sample.
        max_step_displacement: a step moving any atom further (sigma) counts as a blow-up.
        max_kT: an instantaneous temperature above this counts as a blow-up.
        capacity_multiplier: neighbour-list head room at allocation; None: the potential's
            `md_list_headroom` (1.3 for LJ, 1.1 for GNNs).
        mass: particle mass (m), scalar or shape (N,).
        dtype: float dtype of the integrator state (positions, momenta, box, dt). float32 is for
            learned models where accuracy is shown to hold; reference physics stays float64.
        progress: called as progress(steps_done, n_steps) after every chunk.
    """
    _check_run_args(record, n_steps, sample_every)
    np_dtype = np.dtype(jnp.dtype(dtype).name)
    R = np.asarray(positions, dtype=np_dtype)
    replicated = R.ndim == 3
    Rs = R if replicated else R[None]
    n_rep, n_atoms = Rs.shape[0], Rs.shape[1]
    npt = integrator.ensemble == "npt_nose_hoover"
    if npt and replicated:
        raise ValueError("NPT runs one system at a time (each replica would need its own box)")
    box_m = jnp.asarray(as_box_matrix(box), dtype)
    kT_steps = np.broadcast_to(np.asarray(kT, dtype=np_dtype), (n_steps,)).copy()
    chunk_steps = even_chunk(n_steps, chunk_steps, sample_every)
    mass_j = _mass_array(mass, dtype)
    # replicas over devices: padded to a multiple of the device count with copies of the last
    # replica (same key, so the same trajectory), sliced off the results
    n_run = padded_size(n_rep)
    prog = _program(potential, box_m, integrator, dtype, npt, sample_every,
                    tuple(record), mass_j, n_run, n_atoms, skin, _headroom(potential, capacity_multiplier))

    extra = 0
    V = None if velocities is None else np.asarray(velocities, np_dtype).reshape(Rs.shape)
    Rs, V, keys = pad_leading((Rs, V, _replica_keys(seed, n_rep)), n_rep, n_run)
    Rs = np.asarray(Rs)
    nbrs = prog.neighbors(Rs, box_m, extra)
    keys, R_dev, nbrs, V = shard_batch((keys, jnp.asarray(Rs), nbrs, None if V is None else jnp.asarray(V)))
    state = prog.init(keys, R_dev, nbrs, kT_steps[0], V, box_m)

    samples: list[dict] = []
    done, reallocs = 0, 0
    status, message = "ok", ""
    compile_s, run_s = 0.0, 0.0
    while done < n_steps:
        length = min(chunk_steps, n_steps - done)
        kTs = jnp.asarray(kT_steps[done:done + length])
        t0 = time.perf_counter()
        (new_state, new_nbrs, max_disp, chunk_samples), compiling = prog.run_chunk(state, nbrs, kTs)
        jax.block_until_ready(new_state.position)
        compile_s += compiling
        run_s += time.perf_counter() - t0 - compiling
        if bool(jnp.any(new_nbrs.did_buffer_overflow)):
            reallocs += 1
            if reallocs > 20:
                raise SimulationError("neighbour list kept overflowing after 20 re-allocations")
            # size the new list from the positions that overflowed (re-allocating from the same
            # positions can reproduce the same too-small capacity), grow it on each retry, and
            # re-run the chunk from its start.
            R_end = np.asarray(_cartesian_all(new_state, npt))
            R_start = np.asarray(_cartesian_all(state, npt))
            extra += 4 * reallocs
            ok_end = np.all(np.isfinite(R_end))
            nbrs = prog.neighbors(R_end if ok_end else R_start, _box_of(new_state if ok_end else state, box_m),
                                  extra)
            box_start = _box_of(state, box_m)
            nbrs = prog.update_each(prog.list_coords(R_start, box_start), nbrs, jnp.asarray(box_start))
            continue
        why = _blowup_reason(float(jnp.max(max_disp)), float(jnp.max(chunk_samples["T"])),
                             max_step_displacement, max_kT)
        if why:
            status = "blowup"
            message = f"blow-up between steps {done} and {done + length}: {why}; kept the state at step {done}"
            break
        state, nbrs = new_state, new_nbrs
        chunk_samples = jax.tree_util.tree_map(lambda x: np.asarray(x)[:, :n_rep], chunk_samples)
        chunk_samples["step"] = np.arange(1, length // sample_every + 1) * sample_every + done
        samples.append(chunk_samples)
        done += length
        if progress is not None:
            progress(done, n_steps)

    R_fin = np.asarray(_cartesian_all(state, npt))[:n_rep]
    V_fin = np.asarray(state.momentum / mass_j)[:n_rep]  # jax-md keeps Cartesian momenta in NPT too
    box_fin = np.asarray(jax.vmap(simulate.npt_box)(state))[0] if npt else np.asarray(box_m)
    final = {"positions": R_fin if replicated else R_fin[0],
             "velocities": V_fin if replicated else V_fin[0], "box": box_fin}
    return MDResult(samples=_stack_samples(samples, replicated, integrator.dt), final=final,
                    status=status, message=message, steps_done=done, neighbor_reallocations=reallocs,
                    compile_seconds=compile_s, run_seconds=run_s)


def _check_run_args(record: tuple[str, ...], n_steps: int, sample_every: int) -> None:
    """ValueError for an unknown recorded quantity or a step count that is not a positive multiple
    of sample_every."""
    unknown = set(record) - set(RECORDABLE)
    if unknown:
        raise ValueError(f"cannot record {sorted(unknown)}; choose from {RECORDABLE}")
    if n_steps <= 0 or n_steps % sample_every:
        raise ValueError(f"n_steps ({n_steps}) must be a positive multiple of sample_every ({sample_every})")


def _blowup_reason(max_disp: float, T_max: float, max_step_displacement: float, max_kT: float) -> str:
    """Why a chunk blew up ('' if it did not): an atom moved more than max_step_displacement
    (sigma) in one step, or the temperature exceeded max_kT (epsilon/k_B); NaN counts as both."""
    if not (np.isfinite(max_disp) and max_disp <= max_step_displacement):
        return f"an atom moved {max_disp:.3g} sigma in one step (limit {max_step_displacement})"
    if not (np.isfinite(T_max) and T_max <= max_kT):
        return f"the temperature reached {T_max:.3g} epsilon/k_B (limit {max_kT})"
    return ""


def _box_of(state, box_m) -> np.ndarray:
    """The (3, 3) box of replica 0 of a batched state: the NPT state's own, else the fixed box."""
    if hasattr(state, "box_position"):
        return np.asarray(jax.vmap(simulate.npt_box)(state))[0]
    return np.asarray(box_m)


def _cartesian_all(state, npt: bool):
    """(n_rep, N, 3) Cartesian positions of a batched state."""
    if npt:
        boxes = jax.vmap(simulate.npt_box)(state)
        return jnp.einsum("rnk,rjk->rnj", state.position, boxes)
    return state.position


def _stack_samples(chunks: list[dict], replicated: bool, dt: float) -> dict[str, np.ndarray]:
    """Concatenate chunk samples; axis order (n_samples, [n_replicas,] ...)."""
    if not chunks:
        return {}
    out: dict[str, np.ndarray] = {}
    for key in chunks[0]:
        parts = [c[key] for c in chunks]
        if key == "step":
            out[key] = np.concatenate(parts)
            continue
        arr = np.concatenate(parts, axis=0)  # (S, R, ...)
        out[key] = arr if replicated else arr[:, 0]
    out["time"] = out["step"] * dt
    return out
