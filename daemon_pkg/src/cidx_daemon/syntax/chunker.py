"""Cut a file at its definitions, from its tree-sitter syntax tree.

Why: a chunk that is one whole function or class embeds as one meaning and ranks as one
answer; the regex chunker cuts by line budget and lands mid-function. The rules:

* A node whose lines fit ``max_chars`` is one piece, whole.
* A node too big is split into its children, grouped by line (children sharing a line
  cannot be separated by a line cut), each group cut recursively: a big class becomes its
  header plus its members, a big function its statements. Comments, decorators and
  attributes stay with the definition below them.
* Neighbouring pieces are merged while they fit (imports, constants, small functions), so
  a class header keeps its first members and one-liners do not each become a chunk.
* A piece with no syntax left to split (a huge literal, a minified line) goes to the regex
  chunker without overlap, which also splits lines longer than ``max_chars``.

Guarantees (tested): pieces partition the file's lines in order, no overlap; chunk text is
exactly its lines (long-line pieces as in ``chunk_text``); every chunk holds at most
``max_chars`` characters; only whitespace-only chunks are dropped. ``chunk_syntax`` returns
None when the language has no grammar, the parse fails or is mostly errors, so the caller
falls back to the regex chunker for the whole file.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from cidx_daemon.index.chunking import Chunk, Symbol, chunk_text
from cidx_daemon.syntax import tables
from cidx_daemon.syntax.grammars import grammar_name, parser_for

#: A parse whose top-level ERROR nodes cover more than this share of the lines is not
#: trusted (wrong dialect, a template language, a truncated file): regex chunks instead.
MAX_ERROR_SHARE = 0.5
_MAX_DEPTH = 200  # recursion guard for pathological nesting; deeper text goes to the regex chunker


@dataclass
class _Piece:
    """0-based inclusive rows; ``chunks`` set when the regex fallback already cut it."""

    lo: int
    hi: int
    chunks: list[Chunk] | None = None


@dataclass
class _Container:
    lo: int
    hi: int
    qualified: str
    depth: int


@dataclass
class _Context:
    lines: list[str]
    offsets: list[int]
    max_chars: int
    symbols: list[tuple[Symbol, int]] = field(default_factory=list)  # (symbol, depth)
    containers: list[_Container] = field(default_factory=list)

    def size(self, lo: int, hi: int) -> int:
        return self.offsets[hi + 1] - self.offsets[lo] - 1


def _end_row(node: Any) -> int:
    """The last row holding the node's text (a node ending right after a newline ends on the
    previous row)."""
    end = node.end_point
    if end.column == 0 and end.row > node.start_point.row:
        return int(end.row) - 1
    return int(end.row)


def chunk_syntax(text: str, language: str, *, path: str | None = None,
                 max_chars: int = 800) -> list[Chunk] | None:
    """Chunks cut at definitions with their symbols (see the module doc), or None to fall back."""
    grammar = grammar_name(language, path)
    if grammar is None or max_chars < 1:
        return None
    if not text.strip():
        return []
    parser = parser_for(grammar)
    if parser is None:
        return None
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    try:
        tree = parser.parse(text.encode("utf-8", "surrogatepass"))
    except Exception:  # a grammar bug must cost this file its syntax, never the index run
        return None
    root = tree.root_node
    if root.has_error and _error_share(root, len(lines)) > MAX_ERROR_SHARE:
        return None
    ctx = _Context(lines, [0, *accumulate(len(line) + 1 for line in lines)], max_chars)
    _collect(root, ctx, "", 0, in_function=False)
    pieces = _absorb_slivers(_cut(root, 0, len(lines) - 1, ctx, 0), ctx)
    return _to_chunks(pieces, ctx)


def _error_share(root: Any, n_lines: int) -> float:
    bad = sum(_end_row(c) - c.start_point.row + 1 for c in root.children if c.type == "ERROR")
    return bad / max(n_lines, 1)


# --------------------------------------------------------------------------- symbols


def _collect(node: Any, ctx: _Context, parent: str, depth: int, *, in_function: bool,
             parent_kind: str = "") -> None:
    """Every definition under ``node`` (pruning expression subtrees), with its parent path;
    values (variables, constants, fields) only outside function bodies."""
    if depth > _MAX_DEPTH:
        return
    for child in node.named_children:
        t = child.type
        if tables.prunable(t):
            continue
        inner_parent, inner_function, inner_kind = parent, in_function, parent_kind
        if t == "impl_item":
            owner = tables.impl_name(child)
            inner_parent = f"{parent}.{owner}" if parent and owner else owner or parent
            inner_kind = "impl"
            ctx.containers.append(_Container(child.start_point.row, _end_row(child), inner_parent,
                                             inner_parent.count(".") + 1))
        elif t in tables.DEFINITIONS and not (in_function and t in tables.PLAIN_VALUES):
            found = tables.definition_name(child)
            if found is not None:
                name, qualifier, kind, row = found
                if not (in_function and kind in tables.VALUE_KINDS):
                    owner = ".".join(p for p in (parent, qualifier) if p)
                    if kind == "function" and parent_kind in tables.TYPE_KINDS:
                        kind = "method"
                    elif kind in ("variable", "property") and parent_kind in tables.TYPE_KINDS:
                        kind = "field"
                    level = parent.count(".") + 1 if parent else 0  # nesting, not the name's qualifier
                    ctx.symbols.append((Symbol(name, kind, owner, row + 1), level))
                    if kind in tables.CONTAINERS:
                        inner_parent = f"{owner}.{name}" if owner else name
                        inner_kind = kind
                        ctx.containers.append(_Container(child.start_point.row, _end_row(child),
                                                         inner_parent, level + 1))
                    inner_function = in_function or kind in tables.FUNCTION_KINDS
        _collect(child, ctx, inner_parent, depth + 1, in_function=inner_function, parent_kind=inner_kind)


# --------------------------------------------------------------------------- cutting


def _groups(node: Any) -> list[tuple[int, int, Any]]:
    """The node's children grouped by line: (first row, last row, the group's biggest child).

    A new group starts only at a child beginning below everything before it; a group of
    only comments/decorators joins the group that starts on the next line.
    """
    groups: list[list[Any]] = []  # [first, last, biggest, all lead-ins]
    for child in _flattened(node):
        if child.start_byte == child.end_byte:
            continue
        first, last = int(child.start_point.row), _end_row(child)
        lead = tables.is_lead_in(child.type)
        if groups and first <= groups[-1][1]:
            g = groups[-1]
            g[1] = max(g[1], last)
            if last - first > _span(g[2]) or (g[3] and not lead):
                g[2] = child
            g[3] = g[3] and lead
        else:
            groups.append([first, last, child, lead])
    merged: list[list[Any]] = []
    pending: list[Any] | None = None
    for g in groups:
        if pending is not None:
            if g[0] == pending[1] + 1:
                g = [pending[0], g[1], g[2], g[3]]
            else:
                merged.append(pending)
            pending = None
        if g[3]:
            pending = g
        else:
            merged.append(g)
    if pending is not None:
        merged.append(pending)
    return [(g[0], g[1], g[2]) for g in merged]


#: Bodies that start on the line after their header (Python's block, Ruby's body): their
#: statements are cut as siblings of the header, so the header joins the first of them.
_INLINE_BODIES = frozenset({"block", "body_statement"})


def _flattened(node: Any) -> list[Any]:
    out: list[Any] = []
    for child in node.children:
        if child.type in _INLINE_BODIES and child.start_point.row > node.start_point.row:
            out.extend(child.children)
        else:
            out.append(child)
    return out


def _span(node: Any) -> int:
    return _end_row(node) - int(node.start_point.row)


def _cut(node: Any, lo: int, hi: int, ctx: _Context, depth: int) -> list[_Piece]:
    """Pieces partitioning rows lo..hi, which hold ``node`` (see the module doc)."""
    if ctx.size(lo, hi) <= ctx.max_chars:
        return [_Piece(lo, hi)]
    groups = _groups(node) if depth < _MAX_DEPTH else []
    if not groups:
        return [_fallback(lo, hi, ctx)]
    if len(groups) == 1:
        return _cut(groups[0][2], lo, hi, ctx, depth + 1)
    starts = [lo, *(g[0] for g in groups[1:])]
    ends = [s - 1 for s in starts[1:]] + [hi]
    units = [_cut(g[2], a, b, ctx, depth + 1) for g, a, b in zip(groups, starts, ends, strict=True) if a <= b]
    return _merge(units, ctx)


def _merge(units: list[list[_Piece]], ctx: _Context) -> list[_Piece]:
    """Greedily join neighbouring whole units while the joined lines fit ``max_chars``.

    A unit that had to be split keeps its pieces to itself: the head of a big function
    must not be glued to the tail of the small one before it.
    """
    out: list[_Piece] = []
    open_end = False  # whether out[-1] is a whole unit that may grow
    for unit in units:
        whole = len(unit) == 1 and unit[0].chunks is None
        if whole and open_end and ctx.size(out[-1].lo, unit[0].hi) <= ctx.max_chars:
            out[-1].hi = unit[0].hi
            continue
        out.extend(unit)
        open_end = whole
    return out


#: A piece below this share of ``max_chars`` (a closing bracket, the end of a docstring, the
#: last statement of a split function) joins a neighbour even across a split boundary: alone
#: it would be a chunk that matches nothing but pads every result list.
SLIVER_SHARE = 0.125


def _absorb_slivers(pieces: list[_Piece], ctx: _Context) -> list[_Piece]:
    limit = ctx.max_chars * SLIVER_SHARE
    out: list[_Piece] = []
    i = 0
    while i < len(pieces):
        piece = pieces[i]
        small = piece.chunks is None and ctx.size(piece.lo, piece.hi) < limit
        if small and out and out[-1].chunks is None and ctx.size(out[-1].lo, piece.hi) <= ctx.max_chars:
            out[-1].hi = piece.hi
        elif (small and i + 1 < len(pieces) and pieces[i + 1].chunks is None
              and ctx.size(piece.lo, pieces[i + 1].hi) <= ctx.max_chars):
            pieces[i + 1].lo = piece.lo
        else:
            out.append(piece)
        i += 1
    return out


def _fallback(lo: int, hi: int, ctx: _Context) -> _Piece:
    """Rows with no syntax left to cut at: the regex chunker, without overlap."""
    text = "\n".join(ctx.lines[lo:hi + 1])
    chunks = chunk_text(text, max_chars=ctx.max_chars, overlap_lines=0) if text.strip() else []
    return _Piece(lo, hi, [Chunk(c.start_line + lo, c.end_line + lo, c.text) for c in chunks])


# --------------------------------------------------------------------------- chunks


def _to_chunks(pieces: list[_Piece], ctx: _Context) -> list[Chunk]:
    raw: list[Chunk] = []
    for piece in pieces:
        if piece.chunks is not None:
            raw.extend(piece.chunks)
            continue
        text = "\n".join(ctx.lines[piece.lo:piece.hi + 1])
        if text.strip():
            raw.append(Chunk(piece.lo + 1, piece.hi + 1, text))
    if not raw:
        return []
    starts = [c.start_line for c in raw]
    owned: list[list[tuple[Symbol, int]]] = [[] for _ in raw]
    for symbol, depth in ctx.symbols:
        at = bisect.bisect_right(starts, symbol.line) - 1
        if at >= 0 and raw[at].start_line <= symbol.line <= raw[at].end_line:
            # Long-line pieces share a line: the symbol goes to the piece that spells it.
            while (at + 1 < len(raw) and raw[at + 1].start_line == symbol.line
                   and symbol.name not in raw[at].text):
                at += 1
            owned[at].append((symbol, depth))
    return [Chunk(c.start_line, c.end_line, c.text, tuple(s for s, _ in mine), _scope(c, mine, ctx))
            for c, mine in zip(raw, owned, strict=True)]


def _scope(chunk: Chunk, mine: list[tuple[Symbol, int]], ctx: _Context) -> str:
    """The one outermost definition a chunk holds (``Class.method``), else what encloses it."""
    if mine:
        top = min(depth for _, depth in mine)
        outer = [s for s, depth in mine if depth == top]
        if len(outer) == 1:
            return outer[0].qualified
        parents = {s.parent for s in outer}
        return parents.pop() if len(parents) == 1 else ""
    lo, hi = chunk.start_line - 1, chunk.end_line - 1
    best: _Container | None = None
    for c in ctx.containers:
        if c.lo <= lo and hi <= c.hi and (best is None or c.depth > best.depth):
            best = c
    return best.qualified if best is not None else ""
