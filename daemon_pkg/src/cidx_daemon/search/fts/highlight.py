"""Which lines of a hit matched, where, and the snippet shown around them.

Line numbers leave this module FILE-absolute (``start_line + offset``): a
chunk-relative number is meaningless to a user. Matching re-tokenizes the
chunk with the same ``analyzer`` rules the index used, so a highlighted span
is exactly a token the query hit (a phrase only where its parts are
consecutive, as in the index).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from . import analyzer
from .query import PlannedClause

#: line index (chunk-relative) -> character spans (start, end) on that line
Spans = dict[int, list[tuple[int, int]]]


@dataclass(frozen=True)
class LineMatch:
    """A matching line: file-absolute number, its text, matched column spans (0-based, end-exclusive)."""

    line: int
    text: str
    columns: list[tuple[int, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "text": self.text, "columns": [list(c) for c in self.columns]}


@dataclass(frozen=True)
class Snippet:
    """Context lines around the best line ``line``; both numbers are file-absolute."""

    start_line: int
    lines: list[str]
    line: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"start_line": self.start_line, "line": self.line or self.start_line,
                "lines": list(self.lines)}


def shown_clauses(planned: Sequence[PlannedClause]) -> list[PlannedClause]:
    """The clauses worth marking: a lone function word is left out of a query that has
    other words ("open a url with a timeout" marks open, url, timeout); a phrase keeps its
    every word, and a query of function words only keeps them all."""
    def function_word(c: PlannedClause) -> bool:
        return len(c.seq) <= 1 and bool(c.whole) and all(k in analyzer.FUNCTION_WORDS for k in c.whole)

    kept = [c for c in planned if not function_word(c)]
    return kept or list(planned)


def term_spans(text: str, planned: Sequence[PlannedClause], *, case_sensitive: bool) -> Spans:
    """Spans of the tokens the planned query matches in ``text``."""
    wholes: set[str] = set()
    for clause in planned:
        wholes.update(clause.whole)
    seqs = [c.seq for c in planned if c.seq]
    # A one-token sequence (every plain word's) marks each token it holds: counted per token as
    # it is read, instead of a pass over all tokens per word (most of a result's highlighting).
    single: dict[str, int] = {}
    for seq in seqs:
        if len(seq) == 1:
            for alt in seq[0]:
                single[alt] = single.get(alt, 0) + 1
    longer = [seq for seq in seqs if len(seq) > 1]
    hits: Spans = {}
    # A line holding none of the query's tokens as a substring cannot match: it is not
    # tokenized. In its place goes one token that matches nothing, which breaks a phrase
    # exactly as its own words did. A plain word is its own only part: it is not split
    # (splitting every word was most of a query's result building).
    needle = probe(frozenset(wholes.union(*(alt for seq in seqs for alt in seq))))
    # Every part token in reading order: (key, line, start, end), kept only for phrases. Words
    # never cross lines, so tokenizing line by line equals tokenizing the chunk.
    part_tokens: list[tuple[str, int, int, int]] = []
    for lineno, line in enumerate(analyzer.chunk_lines(text)):
        if not needle.pattern or not needle.search(line if case_sensitive else line.lower()):
            if longer and analyzer.WORD_RE.search(line):
                part_tokens.append(("", lineno, 0, 0))
            continue
        for m in analyzer.WORD_RE.finditer(line):
            word, base = m.group(), m.start()
            key = word if case_sensitive else word.lower()
            if _one_part(word):  # most words: their only part is themselves
                if longer:
                    part_tokens.append((key, lineno, base, m.end()))
                found = single.get(key, 0) + (2 if key in wholes else 0)  # whole and part, as a compound's
                if found:
                    hits.setdefault(lineno, []).extend([(base, m.end())] * found)
                continue
            if key in wholes:
                hits.setdefault(lineno, []).append((base, m.end()))
            for a, b in analyzer.part_spans(word):
                part = word[a:b]
                pkey = part if case_sensitive else part.lower()
                if longer:
                    part_tokens.append((pkey, lineno, base + a, base + b))
                found = single.get(pkey, 0) + (1 if pkey in wholes else 0)
                if found:
                    hits.setdefault(lineno, []).extend([(base + a, base + b)] * found)
    for seq in longer:
        n = len(seq)
        first = seq[0]
        for i in range(len(part_tokens) - n + 1):
            # the cheap first-token test skips the generator for almost every position
            if part_tokens[i][0] in first and all(part_tokens[i + j][0] in seq[j] for j in range(1, n)):
                for _key, lineno, a, b in part_tokens[i:i + n]:
                    hits.setdefault(lineno, []).append((a, b))
    return hits


def _one_part(word: str) -> bool:
    """A word ``analyzer.part_spans`` leaves whole: ASCII letters, all lower, all upper or
    capitalised (``return``, ``HTTP``, ``Return``)."""
    return word.isascii() and word.isalpha() and (word.islower() or word.isupper() or word[1:].islower())


@lru_cache(maxsize=256)
def probe(needles: frozenset[str]) -> re.Pattern[str]:
    """One pattern finding any of a query's tokens (compiled once per query, not per hit)."""
    return re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True) if n))


def regex_spans(text: str, rx: re.Pattern[str]) -> Spans:
    """Spans of ``rx`` on each line, grep-like: a zero-width match still marks its line."""
    hits: Spans = {}
    for lineno, line in enumerate(analyzer.chunk_lines(text)):
        found = [m.span() for m in rx.finditer(line)]
        if found:
            hits[lineno] = [s for s in found if s[0] != s[1]]
    return hits


def line_matches(text: str, start_line: int, spans: Spans) -> list[LineMatch]:
    lines = analyzer.chunk_lines(text)
    return [LineMatch(line=start_line + i, text=lines[i].rstrip("\r"), columns=_merge(spans[i]))
            for i in sorted(spans)]


def snippet(text: str, start_line: int, spans: Spans, context: int) -> Snippet | None:
    """``context`` lines either side of the line with the most matched spans (first on ties)."""
    if not spans:
        return None
    lines = analyzer.chunk_lines(text)
    best = min(spans, key=lambda i: (-len(_merge(spans[i])), i))
    return window(lines, start_line, best, context)


def window(lines: list[str], start_line: int, best: int, context: int) -> Snippet:
    """``context`` lines either side of ``best``, without blank lines at either edge
    (they cost a reader's screen and an agent's tokens and say nothing)."""
    lo, hi = max(0, best - context), min(len(lines), best + context + 1)
    while lo < best and not lines[lo].strip():
        lo += 1
    while hi - 1 > best and not lines[hi - 1].strip():
        hi -= 1
    return Snippet(start_line=start_line + lo, lines=[ln.rstrip("\r") for ln in lines[lo:hi]],
                   line=start_line + best)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out
