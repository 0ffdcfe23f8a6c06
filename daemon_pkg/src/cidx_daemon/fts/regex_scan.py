"""grep-like regular-expression search over every chunk, per line.

Why not a tantivy regex query: tantivy matches a regex against single
*terms*, while users mean a pattern over the text of a line (``def \\w+\\(``,
``^class ``). So the pattern runs over the corpus blob in two steps:

1. *candidates*: chunks where a match can exist. With a literal that every
   match must contain (``required_literal``), ``str.find`` jumps between its
   occurrences (a lowered copy of the blob serves case-insensitive
   search); otherwise the regex itself scans the blob with ``MULTILINE``.
   Either way, after the first hit in a chunk the scan jumps to the next
   chunk, so a pattern matching everywhere costs one search per chunk.
2. *verification*: each candidate's lines are matched one by one, which is
   the exact grep semantics (a match never spans lines).

Step 1 never misses a chunk that step 2 would accept: a per-line match is a
match on the blob at the same offset, because ``^``/``$`` (MULTILINE),
``\\b`` and positive look-arounds behave the same (or more leniently) next to
a ``\\n`` as at a string edge. Patterns where that fails (``\\A``, ``\\Z``,
negative look-arounds) take the literal shortcut if they have one, else skip
step 1 and verify every chunk.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from . import analyzer
from .corpus import CHAR_LEN, CHAR_START, Corpus

try:  # the parser is private; without it we only lose the literal shortcut
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]


class RegexError(ValueError):
    """The user's pattern does not compile."""


_BLOB_UNSAFE = re.compile(r"\\[AZ]|\(\?<?!")


def compile_line_regex(pattern: str, *, case_sensitive: bool) -> re.Pattern[str]:
    flags = re.MULTILINE | (0 if case_sensitive else re.IGNORECASE)
    try:
        return re.compile(pattern, flags)
    except (re.error, OverflowError, RecursionError) as exc:
        raise RegexError(f"invalid regular expression: {exc}") from None


def required_literal(rx: re.Pattern[str]) -> str | None:
    """The longest run of plain characters every match must contain, if any.

    Walks only the top-level sequence (descending into plain groups): a
    literal there is mandatory; anything else (classes, repeats, branches,
    groups that change flags) ends a run.
    """
    try:
        parsed = _sre_parse.parse(rx.pattern, rx.flags)
    except Exception:  # private API: any surprise just means "no shortcut"
        return None
    runs: list[str] = []
    current: list[str] = []

    def walk(items: Any) -> None:
        for op, arg in items:
            if op is _sre_parse.LITERAL:
                current.append(chr(arg))
            elif op is _sre_parse.SUBPATTERN and arg[1] == 0 and arg[2] == 0:
                walk(arg[3])
            else:
                runs.append("".join(current))
                current.clear()

    walk(parsed)
    runs.append("".join(current))
    best = max(runs, key=len)
    return best or None


def scan(corpus: Corpus, rx: re.Pattern[str], allowed: np.ndarray | None) -> list[tuple[int, int]]:
    """``(table position, number of matching lines)`` for every chunk with a matching line."""
    if len(corpus) == 0:
        return []
    literal, haystack = _literal_haystack(corpus, rx)
    candidates = _candidates(corpus, rx, literal, haystack)
    if allowed is not None:
        candidates = [k for k in candidates if allowed[k]]
    starts = corpus.table[:, CHAR_START]
    lengths = corpus.table[:, CHAR_LEN]
    blob = corpus.blob()
    search = rx.search
    out: list[tuple[int, int]] = []
    for k in candidates:
        lo = int(starts[k])
        hi = lo + int(lengths[k])
        lines = analyzer.chunk_lines(blob[lo:hi])
        if literal is not None and haystack is not None:
            keys = analyzer.chunk_lines(haystack[lo:hi]) if haystack is not blob else lines
            n = sum(1 for line, key in zip(lines, keys, strict=True) if literal in key and search(line))
        else:
            n = sum(1 for line in lines if search(line))
        if n:
            out.append((k, n))
    return out


def _literal_haystack(corpus: Corpus, rx: re.Pattern[str]) -> tuple[str | None, str | None]:
    """The required literal and the text to look for it in (blob, or lowered blob)."""
    literal = required_literal(rx)
    if literal is None:
        return None, None
    if not rx.flags & re.IGNORECASE:
        return literal, corpus.blob()
    if not literal.isascii():
        return None, None
    lower = corpus.lower_blob()
    return (literal.lower(), lower) if lower is not None else (None, None)


def _candidates(corpus: Corpus, rx: re.Pattern[str], literal: str | None, haystack: str | None) -> list[int]:
    """Table positions of chunks that may hold a matching line, ascending."""
    starts = corpus.table[:, CHAR_START]
    n = len(starts)
    found: list[int] = []
    if literal is not None and haystack is not None:
        find = haystack.find
        pos = find(literal)
        while pos >= 0:
            k = int(np.searchsorted(starts, pos, side="right")) - 1
            found.append(k)
            if k + 1 >= n:
                break
            pos = find(literal, int(starts[k + 1]))
        return found
    if _BLOB_UNSAFE.search(rx.pattern):
        return list(range(n))
    blob = corpus.blob()
    search = rx.search
    m = search(blob)
    while m is not None:
        first = int(np.searchsorted(starts, m.start(), side="right")) - 1
        last = int(np.searchsorted(starts, max(m.start(), m.end() - 1), side="right")) - 1
        found.extend(range(first, last + 1))
        if last + 1 >= n:
            break
        m = search(blob, int(starts[last + 1]))
    return found
