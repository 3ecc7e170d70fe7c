"""The one plotting helper: a headless matplotlib with one house style.

Every figure in mlffbench comes from `pyplot()` (Agg backend, so nothing needs a display) and
uses `STYLE` colours: a colour-blind-safe palette (Okabe-Ito) where the model and the LJ
reference always have the same colours.
"""

from __future__ import annotations

from pathlib import Path

# Okabe & Ito (2008), safe for the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MODEL_COLOR = PALETTE[0]
REFERENCE_COLOR = "#000000"


def pyplot():
    """matplotlib.pyplot on the Agg backend with the house style applied."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"axes.prop_cycle": matplotlib.cycler(color=PALETTE), "figure.dpi": 100,
                         "savefig.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
                         "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False})
    return plt


def save(fig, path: str | Path) -> Path:
    """Save `fig` to `path` (tight bounding box) and close it."""
    plt = pyplot()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
