"""MACE as a real client (slow, not CI): its own venv, trained by MACE's CLI on generate-quick data,
hosted out of process through `kind: ase`, and run through `mlffbench md` (scripts/mace_client.sh).

MLFFBENCH_MACE_DEMO=DIR reuses a finished demo (e.g. build/mace-demo from `make mace-demo`)
instead of building one in a temporary directory (~10 min)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = ROOT / ".venv-mace" / "bin" / "python"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("python3.11") is None and not VENV_PY.exists(),
                                 reason="needs python3.11 (or an existing .venv-mace) for the MACE venv")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    given = os.environ.get("MLFFBENCH_MACE_DEMO")
    if given:
        return Path(given).resolve()
    out = tmp_path_factory.mktemp("mace")
    env = {**os.environ, "OUT": str(out), "MACE_EPOCHS": "2", "MACE_DEMO_SKIP_RUN": "1"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "mace_client.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def test_mace_demo_end_to_end(demo):
    res = json.loads((demo / "md" / "md.json").read_text())
    t = res["temperatures"][0]
    assert len(t["replicas"]) == 1 and t["replicas"][0]["nve_drift_eV_per_atom_per_ps"] is not None
    assert (demo / "ar_tiny.model").is_file()
    assert "mace-reads" in (demo / "times.txt").read_text()  # MACE's loader read dataset.extxyz as written


DIRECT = """
import json, sys
import numpy as np
from ase.io import read
from mace.calculators import MACECalculator
atoms = read(sys.argv[1], 0)
atoms.calc = MACECalculator(model_paths=sys.argv[2], device="cpu", default_dtype="float64")
print(json.dumps({"energy": atoms.get_potential_energy(), "forces": atoms.get_forces().tolist(),
                  "positions": atoms.positions.tolist(), "cell": atoms.cell.array.tolist()}))
"""


def test_mace_through_kind_ase_equals_mace_called_directly(demo):
    """The tiny MACE through `kind: ase` (out of process, reduced units and back) gives the energy
    and forces that MACECalculator gives when ASE calls it directly in MACE's own venv."""
    from mlffbench.potentials import load_potential
    from mlffbench.units import ARGON

    proc = subprocess.run([str(VENV_PY), "-c", DIRECT, str(demo / "test.xyz"), str(demo / "ar_tiny.model")],
                          capture_output=True, text=True, check=True)
    ref = json.loads(proc.stdout.strip().splitlines()[-1])
    pot = load_potential(str(demo / "mace.yaml"))
    assert pot.kind == "ase" and pot.params["host_python"] == str(VENV_PY)
    s, e = ARGON.sigma_angstrom, ARGON.epsilon_ev
    R = np.asarray(ref["positions"]) / s
    box = np.asarray(ref["cell"]).T / s
    energy, forces = pot.energy_and_forces(R, box, None)
    assert float(energy) * e == pytest.approx(ref["energy"], rel=1e-12)
    f_ref = np.asarray(ref["forces"])
    assert np.max(np.abs(np.asarray(forces) * e / s - f_ref)) <= 1e-12 * np.max(np.abs(f_ref))
