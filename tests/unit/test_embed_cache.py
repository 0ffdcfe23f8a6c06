"""The per-user embedding cache: what it saves (a branch switched back re-embeds nothing),
what it must survive (concurrent writers, a corrupt file) and how it stays bounded (LRU)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from cidx_daemon.index import embed_cache
from cidx_daemon.index.embed_cache import CACHE_FILE, EmbeddingCache, text_key
from cidx_daemon.index.indexer import embedding_input, index_project
from cidx_shared import config as cfgmod
from helpers import RecordedProgress, write_project

ROOT = Path(__file__).resolve().parents[2]
DIM = 384


class CountingEmbedder:
    """Deterministic vectors from the text's hash; counts what it was asked to embed."""

    dim = DIM

    def __init__(self, name: str = "fake/counting") -> None:
        self.name = name
        self.embedded: list[str] = []

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32, progress=None) -> np.ndarray:
        self.embedded.extend(texts)
        out = np.stack([vector_of(t) for t in texts]) if texts else np.zeros((0, DIM), np.float32)
        if progress is not None and texts:
            progress(len(texts))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return vector_of(text)


def vector_of(text: str) -> np.ndarray:
    rng = np.random.default_rng(int.from_bytes(text_key(text)[:8], "little"))
    vec = rng.standard_normal(DIM).astype(np.float32)
    return vec / np.linalg.norm(vec)


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


# --------------------------------------------------------------------------- the cache itself


def test_location_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIDX_CACHE_DIR", str(tmp_path / "explicit"))
    assert embed_cache.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("CIDX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embed_cache.cache_dir() == tmp_path / "xdg" / "cidx"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert embed_cache.cache_dir() == tmp_path / "home" / ".cache" / "cidx"


def test_round_trip_by_model_and_text_with_private_permissions(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache", max_bytes=2**30)
    a, b = text_key("def a(): pass"), text_key("def b(): pass")
    cache.put_many("model-1", [(a, vec(1)), (b, vec(2))])
    got = cache.get_many("model-1", [a, b, text_key("missing")], DIM)
    assert set(got) == {a, b}
    np.testing.assert_array_equal(got[a], vec(1))
    assert cache.get_many("model-2", [a], DIM) == {}  # another model never shares a vector
    assert cache.get_many("model-1", [a], DIM * 2) == {}  # nor another dimension
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "cache" / CACHE_FILE).stat().st_mode) == 0o600
    assert cache.stats()["entries"] == 2


def test_least_recently_used_entries_are_evicted_under_the_cap(tmp_path: Path) -> None:
    row = DIM * 4 + embed_cache.ROW_OVERHEAD_BYTES
    cache = EmbeddingCache(tmp_path, max_bytes=50 * row)
    keys = [text_key(f"chunk {i}") for i in range(40)]
    cache.put_many("m", [(k, vec(i)) for i, k in enumerate(keys)])
    cache.get_many("m", keys[:5], DIM)  # the oldest five are used again: they must stay
    for batch in range(3):
        cache.put_many("m", [(text_key(f"new {batch} {i}"), vec(i)) for i in range(10)])
    stats = cache.stats()
    assert stats["bytes"] <= 50 * row and stats["entries"] >= 40
    assert set(cache.get_many("m", keys[:5], DIM)) == set(keys[:5])
    assert len(cache.get_many("m", keys[5:], DIM)) < 35  # some never-reused ones went


def test_a_corrupt_cache_is_ignored_with_one_warning(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / CACHE_FILE).write_bytes(b"this is not a database" * 100)
    cache = EmbeddingCache(tmp_path, max_bytes=2**30)
    assert cache.get_many("m", [text_key("x")], DIM) == {}
    cache.put_many("m", [(text_key("x"), vec(1))])
    assert not cache.enabled and "unusable" in (cache.error or "")
    assert sum("unusable" in r.getMessage() for r in caplog.records) == 1


def test_an_unwritable_location_is_ignored(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    cache = EmbeddingCache(blocker / "cidx", max_bytes=2**30)
    cache.put_many("m", [(text_key("x"), vec(1))])
    assert cache.get_many("m", [text_key("x")], DIM) == {}
    assert not cache.enabled


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from cidx_daemon.index.embed_cache import EmbeddingCache, text_key
    cache = EmbeddingCache(__import__("pathlib").Path(sys.argv[2]), max_bytes=2**30)
    who = sys.argv[3]
    for batch in range(40):
        items = [(text_key(f"{who} {batch} {i}"), np.full(384, batch * 100 + i, np.float32))
                 for i in range(25)]
        items.append((text_key(f"shared {batch}"), np.full(384, -batch, np.float32)))
        cache.put_many("m", items)
        cache.get_many("m", [text_key(f"shared {batch}")], 384)
    assert cache.enabled, cache.error
    print("ok")
""")


def test_concurrent_writers_in_two_processes_corrupt_nothing(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", WRITER, str(ROOT / "daemon_pkg" / "src"), str(tmp_path)]
    procs = [subprocess.Popen([*argv, who], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for who in ("a", "b")]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    with sqlite3.connect(tmp_path / CACHE_FILE) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    cache = EmbeddingCache(tmp_path, max_bytes=2**30)
    for who in ("a", "b"):
        keys = [text_key(f"{who} {batch} {i}") for batch in range(40) for i in range(25)]
        got = cache.get_many("m", keys, DIM)
        assert len(got) == len(keys)
        assert float(got[text_key(f"{who} 39 24")][0]) == 39 * 100 + 24
    assert cache.stats()["entries"] == 2 * 40 * 25 + 40


# --------------------------------------------------------------------------- through the indexer


def init(root: Path, embedder: str = "fake/counting") -> Path:
    """A project whose ``index.embedder`` names the fake model, as a real setting names its model."""
    config = cfgmod.init_project(root)
    cfg = json.loads(config.read_text())
    cfg["index"]["embedder"] = embedder
    config.write_text(json.dumps(cfg))
    return config


FILES = {
    "net/fetch.py": "def fetch_with_timeout(url, timeout=10.0):\n    return url, timeout\n",
    "sort.py": "def bubble_sort(items):\n    return sorted(items)\n",
    "docs/notes.md": "# Notes\n\nThe palette lives in the stylesheet.\n",
}


def test_a_branch_switched_away_and_back_re_embeds_nothing(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", FILES)
    config = init(root)
    embedder = CountingEmbedder()
    first = index_project(config, embedder_factory=lambda name: embedder)
    assert first.embedded == first.chunks > 0 and first.cache_hits == 0
    # one batch: the chunks, code first and docs last (indexer.code_first), then their signatures
    assert "docs/notes.md" in embedder.embedded[first.chunks - 1]
    assert embedder.embedded[first.chunks:] == [
        "net/fetch.py\ndef fetch_with_timeout(url, timeout=10.0):\nfetch with timeout",
        "sort.py\ndef bubble_sort(items):\nbubble sort"]
    texts_first = len(embedder.embedded)

    originals = {name: (root / name).read_text() for name in ("net/fetch.py", "sort.py")}
    (root / "net/fetch.py").write_text("def fetch_on_another_branch(url):\n    return None\n")
    (root / "sort.py").write_text("def quick_sort(items):\n    return sorted(items, reverse=True)\n")
    away = index_project(config, embedder_factory=lambda name: embedder)
    assert away.embedded == 2 and away.cache_hits == 0
    assert len(embedder.embedded) == texts_first + 2 + 2  # two chunks, two signatures

    for name, text in originals.items():
        (root / name).write_text(text)
    back = index_project(config, embedder_factory=lambda name: embedder)
    assert back.changed_files == 2
    assert back.embedded == 0 and back.cache_hits == 2 and back.pending == 0
    # A second clone of the project shares the cache: nothing is embedded there either.
    clone = write_project(tmp_path / "clone", FILES)
    again = index_project(init(clone), embedder_factory=lambda name: embedder)
    assert again.embedded == 0 and again.cache_hits == again.chunks
    assert len(embedder.embedded) == texts_first + 4


def test_vectors_from_the_cache_are_the_ones_embedded(tmp_path: Path) -> None:
    from cidx_daemon.index import generation as gens

    root = write_project(tmp_path / "proj", FILES)
    config = init(root)
    index_project(config, embedder_factory=lambda name: CountingEmbedder())
    cleared = index_project(config, clear=True, embedder_factory=lambda name: CountingEmbedder())
    assert cleared.embedded == 0 and cleared.cache_hits == cleared.chunks
    gen, _ = gens.open_live(gens.index_dir(cfgmod.config_dir(config)), with_fts=False)
    assert gen is not None and gen.n_embedded == len(gen)
    for row in range(len(gen)):
        np.testing.assert_array_equal(gen.vectors[row], vector_of(embedding_input(gen.table, row)))


def test_another_model_does_not_hit_the_cache(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", FILES)
    index_project(init(root, "fake/one"), embedder_factory=lambda name: CountingEmbedder("fake/one"))
    other = index_project(init(root, "fake/two"), embedder_factory=lambda name: CountingEmbedder("fake/two"))
    assert other.cache_hits == 0 and other.embedded == other.chunks


def test_a_corrupt_cache_never_fails_indexing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = tmp_path / "broken-cache"
    cache_dir.mkdir()
    (cache_dir / CACHE_FILE).write_bytes(os.urandom(8192))
    monkeypatch.setenv("CIDX_CACHE_DIR", str(cache_dir))
    progress = RecordedProgress()
    root = write_project(tmp_path / "proj", FILES)
    stats = index_project(init(root), progress=progress,
                          embedder_factory=lambda name: CountingEmbedder())
    assert stats.embedded == stats.chunks and stats.pending == 0
    assert len([n for n in progress.lines if "embedding cache" in n]) == 1, progress.lines


def test_a_setting_whose_model_changed_re_embeds_and_is_never_mixed(tmp_path: Path) -> None:
    """An index embedded when "minilm" meant fp32 is rebuilt, not topped up, now that it means int8;
    until then a semantic query says so instead of comparing int8 queries with fp32 vectors."""
    from cidx_daemon.search.embedding import model_name
    from cidx_daemon.search.engine import Engine

    root = write_project(tmp_path / "proj", FILES)
    config = cfgmod.init_project(root)  # index.embedder: "minilm", the default
    old = index_project(config, embedder_factory=lambda name: CountingEmbedder("all-MiniLM-L6-v2/onnx-fp32"))
    assert old.embedded == old.chunks
    refused = Engine(config).query({"query": "fetch a url"})
    assert refused.get("error", {}).get("code") == "model", refused
    assert "re-embed" in refused["error"]["message"]

    new = CountingEmbedder(model_name("minilm") or "")
    again = index_project(config, embedder_factory=lambda name: new)
    assert again.embedded == again.chunks == old.chunks and again.cache_hits == 0
    assert again.reused_files == 0  # nothing carried over from the other model's generation
