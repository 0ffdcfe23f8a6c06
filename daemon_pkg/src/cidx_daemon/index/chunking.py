"""Split a file's text into line-ranged chunks small enough to embed whole.

MiniLM reads at most 256 tokens and code averages about 3.6 characters a token, so a chunk
of at most ~800 characters is embedded whole instead of silently truncated. Within that
budget a chunk aims for ``target_lines`` lines and is cut, when possible, where code
naturally breaks: before a definition (with its decorators and leading comments), else
after a blank line. Where no such boundary is in reach, a few lines of overlap let a query
that straddles the cut still match.

Lines are separated by ``"\\n"`` only (the walker normalises line ends), numbered from 1,
and a final newline does not start an extra line. Guarantees:

* ``chunk.text == "\\n".join(lines[start_line - 1 : end_line])`` - line numbers can be
  checked against the file - except for a line longer than ``max_chars``, which becomes
  consecutive pieces of at most ``max_chars`` characters, each with
  ``start_line == end_line`` and ``text`` a slice of that line. No text is lost.
* ``len(chunk.text) <= max_chars`` for every chunk.
* Every line that is not whitespace-only lies in some chunk; chunks that would hold only
  whitespace are dropped, since they carry nothing to search.
* Chunks are ordered by start line, which strictly increases (long-line pieces share one),
  and consecutive chunks overlap by at most ``overlap_lines`` lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import accumulate

__all__ = ["Chunk", "Symbol", "chunk_file", "chunk_text"]


@dataclass(frozen=True)
class Symbol:
    """A name a chunk defines: ``kind`` (function, class, method, constant...), ``parent`` the
    dotted path of the definitions around it (``""`` at top level), ``line`` 1-based."""

    name: str
    kind: str
    parent: str
    line: int

    @property
    def qualified(self) -> str:
        return f"{self.parent}.{self.name}" if self.parent else self.name


@dataclass(frozen=True)
class Chunk:
    """A piece of a file: 1-based, inclusive, file-absolute line range and its exact text.

    ``symbols`` and ``scope`` come from the syntax chunker: what the chunk defines, and the
    dotted name of the definition it belongs to (``"Session.send"``; ``""`` at top level).
    ``scope`` is None for regex chunks, whose definitions are unknown.
    """

    start_line: int
    end_line: int
    text: str
    symbols: tuple[Symbol, ...] = ()
    scope: str | None = None


def chunk_file(text: str, language: str | None, *, path: str | None = None,
               max_chars: int = 800) -> list[Chunk]:
    """The chunks of one file: cut at its syntax where a grammar parses it, else by
    ``chunk_text``. Syntax chunks never overlap; regex chunks may (see the module doc)."""
    if language:
        from cidx_daemon.syntax import chunk_syntax

        chunks = chunk_syntax(text, language, path=path, max_chars=max_chars)
        if chunks is not None:
            return chunks
    return chunk_text(text, max_chars=max_chars)


# A line (de-indented) that opens a definition. Small on purpose: a miss only means the
# chunker falls back to a blank line or a hard cut, never that text is lost.
_MODIFIERS = (
    r"export|default|pub(?:\([\w:]+\))?|public|private|protected|internal|static|abstract|final|"
    r"override|async|unsafe|extern|inline|virtual|sealed|open|suspend|local|partial|data"
)
_KEYWORDS = (
    r"def|defp|defmodule|class|function|func|fun|fn|sub|proc|impl|struct|union|enum|trait|"
    r"interface|module|namespace|object|record|type|macro_rules!|create"
)
_DEFINITION = re.compile(
    rf"(?:(?:{_MODIFIERS})\s+)*(?:{_KEYWORDS})[\s<(]"  # def f, pub async fn, impl<T>, function(
    r"|(?:public|private|protected|internal|static)\s",  # Java/C#/C member lines
    re.IGNORECASE,
)
_HEADING = re.compile(r"#{1,6}\s")  # Markdown heading, matched at column 0 only
# Lines that belong to the definition below them, so a cut goes above them.
_LEAD_IN = re.compile(r"@\w|#\[|#|//|/\*|\*|--|;")


def _is_lead_in(line: str) -> bool:
    return bool(_LEAD_IN.match(line.lstrip()))


def _best_cut(lines: list[str], lowest: int, highest: int) -> tuple[int, bool]:
    """Where to end a chunk: the index of the first line left out, in ``[lowest, highest]``,
    and whether that line opens a definition or heading.

    Prefers the latest definition start (moved up over its decorators and comments), then
    the latest line that follows a blank line, then the hard limit ``highest``.
    """
    for cut in range(highest, lowest - 1, -1):
        if _HEADING.match(lines[cut]):
            return cut, True
        if _DEFINITION.match(lines[cut].lstrip()):
            while cut - 1 >= lowest and _is_lead_in(lines[cut - 1]):
                cut -= 1
            return cut, True
    for cut in range(highest, lowest - 1, -1):
        if not lines[cut - 1].strip() and lines[cut].strip():
            return cut, False
    return highest, False


def _split_long_line(line: str, line_number: int, max_chars: int) -> list[Chunk]:
    pieces = (line[offset : offset + max_chars] for offset in range(0, len(line), max_chars))
    return [Chunk(line_number, line_number, piece) for piece in pieces if piece.strip()]


def chunk_text(
    text: str,
    *,
    max_chars: int = 800,
    target_lines: int = 50,
    min_lines: int = 10,
    overlap_lines: int = 2,
) -> list[Chunk]:
    """Chunks of at most ``target_lines`` lines and ``max_chars`` characters (see module doc).

    ``min_lines`` keeps a preferred cut from producing a sliver: a cut is only moved back to
    a nicer boundary if the chunk keeps at least that many lines.
    """
    if max_chars < 1 or target_lines < 1 or not 1 <= min_lines <= target_lines:
        raise ValueError("need max_chars >= 1 and 1 <= min_lines <= target_lines")
    if not 0 <= overlap_lines < target_lines:
        raise ValueError("need 0 <= overlap_lines < target_lines")
    if not text.strip():
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    count = len(lines)
    # offsets[k] = characters before line k, each line counted with its newline.
    offsets = [0, *accumulate(len(line) + 1 for line in lines)]

    chunks: list[Chunk] = []
    start = 0  # first line of the next chunk
    covered = 0  # first line no chunk has reached yet
    while start < count:
        if len(lines[start]) > max_chars:
            chunks.extend(_split_long_line(lines[start], start + 1, max_chars))
            start = covered = start + 1
            continue
        # hard: the first line that does not fit after `start`.
        hard = start + 1
        limit = min(count, start + target_lines)
        while hard < limit and _span(offsets, start, hard) <= max_chars:
            hard += 1
        if hard >= count:
            cut, at_definition = count, False
        else:
            # Never cut inside the previous chunk's overlap: every chunk must reach a new line.
            cut, at_definition = _best_cut(lines, max(start + min_lines, covered + 1), hard)
        body = "\n".join(lines[start:cut])
        if body.strip():
            chunks.append(Chunk(start + 1, cut, body))
        if cut >= count:
            break
        covered = cut
        # A definition boundary needs no overlap: nothing meaningful straddles it.
        start = cut if at_definition else cut - _overlap(lines, offsets, start, cut, overlap_lines, max_chars)
    return chunks


def _span(offsets: list[int], first: int, last: int) -> int:
    """Length of lines first..last (inclusive) joined by newlines."""
    return offsets[last + 1] - offsets[first] - 1


def _overlap(lines: list[str], offsets: list[int], start: int, cut: int, wanted: int, max_chars: int) -> int:
    """How many lines before ``cut`` the next chunk repeats.

    No more than fit in one chunk together with line ``cut`` (so the next chunk makes
    progress), never back to ``start`` itself, and never starting on a blank line, which
    would spend the budget on nothing.
    """
    if len(lines[cut]) > max_chars:
        return 0
    overlap = min(wanted, cut - start - 1)
    while overlap > 0 and (
        _span(offsets, cut - overlap, cut) > max_chars or not lines[cut - overlap].strip()
    ):
        overlap -= 1
    return overlap
