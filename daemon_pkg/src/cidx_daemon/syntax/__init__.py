"""Syntax-aware chunking: tree-sitter grammars, per-language definition tables, the chunk cutter.

``chunk_syntax`` cuts a file at its definitions and records what each chunk defines; it
returns None when the language has no grammar or the parse is unusable, and the caller
(``cidx_daemon.index.chunking.chunk_file``) falls back to the regex chunker.
"""

from cidx_daemon.syntax.chunker import chunk_syntax
from cidx_daemon.syntax.grammars import grammar_name, parser_for
from cidx_daemon.syntax.tables import Symbol

__all__ = ["Symbol", "chunk_syntax", "grammar_name", "parser_for"]
