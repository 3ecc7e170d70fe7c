"""The one plotting helper: a headless matplotlib with one house style.

Every figure in mlffbench comes from `pyplot()` (Agg backend, so nothing needs a display) and
uses `STYLE` colours: a colour-blind-safe palette (Okabe-Ito) where the model and the LJ
reference always have the same colours.
"""

from __future__ import annotations

import threading
from pathlib import Path

# Okabe & Ito (2008), safe for the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MODEL_COLOR = PALETTE[0]
REFERENCE_COLOR = "#000000"


_STYLE = {"figure.dpi": 100, "savefig.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
          "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False}
_LOCK = threading.RLock()  # the style is set once; rendering (savefig) is serialised
_STYLED = False


class _Figures:
    """The part of `matplotlib.pyplot` mlffbench uses (`subplots`, `close`, `rcParams`), made
    thread-safe: figures are plain `matplotlib.figure.Figure`s with an Agg canvas, never registered
    in pyplot's global figure manager, so two threads (the run's model and reference sides) can
    plot at once and an unclosed figure is garbage collected like any object."""

    @property
    def rcParams(self):
        import matplotlib

        return matplotlib.rcParams

    @staticmethod
    def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, **kwargs):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        FigureCanvasAgg(fig)
        return fig, fig.subplots(nrows, ncols, **kwargs)

    @staticmethod
    def close(fig=None) -> None:
        """Nothing to release (kept so that code written for pyplot reads the same)."""


def pyplot() -> _Figures:
    """Figure factory with the house style applied (Agg, nothing needs a display); see `_Figures`."""
    global _STYLED
    with _LOCK:
        if not _STYLED:
            import matplotlib

            matplotlib.use("Agg")
            matplotlib.rcParams.update({"axes.prop_cycle": matplotlib.cycler(color=PALETTE), **_STYLE})
            _STYLED = True
    return _Figures()


def save(fig, path: str | Path, **kwargs) -> Path:
    """Save `fig` to `path` (tight bounding box unless `kwargs` say otherwise)."""
    with _LOCK:
        fig.savefig(path, **{"bbox_inches": "tight", **kwargs})
    return Path(path)


def axis_label(quantity: str, unit: str | None = None) -> str:
    """'quantity (unit)'; a dimensionless quantity (unit None, '' or '1') gets no unit."""
    return quantity if unit in (None, "", "1") else f"{quantity} ({unit})"


def figure(width: float = 6.0, height: float = 3.6):
    """(fig, ax) of one house-style figure (inches)."""
    return pyplot().subplots(figsize=(width, height))


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (tight bounding box)."""
    import io

    buf = io.BytesIO()
    with _LOCK:
        fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def line_with_band(ax, x, y, lo=None, hi=None, *, color: str, label: str, ls: str = "-",
                   marker: str | None = None, alpha: float = 0.25):
    """A curve y(x) with, where `lo`/`hi` are given (same length), a shaded band between them."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    ax.plot(x, y, ls=ls, marker=marker, ms=4, color=color, label=label)
    if lo is not None and hi is not None:
        ax.fill_between(x, np.asarray(lo, float), np.asarray(hi, float), color=color, alpha=alpha, lw=0)


def points_with_bars(ax, x, y, lo=None, hi=None, *, color: str, label: str, marker: str = "o",
                     ls: str = "none"):
    """Points y(x) with asymmetric error bars from the bounds `lo`/`hi` (absolute values) where given."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    if lo is None or hi is None:
        ax.plot(x, y, marker=marker, ls=ls, color=color, label=label)
        return
    err = np.vstack([y - np.asarray(lo, float), np.asarray(hi, float) - y])
    ax.errorbar(x, y, yerr=np.clip(err, 0, None), fmt=marker, ls=ls, color=color, capsize=3, label=label)


def series_color(k: int) -> str:
    """Colour of the k-th model (0 = MODEL_COLOR), never the reference's black."""
    models = [c for c in PALETTE if c != REFERENCE_COLOR]
    return models[k % len(models)]


def score_color(score: float) -> tuple[str, str]:
    """(background, text) hex colours of a 0-1 score: Okabe-Ito vermillion (0) through yellow to
    blue (1), lightened so that black text reads on every cell (safe for colour-vision deficiencies)."""
    from matplotlib.colors import LinearSegmentedColormap, to_hex

    cmap = LinearSegmentedColormap.from_list("score", [PALETTE[3], PALETTE[6], PALETTE[5]])
    r, g, b, _ = cmap(min(max(float(score), 0.0), 1.0))
    light = [0.35 + 0.65 * c for c in (r, g, b)]
    return to_hex(light), "#000000"
