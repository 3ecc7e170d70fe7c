"""Batch axes sharded over devices (issue 14): on 2 forced CPU host devices, MD replicas,
string-method images, committee members and Hessian column batches are split over both devices
and give the single-device numbers within 1e-12 (float64), also for batches the device count does not
divide (3 replicas, 5 images, 3 members, 63-column chunks: padded, split, sliced back). The device count is fixed when JAX
starts, so all checks run in one subprocess; the single-device reference is the default path
(`mlffbench.sharding.device_count` patched to 1) in the same process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

CHECK = textwrap.dedent(r"""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax
    import mlffbench  # noqa: F401 (x64)
    import jax.numpy as jnp
    import numpy as np
    import mlffbench.sharding as sh
    from mlffbench.dynamics import md
    from mlffbench.dynamics.md import Integrator, run_md, simulation
    from mlffbench.potentials import lennard_jones
    from mlffbench.potentials.committee import make_committee
    from mlffbench.properties import hessian as hs
    from mlffbench.properties.string_method import StringSettings, potential_batched_ef, string_method
    from mlffbench.structures import fcc, random_displacements

    assert len(jax.devices()) == 2, jax.devices()
    TOL = 1e-12

    def single(fn):
        orig = sh.device_count
        sh.device_count = lambda: 1
        md._PROGRAMS.clear()
        try:
            return fn()
        finally:
            sh.device_count = orig
            md._PROGRAMS.clear()

    def split(a, n_batch):
        shards = a.addressable_shards
        assert len({s.device for s in shards}) == 2, a.sharding
        assert all(s.data.shape[0] == n_batch // 2 for s in shards), [s.data.shape for s in shards]

    def close(a, b, what):
        err = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        assert err <= TOL, (what, err)
        print(what, "max |diff|", err)

    # the policy itself: odd batch -> unchanged, one device -> the very same object
    odd = jnp.zeros((3, 2))
    assert sh.shard_batch(odd) is odd or len(sh.shard_batch(odd).sharding.device_set) == 1
    even = jnp.zeros((4, 2))
    assert single(lambda: sh.shard_batch(even)) is even
    split(sh.shard_batch(even), 4)

    lj = lennard_jones("lj/cut/shift", cutoff=1.5)  # 108 atoms: L/2 = 2.3 > rc + skin
    s = fcc(3, 1.5496)
    R2 = np.stack([random_displacements(s, 0.03, i).positions for i in (1, 2)])
    R3 = np.stack([random_displacements(s, 0.03, i).positions for i in (1, 2, 3)])
    # the even MD batch: 4 replicas, R3 and a 4th from replica 0's positions (its own key, so its
    # own trajectory): the neighbour capacity (the fullest replica's) and every shape equal those
    # of R3 padded to 4 below, so that 2-device run loads this one's programs from the compile
    # cache instead of compiling them again
    R4 = np.concatenate([R3, R3[:1]])

    # MD replicas: run_md numbers, and the state of a chunk really lives on both devices
    integ = Integrator("nvt_langevin", dt=0.005, gamma=2.0)
    go = lambda: run_md(lj, R4, s.box, integ, 40, kT=0.3, seed=4, sample_every=20, chunk_steps=20,
                        record=("forces",))
    b = single(go)  # one device first: the 2-device programs stay in md._PROGRAMS for simulation()
    a = go()
    close(a.final["positions"], b.final["positions"], "md positions")
    close(a.final["velocities"], b.final["velocities"], "md velocities")
    close(a.samples["forces"], b.samples["forces"], "md sampled forces")
    # the very program run_md just ran on 2 devices (same key: record, skin, 20-step chunks), so
    # nothing is compiled again
    init_fn, chunk_fn = simulation(lj, s.box, integ, n_atoms=len(s.positions), n_replicas=4,
                                 sample_every=20, record=("forces",))
    state, nbrs = init_fn(R4, 0.3, seed=4)
    split(state.position, 4)
    split(chunk_fn(state, nbrs, np.full(20, 0.3))[0].position, 4)

    # string images: 4 interior images
    bef, aux_init, aux_overflow = potential_batched_ef(lj, s.box, skin=0.5)
    path0 = np.stack([R2[0] + t * (R2[1] - R2[0]) for t in np.linspace(0, 1, 6)])
    e_end = [float(lj.evaluate(jnp.asarray(r), jnp.asarray(s.box), lj.neighbors(jnp.asarray(s.box)).allocate(jnp.asarray(r))).energy) for r in R2]
    st = StringSettings(tol=1e-9, max_iter=20, chunk=10)
    go = lambda: string_method(bef, path0, st, aux_init=aux_init, aux_overflow=aux_overflow,
                               end_energies=e_end, remove_translation=True)
    a, b = go(), single(go)
    assert a.iterations == b.iterations == 20
    close(a.images, b.images, "string images")
    close(a.energies[1:-1], b.energies[1:-1], "string energies")
    Xi = jnp.asarray(path0[1:-1])
    split(jax.jit(bef)(Xi, aux_init(Xi))[1], 4)

    # committee members (K = 2, different epsilon)
    com = make_committee([lj, lennard_jones("lj/cut/shift", cutoff=1.5, epsilon=1.1)])
    box = jnp.asarray(s.box)
    nb = com.neighbors(box).allocate(jnp.asarray(R2[0]))
    go = lambda: jax.jit(lambda R: com.evaluate_members(R, box, nb).forces)(jnp.asarray(R2[0]))
    fa, fb = go(), single(go)
    split(fa, 2)
    close(fa, fb, "committee member forces")

    # Hessian column batches: forward-mode (autodiff) and displaced-force (finite-difference) chunks
    R = jnp.asarray(R2[0])
    go = lambda: hs.hessian(lj, R, s.box, lj.neighbors(box), chunk=64).matrix
    close(go(), single(go), "hessian autodiff")
    x = R.reshape(-1)
    split(hs._hvp_columns(lj, x, box, nb, sh.shard_batch(jnp.eye(x.size)[:64])), 64)
    go = lambda: hs._finite_difference(lj, np.asarray(x), box, nb, 1e-4, 64)
    close(go(), single(go), "hessian finite-difference")
    split(hs._forces_batch(lj, sh.shard_batch(jnp.tile(x, (64, 1))), box, nb), 64)

    # batches the device count does not divide: padded with copies of the last element, split,
    # and sliced back; numbers equal one device
    assert [sh.padded_size(n) for n in (1, 2, 3, 5)] == [1, 2, 4, 6]
    t = jnp.arange(6.0).reshape(3, 2)
    assert np.array_equal(sh.unpad_leading(sh.pad_leading(t, 3, 4), 4, 3), t)
    assert np.array_equal(np.asarray(sh.pad_leading(t, 3, 4))[3], np.asarray(t)[2])
    go = lambda: run_md(lj, R3, s.box, integ, 40, kT=0.3, seed=4, sample_every=20, chunk_steps=20,
                        record=("forces",))
    a, b = go(), single(go)
    assert a.final["positions"].shape == (3,) + s.positions.shape and a.samples["forces"].shape[1] == 3
    close(a.final["positions"], b.final["positions"], "md 3 replicas positions")
    close(a.samples["forces"], b.samples["forces"], "md 3 replicas sampled forces")
    path5 = np.stack([R2[0] + t * (R2[1] - R2[0]) for t in np.linspace(0, 1, 7)])  # 5 interior images
    st5 = StringSettings(tol=1e-9, max_iter=10, chunk=10)
    go = lambda: string_method(bef, path5, st5, aux_init=aux_init, aux_overflow=aux_overflow,
                               end_energies=e_end, remove_translation=True)
    a, b = go(), single(go)
    close(a.images, b.images, "string 5 images")
    com3 = make_committee([lj, lennard_jones("lj/cut/shift", cutoff=1.5, epsilon=1.1),
                           lennard_jones("lj/cut/shift", cutoff=1.5, epsilon=0.9)])
    go = lambda: jax.jit(lambda R: com3.evaluate_members(R, box, nb).forces)(jnp.asarray(R2[0]))
    fa, fb = go(), single(go)
    assert fa.shape[0] == 3
    close(fa, fb, "committee 3 member forces")
    go = lambda: hs.hessian(lj, R, s.box, lj.neighbors(box), chunk=63).matrix
    close(go(), single(go), "hessian autodiff, odd chunk")
    print("SHARDING OK")
""")


def test_batch_axes_sharded_over_two_devices_match_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "SHARDING OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
