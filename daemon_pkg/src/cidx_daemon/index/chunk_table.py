"""The chunk table of one generation: columnar, memory-mapped, opened in ~1 ms.

It is the one place a generation keeps chunk text and metadata: the full-text
index stores only its inverted lists and the chunk id, and reads text, path,
language and lines from here (a second copy cost ~32 MB on the stdlib).

Why columnar ``.npy`` files and one text blob instead of JSON lines: a daemon
reloads a generation whenever the indexer switches it in, and a standalone
query opens it on every call. Memory-mapping a few arrays costs nothing up
front; parsing 40,000 JSON records costs a fraction of a second each time.

Files (all inside the generation directory):

* ``files.json``   one record per source file: path, language, hash, size,
  mtime_ns, first_row, n_rows. Rows of one file are contiguous, files are in
  row order.
* ``rows.npy``     int32 (n, 3): file index, start line, end line (file-absolute).
* ``cids.npy``     uint64 (n,): the chunk's id, ascending. Ids are never reused
  within an index's life, so the full-text index (keyed by id) can carry over
  from one generation to the next while rows are renumbered.
* ``text.bin``     every chunk's UTF-8 text concatenated (``surrogatepass``);
  ``text_off.npy`` int64 (n + 1) byte offsets into it.
* ``symbols.bin`` / ``sym_off.npy`` (optional: generations before the syntax chunker lack
  them) per row what the syntax chunker found, the same way: empty for a regex chunk,
  else its scope on the first line and one ``kind<TAB>name<TAB>parent<TAB>line`` line per
  defined symbol. ``symbol_index`` looks names up in these bytes on demand, so opening
  a table stays free.

Per-chunk strings rather than one big string when decoding: CPython stores a
string at the width of its widest character, so one emoji would make a 33 M
character blob 132 MB; most chunks are ASCII and stay at one byte a character.
"""

from __future__ import annotations

import bisect
import itertools
import json
import mmap
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cidx_daemon.index.chunking import Symbol

ENCODING, ERRORS = "utf-8", "surrogatepass"
COLUMN_FILES = ("files.json", "rows.npy", "cids.npy", "text.bin", "text_off.npy")
#: Columns a generation may lack (written since the syntax chunker); copied when present.
OPTIONAL_COLUMN_FILES = ("symbols.bin", "sym_off.npy")


def encode_symbols(scope: str | None, symbols: Iterable[Symbol]) -> bytes:
    """One row's symbol record (see the module doc); ``scope`` None: a regex chunk."""
    if scope is None:
        return b""
    lines = [scope.replace("\n", " ")]
    lines += [f"{s.kind}\t{s.name}\t{s.parent}\t{s.line}" for s in symbols]
    return ("\n".join(lines) + "\n").encode(ENCODING, ERRORS)


def decode_symbols(data: bytes) -> tuple[str | None, list[Symbol]]:
    if not data:
        return None, []
    scope, *rest = data.decode(ENCODING, ERRORS).split("\n")
    out = []
    for line in rest:
        parts = line.split("\t")
        if len(parts) == 4:
            out.append(Symbol(parts[1], parts[0], parts[2], int(parts[3]) if parts[3].isdigit() else 0))
    return scope, out


class SymbolIndex:
    """Defined names -> rows, read from the table's symbol column on demand.

    Why on demand: under the daemon a generation is opened after every saved edit, and
    decoding every row's record up front (the dicts of ``_AllNames``) cost 385 ms on a
    60,000-chunk project (Django), paid by the first query after each edit. An exact lookup
    is instead one scan of the column's bytes for ``<TAB>name<TAB>`` (3 MB there: a fraction
    of a millisecond), the few rows it hits decoded and checked, and the answer kept: the
    table is immutable. Case-folded and prefix lookups, which need every name, build the
    full dicts once, on first use.
    """

    def __init__(self, table: ChunkTable) -> None:
        self._table = table
        offsets = table._sym_offsets
        n = len(table)
        #: bool per row: chunked from a syntax tree (an empty record is a regex chunk's)
        self.syntax_rows = (np.diff(np.asarray(offsets, dtype=np.int64)) > 0 if offsets is not None
                            else np.zeros(n, dtype=bool))
        self._starts: list[int] | None = None
        self._by_name: dict[str, list[tuple[int, Symbol]]] = {}
        self._by_row: dict[int, list[Symbol]] = {}
        self._all: _AllNames | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._names().names)

    def lookup(self, name: str, *, fold: bool = False) -> list[tuple[int, Symbol]]:
        """Where ``name`` is defined: (row, symbol), rows ascending."""
        if fold:
            return self._names().lookup_folded(name)
        got = self._by_name.get(name)
        if got is None:
            got = self._by_name[name] = [(row, sym) for row in self._rows_naming(name)
                                         for sym in self.defined_in(row) if sym.name == name]
        return got

    def defined_in(self, row: int) -> list[Symbol]:
        """The names a syntax-tree row defines (none for a regex-chunked row)."""
        got = self._by_row.get(row)
        if got is None:
            got = self._by_row[row] = decode_symbols(self._table.raw_symbols(row))[1]
        return got

    def with_prefix(self, prefix: str, limit: int = 100) -> list[str]:
        """Defined names starting with ``prefix`` (case-sensitive), sorted, at most ``limit``."""
        names = self._names().names
        at = bisect.bisect_left(names, prefix)
        out = []
        for name in itertools.islice(names, at, None):
            if not name.startswith(prefix) or len(out) >= limit:
                break
            out.append(name)
        return out

    def _rows_naming(self, name: str) -> list[int]:
        """Rows whose record holds ``name`` as a field (a name or a parent: the caller checks)."""
        blob, offsets = self._table._sym_blob, self._table._sym_offsets
        if not blob or offsets is None or not name or "\t" in name or "\n" in name:
            return []
        if self._starts is None:
            self._starts = np.asarray(offsets[:-1]).tolist()
        starts = self._starts
        needle = f"\t{name}\t".encode(ENCODING, ERRORS)
        rows: list[int] = []
        pos = blob.find(needle)
        while pos >= 0:
            row = bisect.bisect_right(starts, pos) - 1
            rows.append(row)
            if row + 1 >= len(starts):
                break
            pos = blob.find(needle, starts[row + 1])
        return rows

    def _names(self) -> _AllNames:
        if self._all is None:
            with self._lock:
                if self._all is None:
                    self._all = _AllNames(self._table)
        return self._all


class _AllNames:
    """Every defined name: an exact and a case-folded dict and a sorted list (for the
    lookups that cannot start from one name's bytes)."""

    def __init__(self, table: ChunkTable) -> None:
        self.exact: dict[str, list[tuple[int, Symbol]]] = {}
        for row in range(len(table)):
            for sym in decode_symbols(table.raw_symbols(row))[1]:
                self.exact.setdefault(sym.name, []).append((row, sym))
        self.folded: dict[str, set[str]] = {}
        for name in self.exact:
            self.folded.setdefault(name.lower(), set()).add(name)
        self.names = sorted(self.exact)

    def lookup_folded(self, name: str) -> list[tuple[int, Symbol]]:
        hits = [hit for n in self.folded.get(name.lower(), ()) for hit in self.exact[n]]
        return sorted(hits, key=lambda h: h[0])


@dataclass(frozen=True)
class FileRecord:
    path: str
    language: str
    hash: str
    size: int
    mtime_ns: int
    first_row: int
    n_rows: int

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _end(rec: FileRecord) -> int:
    return rec.first_row + rec.n_rows


@dataclass
class _Block:
    """Rows of one file, as columns: new text, or a slice of an old table's columns."""

    rows: np.ndarray  # int32 (n, 3), the file index already set
    cids: np.ndarray  # uint64 (n,)
    text_lengths: np.ndarray  # int64 (n,)
    text: bytes
    symbol_lengths: np.ndarray  # int64 (n,)
    symbols: bytes


class ChunkTableWriter:
    """Collects rows file by file (new text, or an old table's rows carried over), then
    writes the columns once.

    A carried-over file is copied as slices of the old table's columns, not row by row:
    under the daemon every saved edit writes a new table, and copying Django's 60,000 rows
    one at a time took 0.7 s of the 1.2 s between a save and its full-text hit.
    """

    def __init__(self) -> None:
        self.files: list[FileRecord] = []
        self._blocks: list[_Block] = []
        self._n_rows = 0
        self._last_cid = -1

    @property
    def n_rows(self) -> int:
        return self._n_rows

    def add_file(self, path: str, language: str, hash_: str, size: int, mtime_ns: int,
                 chunks: Iterable[tuple[int, int, str] | tuple[int, int, str, bytes]],
                 cids: Iterable[int]) -> FileRecord:
        """A file's chunks as (start line, end line, text[, symbol record from
        ``encode_symbols``]), with their (new) chunk ids."""
        file_idx = len(self.files)
        lines: list[tuple[int, int, int]] = []
        texts: list[bytes] = []
        symbols: list[bytes] = []
        ids: list[int] = []
        for chunk, cid in zip(chunks, cids, strict=True):
            lines.append((file_idx, chunk[0], chunk[1]))
            texts.append(chunk[2].encode(ENCODING, ERRORS))
            symbols.append(chunk[3] if len(chunk) > 3 else b"")  # type: ignore[misc]
            ids.append(cid)
        if any(b <= a for a, b in itertools.pairwise(ids)):
            raise ValueError(f"chunk ids must ascend within a file: {ids}")
        block = _Block(np.asarray(lines, dtype=np.int32).reshape(-1, 3), np.asarray(ids, dtype=np.uint64),
                       np.asarray([len(t) for t in texts], dtype=np.int64), b"".join(texts),
                       np.asarray([len(t) for t in symbols], dtype=np.int64), b"".join(symbols))
        return self._append(path, language, hash_, size, mtime_ns, block)

    def copy_files(self, table: ChunkTable,
                   files: list[tuple[FileRecord, int, int]]) -> list[FileRecord]:
        """Files unchanged since ``table`` (record, new size, new mtime): their rows, ids, text
        and symbol bytes carried over as they are, each run of files that are neighbours in
        ``table`` sliced out of its columns in one piece."""
        out: list[FileRecord] = []
        i = 0
        while i < len(files):
            j = i + 1
            while j < len(files) and files[j][0].first_row == _end(files[j - 1][0]):
                j += 1
            run = files[i:j]
            lo = run[0][0].first_row
            hi = _end(run[-1][0])
            rows = np.array(table.rows[lo:hi], dtype=np.int32).reshape(-1, 3)
            rows[:, 0] = np.repeat(np.arange(len(self.files), len(self.files) + len(run), dtype=np.int32),
                                   [rec.n_rows for rec, _, _ in run])
            text_off = np.asarray(table._offsets[lo:hi + 1], dtype=np.int64)
            if table._sym_offsets is not None:
                sym_off = np.asarray(table._sym_offsets[lo:hi + 1], dtype=np.int64)
                symbols = bytes(table._sym_blob[int(sym_off[0]):int(sym_off[-1])])
            else:  # a table from before the syntax chunker: no symbol records
                sym_off, symbols = np.zeros(hi - lo + 1, dtype=np.int64), b""
            text = bytes(table._blob[int(text_off[0]):int(text_off[-1])])
            self._append_block(_Block(rows, np.array(table.cids[lo:hi], dtype=np.uint64), np.diff(text_off),
                                      text, np.diff(sym_off), symbols))
            for rec, size, mtime_ns in run:
                out.append(self._record(rec.path, rec.language, rec.hash, size, mtime_ns, rec.n_rows))
            i = j
        return out

    def _append(self, path: str, language: str, hash_: str, size: int, mtime_ns: int,
                block: _Block) -> FileRecord:
        self._append_block(block)
        return self._record(path, language, hash_, size, mtime_ns, len(block.cids))

    def _append_block(self, block: _Block) -> None:
        if len(block.cids):
            if int(block.cids[0]) <= self._last_cid:
                raise ValueError(f"chunk ids must ascend: {int(block.cids[0])} after {self._last_cid}")
            self._last_cid = int(block.cids[-1])
            self._blocks.append(block)

    def _record(self, path: str, language: str, hash_: str, size: int, mtime_ns: int, n: int) -> FileRecord:
        """The next file's record, its ``n`` rows the last ones appended."""
        rec = FileRecord(path, language, hash_, size, mtime_ns, self._n_rows, n)
        self._n_rows += n
        self.files.append(rec)
        return rec

    def write(self, directory: Path) -> None:
        directory = Path(directory)
        blocks = self._blocks

        def column(parts: list[np.ndarray], dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(shape, dtype=dtype)

        def offsets(lengths: list[np.ndarray]) -> np.ndarray:
            out = np.zeros(self._n_rows + 1, dtype=np.int64)
            if self._n_rows:
                np.cumsum(np.concatenate(lengths), out=out[1:])
            return out

        np.save(directory / "rows.npy", column([b.rows for b in blocks], np.int32, (0, 3)))
        np.save(directory / "cids.npy", column([b.cids for b in blocks], np.uint64, (0,)))
        np.save(directory / "text_off.npy", offsets([b.text_lengths for b in blocks]))
        with open(directory / "text.bin", "wb") as fh:
            for b in blocks:
                fh.write(b.text)
        np.save(directory / "sym_off.npy", offsets([b.symbol_lengths for b in blocks]))
        with open(directory / "symbols.bin", "wb") as fh:
            for b in blocks:
                fh.write(b.symbols)
        (directory / "files.json").write_text(
            json.dumps([f.to_json() for f in self.files], ensure_ascii=False), encoding="utf-8")


class ChunkTable:
    """Read side: row -> (path, language, lines, text) without loading everything.

    Thread-safe: the data is immutable; the lazily decoded texts and the folded
    bytes (regex search) are built once under a lock.
    """

    def __init__(self, directory: Path) -> None:
        directory = Path(directory)
        self.files = [FileRecord(**rec) for rec in
                      json.loads((directory / "files.json").read_text(encoding="utf-8"))]
        # Plain ndarray views of the maps (np.asarray: no copy, still paged in lazily): a
        # memmap's own __getitem__ costs twice an ndarray's, and a query asks for a few
        # hundred single rows.
        self.rows = np.asarray(np.load(directory / "rows.npy", mmap_mode="r"))
        self.cids = np.asarray(np.load(directory / "cids.npy", mmap_mode="r"))
        self._offsets = np.asarray(np.load(directory / "text_off.npy", mmap_mode="r"))
        self._blob: mmap.mmap | bytes = b""
        with open(directory / "text.bin", "rb") as fh:
            if fh.seek(0, 2):  # mmap refuses empty files; the map outlives the descriptor
                self._blob = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._sym_blob: mmap.mmap | bytes = b""
        self._sym_offsets: np.ndarray | None = None
        if (directory / "sym_off.npy").exists():
            self._sym_offsets = np.asarray(np.load(directory / "sym_off.npy", mmap_mode="r"))
            with open(directory / "symbols.bin", "rb") as fh:
                if fh.seek(0, 2):
                    self._sym_blob = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._symbol_index: SymbolIndex | None = None
        self.file_index = np.asarray(self.rows[:, 0]) if len(self.rows) else np.zeros(0, np.int32)
        self._lock = threading.Lock()
        self._texts: list[str] | None = None
        self._starts: list[int] | None = None
        self._fold: tuple[bytes, list[int]] | None = None

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def raw_text(self, row: int) -> bytes:
        lo, hi = int(self._offsets[row]), int(self._offsets[row + 1])
        return self._blob[lo:hi]

    def raw_symbols(self, row: int) -> bytes:
        """The row's symbol record (``b""`` for a regex chunk or a table from before them)."""
        if self._sym_offsets is None:
            return b""
        lo, hi = int(self._sym_offsets[row]), int(self._sym_offsets[row + 1])
        return self._sym_blob[lo:hi]

    def symbols(self, row: int) -> tuple[str | None, list[Symbol]]:
        """(scope, defined symbols) of a row; scope None when no syntax tree was used."""
        return decode_symbols(self.raw_symbols(row))

    def symbol_index(self) -> SymbolIndex:
        """The defined-name lookup, built on first use and kept (immutable data)."""
        if self._symbol_index is None:
            with self._lock:
                if self._symbol_index is None:
                    self._symbol_index = SymbolIndex(self)
        return self._symbol_index

    def text(self, row: int) -> str:
        if self._texts is not None:
            return self._texts[row]
        return self.raw_text(row).decode(ENCODING, ERRORS)

    def texts(self) -> list[str]:
        """Every text by row, decoded once and kept (a regex search reads them all)."""
        if self._texts is None:
            with self._lock:
                if self._texts is None:
                    data = self._blob
                    offsets = self._offsets.tolist()
                    self._texts = [data[lo:hi].decode(ENCODING, ERRORS)
                                   for lo, hi in itertools.pairwise(offsets)]
        return self._texts

    def header(self, row: int) -> str:
        """The row's file path and scope (``src/requests/sessions.py Session.send``).

        A method cut from its class, or a function from its module, no longer carries
        those names in its own lines; the embedder reads this line above the text. (Full
        text does not: measured, dev −0.005 / held-out +0.004 hybrid, no clear gain.)
        """
        scope, _ = self.symbols(row)
        return " ".join(part for part in (self.file_of(row).path, scope) if part)

    def file_of(self, row: int) -> FileRecord:
        return self.files[int(self.rows[row, 0])]

    def lines(self, row: int) -> tuple[int, int]:
        return int(self.rows[row, 1]), int(self.rows[row, 2])

    def by_path(self) -> dict[str, FileRecord]:
        return {f.path: f for f in self.files}

    def rows_of_cids(self, cids: Iterable[int]) -> np.ndarray:
        """Rows holding these chunk ids (ids not in this table are dropped)."""
        wanted = np.fromiter(cids, dtype=np.uint64)
        pos = np.searchsorted(self.cids, wanted)
        inside = pos < len(self.cids)
        found = np.zeros(len(wanted), dtype=bool)
        found[inside] = self.cids[pos[inside]] == wanted[inside]
        return pos[found]

    def rows_containing(self, literal: str, *, fold: bool,
                        within: list[tuple[int, int]] | None = None) -> list[int]:
        """Rows (ascending) whose text may contain ``literal``, found in the raw bytes.

        Nothing is decoded. With ``fold`` (an ASCII literal, case-insensitive) the
        bytes are ASCII-lowered once and kept, and every row holding non-ASCII text
        is included too: ``re.IGNORECASE`` equates a few non-ASCII letters with ASCII
        ones (``\u017f`` with ``s``, ``\u212a`` with ``k``) that lowering cannot see.
        ``within``: only these row ranges (``row_runs``), the rest of the bytes unread.
        """
        if fold:
            hay, extra = self._folded()
            needle = literal.lower().encode("ascii")
        else:
            hay, extra = self._blob, []
            needle = literal.encode(ENCODING, ERRORS)
        starts = self._byte_starts()
        n = len(starts)
        found: list[int] = []
        for first, stop in within if within is not None else [(0, n)]:
            end = int(self._offsets[stop])
            pos = hay.find(needle, starts[first], end) if first < stop else -1
            while pos >= 0:
                row = bisect.bisect_right(starts, pos) - 1
                found.append(row)
                if row + 1 >= stop:
                    break
                pos = hay.find(needle, starts[row + 1], end)
        if within is not None and extra:
            extra = [r for r in extra if any(first <= r < stop for first, stop in within)]
        return sorted(set(found).union(extra)) if extra else found

    @staticmethod
    def row_runs(mask: np.ndarray) -> list[tuple[int, int]]:
        """The row ranges [first, stop) where ``mask`` holds, for ``rows_containing(within=)``."""
        padded = np.concatenate(([False], np.asarray(mask, dtype=bool), [False]))
        edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
        return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))

    def _byte_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = self._offsets[:-1].tolist()
        return self._starts

    def _folded(self) -> tuple[bytes, list[int]]:
        """ASCII-lowered bytes of ``text.bin`` and the rows holding non-ASCII text."""
        if self._fold is None:
            with self._lock:
                if self._fold is None:
                    data = bytes(self._blob)
                    high = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) >= 0x80)
                    rows = np.searchsorted(self._offsets[:-1], high, side="right") - 1
                    self._fold = (data.lower(), np.unique(rows).tolist())
        return self._fold
