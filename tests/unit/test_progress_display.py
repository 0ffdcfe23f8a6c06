"""The rich progress display: what a user reads on the finished phases' lines."""

from __future__ import annotations

import io
import time

from rich.console import Console

from cidx_daemon.progress import RichProgress


def _draw(progress: RichProgress) -> str:
    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=False, color_system=None)
    for column_text in ([c.render(task) for c in progress._progress.columns[3:5]]
                        for task in progress._progress.tasks):
        console.print(" ".join(str(t) for t in column_text))
    return out.getvalue()


def test_a_finished_phase_keeps_its_average_rate_while_later_phases_run() -> None:
    progress = RichProgress(Console(file=io.StringIO(), force_terminal=False))
    with progress:
        progress.phase("Full-text index", 400)
        time.sleep(0.3)
        progress.advance(400)
        progress.phase("Embedding chunks", 10)
        first = _draw(progress).splitlines()[0]
        time.sleep(0.6)  # a moving average, updated on every redraw, decays after its phase ends
        for _ in range(3):
            _draw(progress)
            time.sleep(0.3)
        later = _draw(progress).splitlines()[0]
    assert first == later, (first, later)
    rate = float(first.split()[1].replace(",", ""))
    assert 400 / 5.0 < rate < 400 / 0.3 + 1, first  # ~1,300 chunks/s: 400 in a little over 0.3 s


def test_a_phase_done_in_an_instant_shows_its_count_and_no_rate() -> None:
    progress = RichProgress(Console(file=io.StringIO(), force_terminal=False))
    with progress:
        progress.phase("Scanning files", 101)
        progress.advance(101)
        progress.phase("Full-text index", 5)
        line = _draw(progress).splitlines()[0]
    assert line.split() == ["101/101"], line


def test_plain_lines_when_no_terminal_shows_the_bar() -> None:
    """Piped to a log or an agent, progress is lines: a phase's start, its running count with
    share, rate and time left (at most every ``interval``), and its end with the average."""
    from cidx_daemon.progress_lines import PlainProgress

    out = io.StringIO()
    progress = PlainProgress(out, interval=0.05)
    progress.phase("Scanning files", None)
    progress.phase("Embedding chunks", 1000)
    for _ in range(4):
        time.sleep(0.06)
        progress.advance(100)
    progress.advance(600)  # within the interval: no line of its own
    progress.note("a note")
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "Scanning files..." and lines[1].startswith("Scanning files: 0 files done in 0:00:00")
    assert lines[2] == "Embedding chunks: 1,000 chunks to do"
    running = lines[3:-2]
    assert [line.split(", ")[0] for line in running] == [f"Embedding chunks: {n}/1,000 ({n // 10}%)"
                                                         for n in (100, 200, 300, 400)]
    assert all("chunks/s" in line and "elapsed 0:00:00" in line and "left ~0:00:0" in line
               for line in running)
    assert lines[-2] == "a note"
    last = lines[-1]
    assert last.startswith("Embedding chunks: 1,000 chunks done in 0:00:00 (") and "chunks/s)" in last
