"""The ranking stage: from what each search leg found to the list a developer wants first.

Theory of operation
-------------------
A search leg answers a narrow question (which chunks mean something like the query;
which contain its words). What a user of a code search wants first is different, and
knowable from the code itself rather than from any one benchmark:

* **What kind of query is it** (``classify``): an identifier (``HTTPAdapter``,
  ``field_validator``, ``Sinatra::Base``) wants its *definition*; natural language
  ("how are routes registered") wants the code that does it. The legs are weighted
  accordingly: full text leads for identifiers, meaning leads for sentences.
* **Fusion on normalised scores, not ranks alone**: each leg's scores are scaled to
  [0, 1] against its own best; a chunk both legs like gets both, and a chunk one leg is
  sure about keeps most of that certainty (rank fusion flattened it). In a sentence query
  a full-text hit counts in proportion to the share of the query's words it holds (BM25's
  best hit for "return true if the object is a module" may hold only "return" and
  "object"; fused at full weight it buried semantic's sure first hit). Full text alone
  keeps BM25's order.
* **Files carry evidence too**: the legs often agree on the file but not on the chunk
  (semantic's best is the decorator, full text's best its wrapper, both in
  ``validate_call_decorator.py``), while a chunk elsewhere that both legs rank second wins
  chunk by chunk. Most of a chunk's score is its file's (each leg's best contribution from
  any chunk of the file, summed, plus a little per e-fold of the file's chunks among the
  candidates: a file many hits point at is about the query, a hub file that mentions it
  once is not; less so for a description of behaviour, which asks for one function); the
  rest, its own, orders the file's chunks. This holds for one leg too:
  measured, it lifted semantic and full text alone as much as hybrid. For a description of
  behaviour the file's chunks are ordered by meaning alone: full text's best chunk there is
  the one repeating the sentence's common words, not the function that does what it says.
* **Definitions first**: a chunk that defines a name the query mentions is lifted above
  the chunks that only use it, and definitions neither leg retrieved are brought in
  (the symbol lookup), more so when the file is named after the symbol. Chunks cut from a
  syntax tree list what they define (the chunk table's symbol index): that list is trusted
  over the definition regex, and a qualified query (``Client.send``) prefers the named
  owner. A lone word the code base defines ("quantize", "g") is an identifier query, and a
  sentence's one- or two-letter token that is no English word ("how is g used") names one.
* **Names the query spells**: a sentence often describes a function whose name is made
  of its words ("return true if the object is a coroutine function" ->
  ``iscoroutinefunction``, "... an existing directory" -> ``isdir``); a chunk defining such
  a name is lifted in proportion to how much of the name the query spells and how many of
  the query's words the name holds.
* **Where the file is**: query words in a file's name or directory lift it
  ("session management" → ``sessions.py``).
* **What the file is**: tests, examples, benchmarks, vendored, generated, deprecated and
  documentation files answer code questions less often than the code: they are
  demoted (never hidden) unless the query asks for them ("test", "docs", "example"). So is
  a legacy copy (``pydantic/v1/config.py``) when the candidates hold the file at its current
  place (``pydantic/config.py``).
* **One file does not fill the list**: each further chunk of a file already listed
  counts for less; much less for a topic ("how are routes registered": the next file is
  likelier to matter than the same file's next chunk), a little for a description of
  behaviour ("return the number of days in a month": the best file's other functions are
  the likeliest alternatives to its first).

Everything here is a pure function of the candidates, the chunk table and the query,
with its constants in ``RankingParams`` (measured on the development set, checked on
languages outside it: bench/quality).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from cidx_daemon.index.chunking import Symbol
from cidx_daemon.search.fts import analyzer

SYMBOL, MIXED, TEXT = "symbol", "mixed", "text"


@dataclass(frozen=True)
class RankingParams:
    """The stage's constants. Leg weights are per query kind: (semantic, fts)."""

    weights: Mapping[str, tuple[float, float]] = field(default_factory=lambda: {
        SYMBOL: (0.3, 0.7), MIXED: (0.5, 0.5), TEXT: (0.6, 0.4)})
    #: Added, in units of the best fused score, to a chunk that defines a queried name.
    definition_boost: float = 2.0
    #: Extra factor when the file is also named after the symbol (``console.py`` for Console).
    definition_stem_factor: float = 1.5
    #: The same for identifiers embedded in a sentence ("where is ZodType parsed").
    embedded_boost: float = 1.0
    #: Added, in units of the best score, times the share of query words in the path.
    path_boost: float = 0.6
    #: Multipliers for files that answer code questions less often.
    test_factor: float = 0.35
    example_factor: float = 0.4
    docs_factor: float = 0.6
    vendored_factor: float = 0.3
    generated_factor: float = 0.5
    #: Translation catalogues: generated-like data, the same share as generated files.
    locale_factor: float = 0.5
    reexport_factor: float = 0.7
    deprecated_factor: float = 0.7
    #: For a legacy copy (``v1/``, ``legacy/``, ``compat/``...) of a file also among the candidates.
    shadowed_factor: float = 0.5
    #: Each further chunk of a file already listed is worth this much more (compounding).
    saturation: float = 0.3
    #: The same for a query that describes what code does ("return the number of days in a
    #: month"): it asks for a function, and the best file's other functions are the likeliest
    #: alternatives, where a topic ("how are routes registered") wants several files.
    describing_saturation: float = 0.8
    #: Share of the definition lift a name mentioned in such a query earns: there it is what
    #: the behaviour acts on ("return the members as a list of TarInfo objects"), not what is
    #: sought; lifting ``class TarInfo`` put it first (stdlib set: 4 queries better at 0, none worse).
    describing_embedded_factor: float = 0.0
    #: Full text's share scales with coord**this: the share of the query's content words the
    #: chunk holds (classic Lucene's coordination factor, which BM25 lacks).
    coord_power: float = 1.0
    #: Share of a chunk's fused score taken from its file's evidence: the sum over legs of the
    #: best contribution any chunk of the file earned.
    file_evidence: float = 0.8
    #: Added, in units of the best score, to a chunk defining a name the query's words spell
    #: (``iscoroutinefunction`` for "return true if the object is a coroutine function"),
    #: times the share of the name they spell and of the query's words it holds.
    name_boost: float = 0.5
    #: The share of that boost for a value (variable, field, constant) of the spelt name.
    name_value_factor: float = 0.5
    #: Added to a file's evidence per e-fold of its chunks among the candidates (log n): a
    #: file many hits point at is about the query, not just mentioning it once.
    breadth: float = 0.15
    #: The same for a query that describes what code does ("return the number of days in a
    #: month"): it asks for one function, and a file with many loosely related chunks is no
    #: likelier to hold it. Hybrid / semantic, stdlib set 0.583 / 0.575 -> 0.588 / 0.587, its
    #: held-out twin (never tuned on) 0.555 / 0.541 -> 0.569 / 0.550; at 0 semantic passed hybrid
    #: on the stdlib set (0.594 vs 0.585). No dev or held-out-language query describes.
    describing_breadth: float = 0.05
    #: For a query that describes behaviour, a file's chunks are ordered by semantic similarity
    #: alone (the file's place among the others is still both legs'). The legs mostly agree on
    #: the file; within it, full text's best chunk is the one that repeats the sentence's
    #: common words ("the specified LogRecord": ``makeLogRecord``'s docstring) while the
    #: function asked for shares its meaning, not its words. Stdlib set hybrid 0.588 -> 0.603,
    #: its twin 0.569 -> 0.575; by both legs at (0.75, 0.1) instead: 0.600 / 0.581 (with the
    #: speller's prefix rule). No dev or held-out-language query changes.
    describing_order_by_meaning: bool = True
    #: How many definitions the symbol lookup may bring in per query.
    max_injected: int = 20
    #: Added, in units of the best score, to a chunk holding the whole query verbatim: enough
    #: to keep it in the first results whatever the legs said, not to put it first. At 1.0
    #: short phrases held by docstrings ("CLI commands" in four docstrings that mention the
    #: CLI) outranked the module itself (flask cli.py #5): dev hybrid 0.894 at 1.0, 0.897 at
    #: 0.3 (same from 0 to 0.3), held-out flat.
    exact_boost: float = 0.3
    #: Syntax-tree definitions: the share of the boost for an owner other than the one a
    #: qualified query names, and for a value (variable, field, constant) of the name.
    qualifier_mismatch_factor: float = 0.5
    value_definition_factor: float = 1.0
    #: The same for a method when the identifier is not qualified: a bare name is more often
    #: the module-level function, class or value (``django.urls.reverse``, flask's ``session``)
    #: than a method that shares it (``QuerySet.reverse``). dev hybrid 0.902 -> 0.903 (flask
    #: "session" 0.69 -> 0.92), held-out semantic 0.848 -> 0.850, stdlib flat; 0.8 did half.
    method_definition_factor: float = 0.6


DEFAULT = RankingParams()


@dataclass
class Ranked:
    row: int
    score: float
    ranks: dict[str, int]
    scores: dict[str, float]


# --------------------------------------------------------------------------- the query


_QUALIFIED = re.compile(r"^[A-Za-z_$][\w$]*(?:(?:::|->|\.|\\|#)[A-Za-z_$][\w$]*)+$")
_IDENTIFIER = re.compile(r"^(?:_\w*|[A-Za-z]\w*[A-Z_\d]\w*|[A-Z]\w*)$")
_EMBEDDED = re.compile(r"\b(?:[A-Z][a-z\d]+[A-Z]\w*|[a-z]+[A-Z]\w*|\w+_\w+|[A-Z]{2,}[a-z]\w*)\b")
_STOP = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "get", "has",
    "have", "how", "i", "if", "in", "is", "it", "its", "my", "of", "on", "or", "set", "so", "that", "the",
    "this", "to", "use", "used", "uses", "using", "was", "what", "when", "where", "which", "who", "why",
    "with", "work", "works", "code", "function", "method", "class", "file", "implementation", "implement",
    "handle", "handling",
))
#: One- and two-letter words of English sentences; any other token that short is a name.
_SHORT_WORDS = frozenset((
    "a", "i", "am", "an", "as", "at", "be", "by", "do", "go", "he", "if", "in", "is", "it", "me", "my",
    "no", "of", "ok", "on", "or", "so", "to", "up", "us", "we", "vs", "eg", "ie",
))
_SHORT_NAME = re.compile(r"^[a-z]{1,2}$")
_ROLE_WORDS = {
    "test": ("test", "tests", "testing", "spec", "specs", "fixture", "fixtures", "mock", "mocks"),
    "example": ("example", "examples", "sample", "samples", "demo", "tutorial"),
    "docs": ("doc", "docs", "documentation", "readme", "guide", "changelog"),
    "bench": ("bench", "benchmark", "benchmarks", "perf"),
    "deprecated": ("deprecated", "legacy", "old", "obsolete"),
    "locale": ("translation", "translations", "locale", "locales", "localization", "localisation", "i18n",
               "l10n"),
}


#: Verbs a description of behaviour starts with ("parse the header", "returns the last
#: line"): the action words of docstrings' first lines and of function names. A sentence
#: opening with one asks for the function that does it, not for a topic or a place.
_ACTIONS = frozenset(f"{v}{s}" for v in (
    "accept", "acquire", "add", "append", "apply", "assert", "bind", "build", "calculate", "call",
    "cancel", "check", "clean", "clear", "close", "collect", "combine", "compare", "compile", "compress",
    "compute", "configure", "connect", "construct", "convert", "copy", "count", "create", "decode",
    "decompress", "delete", "deliver", "detect", "determine", "disable", "dispatch", "display", "download",
    "drop", "dump", "emit", "enable", "encode", "ensure", "enter", "escape", "evaluate", "execute",
    "exit", "expand", "extract", "feed", "fetch", "fill", "filter", "find", "finish", "flush", "format",
    "generate", "get", "handle", "hash", "ignore", "initialize", "initialise", "insert", "install",
    "iterate", "join", "kill", "list", "load", "lock", "log", "look", "make", "map", "mark", "match",
    "merge", "move", "normalize", "normalise", "obtain", "open", "parse", "pop", "populate", "prepare",
    "print", "process", "produce", "push", "put", "quote", "raise", "read", "receive", "record",
    "register", "release", "reload", "remove", "rename", "render", "replace", "reset", "resolve",
    "restore", "retrieve", "retry", "return", "run", "save", "scan", "schedule", "search", "send",
    "serialize", "set", "skip", "sort", "split", "spawn", "start", "stop", "store", "strip", "submit",
    "take", "terminate", "transform", "translate", "truncate", "try", "turn", "unlock", "unquote",
    "update", "upload", "validate", "verify", "wait", "walk", "wrap", "write", "yield",
) for s in ("", "s", "es")) | {"copies", "tries", "applies"}


@dataclass(frozen=True)
class QueryShape:
    kind: str
    names: tuple[str, ...]  # identifiers whose definitions are wanted
    words: frozenset[str]  # content words, lower-case, for path matching
    asks_for: frozenset[str]  # file roles the query names ("test", "docs", ...)
    describes: bool = False  # a sentence starting with a verb: it describes what a function does


@lru_cache(maxsize=512)
def classify(query: str) -> QueryShape:
    """Identifier, sentence with identifiers, or plain sentence (see the module docstring)."""
    text = query.strip()
    tokens = text.split()
    words = frozenset(w.lower() for w in re.findall(r"[A-Za-z][A-Za-z\d]*", text)) - _STOP
    parts = frozenset(p.lower() for t in tokens for p in analyzer.code_tokens(t)) - _STOP
    asks = frozenset(role for role, names in _ROLE_WORDS.items() if words & set(names))
    if len(tokens) == 1 and (_QUALIFIED.match(text) or _IDENTIFIER.match(text.strip("()"))):
        name = re.split(r"::|->|\.|\\|#", text.strip("()"))[-1]
        names = (name,) if name == text else (name, text)
        return QueryShape(SYMBOL, names, words | parts, asks)
    embedded = tuple(dict.fromkeys(m for m in _EMBEDDED.findall(text) if len(m) > 2))
    describes = len(tokens) > 1 and tokens[0].lower() in _ACTIONS
    return QueryShape(MIXED if embedded else TEXT, embedded, words | parts, asks, describes)


# --------------------------------------------------------------------------- definitions


_DEF_KEYWORDS = (
    r"class|def|async\s+def|function\*?|func|fn|fun|struct|enum|trait|interface|type|typedef|record|"
    r"module|defmodule|object|protocol|impl|namespace|package|const|let|var|val|static|final|"
    r"export\s+default|data\s+class|abstract\s+class|case\s+class|sealed\s+class|macro_rules!"
)
_MODIFIERS = r"(?:(?:pub(?:\([\w:]+\))?|export|public|private|protected|internal|static|abstract|async|" \
             r"unsafe|extern|inline|virtual|override|final|open|declare|default)\s+)*"


@lru_cache(maxsize=256)
def _definition_re(name: str) -> re.Pattern[str]:
    """A line that defines ``name``: a keyword form (``class Name``, ``fn name``, ``func (r *T)
    Name(``) or an assignment at the start of a line (``NAME = ``, ``Name: Type =``)."""
    n = re.escape(name)
    return re.compile(
        rf"^[ \t]*{_MODIFIERS}(?:(?:{_DEF_KEYWORDS})\s+(?:\([^)]*\)\s*)?(?:[\w.]+(?:\.|::))?{n}\b"
        rf"|{n}\s*(?::[^=\n]+)?=(?!=)|{n}\s*:=)",
        re.MULTILINE)


def defines(text: str, name: str) -> bool:
    return name in text and _definition_re(name).search(text) is not None


class SymbolLookup(Protocol):
    """What ranking needs of ``ChunkTable.symbol_index()``."""

    syntax_rows: Any  # bool per row: chunked from a syntax tree (its symbols are complete)

    def lookup(self, name: str, *, fold: bool = False) -> list[tuple[int, Symbol]]: ...

    def defined_in(self, row: int) -> list[Symbol]: ...


def _qualifier(query: str) -> str:
    """``Sinatra::Base`` -> ``Sinatra``, ``a.b.c`` -> ``a.b``: the owner path a qualified
    identifier query names, in the symbol index's dotted form."""
    parts = re.split(r"::|->|\.|\\|#", query.strip().strip("()"))
    return ".".join(parts[:-1])


def _symbol_factor(sym: Symbol, qualifier: str, params: RankingParams) -> float:
    """How much of the definition boost a syntax-tree definition earns: a qualified query
    (``Client.send``) prefers the ``send`` its owner matches, an unqualified one a module-level
    definition over a method; a value (a variable, field or constant named like the query)
    counts for less than the function or type itself."""
    factor = 1.0
    if qualifier and not (sym.parent == qualifier or sym.parent.endswith("." + qualifier)):
        factor *= params.qualifier_mismatch_factor
    if sym.kind in _VALUE_KINDS:
        factor *= params.value_definition_factor
    if not qualifier and sym.kind == "method":
        factor *= params.method_definition_factor
    return factor


#: Roles not held against a chunk that defines the identifier asked for.
_NOT_AGAINST_DEFINITIONS = frozenset(("reexport",))
_VALUE_KINDS = frozenset({"variable", "field", "property", "constant"})


# --------------------------------------------------------------------------- file roles


_TEST_FILE = re.compile(r"(?:^|/)(?:test_[^/]*|[^/]*_test|[^/]*[._]spec|[^/]*\.test|conftest|[^/]*Tests?)"
                        r"\.\w+$")
_TEST_DIR = re.compile(r"(?:^|/)(?:tests?|__tests__|spec|specs|testing|testdata|__mocks__|fixtures)/")
_EXAMPLE_DIR = re.compile(r"(?:^|/)(?:_?examples?|samples?|demos?|tutorials?|docs_src|cookbook)/")
_BENCH_DIR = re.compile(r"(?:^|/)(?:benchmarks?|bench|perf)/")
_VENDORED = re.compile(r"(?:^|/)(?:vendor|third_party|thirdparty|node_modules|external|extern|deps)/")
_GENERATED = re.compile(r"(?:\.min\.\w+|_pb2\.py|\.pb\.go|\.generated\.\w+|\.g\.dart|\.d\.ts|\.lock)$|"
                        r"(?:^|/)(?:dist|build|gen|generated)/")
_DEPRECATED = re.compile(r"(?:^|/)(?:deprecated|legacy)/")
_DOCS = re.compile(r"\.(?:md|mdx|rst|txt|adoc)$|(?:^|/)docs?/")
#: Translation catalogues: gettext ``.po``/``.pot``, XLIFF, Flutter ``.arb``, Fluent ``.ftl``, and data
#: files under a ``locale(s)/``, ``i18n/``, ``l10n/`` or ``translations/`` directory (``en.json``,
#: Rails' ``en.yml``). They repeat a code base's words in every language: Django's 1,272 ``.po``
#: files filled "csrf token check" places 2, 4 and 5.
_LOCALE = re.compile(r"\.(?:po|pot|xlf|xliff|arb|ftl)$|"
                     r"(?:^|/)(?:locales?|i18n|l10n|translations)/(?:[^/]+/)*[^/]+\.(?:json|ya?ml|properties|toml)$")
_REEXPORT = re.compile(r"(?:^|/)(?:__init__\.py|index\.[jt]s|mod\.rs|package-info\.java)$")


@lru_cache(maxsize=8192)
def file_roles(path: str) -> frozenset[str]:
    """What a file is besides code: test, example, bench, vendored, generated, docs, locale
    (translation catalogues), reexport, deprecated (kept for old callers: ``deprecated/``,
    ``legacy/``)."""
    roles = set()
    if _TEST_FILE.search(path) or _TEST_DIR.search(path):
        roles.add("test")
    if _EXAMPLE_DIR.search(path):
        roles.add("example")
    if _BENCH_DIR.search(path):
        roles.add("bench")
    if _VENDORED.search(path):
        roles.add("vendored")
    if _GENERATED.search(path):
        roles.add("generated")
    if _DOCS.search(path):
        roles.add("docs")
    if _LOCALE.search(path):
        roles.add("locale")
    if _REEXPORT.search(path):
        roles.add("reexport")
    if _DEPRECATED.search(path):
        roles.add("deprecated")
    return frozenset(roles)


def role_factor(path: str, asks_for: frozenset[str], params: RankingParams = DEFAULT) -> float:
    """How much less a file's chunks count for a code question (1.0: not at all); a role the
    query asks for ("tests for the parser") is not held against it."""
    factors = {"test": params.test_factor, "example": params.example_factor, "bench": params.example_factor,
               "vendored": params.vendored_factor, "generated": params.generated_factor,
               "docs": params.docs_factor, "locale": params.locale_factor, "reexport": params.reexport_factor,
               "deprecated": params.deprecated_factor}
    factor = 1.0
    for role in file_roles(path) - asks_for:
        factor *= factors[role]
    return factor


_LEGACY_DIR = re.compile(r"(?:^|/)(?:v\d+|legacy|compat|deprecated|old)/")


def shadowed(path: str, paths: set[str] | frozenset[str]) -> bool:
    """Whether ``path`` is a legacy copy (``pydantic/v1/config.py``) of a file that ``paths``
    also holds at its current place (``pydantic/config.py``)."""
    m = _LEGACY_DIR.search(path)
    if not m:
        return False
    start = m.start() + (1 if path[m.start()] == "/" else 0)
    return path[:start] + path[m.end():] in paths


@lru_cache(maxsize=8192)
def path_words(path: str) -> frozenset[str]:
    """Lower-case word parts of a file's name and its directory (``sansio/blueprints.py`` →
    blueprints, blueprint, sansio)."""
    pieces = path.rsplit("/", 2)[-2:]
    stem = pieces[-1].rsplit(".", 1)[0]
    out = {p.lower() for piece in (*pieces[:-1], stem) for p in analyzer.code_tokens(piece)}
    out |= {w[:-1] for w in out if w.endswith("s") and len(w) > 3}
    out |= {w[:-2] for w in out if w.endswith("es") and len(w) > 4}
    return frozenset(out)


@lru_cache(maxsize=8192)
def _path_match(words: frozenset[str], path: str) -> float:
    """Share of the query's content words the path carries (a shared prefix of 4+ letters
    counts: "config" ~ "configuration"; so does a short form: "context" ~ ``ctx``)."""
    if not words:
        return 0.0
    have = path_words(path)
    stems = path_stems(path)
    short = _short_forms(path)
    hits = 0
    for w in words:
        if w in have or (len(w) >= 4 and (_stem(w) in stems or any(_prefixed(w, p) for p in have)
                                          or any(_abbreviates(p, w) for p in short))):
            hits += 1
    return hits / len(words)


_VOWELS = frozenset("aeiouy")


@lru_cache(maxsize=8192)
def _short_forms(path: str) -> tuple[str, ...]:
    """The path's words that may be a short form (2-4 letters, no vowel)."""
    return tuple(p for p in path_words(path) if 2 <= len(p) <= 4 and not _VOWELS & set(p))


def _abbreviates(part: str, word: str) -> bool:
    """A vowel-less short form of the word, as code spells them (``ctx`` context, ``cfg``
    configuration, ``hf`` huggingface, ``mgr`` manager, ``db`` database); vowel-less so that
    ``re`` or ``io`` never stand for "return" or "information"."""
    word = word[:-1] if word.endswith("s") else word  # "fs" is not "futures"
    if not 2 <= len(part) <= 4 or len(word) < len(part) + 2 or part[0] != word[0] or _VOWELS & set(part):
        return False
    rest = iter(word)
    return all(ch in rest for ch in part)


_SUFFIXES = ("ations", "ation", "ings", "ing", "ers", "er", "ed", "es", "s", "e")


@lru_cache(maxsize=8192)
def _stem(word: str) -> str:
    """A light English stem, enough to meet a file name ("templating" and "template" ->
    "templat", "routes"/"routing" -> "rout"); never shorter than four letters."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


@lru_cache(maxsize=8192)
def path_stems(path: str) -> frozenset[str]:
    return frozenset(_stem(w) for w in path_words(path) if len(w) >= 4)


def _prefixed(word: str, part: str) -> bool:
    return part.startswith(word) or (len(part) >= 4 and word.startswith(part))


# --------------------------------------------------------------------------- names the query spells


#: Words a name may carry that a sentence leaves implicit ("return true if ... is" -> ``is_x``).
_GLUE = frozenset(("is", "get", "set", "has", "to", "from", "as", "of", "on", "by", "do", "make", "new",
                   "add", "in", "at", "with", "for", "all"))
_GLUE_PIECES = tuple((g, "", True) for g in sorted(_GLUE))


@lru_cache(maxsize=512)
def _spelling_words(words: frozenset[str]) -> tuple[tuple[str, str, bool], ...]:
    """(piece, query word, whole) triples a name may be spelt from: each content word, its
    light stem ("directories" -> "directori", "routes" -> "rout") and its prefixes of three
    letters or more, as names abbreviate (``isdir`` for "is ... an existing directory").
    ``whole`` is False for a three-letter prefix: it spells a name only where the name's word
    ends (``isdir``, ``args``) or the next piece begins (``argspec``), never as the start of
    another word ("sta" of "standard" is not ``__getstate__``'s "state": the standard
    deviation query lifted ``NormalDist``'s pickling methods above ``stdev``). A longer prefix
    is the word's own stem more often than not (``requires`` for "requirements", ``warns``
    for "warning"): stdlib set hybrid 0.603 / twin 0.575 -> 0.607 / 0.577, semantic 0.587 ->
    0.589; when every prefix had to end a word, lower than without the rule."""
    # A piece two words give ("log": the word "log", and a prefix of "logger") is the word's
    # own before a stem's, a stem's before a prefix's, the first word alphabetically on a tie:
    # never the order of a set, which changes with the interpreter's hash seed (the same
    # query ranked differently after a daemon restart).
    ordered = sorted(w for w in words if len(w) >= 3)
    out: dict[str, tuple[str, bool]] = {}
    for w in ordered:
        out.setdefault(w, (w, True))
    for w in ordered:
        out.setdefault(_stem(w), (w, True))
        if w.endswith("s") and len(w) > 3:
            out.setdefault(w[:-1], (w, True))
    for w in ordered:
        for k in range(3, len(w) - 1):  # abbreviations: dir(ectory), func(tion), arg(ument)s
            out.setdefault(w[:k], (w, k > 3))
    return tuple((piece, word, whole) for piece, (word, whole)
                 in sorted(out.items(), key=lambda kv: (-len(kv[0]), kv[0])))


#: Words too common to spell a name with; "function", "class", "get" (stop words for the
#: other signals) do spell names (``iscoroutinefunction``).
_NOT_SPELLING = frozenset(("the", "and", "are", "can", "does", "for", "from", "has", "have", "how", "its",
                           "that", "this", "was", "what", "when", "where", "which", "who", "why", "with",
                           "into", "not", "all", "any", "one", "return", "returns"))


@lru_cache(maxsize=512)
def _spelling_vocabulary(query: str) -> frozenset[str]:
    words = {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z\d]*", query)}
    words |= {p.lower() for t in query.split() for p in analyzer.code_tokens(t)}
    return frozenset(w for w in words if len(w) >= 3 and w not in _NOT_SPELLING)


@lru_cache(maxsize=65536)
def _name_tokens(name: str) -> tuple[tuple[str, ...], int]:
    """A defined name's lower-case letter tokens and their total length (names recur across
    queries: split once)."""
    tokens = tuple(t.lower() for t in analyzer.code_tokens(name) if t.isalpha())
    return tokens, sum(len(t) for t in tokens)


@lru_cache(maxsize=65536)
def _trigrams(token: str) -> frozenset[str]:
    return frozenset(token[i:i + 3] for i in range(len(token) - 2))


class Speller:
    """One query's reading of names: how much of a defined name the query's words spell
    (``iscoroutinefunction`` for "return true if the object is a coroutine function").

    Names are split at case and underscores; lower-case runs are segmented by the query's own
    words, their stems and abbreviations, plus glue words a sentence leaves implicit. A name
    scores (share of its letters spelt) x (share of the query's content words it uses), and
    nothing unless the query spells three quarters of it. Memoised per token and per name:
    a code base's names share most of their tokens.
    """

    def __init__(self, vocabulary: frozenset[str], n_words: int) -> None:
        self.pieces = _spelling_words(vocabulary)
        self.n_words = n_words
        self._by_start: dict[str, list[tuple[str, str, bool]]] = {}  # first two letters -> pieces
        for piece, word, whole in (*self.pieces, *_GLUE_PIECES):
            self._by_start.setdefault(piece[:2], []).append((piece, word, whole))
        self._tokens: dict[str, tuple[int, frozenset[str]]] = {}
        self._grams = frozenset(p[:3] for p, _, _ in self.pieces)  # every piece has 3+ letters
        self._hints: dict[str, bool] = {}
        self._names: dict[str, float] = {}
        self._owners: dict[str, bool] = {}

    def _has_piece(self, token: str) -> bool:
        """Whether a query word's piece may occur in ``token`` (its first three letters do)."""
        got = self._hints.get(token)
        if got is None:
            # a set operation on the token's trigrams (known across queries), not a pattern
            # compiled from the query's: compiling one cost 0.3-1 ms a query
            got = self._hints[token] = not self._grams.isdisjoint(_trigrams(token))
        return got

    def _token(self, token: str) -> tuple[int, frozenset[str]]:
        """(letters of ``token`` covered, query words used), the most letters possible."""
        got = self._tokens.get(token)
        if got is not None:
            return got
        n = len(token)
        none: tuple[int, frozenset[str]] = (0, frozenset())
        best = [none] * (n + 1)  # for token[i:]
        starts: list[tuple[int, frozenset[str]] | None] = [None] * (n + 1)  # a piece begins at i
        starts[n] = none
        for i in range(n - 2, -1, -1):
            here: tuple[int, frozenset[str]] | None = None
            for piece, word, whole in self._by_start.get(token[i:i + 2], ()):  # glue: word ""
                if token.startswith(piece, i):
                    j = i + len(piece)
                    # an abbreviation's plural (``args``) ends the token too
                    ends = j == n or (j == n - 1 and token[j] == "s")
                    after = best[j] if whole or ends else starts[j]
                    if after is None:  # a prefix followed by letters no piece spells
                        continue
                    c, u = after
                    if here is None or c + len(piece) > here[0]:
                        here = (c + len(piece), u | {word} if word else u)
            starts[i] = here
            best[i] = here if here is not None and here[0] > best[i + 1][0] else best[i + 1]
        self._tokens[token] = best[0]
        return best[0]

    def spelt(self, name: str) -> tuple[float, frozenset[str]]:
        """(share of ``name``'s letters spelt, the query words used)."""
        tokens, total = _name_tokens(name)
        if not total:
            return 0.0, frozenset()
        covered = 0
        used: frozenset[str] = frozenset()
        for token in tokens:
            c, u = self._token(token)
            covered += c
            used |= u
        return covered / total, used

    def value(self, name: str) -> float:
        got = self._names.get(name)
        if got is None:
            got = 0.0
            if self.n_words and any(self._has_piece(t) for t in _name_tokens(name)[0]):
                cover, used = self.spelt(name)
                if cover >= 0.75 and used:
                    got = cover * min(1.0, len(used) / self.n_words)
            self._names[name] = got
        return got

    def best(self, defined: Iterable[Symbol], value_factor: float) -> float:
        """The best of a chunk's definitions; a value (``register = tracker.register``) counts
        ``value_factor`` as much as the function or class it names."""
        return max((self._owned(d) * (value_factor if d.kind in _VALUE_KINDS else 1.0) for d in defined),
                   default=0.0)

    def _owned(self, d: Symbol) -> float:
        """A method is called by its class's name too: "produce text documentation for a class"
        spells ``TextDoc.docclass``, not ``HTMLDoc.docclass``. Asked only of a name the query
        already spells (cheaper, and measured better: stdlib hybrid 0.544 vs 0.539)."""
        got = self.value(d.name)
        if got and d.parent:
            owner = d.parent.rsplit(".", 1)[-1]
            spells = self._owners.get(owner)
            if spells is None:  # most owners spell nothing: asked once per query
                spells = self._owners[owner] = any(self._has_piece(t) for t in _name_tokens(owner)[0])
            if spells:
                got = max(got, self.value(f"{owner}.{d.name}"))
        return got


# --------------------------------------------------------------------------- the stage


def _order_files_by(key: Mapping[int, float], fused: Mapping[int, Ranked],
                    path_of: Callable[[int], str]) -> None:
    """Within each file, hand the file's scores out again in the order of ``key``: which of its
    chunks leads changes, how the file's chunks interleave with other files' does not."""
    by_path: dict[str, list[Ranked]] = {}
    for item in fused.values():
        by_path.setdefault(path_of(item.row), []).append(item)
    for items in by_path.values():
        if len(items) > 1:
            scores = sorted((it.score for it in items), reverse=True)
            items.sort(key=lambda it: (-key.get(it.row, 0.0), it.row))
            for it, score in zip(items, scores, strict=True):
                it.score = score


def rank(legs: Mapping[str, Sequence[tuple[int, float]]], *, query: str, limit: int,
         text_of: Callable[[int], str], path_of: Callable[[int], str],
         find_definitions: Callable[[str], Iterable[int]] | None = None,
         allowed: Callable[[int], bool] | None = None,
         prose: Callable[[int], bool] | None = None,
         symbols: SymbolLookup | None = None,
         params: RankingParams = DEFAULT) -> list[Ranked]:
    """The ranked rows (best first, at most ``limit``) for one query (see the module docstring).

    ``legs``: each leg's (row, raw score) best first. ``find_definitions(name)``: rows that
    may define ``name`` (a text scan), checked here with the definition regex; ``allowed``
    keeps injected rows inside the request's filters; ``prose`` marks rows of prose and data
    files, which define no names (a README's ``class Foo`` example). ``symbols``: the chunk table's symbol
    index; a row chunked from a syntax tree defines exactly the names it lists there (the
    regex is asked only about the others).
    """
    # Each row's path and text are asked for several times below; the table decodes them
    # from memory-mapped columns at every call.
    path_of = lru_cache(maxsize=None)(path_of)
    text_of = lru_cache(maxsize=None)(text_of)
    shape = classify(query)
    word = query.strip()
    if shape.kind == TEXT and symbols is not None and word.isidentifier() and symbols.lookup(word):
        # A lone word this code base defines ("quantize", "g") is an identifier too.
        shape = dataclasses.replace(shape, kind=SYMBOL, names=(word,))
    elif shape.kind != SYMBOL and symbols is not None:
        # So is a short token no English sentence holds ("how is g used", "where is db opened").
        short = tuple(t for t in dict.fromkeys(t.strip(",;:!?'\"`()") for t in query.split())
                      if _SHORT_NAME.match(t) and t not in _SHORT_WORDS and symbols.lookup(t))
        if short:
            shape = dataclasses.replace(shape, kind=MIXED, names=shape.names + short)
    w_sem, w_fts = params.weights[shape.kind]
    weight = {"semantic": w_sem, "fts": w_fts}
    if len(legs) == 1:
        weight = dict.fromkeys(legs, 1.0)
    fused: dict[int, Ranked] = {}
    contrib: dict[tuple[str, str], float] = {}  # (path, leg) -> best contribution in that file
    coord_words = [w for w in shape.words if len(w) > 1] if params.coord_power else []
    # For a description of behaviour, the order of a file's chunks by meaning (see below).
    by_meaning = params.describing_order_by_meaning and shape.describes and len(legs) > 1 \
        and bool(params.file_evidence)
    meaning: dict[int, float] = {}
    for leg, hits in legs.items():
        if not hits:
            continue
        best = max(s for _, s in hits)
        floor = min(s for _, s in hits) if leg == "semantic" else 0.0
        span = (best - floor) or 1.0
        for rank_no, (row, raw) in enumerate(hits, 1):
            item = fused.setdefault(row, Ranked(row, 0.0, {}, {}))
            if leg == "semantic":
                unit = 0.1 + 0.9 * (raw - floor) / span
            else:
                unit = raw / (best or 1.0)
                if coord_words and len(legs) > 1 and shape.kind != SYMBOL:
                    text = text_of(row).lower()
                    unit *= (sum(w in text for w in coord_words) / len(coord_words)) ** params.coord_power
            share = weight[leg] * unit
            item.score += share
            if by_meaning and leg == "semantic":
                meaning[row] = unit
            if params.file_evidence:
                key = (path_of(row), leg)
                contrib[key] = max(contrib.get(key, 0.0), share)
            item.ranks[leg] = rank_no
            item.scores[leg] = float(raw)
    if not fused and not shape.names:
        return []
    if contrib:
        by_file: dict[str, float] = {}
        for (path, _leg), share in contrib.items():
            by_file[path] = by_file.get(path, 0.0) + share
        breadth = params.describing_breadth if shape.describes else params.breadth
        if breadth:
            hits_in: dict[str, int] = {}
            for row in fused:
                path = path_of(row)
                hits_in[path] = hits_in.get(path, 0) + 1
            for path, n in hits_in.items():
                by_file[path] += breadth * math.log(n)
        for item in fused.values():
            item.score += params.file_evidence * (by_file[path_of(item.row)] - item.score)
        if meaning:
            _order_files_by(meaning, fused, path_of)
    top = max((r.score for r in fused.values()), default=1.0) or 1.0

    if shape.names:
        boost = params.definition_boost if shape.kind == SYMBOL else params.embedded_boost
        if shape.describes:
            boost *= params.describing_embedded_factor
        seen_rows = set(fused)
        qualifier = _qualifier(query) if shape.kind == SYMBOL else ""
        for name in shape.names:
            rows = set(seen_rows)
            defined: dict[int, Symbol] = {}
            if symbols is not None:
                for row, sym in symbols.lookup(name):
                    defined.setdefault(row, sym)
                rows |= set(defined)
            if find_definitions is not None:
                rows |= set(find_definitions(name))
            injected = 0
            for row in sorted(rows):
                if allowed is not None and not allowed(row):
                    continue
                sym = defined.get(row)
                if symbols is not None and symbols.syntax_rows[row]:
                    if sym is None:
                        continue
                elif (prose is not None and prose(row)) or not defines(text_of(row), name):
                    continue
                stem_words = path_words(path_of(row))
                factor = params.definition_stem_factor if name.lower() in stem_words or \
                    name.lower().rstrip("s") in stem_words else 1.0
                if sym is not None:
                    factor *= _symbol_factor(sym, qualifier, params)
                if row not in fused:
                    if injected >= params.max_injected:
                        continue
                    injected += 1
                    fused[row] = Ranked(row, 0.0, {}, {})
                fused[row].score += top * boost * factor
                fused[row].ranks.setdefault("symbol", 1)

    words = shape.words
    phrase = query.strip().lower() if len(query.strip()) >= 4 else ""
    speller = None
    if params.name_boost and symbols is not None and shape.kind != SYMBOL and len(words) > 1:
        speller = Speller(_spelling_vocabulary(query), len(words))
    paths = {path_of(r) for r in fused} if params.shadowed_factor != 1.0 else set()
    for item in fused.values():
        path = path_of(item.row)
        if paths and shadowed(path, paths):
            item.score *= params.shadowed_factor
        if phrase and params.exact_boost and phrase in text_of(item.row).lower():
            item.score += top * params.exact_boost
        if speller is not None and symbols is not None:
            defined = symbols.defined_in(item.row)
            if defined:
                item.score += top * params.name_boost * speller.best(defined, params.name_value_factor)
        if params.path_boost and words:
            item.score += top * params.path_boost * _path_match(words, path)
        # A package's __init__.py that defines the identifier asked for is not re-exporting it
        # (``send_mail`` is defined in django/core/mail/__init__.py).
        defining = shape.kind == SYMBOL and "symbol" in item.ranks
        asks = shape.asks_for | _NOT_AGAINST_DEFINITIONS if defining else shape.asks_for
        item.score *= role_factor(path, asks, params)

    ordered = sorted(fused.values(), key=lambda r: (-r.score, r.row))
    saturation = params.describing_saturation if shape.describes else params.saturation
    per_file: dict[str, int] = {}
    for item in ordered:
        path = path_of(item.row)
        n = per_file.get(path, 0)
        item.score *= saturation ** n
        per_file[path] = n + 1
    ordered.sort(key=lambda r: (-r.score, r.row))
    return ordered[:limit]
