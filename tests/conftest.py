"""Shared test fixtures. Tests run on CPU in float64 unless they say otherwise."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# Under pytest-xdist (`make test`: two workers on two cores) every worker, and every subprocess a
# test starts, runs XLA on one thread, like a sweep's task processes (`sweep.PINNED_ENV`, checked
# below). Two workers with two intra-op threads each only oversubscribe the cores; and XLA_FLAGS
# are part of the persistent compile cache's key, so only with equal flags do the subprocess
# studies of test_sweep.py and test_study_extra.py load what test_study.py compiled (measured
# 2026-12-07, those three files on -n 2: 190 -> 153 s wall, 288 -> 236 s CPU).
# (Spelled out here: it must be in the environment before JAX starts, i.e. before mlffbench.)
PINNED_THREADS = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
                  "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var, _value in PINNED_THREADS.items():
        os.environ.setdefault(_var, _value)

import mlffbench  # noqa: E402,F401  (enables x64 before anything imports jax_md)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from mlffbench.benchmarks.sweep import PINNED_ENV  # noqa: E402

assert all(PINNED_ENV[k] == v for k, v in PINNED_THREADS.items()), "keep the test workers' pinning a sweep task's"

# 0 K FCC lattice constant of lj/cut/shift at rc = 2.5 sigma, to the digits tests need to build
# near-equilibrium crystals; tests that check it compute it independently (test_foundation_lj).
A0_LJ = 1.5496


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def run_cli(args: list[str]):
    """Run the CLI in-process like a user would; returns (exit_code, combined output)."""
    import contextlib
    import io

    from mlffbench import cli

    out, err = io.StringIO(), io.StringIO()
    code = 0
    old_argv = os.sys.argv
    os.sys.argv = ["mlffbench", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.console.file = err
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.sys.argv = old_argv
        cli.console.file = None
    return code, out.getvalue() + err.getvalue()


def sigkill_when_file_appears(cli_args: list[str], watch, log_path, timeout_s: float = 600.0) -> None:
    """Run `python -m mlffbench *cli_args` in a child process and SIGKILL it (a real kill, not an
    exception) as soon as file `watch` exists; assert the child died of that signal."""
    import signal
    import subprocess
    import sys
    import time

    log = open(log_path, "wb")  # a file, not a pipe: a full pipe would block the child
    proc = subprocess.Popen([sys.executable, "-m", "mlffbench", *cli_args], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + timeout_s
    while not watch.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    log.close()
    assert proc.wait(timeout=60) == -signal.SIGKILL, open(log_path).read()[-2000:]
