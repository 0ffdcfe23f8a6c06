"""Indexer progress as plain lines, for a log file, a CI job or a coding agent.

Where stderr is not a terminal, rich draws no live bar: a first index of a large
project (Django: 60,000 chunks, about twenty minutes of embedding on two cores) printed
nothing at all until it ended, and an agent running ``cidx index`` could not tell a
working indexer from a hung one. This writes one line when a phase starts, one at most
every ``interval`` seconds while it runs (count, share, rate, time left) and one when it
ends, with the same figures a terminal's bar shows.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

#: Seconds between two lines of one phase: often enough to show life, rare enough for a log.
INTERVAL_S = 10.0


def phase_unit(name: str) -> str:
    """What a phase counts: the indexer's phases name chunks or scan files."""
    return "chunks" if "chunk" in name.lower() or "full-text" in name.lower() else "files"


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class PlainProgress:
    """Implements the indexer's Progress protocol (see ``index.indexer.Progress``)."""

    def __init__(self, stream: TextIO | None = None, interval: float = INTERVAL_S) -> None:
        self._stream = stream or sys.stderr
        self._interval = interval
        self._phase: str | None = None
        self._total: int | None = None
        self._done = 0
        self._started = self._last = 0.0
        self._unit = "items"

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.finish()

    def phase(self, name: str, total: int | None) -> None:
        self.finish()
        self._phase, self._total, self._done = name, total, 0
        self._started = self._last = time.monotonic()
        self._unit = phase_unit(name)
        self._write(f"{name}: {total:,} {self._unit} to do" if total is not None else f"{name}...")

    def advance(self, n: int = 1) -> None:
        self._done += n
        now = time.monotonic()
        if self._phase is not None and now - self._last >= self._interval:
            self._last = now
            self._write(self._running(now))

    def note(self, message: str) -> None:
        self._write(message.rstrip("\n"))

    def finish(self) -> None:
        """End the current phase's report with its count, time and average rate."""
        if self._phase is None:
            return
        elapsed = time.monotonic() - self._started
        rate = f" ({self._done / elapsed:,.1f} {self._unit}/s)" if elapsed >= 0.1 and self._done else ""
        self._write(f"{self._phase}: {self._done:,} {self._unit} done in {_clock(elapsed)}{rate}")
        self._phase = None

    def _running(self, now: float) -> str:
        elapsed = now - self._started
        rate = self._done / elapsed if elapsed > 0 else 0.0
        text = f"{self._phase}: {self._done:,}"
        if self._total:
            text += f"/{self._total:,} ({100 * self._done // self._total}%)"
        text += f", {rate:,.1f} {self._unit}/s, elapsed {_clock(elapsed)}"
        if self._total and rate > 0:
            text += f", left ~{_clock((self._total - self._done) / rate)}"
        return text

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()
