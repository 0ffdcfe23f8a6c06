"""cidx export / cidx import: one build serves another copy; a hostile archive gets nowhere."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from cidx_daemon.index.indexer import index_project
from cidx_daemon.index.portable import PortableError, export_generation, import_generation
from cidx_daemon.search.engine import Engine
from cidx_shared import config as cfgmod
from helpers import daemon_cli, write_project


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    origin = write_project(tmp_path_factory.mktemp("origin") / "proj")
    index_project(cfgmod.init_project(origin))
    archive = tmp_path_factory.mktemp("archive") / "index.cidx"
    export_generation(origin / ".code-indexer" / "config.json", archive)
    return origin, archive


def _copy(origin: Path, dest: Path) -> Path:
    """Another copy of the project: the files, not the index (new mtimes, as a clone has)."""
    shutil.copytree(origin, dest, ignore=shutil.ignore_patterns(".code-indexer"))
    for path in dest.rglob("*"):
        if path.is_file():
            path.touch()
    return cfgmod.init_project(dest)


def _answers(config: Path) -> list:
    engine = Engine(config)
    out = []
    for request in ({"query": "retry with backoff"}, {"query": "urlopen", "fts": True},
                    {"query": "sort a list", "fts": True, "semantic": True}):
        doc = engine.query(request)
        assert doc["error"] is None
        out.append([(r["path"], r["start_line"], r["end_line"], r["score"]) for r in doc["results"]])
    return out


def test_an_imported_index_answers_the_same_and_nothing_is_re_embedded(exported, tmp_path: Path) -> None:
    origin, archive = exported
    config = _copy(origin, tmp_path / "copy")
    gen = import_generation(config, archive)
    assert len(gen) == len(Engine(origin / ".code-indexer" / "config.json").current()[0])
    assert _answers(config) == _answers(origin / ".code-indexer" / "config.json")
    stats = index_project(config)
    assert stats.embedded == 0 and stats.unchanged, stats
    (tmp_path / "copy" / "net" / "fetch.py").write_text("def only_in_the_copy():\n    pass\n")
    again = index_project(config)
    assert again.changed_files == 1 and again.embedded == 1  # only what differs


def test_the_cli_round_trip(exported, tmp_path: Path) -> None:
    origin, _ = exported
    archive = tmp_path / "out.cidx"
    proc = daemon_cli("export", str(archive), cwd=origin)
    assert proc.stdout.startswith("Exported gen-") and archive.is_file()
    _copy(origin, tmp_path / "copy")
    proc = daemon_cli("import", str(archive), cwd=tmp_path / "copy")
    assert proc.stdout.startswith(f"Imported {archive} as gen-")


def _rewrite(archive: Path, dest: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """A copy of the archive with its members passed through ``change(name, data) -> (name, data)``."""
    with tarfile.open(archive) as src, tarfile.open(dest, "w") as out:
        for member in src:
            data = src.extractfile(member).read()
            name, data = change(member.name, data)
            if name is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dest


def _flip_vector_byte(name: str, data: bytes) -> tuple[str, bytes]:
    if name.endswith("vectors.npy"):
        data = data[:-1] + bytes([data[-1] ^ 1])
    return name, data


@pytest.mark.parametrize(("change", "needle"), [
    (_flip_vector_byte, "checksum mismatch"),
    (lambda n, d: (n.replace("generation/", "generation/../../", 1) if n.endswith("rows.npy") else n, d),
     "unexpected member"),
    (lambda n, d: ((None, d) if n.endswith("cids.npy") else (n, d)), "lacks"),
    (lambda n, d: (n, d + b"x") if n.endswith("text.bin") else (n, d), "the manifest says"),
    (lambda n, d: (n, b"{}") if n == "manifest.json" else (n, d), "bad or newer manifest"),
])
def test_a_damaged_or_hostile_archive_is_refused_and_nothing_changes(exported, tmp_path: Path, change,
                                                                    needle: str) -> None:
    origin, archive = exported
    config = _copy(origin, tmp_path / "copy")
    bad = _rewrite(archive, tmp_path / "bad.cidx", change)
    with pytest.raises(PortableError, match=needle):
        import_generation(config, bad)
    idx = config.parent / "index"
    assert not (idx / "CURRENT").exists() and not [p for p in idx.iterdir() if p.name.startswith("gen-")]
    assert not (tmp_path / "copy" / "rows.npy").exists() and not (tmp_path / "rows.npy").exists()


def test_an_archive_of_another_embedder_is_refused(exported, tmp_path: Path) -> None:
    origin, archive = exported
    config = _copy(origin, tmp_path / "copy")
    cfg = json.loads(config.read_text())
    cfg["index"]["embedder"] = "minilm-other"
    config.write_text(json.dumps(cfg))
    with pytest.raises(PortableError, match="its vectors would not match"):
        import_generation(config, archive)


def test_an_import_seeds_the_embedding_cache_for_the_next_clone(exported, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    origin, archive = exported
    monkeypatch.setenv("CIDX_CACHE_DIR", str(tmp_path / "empty-cache"))  # nothing embedded here yet
    gen = import_generation(_copy(origin, tmp_path / "imported"), archive)
    assert gen.n_embedded == len(gen) > 0
    # the functions' signature vectors too (signatures.py): nothing at all is left to embed
    from cidx_daemon.index import signatures as sigs
    from cidx_daemon.index.embed_cache import default_cache, text_key

    keys = [text_key(t) for row in range(len(gen)) for t in sigs.texts_for(gen.table, row)]
    assert gen.signatures is not None and len(keys) == len(gen.signatures) > 0
    found = default_cache().get_many(gen.meta["model"], keys, int(gen.meta["dim"]))
    assert len(found) == len(set(keys))
    # a second clone that imports nothing: every chunk's vector comes from the seeded cache
    stats = index_project(_copy(origin, tmp_path / "second"))
    assert stats.embedded == 0 and stats.cache_hits == stats.chunks == len(gen), stats
