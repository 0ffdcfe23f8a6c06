"""grep-like regular-expression search over every chunk, line by line.

Why not a tantivy regex query: tantivy matches a regex against single
*terms*, while users mean a pattern over a line of text (``def \\w+\\(``,
``^class ``). So the pattern runs over the chunk texts, with grep's
semantics (a match never spans lines; ``^``/``$`` are line edges), and a
chunk scores the number of its matching lines.

Matching every line of every chunk from Python costs ~1 s on the CPython
stdlib; instead the work is driven from C to candidate lines only:

* *literal*: when every match must contain some literal text
  (``required_literal``), the chunk table finds the chunks holding it in its raw
  UTF-8 bytes (nothing decoded); in those, only the lines holding it (in
  ``text.lower()`` for case-insensitive search) are searched, through C
  iterators (``map``/``compress``), and a pattern that is only a literal
  needs no regex at all. This also sidesteps ``re.IGNORECASE`` scans of
  whole chunks, several times slower than case-sensitive ones;
* *leftmost*: otherwise the regex scans the chunk itself; each hit's line
  is checked on its own and the scan resumes at the next line. No matching
  line is skipped: a per-line match is also a match of the chunk at the
  same offset, because ``^``/``$`` (MULTILINE) and ``\\b`` see a ``\\n`` like
  a string edge, so the leftmost chunk match starts no later. A line is
  checked as ``rx.search(text, start, end)`` (``endpos`` makes the line end
  the string end) or, for ``\\A`` and look-behinds, which see before
  ``start``, as its own string;
* patterns for which leftmost fails (``\\A``, ``\\Z``, negative
  look-arounds) and that have no literal search every line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import compress, repeat
from typing import TYPE_CHECKING, Any

import numpy as np

from . import analyzer

if TYPE_CHECKING:
    from cidx_daemon.index.chunk_table import ChunkTable

try:  # the parser is private; without it we only lose the literal driver
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]


class RegexError(ValueError):
    """The user's pattern does not compile."""


_NEEDS_SLICE = re.compile(r"\\A|\\Z|\(\?<[=!]")
_SKIPS_LINES = re.compile(r"\\A|\\Z|\(\?<?!")


@dataclass(frozen=True)
class LineRegex:
    """A compiled user pattern plus how to drive it (see module doc)."""

    rx: re.Pattern[str]
    literal: str | None  # required literal; lower-case when ``fold``
    fold: bool  # case-insensitive: look for the literal in ``text.lower()``
    slice_lines: bool  # check a line as its own string (\\A, look-behind)
    leftmost_ok: bool  # the leftmost driver cannot skip a matching line
    # The pattern is nothing but ``literal`` (no newline in it): a line
    # matches iff it contains the literal, which C can count without re.
    pure_literal: bool = False


def compile_line_regex(pattern: str, *, case_sensitive: bool) -> LineRegex:
    flags = re.MULTILINE | (0 if case_sensitive else re.IGNORECASE)
    try:
        rx = re.compile(pattern, flags)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise RegexError(f"invalid regular expression: {exc}") from None
    fold = bool(rx.flags & re.IGNORECASE)
    literal, pure = _literals(rx)
    if literal is not None and fold:
        # Outside ASCII, re.IGNORECASE and str.lower disagree (e.g. "\u017f" ~ "s").
        literal = literal.lower() if literal.isascii() else None
    return LineRegex(rx=rx, literal=literal, fold=fold,
                     slice_lines=bool(_NEEDS_SLICE.search(pattern)),
                     leftmost_ok=not _SKIPS_LINES.search(pattern),
                     pure_literal=pure and literal is not None and "\n" not in literal)


def required_literal(rx: re.Pattern[str]) -> str | None:
    """The longest run of plain characters every match must contain, if any.

    Walks only the top-level sequence (descending into plain groups): a
    literal there is mandatory; anything else (classes, repeats, branches,
    groups that change flags) ends a run.
    """
    return _literals(rx)[0]


def _literals(rx: re.Pattern[str]) -> tuple[str | None, bool]:
    """``(required literal or None, the pattern is only that literal)``."""
    try:
        parsed = _sre_parse.parse(rx.pattern, rx.flags)
    except Exception:  # private API: any surprise just means "no literal driver"
        return None, False
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
    return (best or None), len(runs) == 1


def count_matching_lines(lr: LineRegex, text: str) -> int:
    """How many lines of ``text`` the pattern matches (grep semantics)."""
    if lr.literal is not None and (not lr.fold or text.isascii()):
        # Literal driver, all C iterators: keep lines holding the literal,
        # then (unless the pattern is just the literal) search each as a string.
        if lr.pure_literal:  # (a final newline's empty "line" holds no literal)
            return sum(map(str.__contains__, (text.lower() if lr.fold else text).split("\n"),
                           repeat(lr.literal)))
        lines = analyzer.chunk_lines(text)
        hay = analyzer.chunk_lines(text.lower()) if lr.fold else lines
        holds = map(str.__contains__, hay, repeat(lr.literal))
        return sum(map(bool, map(lr.rx.search, compress(lines, holds))))
    if not lr.leftmost_ok:
        return sum(map(bool, map(lr.rx.search, analyzer.chunk_lines(text))))
    return _count_leftmost(lr, text)


def _count_leftmost(lr: LineRegex, text: str) -> int:
    """Leftmost driver: jump from one matching line to the next (see module doc)."""
    rx, n = lr.rx, len(text)
    phantom = n if text.endswith("\n") else n + 1  # the empty "line" after a final newline
    count = pos = 0
    while pos <= n:
        m = rx.search(text, pos)
        if m is None or m.start() >= phantom:
            break
        at = m.start()
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        end = n if end < 0 else end
        line_match = rx.search(text[start:end]) if lr.slice_lines else rx.search(text, start, end)
        if line_match is not None:
            count += 1
        pos = end + 1
    return count


def scan(table: ChunkTable, lr: LineRegex, allowed: np.ndarray | None) -> list[tuple[int, int]]:
    """``(row, number of matching lines)`` for every chunk with a matching line."""
    texts = table.texts()  # decoded once per generation, then shared by every regex search
    if lr.literal is not None:
        positions: list[int] = table.rows_containing(lr.literal, fold=lr.fold)
    else:
        positions = list(range(len(texts)))
    if allowed is not None:
        positions = [k for k in positions if allowed[k]]
    out: list[tuple[int, int]] = []
    for k in positions:
        count = count_matching_lines(lr, texts[k])
        if count:
            out.append((k, count))
    return out
