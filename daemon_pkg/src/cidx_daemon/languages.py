"""The language table: which language a file is written in, and what users may type to name one.

Detection is deliberately cheap and path-based (exact file name, then extension, then
well-known name prefixes such as ``Dockerfile.dev``, then - only when nothing else matched -
the interpreter on a ``#!`` first line). :func:`language_for_path` returns ``None`` when
nothing matched; the walker then files text content under ``"text"`` (it has checked the
content is not binary), so unknown file types stay searchable and ``--language text``
selects them.

Ambiguous extensions are settled once, here: ``.h`` is C (C++ headers usually use it too,
so filter with ``--language c,cpp``), ``.m`` is Objective-C (not MATLAB), ``.pl`` is Perl,
``.v`` is Verilog, ``.svg`` is XML.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "LANGUAGES",
    "PROSE_AND_DATA",
    "TEXT",
    "Language",
    "UnknownLanguageError",
    "language_for_path",
    "resolve_languages",
]

TEXT = "text"
"""The language of text files whose type is not recognised."""


@dataclass(frozen=True)
class Language:
    """One row of the table; every spelling is stored lowercase except exact file names."""

    name: str
    extensions: tuple[str, ...] = ()
    filenames: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    interpreters: tuple[str, ...] = ()


class UnknownLanguageError(ValueError):
    """A user-typed language that matches no name, alias or extension.

    A ValueError so argument parsers report it as bad input; it carries the close matches so
    a client can offer them without re-deriving the table.
    """

    def __init__(self, value: str, suggestions: tuple[str, ...]) -> None:
        self.value = value
        self.suggestions = suggestions
        hint = f" (did you mean: {', '.join(suggestions)}?)" if suggestions else ""
        super().__init__(f"unknown language {value!r}{hint}")


_L = Language

# Kept alphabetical so `--help` and the docs list it in a findable order.
_TABLE: tuple[Language, ...] = (
    _L("assembly", ("asm", "s", "nasm"), aliases=("asm",)),
    _L("awk", ("awk",), interpreters=("awk", "gawk", "mawk", "nawk")),
    _L("batch", ("bat", "cmd"), aliases=("bat", "cmd")),
    _L("c", ("c", "h")),
    _L("clojure", ("clj", "cljs", "cljc", "edn"), aliases=("clj",), interpreters=("bb",)),
    _L("cmake", ("cmake",), filenames=("CMakeLists.txt",)),
    _L(
        "cpp",
        ("cpp", "cc", "cxx", "c++", "hpp", "hh", "hxx", "h++", "ipp", "inl", "tpp", "cppm", "ixx"),
        aliases=("c++", "cplusplus", "cxx"),
    ),
    _L("csharp", ("cs", "csx"), aliases=("c#", "cs")),
    _L("css", ("css",)),
    _L("dart", ("dart",), interpreters=("dart",)),
    _L("diff", ("diff", "patch"), aliases=("patch",)),
    _L(
        "dockerfile",
        ("dockerfile", "containerfile"),
        filenames=("Dockerfile", "dockerfile", "Containerfile"),
        aliases=("docker", "containerfile"),
    ),
    _L("elixir", ("ex", "exs"), aliases=("ex",), interpreters=("elixir",)),
    _L("elm", ("elm",)),
    _L("erlang", ("erl", "hrl"), filenames=("rebar.config",), aliases=("erl",), interpreters=("escript",)),
    _L("fortran", ("f", "for", "f77", "f90", "f95", "f03", "f08"), aliases=("f90",)),
    _L("fsharp", ("fs", "fsi", "fsx"), aliases=("f#", "fs")),
    _L("go", ("go",), aliases=("golang",)),
    _L("graphql", ("graphql", "gql"), aliases=("gql",)),
    _L("groovy", ("groovy", "gvy", "gradle"), filenames=("Jenkinsfile",), aliases=("gradle",),
       interpreters=("groovy",)),
    _L("haskell", ("hs", "lhs"), aliases=("hs",), interpreters=("runghc", "runhaskell")),
    _L("hcl", ("tf", "tfvars", "hcl"), aliases=("terraform", "tf")),
    _L("html", ("html", "htm", "xhtml"), aliases=("htm", "xhtml")),
    _L("ini", ("ini", "cfg", "conf", "properties"), filenames=(".editorconfig", ".gitconfig"),
       aliases=("conf", "properties")),
    _L("java", ("java",)),
    _L("javascript", ("js", "mjs", "cjs", "jsx"), aliases=("js", "jsx", "node", "ecmascript"),
       interpreters=("node", "nodejs")),
    _L("json", ("json", "jsonc", "json5", "jsonl", "ndjson", "geojson"), aliases=("jsonl", "json5")),
    _L("julia", ("jl",), aliases=("jl",), interpreters=("julia",)),
    _L("kotlin", ("kt", "kts"), aliases=("kt",)),
    _L("latex", ("tex", "sty", "bib"), aliases=("tex",)),
    _L("less", ("less",)),
    _L("lisp", ("lisp", "lsp", "el"), aliases=("elisp", "emacs-lisp", "common-lisp"), interpreters=("sbcl",)),
    _L("lua", ("lua",), interpreters=("lua", "luajit")),
    _L(
        "makefile",
        ("mk", "mak", "make"),
        filenames=("Makefile", "makefile", "GNUmakefile", "BSDmakefile"),
        aliases=("make",),
        interpreters=("make",),
    ),
    _L("markdown", ("md", "markdown", "mdx", "mkd", "mdown"), aliases=("md",)),
    _L("nim", ("nim", "nims", "nimble")),
    _L("nix", ("nix",)),
    _L("objective-c", ("m", "mm"), aliases=("objc", "obj-c", "objectivec", "objective-c++")),
    _L("ocaml", ("ml", "mli"), aliases=("ml",), interpreters=("ocaml",)),
    _L("perl", ("pl", "pm", "pod"), aliases=("pl",), interpreters=("perl",)),
    _L("php", ("php", "phtml", "php3", "php4", "php5", "phps"), interpreters=("php",)),
    _L("powershell", ("ps1", "psm1", "psd1"), aliases=("ps1", "pwsh", "posh"),
       interpreters=("pwsh", "powershell")),
    _L("protobuf", ("proto",), aliases=("proto",)),
    _L(
        "python",
        ("py", "pyi", "pyw", "pyx", "pxd"),
        filenames=("SConstruct", "SConscript"),
        aliases=("py", "python3", "py3"),
        interpreters=("python", "pypy"),
    ),
    _L("r", ("r",), filenames=(".Rprofile",), aliases=("rlang",), interpreters=("rscript",)),
    _L("restructuredtext", ("rst", "rest"), aliases=("rst",)),
    _L(
        "ruby",
        ("rb", "rake", "gemspec", "ru", "erb"),
        filenames=("Rakefile", "Gemfile", "Guardfile", "Podfile", "Vagrantfile", "Brewfile", "Fastfile"),
        aliases=("rb",),
        interpreters=("ruby", "jruby"),
    ),
    _L("rust", ("rs",), aliases=("rs",)),
    _L("scala", ("scala", "sc", "sbt"), interpreters=("scala",)),
    _L("scheme", ("scm", "ss", "rkt"), aliases=("racket",), interpreters=("guile", "racket")),
    _L("scss", ("scss", "sass"), aliases=("sass",)),
    _L(
        "shell",
        ("sh", "bash", "zsh", "ksh", "fish", "bats"),
        filenames=(
            ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".bash_aliases",
            ".zshrc", ".zprofile", ".zshenv", ".zlogin", ".profile", ".kshrc",
        ),
        aliases=("sh", "bash", "zsh", "ksh", "fish", "shellscript"),
        interpreters=("sh", "bash", "zsh", "ksh", "dash", "ash", "fish"),
    ),
    _L("solidity", ("sol",), aliases=("sol",)),
    _L("sql", ("sql", "psql", "pgsql", "ddl")),
    _L(
        "starlark",
        ("bzl", "star"),
        filenames=("BUILD", "BUILD.bazel", "WORKSPACE", "WORKSPACE.bazel", "MODULE.bazel"),
        aliases=("bazel",),
    ),
    _L("svelte", ("svelte",)),
    _L("swift", ("swift",), interpreters=("swift",)),
    _L("tcl", ("tcl",), interpreters=("tclsh", "wish")),
    _L(TEXT, ("txt", "text"), aliases=("txt", "plaintext", "plain")),
    _L("toml", ("toml",), filenames=("Pipfile",)),
    _L("typescript", ("ts", "tsx", "mts", "cts"), aliases=("ts", "tsx"),
       interpreters=("ts-node", "deno", "tsx")),
    _L("verilog", ("v", "sv", "svh", "vh"), aliases=("systemverilog",)),
    _L("vhdl", ("vhd", "vhdl")),
    _L("vim", ("vim",), filenames=(".vimrc", "_vimrc"), aliases=("vimscript", "viml")),
    _L("vue", ("vue",)),
    _L("xml", ("xml", "xsd", "xsl", "xslt", "svg", "plist", "csproj", "fsproj", "vbproj", "props",
               "targets", "resx", "xaml", "wsdl", "rss", "atom"), aliases=("svg",)),
    _L("yaml", ("yaml", "yml"), aliases=("yml",)),
    _L("zig", ("zig",)),
)

LANGUAGES: Mapping[str, Language] = MappingProxyType({lang.name: lang for lang in _TABLE})
"""Every known language by canonical name, alphabetical (for ``--help`` and docs)."""

PROSE_AND_DATA: frozenset[str] = frozenset((
    TEXT, "markdown", "restructuredtext", "latex", "json", "xml", "html", "css", "less", "scss", "diff",
))
"""Languages whose files define no code names: ``class Foo`` in a README's example or
``send_mail = `` in a translation catalogue is not where ``Foo`` or ``send_mail`` is defined,
and scanning their text for definitions (most of a big project's bytes: Django's ``.po`` and
``.txt`` files) made a name query cost 40-80 ms."""

# "Dockerfile.dev", "Makefile.in": the type is in the stem, not the extension.
_NAME_PREFIXES: tuple[tuple[str, str], ...] = (
    ("Dockerfile.", "dockerfile"),
    ("Containerfile.", "dockerfile"),
    ("Makefile.", "makefile"),
)


def _index(pairs: Iterable[tuple[str, str]], what: str) -> dict[str, str]:
    """Build a lookup table, refusing duplicates so an ambiguity is a load-time error, not a silent pick."""
    table: dict[str, str] = {}
    for key, name in pairs:
        if table.setdefault(key, name) != name:
            raise RuntimeError(f"{what} {key!r} claimed by both {table[key]} and {name}")
    return table


_BY_EXTENSION = _index(((ext, lang.name) for lang in _TABLE for ext in lang.extensions), "extension")
_BY_FILENAME = _index(((fn, lang.name) for lang in _TABLE for fn in lang.filenames), "file name")
_BY_INTERPRETER = _index(((i, lang.name) for lang in _TABLE for i in lang.interpreters), "interpreter")
_BY_ALIAS = _index(((a, lang.name) for lang in _TABLE for a in lang.aliases), "alias")

_VERSION_SUFFIX = re.compile(r"[\d.]+$")


def _interpreter_language(first_line: str) -> str | None:
    """Map a ``#!`` line to a language: ``#!/usr/bin/env -S python3.11 -u`` -> python."""
    if not first_line.startswith("#!"):
        return None
    words = first_line[2:].split()
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    if program == "env":
        # Skip env's own options and VAR=value assignments to reach the interpreter.
        rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        if not rest:
            return None
        program = rest[0].rsplit("/", 1)[-1]
    program = program.lower()
    return _BY_INTERPRETER.get(program) or _BY_INTERPRETER.get(_VERSION_SUFFIX.sub("", program))


def language_for_path(rel_path: str, first_line: str | None = None) -> str | None:
    """The language of ``rel_path`` ('/'-separated), or None when nothing identifies it.

    ``first_line`` is consulted only when the name says nothing, so callers may pass it
    unconditionally; it costs nothing for the common case of a known extension.
    """
    name = rel_path.rsplit("/", 1)[-1]
    language = _BY_FILENAME.get(name)
    if language is not None:
        return language
    dot = name.rfind(".")
    if dot > 0:  # a leading dot (".bashrc") marks a hidden file, not an extension
        language = _BY_EXTENSION.get(name[dot + 1 :].lower())
        if language is not None:
            return language
    for prefix, prefixed_language in _NAME_PREFIXES:
        if name.startswith(prefix):
            return prefixed_language
    if first_line is not None:
        return _interpreter_language(first_line)
    return None


def _lookup(value: str) -> str | None:
    """Resolve one normalised spelling; names beat aliases beat extensions."""
    if value.startswith("."):
        return _BY_EXTENSION.get(value[1:])
    if value in LANGUAGES:
        return value
    return _BY_ALIAS.get(value) or _BY_EXTENSION.get(value)


def _suggestions(value: str) -> tuple[str, ...]:
    """Canonical names of the closest spellings, so the hint always names a real language."""
    spellings = [*LANGUAGES, *_BY_ALIAS, *_BY_EXTENSION]
    matches = difflib.get_close_matches(value.lstrip("."), spellings, n=6, cutoff=0.6)
    names = dict.fromkeys(_lookup(match) or match for match in matches)
    return tuple(names)[:3]


def resolve_languages(values: Iterable[str]) -> frozenset[str]:
    """Canonical names for user-typed names, aliases or extensions (``py``, ``.py``, ``Python``, ``c++``).

    Raises:
        UnknownLanguageError: on the first value that matches nothing, with close matches.
    """
    resolved: set[str] = set()
    for raw in values:
        value = raw.strip().lower()
        language = _lookup(value) if value else None
        if language is None:
            raise UnknownLanguageError(raw, _suggestions(value))
        resolved.add(language)
    return frozenset(resolved)
