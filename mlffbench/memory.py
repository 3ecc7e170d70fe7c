"""Peak resident memory of a stage of work, for manifests and benchmarks.

`getrusage` only knows the peak of the whole process, so the peak of one stage (a benchmark,
a workflow step) is sampled: a daemon thread reads VmRSS from /proc/self/status every
`interval` seconds while the stage runs. On systems without /proc the process-wide peak
(ru_maxrss) is reported instead, marked as such.
"""

from __future__ import annotations

import resource
import threading
from pathlib import Path

_STATUS = Path("/proc/self/status")


def current_rss_mb() -> float | None:
    """Resident set size now (MiB), or None without /proc."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def process_peak_rss_mb() -> float:
    """Peak RSS of this process since it started (MiB; Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class PeakRSS:
    """Context manager: `with PeakRSS() as m: ...; m.peak_mb` is the stage's sampled peak RSS (MiB)."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_mb: float | None = None
        self.sampled = _STATUS.exists()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = current_rss_mb()
            if rss is not None and (self.peak_mb is None or rss > self.peak_mb):
                self.peak_mb = rss
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        if self.sampled:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            rss = current_rss_mb()
            if rss is not None and (self.peak_mb is None or rss > self.peak_mb):
                self.peak_mb = rss
        else:
            self.peak_mb = process_peak_rss_mb()

    def as_dict(self) -> dict:
        return {"value": None if self.peak_mb is None else round(self.peak_mb, 1), "unit": "MiB",
                "method": "sampled VmRSS" if self.sampled else "process peak (ru_maxrss)"}
