"""grep-like regular-expression search over every chunk, line by line.

Why not a tantivy regex query: tantivy matches a regex against single
*terms*, while users mean a pattern over a line of text (``def \\w+\\(``,
``^class ``). So the pattern runs over the chunk texts, with grep's
semantics (a match never spans lines; ``^``/``$`` are line edges), and a
chunk scores the number of its matching lines.

Matching every line of every chunk from Python costs ~1 s on the CPython
stdlib; instead each chunk is driven from C to its candidate lines only:

* *literal driver*: when every match must contain some literal text
  (``required_literal``), ``str.find`` jumps between its occurrences (in
  ``text.lower()`` for case-insensitive search on ASCII chunks) and only
  those lines are tried -- also sidestepping ``re.IGNORECASE`` scans, which
  are several times slower than case-sensitive ones;
* *leftmost driver*: otherwise the regex scans the chunk itself; each hit's
  line is checked on its own and the scan resumes at the next line. A line
  with a match is never skipped: a per-line match is also a match of the
  chunk at the same offset, because ``^``/``$`` (MULTILINE) and ``\\b`` see a
  ``\\n`` like a string edge, so the leftmost chunk match starts no later;
* patterns where that fails (``\\A``, ``\\Z``, negative look-arounds) and have no
  literal try every line.

A line is checked with ``rx.search(text, start, end)``: ``endpos`` makes the
line end the string end; only ``\\A`` and look-behinds can see past ``start``,
so for those the line is sliced out instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .corpus import Corpus

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


def compile_line_regex(pattern: str, *, case_sensitive: bool) -> LineRegex:
    flags = re.MULTILINE | (0 if case_sensitive else re.IGNORECASE)
    try:
        rx = re.compile(pattern, flags)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise RegexError(f"invalid regular expression: {exc}") from None
    fold = bool(rx.flags & re.IGNORECASE)
    literal = required_literal(rx)
    if literal is not None and fold:
        # Outside ASCII, re.IGNORECASE and str.lower disagree (e.g. "\u017f" ~ "s").
        literal = literal.lower() if literal.isascii() else None
    return LineRegex(rx=rx, literal=literal, fold=fold,
                     slice_lines=bool(_NEEDS_SLICE.search(pattern)),
                     leftmost_ok=not _SKIPS_LINES.search(pattern))


def required_literal(rx: re.Pattern[str]) -> str | None:
    """The longest run of plain characters every match must contain, if any.

    Walks only the top-level sequence (descending into plain groups): a
    literal there is mandatory; anything else (classes, repeats, branches,
    groups that change flags) ends a run.
    """
    try:
        parsed = _sre_parse.parse(rx.pattern, rx.flags)
    except Exception:  # private API: any surprise just means "no literal driver"
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
    return max(runs, key=len) or None


def line_bounds(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each line, as ``analyzer.chunk_lines`` counts them."""
    n = len(text)
    start = 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            if start < n or start == 0:
                yield start, n
            return
        yield start, end
        start = end + 1


def matching_lines(lr: LineRegex, text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of every line of ``text`` with a match, in order."""
    rx, n = lr.rx, len(text)
    if lr.slice_lines:
        def check(a: int, b: int) -> bool:
            return rx.search(text[a:b]) is not None
    else:
        def check(a: int, b: int) -> bool:
            return rx.search(text, a, b) is not None
    hay = None
    if lr.literal is not None and (not lr.fold or text.isascii()):
        hay = text.lower() if lr.fold else text
    if hay is None and not lr.leftmost_ok:
        yield from ((a, b) for a, b in line_bounds(text) if check(a, b))
        return
    phantom = n if text.endswith("\n") else n + 1  # the empty "line" after a final newline
    pos = 0
    while pos <= n:
        if hay is not None:
            at = hay.find(lr.literal, pos)  # type: ignore[arg-type]
        else:
            m = rx.search(text, pos)
            at = -1 if m is None else m.start()
        if at < 0 or at >= phantom:
            return
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        end = n if end < 0 else end
        if check(start, end):
            yield start, end
        pos = end + 1


def scan(corpus: Corpus, lr: LineRegex, allowed: np.ndarray | None) -> list[tuple[int, int]]:
    """``(table position, number of matching lines)`` for every chunk with a matching line."""
    if lr.literal is not None:
        positions: list[int] = corpus.chunks_containing(lr.literal, fold=lr.fold)
    else:
        corpus.texts()  # every chunk will be read: decode them all at once (kept)
        positions = list(range(len(corpus)))
    if allowed is not None:
        positions = [k for k in positions if allowed[k]]
    out: list[tuple[int, int]] = []
    for k in positions:
        count = sum(1 for _ in matching_lines(lr, corpus.text(k)))
        if count:
            out.append((k, count))
    return out
