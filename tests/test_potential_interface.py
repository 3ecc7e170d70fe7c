"""The Potential seam: capabilities, fingerprints as cache keys, one evaluate(), the factory."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlffbench.errors import UserError
from mlffbench.memory import PeakRSS
from mlffbench.potentials import Capabilities, Potential, load_potential
from mlffbench.structures import fcc


def test_fingerprint_is_stable_and_tells_potentials_apart():
    a, b = load_potential("lj"), load_potential("lj/cut/shift")
    assert a.fingerprint == b.fingerprint and a == b and hash(a) == hash(b)
    others = [load_potential("lj", dtype="float32"), load_potential("lj", cutoff=3.0),
              load_potential("lj/cut"), load_potential("lj/smooth"), load_potential("lj/smooth", r_onset=1.5)]
    prints = {p.fingerprint for p in others} | {a.fingerprint}
    assert len(prints) == len(others) + 1
    assert {a: 1}[b] == 1  # usable as a dict key


def test_factory_passes_dtype_and_onset_to_lj():
    p = load_potential("lj/smooth", dtype="float32", r_onset=1.8)
    assert p.is_float32 and p.precision == "float32" and p.params["r_onset"] == 1.8
    with pytest.raises(UserError, match="dtype"):
        load_potential("lj", dtype="float16")
    with pytest.raises(UserError, match="neither an LJ variant"):
        load_potential("no-such-model")


def test_evaluate_returns_what_the_model_has():
    lj = load_potential("lj")
    s = fcc(2, 1.55)
    R, box = jnp.asarray(s.positions), jnp.asarray(s.box)
    nbrs = lj.neighbors(box).allocate(R)
    full = lj.evaluate(R, box, nbrs, stress=True)
    assert full.energy is not None and full.stress.shape == (3, 3) and full.forces.shape == R.shape
    force_only = Potential("force-only", lj.cutoff, direct_force_fn=lambda R, b, n: -jax.grad(lj.energy)(R, b, n),
                           neighbor_format=lj.neighbor_format)
    ev = force_only.evaluate(R, box, nbrs, stress=True)
    assert ev.energy is None and ev.stress is None
    np.testing.assert_allclose(ev.forces, full.forces, atol=1e-12)
    assert not force_only.capabilities.energy and not force_only.capabilities.stress
    with pytest.raises(UserError, match="has no energy.*vacancy formation needs it"):
        force_only.require("energy", "vacancy formation")
    no_hessian = dataclasses.replace(lj, capabilities=Capabilities(autodiff=False))
    assert no_hessian.fingerprint != lj.fingerprint


_PEAK_RSS_PROBE = """
import time
import numpy as np
from mlffbench.memory import PeakRSS
with PeakRSS(interval=0.01) as base:
    pass
with PeakRSS(interval=0.01) as mem:
    x = np.ones(40_000_000)  # 320 MB, touched
    x.sum()
    time.sleep(0.1)
    del x
print(mem.peak_mb - base.peak_mb)
"""


def test_peak_rss_sees_a_temporary_allocation():
    # in a fresh process: a test worker that once held more memory keeps freed pages in its
    # allocator, so a new array can reuse them without raising RSS (seen at 4.5 GB in the suite)
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PEAK_RSS_PROBE], capture_output=True, text=True, check=True)
    assert float(out.stdout.strip()) > 200
    with PeakRSS(interval=0.01) as here:
        pass
    assert here.peak_mb is not None and here.peak_mb > 0


def test_atomic_outdir_removes_partials_of_dead_processes(tmp_path):
    import subprocess
    import sys

    from mlffbench.io import atomic_outdir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".out.partial-{dead}"
    stale.mkdir()
    (stale / "half.json").write_text("{")
    alive = tmp_path / f".out.partial-{os.getppid()}"  # a live process's partial stays
    alive.mkdir()
    with atomic_outdir(tmp_path / "out") as tmp:
        (tmp / "x").write_text("1")
    assert not stale.exists() and alive.exists() and (tmp_path / "out" / "x").read_text() == "1"
