"""MACE as a real client (slow, not CI): its own venv, trained by MACE's CLI on generate-quick data,
hosted out of process through `kind: ase`, and run through `mlffbench md` (scripts/mace_client.sh)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("python3.11") is None and not (ROOT / ".venv-mace").exists(),
                    reason="needs python3.11 (or an existing .venv-mace) for the MACE venv")
def test_mace_demo_end_to_end(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "mace"), "MACE_EPOCHS": "2", "MACE_DEMO_SKIP_RUN": "1"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "mace_client.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads((tmp_path / "mace" / "md" / "md.json").read_text())
    t = res["temperatures"][0]
    assert len(t["replicas"]) == 1 and t["replicas"][0]["nve_drift_eV_per_atom_per_ps"] is not None
    assert (tmp_path / "mace" / "ar_tiny.model").is_file()
