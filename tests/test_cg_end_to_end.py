"""`mlffbench cg` end to end through the CLI on tiny settings: every state has every model's RDF
distance, pressure and diffusion with units; the mapped reference's g(r) and noise floor equal
ASE's g(r) of the saved mapped frames; the mapped frames equal a numpy centre-of-mass mapping of
the saved all-atom frames; stored metrics equal what their definitions give from stored curves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli

# B differs from A in temperature only: the two states share one box, so each model's CG MD and
# the reference MD compile one program instead of two (103 -> 68 s for this file's fixture,
# 2026-12-07); states in different boxes are covered by tests/test_cg_checks.py.
CONFIG = """
seed: 0
train_state: A
states:
  - {name: A, kT: 1.5, atom_density: 0.75}
  - {name: B, kT: 2.0, atom_density: 0.75}
reference: {n_side: 3, warmup_steps: 100, equil_steps: 0, prod_steps: 500, sample_every: 25}
hipnn: {n_features: 4, n_interactions: 1, n_atom_layers: 1, n_sensitivities: 4, cutoff: 2.3, max_soft: 2.1,
        epochs: 1, batch_size: 8, patience: 1}
baseline: {cutoff: 2.3, n_knots: 10}
cg_md: {equil_steps: 100, prod_steps: 200, sample_every: 20}
analysis: {r_max: 2.3, n_bins: 23}
"""
STATES, MODELS = ("A", "B"), ("hipnn-ts", "pair-spline")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cg")
    (root / "cg.yaml").write_text(CONFIG)
    code, log = run_cli(["cg", "-c", str(root / "cg.yaml"), "-o", str(root / "out"), "-q"])
    assert code == 0, log
    return root / "out"


def _ase_rdf(X, box, r_max, n_bins):
    """Frame-mean g(r) by ASE (ordered pairs / (N rho)) in the unordered-pair N(N-1) convention."""
    from ase import Atoms
    from ase.geometry.rdf import get_rdf

    n = X.shape[1]
    per = [get_rdf(Atoms(f"Ar{n}", positions=x, cell=box, pbc=True), r_max, n_bins, no_dists=True) for x in X]
    return np.array(per) * n / (n - 1)


def test_every_state_and_model_reports_metrics_with_units(run):
    table = json.loads((run / "transferability.json").read_text())["table"]
    assert set(table) == set(STATES) and table["A"]["trained_here"] and not table["B"]["trained_here"]
    for s in STATES:
        doc = json.loads((run / "states" / s / "result.json").read_text())
        assert doc["reference"]["pressure"]["unit"] == "epsilon/sigma^3"
        assert doc["reference"]["diffusion"]["unit"] == "sigma^2/tau"
        assert (run / f"rdf_{s}.png").is_file()
        for m in MODELS:
            e = doc["models"][m]
            assert e["force_rmse"]["unit"] == "epsilon/sigma" and np.isfinite(e["force_rmse"]["value"])
            if e["md_status"] != "ok" and "rdf" not in e:
                assert e["rdf_distance"] is None and e["md_message"]
                continue
            assert e["pressure"]["unit"] == e["pressure_difference"]["unit"] == "epsilon/sigma^3"
            assert e["diffusion"]["unit"] == "sigma^2/tau"
            assert e["pressure_difference"]["value"] == e["pressure"]["value"] - doc["reference"]["pressure"]["value"]
            g_ref, g = np.array(doc["reference"]["rdf"]["g"]), np.array(e["rdf"]["g"])
            assert e["rdf_distance"] == pytest.approx(np.sqrt(np.mean((g - g_ref) ** 2)), rel=1e-12)
            assert e["rdf_distance"] > 0.0  # a short CG MD never reproduces the reference exactly


def test_mapped_reference_rdf_and_noise_floor_equal_ase(run):
    from mlffbench.properties.structure import rdf_distance

    for s in STATES:
        doc = json.loads((run / "states" / s / "result.json").read_text())
        z = np.load(run / "mapped" / f"{s}.npz")
        G = _ase_rdf(z["positions"], z["box"], 2.3, 23)
        g_ref = np.array(doc["reference"]["rdf"]["g"])
        np.testing.assert_allclose(g_ref, G.mean(0), rtol=1e-10, atol=1e-12)
        h = len(G) // 2
        floor = np.sqrt(np.mean((G[:h].mean(0) - G[h:2 * h].mean(0)) ** 2))
        assert doc["reference"]["rdf_noise_floor"] == pytest.approx(floor, rel=1e-9)
        r = np.array(doc["reference"]["rdf"]["r"])
        assert rdf_distance(r, g_ref, g_ref) == 0.0
        shifted = np.roll(g_ref, 1)
        assert rdf_distance(r, g_ref, shifted) == pytest.approx(np.sqrt(np.mean((shifted - g_ref) ** 2)))
        assert rdf_distance(r, g_ref, shifted) > 0.1
        # smallest bead distance: ASE's minimum-image distance matrix
        from ase import Atoms

        n = z["positions"].shape[1]
        dmin = min(np.min(Atoms(f"Ar{n}", positions=x, cell=z["box"], pbc=True).get_all_distances(mic=True)
                          + np.eye(n) * 1e9) for x in z["positions"])
        assert doc["reference"]["min_distance"]["value"] == pytest.approx(dmin, rel=1e-12)


def test_mapped_frames_are_the_com_of_the_saved_all_atom_frames(run):
    for s in STATES:
        a, z = np.load(run / "reference" / f"{s}.npz"), np.load(run / "mapped" / f"{s}.npz")
        R, F, m, mol, L = a["positions"], a["forces"], a["masses"], a["molecule"], np.diag(a["box"])
        first = np.array([np.nonzero(mol == k)[0][0] for k in range(mol.max() + 1)])
        d = R - R[:, first[mol]]
        whole = R[:, first[mol]] + d - L * np.round(d / L)
        M = np.zeros((len(R), mol.max() + 1, 3))
        Fb = np.zeros_like(M)
        for k in range(mol.max() + 1):
            sel = mol == k
            M[:, k] = np.einsum("fnk,n->fk", whole[:, sel], m[sel]) / m[sel].sum()
            Fb[:, k] = F[:, sel].sum(1)
        dX = z["positions"] - M
        np.testing.assert_allclose(dX - L * np.round(dX / L), 0.0, atol=1e-10)
        np.testing.assert_allclose(z["forces"], Fb, atol=1e-10)
        doc = json.loads((run / "states" / s / "result.json").read_text())
        assert doc["reference"]["mapped_force_rms"]["value"] == pytest.approx(np.sqrt(np.mean(Fb ** 2)), rel=1e-12)
