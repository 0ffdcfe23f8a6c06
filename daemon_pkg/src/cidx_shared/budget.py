"""Fit a result document into a token budget (``--max-tokens``, the MCP search tool).

Agents pay per token, and a query's output can run to tens of thousands. Trimming is
done on the document, before any rendering, so every output format obeys it:

1. snippets shrink, from their length toward the best line alone (``snippet["line"]``);
2. long lines are cut to ``LINE_CHARS`` characters;
3. results are dropped from the end (at least one is kept);

and ``doc["trimmed"]`` says what was given up, so a reader knows there is more.
Tokens are estimated as characters / 4 (code runs ~3.6 characters a token, prose ~4.5):
a budget, not an exact count. For JSON output, where each result also carries its whole
chunk (``content``), the chunks are dropped first: the snippet already shows their best
lines. Human output never prints them, so they do not count there.
Pure functions, standard library only.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CHARS_PER_TOKEN = 4
LINE_CHARS = 160
#: Per result: the header line and its frame.
_RESULT_OVERHEAD = 24
_DOC_OVERHEAD = 40


def estimate(doc: dict[str, Any], *, with_content: bool = False) -> int:
    """Tokens the document's results would cost to read (snippets, headers; chunks if asked)."""
    chars = _DOC_OVERHEAD * CHARS_PER_TOKEN
    for r in doc.get("results") or ():
        chars += _result_chars(r, with_content)
    return -(-chars // CHARS_PER_TOKEN)


def _result_chars(r: dict[str, Any], with_content: bool) -> int:
    n = _RESULT_OVERHEAD * CHARS_PER_TOKEN + len(r.get("path", ""))
    snippet = r.get("snippet") or {}
    n += sum(len(line) + 8 for line in snippet.get("lines") or ())
    if with_content:
        n += len(r.get("content") or "")
    return n


def fit(doc: dict[str, Any], max_tokens: int, *, json_output: bool = False) -> dict[str, Any]:
    """A copy of ``doc`` that fits ``max_tokens`` (see the module docstring)."""
    results = [dict(r) for r in doc.get("results") or ()]
    out = {**doc, "results": results}
    if doc.get("error"):
        return out
    note: dict[str, Any] = {"max_tokens": max_tokens}
    if json_output and estimate(out, with_content=True) > max_tokens:
        for r in results:
            r.pop("content", None)
        note["content"] = "omitted"
    width = max((len((r.get("snippet") or {}).get("lines") or ()) for r in results), default=0)
    while estimate(out) > max_tokens and width > 1:
        width -= 1 if width > 3 else 2 if width == 3 else 1
        for r in results:
            _narrow(r, width)
        note["snippet_lines"] = width
    if estimate(out) > max_tokens:
        for r in results:
            snippet = r.get("snippet")
            if snippet:
                snippet["lines"] = [_cut(line) for line in snippet["lines"]]
        note["line_chars"] = LINE_CHARS
    dropped = 0
    while estimate(out) > max_tokens and len(results) > 1:
        results.pop()
        dropped += 1
    if dropped:
        note["results_dropped"] = dropped
    if len(note) > 1:
        note["estimated_tokens"] = estimate(out)
        out["trimmed"] = note
    return out


def _narrow(r: dict[str, Any], width: int) -> None:
    """Keep ``width`` lines of the snippet, centred on its best line."""
    snippet = r.get("snippet")
    if not snippet or len(snippet.get("lines") or ()) <= width:
        return
    lines = snippet["lines"]
    start = int(snippet["start_line"])
    best = int(snippet.get("line", start)) - start
    lo = max(0, min(best - (width - 1) // 2, len(lines) - width))
    r["snippet"] = {**snippet, "start_line": start + lo, "lines": lines[lo:lo + width]}


def _cut(line: str) -> str:
    return line if len(line) <= LINE_CHARS else line[:LINE_CHARS - 1] + "…"


def describe(note: dict[str, Any]) -> str:
    """One line for a human: what the budget took away."""
    parts = []
    if note.get("results_dropped"):
        parts.append(f"{note['results_dropped']} more result(s) dropped")
    if "snippet_lines" in note:
        parts.append(f"snippets cut to {note['snippet_lines']} line(s)")
    if "line_chars" in note:
        parts.append(f"lines cut at {note['line_chars']} characters")
    if note.get("content") == "omitted":
        parts.append("whole chunks omitted")
    return f"trimmed to ~{note.get('estimated_tokens')} of {note['max_tokens']} tokens: " + "; ".join(parts)
