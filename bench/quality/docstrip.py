"""Find functions' docstrings and blank them out without moving a single line.

The stdlib set asks for a function by the first sentence of its docstring, so the
docstring itself must go, or full-text search would find the query verbatim. The
hit test compares line spans with the original file's ``ast`` positions, so the
blanked source keeps every line where it was: the docstring literal becomes ``""``
(the body stays valid Python) followed by as many empty lines as it spanned.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


@dataclass(frozen=True)
class DocFunction:
    """A function or method with a docstring, located in its file (1-based lines, inclusive)."""

    qualname: str
    name: str
    start_line: int  # first decorator, else the ``def`` line
    end_line: int
    doc_start: tuple[int, int]  # (line, utf-8 byte column) of the docstring literal
    doc_end: tuple[int, int]
    docstring: str  # cleaned (inspect.cleandoc)


def documented_functions(tree: ast.AST) -> list[DocFunction]:
    """Every function and method (nested ones too) whose body starts with a string literal."""
    out: list[DocFunction] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _FUNCS):
                qual = f"{prefix}{child.name}"
                doc = ast.get_docstring(child, clean=True)
                if doc is not None:
                    lit = child.body[0]
                    start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    out.append(DocFunction(
                        qualname=qual, name=child.name, start_line=start,
                        end_line=child.end_lineno or child.lineno,
                        doc_start=(lit.lineno, lit.col_offset),
                        doc_end=(lit.end_lineno or lit.lineno, lit.end_col_offset or 0), docstring=doc))
                visit(child, qual + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def first_sentence(docstring: str) -> str:
    """The docstring's first sentence, on one line, without its final period."""
    paragraph = docstring.strip().split("\n\n", 1)[0]
    text = " ".join(paragraph.split())
    text = _SENTENCE_END.split(text, 1)[0]
    return text.rstrip(".").strip()


def _char_col(line: str, byte_col: int) -> int:
    """ast columns count UTF-8 bytes; string slicing counts characters."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def blank_docstrings(source: str, functions: list[DocFunction]) -> str:
    """``source`` with the docstrings of ``functions`` replaced by ``""``; line count and numbering kept.

    Lines are split on ``\\n`` only (as cidx's walker and ``ast`` number them for
    ``\\n`` files; a form feed inside a line stays part of that line).
    """
    lines = source.split("\n")
    for fn in sorted(functions, key=lambda f: f.doc_start, reverse=True):
        (l1, b1), (l2, b2) = fn.doc_start, fn.doc_end
        first, last = lines[l1 - 1], lines[l2 - 1]
        c1, c2 = _char_col(first, b1), _char_col(last, b2)
        if l1 == l2:
            lines[l1 - 1] = first[:c1] + '""' + first[c2:]
            continue
        lines[l1 - 1] = first[:c1] + '""'
        for i in range(l1, l2 - 1):
            lines[i] = ""
        lines[l2 - 1] = last[c2:]
    return "\n".join(lines)
