"""Signature vectors: each function's name and parameters (and, in a shared chunk, its own text)
embedded on their own, beside its chunk.

Why: a chunk's vector reads its whole text, so a three-line function merged with its
neighbours into one chunk, or a long one whose body is mostly plumbing, is diluted: a
description of what it does ("return the number of days in a month") meets the body's
average, not ``def monthrange(year, month)``. Embedding each callable's signature line
alone (with its file path and enclosing class, as the chunk's header does) and scoring a
chunk by the better of its own vector and its best signature's finds those. Measured on
the quality benchmark with the full ranking (hybrid / semantic): dev NDCG@10
0.903 / 0.894 -> 0.904 / 0.897, held-out (never tuned on) 0.875 / 0.850 -> 0.893 / 0.864,
stdlib MRR@10 0.543 / 0.528 -> 0.567 / 0.548. Only callables (functions, methods, macros):
adding classes, structs, interfaces and types scored lower on every set; so did folding
the signatures into the chunk's vector (a mean) instead of taking the best, and so did
dropping the path from their header. Cost: ~0.9 signatures per chunk, short ones: the
stdlib set's first index embeds 8-11% longer (101.6 / 109.8 s -> 112.4 / 118.6 s, from an
empty cache, alternating), and a semantic query scores them (+0.5 ms there; see ``best``
for big projects).

Functions that share a chunk with other definitions (small ones merged with their
neighbours) are also embedded by their own text, up to ``BODY_CHARS`` and the next
definition (VERSION 2): "return True if the future is currently executing" then meets
``return self._state == RUNNING`` alone. Measured against signatures alone (hybrid /
semantic): stdlib MRR@10 0.567 / 0.548 -> 0.580 / 0.569 (179 targets first instead of 174,
68 missing instead of 78), dev 0.904 / 0.897 unchanged, held-out 0.893 / 0.864 -> 0.893 /
0.862. Replacing the signature by that text instead of adding it: held-out 0.887 / 0.857;
doing it for every function, also one alone in its chunk: stdlib 0.578 / 0.565. Cost: on
the stdlib set 6,540 texts beside 4,756 chunks instead of 4,000 (268k tokens instead of 106k,
beside the chunks' 684k).

Storage (in a generation, format 4)::

    sig_owner.npy          int64 (m,): the chunk row of each signature slot, ascending
    sig_vectors.npy ...    the slots' vectors, a ``vector_store`` of their own
                           (``vector_store.SIGNATURES``: base, delta, row map)

A row's slots exist once its signatures are embedded (``signed.npy``; the embedder computes
a new chunk's vector and its signatures' together), so a full-text-first generation has
none for its new rows, and a row's slots are carried with the row. An index made before
signatures (or by another ``VERSION`` of them) keeps its chunks' vectors: its rows are
unsigned, and the next embedding pass embeds only their signatures. Slots are kept in row
order, so the best slot per row is one ``np.maximum.reduceat``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cidx_daemon.index import vector_store
from cidx_daemon.index.chunk_table import ChunkTable
from cidx_daemon.index.vector_store import Vectors
from cidx_daemon.search.fts import analyzer

#: Bump when what is embedded for a signature changes: the next index rebuilds them.
VERSION = 2
OWNERS = "sig_owner.npy"
#: bool (n,): which rows' signatures are embedded (a generation without it: the embedded rows).
SIGNED = "signed.npy"
FILES = (OWNERS, vector_store.SIGNATURES.base)
#: Kinds (``chunking.Symbol.kind``) whose signatures are embedded.
KINDS = frozenset({"function", "method", "macro"})
#: A signature is cut at this many characters (a long parameter list says enough by then).
MAX_CHARS = 300
#: A function that shares its chunk is also embedded by its own first characters (its signature
#: and the start of its body). 300 measured best of 200 / 300 / 500 / 600 / 1200.
BODY_CHARS = 300
#: Up to this many signatures a query scores them all (one matrix product, ~1 ms); beyond, only
#: those of the ``CANDIDATES`` rows closest by their own vectors (``Signatures.best``).
FULL_SCAN = 16_000
CANDIDATES = 2000
_SPACE = re.compile(r"\s+")


def signature(lines: list[str], first: int) -> str:
    """The definition starting at ``lines[first]`` up to where its body starts.

    Language-agnostic on purpose: brackets are balanced, and the first ``{``, ``;`` or ``:``
    (not ``::``) outside them ends it (Python's ``:`` is kept; a brace language's return type after ``)``
    is kept up to its ``{``). A line that ends outside brackets without one of those (a
    decorator-less one-liner, an abstract declaration) ends it too.
    """
    depth = 0
    out: list[str] = []
    text = "\n".join(lines[first:first + 12])[:MAX_CHARS * 2]
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif ch == ":" and (text[i + 1:i + 2] == ":" or text[i - 1:i] == ":"):
            pass  # a path (``F::Output``, ``std::io``), not the end
        elif depth == 0 and ch in "{;:":
            if ch == ":":
                out.append(ch)
            break
        elif depth == 0 and ch == "\n" and out and not "".join(out).rstrip().endswith((",", "(", "\\")):
            break
        out.append(ch)
    return _SPACE.sub(" ", "".join(out)).strip()[:MAX_CHARS]


def name_words(name: str) -> str:
    """A compound name's words on a line of their own (``\nget content charset`` for
    ``get_content_charset``, ``getContentCharset``), else nothing: the model reads words,
    and splits an identifier into word pieces that are not (stdlib MRR@10 0.580 -> 0.583, its
    held-out twin 0.546 -> 0.555; a one-word name repeated in lower case gained nothing)."""
    pieces = [p.lower() for p in analyzer.parts(name.strip("_"))]
    return "\n" + " ".join(pieces) if len(pieces) > 1 else ""


def texts_for(table: ChunkTable, row: int) -> list[str]:
    """What the embedder reads for each callable the row defines: its signature and, when the
    chunk holds other definitions too, its own text (``BODY_CHARS``), each with the file path and
    enclosing definitions above (the chunk header's form)."""
    _scope, symbols = table.symbols(row)
    wanted = [s for s in symbols if s.kind in KINDS]
    if not wanted:
        return []
    start, _end = table.lines(row)
    lines = table.text(row).split("\n")
    path = table.file_of(row).path
    shared = sum(1 for s in symbols if s.kind in KINDS or s.kind == "class") > 1
    starts = sorted({s.line for s in symbols})
    out = []
    for sym in wanted:
        i = sym.line - start
        if not 0 <= i < len(lines):
            continue
        header = f"{path} {sym.parent}" if sym.parent else path
        sig = signature(lines, i)
        if sig:
            out.append(f"{header}\n{sig}{name_words(sym.name)}")
        if sig and shared:
            # up to the next definition the chunk holds (a nested one ends it too: its own
            # texts stand for it), or the chunk's end
            after = [n for n in starts if n > sym.line]
            body = "\n".join(lines[i:(after[0] - start) if after else len(lines)]).strip()[:BODY_CHARS]
            if body != sig:
                out.append(f"{header}\n{body}")
    return out


@dataclass
class Signatures:
    """A generation's signature slots: their owner rows and their vectors."""

    owners: np.ndarray  # int64 (m,), ascending
    vectors: Vectors
    _segments: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.owners)

    def best(self, scores: np.ndarray, query: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """``scores`` (one per chunk row) raised to each row's best signature score.

        With more than ``FULL_SCAN`` signatures only the ``CANDIDATES`` rows closest by their
        own vectors (among ``mask``) are raised: a signature lifts a chunk that is near
        already (on every quality set the closest 1,000 rows give the same figures as all of
        them), and scoring every signature doubled the semantic step of a big project
        (60k chunks, 55k signatures: 3.2-3.8 ms by the chunks' vectors, +3-5 ms for all
        signatures, +1.1-1.6 ms for the closest rows'). Below it one product over all of
        them is cheaper than picking (4,756 chunks: +0.1 ms vs +0.8 ms).
        """
        if not len(self.owners):
            return scores
        owners = np.asarray(self.owners)
        if len(owners) <= FULL_SCAN:
            if self._segments is None:  # per generation (a benign race: same arrays)
                rows, starts = np.unique(owners, return_index=True)
                self._segments = (rows, starts)
            rows, starts = self._segments
            best = np.maximum.reduceat(self.vectors.scores(query), starts)
        else:
            near = np.where(mask, scores, -np.inf) if mask is not None else scores
            k = min(CANDIDATES, len(near))
            rows = np.argpartition(near, len(near) - k)[len(near) - k:]
            lo, hi = np.searchsorted(owners, rows, "left"), np.searchsorted(owners, rows, "right")
            rows, lo, counts = rows[hi > lo], lo[hi > lo], (hi - lo)[hi > lo]
            if not len(rows):
                return scores
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            slots = np.repeat(lo - starts, counts) + np.arange(int(counts.sum()))
            best = np.maximum.reduceat(self.vectors.take(slots) @ query, starts)
        out = np.array(scores, dtype=np.float32, copy=True)
        out[rows] = np.maximum(out[rows], best)
        return out


def open_signatures(gen_dir: Path, n_rows: int, dim: int) -> Signatures:
    """Memory-map a generation's slots; ValueError when they disagree with each other."""
    gen_dir = Path(gen_dir)
    owners = np.load(gen_dir / OWNERS, mmap_mode="r")
    vectors = vector_store.open_vectors(gen_dir, vector_store.SIGNATURES)
    if owners.ndim != 1 or owners.dtype != np.int64:
        raise ValueError(f"{OWNERS} is not an int64 vector")
    if vectors.shape != (len(owners), dim):
        raise ValueError(f"{OWNERS} and the signature vectors disagree")
    if len(owners) and (int(owners[0]) < 0 or int(owners[-1]) >= n_rows
                        or bool((np.diff(owners) < 0).any())):
        raise ValueError(f"{OWNERS} is not ascending within the chunk rows")
    return Signatures(owners, vectors)


def open_signed(gen_dir: Path, embedded: np.ndarray) -> np.ndarray:
    """The rows whose signatures are embedded; ValueError if the file is not such a mask."""
    path = Path(gen_dir) / SIGNED
    if not path.exists():  # written before the mask: every embedded row got its signatures with it
        return np.array(embedded, dtype=bool)
    signed = np.load(path, mmap_mode="r")
    if signed.dtype != np.bool_ or signed.shape != embedded.shape:
        raise ValueError(f"{SIGNED} does not match the chunk rows")
    return signed


def write_empty(gen_dir: Path, dim: int) -> None:
    np.save(Path(gen_dir) / OWNERS, np.zeros(0, dtype=np.int64))
    vector_store.write_dense(gen_dir, np.zeros((0, dim), dtype=np.float32), vector_store.SIGNATURES)


def carry(previous: Signatures | None, previous_dir: Path | None, gen_dir: Path, dim: int,
          blocks: list[tuple[int, int, int]]) -> None:
    """The slots of the rows ``blocks`` (new first row, old first row, count) carry over, at
    their new rows; every other row has none yet."""
    if previous is None or previous_dir is None or previous.vectors.dim != dim or not len(previous):
        write_empty(gen_dir, dim)
        return
    owners = np.asarray(previous.owners)
    source = previous.vectors.source()
    new_owners: list[np.ndarray] = []
    mapping: list[np.ndarray] = []
    for new_first, old_first, count in sorted(blocks):
        lo, hi = np.searchsorted(owners, [old_first, old_first + count])
        new_owners.append(owners[lo:hi] - old_first + new_first)
        mapping.append(source[lo:hi])
    _write(previous, previous_dir, gen_dir, new_owners, mapping, None)


def with_new(current: Signatures | None, current_dir: Path, gen_dir: Path, rows: np.ndarray,
             counts: np.ndarray, vectors: np.ndarray) -> None:
    """The slots of ``current`` with those of ``rows`` replaced by ``vectors`` (``counts[i]``
    of them for ``rows[i]``, in order). ``current`` None: a generation made before signatures."""
    if current is None or not len(current) or vectors.shape[1] != current.vectors.dim:
        # nothing to keep (none yet, or another model's): the slots of ``rows``, written dense
        owners = np.repeat(np.asarray(rows, dtype=np.int64), counts)
        order = np.argsort(owners, kind="stable")
        np.save(Path(gen_dir) / OWNERS, owners[order])
        vector_store.write_dense(gen_dir, np.asarray(vectors)[order], vector_store.SIGNATURES)
        return
    owners = np.asarray(current.owners)
    source = current.vectors.source()
    keep = ~np.isin(owners, rows)
    added = np.repeat(np.asarray(rows, dtype=np.int64), counts)
    all_owners = np.concatenate([owners[keep], added])
    all_map = np.concatenate([source[keep], current.vectors.stored + np.arange(len(added), dtype=np.int64)])
    order = np.argsort(all_owners, kind="stable")
    _write(current, current_dir, gen_dir, [all_owners[order]], [all_map[order]], vectors)


def _write(previous: Signatures, previous_dir: Path, gen_dir: Path, owners: list[np.ndarray],
           mapping: list[np.ndarray], new_vectors: np.ndarray | None) -> None:
    flat = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    np.save(Path(gen_dir) / OWNERS, flat.astype(np.int64, copy=False))
    vector_store.remapped(previous.vectors, previous_dir,
                          gen_dir, np.concatenate(mapping) if mapping else np.zeros(0, dtype=np.int64),
                          new_vectors, vector_store.SIGNATURES)
