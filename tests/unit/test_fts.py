"""Full-text engine: analyzer, query modes, line numbers, filters, concurrency.

Every index here is a real tantivy index in a tmp dir; nothing is mocked.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cidx_daemon.index.chunk_table import ChunkTable, ChunkTableWriter
from cidx_daemon.search.fts import (
    FtsHit,
    FtsIndex,
    FtsQueryError,
    analyzer,
    build_fts_index,
    code_tokens,
    highlight,
    regex_scan,
)
from helpers import run_in_threads


@dataclass(frozen=True)
class Doc:
    """One chunk of a test corpus: its row in the chunk table, where it comes from, its text."""

    row: int
    path: str
    language: str
    start_line: int
    text: str


def make_table(directory: Path, docs: list[Doc]) -> ChunkTable:
    """The generation's chunk table the index reads text and metadata from (rows 0..n-1)."""
    directory.mkdir(parents=True, exist_ok=True)
    writer = ChunkTableWriter()
    for d in sorted(docs, key=lambda d: d.row):
        n_lines = len(analyzer.chunk_lines(d.text))
        writer.add_file(d.path, d.language, "h", len(d.text), 0,
                        [(d.start_line, d.start_line + n_lines - 1, d.text)], [d.row])
    writer.write(directory)
    return ChunkTable(directory)


def make_index(directory: Path, docs: list[Doc]) -> FtsIndex:
    """A real table and a real index; documents are added in ``docs`` order."""
    table = make_table(directory / "table", docs)
    assert [d.row for d in sorted(docs, key=lambda d: d.row)] == list(range(len(docs)))
    build_fts_index(directory / "fts", table, [d.row for d in docs])
    return FtsIndex.open(directory / "fts", table)


def doc(row: int, text: str, *, path: str | None = None, language: str = "python",
        start_line: int = 1) -> Doc:
    return Doc(row=row, path=path or f"src/f{row}.py", language=language, start_line=start_line, text=text)


def rows(hits: list[FtsHit]) -> list[int]:
    return [h.row for h in hits]


CORPUS = [
    doc(0, "import urllib.request\n\nresp = urlopen(url)\ndata = resp.read()\n"),
    doc(1, "class HTTPResponse:\n    status = 200\n"),
    doc(2, "def parse_http_response(raw):\n    return raw.split()\n"),
    doc(3, "# read the file into memory\nwith open(p) as fh:\n    text = fh.read()\n"),
    doc(4, "# the file read is lazy\ncache = {}\n"),
    doc(5, "path = os.path.join(base, name)\n"),
    doc(6, "httpresponse = None  # lower-case on purpose\nResponse = object\n"),
    doc(7, "größe = Über + ÄpfelBaum\n"),
    doc(8, "def getURLFor2(x):\n    return x\n"),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> FtsIndex:
    return make_index(tmp_path_factory.mktemp("fts") / "fts", CORPUS)


# ----------------------------------------------------------------------------- analyzer


@pytest.mark.parametrize(("text", "expected"), [
    ("parse_http_response", ["parse_http_response", "parse", "http", "response"]),
    ("HTTPResponse", ["HTTPResponse", "HTTP", "Response"]),
    ("getURLFor2", ["getURLFor2", "get", "URL", "For", "2"]),
    ("urlopen(url)", ["urlopen", "url"]),
    ("__init__", ["__init__", "init"]),
    ("a.b->c", ["a", "b", "c"]),
    ("ÄpfelBaum", ["ÄpfelBaum", "Äpfel", "Baum"]),
    ("()", []),
])
def test_code_tokens_examples(text: str, expected: list[str]) -> None:
    assert code_tokens(text) == expected


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_code_tokens_properties(text: str) -> None:
    tokens = code_tokens(text)
    words = analyzer.words(text)
    # Each word, then its parts when it is compound; nothing else.
    expected = [t for w in words for t in ((w, *analyzer.parts(w)) if analyzer.is_compound(w) else (w,))]
    assert tokens == expected
    for word in words:
        assert word in tokens
        # Parts cover the word exactly, minus its underscores, in order.
        assert "".join(analyzer.parts(word)) == word.replace("_", "")
    for token in tokens:
        assert token in text


@given(st.from_regex(r"[A-Za-z0-9_]{1,20}", fullmatch=True))
def test_ascii_parts_are_camel_pieces(word: str) -> None:
    for part in analyzer.parts(word):
        assert re.fullmatch(r"[A-Z]+|[A-Z]?[a-z]+|[0-9]+", part), (word, part)
    # Splitting is stable: a part never splits further.
    for part in analyzer.parts(word):
        assert analyzer.parts(part) == (part,)


@given(st.text(alphabet=st.sampled_from("aZ_9 .(\né\u00c4\u01c5\u0660"), max_size=80))
def test_streams_match_reference_tokenizer(text: str) -> None:
    # The fast build path (bytes.translate for ASCII, caches) must equal the
    # reference definition, or queries and index would disagree.
    parts_stream, compound = analyzer.StreamBuilder().streams(text)
    words = analyzer.WORD_RE.findall(text)
    assert parts_stream.split() == [p for w in words for p in analyzer.parts(w)]
    assert compound.split() == [w for w in words if analyzer.is_compound(w)]


# ----------------------------------------------------------------------------- plain queries


def test_identifier_found_whole_and_by_parts(index: FtsIndex) -> None:
    assert rows(index.search("urlopen", limit=10)) == [0]
    assert rows(index.search("urlopen(", limit=10)) == [0]
    assert 1 in rows(index.search("response", limit=10))  # HTTPResponse
    assert 2 in rows(index.search("response", limit=10))  # parse_http_response
    assert rows(index.search("parse", limit=10)) == [2]
    assert set(rows(index.search("URL", limit=10))) == {0, 8}  # url, getURLFor2
    assert rows(index.search("init", limit=10)) == []


def test_compound_query_matches_its_parts_in_sequence(index: FtsIndex) -> None:
    found = rows(index.search("HTTPResponse", limit=10))
    # The identifier itself, its snake-case spelling, and the all-lower word.
    assert set(found) == {1, 2, 6}
    # The exact identifier ranks first (whole term + phrase of parts).
    assert found[0] == 1


def test_results_sorted_by_score_then_row(index: FtsIndex) -> None:
    hits = index.search("read file the", limit=10)
    keys = [(-h.score, h.row) for h in hits]
    assert keys == sorted(keys)
    assert all(h.score > 0 for h in hits)


def test_case_sensitive(index: FtsIndex) -> None:
    assert set(rows(index.search("HTTPResponse", limit=10, case_sensitive=True))) == {1}
    assert rows(index.search("httpresponse", limit=10, case_sensitive=True)) == [6]
    # "Response" as a part of HTTPResponse and as a word; lower "response" only in row 2.
    assert set(rows(index.search("Response", limit=10, case_sensitive=True))) == {1, 6}
    assert rows(index.search("response", limit=10, case_sensitive=True)) == [2]
    assert set(rows(index.search("response", limit=10))) == {1, 2, 6}


def test_case_sensitive_highlights_only_exact_case(index: FtsIndex) -> None:
    (hit,) = index.search("Response", limit=10, case_sensitive=True, allowed_rows=_mask(9, [6]))
    assert [(m.line, m.columns) for m in hit.matches] == [(2, [(0, 8)])]


def test_fuzzy(index: FtsIndex) -> None:
    assert index.search("urlopne", limit=10) == []
    assert rows(index.search("urlopne", limit=10, edit_distance=2)) == [0]
    # Two substitutions: needs distance 2.
    assert index.search("urlxxen", limit=10, edit_distance=1) == []
    (hit,) = index.search("urlxxen", limit=10, edit_distance=2)
    assert hit.row == 0 and hit.score > 0
    assert [m.line for m in hit.matches] == [3]
    assert hit.matches[0].columns == [(7, 14)]


def test_fuzzy_scores_are_bm25_not_constant(tmp_path: Path) -> None:
    ix = make_index(tmp_path / "fts", [doc(0, "urlopen urlopen urlopen\nx = 1\ny = 2"),
                                       doc(1, "urlopen\na = 1\nb = 2\nc = 3\nd = 4\ne = 5")])
    hits = ix.search("urlopne", limit=10, edit_distance=1)
    assert rows(hits) == [0, 1]
    assert hits[0].score > hits[1].score


def test_fuzzy_rare_neighbour_does_not_outrank_the_common_word(tmp_path: Path) -> None:
    # Unblended, "slf" (in 1 chunk) would win on idf alone over "self" (in 10).
    docs = [doc(r, "self.x = 1") for r in range(10)] + [doc(10, "slf.x = 1")]
    hits = make_index(tmp_path / "fts", docs).search("self", limit=11, edit_distance=1)
    assert rows(hits) == [*range(10), 10]
    assert hits[0].score > hits[-1].score


def test_short_terms_are_not_fuzzed(index: FtsIndex) -> None:
    # A 2-letter typo at distance 2 would match nearly every short word.
    assert index.search("fh", limit=10, edit_distance=2) == index.search("fh", limit=10)


def test_phrase(index: FtsIndex) -> None:
    assert rows(index.search('"read the file"', limit=10)) == [3]
    assert set(rows(index.search("read the file", limit=10))) >= {3, 4}
    (hit,) = index.search('"read the file"', limit=10)
    assert [(m.line, m.columns) for m in hit.matches] == [(1, [(2, 6), (7, 10), (11, 15)])]


def test_dotted_name_is_a_phrase(index: FtsIndex) -> None:
    assert rows(index.search("os.path.join", limit=10)) == [5]
    assert rows(index.search("join.path.os", limit=10)) == []


def test_parts_phrase_crosses_identifier_boundaries(index: FtsIndex) -> None:
    # "HTTPResponse" and "parse_http_response" both hold the parts "http response".
    assert set(rows(index.search('"http response"', limit=10))) == {1, 2}


@pytest.mark.parametrize("text", ["()", "   ", "+-:*", '"', '""', "AND OR NOT", 'a:b +c -d "unterminated',
                                  "\\", "[", "~2", "^", "{}", "\x00"])
def test_query_syntax_never_crashes(index: FtsIndex, text: str) -> None:
    for kwargs in ({}, {"edit_distance": 2}, {"case_sensitive": True}):
        hits = index.search(text, limit=10, **kwargs)  # type: ignore[arg-type]
        assert isinstance(hits, list)
    assert index.search("()", limit=10) == []


def test_unicode(index: FtsIndex) -> None:
    assert rows(index.search("größe", limit=10)) == [7]
    assert rows(index.search("über", limit=10)) == [7]
    assert rows(index.search("über", limit=10, case_sensitive=True)) == []
    assert rows(index.search("baum", limit=10)) == [7]
    assert rows(index.search("Äpfel", limit=10, case_sensitive=True)) == [7]


# ----------------------------------------------------------------------------- regex


def test_regex_anchors_are_per_line(tmp_path: Path) -> None:
    ix = make_index(tmp_path / "fts", [
        doc(0, "x = 1\ndef top():\n    pass", start_line=10),
        doc(1, "class A:\n    def method(self):\n        pass"),
    ])
    (hit,) = ix.search(r"^def \w+", limit=10, regex=True)
    assert hit.row == 0
    assert [(m.line, m.text, m.columns) for m in hit.matches] == [(11, "def top():", [(0, 7)])]
    assert rows(ix.search(r"pass$", limit=10, regex=True)) == [0, 1]
    assert rows(ix.search(r"\Adef", limit=10, regex=True)) == [0]  # \A = start of a line


def test_regex_scores_count_matching_lines(tmp_path: Path) -> None:
    ix = make_index(tmp_path / "fts", [doc(0, "foo\nbar"), doc(1, "foo\nfoo foo\nfoo"), doc(2, "nothing")])
    hits = ix.search("fo+", limit=10, regex=True)
    assert [(h.row, h.score) for h in hits] == [(1, 3.0), (0, 1.0)]
    assert hits[0].matches[1].columns == [(0, 3), (4, 7)]


def test_regex_case(tmp_path: Path) -> None:
    ix = make_index(tmp_path / "fts", [doc(0, "URLopen"), doc(1, "urlopen")])
    assert rows(ix.search("urlopen", limit=10, regex=True)) == [0, 1]
    assert rows(ix.search("urlopen", limit=10, regex=True, case_sensitive=True)) == [1]
    assert rows(ix.search("(?i)urlopen", limit=10, regex=True, case_sensitive=True)) == [0, 1]


def test_regex_never_spans_lines(tmp_path: Path) -> None:
    ix = make_index(tmp_path / "fts", [doc(0, "alpha\nbeta"), doc(1, "alpha beta")])
    assert rows(ix.search(r"alpha\s+beta", limit=10, regex=True)) == [1]


@pytest.mark.parametrize("pattern", ["(", "[a-", "a{2,1}", "a**", "*"])
def test_invalid_regex(index: FtsIndex, pattern: str) -> None:
    with pytest.raises(FtsQueryError, match=r"^invalid regular expression: "):
        index.search(pattern, limit=10, regex=True)


_PATTERNS = [
    "s", "k", "sa", "a", "ab", "^a", "b$", "^$", "a\\sb", "[^a]b", "a*", "a.b", "(ab|b\n)", "x",
    "\\Ab", "a\\z", "\\A[ab]", "[ab]\\z", "(?i)A", "é", "É", "[ab]+", "(a|é)b",
]
# Not in the list: \b and \w, which RE2 reads as ASCII-only (Python's re as Unicode).


def _oracle(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    """Python's re on one line at a time: grep's semantics, independent of RE2 and the drivers."""
    flags = re.MULTILINE | (0 if case_sensitive else re.IGNORECASE)
    return re.compile(pattern.replace("\\z", "\\Z"), flags)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(texts=["a\n"], pattern="^$", case_sensitive=True)  # the "line" after a final newline
@example(texts=["a\n"], pattern="a*", case_sensitive=False)
@example(texts=["é\nb"], pattern="\\A[ab]", case_sensitive=False)
@example(texts=["b\nb"], pattern="[ab]\\z", case_sensitive=True)
@example(texts=["\u212a"], pattern="k", case_sensitive=False)
@given(texts=st.lists(st.text(alphabet="ab \nésſ\u212a", max_size=12), min_size=1, max_size=6),
       pattern=st.sampled_from(_PATTERNS), case_sensitive=st.booleans())
def test_regex_scan_equals_brute_force(tmp_path_factory: pytest.TempPathFactory, texts: list[str],
                                       pattern: str, case_sensitive: bool) -> None:
    # The literal/leftmost drivers are shortcuts; matching each line on its own is the truth.
    table = make_table(tmp_path_factory.mktemp("corpus"), [doc(k, t) for k, t in enumerate(texts)])
    lr = regex_scan.compile_line_regex(pattern, case_sensitive=case_sensitive)
    truth = _oracle(pattern, case_sensitive)
    expected = []
    for k, text in enumerate(texts):
        n = sum(1 for line in analyzer.chunk_lines(text) if truth.search(line))
        if n:
            expected.append((k, n))
    assert regex_scan.scan(table, lr, None) == expected


def test_required_literal() -> None:
    lit = regex_scan.required_literal
    assert lit(r"def \w+_\w+\(") == "def "
    assert lit(r"\w+Error") == "Error"
    assert lit(r"(foo)bar") == "foobar"
    assert lit(r"foo|bar") is None
    assert lit(r"a?") is None
    assert lit(r"(?i:abc)d") == "d"
    # Syntax RE2 reads otherwise than Python's parser: no literal rather than a wrong one.
    assert lit(r"[[:alpha:]]x") is None
    assert lit(r"\pLx") is None


def test_a_catastrophic_pattern_runs_in_linear_time(tmp_path: Path) -> None:
    """(a+)+$ over long lines of a's backtracks for hours in Python's re; RE2 is linear.
    Run in a child process with a generous hang guard (not a speed assertion)."""
    script = (
        "from cidx_daemon.search.fts import regex_scan\n"
        "lr = regex_scan.compile_line_regex('(a+)+$', case_sensitive=True)\n"
        "line = 'a' * 50_000 + 'b'\n"
        "print(regex_scan.count_matching_lines(lr, (line + '\\n') * 20))\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert out.strip() == "0"


@pytest.mark.parametrize(("pattern", "needle"), [
    ("(?<=a)b", "no look-around or back-references"),
    ("(a)\\1", "no look-around or back-references"),
    ("(", "missing ): ("),
    ("a(b", "missing ): a(b"),  # the pattern as typed, not the engine's (?m) prefix
])
def test_patterns_re2_cannot_run_get_one_clear_line(index: FtsIndex, pattern: str, needle: str) -> None:
    with pytest.raises(FtsQueryError, match=r"^invalid regular expression: ") as info:
        index.search(pattern, limit=10, regex=True)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert "(?m)" not in str(info.value)


# ----------------------------------------------------------------------------- lines and snippets


def _lines(n: int) -> str:
    return "\n".join(f"line {i} text" for i in range(1, n + 1))


def test_match_lines_are_file_absolute(tmp_path: Path) -> None:
    text = "alpha\nbeta\nneedle here\ngamma\n"
    ix = make_index(tmp_path / "fts", [doc(0, text, start_line=101)])
    for kwargs in ({}, {"regex": True}, {"edit_distance": 1}, {"case_sensitive": True}):
        (hit,) = ix.search("needle", limit=5, **kwargs)  # type: ignore[arg-type]
        assert [m.line for m in hit.matches] == [103], kwargs
        assert hit.matches[0].text == "needle here"
        assert hit.matches[0].columns == [(0, 6)]
        assert (hit.start_line, hit.end_line) == (101, 104)
        assert hit.text == text
        assert hit.path == "src/f0.py" and hit.language == "python"


def test_snippet_context_and_clipping(tmp_path: Path) -> None:
    text = _lines(10).replace("line 3 text", "line 3 needle").replace("line 9 text", "needle twice needle")
    ix = make_index(tmp_path / "fts", [doc(0, text, start_line=51)])
    (hit,) = ix.search("needle", limit=1, snippet_lines=1)
    # Best line = most matched spans (line 9, two spans): lines 8..10 -> file 58..60.
    assert hit.snippet is not None
    assert hit.snippet.start_line == 58
    assert hit.snippet.lines == ["line 8 text", "needle twice needle", "line 10 text"]
    (hit,) = ix.search("needle", limit=1, snippet_lines=0)
    assert hit.snippet is not None and hit.snippet.lines == ["needle twice needle"]
    (hit,) = ix.search("needle", limit=1, snippet_lines=50)
    assert hit.snippet is not None
    assert hit.snippet.start_line == 51 and len(hit.snippet.lines) == 10
    assert [m.line for m in hit.matches] == [53, 59]


@given(n=st.integers(1, 60), start=st.integers(1, 10_000), data=st.data(), context=st.integers(0, 50))
def test_snippet_arithmetic(n: int, start: int, data: st.DataObject, context: int) -> None:
    text = _lines(n)
    at = data.draw(st.integers(0, n - 1))
    spans = {at: [(0, 4)]}
    snip = highlight.snippet(text, start, spans, context)
    assert snip is not None
    lo, hi = max(0, at - context), min(n, at + context + 1)
    assert snip.start_line == start + lo
    assert len(snip.lines) == hi - lo
    assert start <= snip.start_line <= start + at < snip.start_line + len(snip.lines) <= start + n
    assert snip.lines[at - lo] == f"line {at + 1} text"
    (match,) = highlight.line_matches(text, start, spans)
    assert match.line == start + at


def test_crlf_lines_are_shown_without_cr(tmp_path: Path) -> None:
    ix = make_index(tmp_path / "fts", [doc(0, "a = 1\r\nneedle = 2\r\n")])
    (hit,) = ix.search("needle", limit=1)
    assert [(m.line, m.text) for m in hit.matches] == [(2, "needle = 2")]
    assert hit.end_line == 2


# ----------------------------------------------------------------------------- filters, limits, order


def _mask(n: int, allowed: list[int]) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[allowed] = True
    return mask


@pytest.fixture(scope="module")
def ranked_index(tmp_path_factory: pytest.TempPathFactory) -> FtsIndex:
    # Rows 0-19 mention "needle" five times (rank high), 20-29 once, 30-39 never.
    docs = [doc(r, "needle needle needle needle needle\nfiller") for r in range(20)]
    docs += [doc(r, f"needle\nfiller {r}\nmore words here to lower the score") for r in range(20, 30)]
    docs += [doc(r, f"nothing {r}") for r in range(30, 40)]
    random.Random(0).shuffle(docs)  # build order must not matter
    return make_index(tmp_path_factory.mktemp("ranked") / "fts", docs)


def test_filter_inside_search_fills_the_limit(ranked_index: FtsIndex) -> None:
    mask = _mask(40, list(range(20, 40)))  # excludes the 20 best hits
    for kwargs in ({}, {"edit_distance": 1}, {"case_sensitive": True}, {"regex": True}):
        hits = ranked_index.search("needle", limit=5, allowed_rows=mask, **kwargs)  # type: ignore[arg-type]
        assert rows(hits) == [20, 21, 22, 23, 24], kwargs


def test_filter_keeps_scores_and_both_filter_shapes(ranked_index: FtsIndex) -> None:
    full = {h.row: h.score for h in ranked_index.search("needle", limit=40)}
    sparse = ranked_index.search("needle", limit=40, allowed_rows=_mask(40, [3, 25]))
    assert [(h.row, h.score) for h in sparse] == [(3, full[3]), (25, full[25])]
    dense = ranked_index.search("needle", limit=40, allowed_rows=_mask(40, [r for r in range(40) if r != 3]))
    assert rows(dense) == [r for r in range(30) if r != 3]
    assert all(h.score == full[h.row] for h in dense)


def test_filter_edge_masks(ranked_index: FtsIndex) -> None:
    assert ranked_index.search("needle", limit=5, allowed_rows=np.zeros(40, dtype=bool)) == []
    # Rows past the end of a short mask are not allowed.
    assert rows(ranked_index.search("needle", limit=50, allowed_rows=_mask(22, [1, 21]))) == [1, 21]
    everything = ranked_index.search("needle", limit=50)
    assert ranked_index.search("needle", limit=50, allowed_rows=np.ones(40, dtype=bool)) == everything


def test_ties_break_by_row_whatever_the_build_order(ranked_index: FtsIndex) -> None:
    assert rows(ranked_index.search("needle", limit=5)) == [0, 1, 2, 3, 4]
    assert rows(ranked_index.search("needle", limit=25))[20:] == [20, 21, 22, 23, 24]


def test_limit_and_min_score(ranked_index: FtsIndex) -> None:
    everything = ranked_index.search("needle", limit=100)
    assert len(everything) == 30
    assert ranked_index.search("needle", limit=0) == []
    cut = everything[0].score
    assert rows(ranked_index.search("needle", limit=100, min_score=cut)) == list(range(20))
    assert len(ranked_index.search("needle", limit=100, regex=True, min_score=2)) == 0
    assert len(ranked_index.search("needle", limit=100, regex=True, min_score=1)) == 30


def test_empty_index(tmp_path: Path) -> None:
    ix = make_index(tmp_path / "fts", [])
    assert len(ix) == 0
    for kwargs in ({}, {"regex": True}, {"edit_distance": 2}, {"case_sensitive": True}):
        assert ix.search("anything", limit=5, **kwargs) == []  # type: ignore[arg-type]
    assert ix.search("x", limit=5, allowed_rows=np.zeros(0, dtype=bool)) == []


def test_chunk_ids_must_ascend(tmp_path: Path) -> None:
    """The index is keyed by chunk id; a repeated or falling id would make two chunks one."""
    writer = ChunkTableWriter()
    writer.add_file("a.py", "python", "h", 1, 0, [(1, 1, "a")], [1])
    with pytest.raises(ValueError, match="ascend"):
        writer.add_file("b.py", "python", "h", 1, 0, [(1, 1, "b")], [1])


def test_an_incremental_build_equals_a_full_one(tmp_path: Path) -> None:
    """Carry the index over (hard links), delete the ids that are gone, add the new rows:
    every search answers as a from-scratch index of the new table does."""
    old_docs = [doc(r, t.text) for r, t in enumerate(CORPUS)]
    old = make_index(tmp_path / "old", old_docs)
    before = old.search("response", limit=20)
    # The next generation: row 2 deleted, row 5 replaced, a new chunk; ids never reused.
    kept = [d for d in CORPUS if d.row not in (2, 5)]
    writer = ChunkTableWriter()
    def add(path: str, text: str, cid: int) -> None:
        writer.add_file(path, "python", "h", 1, 0, [(1, len(analyzer.chunk_lines(text)), text)], [cid])

    for d in kept:
        add(d.path, d.text, d.row)
    add("src/new9.py", "path = os.path.join(root, name)  # HTTPResponse\n", 9)
    add("src/new10.py", "def read_response():\n    pass\n", 10)
    (tmp_path / "new").mkdir()
    writer.write(tmp_path / "new")
    table = ChunkTable(tmp_path / "new")
    new_rows = [len(kept), len(kept) + 1]
    build_fts_index(tmp_path / "new" / "fts", table, new_rows, previous=tmp_path / "old" / "fts",
                    removed_cids=[2, 5])
    incremental = FtsIndex.open(tmp_path / "new" / "fts", table)
    build_fts_index(tmp_path / "full", table)
    full = FtsIndex.open(tmp_path / "full", table)
    assert incremental.num_docs == full.num_docs == len(table)
    for q, kw in (("response", {}), ("HTTPResponse", {}), ("os.path.join", {}),
                  ("respnse", {"edit_distance": 1}), (r"def \w+", {"regex": True})):
        got = [(h.row, h.path) for h in incremental.search(q, limit=20, **kw)]  # type: ignore[arg-type]
        assert got == [(h.row, h.path) for h in full.search(q, limit=20, **kw)], q  # type: ignore[arg-type]
    assert "src/f2.py" not in {h.path for h in incremental.search("response", limit=20)}
    assert old.search("response", limit=20) == before  # the old generation is untouched


def test_concurrent_searches_are_identical(ranked_index: FtsIndex, index: FtsIndex) -> None:
    queries = [
        (ranked_index, "needle", {}),
        (ranked_index, "needle", {"allowed_rows": _mask(40, list(range(10, 30)))}),
        (index, "HTTPResponse", {}),
        (index, "urlopne", {"edit_distance": 2}),
        (index, r"^\s*def", {"regex": True}),
        (index, '"read the file"', {}),
        (index, "Response", {"case_sensitive": True}),
    ]
    expected = [ix.search(q, limit=10, **kw) for ix, q, kw in queries]  # type: ignore[arg-type]
    assert all(expected)
    results: list[list[list[FtsHit]]] = []

    def work() -> None:
        mine = []
        for _ in range(5):
            mine.extend(ix.search(q, limit=10, **kw) for ix, q, kw in queries)  # type: ignore[arg-type]
        results.append(mine)

    errors = run_in_threads(work, 8)
    assert not errors
    assert len(results) == 8
    for mine in results:
        assert mine == expected * 5
