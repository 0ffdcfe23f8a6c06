"""Draw indexer progress with rich: one bar per phase, with a rate and labelled, steady times.

What a user watching ``cidx index`` needs: how far, how fast ("48.2 chunks/s"), how long
so far and how long to go, each labelled. The time left is computed from a smoothed rate
(an exponential moving average over a few seconds), not rich's raw window: embedding
batches arrive in bursts, and the raw estimate swung by minutes. Ctrl-C stops the
display with its line finished, before the CLI says "interrupted".
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
)
from rich.text import Text

from cidx_daemon.progress_lines import phase_unit

#: Seconds over which the rate is averaged (exponential decay constant).
SMOOTHING_S = 5.0
#: A phase finished faster than this shows no rate: its count says enough, and a rate from a
#: few milliseconds' clock reading would be noise.
MIN_RATE_ELAPSED_S = 0.1


class _Rate:
    """An exponential moving average of items per second for one task."""

    __slots__ = ("last", "rate", "seen")

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.seen = 0.0
        self.rate: float | None = None

    def update(self, completed: float) -> float | None:
        now = time.monotonic()
        dt = now - self.last
        if dt < 0.25:
            return self.rate
        instant = (completed - self.seen) / dt
        weight = 1.0 - pow(2.718281828, -dt / SMOOTHING_S)
        self.rate = instant if self.rate is None else self.rate + weight * (instant - self.rate)
        self.last, self.seen = now, completed
        return self.rate


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class _RateColumn(ProgressColumn):
    def __init__(self, rates: dict[int, _Rate], unit: str) -> None:
        super().__init__()
        self.rates, self.unit = rates, unit

    def render(self, task: Task) -> Text:
        if task.finished:
            # The phase's average, fixed: the moving average would keep decaying towards zero
            # while later phases run ("Full-text index 2035/2035 0.4 chunks/s").
            elapsed = task.finished_time or 0.0
            rate = task.completed / elapsed if elapsed >= MIN_RATE_ELAPSED_S else None
        else:
            rate = self.rates.setdefault(task.id, _Rate()).update(task.completed)
        shown = f"{rate:,.1f} {task.fields.get('unit', self.unit)}/s" if rate else ""
        return Text(shown, style="progress.data.speed")


class _TimesColumn(ProgressColumn):
    def __init__(self, rates: dict[int, _Rate]) -> None:
        super().__init__()
        self.rates = rates

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        text = f"elapsed {_clock(elapsed or 0)}"
        rate = self.rates.get(task.id)
        if not task.finished and task.total and rate is not None and rate.rate:
            text += f"  left ~{_clock((task.total - task.completed) / rate.rate)}"
        return Text(text, style="progress.elapsed")


class RichProgress:
    """Implements the indexer's Progress protocol; a context manager around rich.Progress."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        rates: dict[int, _Rate] = {}
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            _RateColumn(rates, "items"), _TimesColumn(rates), console=self.console, transient=False,
        )
        self._task: int | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self._finish()
        self._progress.stop()
        if exc_type is KeyboardInterrupt:
            self.console.file.write("\n")  # leave the interrupted bar's line finished
            self.console.file.flush()

    def _finish(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, total=task.completed)

    def phase(self, name: str, total: int | None) -> None:
        self._finish()
        self._task = self._progress.add_task(name, total=total, unit=phase_unit(name))

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def note(self, message: str) -> None:
        self._progress.console.print(message)
