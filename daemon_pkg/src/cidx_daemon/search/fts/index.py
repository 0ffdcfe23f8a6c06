"""Build and search the full-text index of one generation.

Directory layout (everything immutable once built)::

    <dir>/main/         tantivy index, one document per chunk
    <dir>/vocab/        tantivy index, one document per distinct token (fuzzy)
    <dir>/fts.json      format version + counts, written last (= complete)

The index holds no text: a hit's chunk id leads to its row in the generation's
chunk table (``index/chunk_table.py``), which holds text, path, language and
lines once for everything.

Incremental builds: a generation that differs from the previous one in a few
files starts from hard links of the previous index's files (tantivy never
rewrites a segment file; a commit writes new segments, delete bitsets and a new
``meta.json`` by rename), deletes the documents of the chunk ids that are gone,
adds the new chunks and commits: milliseconds instead of rebuilding everything.
Chunk ids are never reused, which is what makes the carried-over documents valid.

Main index fields (all built by ``analyzer``, tantivy only splits on spaces):

* ``cid``       u64, indexed + fast: the chunk id, the delete key and the filter key;
* ``parts``     every word replaced by its parts, lower-case, with positions
  (phrases); ``parts_cs`` the same in original case;
* ``compound``  only compound words, whole, lower-case, frequencies only;
  ``compound_cs`` the same in original case.

Filtering happens inside tantivy (post-filtering would return fewer than
``limit`` hits): the allowed rows' chunk ids become a ``TermSetQuery`` on
``cid`` -- a required, zero-scoring clause when the
allowed set is the smaller side, else an excluding clause over the
disallowed rows -- so BM25 scores are the same with or without a filter.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tantivy

from . import highlight as highlight_mod
from . import query, regex_scan
from .analyzer import PreparedStreams, StreamBuilder, chunk_lines
from .highlight import LineMatch, Snippet

if TYPE_CHECKING:
    from cidx_daemon.index.chunk_table import ChunkTable

FORMAT_VERSION = 2
WRITER_HEAP = 160_000_000
#: Alternatives kept per fuzzy term (closest first); bounds the query size.
MAX_EXPANSIONS = 64
_PROGRESS_EVERY = 256

_CASE_FIELDS = query.Fields(parts="parts", compound="compound")
_CS_FIELDS = query.Fields(parts="parts_cs", compound="compound_cs")


class FtsQueryError(ValueError):
    """A query that cannot run as given (bad regex); the message is one line for the user."""


@dataclass
class FtsHit:
    """One matching chunk. Lines are FILE-absolute; ``matches`` are its matching lines."""

    row: int
    score: float
    path: str
    language: str
    start_line: int
    end_line: int
    text: str
    matches: list[LineMatch]
    snippet: Snippet | None
    #: Set when the search ran with ``highlight=False``: computes (matches, snippet) later.
    pending: Callable[[], tuple[list[LineMatch], Snippet | None]] | None = field(
        default=None, repr=False, compare=False)

    def highlighted(self) -> FtsHit:
        """Fill ``matches``/``snippet`` if they were deferred (hybrid search highlights
        only the rows it returns, not its whole 5 x limit fusion window)."""
        if self.pending is not None:
            self.matches, self.snippet = self.pending()
            self.pending = None
        return self


class _TantivyPath:
    """A path tantivy can take: it wants valid UTF-8, and a project's path may hold any bytes.

    Such a directory is opened once and reached as ``/proc/self/fd/N`` (Linux), kept open
    while tantivy may open files in it; other paths pass through unchanged.
    """

    def __init__(self, directory: Path) -> None:
        self.fd: int | None = None
        text = str(directory)
        try:
            text.encode("utf-8")
            self.path = text
        except UnicodeEncodeError:
            self.fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self.path = f"/proc/self/fd/{self.fd}"

    def __truediv__(self, name: str) -> str:
        return f"{self.path}/{name}"

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self) -> None:
        self.close()


def _main_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_unsigned_field("cid", stored=False, indexed=True, fast=True)
    for f in (_CASE_FIELDS, _CS_FIELDS):
        sb.add_text_field(f.parts, stored=False, tokenizer_name="whitespace", index_option="position")
        sb.add_text_field(f.compound, stored=False, tokenizer_name="whitespace", index_option="freq")
    return sb.build()


def _vocab_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("cs", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("lower", stored=False, tokenizer_name="raw", index_option="basic")
    return sb.build()


def _threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def build_fts_index(directory: Path, table: ChunkTable, rows: Iterable[int] | None = None, *,
                    previous: Path | None = None, removed_cids: Iterable[int] = (),
                    progress: Callable[[int], None] | None = None,
                    prepared: PreparedStreams | None = None) -> None:
    """Write the full-text index of ``table`` into ``directory`` (which must hold none).

    ``rows`` (default: all, in order) are the rows to add. With ``previous`` (the
    FTS directory of the generation this one updates) its files are hard-linked
    first and the documents of ``removed_cids`` deleted, so ``rows`` need only be
    the new ones (see the module docstring). ``prepared``: the rows' streams were
    computed where they were chunked (one per row of ``rows``, in order), which
    takes that work off this, the one serial step before full text answers.
    ``progress`` receives the number of rows added since its last call. ``fts.json``
    is written last, so a crash leaves a directory ``open`` refuses.
    """
    from cidx_daemon.index.generation import link_tree

    directory = Path(directory)
    todo = range(len(table)) if rows is None else rows
    builder = StreamBuilder() if prepared is None else None
    if previous is not None:
        link_tree(Path(previous), directory)
        (directory / "fts.json").unlink()
    else:
        (directory / "main").mkdir(parents=True)
        (directory / "vocab").mkdir()
    where = _TantivyPath(directory)
    if previous is not None:
        main = tantivy.Index.open(where / "main")
    else:
        main = tantivy.Index(_main_schema(), path=where / "main")
    writer = main.writer(heap_size=WRITER_HEAP, num_threads=_threads())
    pending = 0
    gone = [int(c) for c in removed_cids]
    if gone:  # by query: delete_documents_by_term encodes a u64 term so that it matches nothing
        writer.delete_documents_by_query(tantivy.Query.term_set_query(main.schema, "cid", gone))
    cids = table.cids
    if prepared is not None:
        todo = list(todo)
        if len(todo) != len(prepared.streams):
            raise ValueError(f"{len(prepared.streams)} prepared streams for {len(todo)} rows")
        docs: Iterable[tuple[int, tuple[str, str]]] = zip(todo, prepared.streams, strict=True)
    else:
        docs = ((row, builder.streams(table.text(row))) for row in todo)  # type: ignore[union-attr]
    for row, (parts, compound) in docs:
        tdoc = tantivy.Document()
        tdoc.add_unsigned("cid", int(cids[row]))
        tdoc.add_text("parts", parts.lower())
        tdoc.add_text("parts_cs", parts)
        tdoc.add_text("compound", compound.lower())
        tdoc.add_text("compound_cs", compound)
        writer.add_document(tdoc)
        pending += 1
        if progress is not None and pending >= _PROGRESS_EVERY:
            progress(pending)
            pending = 0
    tokens = set(builder.new_tokens()) if builder is not None else prepared.tokens  # type: ignore[union-attr]
    # tantivy commits without the GIL: the vocabulary is built meanwhile (a third off this step).
    with ThreadPoolExecutor(1, thread_name_prefix="cidx-fts-commit") as pool:
        committed = pool.submit(_commit, writer)
        _build_vocab(where / "vocab", tokens, extend=previous is not None)
        committed.result()
    if progress is not None and pending:
        progress(pending)
    main.reload()
    (directory / "fts.json").write_text(json.dumps({"format": FORMAT_VERSION,
                                                    "docs": main.searcher().num_docs}), encoding="utf-8")


def _commit(writer: tantivy.IndexWriter) -> None:
    writer.commit()
    writer.wait_merging_threads()


def _build_vocab(directory: str, tokens: Iterable[str], *, extend: bool) -> None:
    """The distinct tokens (fuzzy expansion). Extending adds the new chunks' tokens; a
    token seen again or no longer used costs an extra candidate, never a wrong hit."""
    index = tantivy.Index.open(directory) if extend else tantivy.Index(_vocab_schema(), path=directory)
    writer = index.writer(heap_size=50_000_000, num_threads=1)
    for term in sorted(tokens):
        doc = tantivy.Document()
        doc.add_text("cs", term)
        doc.add_text("lower", term.lower())
        writer.add_document(doc)
    writer.commit()
    writer.wait_merging_threads()


class FtsIndex:
    """A read-only FTS index. One instance serves any number of threads.

    Each search takes its own tantivy ``Searcher`` (an Arc clone, ~1 us) from
    a reader with manual reload: the generation never changes, so there is
    nothing to reload and no watcher thread. The fuzzy vocabulary index and
    the decoded texts (regex) load on first use, under a lock.
    """

    def __init__(self, directory: _TantivyPath, main: tantivy.Index, table: ChunkTable) -> None:
        self.directory = directory
        self._main = main
        self._schema = main.schema
        self.table = table
        self._lock = threading.Lock()
        self._vocab: tantivy.Index | None = None

    @classmethod
    def open(cls, directory: Path, table: ChunkTable) -> FtsIndex:
        directory = Path(directory)
        meta = json.loads((directory / "fts.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{directory}: FTS format {meta.get('format')}, expected {FORMAT_VERSION}")
        where = _TantivyPath(directory)
        main = tantivy.Index.open(where / "main")
        main.config_reader("Manual")  # immutable generation: no file watcher thread
        return cls(where, main, table)

    @property
    def num_docs(self) -> int:
        return int(self._main.searcher().num_docs)

    def __len__(self) -> int:
        return len(self.table)

    # ------------------------------------------------------------------ search

    def search(self, query_text: str, *, limit: int, case_sensitive: bool = False, edit_distance: int = 0,
               regex: bool = False, snippet_lines: int = 5, allowed_rows: np.ndarray | None = None,
               min_score: float | None = None, highlight: bool = True) -> list[FtsHit]:
        """Best ``limit`` chunks, score descending then row ascending.

        With ``highlight=False`` the matching lines and snippet are computed only
        when ``FtsHit.highlighted()`` is called.

        ``allowed_rows`` is a bool mask indexed by row (rows past its end are
        not allowed); it restricts the search itself, so up to ``limit`` hits
        come back whenever that many allowed chunks match.
        """
        if limit <= 0 or len(self.table) == 0:
            return []
        allowed = _row_mask(allowed_rows, len(self.table))
        if allowed is not None and not allowed.any():
            return []
        if regex:
            return self._search_regex(query_text, limit, case_sensitive, snippet_lines, allowed, min_score,
                                      highlight)
        expand = self._expander(case_sensitive, edit_distance) if edit_distance > 0 else None
        planned = query.plan(query.parse_query(query_text), case_sensitive=case_sensitive, expand=expand)
        if not planned:
            return []
        fields = _CS_FIELDS if case_sensitive else _CASE_FIELDS
        searcher = self._main.searcher()
        idf = _idf(searcher) if expand is not None else None
        tq = self._filtered(query.to_tantivy(planned, self._schema, fields, idf), allowed)
        ranked = _top(searcher, tq, limit, self.table)
        shown = highlight_mod.shown_clauses(planned)
        hits: list[FtsHit] = []
        for score, row in ranked:
            if min_score is not None and score < min_score:
                break
            text = self.table.text(row)

            def spans(text: str = text) -> highlight_mod.Spans:
                return highlight_mod.term_spans(text, shown, case_sensitive=case_sensitive)

            hits.append(self._hit(row, score, text, spans, snippet_lines, highlight))
        return hits

    def _filtered(self, q: tantivy.Query, allowed: np.ndarray | None) -> tantivy.Query:
        if allowed is None:
            return q
        n_ok = int(allowed.sum())
        if n_ok == len(allowed):
            return q
        cids = self.table.cids
        if n_ok <= len(allowed) - n_ok:
            keep = tantivy.Query.term_set_query(self._schema, "cid", cids[allowed].tolist())
            filt = (tantivy.Occur.Must, tantivy.Query.const_score_query(keep, 0.0))
        else:
            drop = tantivy.Query.term_set_query(self._schema, "cid", cids[~allowed].tolist())
            filt = (tantivy.Occur.MustNot, drop)
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, q), filt])

    def _expander(self, case_sensitive: bool, distance: int) -> query.Expander:
        vocab = self._vocab_index()
        searcher = vocab.searcher()
        schema = vocab.schema
        field = "cs" if case_sensitive else "lower"

        def expand(term: str) -> query.Alternatives:
            d = query.max_distance(term, distance)
            if d == 0:
                return {term: 1.0}
            fq = tantivy.Query.fuzzy_term_query(schema, field, term, d, True, False)
            found: set[str] = set()
            for _score, addr in searcher.search(fq, 1000, count=False).hits:
                value = searcher.doc(addr).get_first("cs")
                if isinstance(value, str):
                    found.add(value if case_sensitive else value.lower())
            ranked = sorted((query.edit_distance(term, t), t) for t in found)[:MAX_EXPANSIONS]
            alts = {t: 0.5 ** dist for dist, t in ranked}  # each edit halves the weight
            alts.setdefault(term, 1.0)  # absent from the index: harmless, keeps phrases well-formed
            return alts

        return expand

    def _vocab_index(self) -> tantivy.Index:
        with self._lock:
            if self._vocab is None:
                vocab = tantivy.Index.open(self.directory / "vocab")
                vocab.config_reader("Manual")
                self._vocab = vocab
            return self._vocab

    def _search_regex(self, pattern: str, limit: int, case_sensitive: bool, snippet_lines: int,
                      allowed: np.ndarray | None, min_score: float | None,
                      highlight: bool) -> list[FtsHit]:
        try:
            lr = regex_scan.compile_line_regex(pattern, case_sensitive=case_sensitive)
        except regex_scan.RegexError as exc:
            raise FtsQueryError(str(exc)) from None
        scored = [(float(n), row) for row, n in regex_scan.scan(self.table, lr, allowed)]
        scored.sort(key=lambda t: (-t[0], t[1]))
        hits: list[FtsHit] = []
        for score, row in scored[:limit]:
            if min_score is not None and score < min_score:
                break
            text = self.table.text(row)

            def spans(text: str = text) -> highlight_mod.Spans:
                return highlight_mod.regex_spans(text, lr.rx)

            hits.append(self._hit(row, score, text, spans, snippet_lines, highlight))
        return hits

    def _hit(self, row: int, score: float, text: str, spans: Callable[[], highlight_mod.Spans],
             snippet_lines: int, highlight: bool) -> FtsHit:
        rec = self.table.file_of(row)
        start_line = self.table.lines(row)[0]
        n_lines = len(chunk_lines(text))

        def compute() -> tuple[list[LineMatch], Snippet | None]:
            found = spans()
            return (highlight_mod.line_matches(text, start_line, found),
                    highlight_mod.snippet(text, start_line, found, snippet_lines))

        hit = FtsHit(row=row, score=score, path=rec.path, language=rec.language,
                     start_line=start_line, end_line=start_line + n_lines - 1, text=text,
                     matches=[], snippet=None, pending=compute)
        return hit.highlighted() if highlight else hit


def _row_mask(allowed_rows: np.ndarray | None, n: int) -> np.ndarray | None:
    """The caller's row mask, sized to the table (rows past its end are not allowed)."""
    if allowed_rows is None:
        return None
    mask = np.asarray(allowed_rows, dtype=bool).ravel()
    if len(mask) == n:
        return mask
    ok = np.zeros(n, dtype=bool)
    ok[:min(n, len(mask))] = mask[:n]
    return ok


def _top(searcher: tantivy.Searcher, q: tantivy.Query, limit: int,
         table: ChunkTable) -> list[tuple[float, int]]:
    """Top ``limit`` (score, row), ties broken by row whatever tantivy's doc order.

    tantivy breaks score ties by its own doc address, which is not the row
    order; so the window grows until no unseen document can tie with the
    last one kept.
    """
    window = 2 * limit + 8
    while True:
        found = searcher.search(q, window, count=False).hits
        cids = searcher.fast_field_values("cid", [addr for _, addr in found])
        rows = table.rows_of_cids(cids)
        if len(rows) != len(found):
            raise RuntimeError("the full-text index names chunks its generation does not hold")
        ranked = sorted(((float(s), int(r)) for (s, _), r in zip(found, rows.tolist(), strict=True)),
                        key=lambda sr: (-sr[0], sr[1]))
        if len(found) < window or ranked[limit - 1][0] > ranked[-1][0]:
            return ranked[:limit]
        window *= 4


def _idf(searcher: tantivy.Searcher) -> query.Idf:
    """BM25 idf as tantivy computes it, from the same searcher the query runs on."""
    n = searcher.num_docs

    def idf(field: str, term: str) -> float | None:
        df = searcher.doc_freq(field, term)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5)) if df else None

    return idf
