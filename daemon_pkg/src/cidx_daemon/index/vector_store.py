"""A generation's vectors: a base matrix shared between generations, a small delta, a row map.

Why: a saved file changes a few rows, yet every generation used to hold its own dense
``(n, dim)`` matrix. On a 60k-chunk project that is 93 MB written (and flushed) twice per
save: by the full-text-first generation, whose rows shift, and again when the background
embedder publishes the new chunks' vectors. Now a generation names its vectors through a
row map, and the matrices behind it are immutable files carried by hard link.

Layout (in a generation directory)::

    vectors.npy        float32 (m, dim): the base, written once, then carried by hard link
    vectors_delta.npy  float32 (k, dim), optional: vectors published since the base was written
    vector_rows.npy    int64 (n,), optional: row -> index into base ++ delta, -1 = none yet

Without ``vector_rows.npy`` the base is *dense*: row i is ``vectors[i]`` (m == n), and a row
not embedded yet is zero; that is also the layout of every generation written before this
module, which therefore opens unchanged.

Rules:

* ``embedded.npy`` stays the one truth about which rows have a vector; a row it marks
  has a mapped vector, and a score read for any other row is masked out by the caller.
* A save writes only the row map (8 bytes a row); the embedder writes the delta again with
  its new vectors appended (small) and the row map.
* Vectors nobody maps any more (a changed file's old chunks) and the delta are bounded:
  when either exceeds ``slack(n)`` the next generation is written dense again
  (``compact``), so a search never scans more than ~1.25 n vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np


class VectorFiles(NamedTuple):
    """The file names of one vector store in a generation directory."""

    base: str
    delta: str
    rows: str


#: The chunks' vectors (row = chunk row).
CHUNKS = VectorFiles("vectors.npy", "vectors_delta.npy", "vector_rows.npy")
#: The definitions' signature vectors (row = signature slot: ``signatures.py``).
SIGNATURES = VectorFiles("sig_vectors.npy", "sig_vectors_delta.npy", "sig_vector_rows.npy")
BASE, DELTA, ROWS = CHUNKS
#: Files a generation may lack (dense layout); copied or linked when present.
OPTIONAL_FILES = (DELTA, ROWS)


#: Dead or delta vectors always tolerated (a few MB): small projects never rewrite.
SLACK_FLOOR = 1024


def slack(n: int) -> int:
    """Dead or delta vectors tolerated before the matrix is rewritten dense."""
    return max(SLACK_FLOOR, n // 8)


class Vectors:
    """The vectors of one generation, read-only (memory-mapped files).

    ``scores(q)`` is what search needs (one matrix-vector product per file, then a
    gather); ``vector(row)`` / indexing / ``np.asarray`` materialise rows for the rest.
    """

    def __init__(self, base: np.ndarray, delta: np.ndarray | None = None,
                 rows: np.ndarray | None = None) -> None:
        self.base = base
        self.delta = delta if delta is not None and len(delta) else None
        self.rows = rows
        self.dim = int(base.shape[1])
        self.n = len(rows) if rows is not None else len(base)
        self.stored = len(base) + (len(self.delta) if self.delta is not None else 0)
        self._gather: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.dim)

    def __len__(self) -> int:
        return self.n

    def source(self) -> np.ndarray:
        """Row -> index into base ++ delta (-1: no vector)."""
        return np.asarray(self.rows) if self.rows is not None else np.arange(self.n, dtype=np.int64)

    def scores(self, query: np.ndarray) -> np.ndarray:
        """``matrix @ query`` by row, without building the matrix; unmapped rows score 0."""
        stored = self.base @ query
        if self.delta is not None:
            stored = np.concatenate([stored, self.delta @ query])
        if self.rows is None:
            return stored
        if not len(stored):
            return np.zeros(self.n, dtype=np.float32)
        if self._gather is None:  # per generation, not per query (a benign race: same arrays)
            rows = np.asarray(self.rows)
            missing = np.flatnonzero(rows < 0)
            self._gather = (np.maximum(rows, 0), missing)
        safe, missing = self._gather
        out = stored[safe]
        out[missing] = 0.0
        return out

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``rows`` as a new ``(len(rows), dim)`` array (zero where none)."""
        wanted = np.asarray(rows, dtype=np.int64)
        src = wanted if self.rows is None else np.asarray(self.rows)[wanted]
        m = len(self.base)
        missing = src < 0
        in_delta = src >= m
        if not m:
            out = np.zeros((len(src), self.dim), dtype=np.float32)
        else:  # one gather (a zeroed array filled through masks cost 5x: 4 vs 0.8 ms for 2,000 rows)
            out = np.take(self.base, np.where(missing | in_delta, 0, src), axis=0)
        if self.delta is not None and in_delta.any():
            out[in_delta] = np.take(self.delta, src[in_delta] - m, axis=0)
        if missing.any():
            out[missing] = 0.0
        return out

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        if isinstance(key, slice):
            return self.take(np.arange(self.n)[key])
        if np.ndim(key) == 0:
            return self.take(np.array([int(key)]))[0]  # type: ignore[arg-type]
        return self.take(np.asarray(key))

    def dense(self) -> np.ndarray:
        if self.rows is None and self.delta is None:
            return np.array(self.base)
        return self.take(np.arange(self.n))

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        out = self.dense()
        return out if dtype is None else out.astype(dtype)


def open_vectors(gen_dir: Path, files: VectorFiles = CHUNKS) -> Vectors:
    """Memory-map a generation's vectors; ValueError when the files disagree with each other."""
    gen_dir = Path(gen_dir)
    base = np.load(gen_dir / files.base, mmap_mode="r")
    delta = np.load(gen_dir / files.delta, mmap_mode="r") if (gen_dir / files.delta).exists() else None
    rows = np.load(gen_dir / files.rows, mmap_mode="r") if (gen_dir / files.rows).exists() else None
    if base.ndim != 2 or base.dtype != np.float32:
        raise ValueError(f"{files.base} is not a float32 matrix")
    if delta is not None and (delta.ndim != 2 or delta.dtype != np.float32
                              or delta.shape[1] != base.shape[1]):
        raise ValueError(f"{files.delta} does not match {files.base}")
    if delta is not None and rows is None:
        raise ValueError(f"{files.delta} without {files.rows}")
    vectors = Vectors(base, delta, rows)
    if rows is not None:
        if rows.ndim != 1 or rows.dtype != np.int64:
            raise ValueError(f"{files.rows} is not an int64 vector")
        if len(rows) and (int(rows.min()) < -1 or int(rows.max()) >= vectors.stored):
            raise ValueError(f"{files.rows} points outside the stored vectors")
    return vectors


def write_dense(gen_dir: Path, matrix: np.ndarray, files: VectorFiles = CHUNKS) -> None:
    np.save(Path(gen_dir) / files.base, np.ascontiguousarray(matrix, dtype=np.float32))


def carry(previous: Vectors | None, previous_dir: Path | None, gen_dir: Path, n: int, dim: int,
          blocks: list[tuple[int, int, int]], files: VectorFiles = CHUNKS) -> None:
    """Write the vectors of a new generation of ``n`` rows whose ``blocks`` (new first row,
    old first row, count) keep ``previous``'s vectors and whose other rows have none.

    The previous files are hard-linked and only a row map is written, unless that would
    leave more than ``slack(n)`` unused vectors: then the kept ones are written dense.
    """
    gen_dir = Path(gen_dir)
    if previous is None or previous_dir is None or previous.dim != dim:
        write_dense(gen_dir, np.zeros((0, dim), dtype=np.float32), files)  # an empty base: nothing mapped
        np.save(gen_dir / files.rows, np.full(n, -1, dtype=np.int64))
        return
    source = previous.source()
    rows = np.full(n, -1, dtype=np.int64)
    for new_first, old_first, count in blocks:
        rows[new_first:new_first + count] = source[old_first:old_first + count]
    _link_or_compact(previous, previous_dir, gen_dir, rows, None, files)


def with_new_vectors(current: Vectors, current_dir: Path, gen_dir: Path, rows: np.ndarray,
                     vectors: np.ndarray, files: VectorFiles = CHUNKS) -> None:
    """Write the vectors of a generation equal to ``current`` but for ``vectors`` at ``rows``:
    the base is linked, the delta grows by the new vectors, the row map points at them."""
    rows = np.asarray(rows, dtype=np.int64)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape[1] != current.dim:  # another model: nothing of the old vectors is kept
        dense = np.zeros((current.n, vectors.shape[1]), dtype=np.float32)
        dense[rows] = vectors
        write_dense(Path(gen_dir), dense, files)
        return
    mapping = current.source().copy()
    mapping[rows] = current.stored + np.arange(len(rows), dtype=np.int64)
    old = current.delta if current.delta is not None else np.zeros((0, current.dim), dtype=np.float32)
    _link_or_compact(current, current_dir, Path(gen_dir), mapping, np.concatenate([old, vectors]), files)


def link_all(previous_dir: Path, gen_dir: Path, files: VectorFiles = CHUNKS) -> None:
    """The same vectors in a new generation: every file of the store hard-linked."""
    from cidx_daemon.index.generation import link_or_copy

    for name in files:
        if (Path(previous_dir) / name).exists():
            link_or_copy(Path(previous_dir) / name, Path(gen_dir) / name)


def remapped(previous: Vectors, previous_dir: Path, gen_dir: Path, mapping: np.ndarray,
             new_vectors: np.ndarray | None, files: VectorFiles) -> None:
    """Write a store whose row i is ``previous``'s stored vector ``mapping[i]`` (-1: none), or,
    for ``mapping[i] >= previous.stored``, row ``mapping[i] - previous.stored`` of ``new_vectors``:
    rows may be dropped, reordered or added (the signature slots), and the stored matrices are
    still linked, not rewritten, within the slack."""
    mapping = np.asarray(mapping, dtype=np.int64)
    delta = None
    if new_vectors is not None and len(new_vectors):
        old = previous.delta if previous.delta is not None else np.zeros((0, previous.dim), dtype=np.float32)
        delta = np.concatenate([old, np.asarray(new_vectors, dtype=np.float32)])
    _link_or_compact(previous, previous_dir, Path(gen_dir), mapping, delta, files)


def _link_or_compact(previous: Vectors, previous_dir: Path, gen_dir: Path, rows: np.ndarray,
                     delta: np.ndarray | None, files: VectorFiles = CHUNKS) -> None:
    """``rows`` index previous.base ++ (``delta`` if given, else previous.delta)."""
    from cidx_daemon.index.generation import link_or_copy

    kept_delta = delta if delta is not None else previous.delta
    delta_rows = len(kept_delta) if kept_delta is not None else 0
    stored = len(previous.base) + delta_rows
    used = np.unique(rows[rows >= 0]).size
    n = len(rows)
    if delta_rows > slack(n) or stored - used > slack(n):
        write_dense(gen_dir, Vectors(previous.base, kept_delta, rows).dense(), files)
        return
    link_or_copy(Path(previous_dir) / files.base, gen_dir / files.base)
    if delta is not None:
        if len(delta):
            np.save(gen_dir / files.delta, delta)
    elif previous.delta is not None:
        link_or_copy(Path(previous_dir) / files.delta, gen_dir / files.delta)
    np.save(gen_dir / files.rows, rows)

