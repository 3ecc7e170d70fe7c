"""Feasibility probe (issue 15): `python -m mlffbench.cg.methanol_probe N_SIDE`.

Feasibility: all-atom liquid methanol (OPLS-AA-like parameters, hand-typed) with jax_md.mm_forcefields.oplsaa.
Measures force calls/s and atom-steps/s of jit(grad(E)) on CPU. Timing only; not a validated force field."""
import time, sys, numpy as np, jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", False)
from jax_md.mm_forcefields import oplsaa
from jax_md.mm_forcefields.nonbonded.electrostatics import CutoffCoulomb
def main(argv):
    n_side = int(argv[1]) if len(argv) > 1 else 6
    M = n_side**3; L = (M * 32.04 / 6.022e23 / 0.79) ** (1 / 3) * 1e8  # Angstrom
    # C, H, H, H, O, HO geometry (Angstrom)
    geo = np.array([[0, 0, 0], [1.03, 0.3, 0.2], [-0.36, -1.0, 0.2], [-0.36, 0.6, 0.8], [-0.47, 0.4, -1.3], [-0.1, 1.3, -1.5]])
    q = np.array([0.145, 0.04, 0.04, 0.04, -0.683, 0.418]); sig = np.array([3.5, 2.5, 2.5, 2.5, 3.12, 0.1]); eps = np.array([0.066, 0.03, 0.03, 0.03, 0.17, 0.0])
    g = (np.arange(n_side) + 0.5) * L / n_side
    R = np.concatenate([geo + np.array([x, y, z]) for x in g for y in g for z in g]) % L
    b1 = [(0, 1), (0, 2), (0, 3), (0, 4), (4, 5)]; bk = [340, 340, 340, 320, 553]; br = [1.09, 1.09, 1.09, 1.41, 0.945]
    a1 = [(1, 0, 2), (1, 0, 3), (2, 0, 3), (1, 0, 4), (2, 0, 4), (3, 0, 4), (0, 4, 5)]; at = [107.8] * 3 + [109.5] * 3 + [108.5]
    t1 = [(1, 0, 4, 5), (2, 0, 4, 5), (3, 0, 4, 5)]
    off = lambda lst: np.array([[i + 6 * m for i in t] for m in range(M) for t in lst], np.int32)
    top = oplsaa.create_topology(6 * M, off(b1), off(a1), off(t1), np.zeros((0, 4), np.int32), molecule_id=jnp.repeat(jnp.arange(M), 6))
    nT = 3 * M
    par = oplsaa.create_parameters(jnp.tile(jnp.array(bk, float), M), jnp.tile(jnp.array(br, float), M), jnp.full(7 * M, 55.0),
        jnp.tile(jnp.deg2rad(jnp.array(at)), M), jnp.full(nT, 0.225), jnp.full(nT, 3.0), jnp.zeros(nT), jnp.zeros(0), jnp.zeros(0), jnp.zeros(0),
        jnp.tile(jnp.array(q), M), jnp.tile(jnp.array(sig), M), jnp.tile(jnp.array(eps), M))
    rc = min(10.0, 0.49 * L)
    efn, nfn, disp = oplsaa.energy(top, par, jnp.array(L), CutoffCoulomb(r_cut=rc), oplsaa.NonbondedOptions(r_cut=rc, dr_threshold=1.0))
    R = jnp.array(R, jnp.float32)
    nl = nfn.allocate(R)
    tot = lambda R, nl: efn(R, nl)["total"]
    f = jax.jit(jax.grad(tot))
    t0 = time.perf_counter(); jax.block_until_ready(f(R, nl)); tc = time.perf_counter() - t0
    n = 10; t0 = time.perf_counter()
    for _ in range(n): F = jax.block_until_ready(f(R, nl))
    dt = (time.perf_counter() - t0) / n
    print(f"methanol M={M} atoms={6*M} L={L:.2f} A rc={rc:.1f} A compile={tc:.1f}s force_call={dt*1e3:.1f} ms atom_steps/s={6*M/dt:.3g} finite={bool(jnp.all(jnp.isfinite(F)))} terms={list(efn(R, nl).keys())}")


if __name__ == "__main__":
    main(sys.argv)
