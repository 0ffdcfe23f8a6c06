"""Highlight spans skip lines without a query token: the result must equal tokenizing all.

``term_spans`` tokenizes only lines that hold one of the query's tokens as a substring and
puts one non-matching token in place of any other line with words, so a phrase cannot
match across it. The reference below tokenizes every line (what ``term_spans`` did before);
Hypothesis drives both over random code-like text and queries, phrases and case modes.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from cidx_daemon.search.fts import analyzer, highlight
from cidx_daemon.search.fts import query as fts_query
from cidx_daemon.search.fts.query import PlannedClause


def reference_spans(text: str, planned: Sequence[PlannedClause], *, case_sensitive: bool) -> highlight.Spans:
    wholes: set[str] = set()
    for clause in planned:
        wholes.update(clause.whole)
    seqs = [c.seq for c in planned if c.seq]
    hits: highlight.Spans = {}
    part_tokens: list[tuple[str, int, int, int]] = []
    for lineno, line in enumerate(analyzer.chunk_lines(text)):
        for m in analyzer.WORD_RE.finditer(line):
            word, base = m.group(), m.start()
            key = word if case_sensitive else word.lower()
            if key in wholes:
                hits.setdefault(lineno, []).append((base, m.end()))
            for a, b in analyzer.part_spans(word):
                part = word[a:b]
                pkey = part if case_sensitive else part.lower()
                part_tokens.append((pkey, lineno, base + a, base + b))
                if pkey in wholes:
                    hits.setdefault(lineno, []).append((base + a, base + b))
    for seq in seqs:
        n = len(seq)
        for i in range(len(part_tokens) - n + 1):
            if all(part_tokens[i + j][0] in seq[j] for j in range(n)):
                for _key, lineno, a, b in part_tokens[i:i + n]:
                    hits.setdefault(lineno, []).append((a, b))
    return hits


WORDS = ["retry", "Retry", "backoff", "retry_with_backoff", "RetryPolicy", "HTTPRetry", "with", "x1",
         "delay", "base_delay", "sleep", "for", "attempt", "é", "naïve"]
SEPS = [" ", "  ", "(", ")", ".", ", ", "\n", "\n\n", " = ", "\n    ", "#"]

texts = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPS)), max_size=40).map(
    lambda pairs: "".join(w + s for w, s in pairs))
PHRASES = ['"retry with"', '"with backoff"', '"retry backoff"', '"base delay"']
queries = st.lists(st.sampled_from([*WORDS, *PHRASES]), min_size=1, max_size=4).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(text=texts, q=queries, case_sensitive=st.booleans())
def test_skipping_lines_changes_no_span(text: str, q: str, case_sensitive: bool) -> None:
    planned = fts_query.plan(fts_query.parse_query(q), case_sensitive=case_sensitive, expand=None)
    got = highlight.term_spans(text, planned, case_sensitive=case_sensitive)
    want = reference_spans(text, planned, case_sensitive=case_sensitive)
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}


def test_a_phrase_does_not_match_across_a_line_of_other_words() -> None:
    planned = fts_query.plan(fts_query.parse_query('"retry backoff"'), case_sensitive=False, expand=None)
    spans = highlight.term_spans("retry\nbackoff\n", planned, case_sensitive=False)
    assert spans == {0: [(0, 5)], 1: [(0, 7)]}
    assert highlight.term_spans("retry\nsleep now\nbackoff\n", planned, case_sensitive=False) == {}
    assert highlight.term_spans("retry sleep backoff\n", planned, case_sensitive=False) == {}


def _shown(text: str) -> list[str]:
    planned = fts_query.plan(fts_query.parse_query(text), case_sensitive=False, expand=None)
    return [" ".join(sorted(c.whole)) or " ".join(k for alt in c.seq for k in alt)
            for c in highlight.shown_clauses(planned)]


def test_function_words_are_not_marked_but_phrases_and_lone_ones_are() -> None:
    assert _shown("open a url with a timeout") == ["open", "url", "timeout"]
    assert _shown("the") == ["the"]  # nothing else to mark: keep what was asked
    spans = highlight.term_spans("with a timeout\nthe end\n",
                                 highlight.shown_clauses(fts_query.plan(
                                     fts_query.parse_query("open a url with a timeout"),
                                     case_sensitive=False, expand=None)), case_sensitive=False)
    merged = {line: highlight._merge(found) for line, found in spans.items()}
    assert merged == {0: [(7, 14)]}  # "timeout" only; line 1 holds no content word
    quoted = fts_query.plan(fts_query.parse_query('"with a timeout"'), case_sensitive=False, expand=None)
    assert highlight.shown_clauses(quoted) == list(quoted)
