"""The few lines of a result worth showing, for results the full-text leg did not highlight.

A semantic hit carries a whole chunk (up to ~50 lines); printing it all buried the
list (one default query printed 187 lines). Full-text hits already know their best
line (the one with the most matched terms). For the others this picks the line that
shares the most words with the query, by the same code-aware tokens full text uses
(``HTTPResponse`` shares "response" with "read the response"); failing that, the
chunk's first definition line, which says what the chunk is; failing that, its
first non-blank line. Pure functions, no index needed.
"""

from __future__ import annotations

import re

from cidx_daemon.search.fts import analyzer
from cidx_daemon.search.fts.highlight import Snippet, probe, window

_DEFINITION = re.compile(r"\s*(?:(?:export|pub|public|private|protected|static|async|abstract|final)\s+)*"
                         r"(?:def|class|function|func|fn|struct|enum|trait|impl|interface|type|module)\b")


def query_terms(query: str) -> frozenset[str]:
    return frozenset(t.lower() for t in analyzer.code_tokens(query)) - analyzer.FUNCTION_WORDS


def best_line(lines: list[str], terms: frozenset[str]) -> int:
    """Index of the line to centre the snippet on (see the module docstring)."""
    best, best_score = -1, 0
    has_term = probe(terms).search if terms else None
    for i, line in enumerate(lines):
        if has_term is not None and has_term(line.lower()):  # no term inside: no token can be one
            score = len(terms.intersection(t.lower() for t in analyzer.code_tokens(line)))
            if score > best_score:
                best, best_score = i, score
    if best >= 0:
        return best
    for i, line in enumerate(lines):
        if _DEFINITION.match(line):
            return i
    return next((i for i, line in enumerate(lines) if line.strip()), 0)


def snippet_for(text: str, start_line: int, query: str, context: int) -> Snippet:
    """``context`` lines either side of the best line (file-absolute numbers)."""
    lines = analyzer.chunk_lines(text)
    return window(lines, start_line, best_line(lines, query_terms(query)), context)
