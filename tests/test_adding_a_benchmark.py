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
from mlffbench.potentials import Potential

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
    # independent expectation: the largest |phi_smooth - phi_shift| on the benchmark's grid, from the
    # LJ pair function and the C1 switch (1 below r_on = 2.0, (rc^2 - r^2)^2 (rc^2 + 2 r^2 - 3 r_on^2)
    # / (rc^2 - r_on^2)^3 up to rc = 2.5) written out in numpy, in meV with epsilon = 10.321 meV
    import numpy as np

    r = np.linspace(0.95, 2.4, 30)
    rc, ron = 2.5, 2.0
    lj = 4.0 * (r ** -12 - r ** -6)
    switch = np.where(r < ron, 1.0, (rc ** 2 - r ** 2) ** 2 * (rc ** 2 + 2 * r ** 2 - 3 * ron ** 2)
                      / (rc ** 2 - ron ** 2) ** 3)
    shifted = lj - 4.0 * (rc ** -12 - rc ** -6)
    expected = float(np.max(np.abs(lj * switch - shifted))) * 10.321
    assert err["value"] == pytest.approx(expected, rel=1e-9) and 0 < err["value"] < 10.3
    assert err["good"] == 0.1 and err["bad"] == 5.0 and err["unit"] == "meV"
    force_only_reason = dimer_benchmark.missing_capability(Potential("f", 2.5, direct_force_fn=lambda R, b, n: R))
    assert "force-only" in force_only_reason
