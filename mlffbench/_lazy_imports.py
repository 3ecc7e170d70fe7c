"""Defer the parts of jax-md that mlffbench never uses, so that `import jax_md` costs ~1 s, not ~5 s.

jax-md's `__init__` imports every submodule eagerly: `rigid_body` (which evaluates jnp shapes at
import time: backend start-up plus small dispatches, 1.5-5 s) and `nn` -> `_nn.nequip` / `_nn.gnome`
/ `_nn.uma` (e3nn_jax, sympy, scipy.signal, optax, pallas: ~2.5 s). mlffbench uses `space`,
`partition`, `custom_partition`, `simulate`, `smap`, `quantity`, `mm_forcefields` and (inside
functions only) `energy`; none of the others touches the deferred modules at import time (`energy`
binds `nn.nequip`/`nn.gnome` to names; it is deferred too, with `nn`, as they pull in flax). A fresh `mlffbench` process (every CLI call, every out-of-process worker) paid the whole
bill; a finite-difference PDOS that takes ~1 s of work took ~10 s more in imports.

`install()` puts a finder at the front of `sys.meta_path` that, for the module names in `DEFERRED`
only, returns the real spec with its loader wrapped in `importlib.util.LazyLoader`: the module
object is created and bound where jax-md's `from ... import` asks for it, but its code runs on the
first attribute access (`jax_md.rigid_body.RigidBody`, `jax_md.nn.nequip.model_from_config`, ...).
So nothing changes for code that does use them; they just load when touched. The finder has to
run before jax-md is first imported (mlffbench/__init__.py calls it first thing); afterwards it
is a no-op. It never imports jax-md itself: specs are built from the files in the package
directory that `importlib.util.find_spec('jax_md')` reports. A name whose file is missing (another
jax-md layout) is left to the ordinary import system. `MLFFBENCH_EAGER_JAX_MD=1` turns it off.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

# module name -> path of its file relative to the jax_md package directory
DEFERRED: dict[str, str] = {
    "jax_md.rigid_body": "rigid_body.py",
    # energy and nn import flax.nnx, ml_collections and jraph (~0.8 s); lj.py calls
    # jax_md.energy inside functions, so they load when an LJ potential is first built
    "jax_md.energy": "energy.py",
    "jax_md.nn": "nn.py",
    "jax_md._nn.nequip": "_nn/nequip.py",
    "jax_md._nn.gnome": "_nn/gnome.py",
    "jax_md._nn.uma": "_nn/uma/__init__.py",
    "jax_md.interpolate": "interpolate.py",  # scipy.interpolate; used only by the EAM loader
}


class _DeferredJaxMdFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder: the specs of `DEFERRED` modules, with a `LazyLoader`; None otherwise."""

    def __init__(self, package_dir: Path):
        self.package_dir = package_dir

    def find_spec(self, fullname, path=None, target=None):
        rel = DEFERRED.get(fullname)
        if rel is None:
            return None
        file = self.package_dir / rel
        if not file.is_file():
            return None
        is_package = file.name == "__init__.py"
        loader = importlib.machinery.SourceFileLoader(fullname, str(file))
        spec = importlib.util.spec_from_file_location(
            fullname, str(file), loader=loader,
            submodule_search_locations=[str(file.parent)] if is_package else None)
        if spec is None:
            return None
        spec.loader = importlib.util.LazyLoader(loader)
        return spec


def install() -> bool:
    """Register the finder (once) if jax-md is installed and not yet imported. Returns whether
    the deferral is active."""
    if os.environ.get("MLFFBENCH_EAGER_JAX_MD", "").strip() not in ("", "0"):
        return False
    if any(isinstance(f, _DeferredJaxMdFinder) for f in sys.meta_path):
        return True
    if "jax_md" in sys.modules:  # too late: its __init__ has already imported everything
        return False
    try:
        spec = importlib.util.find_spec("jax_md")  # finds, does not import (top-level name)
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    package_dir = Path(list(spec.submodule_search_locations)[0])
    sys.meta_path.insert(0, _DeferredJaxMdFinder(package_dir))
    return True
