"""Print a result document: the one renderer every mode uses.

The daemon, the standalone one-shot query and the client all produce or
receive the same result document (see ``schema.make_result_document``).
Rendering only from that document is what makes daemon and standalone output
byte-identical apart from the timing line: there is no second printer to
drift. Standard library only (shared with the daemon package by symlink), and
cheap to import: it sits on the client's hot path.
"""

from __future__ import annotations

import sys

from . import jsontext

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def render_json(doc: dict[str, Any]) -> str:
    """The document unchanged, as the engine made it. Text that cannot be written as UTF-8
    (a path with undecodable bytes in a message) is written as JSON escapes instead."""
    text = jsontext.dumps(doc, ensure_ascii=False, indent=2)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return jsontext.dumps(doc, ensure_ascii=True, indent=2)
    return text


def timing_line(doc: dict[str, Any], total_s: float | None) -> str:
    engine_s = float(doc.get("timing_ms", {}).get("total", 0.0)) / 1000.0
    if total_s is None:
        return f"✓ Query completed in {engine_s:.3f}s"
    return f"✓ Query completed in {engine_s:.3f}s (total: {total_s:.3f}s)"


# C0 controls but tab, DEL and C1 controls: a file may carry "\x1b[2J" or a title-setting
# sequence, and printing it raw would let a project's content drive the user's terminal.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0a, 0x20), 0x7f, *range(0x80, 0xa0))}


def clean(text: str) -> str:
    """``text`` safe to print on a terminal: control characters escaped, undecodable bytes shown."""
    text = text.translate(_CONTROLS)
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def render_human(doc: dict[str, Any], *, total_s: float | None = None, quiet: bool = False) -> str:
    """Human output. The first line is the timing line (absent with ``quiet``)."""
    results = doc.get("results") or []
    out: list[str] = []
    if not quiet:
        out.append(timing_line(doc, total_s))
        noun = "result" if len(results) == 1 else "results"
        out.append(f"Found {len(results)} {noun} ({doc.get('mode')}) for '{clean(str(doc.get('query')))}'")
        if not results:
            return "\n".join(out) + "\n"
        out.append("")
    for number, result in enumerate(results, 1):
        out.extend(_render_result(number, result, quiet))
    return "\n".join(out) + "\n"


def _render_result(number: int, r: dict[str, Any], quiet: bool) -> list[str]:
    where = f"{clean(r['path'])}:{r['start_line']}-{r['end_line']}"
    if quiet:
        head = f"{r['score']:.3f} {where}"
    else:
        legs = ", ".join(f"{leg} #{rank}" for leg, rank in sorted((r.get("ranks") or {}).items()))
        head = f"{number}. {where}  [{r.get('language') or 'text'}]  score {r['score']:.3f}"
        if legs:
            head += f"  ({legs})"
    lines = [head]
    snippet = r.get("snippet")
    matched = {m["line"] for m in r.get("matches") or ()}
    if snippet and snippet.get("lines"):
        start = int(snippet["start_line"])
        body = snippet["lines"]
    else:
        start = int(r["start_line"])
        body = (r.get("content") or "").split("\n")
        if body and body[-1] == "":
            body.pop()
    width = len(str(start + max(len(body) - 1, 0)))
    for offset, text in enumerate(body):
        line_no = start + offset
        mark = ">" if line_no in matched else " "
        lines.append(f"  {mark}{line_no:>{width}} | {clean(text)}")
    lines.append("")
    return lines


def render_error(doc: dict[str, Any]) -> str:
    err = doc.get("error") or {}
    return f"error: {clean(str(err.get('message', 'unknown error')))}"


#: Exit codes shared by both command lines: 0 ok, 1 runtime error, 2 usage error.
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def exit_code(doc: dict[str, Any]) -> int:
    """0 for results; 2 for a usage error document; 1 for any other error."""
    from .schema import USAGE_ERROR_CODES

    err = doc.get("error")
    if not err:
        return EXIT_OK
    return EXIT_USAGE if err.get("code") in USAGE_ERROR_CODES else EXIT_RUNTIME


def emit_document(doc: dict[str, Any], *, as_json: bool, quiet: bool, total_s: float | None) -> int:
    """Print a document the way both CLIs do and return the exit code it deserves.

    With ``--json`` even an error document goes to stdout (so the client's
    standalone fallback can read it); otherwise an error is one line on stderr.
    """
    err = doc.get("error")
    code = exit_code(doc)
    if as_json:
        sys.stdout.write(render_json(doc) + "\n")
    elif err:
        sys.stderr.write(render_error(doc) + "\n")
    else:
        sys.stdout.write(render_human(doc, total_s=total_s, quiet=quiet))
    return code
