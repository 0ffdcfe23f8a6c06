"""Print a result document: the one renderer every mode and every format uses.

The daemon, the standalone one-shot query and the client all produce or receive
the same result document (see ``schema.make_result_document``). Rendering only
from that document is what makes daemon and standalone output byte-identical apart
from the timing line: there is no second printer to drift. The formats (human,
``--json``, ``--jsonl``, ``--files-only``) are views of that one document, after
the same ``--max-tokens`` trimming (``budget.fit``).

Human output, as ripgrep's: each result's path (relative to the current directory;
JSON keeps them relative to the project root, which the document names in ``root``),
lines, language and score, then the few lines around its best line, the matched
spans highlighted when colour is on (a terminal, unless ``NO_COLOR``; or
``--color always``). Text from files is printed with control characters escaped:
a project's content must not drive the user's terminal.

Standard library only, and cheap to import: it sits on the client's hot path.
"""

from __future__ import annotations

import os
import sys

from . import jsontext

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Exit codes shared by both command lines: 0 ok, 1 runtime error, 2 usage error.
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2

# C0 controls but tab, DEL and C1 controls: a file may carry "\x1b[2J" or a title-setting
# sequence, and printing it raw would let a project's content drive the user's terminal.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0a, 0x20), 0x7f, *range(0x80, 0xa0))}
_PATH, _LINE_NO, _MATCH, _DIM, _RESET = "\x1b[35m", "\x1b[32m", "\x1b[1;31m", "\x1b[2m", "\x1b[0m"


class Style:
    """Colours on or off; ``plain`` when off, so callers never test."""

    __slots__ = ("on",)

    def __init__(self, on: bool) -> None:
        self.on = on

    def __call__(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.on and text else text


def use_color(when: str, stream: Any = None) -> bool:
    """``--color``: always, never, or auto (a terminal, and ``NO_COLOR`` unset or empty)."""
    if when == "always":
        return True
    if when == "never" or os.environ.get("NO_COLOR"):
        return False
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def clean(text: str) -> str:
    """``text`` safe to print on a terminal: control characters escaped, undecodable bytes shown."""
    text = text.translate(_CONTROLS)
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def shown_path(path: str, doc: dict[str, Any], cwd: str | None) -> str:
    """A result's path as a user at ``cwd`` would type it (project-relative if unknown)."""
    root = doc.get("root")
    if cwd is None or not root:
        return path
    full = os.path.join(root, path)
    try:
        return os.path.relpath(full, cwd)
    except ValueError:
        return full


# --------------------------------------------------------------------------- formats


def render_json(doc: dict[str, Any]) -> str:
    """The document as the engine made it. Text that cannot be written as UTF-8 (a path
    with undecodable bytes in a message) is written as JSON escapes instead."""
    return _dumps(doc, indent=2)


def render_jsonl(doc: dict[str, Any]) -> str:
    """One compact JSON object per result (with its ``rank``), or the error document."""
    if doc.get("error"):
        return _dumps(doc) + "\n"
    lines = [_dumps({"rank": n, **r}) for n, r in enumerate(doc.get("results") or (), 1)]
    return "".join(line + "\n" for line in lines)


def render_files(doc: dict[str, Any], cwd: str | None, limit: int | None = None) -> str:
    """The results' files, best first, each once; at most ``limit`` of them."""
    seen: dict[str, None] = {}
    for r in doc.get("results") or ():
        if limit is not None and len(seen) >= limit:
            break
        seen.setdefault(clean(shown_path(r["path"], doc, cwd)), None)
    return "".join(path + "\n" for path in seen)


def _dumps(doc: Any, indent: int | None = None) -> str:
    text = jsontext.dumps(doc, ensure_ascii=False, indent=indent)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return jsontext.dumps(doc, ensure_ascii=True, indent=indent)
    return text


def timing_line(doc: dict[str, Any], total_s: float | None) -> str:
    engine_s = float(doc.get("timing_ms", {}).get("total", 0.0)) / 1000.0
    if total_s is None:
        return f"✓ Query completed in {engine_s:.3f}s"
    return f"✓ Query completed in {engine_s:.3f}s (total: {total_s:.3f}s)"


def render_human(doc: dict[str, Any], *, total_s: float | None = None, quiet: bool = False,
                 style: Style | None = None, cwd: str | None = None, timing: bool = True) -> str:
    """Human output. The first line is the timing line (absent with ``quiet``, or without
    ``timing``: a model reading the MCP tool's text pays tokens for it and learns nothing)."""
    style = style or Style(False)
    results = doc.get("results") or []
    out: list[str] = []
    if not quiet:
        if timing:
            out.append(timing_line(doc, total_s))
        noun = "result" if len(results) == 1 else "results"
        label = "regex" if (doc.get("request") or {}).get("regex") else doc.get("mode")
        head = f"Found {len(results)} {noun} ({label}) for '{clean(str(doc.get('query')))}'"
        pending = doc.get("pending") or {}
        if pending.get("files"):
            head += f" · {pending['files']} changed file(s) being indexed"
        if pending.get("embed") and doc.get("mode") != "fts":
            head += f" · {pending['embed']} chunks not embedded yet (full text covers them)"
        out.append(head)
        if not results:
            return "\n".join(out) + "\n"
        out.append("")
    for number, result in enumerate(results, 1):
        out.extend(_render_result(number, result, quiet, style, shown_path(result["path"], doc, cwd)))
    return "\n".join(out) + "\n"


def _render_result(number: int, r: dict[str, Any], quiet: bool, style: Style, path: str) -> list[str]:
    where = f"{style(_PATH, clean(path))}:{r['start_line']}-{r['end_line']}"
    if quiet:
        head = f"{r['score']:.3f} {where}"
    else:
        legs = ", ".join(f"{leg} #{rank}" for leg, rank in sorted((r.get("ranks") or {}).items()))
        head = f"{number}. {where}  [{r.get('language') or 'text'}]  score {r['score']:.3f}"
        if legs:
            head += style(_DIM, f"  ({legs})")
    lines = [head]
    snippet = r.get("snippet")
    columns = {m["line"]: m.get("columns") or [] for m in r.get("matches") or ()}
    if snippet and snippet.get("lines"):
        start = int(snippet["start_line"])
        body = snippet["lines"]
        best = int(snippet.get("line", 0))
    else:  # a document from an older engine: the whole chunk
        start = int(r["start_line"])
        body = (r.get("content") or "").split("\n")
        if body and body[-1] == "":
            body.pop()
        best = 0
    width = len(str(start + max(len(body) - 1, 0)))
    for offset, text in enumerate(body):
        line_no = start + offset
        mark = ">" if line_no in columns or (not columns and line_no == best) else " "
        number_text = style(_LINE_NO, f"{line_no:>{width}}")
        lines.append(f"  {mark}{number_text} | {_highlight(text, columns.get(line_no), style)}")
    lines.append("")
    return lines


def _highlight(text: str, spans: list[list[int]] | None, style: Style) -> str:
    if not spans or not style.on:
        return clean(text)
    out, pos = [], 0
    for a, b in sorted(spans):
        if a < pos:
            continue
        out.append(clean(text[pos:a]))
        out.append(style(_MATCH, clean(text[a:b])))
        pos = b
    out.append(clean(text[pos:]))
    return "".join(out)


def render_error(doc: dict[str, Any]) -> str:
    err = doc.get("error") or {}
    return f"error: {clean(str(err.get('message', 'unknown error')))}"


def exit_code(doc: dict[str, Any]) -> int:
    """0 for results; 2 for a usage error document; 1 for any other error."""
    from .schema import USAGE_ERROR_CODES

    err = doc.get("error")
    if not err:
        return EXIT_OK
    return EXIT_USAGE if err.get("code") in USAGE_ERROR_CODES else EXIT_RUNTIME


def emit_document(doc: dict[str, Any], output: dict[str, Any], *, total_s: float | None = None,
                  cwd: str | None = None) -> int:
    """Print a document in the format ``output`` asks for; return the exit code it deserves.

    With ``--json``/``--jsonl`` even an error document goes to stdout (so the client's
    standalone fallback can read it); otherwise an error is one line on stderr. Warnings
    (a damaged index served from its previous generation) and what ``--max-tokens``
    trimmed go to stderr in human formats, and stay in the document in JSON.
    """
    err = doc.get("error")
    as_json, as_jsonl = output.get("json"), output.get("jsonl")
    if output.get("max_tokens") and not err:
        from .budget import fit

        doc = fit(doc, int(output["max_tokens"]), json_output=bool(as_json or as_jsonl))
    if as_json:
        sys.stdout.write(render_json(doc) + "\n")
    elif as_jsonl:
        sys.stdout.write(render_jsonl(doc))
    elif err:
        sys.stderr.write(render_error(doc) + "\n")
    else:
        for warning in doc.get("warnings") or ():
            sys.stderr.write(f"warning: {clean(str(warning))}\n")
        if output.get("files_only"):
            sys.stdout.write(render_files(doc, cwd, output.get("files_limit")))
        else:
            style = Style(use_color(output.get("color") or "auto"))
            sys.stdout.write(render_human(doc, total_s=total_s, quiet=bool(output.get("quiet")), style=style,
                                          cwd=cwd))
        if doc.get("trimmed"):
            from .budget import describe

            sys.stderr.write(f"note: {describe(doc['trimmed'])}\n")
    return exit_code(doc)
