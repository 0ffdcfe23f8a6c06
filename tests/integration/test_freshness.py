"""The index stays fresh under a running daemon: edits, deletions and renames are found
by full text at once and by semantic search once embedded (real daemon, real watcher).

Waits poll with a generous deadline; the time each change took is printed, never asserted
(the benchmark measures it: bench/freshness_bench.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from client_helpers import cidx, client_env, daemon_pids, status


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


def _many_functions(root: Path, files: int = 30, per_file: int = 20) -> None:
    """Enough distinct chunks that embedding them takes seconds on these cores."""
    words = ("parse", "render", "fetch", "store", "merge", "split", "encode", "decode", "rotate", "flush")
    for f in range(files):
        body = []
        for n in range(per_file):
            verb, noun = words[(f + n) % len(words)], words[(f * 3 + n * 7) % len(words)]
            body.append(
                f"def {verb}_{noun}_{f}_{n}(items, limit={n}):\n"
                f"    \"\"\"{verb.title()} the {noun} records of batch {f}, at most {n} of them.\"\"\"\n"
                + "".join(f"    step_{k} = [x for x in items if x % {k + 2} == {n % (k + 2)}]\n"
                          for k in range(8))
                + "    return (step_0 + step_7)[:limit]\n\n")
        (root / f"mod_{f:02d}.py").write_text("".join(body))


def test_saves_stay_searchable_while_cidx_index_embeds(tmp_path: Path) -> None:
    """A foreground ``cidx index`` embeds for minutes on a big project. It holds the indexer lock
    only while it publishes, so the daemon's watcher keeps publishing saves meanwhile; the
    daemon's background embedder yields to it (one embedder at a time on these cores) and
    embeds what it left pending, the save included, once it ends."""
    from cidx_daemon.index import generation as gens

    root = tmp_path / "big"
    root.mkdir()
    _many_functions(root)
    cdir = root / ".code-indexer"
    assert cidx("init", cwd=root).returncode == 0
    assert cidx("index", "--no-embed", "--quiet", cwd=root).returncode == 0
    try:
        assert cidx("daemon", "start", cwd=root).returncode == 0
        _until("the daemon embeds in the background",
               lambda: status(root)["daemon"]["refresher"]["embedded"] > 0
               or gens.open_live(cdir / "index", with_fts=False)[0].n_embedded > 0)
        fg = subprocess.Popen([sys.executable, "-m", "cidx", "index", "--quiet"], cwd=root, env=client_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _until("cidx index holds the embedding lease", lambda: gens.embedding_elsewhere(cdir) is not None)
            _until("the daemon's embedder yields to it",
                   lambda: status(root)["daemon"]["refresher"]["embedding_elsewhere"] is not None)
            (root / "saved.py").write_text("def ocelot_saved_while_embedding():\n    return 'fresh'\n")
            _until("a save is found by full text while cidx index embeds",
                   lambda: _paths(_query(root, "ocelot_saved_while_embedding", "--fts")) == ["saved.py"])
            # the run was still embedding: otherwise the lock was free anyway and this proves nothing
            assert fg.poll() is None and gens.embedding_elsewhere(cdir) is not None, \
                "cidx index ended too early: give the test more chunks"
            _out, err = fg.communicate(timeout=600)
            assert fg.returncode == 0, err
        finally:
            if fg.poll() is None:
                fg.kill()
        # its vectors were applied onto the live generation: the save is still there
        assert _paths(_query(root, "ocelot_saved_while_embedding", "--fts")) == ["saved.py"]
        _until("the daemon embeds what was left (the save)",
               lambda: "pending" not in _query(root, "ocelot", "--fts"))
        live = gens.open_live(cdir / "index", with_fts=False)[0]
        assert live is not None and live.n_embedded == len(live)
        assert "saved.py" in _paths(_query(root, "a function saved while embedding returns fresh"))[:5]
        assert status(root)["daemon"]["refresher"]["embedding_elsewhere"] is None
        assert status(root)["daemon"]["refresher"]["last_error"] is None
    finally:
        cidx("daemon", "stop", cwd=root)
        for pid in daemon_pids(root):
            os.kill(pid, signal.SIGKILL)


def test_chunks_published_without_vectors_are_embedded_by_the_daemon(project: Path) -> None:
    """``cidx index --clear --no-embed`` rebuilds the index with no vector and changes no file,
    so no watched change asks the daemon to embed: the first answer that reports chunks
    pending does, and semantic search comes back whole without another ``cidx index``."""
    assert cidx("daemon", "start", cwd=project).returncode == 0
    _until("the daemon watches", lambda: (status(project)["daemon"]["refresher"] or {}).get("watching"))
    _until("the start-up rescan is done",
           lambda: not status(project)["daemon"]["refresher"]["full_rescan_queued"])
    proc = cidx("index", "--clear", "--no-embed", "--quiet", cwd=project)
    assert proc.returncode == 0, proc.stderr
    doc = _query(project, "retry with backoff")
    assert doc["pending"]["embed"] > 0, doc.get("pending")
    _until("the daemon embeds them", lambda: "pending" not in _query(project, "retry", "--fts"))
    assert "net/fetch.py" in _paths(_query(project, "retry a call with growing delays", "--semantic"))[:3]
    assert status(project)["daemon"]["refresher"]["last_error"] is None
