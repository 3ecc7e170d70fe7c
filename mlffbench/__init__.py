"""mlffbench: does a machine-learned force field know the physics, or only its training set?

Importing the package switches JAX to float64 support (``jax_enable_x64``) before jax-md is
imported anywhere: reference physics (the LJ oracle, Hessians, barriers) runs in float64, and
learned models choose float32 explicitly where accuracy is shown to hold.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# jax-md's __init__ imports rigid_body and nn (e3nn_jax, sympy, optax: ~4 s) eagerly, and mlffbench
# uses neither: load them only if touched (see _lazy_imports). Must precede any jax_md import.
from mlffbench import _lazy_imports  # noqa: E402

_lazy_imports.install()

from pathlib import Path  # noqa: E402


def compile_cache_dir() -> Path | None:
    """Where compiled XLA programs persist between processes, or None when disabled.

    `MLFFBENCH_NO_COMPILE_CACHE=1` disables it; `MLFFBENCH_CACHE_DIR` moves it (programs go to
    its `jax/` subfolder); the default is `$XDG_CACHE_HOME/mlffbench/jax` (~/.cache/mlffbench/jax).
    """
    if os.environ.get("MLFFBENCH_NO_COMPILE_CACHE", "").strip() not in ("", "0"):
        return None
    root = os.environ.get("MLFFBENCH_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlffbench"
    return Path(root).expanduser() / "jax"


if compile_cache_dir() is not None:
    # Every program loaded from the CPU cache logs two C++ error lines: XLA's loader reads the
    # LLVM tuning flags +prefer-no-gather/-scatter as CPU features the host lacks (jax-ml/jax#38445,
    # openxla/xla#44565); the program is loaded and runs. Set TF_CPP_MIN_LOG_LEVEL to see them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


def configure_compile_cache(directory: str | Path | None = None, enabled: bool = True) -> Path | None:
    """Turn JAX's persistent compilation cache on (in `directory`, default `compile_cache_dir()`)
    or off. Called on import with the environment's choice; a CLI flag calls it again (before
    the first compilation) to override. Returns the directory in use, or None when off.

    Every program is stored, however quickly it compiled (`MLFFBENCH_CACHE_MIN_COMPILE_SECONDS`
    sets a threshold), so a second run of a command loads its MD chunks, Hessians and
    string-method steps instead of re-compiling them. Storing the small ones too pays even in a
    cold process: closures rebuilt per call (jax-md's neighbour functions, per-stage evaluators)
    miss JAX's in-memory cache and are found on disk instead of compiled again.
    """
    path = Path(directory).expanduser() if (enabled and directory is not None) else (
        compile_cache_dir() if enabled else None)
    if path is None:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without the cache rather than fail
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      float(os.environ.get("MLFFBENCH_CACHE_MIN_COMPILE_SECONDS", "0")))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


configure_compile_cache()

# jax-md's neighbour-list builder scatters int64 into int32 under x64 and JAX warns on every build.
# The cast is harmless (indices < 2**31); tests/test_canaries.py keeps one check that it still is.
warnings.filterwarnings("ignore", message=".*scatter inputs have incompatible types.*")

__version__ = "0.1.0"
