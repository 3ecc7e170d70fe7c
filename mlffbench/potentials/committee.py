"""Committees: K potentials of one kind (same cutoff, list format, dtype, energy or force-only).

Shape chosen (see docs/data.md "Committees"):

* `Committee` IS a `Potential`: the member mean (energy = mean of the member energies, so forces,
  stress and Hessians are the member means too; force-only members: mean forces). Every command and
  workflow runs it unchanged; `capabilities.members` is K.
* `Committee.members`: the K members, each an ordinary `Potential` with its own fingerprint, for
  workflows that loop over members (`members(p)` returns `[p]` for a single model, so benchmark
  code is one loop for both).
* `Committee.member_fn(k, R, box, nbrs)`: member k's energy (or forces, force-only) with `k` a
  traced integer. One compiled program serves every member, and `jax.vmap` over `jnp.arange(K)`
  evaluates all members at once (`evaluate_members`). Trained GNN committees index stacked
  parameters (one batched program); any other list of potentials gets a `lax.switch`.

Units: reduced, like every Potential. Shapes: member axis first, e.g. forces (K, N, 3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from mlffbench.errors import UserError
from mlffbench.potentials.base import Capabilities, Evaluation, Potential
from mlffbench.sharding import vmap_sharded

MemberFn = Callable[..., jnp.ndarray]


@dataclass(frozen=True, eq=False)
class Committee(Potential):
    """The member-mean potential of a committee; see the module docstring.

    Attributes (beyond Potential's):
        members: the K member Potentials.
        member_fn: (k, R, box, nbrs) -> member k's energy (epsilon), or forces (N, 3) for
            force-only members; k may be traced.
    """

    members: tuple[Potential, ...] = ()
    member_fn: MemberFn | None = None

    @property
    def size(self) -> int:
        """Number of members K."""
        return len(self.members)

    def member_view(self, k) -> Potential:
        """Member k as a Potential built on `member_fn` (k may be traced: use inside vmap/jit;
        for a fixed member outside a trace, `members[k]` is the same model with its fingerprint)."""
        first = self.members[0]
        fn = self.member_fn
        if first.capabilities.energy:
            return Potential(name=f"{self.name}[k]", cutoff=self.cutoff, neighbor_format=self.neighbor_format,
                             dtype=self.dtype, energy_fn=lambda R, box, nbrs: fn(k, R, box, nbrs),
                             capabilities=first.capabilities, kind=self.kind,
                             md_list_headroom=self.md_list_headroom)
        return Potential(name=f"{self.name}[k]", cutoff=self.cutoff, neighbor_format=self.neighbor_format,
                         dtype=self.dtype, direct_force_fn=lambda R, box, nbrs: fn(k, R, box, nbrs),
                         capabilities=first.capabilities, kind=self.kind,
                         md_list_headroom=self.md_list_headroom)

    def evaluate_members(self, R, box, nbrs, stress: bool = False) -> Evaluation:
        """Every member's Evaluation with a leading member axis: energy (K,) or None, forces
        (K, N, 3), stress (K, 3, 3) or None. Vmapped when the members are batched, else a loop."""
        if self.capabilities.batched:
            return vmap_sharded(lambda k: self.member_view(k).evaluate(R, box, nbrs, stress))(jnp.arange(self.size))
        evs = [m.evaluate(R, box, nbrs, stress) for m in self.members]
        return Evaluation(*(None if getattr(evs[0], f) is None else jnp.stack([getattr(e, f) for e in evs])
                            for f in Evaluation._fields))


def members(potential: Potential) -> list[Potential]:
    """The members of a committee, or `[potential]` for a single model."""
    return list(potential.members) if isinstance(potential, Committee) else [potential]


def _switch_fn(pots: Sequence[Potential]) -> MemberFn:
    """member_fn for arbitrary potentials: lax.switch over their energy (or force) functions."""
    fns = [p.energy_fn if p.capabilities.energy else p.direct_force_fn for p in pots]

    def fn(k, R, box, nbrs):
        R, box = jnp.asarray(R, pots[0].dtype), jnp.asarray(box, pots[0].dtype)
        return jax.lax.switch(jnp.asarray(k, jnp.int32), [lambda R_, b_, n_, f=f: f(R_, b_, n_) for f in fns],
                              R, box, nbrs)

    return fn


def make_committee(pots: Sequence[Potential], name: str | None = None, member_fn: MemberFn | None = None,
                   params: dict | None = None) -> Committee:
    """A Committee of `pots` (>= 1 potentials sharing cutoff, neighbour format, dtype and kind of
    output). member_fn: a faster (k, R, box, nbrs) function computing the same as member k
    (default: `lax.switch` over the members). params: extra description echoed into results."""
    pots = tuple(pots)
    if not pots:
        raise UserError("a committee needs at least one member")
    first = pots[0]
    for attr in ("cutoff", "neighbor_format", "conservative", "precision"):
        values = {getattr(p, attr) for p in pots}
        if len(values) > 1:
            raise UserError(f"committee members differ in {attr} ({sorted(map(str, values))}); "
                            "members must share it")
    fn = member_fn or _switch_fn(pots)
    K = len(pots)
    caps = [p.capabilities for p in pots]
    batched = all(c.batched for c in caps)

    def mean(R, box, nbrs):
        if batched:
            return jnp.mean(jax.vmap(lambda k: fn(k, R, box, nbrs))(jnp.arange(K)), axis=0)
        return sum(fn(k, R, box, nbrs) for k in range(K)) / K

    stress_fns = [p.stress_fn for p in pots]
    stress_fn = None
    if all(s is not None for s in stress_fns):
        def stress_fn(R, box, nbrs):
            return sum(s(R, box, nbrs) for s in stress_fns) / K

    capabilities = Capabilities(energy=first.capabilities.energy, stress=all(c.stress for c in caps),
                                autodiff=all(c.autodiff for c in caps), jit=all(c.jit for c in caps),
                                batched=batched, members=K)
    fields = {"energy_fn": mean} if first.capabilities.energy else {"direct_force_fn": mean}
    return Committee(name=name or f"committee[{K}]:{first.name}", cutoff=first.cutoff,
                     neighbor_format=first.neighbor_format, dtype=first.dtype,
                     params={**(params or {}), "members": [p.fingerprint for p in pots]},
                     stress_fn=stress_fn, capabilities=capabilities, kind="committee",
                     md_list_headroom=max(p.md_list_headroom for p in pots),
                     members=pots, member_fn=fn, **fields)
