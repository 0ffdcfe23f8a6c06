"""grep-like regular-expression search over every chunk, line by line, in linear time.

Why RE2 (the ``google-re2`` wheel) and not Python's ``re``: ``re`` backtracks, so a
pattern like ``(a+)+$`` over a line of a's runs for minutes, holds the GIL, and a
daemon thread running it cannot be interrupted: one user's typo froze every other
client. RE2 (as ripgrep and zoekt use automata) runs in time linear in the text, so
no pattern can hold the daemon. The price: no look-around and no back-references;
a pattern that uses them gets a one-line error saying so.

Why not a tantivy regex query: tantivy matches a regex against single *terms*,
while users mean a pattern over a line of text (``def \\w+\\(``, ``^class ``). So the
pattern runs over the chunk texts with grep's semantics (a match never spans lines:
RE2's ``never_nl``; ``^``/``$`` are line edges: multi-line mode), and a chunk scores
the number of its matching lines.

Driving the search, cheapest first:

* *literal*: when every match must contain some literal text (``required_literal``),
  the chunk table finds the rows holding it in its raw UTF-8 bytes (nothing
  decoded), and only those rows are searched; a pattern that is only a literal
  needs no regex at all. The literal comes from Python's regex *parser* (parsing
  only: nothing is matched with ``re``), used only for patterns both syntaxes read
  alike (``_PLAIN``);
* *leftmost*: the regex scans the chunk; each hit's line is counted and the scan
  resumes at the next line. Exact, because no match can cross a newline;
* patterns anchored to the text's edges (``\\A``, ``\\z``) are checked line by line,
  each line as its own text, as grep would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np
import re2

from . import analyzer

if TYPE_CHECKING:
    from cidx_daemon.index.chunk_table import ChunkTable

try:  # the parser is private; without it we only lose the literal driver
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]

#: RE2's memory budget for one pattern's automata: bounds what a hostile pattern can take.
MAX_PATTERN_MEM = 64 << 20
_EDGE_ANCHORS = re.compile(r"\\[Az]")
#: Syntax RE2 and Python's parser read differently; such patterns get no literal driver.
_NOT_PLAIN = re.compile(r"\[:|\\[pPQECzZbB]|\(\?[^:P=!#<)imsx-]|\{,")


class RegexError(ValueError):
    """The user's pattern does not compile, or needs features RE2 does not have."""


#: ^ and $ match at line ends: lines are what a regex query is matched against.
_MULTILINE = "(?m)"


@dataclass(frozen=True)
class LineRegex:
    """A compiled user pattern plus how to drive it (see module doc)."""

    rx: Any  # re2._Regexp: search / finditer like re.Pattern, linear time
    literal: str | None  # required literal; lower-case when ``fold``
    fold: bool  # case-insensitive: look for the literal in the ASCII-lowered text
    per_line: bool  # anchored to the text's edges: check each line as its own text
    # The pattern is nothing but ``literal`` (no newline in it): a line matches iff
    # it contains the literal, which C can count without a regex.
    pure_literal: bool = False


def compile_line_regex(pattern: str, *, case_sensitive: bool) -> LineRegex:
    options = re2.Options()
    options.log_errors = False
    options.never_nl = True
    options.case_sensitive = case_sensitive
    options.max_mem = MAX_PATTERN_MEM
    try:
        rx = re2.compile(_MULTILINE + pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) \
            else str(exc)
        reason = reason.replace(": " + _MULTILINE, ": ", 1)  # the user did not type that prefix
        hint = " (RE2 syntax: no look-around or back-references)" if _looks_perl_only(pattern) else ""
        raise RegexError(f"invalid regular expression: {reason}{hint}") from None
    literal, pure, inline_fold = _literals(pattern, case_sensitive)
    fold = not case_sensitive or inline_fold
    if literal is not None and fold:
        # Outside ASCII, case folding and lower() disagree (e.g. "\u017f" ~ "s").
        literal = literal.lower() if literal.isascii() else None
    return LineRegex(rx=rx, literal=literal, fold=fold, per_line=bool(_EDGE_ANCHORS.search(pattern)),
                     pure_literal=pure and literal is not None and "\n" not in literal)


def _looks_perl_only(pattern: str) -> bool:
    return bool(re.search(r"\(\?<?[=!]|\\[1-9]|\(\?P=", pattern))


def required_literal(pattern: str) -> str | None:
    """The longest run of plain characters every match of ``pattern`` must contain, if any."""
    return _literals(pattern, True)[0]


def _literals(pattern: str, case_sensitive: bool) -> tuple[str | None, bool, bool]:
    """``(required literal or None, the pattern is only that literal, (?i) turned case off)``.

    Walks only the top-level sequence (descending into plain groups): a literal
    there is mandatory; anything else (classes, repeats, branches, groups that
    change flags) ends a run.
    """
    if _NOT_PLAIN.search(pattern):
        return None, False, False
    try:
        parsed = _sre_parse.parse(pattern, 0 if case_sensitive else re.IGNORECASE)
    except Exception:  # private API, or syntax Python reads otherwise: no literal driver
        return None, False, False
    inline_fold = bool(parsed.state.flags & re.IGNORECASE)
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
    return (best or None), len(runs) == 1, inline_fold


def count_matching_lines(lr: LineRegex, text: str) -> int:
    """How many lines of ``text`` the pattern matches (grep semantics)."""
    if lr.pure_literal and (not lr.fold or text.isascii()):
        # (a final newline's empty "line" holds no literal)
        hay = text.lower() if lr.fold else text
        return sum(map(str.__contains__, hay.split("\n"), repeat(lr.literal)))
    if lr.per_line:
        return sum(1 for line in analyzer.chunk_lines(text) if lr.rx.search(line))
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
        count += 1
        end = text.find("\n", m.start())
        if end < 0:
            break
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
