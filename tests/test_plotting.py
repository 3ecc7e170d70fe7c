"""The plotting helper: figures that two threads (a run's model and reference sides) draw at once."""

from __future__ import annotations

import threading

import numpy as np

from mlffbench.plotting import png_bytes, pyplot, save


def test_figures_from_two_threads_are_whole_and_outside_pyplot(tmp_path):
    errors: list[BaseException] = []

    def draw(tag: str) -> None:
        try:
            for k in range(4):
                fig, ax = pyplot().subplots(1, 2, figsize=(4, 2))
                ax[0].plot(np.arange(50) * (k + 1), label=tag)
                ax[1].hist(np.random.default_rng(k).normal(size=200), bins=20)
                ax[0].legend()
                save(fig, tmp_path / f"{tag}{k}.png")
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=draw, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 8
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000 for p in pngs)
    fig, _ = pyplot().subplots()
    assert png_bytes(fig)[:4] == b"\x89PNG"
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # nothing registered in pyplot's global figure manager
