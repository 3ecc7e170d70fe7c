"""Error metrics per split and per temperature bin, in metal units (eV, eV/Å) and reduced units."""

from __future__ import annotations

import numpy as np

from mlffbench.units import UnitSystem


def error_block(E_pred: np.ndarray, E_ref: np.ndarray, F_pred: np.ndarray, F_ref: np.ndarray,
                n_atoms: int, units: UnitSystem) -> dict:
    """MAE/RMSE of energy per atom and force components; energies null when the model has none.

    Inputs in reduced units: E (F,), F (F, N, 3). Output values carry their unit.
    """
    eu, fu = units.scale("energy"), units.scale("force")
    dF = (F_pred - F_ref).ravel()
    f_std = float(np.std(F_ref))
    out = {
        "n_frames": int(len(E_ref)),
        "force_mae": {"value": float(np.mean(np.abs(dF))) * fu, "unit": "eV/Å"},
        "force_rmse": {"value": float(np.sqrt(np.mean(dF ** 2))) * fu, "unit": "eV/Å"},
        "force_std": {"value": f_std * fu, "unit": "eV/Å"},
        "force_rmse_over_std": float(np.sqrt(np.mean(dF ** 2)) / f_std) if f_std > 0 else None,
        "force_rmse_reduced": {"value": float(np.sqrt(np.mean(dF ** 2))), "unit": "epsilon/sigma"},
    }
    if np.all(np.isfinite(E_pred)) and np.all(np.isfinite(E_ref)):
        dE = (E_pred - E_ref) / n_atoms
        out["energy_mae_per_atom"] = {"value": float(np.mean(np.abs(dE))) * eu, "unit": "eV/atom"}
        out["energy_rmse_per_atom"] = {"value": float(np.sqrt(np.mean(dE ** 2))) * eu, "unit": "eV/atom"}
    else:
        out["energy_mae_per_atom"] = {"value": None, "unit": "eV/atom", "note": "model predicts forces only"}
        out["energy_rmse_per_atom"] = {"value": None, "unit": "eV/atom", "note": "model predicts forces only"}
    return out


def split_metrics(E_pred, E_ref, F_pred, F_ref, kT_target, n_atoms: int, units: UnitSystem,
                  bins_K: list[float] | None) -> dict:
    """Overall block plus one block per temperature bin [lo, hi) K of the thermostat target."""
    out = error_block(E_pred, E_ref, F_pred, F_ref, n_atoms, units)
    T = np.asarray(kT_target) * units.temperature_k
    if bins_K is None:
        edges = np.unique(np.round(T, 3))
        groups = [(t, t, np.isclose(np.round(T, 3), t)) for t in edges]
        key = "per_temperature"
    else:
        groups = [(lo, hi, (T >= lo) & (T < hi)) for lo, hi in zip(bins_K[:-1], bins_K[1:])]
        key = "per_temperature_bin"
    out[key] = []
    for lo, hi, sel in groups:
        if not np.any(sel):
            continue
        blk = error_block(E_pred[sel], E_ref[sel], F_pred[sel], F_ref[sel], n_atoms, units)
        out[key].append({"temperature_K": [float(lo), float(hi)] if bins_K else float(lo), **blk})
    return out
