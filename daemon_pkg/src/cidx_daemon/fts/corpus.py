"""The FTS directory's own copy of every chunk: metadata and text by row.

Why not tantivy stored fields: a regex search must read *every* chunk, and
40,000 ``searcher.doc`` calls cost about a second, while one UTF-8 blob
decodes in tens of milliseconds. Plain hits read single chunks straight out
of the memory-mapped blob, so opening stays at a few milliseconds and
nothing is decoded until asked for.

Files:

* ``chunks.json`` — ``{"paths": [...], "languages": [...]}`` (distinct values);
* ``chunks.npy``  — int64 (n, 8), one line per document in build order:
  row, path id, language id, start line, byte start, byte length,
  char start, char length;
* ``texts.bin``   — every text, UTF-8 (``surrogatepass``), joined by ``\\n``:
  decoded whole it is ``"\\n".join(texts)``, so each chunk begins a line
  and ``^``/``$`` (MULTILINE) behave per line across the blob.
"""

from __future__ import annotations

import json
import mmap
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROW, PATH, LANG, START_LINE, BYTE_START, BYTE_LEN, CHAR_START, CHAR_LEN = range(8)
_ENC = "utf-8"
_ERRORS = "surrogatepass"


class CorpusWriter:
    """Streams texts to ``texts.bin`` as they come; metadata is written at the end."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._fh = open(directory / "texts.bin", "wb")  # noqa: SIM115 - closed in finish()
        self._rows: list[tuple[int, int, int, int, int, int, int, int]] = []
        self._paths: dict[str, int] = {}
        self._langs: dict[str, int] = {}
        self._seen: set[int] = set()
        self._byte = 0
        self._char = 0

    def add(self, row: int, path: str, language: str, start_line: int, text: str) -> None:
        if row < 0 or row in self._seen:
            raise ValueError(f"row {row} is negative or repeated")
        self._seen.add(row)
        data = text.encode(_ENC, _ERRORS)
        if self._rows:
            self._fh.write(b"\n")
            self._byte += 1
            self._char += 1
        self._fh.write(data)
        pid = self._paths.setdefault(path, len(self._paths))
        lid = self._langs.setdefault(language, len(self._langs))
        self._rows.append((row, pid, lid, start_line, self._byte, len(data), self._char, len(text)))
        self._byte += len(data)
        self._char += len(text)

    def finish(self) -> None:
        self._fh.close()
        table = np.asarray(self._rows, dtype=np.int64).reshape(-1, 8)
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
    """Read side. Thread-safe: the blob is immutable and lazy loads are locked."""

    def __init__(self, directory: Path) -> None:
        self.table = np.load(directory / "chunks.npy")
        names = json.loads((directory / "chunks.json").read_text(encoding="utf-8"))
        self._paths: list[str] = names["paths"]
        self._langs: list[str] = names["languages"]
        self.rows = self.table[:, ROW]
        self._k_of_row = np.full(int(self.rows.max()) + 1 if len(self.rows) else 0, -1, dtype=np.int64)
        self._k_of_row[self.rows] = np.arange(len(self.rows))
        self._fh = open(directory / "texts.bin", "rb")  # noqa: SIM115 - closed in close()
        size = (directory / "texts.bin").stat().st_size
        self._map: mmap.mmap | bytes = b""
        if size:  # mmap refuses empty files
            self._map = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._lock = threading.Lock()
        self._blob: str | None = None
        self._lower: str | bool | None = False  # False: not computed yet; None: unusable

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
        if self._blob is not None:
            lo = int(self.table[k, CHAR_START])
            return self._blob[lo:lo + int(self.table[k, CHAR_LEN])]
        lo = int(self.table[k, BYTE_START])
        return self._map[lo:lo + int(self.table[k, BYTE_LEN])].decode(_ENC, _ERRORS)

    def allowed_positions(self, allowed_rows: np.ndarray | None) -> np.ndarray | None:
        """The row mask re-indexed by table position (rows outside the mask are not allowed)."""
        if allowed_rows is None:
            return None
        mask = np.asarray(allowed_rows, dtype=bool).ravel()
        ok = np.zeros(len(self.rows), dtype=bool)
        inside = self.rows < len(mask)
        ok[inside] = mask[self.rows[inside]]
        return ok

    def blob(self) -> str:
        """All texts as one string (``"\\n".join``), decoded once and kept."""
        if self._blob is None:
            with self._lock:
                if self._blob is None:
                    self._blob = bytes(self._map).decode(_ENC, _ERRORS)
        return self._blob

    def lower_blob(self) -> str | None:
        """``blob().lower()`` when it is offset-aligned with the blob and safe for
        case-insensitive literal search, else None.

        Lower-casing keeps offsets unless some character expands (``İ``), and
        ``re.IGNORECASE`` equates ``ı``/``ſ`` with ``i``/``s`` where
        ``str.lower`` does not; with either present a lowered literal could
        miss a real match, so the caller must scan with the regex itself.
        """
        if self._lower is False:
            blob = self.blob()
            with self._lock:
                if self._lower is False:
                    low = blob.lower()
                    usable = len(low) == len(blob) and "\u0131" not in blob and "\u017f" not in blob
                    self._lower = low if usable else None
        return self._lower if isinstance(self._lower, str) else None

    def char_starts(self) -> np.ndarray:
        return self.table[:, CHAR_START]
