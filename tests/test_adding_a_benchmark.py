"""The README's "Adding a benchmark" example, executed as written, runs through the battery.

The module text is taken from the README (so the documentation cannot rot), registered like a
module of mlffbench/benchmarks/ would be, and run on lj/smooth against lj/cut/shift. The two
LJ variants differ only beyond the switch onset (0.8 rc = 2 sigma), so the dimer error must be
positive and below the LJ well depth, and the scored metric must use the declared thresholds.
"""

import re
from pathlib import Path

import pytest

from mlffbench import benchmarks
from mlffbench.benchmarks.runner import RunConfig, run_battery
from mlffbench.potentials import load_potential

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def dimer_benchmark():
    text = README.read_text()
    section = text[text.index("## Adding a benchmark"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README: dimer benchmark", "exec"), {"__name__": "mlffbench.benchmarks.dimer"})
    yield benchmarks.REGISTRY["dimer"]
    benchmarks.REGISTRY.pop("dimer")


def test_readme_benchmark_runs_and_scores(dimer_benchmark, tmp_path):
    assert "dimer" in benchmarks.battery()
    doc = run_battery(RunConfig(), tmp_path / "run", model_spec="lj/smooth", select=["dimer"], log=lambda m: None)
    b = doc["benchmarks"]["dimer"]
    assert b["state"] == "passed", b["reason"]
    err = b["metrics"]["dimer_max_abs_error"]
    # independent expectation: the largest |phi_smooth - phi_shift| on the grid, from the pair functions
    import numpy as np

    smooth, shift = load_potential("lj/smooth"), load_potential("lj")
    r = np.linspace(0.95, 2.4, 30)
    phi = lambda pot, x: float(pot.energy(  # noqa: E731
        np.array([[0.0, 0, 0], [x, 0, 0]]), np.eye(3) * 20.0,
        pot.neighbors(np.eye(3) * 20.0, n_atoms=2).allocate(np.array([[0.0, 0, 0], [x, 0, 0]]))))
    expected = max(abs(phi(smooth, x) - phi(shift, x)) for x in r) * 0.010321 * 1000.0
    assert err["value"] == pytest.approx(expected, rel=1e-9) and 0 < err["value"] < 10.3
    assert err["good"] == 0.1 and err["bad"] == 5.0 and err["unit"] == "meV"
    force_only_reason = dimer_benchmark.missing_capability(
        load_potential("lj").__class__("f", 2.5, direct_force_fn=lambda R, b, n: R))
    assert "force-only" in force_only_reason
