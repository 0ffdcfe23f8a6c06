"""JSON for the client's hot path, without importing the ``json`` package.

Why: ``import json`` imports ``re`` (and ``enum``, ``re._compiler``...), about 4.5 ms
of a warm query whose floor, a bare interpreter, is ~8 ms. The work itself is done
by the same C code ``json`` uses (``_json``): its scanner decodes, its string
quoting encodes. What ``json`` adds on top (regexes for whitespace and numbers in
the pure-Python fallback, the encoder's indentation logic) is replaced by a few
lines here. Output is byte-identical to ``json.dumps`` with the same options, and
a property test holds both directions equal to the ``json`` module.

Without ``_json`` (an exotic build) the ``json`` package is used, slower but the same.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    from _json import encode_basestring as _quote
    from _json import encode_basestring_ascii as _quote_ascii
    from _json import make_scanner as _make_scanner
except ImportError:  # pragma: no cover - CPython always has it
    _make_scanner = None

_WS = " \t\n\r"
_INF = float("inf")


class _Context:
    """The attributes the C scanner reads from ``json.JSONDecoder`` (same defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": _INF, "-Infinity": -_INF}.__getitem__
    memo: dict = {}  # noqa: RUF012 - read once by the scanner's constructor


_scan = _make_scanner(_Context()) if _make_scanner is not None else None


def loads(text: str | bytes) -> Any:
    """``json.loads``: ValueError (``json.JSONDecodeError`` when the scanner explains) on bad input."""
    if _scan is None:
        import json

        return json.loads(text)
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    n = len(text)
    i = 0
    while i < n and text[i] in _WS:
        i += 1
    try:
        value, end = _scan(text, i)
    except StopIteration as exc:
        raise ValueError(f"not JSON: nothing valid at character {exc.value}") from None
    except SystemError:
        # The scanner explains most errors with json.decoder.JSONDecodeError, looked up in
        # sys.modules only: where nothing imported json (this module's point) it raises
        # nothing, and the interpreter reports "returned NULL without setting an exception".
        raise ValueError("not JSON") from None
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        raise ValueError(f"not JSON: extra data at character {end}")
    return value


def dumps(obj: Any, *, indent: int | None = None, ensure_ascii: bool = True) -> str:
    """``json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii)`` for JSON-shaped data
    (dict with str keys, list, tuple, str, int, float, bool, None)."""
    if _scan is None:
        import json

        return json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii)
    out: list[str] = []
    _encode(obj, out, _quote_ascii if ensure_ascii else _quote, indent, 0)
    return "".join(out)


def _encode(obj: Any, out: list[str], quote: Any, indent: int | None, depth: int) -> None:
    if isinstance(obj, str):
        out.append(quote(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        if obj != obj:
            out.append("NaN")
        elif obj in (_INF, -_INF):
            out.append("Infinity" if obj > 0 else "-Infinity")
        else:
            out.append(float.__repr__(obj))
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        pad, sep = _layout(indent, depth + 1)
        out.append("{" + pad)
        first = True
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"keys must be str, not {type(key).__name__}")
            if not first:
                out.append(sep)
            first = False
            out.append(quote(key) + ": ")
            _encode(value, out, quote, indent, depth + 1)
        out.append(_layout(indent, depth)[0] + "}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        pad, sep = _layout(indent, depth + 1)
        out.append("[" + pad)
        for k, value in enumerate(obj):
            if k:
                out.append(sep)
            _encode(value, out, quote, indent, depth + 1)
        out.append(_layout(indent, depth)[0] + "]")
    else:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _layout(indent: int | None, depth: int) -> tuple[str, str]:
    """(text after an opening bracket / before a closing one, separator between items)."""
    if indent is None:
        return "", ", "
    pad = "\n" + " " * (indent * depth)
    return pad, "," + pad
