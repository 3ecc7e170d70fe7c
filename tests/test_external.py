"""Model specs (`kind: ase`, `kind: jax`): ASE's LennardJones and an independent JAX LJ written into a
temporary module reproduce the native LJ oracle; out of process gives the same numbers; every bad
spec is a one-line error naming the key."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from conftest import A0_LJ, run_cli

from mlffbench.dynamics.md import Integrator, run_md
from mlffbench.errors import UserError
from mlffbench.potentials import load_potential
from mlffbench.potentials.external import ase_potential, callback_user_error, load_model_spec, read_spec
from mlffbench.structures import fcc
from mlffbench.units import ARGON

ROOT = Path(__file__).resolve().parents[1]
ASE_LJ = {"kind": "ase", "calculator": "ase.calculators.lj:LennardJones",
          "kwargs": {"epsilon": 0.010321, "sigma": 3.4, "rc": 8.5, "smooth": False},
          "cutoff_A": 8.5, "name": "ase-lj"}


def write_spec(tmp_path: Path, data: dict, name: str = "model.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def rattled(n: int, amp: float = 0.05, seed: int = 0):
    s = fcc(n, A0_LJ)
    return s.positions + amp * np.random.default_rng(seed).standard_normal(s.positions.shape), s.box


def native_ef(R, box):
    lj = load_potential("lj")
    nbrs = lj.neighbors(box).allocate(jnp.asarray(R))
    return lj, nbrs, lj.energy_and_forces(R, box, nbrs)


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def test_ase_lj_matches_native_forces_stress_and_box_gradient(tmp_path):
    R, box = rattled(2)
    lj, nbrs, (e0, f0) = native_ef(R, box)
    pot, ev = ase_potential(read_spec(write_spec(tmp_path, ASE_LJ)), "spec", tmp_path, ARGON)
    caps = pot.capabilities
    assert (caps.energy, caps.stress, caps.autodiff, caps.jit, caps.batched) == (True, True, False, True, False)
    assert pot.kind == "ase" and pot.name == "ase-lj" and abs(pot.cutoff - 2.5) < 1e-15
    calls = ev.calls
    e1, f1 = jax.jit(pot.energy_and_forces)(R, box, nbrs)
    assert abs(float(e1) - float(e0)) <= 1e-10 * abs(float(e0))
    assert rel(f1, f0) < 1e-10
    # stress (ASE sign, from the calculator) and dE/dbox (custom VJP from the stress) vs autodiff LJ
    assert rel(pot.stress(R, box, nbrs), lj.stress(R, box, nbrs)) < 1e-10
    grad_box = jax.grad(lambda p, b: p.energy(jnp.asarray(R), b, nbrs), argnums=1)
    assert rel(grad_box(pot, jnp.asarray(box)), grad_box(lj, jnp.asarray(box))) < 1e-10
    assert ev.calls == calls + 1  # E, F, S and dE/dbox at one configuration: one calculator call
    with pytest.raises(Exception, match="(?i)jvp|forward-mode"):  # no silent zero second derivative
        jax.jacfwd(pot.forces)(jnp.asarray(R), box, nbrs)


def test_ase_lj_nve_trajectory_matches_native(tmp_path):
    """200 NVE steps (32 atoms, multi-image cell) with ASE's LennardJones inside the compiled loop:
    the trajectory equals native lj/cut/shift's to 1e-9, at one calculator call per step."""
    R, box = rattled(2, 0.02)
    pot, ev = ase_potential(read_spec(write_spec(tmp_path, ASE_LJ)), "spec", tmp_path, ARGON)
    kw = dict(kT=0.3, seed=3, sample_every=50, record=("positions", "velocities"))
    ref = run_md(load_potential("lj"), R, box, Integrator(dt=0.005), 200, **kw)
    calls = ev.calls
    got = run_md(pot, R, box, Integrator(dt=0.005), 200, **kw)
    assert ev.calls - calls == 201  # initial forces + one per step; observables hit the cache
    for key in ("positions", "velocities", "Etot"):
        assert rel(got.samples[key], ref.samples[key]) < 1e-9, key


def test_out_of_process_matches_in_process(tmp_path):
    R, box = rattled(2)
    _, nbrs, (e0, f0) = native_ef(R, box)
    pot = load_model_spec(write_spec(tmp_path, {**ASE_LJ, "python": sys.executable}))
    assert pot.params["host_python"] == sys.executable
    e1, f1 = pot.energy_and_forces(R, box, nbrs)
    assert abs(float(e1) - float(e0)) <= 1e-10 * abs(float(e0)) and rel(f1, f0) < 1e-10
    inproc = load_model_spec(write_spec(tmp_path, ASE_LJ, "in.yaml"))
    np.testing.assert_array_equal(np.asarray(f1), np.asarray(inproc.forces(R, box, nbrs)))  # bit for bit


JAX_MODULE = '''
import jax.numpy as jnp
from jax_md import energy, partition, space


def make_dense_lj(cutoff=2.5):
    """All pairs by minimum image, ignoring the neighbour list: an independent LJ/cut/shift."""
    def phi(r):
        return 4.0 * (r ** -12 - r ** -6)

    def energy_fn(R, box, neighbors):
        frac = (R[None, :, :] - R[:, None, :]) @ jnp.linalg.inv(box).T
        dR = (frac - jnp.round(frac)) @ box.T
        n = R.shape[0]
        off = ~jnp.eye(n, dtype=bool)
        r = jnp.sqrt(jnp.sum(dR ** 2, -1) + jnp.eye(n))
        e = jnp.where(off & (r < cutoff), phi(r) - phi(cutoff), 0.0)
        return 0.5 * jnp.sum(e)
    return energy_fn


def make_jaxmd_lj(r_onset=2.0, r_cutoff=2.5):
    """jax-md's own neighbour-list LJ (smooth switch), called as energy_fn(R, neighbor=, box=)."""
    displacement, _ = space.periodic_general(jnp.eye(3), fractional_coordinates=False)
    f64 = jnp.float64
    _, energy_fn = energy.lennard_jones_neighbor_list(
        displacement, jnp.eye(3), sigma=f64(1.0), epsilon=f64(1.0), r_onset=f64(r_onset),
        r_cutoff=f64(r_cutoff), format=partition.Sparse, fractional_coordinates=False)
    return energy_fn


def broken(**kwargs):
    raise RuntimeError("no weights here")
'''


@pytest.fixture
def jax_module(tmp_path):
    (tmp_path / "ext_test_jax_lj.py").write_text(textwrap.dedent(JAX_MODULE))
    yield tmp_path
    sys.modules.pop("ext_test_jax_lj", None)


def test_jax_spec_matches_native_lj(jax_module):
    R, box = rattled(4)
    lj, nbrs, (e0, f0) = native_ef(R, box)
    spec = {"kind": "jax", "energy_fn": "ext_test_jax_lj:make_dense_lj", "cutoff_A": 8.5}
    pot = load_potential(str(write_spec(jax_module, spec)))
    assert pot.kind == "jax" and pot.capabilities.autodiff and pot.capabilities.batched
    e1, f1 = jax.jit(pot.energy_and_forces)(R, box, nbrs)
    assert abs(float(e1) - float(e0)) <= 1e-12 * abs(float(e0)) and rel(f1, f0) < 1e-12
    # jax-md style energy_fn(R, neighbor=, box=) against lj/smooth with the same onset
    spec = {"kind": "jax", "energy_fn": "ext_test_jax_lj:make_jaxmd_lj", "kwargs": {"r_onset": 2.0},
            "cutoff_A": 8.5, "neighbor_format": "full"}
    pot2 = load_potential(str(write_spec(jax_module, spec, "jaxmd.yaml")))
    smooth = load_potential("lj/smooth", r_onset=2.0)
    nb_full = pot2.neighbors(box).allocate(jnp.asarray(R))
    nb_half = smooth.neighbors(box).allocate(jnp.asarray(R))
    e2, e3 = float(pot2.energy(R, box, nb_full)), float(smooth.energy(R, box, nb_half))
    assert abs(e2 - e3) <= 1e-12 * abs(e3)
    assert pot.fingerprint != pot2.fingerprint


BAD = [
    ({**ASE_LJ, "kind": "torch"}, "kind: unknown kind 'torch'"),
    ({**ASE_LJ, "colour": 1}, "colour: unknown key"),
    ({k: v for k, v in ASE_LJ.items() if k != "cutoff_A"}, "cutoff_A: required key is missing"),
    ({**ASE_LJ, "calculator": "no_such_pkg_xyz.calc:Calc"}, "calculator: module 'no_such_pkg_xyz.calc' not found"),
    ({**ASE_LJ, "calculator": "ase.calculators.lj:NoSuchCalc"}, "calculator: module 'ase.calculators.lj' has no attribute"),
    ({**ASE_LJ, "calculator": "ase.calculators.lj"}, "calculator: expected 'module:attribute'"),
    ({**ASE_LJ, "calculator": "ext_test_bad_calc:raising"},
     "kwargs: ext_test_bad_calc:raising(**kwargs) raised FileNotFoundError: model.pt"),
    ({**ASE_LJ, "calculator": "ext_test_bad_calc:nan_calc"}, "calculator: the calculator returned non-finite forces"),
    ({**ASE_LJ, "calculator": "ext_test_bad_calc:short_calc"}, "calculator: the calculator returned forces of shape (3, 3)"),
    ({**ASE_LJ, "python": "./no/such/python"}, "python: interpreter not found"),
    ({**ASE_LJ, "python": "no-such-python-xyz"}, "python: 'no-such-python-xyz' is not on PATH"),
    ({"kind": "jax", "energy_fn": "ext_test_jax_lj:broken", "cutoff_A": 8.5},
     "kwargs: ext_test_jax_lj:broken(**kwargs) raised RuntimeError: no weights here"),
    ({"kind": "jax", "energy_fn": "ext_test_jax_lj:missing", "cutoff_A": 8.5}, "energy_fn: module 'ext_test_jax_lj' has no attribute"),
]

BAD_CALC = '''
import numpy as np
from ase.calculators.calculator import Calculator


class Bad(Calculator):
    implemented_properties = ["energy", "forces"]

    def __init__(self, forces, **kw):
        super().__init__(**kw)
        self._forces = forces

    def calculate(self, atoms=None, properties=None, system_changes=None):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "forces": self._forces(len(atoms))}


def nan_calc(**kw):
    return Bad(lambda n: np.full((n, 3), np.nan))


def short_calc(**kw):
    return Bad(lambda n: np.zeros((3, 3)))


def raising(**kw):
    raise FileNotFoundError("model.pt")
'''


@pytest.mark.parametrize("spec,message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_specs_give_one_line_errors(jax_module, spec, message):
    (jax_module / "ext_test_bad_calc.py").write_text(textwrap.dedent(BAD_CALC))
    path = write_spec(jax_module, spec)
    with pytest.raises(UserError) as err:
        load_model_spec(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text, text
    sys.modules.pop("ext_test_bad_calc", None)


def test_host_failures_name_python(tmp_path):
    """The hosted calculator's own import errors come back over the pipe as one line."""
    path = write_spec(tmp_path, {**ASE_LJ, "python": sys.executable, "calculator": "no_such_pkg_xyz:C"})
    with pytest.raises(UserError, match=r"calculator: module 'no_such_pkg_xyz' not found \(python "):
        load_model_spec(path)


def test_nan_inside_compiled_loop_is_recoverable_as_user_error(tmp_path):
    """A calculator going NaN at some configuration mid-run: JAX wraps the callback's exception;
    `callback_user_error` recovers the one-line UserError for the CLI."""
    (tmp_path / "ext_test_far_nan.py").write_text(textwrap.dedent('''
        import numpy as np
        from ase.calculators.lj import LennardJones

        class FarNaN(LennardJones):
            def calculate(self, atoms=None, properties=None, system_changes=None):
                super().calculate(atoms, properties, system_changes)
                if atoms.positions[0, 0] > 100.0:
                    self.results["forces"] = self.results["forces"] * np.nan
        '''))
    pot = load_model_spec(write_spec(tmp_path, {**ASE_LJ, "calculator": "ext_test_far_nan:FarNaN"}))
    R, box = rattled(2)
    R[0, 0] = 40.0  # sigma = 136 Å
    with pytest.raises(Exception) as err:
        jax.jit(pot.forces)(R, box, None)
    found = callback_user_error(err.value)
    assert found is not None and "calculator: the calculator returned non-finite forces" in str(found)
    sys.modules.pop("ext_test_far_nan", None)


def test_md_cli_with_a_model_spec(tmp_path):
    spec = write_spec(tmp_path, ASE_LJ)
    cfg = tmp_path / "md.yaml"
    cfg.write_text(yaml.safe_dump({"system": {"supercell": 2, "lattice_constant": A0_LJ * ARGON.sigma_angstrom},
                                   "temperatures": [20.0], "replicas": 1, "timestep": 5.0,
                                   "equilibration": 0.0, "duration": 50.0, "sample_every": 10,
                                   "rdf_bins": 20, "save_trajectory": False}))
    code, out = run_cli(["md", "--model", str(spec), "-c", str(cfg), "-o", str(tmp_path / "o")])
    assert code == 0, out
    res = json.loads((tmp_path / "o" / "md.json").read_text())
    assert not res["temperatures"][0]["any_failed"]
    code, out = run_cli(["md", "--model", str(write_spec(tmp_path, {**ASE_LJ, "kind": "x"}, "bad.yaml")),
                         "-c", str(cfg), "-o", str(tmp_path / "bad")])
    assert code == 2 and "kind: unknown kind 'x'" in out and not (tmp_path / "bad").exists()


def test_ase_lattice_constant_without_autodiff_second_derivatives(tmp_path):
    """E(a) of an ASE calculator: first derivatives through its forces/stress, the second by
    differences; a0 equals the native LJ value (test_foundation_lj: 1.5496034241 sigma)."""
    from mlffbench.dynamics.lattice import lattice_constant

    pot = load_model_spec(write_spec(tmp_path, ASE_LJ))
    assert not pot.capabilities.autodiff
    assert lattice_constant(pot) == pytest.approx(1.5496034241, abs=1e-8)


def test_ase_calculator_through_string_method_and_fd_phonons(tmp_path):
    """ASE's LennardJones through `kind: ase` (no autodiff: finite-difference Hessians) gives the
    native 2x2x2 barrier to 1e-6 relative and the 0 K nu_max (symmetry-reduced finite
    differences of its forces) to 1e-4 of the native autodiff value."""
    from mlffbench.config import validate
    from mlffbench.workflows import pdos as wf
    from mlffbench.workflows.neb import NebConfig, compute_barrier

    ase_lj = load_model_spec(write_spec(tmp_path, ASE_LJ))
    neb = validate(NebConfig, {"units": {"system": "lj"}, "system": {"supercell": 2, "lattice_constant": 1.5496034241},
                               "string": {"n_images": 5, "tol": 1e-4, "saddle_polish": False},
                               "htst": {"enabled": False}})
    native = compute_barrier(load_potential("lj"), neb)
    ours = compute_barrier(ase_lj, neb)
    assert ours["string"].converged
    assert ours["barrier_forward"] == pytest.approx(native["barrier_forward"], rel=1e-6)

    cfg = validate(wf.PdosConfig, {"zero_kelvin": {"supercell": 4, "relax_positions": False, "mesh": 8,
                                                   "dos_points": 101, "band_points_per_segment": 3},
                                   "finite_temperature": {"enabled": False}})
    quiet = dict(lattice_constant=1.5496034241, log=lambda m: None)
    fd = wf.zero_kelvin(ase_lj, cfg, **quiet)["summary"]
    exact = wf.zero_kelvin(load_potential("lj"), cfg, **quiet)["summary"]
    assert fd["hessian"] == "finite-difference" and exact["hessian"] == "autodiff"
    assert fd["nu_max"]["reduced"] == pytest.approx(exact["nu_max"]["reduced"], rel=1e-4)


NO_STRESS_CALC = '''
from ase.calculators.lj import LennardJones


class NoStressLJ(LennardJones):
    """ASE's LJ reporting energy and forces only, as many MLFF calculators do."""
    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=None, system_changes=None):
        super().calculate(atoms, ["energy", "forces"], system_changes)
        self.results.pop("stress", None)
'''


def test_calculator_without_stress_gets_a0_from_energy_and_is_refused_for_npt(tmp_path):
    """No stress: the lattice constant comes from E(a) alone (equal to native LJ's
    1.5496034241 sigma, test_foundation_lj) and NPT is a one-line error naming the model."""
    from mlffbench.dynamics.lattice import lattice_constant

    (tmp_path / "ext_test_no_stress.py").write_text(textwrap.dedent(NO_STRESS_CALC))
    pot = load_model_spec(write_spec(tmp_path, {**ASE_LJ, "calculator": "ext_test_no_stress:NoStressLJ",
                                                "name": "ase-lj-nostress"}))
    assert not pot.capabilities.stress and pot.stress_fn is None
    assert lattice_constant(pot) == pytest.approx(1.5496034241, abs=1e-7)
    R, box = rattled(4, 0.02)  # NPT needs a cell wider than 2 (cutoff + skin)
    with pytest.raises(UserError) as err:
        run_md(pot, R, box, Integrator(ensemble="npt_nose_hoover", dt=0.005), 10, kT=0.3, seed=0, sample_every=10)
    assert str(err.value) == "ase-lj-nostress provides no stress; NPT needs it"
    sys.modules.pop("ext_test_no_stress", None)


def test_out_of_process_nve_equals_in_process(tmp_path):
    """20 NVE steps with the calculator hosted in another interpreter: the trajectory equals the
    in-process one bit for bit (same float64 frames over the pipe)."""
    R, box = rattled(2, 0.02)
    kw = dict(kT=0.3, seed=5, sample_every=10, record=("positions", "velocities"))
    got = {}
    for name, extra in (("in", {}), ("host", {"python": sys.executable})):
        pot = load_model_spec(write_spec(tmp_path, {**ASE_LJ, **extra}, f"{name}.yaml"))
        got[name] = run_md(pot, R, box, Integrator(dt=0.005), 20, **kw)
    for key in ("positions", "velocities", "Etot"):
        np.testing.assert_array_equal(np.asarray(got["host"].samples[key]), np.asarray(got["in"].samples[key]))


def _error_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.strip()]


@pytest.mark.parametrize("spec,message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_specs_through_the_cli_exit_2_and_write_nothing(jax_module, spec, message):
    """Every bad spec of BAD through `mlffbench md`: exit 2, one line naming the spec key, no OUTDIR."""
    (jax_module / "ext_test_bad_calc.py").write_text(textwrap.dedent(BAD_CALC))
    path = write_spec(jax_module, spec)
    out_dir = jax_module / "out"
    code, out = run_cli(["md", "--model", str(path), "-c", str(ROOT / "configs" / "md-quick.yaml"),
                         "-o", str(out_dir)])
    lines = _error_lines(out)
    assert code == 2 and len(lines) == 1 and message in lines[0], out
    assert not out_dir.exists()
    sys.modules.pop("ext_test_bad_calc", None)


@pytest.mark.parametrize("command", ["md", "pdos", "neb", "vacancy", "check-model", "run"])
def test_every_model_command_takes_a_spec_and_refuses_a_bad_one(jax_module, command):
    """`--model FILE.yaml` reaches the spec loader from every command that takes --model: a
    factory that raises is one line naming `kwargs`, exit 2, nothing written."""
    path = write_spec(jax_module, {"kind": "jax", "energy_fn": "ext_test_jax_lj:broken", "cutoff_A": 8.5})
    out_dir = jax_module / f"out-{command}"
    config = ["-c", str(ROOT / "configs" / f"{command}-quick.yaml")] if command in ("md", "neb", "vacancy") else []
    code, out = run_cli([command, "--model", str(path), *config, "-o", str(out_dir)])
    lines = _error_lines(out)
    assert code == 2, out
    assert len(lines) == 1 and "kwargs: ext_test_jax_lj:broken(**kwargs) raised RuntimeError" in lines[0], out
    assert not out_dir.exists()


@pytest.mark.parametrize("fd_fmax,routes", [(None, ("lbfgs", "lbfgs+fire")), (1e-8, ("lbfgs+fire",))])
def test_vacancy_relaxation_without_autodiff_is_cheap_and_converges(tmp_path, fd_fmax, routes):
    """107-atom LJ vacancy: ASE's LennardJones (no autodiff) relaxes without the Newton polish
    (which cost 6N = 642 calculator calls per Newton step) to max(fmax, FD threshold); the energy
    agrees with native lj relaxed to 1e-8 within what the threshold implies,
    |dE| <= 3N fmax^2 / (2 lambda_min), lambda_min from native lj's autodiff Hessian. A tight FD
    threshold (1e-8: below the L-BFGS line search's energy round-off) is finished by FIRE."""
    from mlffbench.dynamics.minimize import FD_RELAX_FMAX, reachable_fmax, relax_positions
    from mlffbench.properties.hessian import hessian
    from mlffbench.structures import remove_atom

    lj = load_potential("lj")
    pot, ev = ase_potential(read_spec(write_spec(tmp_path, ASE_LJ)), "spec", tmp_path, ARGON)
    vac = remove_atom(fcc(3, A0_LJ), 0)
    native = relax_positions(lj, vac.positions, vac.box, fmax=1e-8)
    assert native.converged and native.fmax == 1e-8
    calls = ev.calls
    ours = relax_positions(pot, vac.positions, vac.box, fmax=1e-8, fd_fmax=fd_fmax)
    n_calls = ev.calls - calls
    applied = FD_RELAX_FMAX if fd_fmax is None else fd_fmax
    assert ours.fmax == applied and ours.converged and ours.max_force <= applied and ours.method in routes
    if fd_fmax is None:
        assert reachable_fmax(pot, 1e-8) == FD_RELAX_FMAX and reachable_fmax(lj, 1e-8) == 1e-8
    print(f"fd_fmax={fd_fmax}: {n_calls} calculator calls, {ours.method}, max force {ours.max_force:.3g}")
    assert n_calls < 200, n_calls  # one Newton step alone was 642
    box = jnp.asarray(vac.box)
    H = hessian(lj, native.positions, box, lj.neighbors(box, skin=0.5)).matrix
    lam_min = np.sort(np.linalg.eigvalsh(0.5 * (H + H.T)))[3]  # above the three translations
    bound = 3 * len(vac.positions) * applied**2 / (2 * lam_min) + 1e-12 * abs(native.energy)
    assert abs(ours.energy - native.energy) <= bound, (ours.energy - native.energy, bound)
