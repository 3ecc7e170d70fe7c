"""Bring your own model: an ASE calculator or a JAX energy function, named by a YAML spec.

A spec is data naming code the user chose to run (see docs/external-models.md)::

    kind: ase                                      # any ASE Calculator (eV, Å)
    calculator: ase.calculators.lj:LennardJones    # module:attribute, a class or a factory
    kwargs: {epsilon: 0.010321, sigma: 3.4, rc: 8.5, smooth: false}
    cutoff_A: 8.5                                  # the model's range (the calculator finds its own neighbours)
    python: null                                   # or another interpreter: hosted out of process

    kind: jax                                      # a JAX energy in reduced units
    energy_fn: my_jax_model:make_energy_fn         # factory(**kwargs) -> energy
    kwargs: {}
    cutoff_A: 8.5
    dtype: float64

Modules next to the spec file are importable. Both kinds become an ordinary `Potential`:

* ``kind: jax``: the energy runs inside `jit`, autodiff gives forces, stress and Hessians, `vmap`
  batches (capabilities all True).
* ``kind: ase``: the calculator is called from inside compiled code with `jax.pure_callback`
  (sequentially under `vmap`); a `jax.custom_vjp` returns the forces computed with the energy, so
  a gradient costs no extra call, and the box cotangent comes from the calculator's stress. The
  last evaluations are cached by positions and cell, so E, F and S at one configuration cost one
  calculator call. No second derivatives (capabilities.autodiff False: finite differences).
  With ``python:`` the calculator lives in that interpreter (`calculator_host`), over a pipe.

Units: the calculator works in eV and Å; mlffbench in reduced units of `units` (argon by default:
epsilon 0.010321 eV, sigma 3.4 Å). Errors in a spec are one-line `UserError`s naming the key.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field

from mlffbench.config import StrictModel, read_yaml, validate
from mlffbench.errors import UserError
from mlffbench.potentials import calculator_host as host
from mlffbench.neighbors import NeighborSpec
from mlffbench.potentials.base import Capabilities, Potential
from mlffbench.units import ARGON, UnitSystem

HOST_SCRIPT = Path(host.__file__).resolve()
DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
_CACHE_SIZE = 4
# 0 K FCC lattice constant of argon-like LJ (sigma): the configuration every ase spec is probed at
_PROBE_A_SIGMA = 1.5496


# ----- the spec ---------------------------------------------------------------------------------
class SpecUnits(StrictModel):
    """The reduced unit system the model is converted to (defaults: argon)."""

    epsilon_eV: float = Field(ARGON.epsilon_ev, gt=0)
    sigma_A: float = Field(ARGON.sigma_angstrom, gt=0)
    mass_amu: float = Field(ARGON.mass_amu, gt=0)

    def unit_system(self) -> UnitSystem:
        return UnitSystem(self.epsilon_eV, self.sigma_A, self.mass_amu)


class _SpecBase(StrictModel):
    name: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    cutoff_A: float = Field(gt=0)
    dtype: Literal["float32", "float64"] = "float64"
    units: SpecUnits | None = None


class AseSpec(_SpecBase):
    """`kind: ase`: an ASE calculator (class or factory) called with `kwargs`, in eV and Å.

    species: the element every atom is given (the benchmarks are monatomic).
    python: None (in process) or another interpreter hosting the calculator out of process; a
        relative path is taken relative to the spec file, a bare name is looked up on PATH.
    """

    kind: Literal["ase"]
    calculator: str
    python: str | None = None
    species: str = "Ar"


class JaxSpec(_SpecBase):
    """`kind: jax`: factory(**kwargs) -> energy in reduced units.

    call: how the energy is called: 'positional' energy(R, box, neighbors), 'jax_md'
        energy(R, neighbor=neighbors, box=box), or 'auto' (jax_md when it takes a `neighbor`
        argument).
    neighbor_format: 'full' (each pair both ways) or 'half' (each pair once).
    """

    kind: Literal["jax"]
    energy_fn: str
    call: Literal["auto", "positional", "jax_md"] = "auto"
    neighbor_format: Literal["half", "full"] = "full"


KINDS = {"ase": AseSpec, "jax": JaxSpec}


def read_spec(path: str | Path) -> AseSpec | JaxSpec:
    """Validate the spec file at `path` (UserError naming the key)."""
    data = read_yaml(path)
    kind = data.get("kind")
    if kind is None:
        raise UserError(f"{path}: kind: required key is missing (ase or jax)")
    if kind not in KINDS:
        raise UserError(f"{path}: kind: unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    return validate(KINDS[kind], data, str(path))


# ----- errors from inside compiled code ---------------------------------------------------------
_LAST_ERROR: list[UserError] = []


def callback_user_error(exc: BaseException) -> UserError | None:
    """The UserError raised inside a calculator callback that `exc` (JAX's runtime error) hides.

    JAX re-raises an exception thrown in `jax.pure_callback` as a JaxRuntimeError with the whole
    traceback in its message; the CLI can turn it back into the one-line error with this.
    """
    if _LAST_ERROR and _LAST_ERROR[-1].args[0] in str(exc):
        return _LAST_ERROR[-1]
    return None


def _user_error(source: str, err: host.HostError) -> UserError:
    exc = UserError(f"{source}: {err.key}: {err.message}")
    _LAST_ERROR[:] = [exc]
    return exc


# ----- calculator backends (eV, Å) --------------------------------------------------------------
class InProcessCalculator:
    """A calculator in this interpreter: compute(positions Å, cell Å) -> host.compute's dict."""

    def __init__(self, spec: AseSpec, search_path: list[str]) -> None:
        self.calc, self.source_sha256 = host.load_calculator(spec.calculator, spec.kwargs, search_path)
        self.species = spec.species
        self.has_stress = host.has_stress(self.calc)

    def compute(self, positions: np.ndarray, cell: np.ndarray) -> dict[str, np.ndarray]:
        return host.compute(self.calc, self.species, positions, cell)

    def close(self) -> None:
        """Nothing to release in process."""


def _stop(proc: subprocess.Popen, log) -> None:
    """Ask a host to exit, then make sure it has (runs at close, garbage collection or exit)."""
    if proc.poll() is None:
        try:
            host.write_frame(proc.stdin, {"op": "close"})
            proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream and not stream.closed:
            stream.close()
    log.close()


class HostedCalculator:
    """A calculator living in another interpreter (`calculator_host.py`), talking over a pipe."""

    def __init__(self, spec: AseSpec, python: str, search_path: list[str]) -> None:
        self.python = python
        self.species = spec.species
        self._log = tempfile.TemporaryFile()
        self._lock = threading.Lock()
        try:
            self._proc = subprocess.Popen([python, str(HOST_SCRIPT)], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=self._log)
        except OSError as exc:
            self._log.close()
            raise host.HostError("python", f"cannot start {python}: {exc.strerror or exc}") from None
        self._finalizer = weakref.finalize(self, _stop, self._proc, self._log)
        reply, _ = self._request({"op": "init", "calculator": spec.calculator, "kwargs": spec.kwargs,
                                  "search_path": search_path, "species": spec.species})
        self.has_stress = "stress" in reply["implemented_properties"]
        self.source_sha256 = reply.get("source_sha256", "")

    def _request(self, header: dict, arrays: dict | None = None) -> tuple[dict, dict]:
        with self._lock:
            try:
                host.write_frame(self._proc.stdin, header, arrays)
                reply, out = host.read_frame(self._proc.stdout)
            except (EOFError, OSError):
                self._proc.wait(timeout=10)
                raise host.HostError("python", f"the calculator host ({self.python}) exited with code "
                                               f"{self._proc.returncode}: {self._stderr_tail()}") from None
        if "error" in reply:
            key, _, message = reply["error"].partition(": ")
            raise host.HostError(reply.get("key", key), message)
        return reply, out

    def _stderr_tail(self) -> str:
        self._log.seek(0)
        lines = [ln for ln in self._log.read().decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1].strip() if lines else "no output"

    def compute(self, positions: np.ndarray, cell: np.ndarray) -> dict[str, np.ndarray]:
        _, out = self._request({"op": "compute"}, {"positions": np.asarray(positions, np.float64),
                                                   "cell": np.asarray(cell, np.float64)})
        return out

    def close(self) -> None:
        """Stop the host process (also done automatically at exit)."""
        self._finalizer()


class CachedEvaluator:
    """Reduced-unit front of a calculator backend, with a small cache of the last evaluations.

    __call__(R (N, 3) sigma, box (3, 3) sigma, columns = lattice vectors) ->
    (energy () epsilon, forces (N, 3) epsilon/sigma, stress (3, 3) epsilon/sigma^3, NaN without
    stress), float64. `calls` counts calculator calls (cache misses).
    """

    def __init__(self, backend, units: UnitSystem, source: str) -> None:
        self.backend = backend
        self.units = units
        self.source = source
        self.calls = 0
        self._cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

    def __call__(self, R, box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        R = np.asarray(R, np.float64)
        box = np.asarray(box, np.float64)
        key = R.tobytes() + box.tobytes()
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        s, e = self.units.sigma_angstrom, self.units.epsilon_ev
        try:
            res = self.backend.compute(R * s, box.T * s)
        except host.HostError as err:
            raise _user_error(self.source, err) from None
        stress = res["stress"] * (s**3 / e) if "stress" in res else np.full((3, 3), np.nan)
        out = (np.asarray(res["energy"] / e), res["forces"] * (s / e), stress)
        self.calls += 1
        self._cache[key] = out
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return out


# ----- ase kind -> Potential --------------------------------------------------------------------
def _callback_fns(evaluator: CachedEvaluator) -> tuple[Callable, Callable]:
    """(energy(R, box) with a custom VJP, stress(R, box)), both jit-able host callbacks."""

    def on_host(R, box):
        e, F, S = evaluator(R, box)
        dt = R.dtype
        return np.asarray(e, dt), F.astype(dt), S.astype(dt)

    def call(R, box):
        shapes = (jax.ShapeDtypeStruct((), R.dtype), jax.ShapeDtypeStruct(R.shape, R.dtype),
                  jax.ShapeDtypeStruct((3, 3), R.dtype))
        return jax.pure_callback(on_host, shapes, R, box.astype(R.dtype), vmap_method="sequential")

    @jax.custom_vjp
    def energy(R, box):
        return call(R, box)[0]

    def fwd(R, box):
        e, F, S = call(R, box)
        return e, (F, S, R, box)

    def bwd(res, g):
        # dE/dR = -F. dE/dbox from the stress: for the strain (I + eps) applied to positions and
        # box, V S = dE/deps = (dE/dR)^T R + (dE/dbox) box^T  =>  dE/dbox = (V S + F^T R) box^-T
        # (NaN without a stress, so nothing can use a missing box derivative unnoticed).
        F, S, R, box = res
        volume = jnp.abs(jnp.linalg.det(box))
        d_box = (volume * S + F.T @ R) @ jnp.linalg.inv(box).T
        return -g * F, (g * d_box).astype(box.dtype)

    energy.defvjp(fwd, bwd)

    def stress(R, box):
        return call(R, box)[2]

    return energy, stress


def _resolve_python(python: str, spec_dir: Path, source: str) -> str:
    if os.sep in python or python.startswith("."):
        path = Path(python).expanduser()
        path = path if path.is_absolute() else spec_dir / path
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise UserError(f"{source}: python: interpreter not found: {path}")
        return str(path)
    found = shutil.which(python)
    if found is None:
        raise UserError(f"{source}: python: {python!r} is not on PATH")
    return found


def _files_sha256(kwargs: dict[str, Any]) -> dict[str, str]:
    """sha256 of every kwarg value that names an existing file (e.g. a checkpoint)."""
    out = {}
    values = list(kwargs.items())
    values += [(f"{k}[{i}]", x) for k, v in kwargs.items() if isinstance(v, list) for i, x in enumerate(v)]
    for k, v in values:
        if isinstance(v, str) and v and Path(v).is_file():
            out[k] = hashlib.sha256(Path(v).read_bytes()).hexdigest()
    return out


def _probe(backend, source: str) -> None:
    """One call on a 32-atom FCC cell, so that a calculator returning NaN or wrong shapes fails at
    load with a one-line error rather than inside a compiled loop."""
    from mlffbench.structures import fcc

    s = fcc(2, _PROBE_A_SIGMA * ARGON.sigma_angstrom)
    try:
        backend.compute(s.positions, s.box.T)
    except host.HostError as err:
        raise _user_error(source, err) from None


# ----- the calculator finds its own neighbours --------------------------------------------------
def _placeholder_list(R, error=None):
    """A one-slot jax-md neighbour list (the slot padded with N): what workflows carry through
    their loops for a calculator that ignores it. Updates only record the positions."""
    from jax_md import partition

    R = jnp.asarray(R)
    return partition.NeighborList(
        idx=jnp.full((2, 1), R.shape[0], jnp.int32), reference_position=R,
        error=error if error is not None else partition.PartitionError(jnp.zeros((), jnp.uint8)),
        cell_list_capacity=None, max_occupancy=1, format=partition.NeighborListFormat.OrderedSparse,
        cell_size=None, cell_list_fn=None, update_fn=_placeholder_update)


def _placeholder_update(R, nbrs, **_):
    return nbrs.set(reference_position=jnp.asarray(R))


def placeholder_neighbor_spec(cutoff: float, skin: float, fractional: bool) -> NeighborSpec:
    """NeighborSpec whose lists hold no pairs (allocation and update cost nothing, never overflow)."""
    return NeighborSpec(allocate=lambda R, *a, **k: _placeholder_list(R), update=_placeholder_update,
                        multi_image=False, cutoff=float(cutoff), skin=float(skin), fmt="half",
                        fractional=fractional)


@dataclass(frozen=True, eq=False)
class CalculatorPotential(Potential):
    """A `Potential` around an ASE calculator, which builds its own neighbour list from positions
    and cell: `neighbors` returns placeholder lists instead of a jax-md list that nothing reads.
    (A real list would cost its allocation and XLA compilation in every fresh process, about 1.5 s
    of a 256-atom finite-difference PDOS, and an O(N^2) update per MD step.)"""

    def neighbors(self, box, skin: float = 0.3, fractional: bool = False, n_atoms: int | None = None,
                  capacity_multiplier: float = 1.3) -> NeighborSpec:
        return placeholder_neighbor_spec(self.cutoff, skin, fractional)


def ase_potential(spec: AseSpec, source: str, spec_dir: Path, units: UnitSystem,
                  dtype: str | None = None) -> tuple[Potential, CachedEvaluator]:
    """An `kind: ase` spec -> (Potential, its evaluator (counts calculator calls))."""
    search_path = [str(spec_dir.resolve())]
    try:
        if spec.python is None:
            backend = InProcessCalculator(spec, search_path)
        else:
            backend = HostedCalculator(spec, _resolve_python(spec.python, spec_dir, source), search_path)
    except host.HostError as err:
        raise _user_error(source, err) from None
    _probe(backend, source)
    evaluator = CachedEvaluator(backend, units, source)
    energy, stress = _callback_fns(evaluator)
    params = {"spec": spec.model_dump(mode="json"), "units": units.as_dict(),
              "host_python": getattr(backend, "python", None)}
    param_hash = hashlib.sha256(repr((backend.source_sha256, _files_sha256(spec.kwargs))).encode()).hexdigest()
    pot = CalculatorPotential(
        name=spec.name or Path(source).stem, cutoff=spec.cutoff_A / units.sigma_angstrom,
        energy_fn=lambda R, box, nbrs: energy(R, box), neighbor_format="half",
        dtype=DTYPES[dtype or spec.dtype], params=params,
        stress_fn=(lambda R, box, nbrs: stress(R, box)) if backend.has_stress else None,
        capabilities=Capabilities(energy=True, stress=backend.has_stress, autodiff=False, jit=True,
                                  batched=False),
        param_hash=param_hash, kind="ase")
    return pot, evaluator


# ----- jax kind -> Potential --------------------------------------------------------------------
def _call_style(fn: Callable, call: str) -> str:
    if call != "auto":
        return call
    try:
        names = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return "positional"
    return "jax_md" if "neighbor" in names else "positional"


def _check_jax_energy(energy_fn: Callable, cutoff: float, fmt: str, dtype, source: str) -> None:
    """Trace the energy once (no compute) on an FCC crystal wide enough for a minimum-image list:
    a wrong signature or a non-scalar result is a one-line error at load."""
    from mlffbench.neighbors import neighbor_spec
    from mlffbench.structures import fcc

    n = max(2, int(np.ceil(2.0 * (cutoff + 0.3) / _PROBE_A_SIGMA)))
    s = fcc(n, _PROBE_A_SIGMA)
    nspec = neighbor_spec(s.box, cutoff, skin=0.3, fmt=fmt, n_atoms=len(s.positions))
    nbrs = nspec.allocate(jnp.asarray(s.positions))
    try:
        out = jax.eval_shape(energy_fn, jnp.asarray(s.positions, dtype), jnp.asarray(s.box, dtype), nbrs)
    except Exception as exc:  # noqa: BLE001 - user code
        raise UserError(f"{source}: energy_fn: calling the energy raised {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if getattr(out, "shape", None) != () or not jnp.issubdtype(out.dtype, jnp.floating):
        raise UserError(f"{source}: energy_fn: the energy must be a float scalar, got "
                        f"{getattr(out, 'shape', type(out).__name__)}")


def jax_potential(spec: JaxSpec, source: str, spec_dir: Path, units: UnitSystem,
                  dtype: str | None = None) -> Potential:
    """A `kind: jax` spec -> Potential (the energy is plain JAX: jit, autodiff and vmap)."""
    try:
        factory = host.import_attribute(spec.energy_fn, "energy_fn", [str(spec_dir.resolve())])
    except host.HostError as err:
        raise _user_error(source, err) from None
    if not callable(factory):
        raise UserError(f"{source}: energy_fn: {spec.energy_fn} is not callable")
    try:
        fn = factory(**spec.kwargs)
    except Exception as exc:  # noqa: BLE001 - user code
        raise UserError(f"{source}: kwargs: {spec.energy_fn}(**kwargs) raised {type(exc).__name__}: {exc}") from None
    if not callable(fn):
        raise UserError(f"{source}: energy_fn: {spec.energy_fn}(**kwargs) returned "
                        f"{type(fn).__name__}, not an energy function")
    if _call_style(fn, spec.call) == "jax_md":
        def energy_fn(R, box, nbrs):
            return fn(R, neighbor=nbrs, box=box)
    else:
        def energy_fn(R, box, nbrs):
            return fn(R, box, nbrs)
    cutoff = spec.cutoff_A / units.sigma_angstrom
    jdtype = DTYPES[dtype or spec.dtype]
    _check_jax_energy(energy_fn, cutoff, spec.neighbor_format, jdtype, source)
    return Potential(name=spec.name or Path(source).stem, cutoff=cutoff, energy_fn=energy_fn,
                     neighbor_format=spec.neighbor_format, dtype=jdtype,
                     params={"spec": spec.model_dump(mode="json"), "units": units.as_dict()},
                     capabilities=Capabilities(), param_hash=host.source_sha256(factory), kind="jax")


# ----- entry point ------------------------------------------------------------------------------
def load_model_spec(path: str | Path, dtype: str | None = None, units: UnitSystem | None = None) -> Potential:
    """A model spec file (`kind: ase` or `kind: jax`) -> Potential in reduced units.

    Args:
        path: the YAML spec; modules next to it are importable.
        dtype: 'float32' / 'float64' overriding the spec's `dtype` (None: the spec's).
        units: the run's unit system; None uses the spec's `units` (default argon). Given both,
            they must agree (a model converted with other units would be silently wrong).

    Raises UserError (one line, naming the key) for a bad spec, a missing module, attribute or
    interpreter, a factory that raises, or a calculator returning NaN or wrong shapes.
    """
    path = Path(path)
    source = str(path)
    spec = read_spec(path)
    spec_units = spec.units.unit_system() if spec.units is not None else None
    if units is not None and spec_units is not None and spec_units != units:
        raise UserError(f"{source}: units: the spec's {spec_units} differ from the run's {units}")
    units = units or spec_units or ARGON
    if isinstance(spec, AseSpec):
        return ase_potential(spec, source, path.parent, units, dtype)[0]
    return jax_potential(spec, source, path.parent, units, dtype)


__all__ = ["AseSpec", "JaxSpec", "CachedEvaluator", "CalculatorPotential", "HostedCalculator", "InProcessCalculator",
           "ase_potential", "callback_user_error", "jax_potential", "load_model_spec", "read_spec"]
