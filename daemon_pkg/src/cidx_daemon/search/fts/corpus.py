"""The FTS directory's own copy of every chunk: metadata and text by row.

Why not tantivy stored fields: a regex search must read *every* chunk, and
40,000 ``searcher.doc`` calls cost about a second, while decoding one
UTF-8 file into per-chunk strings takes tens of milliseconds. Plain hits
read single chunks straight out of the memory-mapped file, so opening stays
at a few milliseconds and nothing is decoded until asked for.

Per-chunk strings rather than one big string: CPython stores a string at
the width of its widest character, so one emoji would make a 33 M-character
blob 132 MB; most chunks are ASCII and stay at one byte per character.

Files:

* ``chunks.json`` — ``{"paths": [...], "languages": [...]}`` (distinct values);
* ``chunks.npy``  — int64 (n, 6), one line per document in build order:
  row, path id, language id, start line, byte start, byte length;
* ``texts.bin``   — every text, UTF-8 (``surrogatepass``), concatenated.
"""

from __future__ import annotations

import bisect
import json
import mmap
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROW, PATH, LANG, START_LINE, BYTE_START, BYTE_LEN = range(6)
_ENC = "utf-8"
_ERRORS = "surrogatepass"


class CorpusWriter:
    """Streams texts to ``texts.bin`` as they come; metadata is written at the end."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._fh = open(directory / "texts.bin", "wb")  # noqa: SIM115 - closed in finish()
        self._rows: list[tuple[int, int, int, int, int, int]] = []
        self._paths: dict[str, int] = {}
        self._langs: dict[str, int] = {}
        self._seen: set[int] = set()
        self._byte = 0

    def add(self, row: int, path: str, language: str, start_line: int, text: str) -> None:
        if row < 0 or row in self._seen:
            raise ValueError(f"row {row} is negative or repeated")
        self._seen.add(row)
        data = text.encode(_ENC, _ERRORS)
        self._fh.write(data)
        pid = self._paths.setdefault(path, len(self._paths))
        lid = self._langs.setdefault(language, len(self._langs))
        self._rows.append((row, pid, lid, start_line, self._byte, len(data)))
        self._byte += len(data)

    def finish(self) -> None:
        self._fh.close()
        table = np.asarray(self._rows, dtype=np.int64).reshape(-1, 6)
        np.save(self._dir / "chunks.npy", table)
        (self._dir / "chunks.json").write_text(
            json.dumps({"paths": list(self._paths), "languages": list(self._langs)}, ensure_ascii=True),
            encoding="utf-8")


@dataclass(frozen=True)
class ChunkMeta:
    row: int
    path: str
    language: str
    start_line: int


class Corpus:
    """Read side. Thread-safe: the data is immutable and the lazy load is locked."""

    def __init__(self, directory: Path) -> None:
        self.table = np.load(directory / "chunks.npy")
        names = json.loads((directory / "chunks.json").read_text(encoding="utf-8"))
        self._paths: list[str] = names["paths"]
        self._langs: list[str] = names["languages"]
        self.rows = self.table[:, ROW]
        self._k_of_row = np.full(int(self.rows.max()) + 1 if len(self.rows) else 0, -1, dtype=np.int64)
        self._k_of_row[self.rows] = np.arange(len(self.rows))
        self._fh = open(directory / "texts.bin", "rb")  # noqa: SIM115 - closed in close()
        self._map: mmap.mmap | bytes = b""
        if (directory / "texts.bin").stat().st_size:  # mmap refuses empty files
            self._map = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._lock = threading.Lock()
        self._texts: list[str] | None = None
        self._starts: list[int] | None = None
        self._fold: tuple[bytes, list[int]] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            self._map.close()
        self._fh.close()

    def index_of(self, row: int) -> int:
        """Position of a row in the table, -1 when absent."""
        return int(self._k_of_row[row]) if 0 <= row < len(self._k_of_row) else -1

    def meta(self, k: int) -> ChunkMeta:
        r = self.table[k]
        return ChunkMeta(row=int(r[ROW]), path=self._paths[int(r[PATH])],
                         language=self._langs[int(r[LANG])], start_line=int(r[START_LINE]))

    def text(self, k: int) -> str:
        if self._texts is not None:
            return self._texts[k]
        lo = int(self.table[k, BYTE_START])
        return self._map[lo:lo + int(self.table[k, BYTE_LEN])].decode(_ENC, _ERRORS)

    def texts(self) -> list[str]:
        """Every text by table position, decoded once and kept (regex search reads them all)."""
        if self._texts is None:
            with self._lock:
                if self._texts is None:
                    data = self._map
                    self._texts = [data[lo:lo + n].decode(_ENC, _ERRORS)
                                   for lo, n in self.table[:, BYTE_START:BYTE_LEN + 1].tolist()]
        return self._texts

    def chunks_containing(self, literal: str, *, fold: bool) -> list[int]:
        """Table positions (ascending) of chunks that may contain ``literal``.

        Searches the raw UTF-8 bytes, so nothing is decoded. With ``fold``
        (an ASCII literal, case-insensitive) the bytes are ASCII-lowered once
        and kept, and every chunk holding non-ASCII text is included too:
        ``re.IGNORECASE`` equates a few non-ASCII letters with ASCII ones
        (``\u017f`` with ``s``, ``\u212a`` with ``k``) that lowering cannot see.
        """
        if fold:
            hay, extra = self._folded()
            needle = literal.lower().encode("ascii")
        else:
            hay, extra = self._map, []
            needle = literal.encode(_ENC, _ERRORS)
        starts = self._byte_starts()
        found: list[int] = []
        pos = hay.find(needle)
        while pos >= 0:
            k = bisect.bisect_right(starts, pos) - 1
            found.append(k)
            if k + 1 >= len(starts):
                break
            pos = hay.find(needle, starts[k + 1])
        return sorted(set(found).union(extra)) if extra else found

    def _byte_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = self.table[:, BYTE_START].tolist()
        return self._starts

    def _folded(self) -> tuple[bytes, list[int]]:
        """ASCII-lowered bytes of ``texts.bin`` and the positions of non-ASCII chunks."""
        if self._fold is None:
            with self._lock:
                if self._fold is None:
                    data = bytes(self._map)
                    high = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) >= 0x80)
                    ks = np.searchsorted(self.table[:, BYTE_START], high, side="right") - 1
                    self._fold = (data.lower(), np.unique(ks).tolist())
        return self._fold

    def allowed_positions(self, allowed_rows: np.ndarray | None) -> np.ndarray | None:
        """The row mask re-indexed by table position (rows outside the mask are not allowed)."""
        if allowed_rows is None:
            return None
        mask = np.asarray(allowed_rows, dtype=bool).ravel()
        ok = np.zeros(len(self.rows), dtype=bool)
        inside = self.rows < len(mask)
        ok[inside] = mask[self.rows[inside]]
        return ok
