"""The one generation format: what is stored (once), what is verified, what survives damage.

Real indexes of a small real project with the real model; the damage is done to
the files on disk as a disk, a bug or a person would do it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cidx_daemon.index import generation as gens
from cidx_daemon.index.indexer import index_project
from cidx_daemon.search.engine import Engine
from cidx_shared import config as cfgmod
from helpers import RecordedProgress, daemon_cli, write_project

MARKER = "zebra_marker_string_found_once"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_project(tmp_path_factory.mktemp("template"))
    (root / "marked.py").write_text(f"def {MARKER}():\n    return 'stored once'\n")
    index_project(cfgmod.init_project(root))  # gen 1
    (root / "net" / "extra.py").write_text("def extra_function():\n    return 42\n")
    index_project(cfgmod.init_project(root))  # gen 2: gen 1 stays as the fallback
    return root


@pytest.fixture()
def project(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(template, root, symlinks=True)
    return root


def config_of(root: Path) -> Path:
    return root / ".code-indexer" / "config.json"


def idx_of(root: Path) -> Path:
    return root / ".code-indexer" / "index"


def query(root: Path, text: str, **flags: object) -> dict:
    return Engine(config_of(root)).query({"query": text, **flags})


def fallback(root: Path) -> str:
    """The generation kept beside the live one: the newest of the previous index run."""
    others = sorted(p.name for p in idx_of(root).glob("gen-*") if p.name != gens.current_name(idx_of(root)))
    assert len(others) == 1, others
    return others[0]


def live(root: Path) -> Path:
    name = gens.current_name(idx_of(root))
    assert name is not None
    return idx_of(root) / name


# --------------------------------------------------------------------------- what is stored


def test_chunk_text_is_stored_once_per_generation(project: Path) -> None:
    """The full-text index keeps no text of its own: the chunk table is the only copy."""
    holders = [p.relative_to(live(project)).as_posix() for p in live(project).rglob("*")
               if p.is_file() and MARKER.encode() in p.read_bytes()]
    # symbols.bin holds the names a chunk defines (here the marker is one), not its text.
    assert sorted(holders) == ["symbols.bin", "text.bin"]
    assert query(project, MARKER, fts=True)["results"][0]["path"] == "marked.py"


def test_every_file_is_accounted_for_in_the_meta(project: Path) -> None:
    meta = json.loads((live(project) / "meta.json").read_text())
    assert meta["format"] == gens.FORMAT_VERSION and meta["sizes"] == gens.file_sizes(live(project))
    assert {"files.json", "rows.npy", "cids.npy", "text.bin", "text_off.npy", "vectors.npy",
            "embedded.npy", "fts/fts.json"} <= set(meta["sizes"])
    pointer = (idx_of(project) / "CURRENT").read_text().split()
    assert pointer[0] == live(project).name and len(pointer[1]) == 64


def test_a_no_change_index_keeps_the_live_generation(project: Path) -> None:
    before = live(project).name
    (project / "net" / "fetch.py").touch()  # new mtime, same content
    stats = index_project(config_of(project))
    assert stats.unchanged and stats.embedded == 0 and live(project).name == before
    status = json.loads(daemon_cli("status", "--json", cwd=project).stdout)
    assert status["stale"] == {"changed": 0, "added": 0, "deleted": 0}  # judged by content


def test_full_text_first_then_vectors_share_everything_but_the_vectors(project: Path) -> None:
    (project / "later.py").write_text("def pending_vectors_function():\n    return 'soon'\n")
    fts_first = index_project(config_of(project), embed=False)
    assert fts_first.pending == 1
    doc = query(project, "pending_vectors_function", fts=True)
    assert doc["results"][0]["path"] == "later.py" and doc["pending"] == {"embed": 1}
    semantic = query(project, "a function that returns soon", semantic=True)
    assert "later.py" not in {r["path"] for r in semantic["results"]}  # not embedded yet
    default = query(project, "pending vectors function")  # hybrid: full text reaches it already
    assert default["mode"] == "hybrid" and default["results"][0]["path"] == "later.py"
    first_dir = live(project)
    files = ("text.bin", "rows.npy", "fts/fts.json", "vectors.npy")
    inodes = {f: os.stat(first_dir / f).st_ino for f in files}
    delta_before = len(np.load(first_dir / "vectors_delta.npy"))
    rows_inode = os.stat(first_dir / "vector_rows.npy").st_ino
    done = index_project(config_of(project))
    assert done.embedded == 1 and done.pending == 0
    second_dir = live(project)
    assert second_dir != first_dir
    for shared in ("text.bin", "rows.npy", "fts/fts.json", "vectors.npy"):
        assert os.stat(second_dir / shared).st_ino == inodes[shared], shared  # hard links, not copies
    # The one new vector is appended beside the shared ones, and the row map points at it.
    assert np.load(second_dir / "vectors_delta.npy").shape == (delta_before + 1, 384)
    assert os.stat(second_dir / "vector_rows.npy").st_ino != rows_inode
    semantic = query(project, "a function that returns soon", semantic=True)
    assert "pending" not in semantic and "later.py" in {r["path"] for r in semantic["results"]}


# --------------------------------------------------------------------------- damage


def _garbage_pointer(root: Path) -> None:
    (idx_of(root) / "CURRENT").write_bytes(b"\xff\xfe not a generation \x00")


def _truncate_vectors(root: Path) -> None:
    path = live(root) / "vectors.npy"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def _delete_fts(root: Path) -> None:
    shutil.rmtree(live(root) / "fts")


def _tamper_meta(root: Path) -> None:
    path = live(root) / "meta.json"
    meta = json.loads(path.read_text())
    meta["chunks"] += 1
    path.write_text(json.dumps(meta))


def _wrong_row_count(root: Path) -> None:
    np.save(live(root) / "embedded.npy", np.ones(3, dtype=bool))


def _reversed_signature_owners(root: Path) -> None:
    path = live(root) / "sig_owner.npy"
    owners = np.load(path)
    assert len(set(owners.tolist())) >= 2
    np.save(path, owners[::-1].copy())  # the same size: only the check of their order finds it


DAMAGE = {"garbage CURRENT": _garbage_pointer, "truncated vectors": _truncate_vectors,
          "deleted fts": _delete_fts, "edited meta": _tamper_meta, "wrong row count": _wrong_row_count,
          "reversed signature owners": _reversed_signature_owners}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_generation_falls_back_is_reported_and_repaired(project: Path, damage: str) -> None:
    # A bad pointer leaves every generation sound: the newest one that verifies is served.
    older = live(project).name if damage == "garbage CURRENT" else fallback(project)
    DAMAGE[damage](project)
    for flags in ({"fts": True}, {}, {"fts": True, "semantic": True}):
        doc = query(project, "retry with backoff", **flags)
        assert doc["error"] is None, (damage, doc)
        assert doc["generation"] == older and "net/fetch.py" in {r["path"] for r in doc["results"]}
        assert any(f"previous generation {older}" in w for w in doc["warnings"])
    status = json.loads(daemon_cli("status", "--json", cwd=project).stdout)
    assert status["damage"] and status["generation"] == older
    human = daemon_cli("status", cwd=project).stdout
    assert "Damage:" in human
    repaired = index_project(config_of(project))  # never reads the damaged generation
    assert not repaired.unchanged
    doc = query(project, "extra_function", fts=True)
    assert "warnings" not in doc and doc["results"][0]["path"] == "net/extra.py"


def test_damage_to_the_shared_vector_base_is_repaired_by_the_next_index(tmp_path: Path) -> None:
    """The vector base is carried by hard link from run to run, so a base truncated in place
    damages the fallback too: the error says so in one line, and the next index rebuilds
    without linking a byte of it."""
    root = write_project(tmp_path / "p")
    index_project(cfgmod.init_project(root))
    (root / "net" / "extra.py").write_text("def extra_function():\n    return 42\n")
    index_project(config_of(root))
    base = live(root) / "vectors.npy"
    assert os.stat(base).st_ino == os.stat(idx_of(root) / fallback(root) / "vectors.npy").st_ino
    damaged_inode = os.stat(base).st_ino
    with open(base, "r+b") as fh:
        fh.truncate(base.stat().st_size - 1)
    doc = query(root, "retry with backoff")
    assert doc["error"]["code"] == "index_damaged", doc
    stats = index_project(config_of(root))
    assert not stats.unchanged and stats.reused_files == 0
    assert os.stat(live(root) / "vectors.npy").st_ino != damaged_inode
    doc = query(root, "retry with backoff")
    assert doc["error"] is None and "warnings" not in doc
    assert "net/fetch.py" in {r["path"] for r in doc["results"]}


def test_index_clear_repairs_whatever_the_pointer_holds(project: Path) -> None:
    _garbage_pointer(project)
    proc = daemon_cli("index", "--clear", "--quiet", cwd=project)
    assert "Indexed" in proc.stdout
    assert "warnings" not in query(project, "extra_function", fts=True)


def test_nothing_usable_is_an_index_damaged_error_not_a_traceback(project: Path) -> None:
    for gen_dir in idx_of(project).glob("gen-*"):
        (gen_dir / "meta.json").write_text("{")
    doc = query(project, "retry", fts=True)
    assert doc["error"]["code"] == "index_damaged" and "cidx index --clear" in doc["error"]["message"]
    proc = daemon_cli("query", "retry", "--fts", cwd=project, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "damaged" in proc.stderr
    assert "Damage:" in daemon_cli("status", cwd=project).stdout
    assert "Indexed" in daemon_cli("index", "--quiet", cwd=project).stdout
    assert query(project, "retry", fts=True)["error"] is None


def test_a_generation_from_before_the_syntax_chunker_opens_and_is_rechunked(project: Path) -> None:
    """Old generations lack the symbol columns and name another chunker: they still answer
    queries, and the next index run re-chunks every file (symbols appear)."""
    gen_dir = live(project)
    for column in ("symbols.bin", "sym_off.npy"):
        (gen_dir / column).unlink()
    meta = json.loads((gen_dir / "meta.json").read_text())
    meta = {k: v for k, v in meta.items() if k not in ("format", "sizes")}
    meta["chunker"] = "regex-1"
    meta_hash = gens.write_meta(gen_dir, meta)
    (idx_of(project) / "CURRENT").write_text(f"{gen_dir.name}\n{meta_hash}\n", encoding="ascii")
    old = gens.open_live(idx_of(project), with_fts=False)
    assert old[0] is not None and old[1] == [] and old[0].table.symbols(0) == (None, [])
    assert query(project, MARKER, fts=True)["results"][0]["path"] == "marked.py"
    stats = index_project(config_of(project))
    assert stats.reused_files == 0 and stats.changed_files == stats.files
    new = gens.open_live(idx_of(project), with_fts=False)[0]
    assert new is not None and new.meta["chunker"] != "regex-1"
    assert len(new.table.symbol_index().lookup(MARKER)) == 1


def _as_format_3(project: Path, monkeypatch: pytest.MonkeyPatch) -> gens.Generation:
    """The live generation as the version before signature vectors wrote it."""
    gen_dir = live(project)
    for name in os.listdir(gen_dir):
        if name.startswith("sig_") or name == "signed.npy":
            (gen_dir / name).unlink()
    meta = json.loads((gen_dir / "meta.json").read_text())
    meta = {k: v for k, v in meta.items() if k not in ("format", "sizes", "signatures")}
    with monkeypatch.context() as m:
        m.setattr(gens, "FORMAT_VERSION", 3)
        meta_hash = gens.write_meta(gen_dir, meta)
    (idx_of(project) / "CURRENT").write_text(f"{gen_dir.name}\n{meta_hash}\n", encoding="ascii")
    old, warnings = gens.open_live(idx_of(project), with_fts=False)
    assert old is not None and warnings == [] and old.signatures is None and old.meta["format"] == 3
    assert old.n_embedded == len(old) and old.n_unsigned == len(old)
    return old


def test_a_generation_from_before_signature_vectors_answers_and_gets_them_added(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Format 3 had no signature vectors: it still answers every kind of query (chunks by
    their own vectors), and the next index run embeds only the signatures, keeping every
    chunk's vector (upgrading a big index must not send semantic search back to nothing)."""
    old = _as_format_3(project, monkeypatch)
    for flags in ({"fts": True}, {"semantic": True}, {}):
        doc = query(project, "retry with backoff", **flags)
        assert doc["error"] is None and "net/fetch.py" in {r["path"] for r in doc["results"]}, doc
    base_inode = os.stat(old.path / "vectors.npy").st_ino
    stats = index_project(config_of(project))
    assert stats.embedded == stats.cache_hits == 0 and stats.signatures_embedded > 0, stats
    new = gens.open_live(idx_of(project), with_fts=False)[0]
    assert new is not None and new.meta["format"] == gens.FORMAT_VERSION and new.signatures is not None
    assert len(new.signatures) == stats.signatures_embedded and new.n_unsigned == 0
    assert new.n_embedded == len(new) == len(old)
    assert os.stat(new.path / "vectors.npy").st_ino == base_inode  # linked, not rewritten
    np.testing.assert_array_equal(np.asarray(new.vectors), np.asarray(old.vectors))
    assert index_project(config_of(project)).unchanged  # nothing left to do


def test_a_daemon_adds_the_signatures_an_upgraded_index_lacks(project: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's background embedder does the same for the index it serves."""
    from cidx_daemon.server.refresher import Refresher

    old = _as_format_3(project, monkeypatch)
    Refresher(config_of(project))._embed()
    new = gens.open_live(idx_of(project), with_fts=False)[0]
    assert new is not None and new.name != old.name and new.n_unsigned == 0 and new.signatures is not None
    assert len(new.signatures) > 0 and new.n_embedded == len(new)


def test_function_texts_of_another_version_are_replaced_alone(project: Path) -> None:
    """What a function's texts are changes with ``signatures.VERSION`` (2: the shared chunk's
    function texts and the names' words). An index written by another version answers by its
    chunks' vectors, and the next run replaces only the function texts."""
    from cidx_daemon.index import signatures as sigs

    gen_dir = live(project)
    meta = json.loads((gen_dir / "meta.json").read_text())
    meta = {k: v for k, v in meta.items() if k != "sizes"} | {"signatures": sigs.VERSION - 1}
    meta_hash = gens.write_meta(gen_dir, meta)
    (idx_of(project) / "CURRENT").write_text(f"{gen_dir.name}\n{meta_hash}\n", encoding="ascii")
    old = gens.open_live(idx_of(project), with_fts=False)[0]
    assert old is not None and old.signatures is None and old.n_unsigned == len(old) == old.n_embedded
    doc = query(project, "retry with backoff", semantic=True)
    assert doc["error"] is None and "net/fetch.py" in {r["path"] for r in doc["results"]}, doc
    from cidx_daemon.search.engine import Engine

    assert Engine(config_of(project)).status()["pending"] == {"embed": 0, "function_texts": len(old)}
    base_inode = os.stat(old.path / "vectors.npy").st_ino
    stats = index_project(config_of(project))
    assert stats.embedded == 0 and not stats.unchanged, stats
    new = gens.open_live(idx_of(project), with_fts=False)[0]
    assert new is not None and new.meta["signatures"] == sigs.VERSION and new.n_unsigned == 0
    assert new.signatures is not None and len(new.signatures) > 0
    assert os.stat(new.path / "vectors.npy").st_ino == base_inode  # chunk vectors linked, not rewritten
    assert Engine(config_of(project)).status()["pending"] == {"embed": 0}
    assert index_project(config_of(project)).unchanged


def test_code_is_embedded_before_tests_docs_and_examples(tmp_path: Path) -> None:
    # Until every vector exists semantic search sees only what is embedded: the likeliest
    # answers go first, whatever the alphabet says (benchmarks/ and docs/ sort before src/).
    from cidx_daemon.index.indexer import code_first

    root = write_project(tmp_path / "proj", {
        "benchmarks/bench_parse.py": "def bench_parse():\n    return 1\n",
        "docs/guide.md": "# Guide\n\nParsing explained.\n",
        "examples/demo.py": "def demo():\n    return 2\n",
        "src/pkg/__init__.py": "from .parse import parse\n",
        "src/pkg/parse.py": "def parse(text):\n    return text.split()\n",
        "tests/test_parse.py": "def test_parse():\n    assert True\n",
        "vendor/lib.py": "def vendored():\n    return 3\n",
        "zeta.py": "def zeta():\n    return 4\n",
    })
    index_project(cfgmod.init_project(root), embed=False)
    gen = gens.open_live(gens.index_dir(root / cfgmod.CONFIG_DIR))[0]
    assert gen is not None and gen.n_embedded == 0
    order = code_first(gen.table, np.flatnonzero(~np.asarray(gen.embedded)))
    paths = [gen.table.file_of(int(r)).path for r in order]
    assert sorted(order.tolist()) == list(range(len(gen)))  # every pending row, once
    code = {"src/pkg/__init__.py", "src/pkg/parse.py", "zeta.py"}
    assert set(paths[:len(code)]) == code, paths
    assert set(paths[len(code):]) == {"benchmarks/bench_parse.py", "docs/guide.md", "examples/demo.py",
                                      "tests/test_parse.py", "vendor/lib.py"}, paths


def test_chunking_in_worker_processes_builds_the_same_table(tmp_path: Path) -> None:
    """A big scan read and chunked by forked workers (the CLI's first index) publishes
    exactly the table a single process writes: same rows, ids, text, symbols, skips."""
    from cidx_daemon.index import indexer

    files = {f"pkg/m{i:03d}.py": f"class C{i}:\n    def run(self, x):\n        return x * {i}\n\n\n"
                                 f"def helper_{i}(y):\n    return C{i}().run(y)\n" for i in range(230)}
    files.update({f"notes/n{i}.md": f"# Note {i}\n\nSome words about helper_{i}.\n" for i in range(20)})
    built = {}
    for workers in (1, 2):
        root = write_project(tmp_path / f"w{workers}", files)
        (root / "blob.bin").write_bytes(b"\0\1\2" * 100)
        config = cfgmod.init_project(root)
        stats = index_project(config, embed=False, workers=workers)
        gen, _ = gens.open_live(gens.index_dir(cfgmod.config_dir(config)))
        assert gen is not None
        built[workers] = (stats.skipped, stats.chunks,
                          {name: (gen.path / name).read_bytes()
                           for name in ("text.bin", "symbols.bin", "rows.npy", "cids.npy", "text_off.npy")})
    assert len(files) >= indexer.POOL_MIN_FILES  # the pool did run
    assert built[1] == built[2]
    assert built[2][0] == {"binary": 1}


def test_streams_made_beside_the_chunks_index_what_the_table_holds(tmp_path: Path) -> None:
    """The indexer makes each chunk's full-text streams and vocabulary where it chunks it
    (in the workers, for a big scan): the index it publishes answers every search, fuzzy
    ones included, as an index built afresh from the published table does."""
    import tantivy

    from cidx_daemon.search.fts import FtsIndex, build_fts_index

    files = {f"pkg/m{i:03d}.py": f"class HTTPClient{i}:\n    def read_response(self, x):\n"
                                 f"        return x * {i}  # naïve retry_{i}\n\n\n"
                                 f"def helper_{i}(y):\n    return HTTPClient{i}().read_response(y)\n"
             for i in range(230)}
    root = write_project(tmp_path / "p", files)
    config = cfgmod.init_project(root)
    index_project(config, embed=False, workers=2)
    (root / "pkg" / "m007.py").write_text("def urlopen_with_backoff(url):\n    return url\n")
    index_project(config, embed=False, changed=["pkg/m007.py"])  # the incremental path
    gen, _ = gens.open_live(gens.index_dir(cfgmod.config_dir(config)))
    assert gen is not None
    published = FtsIndex.open(gen.path / gens.FTS_DIR, gen.table)
    build_fts_index(tmp_path / "afresh", gen.table)
    afresh = FtsIndex.open(tmp_path / "afresh", gen.table)
    assert published.num_docs == afresh.num_docs == len(gen.table)
    for q, kw in (("read_response", {}), ("HTTP client", {}), ("retry_17", {}), ("naïve", {}),
                  ("urlopen backoff", {}), ("respnse", {"edit_distance": 1}),
                  ("HTTPClent12", {"edit_distance": 1}), ("urlopn", {"edit_distance": 1})):
        got = [h.row for h in published.search(q, limit=50, **kw)]  # type: ignore[arg-type]
        assert got, q
        assert got == [h.row for h in afresh.search(q, limit=50, **kw)], q  # type: ignore[arg-type]
    # The vocabulary (fuzzy expansion) holds every token an afresh build finds.
    terms = {}
    for where in (gen.path / gens.FTS_DIR, tmp_path / "afresh"):
        index = tantivy.Index.open(str(where / "vocab"))
        searcher = index.searcher()
        hits = searcher.search(tantivy.Query.all_query(), limit=100_000).hits
        terms[where] = {searcher.doc(address)["cs"][0] for _, address in hits}
    assert terms[tmp_path / "afresh"] <= terms[gen.path / gens.FTS_DIR]
    assert {"urlopen", "backoff", "HTTP", "Client", "HTTPClient12", "naïve"} <= terms[tmp_path / "afresh"]


def test_a_long_embedding_run_says_full_text_already_answers(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Minutes of embedding ahead (a first index of a big project): the run says, before it
    starts them, that full text answers already and that stopping it loses nothing."""
    from cidx_daemon.index import indexer

    root = write_project(tmp_path / "p")
    config = cfgmod.init_project(root)
    quiet = RecordedProgress()
    index_project(config, progress=quiet)  # a few chunks: nothing to announce
    assert not any("searchable now" in line for line in quiet.lines)
    (root / "more.py").write_text("def more():\n    return 1\n")
    monkeypatch.setattr(indexer, "LONG_EMBED_CHUNKS", 1)
    told = RecordedProgress()
    stats = index_project(config, progress=told)
    note = next(line for line in told.lines if "searchable now" in line)
    assert note.startswith("Full text is searchable now (gen-") and stats.embedded + stats.cache_hits == 1
    assert told.lines.index(note) < told.lines.index("phase Embedding chunks")
    assert "embedding 1 chunks for semantic search" in note and "Interrupting is safe" in note


# --------------------------------------------------------------------------- who embeds


def test_vectors_are_never_applied_to_an_index_rebuilt_meanwhile(project: Path) -> None:
    """An embedder still running for the old index (the daemon's, a ``cidx index``) when
    ``cidx index --clear`` rebuilt it: chunk ids restart with the rebuild, so its vectors would
    land on other chunks. It stops and publishes nothing; the rebuild's own run embeds."""
    from cidx_daemon.index.indexer import IndexStats, _Silent, embed_pending
    from cidx_daemon.search.embedding import load_embedder

    config = config_of(project)
    (project / "pending.py").write_text("def pending_function():\n    return 'not embedded yet'\n")
    index_project(config, embed=False)
    old = gens.open_live(idx_of(project), with_fts=False)[0]
    assert old is not None and old.n_embedded < len(old)
    index_project(config, clear=True, embed=False)  # the same files: the same chunk ids, anew
    rebuilt = gens.open_live(idx_of(project), with_fts=False)[0]
    assert rebuilt is not None and rebuilt.n_embedded == 0
    assert set(np.asarray(old.table.cids).tolist()) & set(np.asarray(rebuilt.table.cids).tolist())
    assert rebuilt.meta["lineage"] != old.meta["lineage"]

    stats = IndexStats(generation=old.name)
    embed_pending(idx_of(project), config.parent, load_embedder("minilm"), stats, _Silent(), gen=old)
    assert stats.embedded + stats.cache_hits > 0  # it did embed, for the old index
    assert gens.current_name(idx_of(project)) == rebuilt.name  # and published nothing
    # the generations of one lineage (a save, then its vectors) take each other's vectors
    index_project(config)
    after = gens.open_live(idx_of(project), with_fts=False)[0]
    assert after.meta["lineage"] == rebuilt.meta["lineage"] and after.n_embedded == len(after)


def test_a_second_cidx_index_leaves_the_embedding_to_the_first(project: Path) -> None:
    """Two ``cidx index`` runs: the second publishes its changes (full text) and, finding the
    embedding lease taken, says who holds it and leaves its chunks pending instead of
    embedding the same chunks beside the first on the same cores (or waiting minutes)."""
    config = config_of(project)
    (project / "second.py").write_text("def second_run_function():\n    return 2\n")
    progress = RecordedProgress()
    with gens.embed_lease(config.parent):
        assert gens.embedding_elsewhere(config.parent) == gens.embedding_elsewhere(config.parent) is not None
        with pytest.raises(gens.EmbedLeaseTaken, match=f"pid {os.getpid()}"), \
                gens.embed_lease(config.parent, wait_s=0.1):
            pass
        stats = index_project(config, progress=progress)
    assert stats.embedded == stats.cache_hits == 0 and stats.pending > 0
    assert any(f"another indexer is embedding (pid {os.getpid()}" in line and "stay pending" in line
               for line in progress.lines), progress.lines
    assert query(project, "second_run_function", fts=True)["results"][0]["path"] == "second.py"
    assert gens.embedding_elsewhere(config.parent) is None  # released with its holder
    stats = index_project(config)  # the next run embeds what was left
    assert stats.pending == 0 and stats.embedded + stats.cache_hits > 0
