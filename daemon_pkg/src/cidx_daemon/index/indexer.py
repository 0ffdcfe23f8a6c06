"""Build the next index generation: scan and reuse, assemble and publish, embed, publish again.

Theory of operation
-------------------
Embedding is the only slow step (tens of chunks a second on a laptop), so the
indexer is organised around never waiting for it and never repeating it:

1. **Scan and reuse** (``scan``): walk the project; a file whose (size, mtime)
   or content hash matches the previous generation keeps its rows, chunk ids,
   text and vector; every other file is read and chunked into new rows with new
   chunk ids. Carried-over rows keep their order and new rows follow, so chunk
   ids ascend through the table (what lets the full-text index carry over).
2. **Assemble and publish** (``assemble``, ``generation.publish``): write the
   chunk table, the vectors known so far (carried over) with the ``embedded``
   mask, and the full-text index,
   incrementally from the previous one when it is compatible. Full-text search
   (and everything but the not-yet-embedded rows of semantic search) works from
   here, seconds after the start.
3. **Embed** (``embed_pending``): the rows without a vector, code before tests,
   docs, examples and vendored files (``code_first``), in batches, each
   looked up first in the user's embedding cache (``embed_cache``: shared by every
   project, branch and clone, keyed by model and text) so only misses reach the
   model; every
   ``checkpoint_s`` and at the end a generation with the new vectors is
   published, which only writes the vectors: the rest is hard-linked. Vectors are
   applied by chunk id to whatever generation is live *then*, so an embedding run
   may overlap with newer full-text-first generations (the daemon's watcher
   publishes them while it embeds) without losing or misplacing a vector.

A watcher that knows which paths changed passes them as ``changed``: only those are
stat-ed, read and chunked (``walk.check_paths`` applies the walk's rules to each),
everything else carries over untouched, so a saved file is searchable by full text
in well under a second whatever the size of the project.

A run that finds nothing changed and nothing pending publishes nothing: the live
generation stays. A change of embedder or chunker invalidates everything
(``meta.json`` records both), and so does a previous generation that does not
verify: the indexer never trusts a damaged index, it rebuilds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cidx_daemon.index import generation as gens
from cidx_daemon.index import signatures as sigs
from cidx_daemon.index import vector_store
from cidx_daemon.index.chunk_table import (
    COLUMN_FILES,
    OPTIONAL_COLUMN_FILES,
    ChunkTable,
    ChunkTableWriter,
    FileRecord,
    encode_symbols,
)
from cidx_daemon.index.chunking import chunk_file
from cidx_daemon.index.embed_cache import EmbeddingCache, text_key
from cidx_daemon.index.walk import check_paths, content_hash, read_source, walk_project, walk_settings
from cidx_daemon.search.fts.analyzer import PreparedStreams, StreamBuilder
from cidx_shared import config as cfgmod

#: Bump when chunk boundaries change for the same input: the next index re-chunks everything.
CHUNKER_VERSION = "syntax-1"
CHECKPOINT_S = 30.0
EMBED_BATCH = 256
#: Chunks to embed from which a run says that full text already answers (~20 s of embedding).
LONG_EMBED_CHUNKS = 1000
#: A daemon probing the embedding lease holds it for an instant; a second ``cidx index`` never waits long.
EMBED_LEASE_WAIT_S = 5.0
PRUNE_LOCK_WAIT_S = 5.0


class Progress(Protocol):
    """What the indexer reports; the CLI draws it, tests pass None."""

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
    #: chunks the model embedded in this run (cache misses)
    embedded: int = 0
    #: chunks whose vectors came from the embedding cache instead
    cache_hits: int = 0
    #: function texts (signatures; in a shared chunk also their code) the model embedded in this
    #: run (cache misses; ``signatures``)
    signatures_embedded: int = 0
    pending: int = 0
    reused_files: int = 0
    changed_files: int = 0
    deleted_files: int = 0
    unchanged: bool = False
    skipped: dict[str, int] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Plan:
    """What ``scan`` found: the new chunk table, and how it relates to the previous one."""

    writer: ChunkTableWriter
    #: (new first row, old first row, n) blocks whose vectors carry over.
    carried: list[tuple[int, int, int]]
    new_rows: list[int]
    removed_cids: list[int]
    next_cid: int
    changed: bool
    #: The new rows' full-text streams, made beside their chunks (``chunk_all``).
    streams: PreparedStreams = field(default_factory=PreparedStreams)


def index_project(
    config_path: Path,
    *,
    clear: bool = False,
    embed: bool = True,
    changed: Iterable[str] | None = None,
    progress: Progress | None = None,
    embedder_factory: Callable[[str], Any] | None = None,
    checkpoint_s: float = CHECKPOINT_S,
    lock_wait_s: float = 30.0,
    workers: int = 1,
) -> IndexStats:
    """Index the project of ``config_path`` (see the module docstring); ``embed=False``
    stops after the full-text-first generation, leaving its vectors pending; ``changed``
    (project-relative paths) limits the scan to those paths when a previous generation
    exists; ``lock_wait_s`` waits that long for another indexer to finish (a daemon holds the
    lock only while it publishes; a second ``cidx index`` holds it for its whole run).
    ``workers`` > 1 reads and chunks a big scan in that many forked processes (see
    ``chunk_all``): for a single-threaded caller such as the CLI, never for the daemon."""
    progress = progress or _Silent()
    cfg = cfgmod.load_config(config_path)
    root = cfgmod.project_root(config_path)
    cdir = cfgmod.config_dir(config_path)
    idx = gens.index_dir(cdir)
    idx.mkdir(mode=0o700, exist_ok=True)
    icfg = cfg["index"]
    with gens.index_lock(cdir, wait_s=lock_wait_s):
        gens.prune(idx)
        previous, damaged = (None, False) if clear else _previous(idx, icfg, progress)
        t0 = time.perf_counter()
        stats = IndexStats(generation=previous.name if previous else "")
        progress.phase("Scanning files", None)
        if changed is not None and previous is not None and not damaged:
            plan = scan_changed(root, icfg, previous, set(changed), stats)
        else:
            plan = scan(root, icfg, previous, stats, progress, workers=workers)
        plan.changed |= damaged  # repair: publish a sound generation and a sound pointer
        t_scan = time.perf_counter()
        # rows without a vector, or without their signatures' (an index made before them)
        pending_before = previous is not None and (previous.n_embedded < len(previous)
                                                   or previous.n_unsigned > 0)
        if previous is not None and not plan.changed and not (embed and pending_before):
            stats.unchanged = True
            stats.embedded, stats.pending = 0, len(previous) - previous.n_embedded
            stats.timings_s = {"scan": round(t_scan - t0, 3), "total": round(t_scan - t0, 3)}
            return stats
        embedder_name = icfg["embedder"]
        if previous is not None and not plan.changed:  # only vectors are missing: keep the rest
            table_dir = previous.path
            stats.pending = len(previous) - previous.n_embedded
        else:
            table_dir = assemble(idx, plan, previous, icfg, stats, progress)
        t_fts = time.perf_counter()
        stats.timings_s = {"scan": round(t_scan - t0, 3), "fts_first": round(t_fts - t_scan, 3)}
        # opened under the lock: once it is released a newer generation may prune this one (the
        # open table's maps outlive its files)
        todo_gen = gens.open_generation(table_dir, with_fts=False) if embed else None
        if todo_gen is not None and todo_gen.n_embedded == len(todo_gen) and not todo_gen.n_unsigned:
            todo_gen = None
    # The lock is released: embedding takes minutes, and meanwhile the daemon's watcher keeps
    # publishing saved files (vectors are applied by chunk id to whatever is live then).
    if todo_gen is not None:
        _embed_run(idx, cdir, todo_gen, embedder_name, stats, progress, embedder_factory, checkpoint_s)
    stats.timings_s["embed"] = round(time.perf_counter() - t_fts, 3)
    stats.timings_s["total"] = round(time.perf_counter() - t0, 3)
    try:
        with gens.index_lock(cdir, wait_s=PRUNE_LOCK_WAIT_S):
            gens.prune(idx)
    except gens.IndexLockedError:
        pass  # another indexer is publishing: the next run prunes
    return stats


def _embed_run(idx: Path, cdir: Path, gen: gens.Generation, embedder_name: str, stats: IndexStats,
               progress: Progress, embedder_factory: Callable[[str], Any] | None,
               checkpoint_s: float) -> None:
    """Embed ``gen``'s pending rows under the embedding lease; if another ``cidx index``
    holds it, say so and leave them pending (waiting could mean minutes of silence)."""
    try:
        with gens.embed_lease(cdir, wait_s=EMBED_LEASE_WAIT_S):
            if stats.pending >= LONG_EMBED_CHUNKS:  # minutes of work: say what answers meanwhile
                progress.note(f"Full text is searchable now ({stats.generation}); embedding "
                              f"{stats.pending:,} chunks for semantic search, which covers what is "
                              "embedded so far. Interrupting is safe: the next run resumes.")
            embedder = (embedder_factory or _default_embedder)(embedder_name)
            # A remote pool (RayEmbedder) asks for bigger calls: 256 chunks cannot keep 64 actors busy.
            embed_pending(idx, cdir, embedder, stats, progress, checkpoint_s, gen=gen,
                          batch=getattr(embedder, "call_batch", EMBED_BATCH))
    except gens.EmbedLeaseTaken as exc:
        progress.note(f"note: {exc}: {stats.pending:,} chunks stay pending (searchable by full text) "
                      "until it ends; run 'cidx index' again then")


def _default_embedder(name: str) -> Any:
    from cidx_daemon.search.embedding import load_embedder

    return load_embedder(name)


def _previous(idx: Path, icfg: dict[str, Any], progress: Progress) -> tuple[gens.Generation | None, bool]:
    """(the generation to update, whether the index was damaged).

    The live generation if it verifies (else the fallback ``open_live`` finds) and was
    made with the current settings; None means build from scratch.
    """
    gen, warnings = gens.open_live(idx, with_fts=False)
    for warning in warnings:
        progress.note(f"warning: {warning}")
    damaged = bool(warnings)
    if gen is None:
        return None, damaged
    meta = gen.meta
    if (meta.get("embedder") != icfg["embedder"] or meta.get("chunker") != CHUNKER_VERSION
            or meta.get("chunk_max_chars") != icfg["chunk_max_chars"]):
        return None, damaged
    if gen.n_embedded and meta.get("model") != expected_model(icfg["embedder"]):
        # Same setting, another model behind it (e.g. "minilm" was fp32 before it was int8):
        # its vectors cannot be compared with this model's queries, so none carries over.
        return None, damaged
    return gen, damaged


def expected_model(embedder: str) -> str:
    """The model name `embedder` produces (the setting itself for a name the registry lacks,
    which then fails with a clear message when it is loaded)."""
    from cidx_daemon.search.embedding import model_name

    return model_name(embedder) or embedder


# --------------------------------------------------------------------------- 1. scan and reuse


def scan(root: Path, icfg: dict[str, Any], previous: gens.Generation | None, stats: IndexStats,
         progress: Progress, *, workers: int = 1) -> Plan:
    """Walk, reuse what did not change, chunk what did (see the module docstring)."""
    old_files = previous.table.by_path() if previous else {}
    carried: list[tuple[FileRecord, int, int]] = []  # (old record, size, mtime)
    fresh: list[_Fresh] = []

    def skipped(path: str, reason: str) -> None:
        stats.skipped[reason] = stats.skipped.get(reason, 0) + 1

    tokens: set[str] = set()
    seen: set[str] = set()
    to_read: list[tuple[Any, FileRecord | None]] = []
    known = {path: (rec.size, rec.mtime_ns, rec.language) for path, rec in old_files.items()}
    for sf in walk_project(root, on_skip=skipped, known=known, **walk_settings(icfg)):
        seen.add(sf.rel_path)
        prev = old_files.get(sf.rel_path)
        if prev is not None and prev.size == sf.size and prev.mtime_ns == sf.mtime_ns:
            carried.append((prev, sf.size, sf.mtime_ns))
            progress.advance()
            continue
        to_read.append((sf, prev))
    for (sf, prev), outcome in zip(to_read, chunk_all(to_read, icfg, workers), strict=True):
        progress.advance()
        if outcome[0] == "skip":
            skipped(sf.rel_path, outcome[1])
        elif outcome[0] == "same":
            carried.append((prev, sf.size, sf.mtime_ns))  # type: ignore[arg-type]
        else:
            fresh.append((sf, outcome[1], outcome[2], outcome[3]))
            tokens.update(outcome[4])

    return _plan(previous, old_files, carried, fresh, seen, stats, tokens)


#: Files to chunk before a worker pool pays for itself (forking and collecting the chunks).
POOL_MIN_FILES = 200
#: ("skip", reason) | ("same",) | ("fresh", hash, chunks, streams per chunk, new tokens)
_Outcome = tuple[Any, ...]
_Fresh = tuple[Any, str, list[Any], list[tuple[str, str]]]  # (source file, hash, chunks, streams)
_worker_streams: StreamBuilder | None = None  # a worker process's own (see ``_worker_init``)


def chunk_all(jobs: list[tuple[Any, FileRecord | None]], icfg: dict[str, Any],
              workers: int) -> Iterator[_Outcome]:
    """``_outcome`` of every (source file, previous record), in order.

    Reading and chunking (tree-sitter and Python) is most of a first index's wait for full
    text: Django's 5,421 files took 9.8 s on one core. With ``workers`` > 1 and enough files
    they are chunked in forked processes, results in order. Fork only, and only for a
    single-threaded caller: a forked child of a threaded process (the daemon) may inherit a
    lock held by another thread. Linux only: macOS' system libraries are not fork-safe and
    its default, spawn, would re-run a packed entry point; elsewhere chunking stays here.

    The chunks' full-text streams are made here too, beside the chunks: in the workers that
    is work taken off the full-text build, which runs alone after the scan.
    """
    import multiprocessing

    jobs_ = [(sf, prev.hash if prev else None, prev.language if prev else None, icfg["chunk_max_chars"])
             for sf, prev in jobs]
    if workers <= 1 or len(jobs_) < POOL_MIN_FILES or not sys.platform.startswith("linux"):
        streams = StreamBuilder()
        yield from (_outcome(job, streams) for job in jobs_)
        return
    with multiprocessing.get_context("fork").Pool(min(workers, len(jobs_)), initializer=_worker_init) as pool:
        yield from pool.imap(_outcome, jobs_, chunksize=8)


def _worker_init() -> None:
    """Ctrl-C is the parent's to handle (it stops the pool): a worker printing its own
    KeyboardInterrupt traceback would break the one-line rule."""
    import signal

    global _worker_streams
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_streams = StreamBuilder()


def _outcome(job: tuple[Any, str | None, str | None, int], streams: StreamBuilder | None = None) -> _Outcome:
    """Read and chunk one file (a top-level function: a worker process runs it)."""
    sf, prev_hash, prev_language, max_chars = job
    try:
        text = read_source(sf.abs_path)
    except OSError as exc:
        return ("skip", f"unreadable ({exc.strerror or exc})")
    if text is None:
        return ("skip", "binary")
    digest = content_hash(text)
    if prev_hash == digest and prev_language == sf.language:
        return ("same",)
    builder = streams or _worker_streams or StreamBuilder()
    chunks = chunk_file(text, sf.language, path=sf.rel_path, max_chars=max_chars)
    return ("fresh", digest, chunks, [builder.streams(c.text) for c in chunks], builder.new_tokens())


def scan_changed(root: Path, icfg: dict[str, Any], previous: gens.Generation, changed: set[str],
                 stats: IndexStats) -> Plan:
    """``scan`` for a known set of changed paths: the rest of ``previous`` carries over unread."""
    old_files = previous.table.by_path()

    def skipped(path: str, reason: str) -> None:
        stats.skipped[reason] = stats.skipped.get(reason, 0) + 1

    found = check_paths(root, sorted(changed), on_skip=skipped, **walk_settings(icfg))
    carried = [(rec, rec.size, rec.mtime_ns) for path, rec in old_files.items() if path not in changed]
    fresh: list[_Fresh] = []
    tokens: set[str] = set()
    jobs = [(sf, old_files.get(sf.rel_path)) for sf in found.values() if sf is not None]
    for (sf, prev), outcome in zip(jobs, chunk_all(jobs, icfg, 1), strict=True):
        if outcome[0] == "skip":
            skipped(sf.rel_path, outcome[1])
        elif outcome[0] == "same":
            carried.append((prev, sf.size, sf.mtime_ns))  # type: ignore[arg-type]
        else:
            fresh.append((sf, outcome[1], outcome[2], outcome[3]))
            tokens.update(outcome[4])
    seen = {path for path in old_files if path not in changed}
    seen |= {path for path, f in found.items() if f is not None}
    return _plan(previous, old_files, carried, fresh, seen, stats, tokens)


def _plan(previous: gens.Generation | None, old_files: dict[str, FileRecord],
          carried: list[tuple[FileRecord, int, int]], fresh: list[_Fresh],
          seen: set[str], stats: IndexStats, tokens: set[str]) -> Plan:
    """The new chunk table: carried-over files in their old order, then the new ones."""
    writer = ChunkTableWriter()
    blocks: list[tuple[int, int, int]] = []
    carried.sort(key=lambda item: item[0].first_row)  # old row order: chunk ids keep ascending
    copied = writer.copy_files(previous.table, carried) if carried else []  # type: ignore[union-attr]
    for (rec, _size, _mtime), new in zip(carried, copied, strict=True):
        if not rec.n_rows:
            continue
        if blocks and blocks[-1][0] + blocks[-1][2] == new.first_row and \
                blocks[-1][1] + blocks[-1][2] == rec.first_row:  # neighbours stay one block
            blocks[-1] = (blocks[-1][0], blocks[-1][1], blocks[-1][2] + rec.n_rows)
        else:
            blocks.append((new.first_row, rec.first_row, rec.n_rows))
    next_cid = int(previous.meta.get("next_cid", 0)) if previous else 0
    new_rows: list[int] = []
    prepared = PreparedStreams(tokens=tokens)
    for sf, digest, chunks, streams in fresh:
        first = writer.n_rows
        writer.add_file(sf.rel_path, sf.language, digest, sf.size, sf.mtime_ns,
                        ((c.start_line, c.end_line, c.text, encode_symbols(c.scope, c.symbols))
                         for c in chunks),
                        range(next_cid, next_cid + len(chunks)))
        next_cid += len(chunks)
        new_rows.extend(range(first, first + len(chunks)))
        prepared.streams.extend(streams)
    kept = {rec.path for rec, _, _ in carried}
    removed = [rec for path, rec in old_files.items() if path not in kept]
    removed_cids = [int(c) for rec in removed
                    for c in previous.table.cids[rec.first_row:rec.first_row + rec.n_rows]]  # type: ignore[union-attr]
    stats.files, stats.chunks = len(writer.files), writer.n_rows
    stats.reused_files, stats.changed_files = len(carried), len(fresh)
    stats.deleted_files = len(set(old_files) - seen)
    # Only content counts: a touched file (new mtime, same hash) is re-read by the next scan,
    # which costs far less than a new generation and a daemon reload.
    changed = bool(fresh or removed) or previous is None
    return Plan(writer, blocks, new_rows, removed_cids, next_cid, changed, prepared)


# --------------------------------------------------------------------------- 2. assemble


def assemble(idx: Path, plan: Plan, previous: gens.Generation | None, icfg: dict[str, Any],
             stats: IndexStats, progress: Progress) -> Path:
    """Write and publish the full-text-first generation; returns its directory."""
    name = gens.next_name(idx)
    staged = gens.staging_dir(idx, name)
    plan.writer.write(staged)
    table = ChunkTable(staged)
    n = len(table)
    dim = int(previous.meta["dim"]) if previous else 384
    embedded = np.zeros(n, dtype=bool)
    for new_first, old_first, count in plan.carried:
        embedded[new_first:new_first + count] = previous.embedded[old_first:old_first + count]  # type: ignore[union-attr]
    # Carried vectors stay in the previous generation's files (hard links): a save writes a row map.
    vector_store.carry(previous.vectors if previous else None, previous.path if previous else None,
                       staged, n, dim, plan.carried)
    signed = np.zeros(n, dtype=bool)
    if previous is not None and previous.signatures is not None:  # (else: none yet, or outdated)
        for new_first, old_first, count in plan.carried:
            signed[new_first:new_first + count] = previous.signed[old_first:old_first + count]  # type: ignore[index]
    sigs.carry(previous.signatures if previous else None, previous.path if previous else None,
               staged, dim, plan.carried)
    np.save(staged / sigs.SIGNED, signed)
    np.save(staged / "embedded.npy", embedded)

    from cidx_daemon.search.fts import FORMAT_VERSION as FTS_FORMAT
    from cidx_daemon.search.fts import build_fts_index

    reuse_fts = previous is not None and previous.meta.get("fts_format") == FTS_FORMAT
    progress.phase("Full-text index", len(plan.new_rows) if reuse_fts else n)
    if reuse_fts:
        build_fts_index(staged / gens.FTS_DIR, table, plan.new_rows,
                        previous=previous.path / gens.FTS_DIR,  # type: ignore[union-attr]
                        removed_cids=plan.removed_cids, progress=progress.advance, prepared=plan.streams)
    elif len(plan.new_rows) == n:  # everything is new: the streams are all made already
        build_fts_index(staged / gens.FTS_DIR, table, plan.new_rows, progress=progress.advance,
                        prepared=plan.streams)
    else:
        build_fts_index(staged / gens.FTS_DIR, table, progress=progress.advance)
    meta = {
        "generation": name,
        "created_at": time.time(),
        "embedder": icfg["embedder"],
        "model": previous.meta.get("model") if previous else expected_model(icfg["embedder"]),
        "dim": dim,
        "chunker": CHUNKER_VERSION,
        "chunk_max_chars": icfg["chunk_max_chars"],
        "files": len(table.files),
        "chunks": n,
        "embedded": int(embedded.sum()),
        "next_cid": plan.next_cid,
        "signatures": sigs.VERSION,
        "fts_format": FTS_FORMAT,
        "run": name,
        # carried while chunk ids carry; a build from scratch restarts them, so it starts a new one
        "lineage": previous.meta.get("lineage") if previous else gens.new_lineage(),
        "stats": {"reused_files": stats.reused_files, "changed_files": stats.changed_files,
                  "deleted_files": stats.deleted_files, "skipped": stats.skipped},
    }
    meta_hash = gens.write_meta(staged, meta)
    final = gens.publish(idx, staged, name, meta_hash)
    stats.generation = name
    stats.pending = n - meta["embedded"]
    return final


# --------------------------------------------------------------------------- 3. embed


def embed_pending(idx: Path, config_dir: Path, embedder: Any, stats: IndexStats, progress: Progress,
                  checkpoint_s: float = CHECKPOINT_S, *, gen: gens.Generation | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  batch: int = EMBED_BATCH, cache: EmbeddingCache | None = None) -> None:
    """Embed the rows of the live generation (or ``gen``) that have no vector; publish
    the vectors every ``checkpoint_s`` and at the end (see the module docstring). Each publish
    takes the indexer lock briefly, so an embedding run of minutes blocks nobody; it stops if
    the index it embeds for was replaced (``cidx index --clear``, ``cidx import``: chunk ids
    start afresh there, so its vectors would land on other chunks).
    ``should_stop`` is asked between batches of ``batch`` chunks (newer changes arrived:
    publish what is done); a daemon embedding behind asks often.
    ``cache`` (default: the user's, see ``embed_cache``) is asked first; only misses are
    embedded (``stats.embedded``), hits are counted in ``stats.cache_hits``.
    """
    if gen is None:
        gen = gens.open_live(idx, with_fts=False)[0]
    if gen is None:
        return
    lineage = gen.meta.get("lineage")
    embedded = np.asarray(gen.embedded)
    signed = np.asarray(gen.signed) if gen.signed is not None else np.zeros(len(gen), dtype=bool)
    todo = code_first(gen.table, np.flatnonzero(~embedded | ~signed))
    if gen.meta.get("model") != embedder.name and embedded.any():
        raise RuntimeError(f"{gen.name} holds vectors of {gen.meta.get('model')}, not {embedder.name}")
    progress.phase("Embedding chunks", len(todo))
    if cache is None:
        from cidx_daemon.index.embed_cache import default_cache

        cache = default_cache()
    warned = not cache.enabled
    ready: dict[int, tuple[np.ndarray | None, np.ndarray]] = {}
    last = time.monotonic()
    done = 0
    for start in range(0, len(todo), batch):
        rows = todo[start:start + batch]
        # each chunk's own text (unless it has its vector), then the signatures of the functions
        # it defines (``signatures``)
        need = ~embedded[rows]
        texts = [embedding_input(gen.table, int(r)) for r in rows[need]]
        bodies = len(texts)
        per_row = [sigs.texts_for(gen.table, int(r)) for r in rows]
        ends = np.cumsum([bodies] + [len(t) for t in per_row])
        texts += [t for row_texts in per_row for t in row_texts]
        counter = _PerChunk(progress, len(rows), len(texts))
        vectors, hit = _embed_through_cache(embedder, cache, texts, counter)
        counter.finish()
        hits = int(hit[:bodies].sum())  # counted by chunk; a chunk's signatures apart
        stats.cache_hits += hits
        stats.embedded += bodies - hits
        stats.signatures_embedded += int((~hit[bodies:]).sum())
        if not warned and not cache.enabled:
            progress.note(f"warning: {cache.error}")
            warned = True
        body_at = np.cumsum(need) - 1
        for i, row in enumerate(rows.tolist()):
            body = vectors[body_at[i]] if need[i] else None
            ready[int(gen.table.cids[row])] = (body, vectors[ends[i]:ends[i + 1]])
        done += len(rows)
        stop = should_stop is not None and should_stop()
        if time.monotonic() - last >= checkpoint_s or stop or done == len(todo):
            try:
                name = _apply_vectors(idx, config_dir, ready, embedder, lineage)
            except IndexReplaced:
                break  # nothing more of ours applies; the new index's own run embeds it
            stats.generation = name or stats.generation
            ready.clear()
            last = time.monotonic()
        if stop:
            break
    live = gens.open_live(idx, with_fts=False)[0]
    stats.pending = len(live) - live.n_embedded if live is not None else 0


def code_first(table: ChunkTable, rows: np.ndarray) -> np.ndarray:
    """``rows`` with the chunks of plain code first, then those of tests, examples, benchmarks,
    docs, vendored, generated and deprecated files (each group in table order).

    Until every vector exists, semantic search covers only what is embedded; ranking demotes
    those roles for code questions, so embedding the likeliest answers first makes a first
    index's semantic results useful long before it finishes (file order would embed
    ``benchmarks/`` and ``docs/`` before ``src/``).
    """
    from cidx_daemon.search.ranking import file_roles

    late = np.zeros(len(table), dtype=bool)
    for rec in table.files:
        if rec.n_rows and file_roles(rec.path) - {"reexport"}:
            late[rec.first_row:rec.first_row + rec.n_rows] = True
    rows = np.asarray(rows)
    return np.concatenate([rows[~late[rows]], rows[late[rows]]])


def embedding_input(table: ChunkTable, row: int) -> str:
    """What the embedder reads for a row: its file's path and its scope (``Session.send``)
    above its text. A method cut from its class, or a function from its module, no longer
    carries those names in its own lines; the header gives the vector the context a reader
    has (a query about "CLI commands" meets ``src/flask/cli.py``)."""
    return f"{table.header(row)}\n{table.text(row)}"


class _PerChunk:
    """Progress counted in chunks while their texts (a chunk and its signatures) are embedded."""

    def __init__(self, progress: Progress, chunks: int, texts: int) -> None:
        self.progress, self.ratio, self.carry, self.left = progress, chunks / max(1, texts), 0.0, chunks

    def advance(self, n: int = 1) -> None:
        self.carry += n * self.ratio
        step = min(self.left, int(self.carry + 1e-9))
        if step:
            self.carry -= step
            self.left -= step
            self.progress.advance(step)

    def finish(self) -> None:
        """Count what is left (rows with nothing to embed: a signed chunk without functions)."""
        if self.left:
            self.progress.advance(self.left)
            self.left = 0


def _embed_through_cache(embedder: Any, cache: EmbeddingCache, texts: list[str],
                         progress: Progress | _PerChunk) -> tuple[np.ndarray, np.ndarray]:
    """Vectors for `texts`: cached ones looked up, the misses embedded and stored.

    Returns (vectors in `texts` order, which were cache hits). Keys hash the text exactly
    as it is embedded, and the model name is part of the key, so a hit is always the
    vector this embedder would compute (to within the model's run-to-run rounding).
    """
    keys = [text_key(t) for t in texts]
    found = cache.get_many(embedder.name, keys, embedder.dim)
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    missing = [i for i, key in enumerate(keys) if key not in found]
    hits = len(texts) - len(missing)
    for i, key in enumerate(keys):
        if key in found:
            out[i] = found[key]
    if hits:
        progress.advance(hits)
    if missing:
        fresh = embedder.embed_documents([texts[i] for i in missing], progress=progress.advance)
        out[missing] = fresh
        cache.put_many(embedder.name, [(keys[i], fresh[n]) for n, i in enumerate(missing)])
    hit = np.ones(len(texts), dtype=bool)
    hit[missing] = False
    return out, hit


class IndexReplaced(Exception):
    """The live index is not the one the vectors were computed for (see ``_apply_vectors``)."""


def _apply_vectors(idx: Path, config_dir: Path, ready: dict[int, tuple[np.ndarray | None, np.ndarray]],
                   embedder: Any, lineage: str | None) -> str | None:
    """Publish a generation identical to the live one but for the vectors of ``ready``
    (by chunk id; ids the live generation no longer holds are dropped). Returns its name.

    Chunk ids are only comparable within one lineage (the generations grown from one build
    from scratch); raises IndexReplaced if the live generation is of another one."""
    if not ready:
        return None
    with gens.index_lock(config_dir, wait_s=60.0):
        gen = gens.open_live(idx, with_fts=False)[0]
        if gen is None or gen.meta.get("lineage") != lineage:  # removed (cidx clean) or rebuilt
            raise IndexReplaced(gen.name if gen else "no index")
        cids = np.asarray(gen.table.cids)
        wanted = np.fromiter(ready, dtype=np.uint64, count=len(ready))
        pos = np.searchsorted(cids, wanted)
        inside = pos < len(cids)
        hit = np.zeros(len(wanted), dtype=bool)
        hit[inside] = cids[pos[inside]] == wanted[inside]
        if not hit.any():
            return None
        rows = pos[hit]
        found = [ready[cid] for cid in wanted[hit].tolist()]
        with_body = np.array([body is not None for body, _ in found], dtype=bool)
        bodies = np.array([body for body, _ in found if body is not None], dtype=np.float32)
        counts = np.array([len(signed) for _, signed in found], dtype=np.int64)
        slots = np.concatenate([s for _, s in found] + [np.zeros((0, embedder.dim), np.float32)])
        embedded = np.array(gen.embedded)
        embedded[rows[with_body]] = True
        signed = np.array(gen.signed) if gen.signed is not None else np.zeros(len(gen), dtype=bool)
        signed[rows] = True
        return _publish_vectors(idx, gen, rows[with_body], bodies.reshape(-1, embedder.dim), embedded,
                                embedder, (rows, counts, slots.astype(np.float32, copy=False)), signed).name


def _publish_vectors(idx: Path, gen: gens.Generation, rows: np.ndarray, vectors: np.ndarray,
                     embedded: np.ndarray, embedder: Any, slots: tuple[np.ndarray, np.ndarray, np.ndarray],
                     signed: np.ndarray) -> Path:
    """A generation identical to ``gen`` but for ``vectors`` at ``rows`` and the signature
    vectors ``slots`` = (rows, count per row, vectors), whose rows are then ``signed``:
    everything else is hard-linked, and the vectors are appended to the shared ones
    (``vector_store``)."""
    name = gens.next_name(idx)
    staged = gens.staging_dir(idx, name)
    for column in COLUMN_FILES:
        gens.link_or_copy(gen.path / column, staged / column)
    for column in OPTIONAL_COLUMN_FILES:
        if (gen.path / column).exists():
            gens.link_or_copy(gen.path / column, staged / column)
    gens.link_tree(gen.path / gens.FTS_DIR, staged / gens.FTS_DIR)
    if len(rows):
        vector_store.with_new_vectors(gen.vectors, gen.path, staged, rows, vectors)
    else:  # only signatures (an index made before them): the chunks' vectors are as they were
        vector_store.link_all(gen.path, staged)
    sigs.with_new(gen.signatures, gen.path, staged, *slots)
    np.save(staged / "embedded.npy", embedded)
    np.save(staged / sigs.SIGNED, signed)
    meta = {k: v for k, v in gen.meta.items() if k not in ("format", "sizes")}
    meta.update(generation=name, created_at=time.time(), model=embedder.name, dim=int(embedder.dim),
                embedded=int(embedded.sum()), signatures=sigs.VERSION)
    return gens.publish(idx, staged, name, gens.write_meta(staged, meta))
