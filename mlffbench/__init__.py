"""mlffbench: does a machine-learned force field know the physics, or only its training set?

Importing the package switches JAX to float64 support (``jax_enable_x64``) before jax-md is
imported anywhere: reference physics (the LJ oracle, Hessians, barriers) runs in float64, and
learned models choose float32 explicitly where accuracy is shown to hold.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

# jax-md's neighbour-list builder scatters int64 into int32 under x64 and JAX warns on every build.
# The cast is harmless (indices < 2**31); tests/test_canaries.py keeps one check that it still is.
warnings.filterwarnings("ignore", message=".*scatter inputs have incompatible types.*")

__version__ = "0.1.0"
