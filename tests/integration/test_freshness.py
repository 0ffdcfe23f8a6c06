"""The index stays fresh under a running daemon: edits, deletions and renames are found
by full text at once and by semantic search once embedded (real daemon, real watcher).

Waits poll with a generous deadline; the time each change took is printed, never asserted
(the benchmark measures it: bench/freshness_bench.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from client_helpers import cidx, status


def _query(project: Path, text: str, *flags: str) -> dict:
    proc = cidx("query", text, *flags, "--json", "--limit", "20", cwd=project)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _paths(doc: dict) -> list[str]:
    return [r["path"] for r in doc["results"]]


def _until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> float:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)
    took = time.monotonic() - t0
    print(f"{what}: {took:.2f}s")
    return took


def test_edits_deletions_and_renames_are_searchable_while_the_daemon_runs(project: Path) -> None:
    assert cidx("daemon", "start", cwd=project).returncode == 0
    _until("the daemon watches", lambda: (status(project)["daemon"]["refresher"] or {}).get("watching"))
    _until("the start-up rescan is done",
           lambda: not status(project)["daemon"]["refresher"]["full_rescan_queued"])

    # a new file
    (project / "net" / "quota.py").write_text(
        "def enforce_rate_quota_zebra(requests, limit):\n    \"\"\"Refuse requests over the quota.\"\"\"\n"
        "    return [r for r in requests[:limit]]\n")
    _until("a new file is found by full text",
           lambda: _paths(_query(project, "enforce_rate_quota_zebra", "--fts")) == ["net/quota.py"])
    _until("a new file is found by meaning",
           lambda: "net/quota.py" in _paths(_query(project, "refuse requests over the quota"))[:3])

    # an edit: the old text goes, the new text comes
    fetch = project / "net" / "fetch.py"
    fetch.write_text(fetch.read_text().replace("retry_with_backoff", "retry_with_jitter_giraffe"))
    _until("an edit is found", lambda: "net/fetch.py" in _paths(_query(project, "retry_with_jitter_giraffe",
                                                                        "--fts")))
    assert "net/fetch.py" not in _paths(_query(project, "retry_with_backoff", "--fts"))

    # a rename
    (project / "net" / "quota.py").rename(project / "net" / "limits.py")
    _until("a rename is found under its new name",
           lambda: _paths(_query(project, "enforce_rate_quota_zebra", "--fts")) == ["net/limits.py"])

    # a deletion
    (project / "net" / "limits.py").unlink()
    _until("a deletion is gone", lambda: _paths(_query(project, "enforce_rate_quota_zebra", "--fts")) == [])

    # nothing pending once it has settled, and the daemon never restarted
    _until("nothing is pending", lambda: "pending" not in _query(project, "retry", "--fts"))
    assert status(project)["daemon"]["refresher"]["last_error"] is None


def test_ignored_and_secret_files_stay_out_when_they_change(project: Path) -> None:
    (project / ".gitignore").write_text("build/\n")
    assert cidx("daemon", "start", cwd=project).returncode == 0
    _until("the daemon watches", lambda: (status(project)["daemon"]["refresher"] or {}).get("watching"))
    (project / "build").mkdir()
    (project / "build" / "gen.py").write_text("def generated_walrus(): pass\n")
    (project / ".env").write_text("WALRUS_TOKEN=secret\n")
    (project / "kept.py").write_text("def kept_walrus(): pass\n")
    _until("the kept file is found", lambda: _paths(_query(project, "kept_walrus", "--fts")) == ["kept.py"])
    assert _paths(_query(project, "generated_walrus", "--fts")) == []
    assert _paths(_query(project, "WALRUS_TOKEN", "--fts")) == []
