"""Build a new index generation: walk, chunk, embed (only what changed), FTS, publish.

Incremental rule: a file whose (size, mtime) or content hash matches the
previous generation keeps its chunks *and their vectors*: embedding is the
only expensive step (~20 chunks/s on two cores), so it is the one we skip.
A change of embedder or chunk size invalidates everything (meta.json records
both). The full-text index is rebuilt per generation: it is seconds of work
and keeps every generation self-contained and immutable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cidx_daemon.index import generation as gens
from cidx_daemon.index.chunk_table import ChunkTable, ChunkTableWriter
from cidx_daemon.index.chunking import chunk_text
from cidx_daemon.index.walk import content_hash, read_source, walk_project
from cidx_shared import config as cfgmod

META_VERSION = 1


class Progress(Protocol):
    """What the indexer reports; the CLI draws it with rich, tests pass None."""

    def phase(self, name: str, total: int | None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def note(self, message: str) -> None: ...


class _Silent:
    def phase(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        pass


@dataclass
class IndexStats:
    generation: str
    files: int = 0
    chunks: int = 0
    embedded: int = 0
    reused_files: int = 0
    changed_files: int = 0
    deleted_files: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def load_meta(gen_dir: Path) -> dict[str, Any]:
    return json.loads((Path(gen_dir) / "meta.json").read_text(encoding="utf-8"))


def index_project(
    config_path: Path,
    *,
    clear: bool = False,
    progress: Progress | None = None,
    embedder_factory: Callable[[str], Any] | None = None,
) -> IndexStats:
    """Index the project of ``config_path`` into a new generation and switch to it."""
    progress = progress or _Silent()
    cfg = cfgmod.load_config(config_path)
    root = cfgmod.project_root(config_path)
    cdir = cfgmod.config_dir(config_path)
    idx = gens.index_dir(cdir)
    idx.mkdir(mode=0o700, exist_ok=True)
    icfg = cfg["index"]
    with gens.index_lock(cdir):
        gens.prune(idx)
        old_dir = None if clear else gens.current_path(idx)
        old = _Previous.open(old_dir, icfg) if old_dir else None
        name = gens.next_name(idx)
        stats = IndexStats(generation=name)
        staged = gens.staging_dir(idx, name)
        t0 = time.perf_counter()

        writer = ChunkTableWriter()
        reuse: list[tuple[int, int, int]] = []  # (new_first_row, old_first_row, n)
        new_rows: list[int] = []
        new_texts: list[str] = []

        def skipped(path: str, reason: str) -> None:
            stats.skipped[reason] = stats.skipped.get(reason, 0) + 1

        progress.phase("Scanning files", None)
        for sf in walk_project(root, max_file_bytes=icfg["max_file_bytes"],
                               extra_ignores=icfg["exclude"], on_skip=skipped):
            progress.advance()
            prev = old.files.get(sf.rel_path) if old else None
            if prev is not None and prev.size == sf.size and prev.mtime_ns == sf.mtime_ns:
                _copy_file(writer, old, prev, sf, prev.hash, reuse)
                stats.reused_files += 1
                continue
            try:
                text = read_source(sf.abs_path)
            except OSError as exc:
                skipped(sf.rel_path, f"unreadable ({exc.strerror or exc})")
                continue
            if text is None:
                skipped(sf.rel_path, "binary")
                continue
            digest = content_hash(text)
            if prev is not None and prev.hash == digest:
                _copy_file(writer, old, prev, sf, digest, reuse)
                stats.reused_files += 1
                continue
            chunks = chunk_text(text, max_chars=icfg["chunk_max_chars"])
            first = writer.n_rows
            writer.add_file(sf.rel_path, sf.language, digest, sf.size, sf.mtime_ns,
                            ((c.start_line, c.end_line, c.text) for c in chunks))
            new_rows.extend(range(first, first + len(chunks)))
            new_texts.extend(c.text for c in chunks)
            stats.changed_files += 1
        stats.files = len(writer.files)
        stats.chunks = writer.n_rows
        if old:
            stats.deleted_files = len(set(old.files) - {f.path for f in writer.files})
        t_walk = time.perf_counter()

        embedder_name = icfg["embedder"]
        if new_texts:
            factory = embedder_factory or _default_embedder
            embedder = factory(embedder_name)
            progress.phase("Embedding chunks", len(new_texts))
            new_vectors = embedder.embed_documents(new_texts, progress=progress.advance)
            dim, model = embedder.dim, embedder.name
        else:
            new_vectors = None
            dim = old.dim if old else 384
            model = old.model if old else embedder_name
        vectors = np.zeros((writer.n_rows, dim), dtype=np.float32)
        for new_first, old_first, n in reuse:
            vectors[new_first:new_first + n] = old.vectors[old_first:old_first + n]
        if new_vectors is not None:
            vectors[np.asarray(new_rows, dtype=np.int64)] = new_vectors
        stats.embedded = len(new_texts)
        t_embed = time.perf_counter()

        writer.write(staged)
        np.save(staged / "vectors.npy", vectors)
        table = ChunkTable(staged)
        progress.phase("Full-text index", len(table))
        _build_fts(staged / "fts", table, progress)
        t_fts = time.perf_counter()

        stats.timings_s = {
            "walk_chunk": round(t_walk - t0, 3),
            "embed": round(t_embed - t_walk, 3),
            "fts": round(t_fts - t_embed, 3),
        }
        meta = {
            "meta_version": META_VERSION,
            "generation": name,
            "created_at": time.time(),
            "embedder": embedder_name,
            "model": model,
            "dim": dim,
            "chunk_max_chars": icfg["chunk_max_chars"],
            "files": stats.files,
            "chunks": stats.chunks,
            "stats": stats.to_json(),
        }
        cfgmod.write_json_atomic(staged / "meta.json", meta)
        gens.publish(idx, staged, name)
        gens.prune(idx)
        stats.timings_s["total"] = round(time.perf_counter() - t0, 3)
        return stats


def _default_embedder(name: str) -> Any:
    from cidx_daemon.search.embedding import load_embedder

    return load_embedder(name)


def _build_fts(directory: Path, table: ChunkTable, progress: Progress) -> None:
    from cidx_daemon.search.fts import FtsDoc, build_fts_index

    def docs():  # type: ignore[no-untyped-def]
        for row in range(len(table)):
            rec = table.file_of(row)
            start, _end = table.lines(row)
            yield FtsDoc(row=row, path=rec.path, language=rec.language, start_line=start,
                         text=table.text(row))

    directory.mkdir()
    build_fts_index(directory, docs(), progress=progress.advance)


def _copy_file(writer: ChunkTableWriter, old: _Previous, prev: Any, sf: Any, digest: str,
               reuse: list[tuple[int, int, int]]) -> None:
    first = writer.n_rows
    rows = range(prev.first_row, prev.first_row + prev.n_rows)
    writer.add_file(sf.rel_path, sf.language, digest, sf.size, sf.mtime_ns,
                    ((*old.table.lines(r), old.table.text(r)) for r in rows))
    if prev.n_rows:
        reuse.append((first, prev.first_row, prev.n_rows))


class _Previous:
    """The generation we are updating, if it is compatible with the current settings."""

    def __init__(self, gen_dir: Path, meta: dict[str, Any]) -> None:
        self.table = ChunkTable(gen_dir)
        self.files = self.table.by_path()
        self.vectors = np.load(gen_dir / "vectors.npy", mmap_mode="r")
        self.dim = int(meta["dim"])
        self.model = str(meta["model"])

    @classmethod
    def open(cls, gen_dir: Path, icfg: dict[str, Any]) -> _Previous | None:
        try:
            meta = load_meta(gen_dir)
        except (OSError, ValueError):
            return None
        if (meta.get("meta_version") != META_VERSION or meta.get("embedder") != icfg["embedder"]
                or meta.get("chunk_max_chars") != icfg["chunk_max_chars"]):
            return None
        return cls(gen_dir, meta)
