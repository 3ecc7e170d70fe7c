"""String method: the known saddle of the Mueller-Brown surface, and the LJ vacancy barrier
against ASE's climbing-image NEB with ASE's own LJ calculator (an independent code path)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlffbench  # noqa: F401  (x64)
from mlffbench.properties.string_method import (StringSettings, integrate_path_energy, linear_path,
                                                reparametrize, string_method)

# Mueller & Brown, Theor. Chim. Acta 53, 75 (1979)
A = jnp.array([-200.0, -100.0, -170.0, 15.0])
a = jnp.array([-1.0, -1.0, -6.5, 0.7])
b = jnp.array([0.0, 0.0, 11.0, 0.6])
c = jnp.array([-10.0, -10.0, -6.5, 0.7])
x0 = jnp.array([1.0, 0.0, -0.5, -1.0])
y0 = jnp.array([0.0, 0.5, 1.5, 1.0])


def mueller_brown(p):
    dx, dy = p[0] - x0, p[1] - y0
    return jnp.sum(A * jnp.exp(a * dx * dx + b * dx * dy + c * dy * dy))


def batched(X, aux):
    E, G = jax.vmap(jax.value_and_grad(mueller_brown))(X)
    return E, -G, aux


def _minimum(guess):
    from scipy.optimize import minimize

    f = lambda p: float(mueller_brown(jnp.asarray(p)))  # noqa: E731
    g = lambda p: np.asarray(jax.grad(mueller_brown)(jnp.asarray(p)))  # noqa: E731
    return minimize(f, guess, jac=g, method="BFGS", options={"gtol": 1e-10}).x


def test_reparametrize_equal_arc_length():
    X = linear_path([0.0, 0.0], [3.0, 0.0], 4)
    X[1, 0], X[2, 0] = 0.2, 2.9  # bunched images
    Y = np.asarray(reparametrize(jnp.asarray(X)))
    np.testing.assert_allclose(Y[:, 0], [0, 1, 2, 3], atol=1e-12)


@pytest.mark.parametrize("optimizer,dt", [("fire", 1e-3), ("steepest", 1e-4)])
def test_mueller_brown_saddle(optimizer, dt):
    mA, mB = _minimum([-0.55, 1.44]), _minimum([0.62, 0.03])
    s = StringSettings(tol=1e-5, optimizer=optimizer, dt=dt, dt_max=1e-2, max_step=0.02, max_iter=20000,
                       chunk=200)
    res = string_method(batched, linear_path(mA, mB, 15), s,
                        end_energies=(float(mueller_brown(mA)), float(mueller_brown(mB))))
    assert res.converged, res.message
    saddle = res.images[res.climbing]
    # the highest saddle between minima A and B, as tabulated by Mueller & Brown (3 decimals)
    np.testing.assert_allclose(saddle, [-0.822, 0.624], atol=1e-3)
    # a first-order saddle: zero gradient, one negative Hessian eigenvalue (checked in numpy by
    # central finite differences of the analytic energy, independent of the string code)
    h = 1e-5
    f = lambda p: float(mueller_brown(jnp.asarray(p)))  # noqa: E731
    grad = np.array([(f(saddle + h * e) - f(saddle - h * e)) / (2 * h) for e in np.eye(2)])
    assert np.max(np.abs(grad)) < 1e-3
    H = np.array([[(f(saddle + h * (ei + ej)) - f(saddle + h * (ei - ej)) - f(saddle - h * (ei - ej))
                    + f(saddle - h * (ei + ej))) / (4 * h * h) for ej in np.eye(2)] for ei in np.eye(2)])
    assert np.sum(np.linalg.eigvalsh(H) < 0) == 1
    np.testing.assert_allclose(res.energies[res.climbing], -40.665, atol=1e-3)


def test_force_only_path_integral_matches_energy():
    """Line integral of the force along a converged path = energy differences (to quadrature
    error): the force-only barrier route."""
    mA, mB = _minimum([-0.55, 1.44]), _minimum([0.62, 0.03])
    s = StringSettings(tol=1e-4, climb=False, dt=1e-3, dt_max=1e-2, max_step=0.02, chunk=200)
    res = string_method(batched, linear_path(mA, mB, 41), s,
                        end_energies=(float(mueller_brown(mA)), float(mueller_brown(mB))))
    assert res.converged
    F = np.asarray(jax.vmap(lambda p: -jax.grad(mueller_brown)(p))(jnp.asarray(res.images)))
    E_int = integrate_path_energy(res.images, F)
    E_true = res.energies - res.energies[0]
    assert np.max(np.abs(E_int - E_true)) < 0.02 * np.ptp(E_true)


@pytest.fixture(scope="module")
def lj_vacancy_neb():
    from mlffbench.potentials import load_potential
    from mlffbench.workflows.neb import NebConfig, compute_barrier

    cfg = NebConfig.model_validate({"units": {"system": "lj"}, "system": {"supercell": 3},
                                    "string": {"n_images": 5, "tol": 1e-4},
                                    "htst": {"temperatures": [0.5]}})
    return compute_barrier(load_potential("lj"), cfg)


def ase_vacancy_end_states(n_cells: int, a: float):
    """(atoms factory, [initial, final]): ASE Atoms with ASE's LennardJones (rc 2.5, shifted =
    lj/cut/shift) for the n^3 vacancy cell, both end states relaxed by ASE's BFGS to 1e-6."""
    from ase import Atoms
    from ase.calculators.lj import LennardJones
    from ase.optimize import BFGS

    from mlffbench.workflows.neb import vacancy_structure

    vac, hopper, site = vacancy_structure(n_cells, a)

    def atoms(R):
        at = Atoms(f"Ar{len(R)}", positions=R, cell=vac.box.T, pbc=True)
        at.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=2.5, smooth=False)
        return at

    Rf0 = vac.positions.copy()
    Rf0[hopper] = vac.sites[site]
    ends = [atoms(R) for R in (vac.positions, Rf0)]
    for at in ends:
        BFGS(at, logfile=None).run(fmax=1e-6, steps=500)
    return atoms, ends


def test_lj_vacancy_barrier_matches_ase_ci_neb(lj_vacancy_neb):
    """3x3x3 FCC (107 atoms, a multi-image neighbour list) vs ASE's NEB(climb=True)+FIRE with
    ase.calculators.lj.LennardJones (rc 2.5, shifted = lj/cut/shift) to <= 1e-4 epsilon."""
    from ase.mep import NEB
    from ase.optimize import FIRE

    out = lj_vacancy_neb
    assert out["string"].converged
    atoms, ends = ase_vacancy_end_states(3, out["lattice_constant"])
    # ASE's CI-NEB starts from our converged interior images (from a straight line its FIRE
    # needs thousands of steps here); it still converges under its own forces and its own
    # criterion, so the barrier below is ASE's, not ours.
    interior = out["string"].images[1:-1]
    images = [ends[0]] + [atoms(R) for R in interior] + [ends[1]]
    neb = NEB(images, climb=True, method="improvedtangent")
    assert FIRE(neb, logfile=None, maxstep=0.05).run(fmax=2e-3, steps=3000)
    e = np.array([im.get_potential_energy() for im in images])
    barrier_ase = e.max() - e[0]
    assert abs(out["barrier_forward"] - barrier_ase) <= 1e-4, (out["barrier_forward"], barrier_ase)
    # the endpoint energies agree too (both relaxations are independent)
    assert abs(out["E_initial"] - e[0]) < 1e-6


def test_lj_saddle_is_first_order_and_htst_sane(lj_vacancy_neb):
    out = lj_vacancy_neb
    assert out["polish"]["n_unstable_modes"] == 1
    h = out["htst"]
    assert h.n_negative_min == 0 and h.n_negative_saddle == 1
    # No theorem puts the Vineyard prefactor between the extreme normal-mode frequencies (it is a
    # ratio of products); its value is checked against finite-difference Hessians of ASE's forces
    # in reference_data (test_reference_regression). Here: positive, below the top phonon frequency.
    nu = np.sqrt(np.clip(h.eig_min, 0, None)) / (2 * np.pi)
    assert 0 < h.prefactor < nu.max()


def test_float32_potential_gets_a_reachable_relaxation_threshold():
    """A float32 potential cannot relax to the default 1e-8 eV/Å; the workflow relaxes it as far
    as float32 allows instead of failing, and its barrier stays close to the float64 one."""
    from mlffbench.config import validate
    from mlffbench.potentials import lennard_jones
    from mlffbench.workflows.neb import NebConfig, compute_barrier

    cfg = validate(NebConfig, {"units": {"system": "lj"},
                               "system": {"supercell": 2, "lattice_constant": 1.5496034241},  # LJ a0
                               "string": {"n_images": 5, "tol": 1e-3, "saddle_polish": False},
                               "htst": {"enabled": False}})
    b32 = compute_barrier(lennard_jones("lj/cut/shift", dtype=jnp.float32), cfg)
    b64 = compute_barrier(lennard_jones("lj/cut/shift"), cfg)
    assert b32["string"].converged and b64["string"].converged
    assert b32["relax_fmax"] > b64["relax_fmax"]
    assert abs(b32["barrier_forward"] - b64["barrier_forward"]) < 1e-2 * b64["barrier_forward"]


LJ_A0 = 1.5496034241  # sigma, lj/cut/shift rc 2.5 (tests/test_foundation_lj.py checks it)


def _small_cell_config(**string):
    from mlffbench.config import validate
    from mlffbench.workflows.neb import NebConfig

    return validate(NebConfig, {"units": {"system": "lj"}, "system": {"supercell": 2, "lattice_constant": LJ_A0},
                                "string": {"n_images": 5, "tol": 1e-4, **string}, "htst": {"enabled": False}})


@pytest.fixture(scope="module")
def lj_2x2x2():
    from mlffbench.potentials import load_potential
    from mlffbench.workflows.neb import compute_barrier

    lj = load_potential("lj")
    return lj, compute_barrier(lj, _small_cell_config())


def test_lj_barrier_matches_ase_ci_neb_from_its_own_idpp_path(lj_2x2x2):
    """2x2x2 FCC minus one atom (31 atoms): ASE's CI-NEB from ASE's own IDPP interpolation between
    ASE-relaxed end states (nothing of ours but the lattice constant) finds our barrier."""
    from ase.mep import NEB
    from ase.optimize import FIRE

    _, out = lj_2x2x2
    assert out["string"].converged
    atoms, ends = ase_vacancy_end_states(2, LJ_A0)
    images = [ends[0]] + [atoms(ends[0].positions) for _ in range(3)] + [ends[1]]
    neb = NEB(images, climb=True, method="improvedtangent")
    neb.interpolate(method="idpp", mic=True)
    assert FIRE(neb, logfile=None, maxstep=0.05).run(fmax=1e-3, steps=2000)
    e = np.array([im.get_potential_energy() for im in images])
    barrier_ase = e.max() - e[0]
    # measured: 6.0232359524 vs 6.0232359543 epsilon (2e-9). ASE stops at fmax 1e-3, so its saddle
    # energy can be off by ~ fmax^2 / k ~ 2e-8: the bound is a few times that
    assert abs(out["barrier_forward"] - barrier_ase) <= 1e-7, (out["barrier_forward"], barrier_ase)


def test_force_only_model_barrier_is_the_line_integral(lj_2x2x2):
    """A force-only model (LJ forces, no energy) goes through the same workflow: FIRE end states,
    no climbing image, barrier = line integral of the force along the path. It matches the energy
    barrier of the conservative LJ run."""
    from mlffbench.potentials import Potential
    from mlffbench.workflows.neb import compute_barrier

    lj, ref = lj_2x2x2
    force_only = Potential(name="lj-forces-only", cutoff=lj.cutoff, direct_force_fn=lj.forces,
                           neighbor_format=lj.neighbor_format, kind="test")
    assert not force_only.capabilities.energy
    out = compute_barrier(force_only, _small_cell_config(n_images=9, tol=1e-3, relax_fmax=1e-6))
    assert out["string"].converged
    assert "line integral" in out["barrier_method"] and out["polish"] is None
    # measured: 6.03197 (force-only, path converged to 1e-3) vs 6.02324 epsilon, 1.5e-3 relative
    # (Simpson's rule over 9 images; the trapezoid rule was 6 % low)
    assert abs(out["barrier_forward"] - ref["barrier_forward"]) < 5e-3 * ref["barrier_forward"]
