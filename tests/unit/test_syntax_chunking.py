"""The syntax chunker: definitions whole, big ones split at their members, neighbours merged,
every line covered once, symbols with kind and parent; the regex chunker where it cannot."""

from __future__ import annotations

import textwrap
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cidx_daemon.index.chunk_table import ChunkTable, ChunkTableWriter, decode_symbols, encode_symbols
from cidx_daemon.index.chunking import Chunk, Symbol, chunk_file, chunk_text
from cidx_daemon.search.ranking import rank
from cidx_daemon.syntax import chunk_syntax, grammar_name, parser_for


def file_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


def assert_partition(text: str, chunks: list[Chunk], max_chars: int) -> None:
    """Exact text, in order, no overlap, every non-blank line covered, size bound."""
    lines = file_lines(text)
    covered: set[int] = set()
    for chunk in chunks:
        assert len(chunk.text) <= max_chars
        assert chunk.text.strip()
        assert chunk.scope is not None, "a syntax chunk always says its scope"
        if chunk.start_line == chunk.end_line and chunk.text != lines[chunk.start_line - 1]:
            assert chunk.text in lines[chunk.start_line - 1]  # a piece of a long line
        else:
            assert chunk.text == "\n".join(lines[chunk.start_line - 1:chunk.end_line])
        covered.update(range(chunk.start_line, chunk.end_line + 1))
    for a, b in pairwise(chunks):
        long_line_pieces = a.start_line == a.end_line == b.start_line == b.end_line
        assert long_line_pieces or b.start_line == a.end_line + 1 or (
            b.start_line > a.end_line and not "".join(lines[a.end_line:b.start_line - 1]).strip())
    missing = [n for n, line in enumerate(lines, 1) if line.strip() and n not in covered]
    assert not missing


def names(chunk: Chunk) -> list[tuple[str, str]]:
    return [(s.kind, s.qualified) for s in chunk.symbols]


def method(name: str, body_lines: int = 6) -> str:
    body = "\n".join(f"        total_{i} = compute_{i}(self.value, {i})" for i in range(body_lines))
    return f"    def {name}(self):\n        \"\"\"Doc of {name}.\"\"\"\n{body}\n        return total_0\n"


# ---------------------------------------------------------------- per language fixtures

PYTHON = textwrap.dedent('''\
    import os
    import sys

    LIMIT = 10


    def small(a):
        return a + 1


    class Big(Base):
        """A class too big for one chunk."""

        size = 3

    ''') + "\n".join(method(n) for n in ("first", "second", "third", "fourth")) + textwrap.dedent('''

    def after():
        return Big()
    ''')


def test_python_big_class_becomes_header_plus_methods() -> None:
    chunks = chunk_syntax(PYTHON, "python", max_chars=400)
    assert chunks is not None
    assert_partition(PYTHON, chunks, 400)
    header = next(c for c in chunks if ("class", "Big") in names(c))
    assert "size = 3" in header.text and header.scope == "Big"
    assert ("field", "Big.size") in names(header)
    for name in ("first", "second", "third", "fourth"):
        chunk = next(c for c in chunks if ("method", f"Big.{name}") in names(c))
        assert f"def {name}(self):" in chunk.text and "return total_0" in chunk.text, "methods stay whole"
    assert [c.scope for c in chunks if ("method", "Big.second") in names(c)] in (["Big.second"], ["Big"])


def test_python_small_neighbours_are_merged_and_defs_kept_whole() -> None:
    chunks = chunk_syntax(PYTHON, "python", max_chars=400)
    assert chunks is not None
    first = chunks[0]
    assert "import os" in first.text and "LIMIT = 10" in first.text and "def small" in first.text
    assert ("constant", "LIMIT") in names(first) and ("function", "small") in names(first)
    whole = chunk_syntax(PYTHON, "python", max_chars=100_000)
    assert whole is not None and len(whole) == 1 and whole[0].scope == ""


def test_python_big_function_is_split_at_statements_with_its_scope() -> None:
    body = "\n".join(f"    value_{i} = helper(value_{i - 1}, {i})  # step {i}" for i in range(1, 40))
    text = f"def long_one(value_0):\n{body}\n    return value_39\n"
    chunks = chunk_syntax(text, "python", max_chars=300)
    assert chunks is not None and len(chunks) > 3
    assert_partition(text, chunks, 300)
    assert names(chunks[0]) == [("function", "long_one")]
    assert all(c.scope == "long_one" for c in chunks)


def test_decorators_and_comments_stay_with_their_definition() -> None:
    filler = "\n".join(f"x_{i} = {i}" for i in range(20))
    text = f"{filler}\n\n# Explains f.\n@cached\ndef f():\n    return 1\n"
    chunks = chunk_syntax(text, "python", max_chars=120)
    assert chunks is not None
    holder = next(c for c in chunks if ("function", "f") in names(c))
    assert "# Explains f.\n@cached\ndef f():\n    return 1" in holder.text


FIXTURES: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "javascript": ("app.js", """\
import x from 'y';
export const LIMIT = 1;
const arrow = () => 1;
function plain() { return 2; }
export default class Widget {
  render() { return 3; }
  static count = 1;
}
""", [("constant", "LIMIT"), ("function", "arrow"), ("function", "plain"), ("class", "Widget"),
      ("method", "Widget.render"), ("field", "Widget.count")]),
    "typescript": ("types.ts", """\
interface Shape { area(): number }
type Name = string;
enum Color { Red }
export abstract class Base { private x: number = 1; abstract run(): void; }
export function make<T>(x: T): T { return x; }
""", [("interface", "Shape"), ("method", "Shape.area"), ("type", "Name"), ("enum", "Color"),
      ("class", "Base"), ("field", "Base.x"), ("method", "Base.run"), ("function", "make")]),
    "tsx": ("view.tsx", """\
export function View(props: Props) {
  return <div className="v">{props.name}</div>;
}
""", [("function", "View")]),
    "go": ("server.go", """\
package server

const Port = 80

type Server struct {
\tAddr string
}

type Handler interface { Serve() }

func (s *Server) Start() error {
\treturn nil
}

func New() *Server { return &Server{} }
""", [("constant", "Port"), ("struct", "Server"), ("interface", "Handler"), ("method", "Server.Start"),
      ("function", "New")]),
    "rust": ("lib.rs", """\
use std::fmt;
const MAX: u32 = 3;
pub struct Router { routes: Vec<u8> }
pub trait Service { fn call(&self); }
impl<T> Service for Router<T> {
    fn call(&self) {}
}
mod inner { pub fn helper() {} }
macro_rules! route { () => {} }
""", [("constant", "MAX"), ("struct", "Router"), ("trait", "Service"), ("method", "Service.call"),
      ("method", "Router.call"), ("module", "inner"), ("function", "inner.helper"), ("macro", "route")]),
    "java": ("Cache.java", """\
package p;
import java.util.Map;
public class Cache extends Base {
    private int size = 1;
    public Cache() {}
    public int get(String key) { return 0; }
    enum Mode { A }
}
""", [("class", "Cache"), ("field", "Cache.size"), ("constructor", "Cache.Cache"), ("method", "Cache.get"),
      ("enum", "Cache.Mode")]),
    "c": ("buf.c", """\
#include <stdlib.h>
#define CAP 16
struct buf { int len; };
typedef struct { int y; } point;
static int *buf_new(int n) { return 0; }
""", [("macro", "CAP"), ("struct", "buf"), ("type", "point"), ("function", "buf_new")]),
    "cpp": ("shape.cpp", """\
namespace geo {
class Shape : public Base {
 public:
  int area() { return 1; }
};
void Shape::draw() {}
}
""", [("namespace", "geo"), ("class", "geo.Shape"), ("method", "geo.Shape.area"),
      ("function", "geo.Shape.draw")]),
    "csharp": ("Repo.cs", """\
using System;
namespace App {
  public class Repo {
    public int Count { get; set; }
    public void Save() {}
  }
  interface IRepo {}
}
""", [("namespace", "App"), ("class", "App.Repo"), ("field", "App.Repo.Count"), ("method", "App.Repo.Save"),
      ("interface", "App.IRepo")]),
    "ruby": ("model.rb", """\
require 'x'
module Store
  LIMIT = 1
  class Item < Base
    def price; end
    def self.build; end
  end
end
""", [("module", "Store"), ("constant", "Store.LIMIT"), ("class", "Store.Item"),
      ("method", "Store.Item.price"), ("method", "Store.Item.build")]),
    "php": ("Cart.php", """\
<?php
namespace Shop;
function helper() {}
class Cart extends Base {
  const MAX = 1;
  public function add($item) {}
}
""", [("namespace", "Shop"), ("function", "helper"), ("class", "Cart"), ("constant", "Cart.MAX"),
      ("method", "Cart.add")]),
}


@pytest.mark.parametrize("grammar", sorted(FIXTURES))
def test_symbols_per_language(grammar: str) -> None:
    path, text, expected = FIXTURES[grammar]
    language = {"tsx": "typescript"}.get(grammar, grammar)
    assert grammar_name(language, path) == grammar
    chunks = chunk_syntax(text, language, path=path, max_chars=800)
    assert chunks is not None
    assert_partition(text, chunks, 800)
    found = [n for c in chunks for n in names(c)]
    for item in expected:
        assert item in found, (item, found)
    small = chunk_syntax(text, language, path=path, max_chars=60)
    assert small is not None
    assert_partition(text, small, 60)
    assert sorted(n for c in small for n in names(c)) == sorted(found), "cutting finer loses no symbol"


def test_symbol_lines_point_at_their_names() -> None:
    _, text, _ = FIXTURES["go"]
    chunks = chunk_syntax(text, "go", max_chars=800)
    assert chunks is not None
    lines = file_lines(text)
    for chunk in chunks:
        for sym in chunk.symbols:
            assert chunk.start_line <= sym.line <= chunk.end_line
            assert sym.name in lines[sym.line - 1]


# ---------------------------------------------------------------- fallback


def test_unknown_language_falls_back_to_the_regex_chunker() -> None:
    text = "# Title\n\nSome words.\n"
    assert chunk_syntax(text, "markdown") is None
    assert chunk_file(text, "markdown") == chunk_text(text)
    assert chunk_file(text, None) == chunk_text(text)


def test_broken_syntax_falls_back_to_the_regex_chunker() -> None:
    text = "\n".join(["}}}} ((( ]] def ::: class" for _ in range(30)]) + "\n"
    assert chunk_syntax(text, "python") is None
    chunks = chunk_file(text, "python")
    assert chunks == chunk_text(text) and all(c.scope is None for c in chunks)


def test_a_small_error_keeps_the_syntax_chunks() -> None:
    text = PYTHON + "\ndef broken(:\n    pass\n"
    chunks = chunk_syntax(text, "python", max_chars=400)
    assert chunks is not None
    assert_partition(text, chunks, 400)


def test_grammars_load_from_the_installed_package() -> None:
    for grammar in ("python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp",
                    "csharp", "ruby", "php"):
        assert parser_for(grammar) is not None, grammar


def test_empty_and_blank_files() -> None:
    assert chunk_syntax("", "python") == []
    assert chunk_syntax("\n \n\t\n", "python") == []


def test_long_lines_are_split_like_the_regex_chunker() -> None:
    text = "x = '" + "a" * 2000 + "'\ndef f():\n    return 1\n"
    chunks = chunk_syntax(text, "python", max_chars=500)
    assert chunks is not None
    assert_partition(text, chunks, 500)
    assert "".join(c.text for c in chunks if c.start_line == 1) == file_lines(text)[0]


# ---------------------------------------------------------------- properties

_PY_LINES = st.sampled_from([
    "", "    ", "def f(x):", "    return x", "class A(B):", "    def m(self):", "        pass", "@decorator",
    "# comment", "x = [", "    1, 2,", "]", "if x:", "else:", '"""', "import os", "'unterminated",
    "    " * 3 + "y",
    "async def g():", "    await h()", "lambda: (", "FOO: int = 3",
])
_C_LINES = st.sampled_from([
    "", "int main(void) {", "}", "  return 0;", "struct s {", "  int x;", "};", "#define X 1", "/* c */",
    "void f();", "class C {", "public:", "  C() {}", "namespace n {", "fn f() {", "impl A {",
    "func (r *R) M() {",
    "function g() {", "const x = () => {", "{", "(", ")", "package p",
])


@st.composite
def programs(draw: st.DrawFn) -> tuple[str, str]:
    language = draw(st.sampled_from(["python", "c", "cpp", "go", "rust", "javascript", "typescript", "java",
                                     "csharp", "ruby", "php"]))
    lines = _PY_LINES if language in ("python", "ruby") else _C_LINES
    noise = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=60)
    body = draw(st.lists(st.one_of(lines, noise, st.text("ab ", min_size=90, max_size=400)), max_size=80))
    return language, "\n".join(body) + ("\n" if draw(st.booleans()) else "")


@settings(max_examples=250, deadline=None)
@given(programs(), st.integers(40, 900))
def test_any_text_in_a_supported_language_chunks_without_error(case: tuple[str, str], max_chars: int) -> None:
    language, text = case
    chunks = chunk_file(text, language, max_chars=max_chars)
    if chunks and chunks[0].scope is not None:
        assert_partition(text, chunks, max_chars)
    else:  # the regex fallback keeps its own guarantees
        assert all(len(c.text) <= max_chars for c in chunks)
    assert (chunks == []) == (not text.strip())
    assert chunks == chunk_file(text, language, max_chars=max_chars), "deterministic"


# ---------------------------------------------------------------- chunk table and ranking


def test_symbols_round_trip_through_the_chunk_table(tmp_path: Path) -> None:
    assert decode_symbols(encode_symbols(None, [])) == (None, [])
    syms = [Symbol("send", "method", "Client", 3)]
    assert decode_symbols(encode_symbols("Client.send", syms)) == ("Client.send", syms)
    chunks = chunk_syntax(PYTHON, "python", max_chars=400)
    assert chunks is not None
    writer = ChunkTableWriter()
    writer.add_file("m.py", "python", "h", 1, 1,
                    ((c.start_line, c.end_line, c.text, encode_symbols(c.scope, c.symbols)) for c in chunks),
                    range(len(chunks)))
    writer.add_file("notes.md", "markdown", "h2", 1, 1, [(1, 1, "Big words")], [len(chunks)])
    writer.write(tmp_path)
    table = ChunkTable(tmp_path)
    index = table.symbol_index()
    big = index.lookup("Big")
    assert [sym.kind for _, sym in big] == ["class"] and "class Big" in table.text(big[0][0])
    assert index.lookup("big") == [] and index.lookup("big", fold=True) == big
    assert index.with_prefix("fi") == ["first"] and index.with_prefix("zzz") == []
    assert bool(index.syntax_rows[0]) and not bool(index.syntax_rows[len(chunks)])
    assert table.symbols(big[0][0])[0] == "Big"


_NAMES = st.sampled_from(["send", "Client", "send_mail", "mail", "a", "Send", "é"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(st.tuples(st.sampled_from(["function", "class", "method"]),
                                                         _NAMES, st.one_of(st.just(""), _NAMES)),
                                               max_size=4)),
                min_size=1, max_size=12))
def test_symbol_lookup_from_the_bytes_equals_the_full_dicts(tmp_path_factory: pytest.TempPathFactory,
                                                            records: list) -> None:
    """The on-demand lookup (a scan of symbols.bin for the name between tabs) answers what the
    dicts of every row's decoded record answer, for names that are also parents or scopes."""
    from cidx_daemon.index.chunk_table import _AllNames

    writer = ChunkTableWriter()
    rows = [(i + 1, i + 1, f"line {i}", encode_symbols(None if rec is None else "send",
                                                     [Symbol(n, k, p, i + 1) for k, n, p in rec or []]))
            for i, rec in enumerate(records)]
    writer.add_file("m.py", "python", "h", 1, 1, rows, range(len(rows)))
    directory = tmp_path_factory.mktemp("table")
    writer.write(directory)
    table = ChunkTable(directory)
    index = table.symbol_index()
    full = _AllNames(table)
    for name in ["send", "Client", "send_mail", "mail", "a", "Send", "é", "missing", "send\tx"]:
        assert index.lookup(name) == full.exact.get(name, []), name
        assert index.lookup(name) == index.lookup(name)  # remembered, same answer
    assert index.syntax_rows.tolist() == [rec is not None for rec in records]
    assert all(index.defined_in(r) == table.symbols(r)[1] for r in range(len(records)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=8), st.data())
def test_carried_files_are_copied_byte_for_byte(tmp_path_factory: pytest.TempPathFactory,
                                                 files: list[tuple[int, bool]], data: st.DataObject) -> None:
    """Files carried into a new table (whole runs of neighbours sliced at once) hold exactly
    the bytes of writing the same files afresh: text, symbol records, lines, ids."""
    old = ChunkTableWriter()
    cid = 0
    for i, (n_rows, with_symbols) in enumerate(files):
        chunks = [(j + 1, j + 2, f"f{i} c{j} \u00e9", encode_symbols("S" if with_symbols else None,
                                                                  [Symbol(f"n{i}{j}", "function", "", j + 1)]
                                                                  if with_symbols else []))
                  for j in range(n_rows)]
        old.add_file(f"f{i}.py", "python", f"h{i}", 10 + i, 100 + i, chunks, range(cid, cid + n_rows))
        cid += n_rows
    directory = tmp_path_factory.mktemp("old")
    old.write(directory)
    table = ChunkTable(directory)
    keep = sorted(data.draw(st.sets(st.integers(0, len(files) - 1))))
    copied, fresh = ChunkTableWriter(), ChunkTableWriter()
    copied.copy_files(table, [(table.files[i], 1, 2) for i in keep])
    copied.add_file("new.py", "python", "hn", 1, 1, [(1, 1, "new")], [cid])
    for i in keep:
        rec = table.files[i]
        rows = range(rec.first_row, rec.first_row + rec.n_rows)
        fresh.add_file(rec.path, rec.language, rec.hash, 1, 2,
                       [(*table.lines(r), table.text(r), table.raw_symbols(r)) for r in rows],
                       [int(table.cids[r]) for r in rows])
    fresh.add_file("new.py", "python", "hn", 1, 1, [(1, 1, "new")], [cid])
    a, b = tmp_path_factory.mktemp("copied"), tmp_path_factory.mktemp("fresh")
    copied.write(a)
    fresh.write(b)
    for name in ("files.json", "rows.npy", "cids.npy", "text.bin", "text_off.npy", "symbols.bin",
                 "sym_off.npy"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    with_rows = [rec for rec in table.files if rec.n_rows]
    if with_rows:
        with pytest.raises(ValueError, match="ascend"):
            copied.copy_files(table, [(with_rows[0], 1, 2)])  # ids would go backwards


def test_old_tables_without_symbols_still_open(tmp_path: Path) -> None:
    writer = ChunkTableWriter()
    writer.add_file("a.py", "python", "h", 1, 1, [(1, 1, "def f(): pass")], [0])
    writer.write(tmp_path)
    (tmp_path / "symbols.bin").unlink()
    (tmp_path / "sym_off.npy").unlink()
    table = ChunkTable(tmp_path)
    assert table.symbols(0) == (None, []) and len(table.symbol_index()) == 0
    assert not np.asarray(table.symbol_index().syntax_rows).any()


def test_ranking_trusts_the_symbol_index_over_the_regex() -> None:
    # Row 0 mentions ``Pool = `` in a docstring-like text, row 1 defines it per the syntax tree.
    texts = {0: "Pool = make()  # not a definition per the tree", 1: "@dataclass\nclass Pool(\n    Base):",
             2: "use(Pool)"}
    paths = {0: "a.py", 1: "pool.py", 2: "c.py"}

    class Index:
        syntax_rows = np.array([True, True, True])

        def lookup(self, name: str, *, fold: bool = False) -> list[tuple[int, Symbol]]:
            return [(1, Symbol("Pool", "class", "", 2))] if name == "Pool" else []

        def defined_in(self, row: int) -> list[Symbol]:
            return [Symbol("Pool", "class", "", 2)] if row == 1 else []

    legs = {"fts": [(0, 9.0), (2, 8.0)]}
    out = rank(legs, query="Pool", limit=10, text_of=texts.__getitem__, path_of=paths.__getitem__,
               symbols=Index())
    assert out[0].row == 1 and out[0].ranks == {"symbol": 1}


class _Index:
    """A symbol index over hand-made rows (what ``ChunkTable.symbol_index`` answers)."""

    def __init__(self, defs: dict[int, Symbol], n: int) -> None:
        self.defs = defs
        self.syntax_rows = np.ones(n, dtype=bool)

    def lookup(self, name: str, *, fold: bool = False) -> list[tuple[int, Symbol]]:
        return [(row, sym) for row, sym in sorted(self.defs.items()) if sym.name == name]

    def defined_in(self, row: int) -> list[Symbol]:
        return [self.defs[row]] if row in self.defs else []


def test_a_lone_word_the_code_defines_is_an_identifier_query() -> None:
    texts = {0: "the g object is handy", 1: "g: _AppCtxGlobals = LocalProxy(...)"}
    paths = {0: "docs.py", 1: "src/flask/globals.py"}
    legs = {"fts": [(0, 9.0)], "semantic": [(0, 0.9)]}
    out = rank(legs, query="g", limit=10, text_of=texts.__getitem__, path_of=paths.__getitem__,
               symbols=_Index({1: Symbol("g", "variable", "", 1)}, 2))
    assert out[0].row == 1


def test_a_qualified_query_prefers_the_named_owner() -> None:
    texts = {0: "def send(self):", 1: "def send(self):"}
    paths = {0: "a.py", 1: "b.py"}
    out = rank({"fts": [(0, 9.0), (1, 8.0)]}, query="Client.send", limit=10, text_of=texts.__getitem__,
               path_of=paths.__getitem__,
               symbols=_Index({0: Symbol("send", "method", "Server", 1),
                               1: Symbol("send", "method", "Client", 1)}, 2))
    assert out[0].row == 1


def test_the_embedder_reads_path_and_scope_above_the_text(tmp_path: Path) -> None:
    from cidx_daemon.index.indexer import embedding_input

    chunks = chunk_syntax(PYTHON, "python", max_chars=400)
    assert chunks is not None
    writer = ChunkTableWriter()
    writer.add_file("pkg/m.py", "python", "h", 1, 1,
                    ((c.start_line, c.end_line, c.text, encode_symbols(c.scope, c.symbols)) for c in chunks),
                    range(len(chunks)))
    writer.add_file("notes.md", "markdown", "h2", 1, 1, [(1, 1, "words")], [len(chunks)])
    writer.write(tmp_path)
    table = ChunkTable(tmp_path)
    row = next(i for i, c in enumerate(chunks) if ("method", "Big.third") in names(c))
    assert embedding_input(table, row) == f"pkg/m.py Big.third\n{chunks[row].text}"
    assert embedding_input(table, len(chunks)) == "notes.md\nwords"
