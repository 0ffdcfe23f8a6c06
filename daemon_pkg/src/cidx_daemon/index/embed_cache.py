"""A per-user cache of chunk vectors, shared by every project, branch, clone and generation.

Embedding is the slow step of indexing, and the same chunk text comes back all
the time: a branch switched away and back, a second clone, a file reverted, a
project re-indexed with ``--clear``. Vectors are keyed by (embedder name, sha256
of the text exactly as it was embedded), so a hit is the vector the embedder
would produce again, and a different model or quantization (another name) never
shares an entry.

Storage is one sqlite3 file (standard library) in WAL mode: atomic commits,
readers that never block, writers serialised by sqlite's own lock with a busy
timeout, so several indexers (daemons of different projects, a ``cidx index`` in
a terminal) can use it at once. Vectors are float32 blobs. Each row carries a
last-used time; when the rows' bytes pass the cap the least recently used go.

The cache is an optimisation only: any error (corrupt file, full disk, a locked
database past the timeout, a read-only home) is logged once and the cache turns
itself off for the rest of the process; indexing carries on without it.

Location: ``$CIDX_CACHE_DIR``, else ``$XDG_CACHE_HOME/cidx``, else ``~/.cache/cidx``;
cap: ``$CIDX_CACHE_MAX_MB`` (default 1024; 0 turns the cache off).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CACHE_FILE = "embeddings.sqlite3"
DEFAULT_MAX_MB = 1024
#: Rows cost their blob plus key, name, timestamp and b-tree overhead.
ROW_OVERHEAD_BYTES = 96
#: Eviction goes this far under the cap, so a full cache is not trimmed on every write.
EVICT_TO = 0.9
_BUSY_TIMEOUT_S = 30.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    key BLOB NOT NULL,
    vec BLOB NOT NULL,
    used REAL NOT NULL,
    UNIQUE (model, key)
);
CREATE INDEX IF NOT EXISTS vectors_used ON vectors (used);
"""
#: sqlite limits host parameters per statement (999 before 3.32).
_PARAMS = 900


def cache_dir() -> Path:
    """Where the cache lives (see the module docstring)."""
    explicit = os.environ.get("CIDX_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "cidx"


def max_bytes_from_env() -> int:
    raw = os.environ.get("CIDX_CACHE_MAX_MB", "")
    try:
        megabytes = float(raw) if raw.strip() else DEFAULT_MAX_MB
    except ValueError:
        log.warning("CIDX_CACHE_MAX_MB=%r is not a number: using %d", raw, DEFAULT_MAX_MB)
        megabytes = DEFAULT_MAX_MB
    return max(0, int(megabytes * 2**20))


def text_key(text: str) -> bytes:
    """sha256 of the text as the embedder sees it (surrogates kept, not dropped)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class EmbeddingCache:
    """Get and put float32 vectors by (model name, text key); see the module docstring.

    Thread-safe (one connection per thread); every public method swallows errors after
    turning the cache off, so callers never need a try.
    """

    def __init__(self, directory: Path | None = None, max_bytes: int | None = None) -> None:
        self.directory = directory if directory is not None else cache_dir()
        self.path = self.directory / CACHE_FILE
        self.max_bytes = max_bytes_from_env() if max_bytes is None else max_bytes
        self.error: str | None = None if self.max_bytes > 0 else "turned off (CIDX_CACHE_MAX_MB=0)"
        self._local = threading.local()
        self._ready = False
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.error is None

    # ------------------------------------------------------------------ setup and failure

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = f"embedding cache {self.path} unusable ({exc}); indexing goes on without it"
            log.warning("%s", self.error)

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            if not self._ready:
                self._create()
                self._ready = True
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a power cut may lose the last commits, never corrupt the file.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        self._local.conn = conn
        return conn

    def _create(self) -> None:
        """Directory 0700 and file 0600 before sqlite opens it: vectors reveal the code they embed."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()

    # ------------------------------------------------------------------ get and put

    def get_many(self, model: str, keys: Sequence[bytes], dim: int) -> dict[bytes, np.ndarray]:
        """The cached vectors among `keys` (wrong-sized blobs ignored); marks them used."""
        if not self.enabled or not keys:
            return {}
        try:
            conn = self._connect()
            found: dict[bytes, np.ndarray] = {}
            ids: list[int] = []
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), _PARAMS):
                part = unique[start:start + _PARAMS]
                marks = ",".join("?" * len(part))
                rows = conn.execute(f"SELECT id, key, vec FROM vectors WHERE model = ? AND key IN ({marks})",
                                    [model, *part]).fetchall()
                for row_id, key, blob in rows:
                    if len(blob) == dim * 4:
                        found[bytes(key)] = np.frombuffer(blob, dtype=np.float32).copy()
                        ids.append(row_id)
            if ids:
                self._touch(conn, ids)
            return found
        except (sqlite3.Error, OSError, ValueError) as exc:
            self._fail(exc)
            return {}

    def _touch(self, conn: sqlite3.Connection, ids: list[int]) -> None:
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(ids), _PARAMS):
                part = ids[start:start + _PARAMS]
                conn.execute(f"UPDATE vectors SET used = ? WHERE id IN ({','.join('?' * len(part))})",
                             [now, *part])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def put_many(self, model: str, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        """Store vectors (replacing any under the same key), then evict down to the cap."""
        if not self.enabled or not items:
            return
        try:
            conn = self._connect()
            now = time.time()
            rows = [(model, key, np.ascontiguousarray(vec, dtype=np.float32).tobytes(), now)
                    for key, vec in items]
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO vectors (model, key, vec, used) VALUES (?, ?, ?, ?)",
                                 rows)
                self._evict(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError, ValueError) as exc:
            self._fail(exc)

    def _evict(self, conn: sqlite3.Connection) -> None:
        """Least recently used rows out until the rows' bytes are under EVICT_TO of the cap."""
        count, blob_bytes = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(vec)), 0) FROM vectors").fetchone()
        total = blob_bytes + count * ROW_OVERHEAD_BYTES
        if total <= self.max_bytes or not count:
            return
        per_row = total / count
        excess = int((total - self.max_bytes * EVICT_TO) / per_row) + 1
        conn.execute("DELETE FROM vectors WHERE id IN (SELECT id FROM vectors ORDER BY used, id LIMIT ?)",
                     (min(excess, count),))

    def stats(self) -> dict[str, int]:
        """Entries and bytes (for status output and tests)."""
        if not self.enabled:
            return {"entries": 0, "bytes": 0}
        try:
            count, blob_bytes = self._connect().execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(vec)), 0) FROM vectors").fetchone()
            return {"entries": int(count), "bytes": int(blob_bytes + count * ROW_OVERHEAD_BYTES)}
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)
            return {"entries": 0, "bytes": 0}


_shared: dict[tuple[Path, int], EmbeddingCache] = {}
_shared_lock = threading.Lock()


def default_cache() -> EmbeddingCache:
    """The process's cache for the current location and cap (one per process: it warns once)."""
    key = (cache_dir(), max_bytes_from_env())
    with _shared_lock:
        cache = _shared.get(key)
        if cache is None:
            cache = _shared[key] = EmbeddingCache(*key)
        return cache
