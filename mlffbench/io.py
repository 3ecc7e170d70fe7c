"""Files: atomic output directories, JSON results with units, manifests, datasets.

Atomicity: a command writes into a hidden sibling directory (`.OUTDIR.partial-<pid>`) and renames
it onto OUTDIR only when everything is written, so an interrupted run leaves no half-written
output behind (the partial directory is removed on failure).

Datasets are written twice: `dataset.extxyz` (ASE-readable, metal units) for people and other
tools, and `dataset.npz` (float64 arrays, reduced units) for fast training.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mlffbench.errors import UserError

PACKAGES = ("mlffbench", "jax", "jaxlib", "jax-md", "flax", "optax", "numpy", "ase")


def check_outdir(outdir: str | Path, overwrite: bool) -> Path:
    """Refuse an existing, non-empty OUTDIR unless `overwrite` (UserError, nothing written)."""
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"output directory {out} already exists; pass --overwrite to replace it")
    return out


def fresh_partial_dir(final: str | Path, tag: str = "") -> Path:
    """An empty hidden sibling `.NAME.partial<tag>` of `final` to write into before `commit_dir`."""
    final = Path(final)
    tmp = final.parent / f".{final.name}.partial{tag}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def commit_dir(tmp: str | Path, final: str | Path) -> None:
    """Rename a finished `tmp` onto `final`, replacing an old `final` only once `tmp` is in place."""
    tmp, final = Path(tmp), Path(final)
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_partials(out: Path) -> list[Path]:
    """Delete `.NAME.partial-<pid>` siblings of `out` left by killed processes (pid no longer alive)."""
    removed = []
    for p in out.parent.glob(f".{out.name}.partial-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_outdir(outdir: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes `outdir` only if the block succeeds.

    Partial directories that killed runs (SIGKILL: no cleanup ran) left beside `outdir` are removed."""
    out = check_outdir(outdir, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out)
    tmp = fresh_partial_dir(out, f"-{os.getpid()}")
    _ACTIVE_PARTIALS.add(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _ACTIVE_PARTIALS.discard(tmp)
    commit_dir(tmp, out)


_ACTIVE_PARTIALS: set[Path] = set()  # partial directories of this process's open atomic_outdir blocks


def remove_active_partials() -> None:
    """Delete this process's partial output directories (the SIGTERM handler, just before exit)."""
    for tmp in list(_ACTIVE_PARTIALS):
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file via a temporary sibling and os.replace (never half-written)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.parent / f".{p.name}.tmp-{os.getpid()}-{threading.get_ident()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if hasattr(obj, "__array__"):
        return _jsonable(np.asarray(obj))
    if isinstance(obj, float) and not np.isfinite(obj):
        return None  # JSON has no NaN/inf; null means 'not available'
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, data: Any) -> None:
    """Atomic, indented JSON; numpy/JAX values converted, NaN/inf written as null."""
    atomic_write_bytes(path, (json.dumps(_jsonable(data), indent=2) + "\n").encode())


def read_json(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"file not found: {p}")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def value(x: float, unit: str, **extra: Any) -> dict:
    """A number with its unit, as every result stores it: {'value': x, 'unit': unit, ...}.

    Spread keys ('std', 'n', 'ci95') are passed through; see `mlffbench.stats.quantity`.
    """
    from mlffbench.stats import quantity

    return quantity(x, unit, **extra)


def json_sha256(obj: Any) -> str:
    """sha256 of a JSON-able object with sorted keys: the one hash of descriptions and settings."""
    return hashlib.sha256(json.dumps(_jsonable(obj), sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_dir(path: str | Path, pattern: str = "*") -> str:
    """Hash of every file under `path` (names and contents), order-independent."""
    h = hashlib.sha256()
    for f in sorted(Path(path).rglob(pattern)):
        if f.is_file():
            h.update(str(f.relative_to(path)).encode())
            h.update(sha256_file(f).encode())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_description() -> dict[str, str]:
    import jax

    dev = jax.devices()[0]
    return {"platform": dev.platform, "device": str(dev.device_kind), "host": platform.node(),
            "machine": platform.machine(), "cpu_count": str(os.cpu_count())}


def manifest(command: str, config: Any = None, seed: int | None = None, dtype: str = "float64",
             wall_times: dict[str, float] | None = None, **hashes: str) -> dict:
    """What every output directory carries so a number can be traced to what made it."""
    from mlffbench.config import config_hash

    cfg = None if config is None else config.model_dump(mode="json")
    return {
        "command": command,
        "created_unix": time.time(),
        "config": cfg,
        "config_hash": None if config is None else config_hash(config),
        "seed": seed,
        "dtype": dtype,
        "versions": package_versions(),
        "device": device_description(),
        "wall_times_s": wall_times or {},
        **hashes,
    }


# ----------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------
DATASET_ARRAYS = ("positions", "forces", "energy", "stress", "box", "temperature", "phase",
                  "trajectory", "frame", "kT_target")


class Dataset:
    """Frames of equal atom count, reduced units, as stored in `dataset.npz`.

    Arrays (F frames, N atoms):
        positions (F, N, 3) sigma; forces (F, N, 3) epsilon/sigma; energy (F,) epsilon (total);
        stress (F, 3, 3) epsilon/sigma^3, ASE sign (configurational part); box (F, 3, 3) sigma,
        columns = lattice vectors; temperature (F,) instantaneous kT; kT_target (F,) thermostat
        target; phase (F,) int 0 = solid, 1 = liquid; trajectory (F,) int; frame (F,) int.
    `units` holds the unit system (UnitSystem.as_dict()) used to write metal-unit files.
    """

    def __init__(self, arrays: dict[str, np.ndarray], units: dict, meta: dict | None = None):
        missing = [k for k in DATASET_ARRAYS if k not in arrays]
        if missing:
            raise UserError(f"dataset is missing arrays: {', '.join(missing)}")
        self.arrays = arrays
        self.units = units
        self.meta = meta or {}
        n = len(arrays["positions"])
        bad = [k for k in DATASET_ARRAYS if len(arrays[k]) != n]
        if bad:
            raise UserError(f"dataset arrays disagree on the number of frames: {', '.join(bad)}")

    def __len__(self) -> int:
        return len(self.arrays["positions"])

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    def subset(self, index) -> "Dataset":
        return Dataset({k: v[index] for k, v in self.arrays.items()}, self.units, self.meta)


def save_dataset_npz(path: str | Path, ds: Dataset) -> None:
    """Compressed npz (reduced units) plus JSON metadata, written atomically."""
    import io as _io

    buf = _io.BytesIO()
    np.savez_compressed(buf, **ds.arrays, _units=json.dumps(ds.units), _meta=json.dumps(_jsonable(ds.meta)))
    atomic_write_bytes(path, buf.getvalue())


def load_dataset(path: str | Path) -> Dataset:
    """Read `dataset.npz` (or a directory containing it). UserError on anything malformed."""
    p = Path(path)
    if p.is_dir():
        p = p / "dataset.npz"
    if not p.is_file():
        raise UserError(f"dataset not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if not k.startswith("_")}
            units = json.loads(str(z["_units"])) if "_units" in z.files else {}
            meta = json.loads(str(z["_meta"])) if "_meta" in z.files else {}
    except (OSError, ValueError) as exc:
        raise UserError(f"{p}: not a readable dataset ({exc})") from None
    return Dataset(arrays, units, meta)


def write_extxyz(path: str | Path, ds: Dataset, units) -> None:
    """ASE extxyz in metal units (Å, eV, eV/Å, eV/Å^3), with temperature_K and phase per frame."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    L, E, F, S = (units.scale(q) for q in ("length", "energy", "force", "stress"))
    T = units.scale("temperature")
    frames = []
    for k in range(len(ds)):
        atoms = Atoms(f"Ar{ds.positions.shape[1]}", positions=ds.positions[k] * L,
                      cell=ds.box[k].T * L, pbc=True)
        atoms.info.update(temperature_K=float(ds.temperature[k] * T),
                          target_temperature_K=float(ds.kT_target[k] * T),
                          phase="liquid" if ds.phase[k] else "solid",
                          trajectory=int(ds.trajectory[k]), frame=int(ds.frame[k]))
        atoms.calc = SinglePointCalculator(atoms, energy=float(ds.energy[k] * E),
                                           forces=ds.forces[k] * F, stress=ds.stress[k] * S)
        frames.append(atoms)
    p = Path(path)
    tmp = p.parent / f".{p.name}.tmp-{os.getpid()}"
    with _lossless_extxyz_columns():
        write(str(tmp), frames, format="extxyz")
    os.replace(tmp, p)


@contextlib.contextmanager
def _lossless_extxyz_columns() -> Iterator[None]:
    """ASE writes per-atom float columns as '%16.8f' (about 1e-6 relative for forces in eV/Å);
    a dataset must round-trip exactly, so floats are written with 17 significant digits while
    our write runs. The file stays standard extxyz."""
    from ase.io import extxyz

    original = extxyz.output_column_format

    def lossless(*args, **kwargs):
        comment, ncols, dtype, fmt = original(*args, **kwargs)
        return comment, ncols, dtype, fmt.replace("%16.8f", "%24.17g")

    extxyz.output_column_format = lossless
    try:
        yield
    finally:
        extxyz.output_column_format = original
