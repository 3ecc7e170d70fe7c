"""The report's figures, drawn from the raw numbers in results.json: one per benchmark, every
model over LJ, with error bands where the data has a spread.

Spread comes from committee members (`raw["members"]`: mean ± std over members), MD replicas
(`g_replicas` of the RDF: ± std over replicas) or Poisson intervals (`ci95` of hop rates). Each
drawer takes the benchmark's `Series` (LJ first) and returns (figure PNG, what it shows) or None
when the raw numbers hold no arrays; the report then embeds the run's own PNGs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlffbench.plotting import (
    axis_label,
    figure,
    line_with_band,
    png_bytes,
    points_with_bars,
    pyplot,
)
from mlffbench.report.runs import Series

MEV = 1000.0


def _get(raw: dict, get: Callable[[dict], object]):
    try:
        return get(raw)
    except (KeyError, TypeError, IndexError, ValueError, ZeroDivisionError):
        return None


def with_spread(s: Series, get: Callable[[dict], object]):
    """(y, lo, hi) of an array (or number) `get(raw)`: the committee mean ± std over members
    where the model is a committee, else (y, None, None); None when the raw numbers lack it."""
    members = [m for m in (s.raw.get("members") or []) if isinstance(m, dict)]
    ys = [np.asarray(v, float) for v in (_get(m, get) for m in members) if v is not None]
    if len(ys) >= 2 and all(y.shape == ys[0].shape for y in ys):
        stack = np.stack(ys)
        mean, std = stack.mean(axis=0), stack.std(axis=0, ddof=1)
        return mean, mean - std, mean + std
    y = _get(s.raw, get)
    return None if y is None else (np.asarray(y, float), None, None)


def _done(fig, ax, n: int, xlabel: str, ylabel: str, what: str, logy: bool = False, x_from_zero: bool = False):
    """Label, legend and encode a figure with `n` curves; None (figure closed) when nothing was drawn."""
    if not n:
        pyplot().close(fig)
        return None
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if x_from_zero:
        ax.set_xlim(left=0)
    ax.legend(fontsize=8)
    return png_bytes(fig), what


def _temperature_styles(temps: list[float]) -> dict[float, float]:
    """Line width per temperature (several temperatures in one panel)."""
    return {t: 1.2 + 0.6 * k for k, t in enumerate(sorted(set(temps)))}


# ----------------------------------------------------------------------------------------------
# one drawer per benchmark
# ----------------------------------------------------------------------------------------------
def fig_energy_curve(series: list[Series]):
    """E/N(a) of the perfect crystal, each potential's a0 marked."""
    fig, ax = figure()
    n = 0
    for s in series:
        got = with_spread(s, lambda r: np.asarray(r["energy_curve"]["energy_per_atom"]) * MEV)
        a = _get(s.raw, lambda r: r["energy_curve"]["a"])
        if got is None or a is None:
            continue
        line_with_band(ax, a, *got, color=s.color, label=s.label, ls=s.ls)
        a0 = _get(s.raw, lambda r: r["lattice_constant"]["value"])
        if a0 is not None:
            ax.axvline(a0, color=s.color, ls=s.ls, lw=0.8)
        n += 1
    return _done(fig, ax, n, axis_label("lattice constant a", "Å"), axis_label("E/N", "meV/atom"),
                 "Energy per atom of the perfect FCC crystal against the lattice constant; "
                 "vertical lines: each potential's 0 K a0")


def fig_scalar(key: str, quantity: str, unit_scale: float = 1.0, unit: str | None = None):
    """A dot chart of one number per potential (± committee std), for benchmarks with no curve."""
    def draw(series: list[Series]):
        rows = []
        for s in series:
            got = with_spread(s, lambda r: r[key]["value"] * unit_scale)
            if got is not None and np.isfinite(got[0]).all():
                rows.append((s, got))
        if not rows:
            return None
        fig, ax = figure(6.0, 0.5 + 0.45 * len(rows))
        for k, (s, (y, lo, hi)) in enumerate(rows):
            xerr = None if lo is None else [[float(y - lo)], [float(hi - y)]]
            ax.errorbar([float(y)], [k], xerr=xerr, fmt=s.marker, color=s.color, capsize=3)
        ax.set_yticks(range(len(rows)), [s.label for s, _ in rows])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        u = unit or rows[0][0].raw[key].get("unit")
        ax.set_xlabel(axis_label(quantity, u))
        return png_bytes(fig), f"{quantity[0].upper()}{quantity[1:]} of each potential"
    return draw


def fig_vacancy(series: list[Series]):
    """E_f per supercell size (filled, own a0) and at LJ's a0 (open)."""
    fig, ax = figure()
    n = 0
    for s in series:
        cells = sorted((s.raw.get("cells") or {}).values(), key=lambda c: c.get("n_atoms", 0))
        if not cells:
            continue
        x = [c["n_atoms"] + 1 for c in cells]
        got = with_spread(s, lambda r: [c["formation_energy"]["value"] * MEV for c in
                                        sorted(r["cells"].values(), key=lambda c: c.get("n_atoms", 0))])
        if got is None:
            continue
        points_with_bars(ax, x, *got, color=s.color, label=s.label, marker=s.marker, ls=s.ls)
        at = s.raw.get("at_reference_a0")
        if at and at.get("formation_energy", {}).get("value") is not None:
            ax.plot([4 * at["n_cells"] ** 3], [at["formation_energy"]["value"] * MEV], s.marker, mfc="none",
                    color=s.color, ms=8, label=f"{s.label} at LJ's a0")
        n += 1
    return _done(fig, ax, n, axis_label("atoms in the perfect supercell"), axis_label("vacancy formation energy", "meV"),
                 "Relaxed vacancy formation energy per supercell size (constant volume)")


def fig_rdf(series: list[Series]):
    """g(r) per temperature; band: ± std over MD replicas (or committee members)."""
    fig, ax = figure()
    temps = [t.get("temperature_K") for s in series for t in (s.raw.get("temperatures") or {}).values()]
    lw = _temperature_styles([t for t in temps if t is not None])
    n = 0
    for s in series:
        for tag, t in (s.raw.get("temperatures") or {}).items():
            rdf = t.get("rdf")
            if not rdf:
                continue
            reps = np.asarray(rdf.get("g_replicas") or [], float)
            if reps.ndim == 2 and len(reps) >= 2:
                y, sd = np.asarray(rdf["g"], float), reps.std(axis=0, ddof=1)
                lo, hi = y - sd, y + sd
            else:
                y, lo, hi = with_spread(s, lambda r, tag=tag: r["temperatures"][tag]["rdf"]["g"])
            line_with_band(ax, rdf["r_A"], y, lo, hi, color=s.color, ls=s.ls, label=f"{s.label}, {tag}")
            ax.lines[-1].set_linewidth(lw.get(t.get("temperature_K"), 1.2))
            n += 1
    return _done(fig, ax, n, axis_label("r", "Å"), axis_label("g(r)"),
                 ("Radial distribution function from the NVE segment; bands: ± 1 std over MD "
                            "replicas (or committee members)"))


def _thz_per_reduced(s: Series) -> float | None:
    if s.run.tau_ps:
        return 1.0 / s.run.tau_ps
    nu = s.raw.get("nu_max") or {}
    return nu["value"] / nu["reduced"] if nu.get("reduced") else None


def fig_pdos_0k(series: list[Series]):
    """Harmonic phonon DOS from the exact Hessian, in THz."""
    fig, ax = figure()
    n = 0
    for s in series:
        f = _thz_per_reduced(s)
        got = with_spread(s, lambda r, f=f: np.asarray(r["dos"]) / f) if f else None
        grid = _get(s.raw, lambda r, f=f: np.asarray(r["grid"], float) * f) if f else None
        if got is None or grid is None:
            continue
        line_with_band(ax, grid, *got, color=s.color, ls=s.ls, label=s.label)
        n += 1
    return _done(fig, ax, n, axis_label("frequency", "THz"), axis_label("DOS", "states/THz"),
                 "Phonon density of states at 0 K (exact-Hessian force constants, q-mesh)", x_from_zero=True)


def fig_pdos_finite_t(series: list[Series]):
    """Vibrational DOS from the VACF per temperature, in THz."""
    fig, ax = figure()
    temps = [r.get("temperature", {}).get("value") for s in series for r in s.raw.get("runs") or []]
    lw = _temperature_styles([t for t in temps if t is not None])
    n = 0
    for s in series:
        f = _thz_per_reduced(s)
        for k, run in enumerate(s.raw.get("runs") or []):
            arr = run.get("_arrays") or {}
            if not f or "nu" not in arr:
                continue
            T = run.get("temperature", {}).get("value")
            y, lo, hi = with_spread(s, lambda r, k=k, f=f: np.asarray(r["runs"][k]["_arrays"]["vdos"]) / f)
            line_with_band(ax, np.asarray(arr["nu"], float) * f, y, lo, hi, color=s.color, ls=s.ls,
                           label=f"{s.label}, {T:g} K" if T is not None else s.label)
            ax.lines[-1].set_linewidth(lw.get(T, 1.2))
            n += 1
    return _done(fig, ax, n, axis_label("frequency", "THz"), axis_label("VDOS of the cell (3N modes)", "modes/THz"),
                 "Vibrational DOS from the velocity autocorrelation of NVE MD at each temperature", x_from_zero=True)


def fig_mep(series: list[Series]):
    """Energy along the converged string (meV) against the normalised arc length."""
    fig, ax = figure()
    n = 0
    for s in series:
        x = _get(s.raw, lambda r: r["path"]["arc_length"])
        got = with_spread(s, lambda r: np.asarray(r["path"]["energy"]["value"], float) * MEV)
        if x is None or got is None or not np.isfinite(got[0]).any():
            continue
        line_with_band(ax, x, *got, color=s.color, ls=s.ls, marker=s.marker, label=s.label)
        n += 1
    return _done(fig, ax, n, axis_label("normalised arc length"), axis_label("E - E(initial)", "meV"),
                 "Vacancy migration path: energy along the string (climbing image at the saddle)")


def _htst_line(raw: dict):
    """(1000/T, k) of the harmonic-TST total hop rate, or None."""
    T = _get(raw, lambda r: np.asarray(r["temperatures"]["value"], float))
    k = _get(raw, lambda r: np.asarray(r["total_vacancy_hop_rate"]["value"], float))
    if T is None or k is None or len(T) != len(k) or not np.all(k > 0):
        return None
    return 1000.0 / T, k


def _arrhenius_extended(x, k, x_range):
    """The Arrhenius line through (x = 1000/T, k) (exact for HTST: ln k linear in 1/T) over x_range."""
    if len(x) < 2:
        return x, k
    slope, icpt = np.polyfit(x, np.log(k), 1)
    xs = np.linspace(min(x_range[0], x.min()), max(x_range[1], x.max()), 50)
    return xs, np.exp(icpt + slope * xs)


def fig_htst(series: list[Series]):
    """Harmonic-TST total vacancy hop rate 12 k(T), Arrhenius axes."""
    fig, ax = figure()
    n = 0
    for s in series:
        line = _htst_line(s.raw)
        if line is None:
            continue
        got = with_spread(s, lambda r: r["total_vacancy_hop_rate"]["value"])
        line_with_band(ax, line[0], *got, color=s.color, ls=s.ls, marker=s.marker, label=s.label)
        n += 1
    return _done(fig, ax, n, axis_label("1000/T", "1/K"), axis_label("vacancy hop rate 12 k(T)", "1/ps"),
                 "Harmonic-TST (Vineyard) total vacancy hop rate", logy=True)


def fig_hop_rates(series: list[Series]):
    """MD hop rates with 95 % Poisson bars; the same potential's harmonic-TST line where computed."""
    fig, ax = figure()
    n, xs_all = 0, []
    for s in series:
        pts = [(1000.0 / r["temperature"]["value"], r["total_hop_rate"]) for r in (s.raw.get("rates") or {}).values()
               if r.get("hops", 0) > 0 and r["total_hop_rate"].get("value")]
        if not pts:
            continue
        x = [p[0] for p in pts]
        y = [p[1]["value"] for p in pts]
        ci = [p[1].get("ci95") for p in pts]
        lo = [c[0] for c in ci] if all(ci) else None
        hi = [c[1] for c in ci] if all(ci) else None
        points_with_bars(ax, x, y, lo, hi, color=s.color, label=f"{s.label}, MD", marker=s.marker)
        xs_all += x
        n += 1
    for s in series if n else []:
        line = _htst_line(s.other("htst_rate"))
        if line is not None:
            ax.plot(*_arrhenius_extended(*line, (min(xs_all), max(xs_all))), ls="-." if s.reference else ":",
                    color=s.color, lw=1.2, label=f"{s.label}, harmonic TST")
    return _done(fig, ax, n, axis_label("1000/T", "1/K"), axis_label("total vacancy hop rate", "1/ps"),
                 "Vacancy hop rates counted in MD (bars: 95 % Poisson intervals of the hop counts) and the "
                 "harmonic-TST line of the same potential", logy=True)


def fig_test_errors(series: list[Series]):
    """Force RMSE per temperature bin, against the force spread of the LJ data."""
    fig, ax = figure()
    n, labels = 0, None
    for s in series:
        bins = s.raw.get("bins") or []
        if not bins:
            continue
        x = np.arange(len(bins))
        if labels is None:  # the bins and the data's force spread, once
            labels = [f"{b['T_low_K']:g}-{b['T_high_K']:g}" for b in bins]
            ax.plot(x, [b["force_std"]["value"] for b in bins], color="#777777", ls=":", marker="_", ms=14,
                    label="force spread of the data (std)")
        got = with_spread(s, lambda r: [b["force_rmse"]["value"] for b in r["bins"]])
        points_with_bars(ax, x, *got, color=s.color, label=f"{s.label} force RMSE", marker=s.marker, ls=s.ls)
        n += 1
    if labels:
        ax.set_xticks(range(len(labels)), labels)
    return _done(fig, ax, n, axis_label("temperature bin", "K"), axis_label("force RMSE vs LJ labels", "eV/Å"),
                 "Force errors on LJ dataset frames per temperature bin (LJ's own: label round-off)", logy=True)


DRAWERS: dict[str, Callable] = {
    "lattice_constant": fig_energy_curve,
    "cohesive_energy": fig_scalar("cohesive_energy", "cohesive energy", MEV, "meV/atom"),
    "vacancy_formation": fig_vacancy,
    "md_stability": fig_rdf,
    "pdos_0k": fig_pdos_0k,
    "pdos_finite_t": fig_pdos_finite_t,
    "migration_barrier": fig_mep,
    "htst_rate": fig_htst,
    "hop_rates": fig_hop_rates,
    "test_errors": fig_test_errors,
}


def draw(name: str, series: list[Series]) -> tuple[bytes, str] | None:
    """(PNG, what it shows) of benchmark `name`, or None without a drawer or without arrays."""
    fn = DRAWERS.get(name)
    if fn is None or not series:
        return None
    try:
        return fn(series)
    except (KeyError, TypeError, ValueError, IndexError):  # raw numbers of another layout: use the run's PNGs
        pyplot().close("all")
        return None
