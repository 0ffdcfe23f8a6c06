"""The engine on a real index: modes, filters inside the search, incremental
re-index, atomic generations under kill -9, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cidx_daemon.index.generation import IndexLockedError, current_name, index_lock
from cidx_daemon.index.indexer import index_project
from cidx_daemon.search.engine import Engine
from cidx_shared import config as cfgmod
from helpers import PYTHON, daemon_cli, env, write_project


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = write_project(tmp_path_factory.mktemp("proj"))
    config = cfgmod.init_project(root)
    index_project(config)
    return config


def q(engine: Engine, query: str, **kw) -> dict:
    doc = engine.query({"query": query, **kw})
    assert doc["error"] is None, doc
    return doc


def paths(doc: dict) -> list[str]:
    return [r["path"] for r in doc["results"]]


def test_semantic_finds_the_right_function(project: Path) -> None:
    doc = q(Engine(project), "open a url and give up after a timeout", semantic=True, limit=3)
    assert doc["mode"] == "semantic"
    top = doc["results"][0]
    assert top["path"] == "net/fetch.py"
    assert top["start_line"] >= 1 and top["end_line"] >= top["start_line"]
    assert "urlopen" in top["content"]
    assert top["ranks"] == {"semantic": 1}


def test_fts_lines_are_file_absolute(project: Path) -> None:
    doc = q(Engine(project), "urlopen", fts=True)
    r = doc["results"][0]
    source = (project.parent.parent / r["path"]).read_text().splitlines()
    for m in r["matches"]:
        assert "urlopen" in source[m["line"] - 1]
    assert r["matches"], r


def test_fts_subwords_and_case(project: Path) -> None:
    eng = Engine(project)
    assert "util/sorting.py" in paths(q(eng, "response", fts=True))
    assert "util/sorting.py" in paths(q(eng, "HTTPResponseParser", fts=True, case_sensitive=True))
    assert paths(q(eng, "httpresponseparser", fts=True, case_sensitive=True)) == []


def test_hybrid_is_one_fused_list_with_per_leg_ranks(project: Path) -> None:
    doc = q(Engine(project), "retry with backoff", fts=True, semantic=True, limit=5)
    assert doc["mode"] == "hybrid"
    rows = [(r["path"], r["start_line"]) for r in doc["results"]]
    assert len(rows) == len(set(rows))
    assert any(set(r["ranks"]) == {"semantic", "fts"} for r in doc["results"])
    scores = [r["score"] for r in doc["results"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("mode", [{"fts": True}, {}, {"fts": True, "semantic": True}])
def test_filters_apply_inside_the_search(project: Path, mode: dict) -> None:
    eng = Engine(project)
    query = "timeout" if mode.get("fts") else "fetch with a timeout"
    only_js = q(eng, query, language=["js"], limit=1, **mode)
    assert paths(only_js) == ["web/app.js"]
    no_py = q(eng, query, exclude_language=["python"], limit=10, **mode)
    assert "net/fetch.py" not in paths(no_py) and paths(no_py)
    in_dir = q(eng, query, path_filter=["web/"], limit=10, **mode)
    assert set(paths(in_dir)) == {"web/app.js"}
    skipped = q(eng, query, exclude_path=["net/*"], limit=10, **mode)
    assert "net/fetch.py" not in paths(skipped)


def test_limit_with_filter_still_fills_the_page(tmp_path: Path) -> None:
    # 30 python files mention "widget" more often than the one markdown file that
    # passes the filter; a post-filter would return nothing.
    files = {f"m{i:02d}.py": "widget = 1\n" * 5 + f"x{i} = widget\n" for i in range(30)}
    files.update({f"doc{i}.md": f"a widget note {i}\n" for i in range(6)})
    config = cfgmod.init_project(write_project(tmp_path, files))
    index_project(config)
    doc = q(Engine(config), "widget", fts=True, language=["markdown"], limit=5)
    assert len(doc["results"]) == 5 and all(p.endswith(".md") for p in paths(doc))


def test_min_score_and_limit(project: Path) -> None:
    eng = Engine(project)
    assert len(q(eng, "sort a list", limit=2)["results"]) == 2
    assert q(eng, "sort a list", semantic=True, min_score=0.99)["results"] == []


@pytest.mark.parametrize("request_, code, text", [
    ({"query": "x", "fts": True, "regex": True, "language": ["py"]}, None, None),
    ({"query": "(unclosed", "regex": True}, "bad_request", "regular expression"),
    ({"query": "x", "language": ["klingon"]}, "bad_request", "unknown language"),
    ({"query": "x", "limit": -1}, "bad_request", "--limit"),
    ({"query": "   "}, "bad_request", "empty"),
])
def test_bad_input_is_an_error_document(project: Path, request_: dict, code, text) -> None:
    doc = Engine(project).query(request_)
    if code is None:
        assert doc["error"] is None
    else:
        assert doc["error"]["code"] == code and text in doc["error"]["message"]


def test_no_index_yet_is_an_error_document(tmp_path: Path) -> None:
    config = cfgmod.init_project(tmp_path)
    doc = Engine(config).query({"query": "anything"})
    assert doc["error"]["code"] == "no_index" and "cidx index" in doc["error"]["message"]


def test_empty_repo_indexes_and_answers_nothing(tmp_path: Path) -> None:
    config = cfgmod.init_project(tmp_path)
    stats = index_project(config)
    assert stats.files == 0 and stats.chunks == 0
    for mode in ({}, {"fts": True}, {"fts": True, "semantic": True}):
        assert q(Engine(config), "anything", **mode)["results"] == []


def test_odd_files_do_not_break_indexing(tmp_path: Path) -> None:
    write_project(tmp_path, {"ok.py": "def fine():\n    return 'fine'\n"})
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    (tmp_path / "latin1.py").write_bytes(b"name = 'caf\xe9'  # not utf-8\n")
    fd = os.open(os.path.join(os.fsencode(tmp_path), b"bad\xffname.py"), os.O_CREAT | os.O_WRONLY)
    os.write(fd, b"x = 1\n")
    os.close(fd)
    config = cfgmod.init_project(tmp_path)
    stats = index_project(config)
    indexed = {f.path for f in Engine(config).current()[0].table.files}
    assert indexed == {"ok.py", "latin1.py", "bad\ufffdname.py"}  # an undecodable name, shown replaced
    assert stats.skipped == {"binary": 1}
    doc = q(Engine(config), "caf", fts=True)
    assert paths(doc) == ["latin1.py"] and "\ufffd" in doc["results"][0]["content"]
    doc = q(Engine(config), "x", fts=True)
    assert paths(doc) == ["bad\ufffdname.py"]
    json.dumps(doc, ensure_ascii=False).encode("utf-8")  # the reply can always be encoded


def test_incremental_reindex_embeds_only_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = cfgmod.init_project(write_project(tmp_path))
    first = index_project(config)
    assert first.embedded == first.chunks > 0
    again = index_project(config)
    assert again.embedded == 0 and again.reused_files == first.files
    (tmp_path / "util" / "sorting.py").write_text("def quick_sort(xs):\n    return sorted(xs)\n")
    (tmp_path / "docs" / "notes.md").unlink()
    (tmp_path / "new.py").write_text("def brand_new_function():\n    pass\n")
    third = index_project(config)
    assert third.changed_files == 2 and third.deleted_files == 1
    assert third.embedded == 2  # one chunk per changed/new file
    eng = Engine(config)
    assert "docs/notes.md" not in paths(q(eng, "backoff", fts=True))
    assert paths(q(eng, "quick_sort", fts=True)) == ["util/sorting.py"]
    # vectors copied for unchanged files are the same as freshly embedded ones (by the model:
    # the embedding cache is off, or --clear would take every vector from it)
    monkeypatch.setenv("CIDX_CACHE_MAX_MB", "0")
    fresh = index_project(config, clear=True)
    assert fresh.embedded == fresh.chunks
    ranked = q(Engine(config), "open a url with a timeout")["results"][0]
    assert ranked["path"] == "net/fetch.py"


def test_reindex_is_seen_by_a_live_engine(tmp_path: Path) -> None:
    config = cfgmod.init_project(write_project(tmp_path))
    index_project(config)
    eng = Engine(config)
    before = q(eng, "zebra_crossing", fts=True)
    assert before["results"] == []
    (tmp_path / "zoo.py").write_text("zebra_crossing = True\n")
    index_project(config)
    after = q(eng, "zebra_crossing", fts=True)
    assert paths(after) == ["zoo.py"] and after["generation"] != before["generation"]


def test_second_indexer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    config = cfgmod.init_project(write_project(tmp_path))
    with index_lock(config.parent):
        with pytest.raises(IndexLockedError, match=f"pid {os.getpid()}"):
            index_project(config)
        proc = daemon_cli("index", "--quiet", cwd=tmp_path, check=False)
        assert proc.returncode == 1 and "another indexer is running" in proc.stderr
        assert "Traceback" not in proc.stderr


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


@pytest.mark.parametrize("phase", ["staging", "embedding"])
def test_kill_9_during_index_keeps_a_complete_generation(tmp_path: Path, phase: str) -> None:
    """kill -9 while the first generation is staged: the old one stays live. kill -9 while
    embedding (after the full-text-first generation was published): that one is live,
    complete, finds the new text by full text, and the next run finishes the vectors."""
    config = cfgmod.init_project(write_project(tmp_path))
    index_project(config)
    idx = config.parent / "index"
    old = current_name(idx)
    # enough new text that the re-index is still running when we kill it
    for i in range(12):
        (tmp_path / f"gen{i}.py").write_text(
            "\n".join(f"def handler_{i}_{j}(event):\n    return event + {j}\n" for j in range(40)))
    proc = subprocess.Popen([PYTHON, "-m", "cidx_daemon", "index", "--quiet"], cwd=tmp_path,
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if phase == "staging":
            _wait_for(lambda: any(".tmp-" in p.name for p in idx.iterdir()))
        else:
            _wait_for(lambda: current_name(idx) != old)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    engine = Engine(config)
    doc = q(engine, "retry with backoff", fts=True, semantic=True)
    assert "net/fetch.py" in paths(doc) and "warnings" not in doc
    if current_name(idx) == old:
        assert phase == "staging"
    else:  # the full-text-first generation: complete, verified, its vectors pending
        assert phase == "embedding"
        found = q(engine, "handler_3_7", fts=True)
        assert found["generation"] == current_name(idx) and paths(found)[0] == "gen3.py"
        assert found["pending"]["embed"] > 0
    # the next index cleans the leftover and completes
    stats = index_project(config)
    assert current_name(idx) == stats.generation != old
    assert not [p for p in idx.iterdir() if ".tmp-" in p.name]
    assert "pending" not in q(Engine(config), "handler_3_7", fts=True)


def test_cli_json_query_and_status(project: Path) -> None:
    root = project.parent.parent
    proc = daemon_cli("query", "bubble sort", "--json", "--limit", "1", cwd=root)
    doc = json.loads(proc.stdout)
    assert doc["results"][0]["path"] == "util/sorting.py" and doc["served_by"] == "standalone"
    status = json.loads(daemon_cli("status", "--json", cwd=root).stdout)
    assert status["files"] == 4 and status["stale"] == {"changed": 0, "added": 0, "deleted": 0}
    bad = daemon_cli("query", "x", "--regex", "--semantic", cwd=root, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    bad = daemon_cli("query", "(", "--regex", "--json", cwd=root, check=False)
    assert bad.returncode == 2 and json.loads(bad.stdout)["error"]["code"] == "bad_request"


def test_clean_removes_the_index(tmp_path: Path) -> None:
    write_project(tmp_path, {"a.py": "x = 1\n"})
    config = cfgmod.init_project(tmp_path)
    index_project(config)
    daemon_cli("clean", cwd=tmp_path)
    assert not (config.parent / "index").exists() and config.exists()
    shutil.rmtree(config.parent)


def test_definitions_are_sought_in_code_never_in_prose_or_data(tmp_path: Path) -> None:
    """A name query lifts the chunk that defines the name. Code the syntax chunker does not
    parse (Elixir here) is scanned with the definition regex; a README's example, a notes
    file and a translation catalogue that spell ``class Widget`` or ``Widget =`` are not
    definitions, and are no longer scanned (they were most of a big project's bytes)."""
    root = tmp_path / "proj"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "widget.ex").write_text("defmodule Widget do\n  def draw(w), do: w\nend\n")
    (root / "README.md").write_text("# Usage\n\n```python\nclass Widget:\n    pass\n```\n")
    (root / "notes.txt").write_text("Widget = the thing on screen\n")
    (root / "locale.po").write_text('msgid "Widget"\nmsgstr "Widget = Gadget"\n')
    config = cfgmod.init_project(root)
    index_project(config, embed=False)
    doc = q(Engine(config), "Widget", fts=True, limit=10)
    lifted = {r["path"] for r in doc["results"] if "symbol" in r["ranks"]}
    assert lifted == {"lib/widget.ex"}, [(r["path"], r["ranks"]) for r in doc["results"]]
    assert doc["results"][0]["path"] == "lib/widget.ex"
