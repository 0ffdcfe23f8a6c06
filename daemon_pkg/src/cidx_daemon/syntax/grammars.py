"""Which tree-sitter grammar parses which of our languages, loaded once per language.

The grammars ship compiled inside the ``tree-sitter-language-pack`` wheel (pinned below
1.0, whose releases download grammars at run time): loading one is a ``dlopen``, never a
network call, so indexing works offline. Parsers are not thread-safe, so each thread
keeps its own; the ``Language`` objects behind them are shared.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

#: Our language name (``cidx_daemon.languages``) -> the language pack's grammar name.
#: Only languages whose definition tables are worth cutting at are listed; markup and data
#: formats keep the regex chunker, which already cuts at headings and blank lines.
_GRAMMARS: dict[str, str] = {
    "python": "python",
    "javascript": "javascript",
    "typescript": "typescript",
    "go": "go",
    "rust": "rust",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
    "csharp": "csharp",
    "ruby": "ruby",
    "php": "php",
    "kotlin": "kotlin",
    "scala": "scala",
    "swift": "swift",
    "lua": "lua",
    "shell": "bash",
}

#: File extensions whose dialect needs another grammar than the language's default.
_BY_EXTENSION: dict[str, str] = {"tsx": "tsx", "jsx": "javascript"}

_local = threading.local()


def grammar_name(language: str, path: str | None = None) -> str | None:
    """The grammar for ``language`` (and, for dialects such as TSX, the file's extension)."""
    base = _GRAMMARS.get(language)
    if base is None:
        return None
    if path and "." in path.rsplit("/", 1)[-1]:
        return _BY_EXTENSION.get(path.rsplit(".", 1)[-1].lower(), base)
    return base


@cache
def _language(name: str) -> Any:
    """The compiled grammar, or None when this install cannot load it (then: regex)."""
    try:
        from tree_sitter_language_pack import get_language
        return get_language(name)  # type: ignore[arg-type]
    except Exception:  # missing package, ABI mismatch, unknown name: the fallback handles it
        return None


def parser_for(grammar: str) -> Any:
    """This thread's parser for ``grammar``, or None when the grammar cannot be loaded."""
    parsers: dict[str, Any] = _local.__dict__.setdefault("parsers", {})
    if grammar not in parsers:
        language = _language(grammar)
        if language is None:
            parsers[grammar] = None
        else:
            from tree_sitter import Parser
            parsers[grammar] = Parser(language)
    return parsers[grammar]
