"""Indexer progress as JSON lines on stderr, for a program driving ``cidx-daemon index``.

``cidx mcp`` runs the index command for an agent and relays its progress as MCP
progress notifications; a progress bar is no use to it, and scraping one would be
fragile. One line per report, ``{"progress": {"phase": ..., "done": n, "total": t}}``
(``total`` null when unknown), at each phase start and end and at most every
``interval`` seconds in between: an embedding phase advances thousands of times and
the reader needs a few reports a second at most. Lines that are not progress (notes,
warnings) stay plain text on the same stream.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO


class JsonLinesProgress:
    """Implements the indexer's Progress protocol (see ``index.indexer.Progress``)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.25) -> None:
        self._stream = stream or sys.stderr
        self._interval = interval
        self._phase: str | None = None
        self._total: int | None = None
        self._done = 0
        self._last = 0.0

    def phase(self, name: str, total: int | None) -> None:
        self.finish()
        self._phase, self._total, self._done = name, total, 0
        self._emit()

    def advance(self, n: int = 1) -> None:
        self._done += n
        if time.monotonic() - self._last >= self._interval:
            self._emit()

    def note(self, message: str) -> None:
        self._stream.write(message.rstrip("\n") + "\n")
        self._stream.flush()

    def finish(self) -> None:
        """Report where the current phase ended (its last advances may not be out yet)."""
        if self._phase is not None:
            self._emit()

    def _emit(self) -> None:
        self._last = time.monotonic()
        line = {"progress": {"phase": self._phase, "done": self._done, "total": self._total}}
        self._stream.write(json.dumps(line) + "\n")
        self._stream.flush()
