"""``cidx-daemon index --progress-json``: the lines a driving program (cidx mcp) reads."""

from __future__ import annotations

import io
import json

from cidx_daemon.progress_json import JsonLinesProgress


def _lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_phase_starts_and_ends_are_reported_and_advances_throttled() -> None:
    out = io.StringIO()
    progress = JsonLinesProgress(out, interval=3600.0)  # no report between a phase's ends
    progress.phase("Scanning files", None)
    progress.advance(3)
    progress.phase("Embedding chunks", 10)
    for _ in range(10):
        progress.advance()
    progress.finish()
    assert [line["progress"] for line in _lines(out)] == [
        {"phase": "Scanning files", "done": 0, "total": None},
        {"phase": "Scanning files", "done": 3, "total": None},
        {"phase": "Embedding chunks", "done": 0, "total": 10},
        {"phase": "Embedding chunks", "done": 10, "total": 10},
    ]


def test_every_advance_is_reported_without_a_throttle_and_notes_stay_text() -> None:
    out = io.StringIO()
    progress = JsonLinesProgress(out, interval=0.0)
    progress.phase("Full-text index", 2)
    progress.advance()
    progress.note("Ray: connected")
    progress.advance()
    text = out.getvalue().splitlines()
    assert text[2] == "Ray: connected"
    assert [json.loads(t)["progress"]["done"] for t in text if t.startswith("{")] == [0, 1, 2]
