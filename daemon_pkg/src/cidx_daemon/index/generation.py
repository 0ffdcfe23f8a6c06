"""Index generations on disk: the one format, built aside, switched by a pointer, verified on open.

Theory of operation
-------------------
``.code-indexer/index/`` holds immutable generation directories (``gen-000007/``)
and one pointer file, ``CURRENT``, naming the live one and the SHA-256 of its
``meta.json``.

* A generation is complete and self-describing: ``meta.json`` records the format,
  the embedder and chunker that made it, the counts, and the size of every data
  file in it (chunk table, vectors, embedded mask, full-text index).
* An indexer builds ``gen-NNNNNN.tmp-<pid>/`` completely, renames it to
  ``gen-NNNNNN`` and only then replaces ``CURRENT`` (write aside + rename).
  ``kill -9`` at any moment therefore leaves ``CURRENT`` naming a complete
  generation; the leftover ``.tmp-*`` directory is removed by the next indexer.
* Files that did not change between two generations are hard links, never
  copies: a generation that only adds vectors writes only the vectors.
* Every open verifies (``open_generation``): the pointer parses, the meta's hash
  matches, every file has its recorded size, the arrays agree on the row count,
  and the full-text index opens with that many documents. A damaged live
  generation is skipped for the newest older one that verifies, with a warning
  (``open_live``); ``status`` reports it; ``cidx index`` always writes a fresh
  generation without reading the damaged one. Nothing here trusts a byte it did
  not check: a project's index is as untrusted as its files.
* Readers (the daemon, a standalone query) resolve ``CURRENT`` once per query;
  a ``stat`` of it (inode + mtime) is the cheap change check the daemon makes.
* Two indexers are kept apart by an advisory ``flock`` on ``.code-indexer/index.lock``,
  held while a generation is built and published (seconds), never while embedding; the
  holder writes its pid and start time into the file so the loser can say who. Embedding
  has a lease of its own (``embed.lock``): the process holding it embeds the pending
  chunks and others leave them to it.
* The newest generation of the previous index run is kept (a reader may still
  have it open, and it is the fallback); older ones are deleted after a switch.
  Generations share unchanged files by hard link (siblings of one run most of
  theirs; across runs the full-text segments and the vector base), so damage to
  a shared file (truncated in place) is damage to each: the fallback covers a bad
  pointer, a bad meta, lost files and a bad file of the live generation's own;
  ``cidx index`` covers the rest (it never links a file of a damaged generation).

Layout of one generation::

    meta.json      format, generation, created_at, embedder, model, dim, chunker, run,
                   lineage (``new_lineage``), counts, sizes of every file below
    files.json rows.npy cids.npy text.bin text_off.npy    the chunk table (chunk_table.py)
    vectors.npy    float32, L2-normalised: the vectors, dense (n, dim; rows not yet embedded
                   are zero) or, with vector_rows.npy and vectors_delta.npy, shared with earlier
                   generations by hard link and mapped by row (``vector_store``)
    sig_owner.npy sig_vectors.npy ...   the functions' signature vectors (``signatures``)
    embedded.npy   bool (n,): which rows have their vector (semantic search covers those)
    fts/           the full-text index (search/fts): inverted lists keyed by chunk id
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cidx_daemon.index import signatures as sigs
from cidx_daemon.index.chunk_table import COLUMN_FILES, ChunkTable
from cidx_daemon.index.signatures import Signatures
from cidx_daemon.index.vector_store import Vectors, open_vectors

POINTER = "CURRENT"
PREFIX = "gen-"
META = "meta.json"
FORMAT_VERSION = 4
#: Formats this version opens: 2 predates the shared vector files (``vector_store``), whose
#: absence is its dense layout; 3 predates signature vectors (``signatures``; none is read).
READABLE_FORMATS = (2, 3, 4)
VECTOR_FILES = ("vectors.npy", "embedded.npy")
FTS_DIR = "fts"


class IndexLockedError(RuntimeError):
    """Another indexer holds the lock."""


class DamagedGeneration(RuntimeError):
    """A generation failed verification; the message says what is wrong, in one line."""


def index_dir(config_dir: Path) -> Path:
    return Path(config_dir) / "index"


# --------------------------------------------------------------------------- the pointer


def read_pointer(idx_dir: Path) -> tuple[str, str | None] | None:
    """(generation name, meta hash or None) from CURRENT; None when there is no pointer.

    Raises DamagedGeneration for a pointer that exists but is not one of ours.
    """
    try:
        raw = (Path(idx_dir) / POINTER).read_bytes()[:4096]
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DamagedGeneration(f"cannot read {POINTER}: {exc.strerror or exc}") from None
    try:
        lines = raw.decode("ascii").split()
    except UnicodeDecodeError:
        raise DamagedGeneration(f"{POINTER} holds garbage") from None
    if not lines or not _valid_name(lines[0]) or len(lines) > 2:
        raise DamagedGeneration(f"{POINTER} holds garbage")
    return lines[0], (lines[1] if len(lines) == 2 else None)


def _valid_name(name: str) -> bool:
    return name.startswith(PREFIX) and name[len(PREFIX):].isdigit() and "/" not in name


def current_name(idx_dir: Path) -> str | None:
    """The name CURRENT points at (unverified), or None when absent or unreadable."""
    try:
        pointer = read_pointer(idx_dir)
    except DamagedGeneration:
        return None
    return pointer[0] if pointer else None


def pointer_stamp(idx_dir: Path) -> tuple[int, int] | None:
    """(inode, mtime_ns) of CURRENT: changes whenever a new generation is switched in."""
    try:
        st = os.stat(Path(idx_dir) / POINTER)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _generation_number(name: str) -> int:
    try:
        return int(name[len(PREFIX):].split(".", 1)[0])
    except ValueError:
        return -1


def next_name(idx_dir: Path) -> str:
    numbers = [_generation_number(p.name) for p in Path(idx_dir).glob(f"{PREFIX}*")]
    return f"{PREFIX}{max(numbers, default=0) + 1:06d}"


def staging_dir(idx_dir: Path, name: str) -> Path:
    path = Path(idx_dir) / f"{name}.tmp-{os.getpid()}"
    path.mkdir(mode=0o700, parents=True)
    return path


# --------------------------------------------------------------------------- writing


def file_sizes(gen_dir: Path) -> dict[str, int]:
    """Size of every file of a generation but the meta, by relative path (for verification)."""
    out: dict[str, int] = {}
    for path in sorted(Path(gen_dir).rglob("*")):
        if path.is_file() and path.name != META:
            out[path.relative_to(gen_dir).as_posix()] = path.stat().st_size
    return out


def write_meta(gen_dir: Path, meta: dict[str, Any]) -> str:
    """Write meta.json with the sizes of every other file; returns its SHA-256 (for CURRENT)."""
    meta = {**meta, "format": FORMAT_VERSION, "sizes": file_sizes(gen_dir)}
    data = json.dumps(meta, indent=1, sort_keys=True).encode()
    tmp = Path(gen_dir) / f".{META}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, Path(gen_dir) / META)
    return hashlib.sha256(data).hexdigest()


def publish(idx_dir: Path, staged: Path, name: str, meta_hash: str) -> Path:
    """Rename the finished staging dir into place, then switch CURRENT to it."""
    final = Path(idx_dir) / name
    _fsync_tree(staged)
    os.replace(staged, final)
    _fsync_dir(idx_dir)
    tmp = Path(idx_dir) / f".{POINTER}.{os.getpid()}.tmp"
    tmp.write_text(f"{name}\n{meta_hash}\n", encoding="ascii")
    os.replace(tmp, Path(idx_dir) / POINTER)
    _fsync_dir(idx_dir)
    return final


def link_or_copy(src: Path, dst: Path) -> None:
    """Carry an immutable file into a new generation: a hard link, a copy where links fail."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(src, dst)


def link_tree(src: Path, dst: Path) -> None:
    for path in Path(src).rglob("*"):
        if path.is_file() and not path.name.startswith(".tantivy-"):  # lock files stay behind
            link_or_copy(path, dst / path.relative_to(src))


def _fsync_tree(path: Path) -> None:
    """Flush the files this build wrote. A hard link (more than one name) carries a file an
    earlier generation wrote and flushed when it was published: its data is on disk, and
    the new name is the directory's, which ``publish`` flushes. A refresh of a big project
    links ~100 full-text files and writes a handful, so this skips most of its fsyncs."""
    for sub in Path(path).rglob("*"):
        st = sub.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            fd = os.open(sub, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(idx_dir: Path) -> list[str]:
    """Remove leftovers of killed builds and every generation but two: the live one, and
    the newest one of an earlier index run (the fallback if the live one is damaged).

    An index run publishes more than once (full text first, then vectors), and those
    siblings share most files by hard link, so a sibling is a poor fallback: damage
    to a shared file is damage to both. Each meta records its run (``run``).
    """
    removed: list[str] = []
    current = current_name(idx_dir)
    gens = sorted((p for p in Path(idx_dir).glob(f"{PREFIX}*") if p.is_dir()),
                  key=lambda p: _generation_number(p.name))
    for p in gens:
        if ".tmp-" in p.name:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    complete = [p for p in gens if ".tmp-" not in p.name]
    if current is None or not any(p.name == current for p in complete):
        return removed  # nothing trustworthy to measure "older" against: keep everything
    run_of = {p.name: _run_of(p) for p in complete}
    live_run = run_of[current]
    keep = {current}
    earlier = [p.name for p in complete if run_of[p.name] != live_run
               and _generation_number(p.name) < _generation_number(current)]
    if earlier:
        keep.add(earlier[-1])
    for p in complete:
        if p.name not in keep and _generation_number(p.name) < _generation_number(current):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


def _run_of(gen_dir: Path) -> str:
    try:
        meta = json.loads((gen_dir / META).read_text(encoding="utf-8"))
        return str(meta.get("run") or gen_dir.name)
    except (OSError, ValueError, AttributeError):
        return gen_dir.name


# --------------------------------------------------------------------------- reading


@dataclass
class Generation:
    """One verified generation, opened for reading. Immutable; shared by concurrent queries."""

    name: str
    path: Path
    meta: dict[str, Any]
    table: ChunkTable
    vectors: Vectors
    embedded: np.ndarray
    #: The definitions' signature vectors (``signatures``); None in a generation made before them
    #: (or by another version of them).
    signatures: Signatures | None = None
    #: bool (n,): rows whose signatures are embedded (``signatures``; all False without them).
    signed: np.ndarray | None = None
    fts: Any = None  # search.fts.FtsIndex when opened with_fts
    stamp: tuple[int, int] | None = None
    #: Per-request caches (filter masks), keyed by whoever needs them.
    cache: dict[Any, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def n_embedded(self) -> int:
        return int(self.meta.get("embedded", len(self.table)))

    @property
    def n_unsigned(self) -> int:
        """Rows whose signatures are still to embed (``signatures``): the next embedding pass
        adds them, without re-embedding the chunks."""
        return len(self.table) - int(np.count_nonzero(self.signed)) if self.signed is not None else 0


def load_meta(gen_dir: Path, expected_hash: str | None = None) -> dict[str, Any]:
    """meta.json, checked against the hash CURRENT recorded for it (when given)."""
    try:
        data = (Path(gen_dir) / META).read_bytes()
    except FileNotFoundError:
        raise DamagedGeneration(f"{Path(gen_dir).name}: {META} is missing") from None
    if expected_hash is not None and hashlib.sha256(data).hexdigest() != expected_hash:
        raise DamagedGeneration(f"{Path(gen_dir).name}: {META} does not match its checksum")
    try:
        meta = json.loads(data)
    except ValueError:
        raise DamagedGeneration(f"{Path(gen_dir).name}: {META} is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") not in READABLE_FORMATS:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise DamagedGeneration(f"{Path(gen_dir).name}: index format {found}, this cidx reads "
                                f"{FORMAT_VERSION}: run 'cidx index --clear'")
    return meta


def open_generation(gen_dir: Path, *, expected_hash: str | None = None, with_fts: bool = True,
                    stamp: tuple[int, int] | None = None) -> Generation:
    """Open and verify one generation (see the module docstring); DamagedGeneration if not sound."""
    gen_dir = Path(gen_dir)
    name = gen_dir.name
    meta = load_meta(gen_dir, expected_hash)
    sizes = meta.get("sizes")
    if not isinstance(sizes, dict):
        raise DamagedGeneration(f"{name}: {META} lists no file sizes")
    for rel, size in sizes.items():
        try:
            actual = (gen_dir / rel).stat().st_size
        except OSError:
            raise DamagedGeneration(f"{name}: {rel} is missing") from None
        if actual != size:
            raise DamagedGeneration(f"{name}: {rel} has {actual} bytes, {size} expected")
    required = (*COLUMN_FILES, *VECTOR_FILES, *(sigs.FILES if meta.get("signatures") else ()))
    missing = [f for f in required if f not in sizes]
    if missing:
        raise DamagedGeneration(f"{name}: {META} does not list {', '.join(missing)}")
    try:
        table = ChunkTable(gen_dir)
        vectors = open_vectors(gen_dir)
        embedded = np.load(gen_dir / "embedded.npy", mmap_mode="r")
        n = int(meta.get("chunks", -1))
        dim = int(meta.get("dim", -1))
        current = meta.get("signatures") == sigs.VERSION
        signatures = sigs.open_signatures(gen_dir, n, dim) if current else None
        signed = sigs.open_signed(gen_dir, embedded) if current else np.zeros(n, dtype=bool)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DamagedGeneration(f"{name}: unreadable chunk table or vectors ({exc})") from None
    shapes_ok = (len(table) == n and table.cids.shape == (n,) and vectors.shape == (n, dim)
                 and embedded.shape == (n,) and embedded.dtype == np.bool_
                 and len(table.files) == int(meta.get("files", -1))
                 and (n == 0 or int(table.rows[:, 0].max()) < len(table.files)))
    if not shapes_ok:
        raise DamagedGeneration(f"{name}: the chunk table, vectors and meta disagree on the counts")
    gen = Generation(name=name, path=gen_dir, meta=meta, table=table, vectors=vectors, embedded=embedded,
                     signatures=signatures, signed=signed, stamp=stamp)
    if with_fts:
        from cidx_daemon.search.fts import FtsIndex

        try:
            gen.fts = FtsIndex.open(gen_dir / FTS_DIR, table)
        except Exception as exc:  # tantivy reports damage with assorted exception types
            raise DamagedGeneration(f"{name}: the full-text index does not open ({exc})") from None
        if gen.fts.num_docs != n:
            raise DamagedGeneration(f"{name}: the full-text index holds {gen.fts.num_docs} chunks, "
                                    f"{n} expected")
    return gen


def open_live(idx_dir: Path, *, with_fts: bool = True) -> tuple[Generation | None, list[str]]:
    """The live generation, or the newest older one that verifies; plus warnings.

    (None, []) when nothing was ever indexed; (None, [why...]) when no generation
    is usable (the caller reports ``index_damaged``).
    """
    idx_dir = Path(idx_dir)
    stamp = pointer_stamp(idx_dir)
    warnings: list[str] = []
    try:
        pointer = read_pointer(idx_dir)
    except DamagedGeneration as exc:
        pointer, warnings = None, [str(exc)]
    if pointer is None and not warnings:
        return None, []
    tried: set[str] = set()
    if pointer is not None:
        name, meta_hash = pointer
        tried.add(name)
        try:
            return open_generation(idx_dir / name, expected_hash=meta_hash, with_fts=with_fts,
                                   stamp=stamp), []
        except DamagedGeneration as exc:
            warnings.append(str(exc))
    for older in sorted((p for p in idx_dir.glob(f"{PREFIX}*") if p.is_dir() and ".tmp-" not in p.name),
                        key=lambda p: -_generation_number(p.name)):
        if older.name in tried:
            continue
        try:
            gen = open_generation(older, with_fts=with_fts, stamp=stamp)
        except DamagedGeneration as exc:
            warnings.append(str(exc))
            continue
        warnings.append(f"serving the previous generation {gen.name}: run 'cidx index' to repair the index")
        return gen, warnings
    return None, warnings


# --------------------------------------------------------------------------- the indexer lock


@contextmanager
def index_lock(config_dir: Path, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the indexer lock; raise IndexLockedError naming the holder if it is still taken
    after ``wait_s`` seconds (held while a generation is built and published: seconds)."""
    with _holding(Path(config_dir) / "index.lock", wait_s, IndexLockedError, "another indexer is running"):
        yield


class EmbedLeaseTaken(RuntimeError):
    """Another process is embedding this project's pending chunks."""


@contextmanager
def embed_lease(config_dir: Path, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the embedding lease: who holds it embeds, everyone else leaves the pending chunks
    to it. ``cidx index`` takes it for its embedding (all cores, minutes); a daemon embedding
    behind at lowered priority checks it between batches (``embedding_elsewhere``) and yields, so the
    same chunks are not embedded twice on the same cores. Raises EmbedLeaseTaken naming the
    holder if it is still taken after ``wait_s`` seconds."""
    with _holding(Path(config_dir) / "embed.lock", wait_s, EmbedLeaseTaken, "another indexer is embedding"):
        yield


def embedding_elsewhere(config_dir: Path) -> str | None:
    """Who holds the embedding lease ("pid 41 on host, started 10:02:11"), or None if nobody.

    A probe, not a hold: the lease is taken and released at once (a ``cidx index`` starting
    at that instant waits the moment out; ``embed_lease`` polls)."""
    path = Path(config_dir) / "embed.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe_holder(fd)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def _holding(path: Path, wait_s: float, error: type[RuntimeError], taken: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` whose holder writes who it is into the file, so the
    loser can say who (the lock goes with the process: ``kill -9`` frees it)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise error(f"{taken} ({_describe_holder(fd)})") from None
                time.sleep(0.05)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def new_lineage() -> str:
    """A name for the generations grown from one build from scratch (``meta["lineage"]``).

    Chunk ids count up within a lineage and restart with a new one, so a vector computed
    for chunk 7 of one lineage must never be applied to chunk 7 of another: an embedder
    that outlived a ``cidx index --clear`` or a ``cidx import`` checks it."""
    return uuid.uuid4().hex


def _describe_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        started = time.strftime("%H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {info['pid']} on {info.get('host', '?')}, started {started}"
    except (ValueError, KeyError, TypeError, OSError):
        return "holder unknown"
