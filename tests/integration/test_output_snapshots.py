"""Snapshots of what a user sees: the human output of every mode, on a terminal and piped.

The renderer is shared by the daemon and standalone modes (one result document, one
renderer), so a layout change shows here as a diff of the files under ``snapshots/``.
Run with ``CIDX_UPDATE_SNAPSHOTS=1`` to rewrite them after an intended change, then read
the diff. Only what varies from run to run is masked: the time in the header and, for the
modes that involve the model, the scores (their last digit may differ between CPUs).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from client_helpers import cidx, run_on_a_terminal

SNAPSHOTS = Path(__file__).parent / "snapshots"
MODES = {
    "fts": ["retry backoff", "--fts"],
    "semantic": ["open a url with a timeout", "--semantic"],
    "hybrid": ["open a url with a timeout"],  # the default: the same output as --fts --semantic
    "regex": [r"def \w+_sort", "--regex"],
}


def _normalise(text: str, mode: str) -> str:
    text = re.sub(r"Query completed in [^\n]*", "Query completed in <time>", text)
    if mode in ("semantic", "hybrid"):
        text = re.sub(r"score \d\.\d+", "score <score>", text)
    return text


@pytest.mark.parametrize("where", ["terminal", "pipe"])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_human_output_matches_its_snapshot(project: Path, mode: str, where: str) -> None:
    args = ["query", *MODES[mode], "--limit", "3"]
    if where == "terminal":
        out = run_on_a_terminal([sys.executable, "-m", "cidx", *args], project)
    else:
        proc = cidx(*args, cwd=project)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        out = proc.stdout
    assert ("\x1b[" in out) == (where == "terminal")  # colour on a terminal only
    got = _normalise(out, mode)
    path = SNAPSHOTS / f"query-{mode}-{where}.txt"
    if os.environ.get("CIDX_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(got, encoding="utf-8")
        assert os.environ.get("CIDX_UPDATE_SNAPSHOTS") == "1", f"{path.name} was missing: written, commit it"
    assert got == path.read_text(encoding="utf-8"), f"output differs from {path.name}"
