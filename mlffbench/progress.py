"""Rich progress bars for long work, shared by every command (a no-op when quiet)."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

console = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Completed units per second since the task started (e.g. MD steps/s)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.0f} {self.unit}/s", style="cyan")


@contextlib.contextmanager
def progress_bar(description: str, total: int, unit: str = "steps",
                 enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield `update(done, total)`; shows description, bar, done/total, rate and ETA."""
    if not enabled:
        yield lambda done, tot: None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               RateColumn(unit), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as prog:
        task = prog.add_task(description, total=total)
        started = time.perf_counter()

        def update(done: int, tot: int) -> None:
            prog.update(task, completed=done, total=tot)

        yield update
        prog.update(task, description=f"{description} ({time.perf_counter() - started:.1f} s)")
