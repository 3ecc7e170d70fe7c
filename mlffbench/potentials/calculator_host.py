"""Host an ASE calculator, in this interpreter or in another one, and evaluate it in ASE's units.

This module needs only numpy and ASE (no JAX, no mlffbench), so that it runs unchanged as a
script under another interpreter, e.g. a venv whose torch/e3nn pins clash with mlffbench's::

    /path/to/other/venv/bin/python calculator_host.py      # stdin/stdout: frames, see below

In process, `mlffbench.potentials.external` imports the same functions (`load_calculator`,
`compute`), so both routes give the same numbers.

Wire format (both directions): one frame = 8-byte little-endian length of a JSON header, the
header, then the raw bytes of each array it lists (``"arrays": [[name, dtype, shape], ...]``,
C order). float64 arrays cross the pipe bit for bit. Requests: ``{"op": "init", "calculator",
"kwargs", "search_path", "species"}``, ``{"op": "compute"}`` with arrays ``positions`` (N, 3) Å
and ``cell`` (3, 3) Å (rows = lattice vectors), ``{"op": "close"}``. Replies: ``{"ok": true,
...}`` (compute: arrays ``energy`` (), ``forces`` (N, 3), ``stress`` (3, 3) when implemented) or
``{"error": "<key>: <one line>"}``.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import sys
from typing import Any, BinaryIO

import numpy as np


class HostError(Exception):
    """A problem with the user's calculator, naming the spec key: `key`, `message`."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


# ----- frames -------------------------------------------------------------------------------------
def write_frame(stream: BinaryIO, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
    """Write one frame (JSON header + raw arrays) and flush."""
    arrays = {k: np.asarray(v, order="C") for k, v in (arrays or {}).items()}  # 0-d stays 0-d
    header = {**header, "arrays": [[k, v.dtype.str, list(v.shape)] for k, v in arrays.items()]}
    blob = json.dumps(header).encode()
    stream.write(struct.pack("<Q", len(blob)) + blob)
    for v in arrays.values():
        stream.write(v.tobytes())
    stream.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise EOFError("the other side closed the pipe")
        data += chunk
    return data


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read one frame -> (header, arrays). EOFError when the pipe closed."""
    (length,) = struct.unpack("<Q", _read_exact(stream, 8))
    header = json.loads(_read_exact(stream, length))
    arrays = {}
    for name, dtype, shape in header.pop("arrays", []):
        dt = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        arrays[name] = np.frombuffer(_read_exact(stream, n), dtype=dt).reshape(shape).copy()
    return header, arrays


# ----- the calculator -----------------------------------------------------------------------------
def import_attribute(ref: str, key: str, search_path: list[str] = ()) -> Any:
    """'package.module:attribute' -> the attribute; directories in `search_path` are importable.

    Raises HostError naming `key` for a malformed reference, a missing module or attribute, or an
    import that fails inside the user's module.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise HostError(key, f"expected 'module:attribute', got {ref!r}")
    for d in reversed(list(search_path)):
        if d not in sys.path:
            sys.path.insert(0, d)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise HostError(key, f"module {module_name!r} not found (python {sys.executable})") from None
        raise HostError(key, f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure in user code becomes one line
        raise HostError(key, f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise HostError(key, f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def source_sha256(obj: Any) -> str:
    """sha256 of the source file defining `obj` (its module), or '' when there is none."""
    import hashlib
    import inspect

    try:
        path = inspect.getsourcefile(obj) or inspect.getsourcefile(inspect.getmodule(obj))
    except TypeError:
        return ""
    if not path or not os.path.isfile(path):
        return ""
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def load_calculator(ref: str, kwargs: dict[str, Any], search_path: list[str] = ()):
    """(calculator, sha256 of the source defining it): `ref` names a Calculator class or a factory."""
    from ase.calculators.calculator import BaseCalculator

    factory = import_attribute(ref, "calculator", search_path)
    if not callable(factory):
        raise HostError("calculator", f"{ref} is not callable (need a Calculator class or a factory)")
    try:
        calc = factory(**kwargs)
    except Exception as exc:  # noqa: BLE001
        raise HostError("kwargs", f"{ref}(**kwargs) raised {type(exc).__name__}: {exc}") from None
    if not isinstance(calc, BaseCalculator):
        raise HostError("calculator", f"{ref}(**kwargs) returned {type(calc).__name__}, not an ASE Calculator")
    if not {"energy", "forces"} <= set(getattr(calc, "implemented_properties", ())):
        raise HostError("calculator", f"{ref} does not implement energy and forces "
                                      f"(implemented_properties: {list(calc.implemented_properties)})")
    return calc, source_sha256(factory)


def has_stress(calc) -> bool:
    """True when the calculator implements 'stress'."""
    return "stress" in calc.implemented_properties


def compute(calc, species: str, positions: np.ndarray, cell: np.ndarray) -> dict[str, np.ndarray]:
    """One calculator call for energy, forces and (if implemented) stress, checked.

    Args:
        positions: (N, 3) Å. cell: (3, 3) Å, rows = lattice vectors (periodic in all directions).

    Returns: {'energy': () eV, 'forces': (N, 3) eV/Å, 'stress': (3, 3) eV/Å^3 (ASE sign: positive
    under tension), only when implemented}. Raises HostError('calculator', ...) for non-finite
    values or wrong shapes.
    """
    from ase import Atoms
    from ase.calculators.calculator import all_changes
    from ase.stress import voigt_6_to_full_3x3_stress

    n = len(positions)
    atoms = Atoms(symbols=[species] * n, positions=positions, cell=cell, pbc=True)
    atoms.calc = calc
    props = ["energy", "forces"] + (["stress"] if has_stress(calc) else [])
    try:
        calc.calculate(atoms, props, all_changes)
    except Exception as exc:  # noqa: BLE001
        raise HostError("calculator", f"the calculator raised {type(exc).__name__}: {exc}") from None
    res = calc.results
    out: dict[str, np.ndarray] = {}
    expect = {"energy": [()], "forces": [(n, 3)], "stress": [(3, 3), (6,), (9,)]}
    for name in props:
        if name not in res:
            raise HostError("calculator", f"the calculator did not return {name!r}")
        value = np.asarray(res[name], dtype=np.float64)
        if name == "energy" and value.size == 1:
            value = value.reshape(())
        if value.shape not in expect[name]:
            raise HostError("calculator", f"the calculator returned {name} of shape {value.shape}, "
                                          f"expected {' or '.join(map(str, expect[name]))} for {n} atoms")
        if not np.all(np.isfinite(value)):
            raise HostError("calculator", f"the calculator returned non-finite {name} ({n} atoms)")
        if name == "stress":
            value = voigt_6_to_full_3x3_stress(value) if value.shape == (6,) else value.reshape(3, 3)
        out[name] = value
    return out


# ----- the out-of-process server ------------------------------------------------------------------
def serve(inp: BinaryIO, out: BinaryIO) -> None:
    """Answer requests until 'close' or end of input."""
    calc, species = None, "Ar"
    while True:
        try:
            header, arrays = read_frame(inp)
        except EOFError:
            return
        op = header.get("op")
        try:
            if op == "init":
                species = header.get("species", "Ar")
                calc, source = load_calculator(header["calculator"], header.get("kwargs", {}),
                                               header.get("search_path", []))
                write_frame(out, {"ok": True, "implemented_properties": list(calc.implemented_properties),
                                  "source_sha256": source, "python": sys.executable})
            elif op == "compute":
                if calc is None:
                    raise HostError("calculator", "compute before init")
                write_frame(out, {"ok": True}, compute(calc, species, arrays["positions"], arrays["cell"]))
            elif op == "close":
                write_frame(out, {"ok": True})
                return
            else:
                raise HostError("op", f"unknown request {op!r}")
        except HostError as exc:
            write_frame(out, {"error": str(exc), "key": exc.key})
        except Exception as exc:  # noqa: BLE001 - e.g. ASE missing in the host's interpreter
            write_frame(out, {"error": f"python: {sys.executable}: {type(exc).__name__}: {exc}", "key": "python"})


def main() -> None:
    """Serve on the original stdin/stdout; anything the calculator prints goes to stderr."""
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (many ML packages print on import) must not corrupt the frames
    sys.stdout = sys.stderr
    serve(inp, out)


if __name__ == "__main__":
    main()
