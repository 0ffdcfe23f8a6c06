"""The ranking stage as pure functions: what kind of query, what defines what, what a file is."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cidx_daemon.search import ranking
from cidx_daemon.search.ranking import MIXED, SYMBOL, TEXT, classify, defines, rank, role_factor


@pytest.mark.parametrize(("query", "kind", "names"), [
    ("HTTPAdapter", SYMBOL, ("HTTPAdapter",)),
    ("field_validator", SYMBOL, ("field_validator",)),
    ("Sinatra::Base", SYMBOL, ("Base", "Sinatra::Base")),
    ("__init__", SYMBOL, ("__init__",)),
    ("Console", SYMBOL, ("Console",)),
    ("session", TEXT, ()),
    ("how are routes registered", TEXT, ()),
    ("where is ZodType parsed", MIXED, ("ZodType",)),
    ("call safe_join on the path", MIXED, ("safe_join",)),
])
def test_queries_are_classified(query: str, kind: str, names: tuple[str, ...]) -> None:
    shape = classify(query)
    assert (shape.kind, shape.names) == (kind, names)


@pytest.mark.parametrize(("text", "name", "expected"), [
    ("class Console:\n    pass", "Console", True),
    ("    def console(self):", "console", True),
    ("pub struct Router<S> {", "Router", True),
    ("pub(crate) async fn serve(", "serve", True),
    ("func (c *Context) JSON(code int, obj any) {", "JSON", True),
    ("export default function createApp() {", "createApp", True),
    ("const MAX_RETRIES = 3", "MAX_RETRIES", True),
    ("MAX_RETRIES = 3", "MAX_RETRIES", True),
    ("timeout: float = 5.0", "timeout", True),
    ("    x = Console()", "Console", False),
    ("if MAX_RETRIES == 3:", "MAX_RETRIES", False),
    ("from rich.console import Console", "Console", False),
    ("class ConsoleRenderer:", "Console", False),
])
def test_definitions_are_told_from_uses(text: str, name: str, expected: bool) -> None:
    assert defines(text, name) is expected


@pytest.mark.parametrize(("path", "demoted"), [
    ("src/flask/app.py", False), ("tests/test_app.py", True), ("pkg/client_test.go", True),
    ("src/app.spec.ts", True), ("examples/basic/main.py", True), ("docs/tutorial.md", True),
    ("vendor/github.com/x/y.go", True), ("dist/app.min.js", True), ("README.md", True),
    ("src/flask/__init__.py", True), ("testing.py", False),
    ("pydantic/deprecated/decorator.py", True), ("lib/legacy/api.py", True), ("src/deprecation.py", False),
    ("django/conf/locale/fr/LC_MESSAGES/django.po", True), ("po/messages.pot", True),
    ("src/locales/en.json", True), ("config/locales/de.yml", True), ("app/i18n/fr/strings.json", True),
    ("src/i18n/translate.ts", False), ("django/utils/translation/trans_real.py", False),
    ("src/locale.py", False), ("config/settings.json", False),
])
def test_file_roles(path: str, demoted: bool) -> None:
    assert (role_factor(path, frozenset()) < 1.0) is demoted


def test_asking_for_tests_or_docs_lifts_the_demotion() -> None:
    assert role_factor("tests/test_app.py", frozenset({"test"})) == 1.0
    assert role_factor("docs/guide.md", frozenset({"docs"})) == 1.0
    asks = classify("the deprecated decorator").asks_for
    assert role_factor("pydantic/deprecated/decorator.py", asks) == 1.0
    asks = classify("french translation of the csrf failure message").asks_for
    assert role_factor("django/conf/locale/fr/LC_MESSAGES/django.po", asks) == 1.0


def _rank(legs, query, texts, paths, **kw):  # type: ignore[no-untyped-def]
    return rank(legs, query=query, limit=10, text_of=texts.__getitem__, path_of=paths.__getitem__, **kw)


def test_a_definition_outranks_uses_and_is_found_when_no_leg_found_it() -> None:
    texts = {0: "x = Console()\nConsole.print(x)", 1: "c = Console()", 2: "class Console:\n    pass"}
    paths = {0: "a.py", 1: "b.py", 2: "rich/console.py"}
    legs = {"fts": [(0, 9.0), (1, 5.0)]}
    out = _rank(legs, "Console", texts, paths, find_definitions=lambda name: [2])
    assert out[0].row == 2 and out[0].ranks == {"symbol": 1}


def test_one_file_does_not_fill_the_list() -> None:
    texts = {i: f"text {i}" for i in range(6)}
    paths = {0: "a.py", 1: "a.py", 2: "a.py", 3: "b.py", 4: "c.py", 5: "a.py"}
    legs = {"semantic": [(0, 0.9), (1, 0.89), (2, 0.88), (3, 0.8), (4, 0.79), (5, 0.7)]}
    rows = [r.row for r in _rank(legs, "some words here", texts, paths)]
    assert rows[:3] == [0, 3, 4]


def test_query_words_in_a_path_lift_a_near_tie() -> None:
    texts = {i: f"def f{i}(): pass" for i in range(10)}
    paths = {i: f"flask/mod{i}.py" for i in range(10)} | {1: "flask/sessions.py"}
    legs = {"semantic": [(i, 0.50 - 0.02 * i) for i in range(10)]}
    assert _rank(legs, "session management", texts, paths)[0].row == 1


def test_weights_cover_every_kind() -> None:
    assert set(ranking.DEFAULT.weights) == {SYMBOL, MIXED, TEXT}


def test_in_a_sentence_query_a_full_text_hit_counts_by_the_words_it_holds() -> None:
    """Two BM25 ties: fused, the chunk holding every query word leads the one holding one word;
    full text alone keeps BM25's order (rows 1 and 2 have equal raw scores; row order breaks it)."""
    texts = {0: "def ismodule(o): return isinstance(o, ModuleType)", 1: "return x  # object",
             2: "module object returned as true", 3: "pass"}
    paths = {0: "inspect.py", 1: "a.py", 2: "b.py", 3: "c.py"}
    query = "return true if the object is a module"
    fts = [(1, 8.0), (2, 8.0)]
    fused = [r.row for r in _rank({"semantic": [(0, 0.6), (3, 0.3)], "fts": fts}, query, texts, paths)]
    assert fused.index(2) < fused.index(1)
    assert [r.row for r in _rank({"fts": fts}, query, texts, paths)] == [1, 2]
    off = ranking.dataclasses.replace(ranking.DEFAULT, coord_power=0.0)
    plain = [r.row for r in _rank({"semantic": [(0, 0.6), (3, 0.3)], "fts": fts}, query, texts, paths,
                                  params=off)]
    assert plain.index(1) < plain.index(2)


def test_a_file_both_legs_point_at_leads_a_chunk_both_legs_half_like() -> None:
    """Semantic's best chunk and full text's best chunk are two chunks of one file; another
    file's single chunk is second in both legs. Chunk by chunk that runner-up wins; with the
    file's evidence counted, the file both legs ranked first leads, by its best chunk."""
    texts = {0: "def load(path): ...", 1: "parse config values", 2: "parse config entries", 3: "pass"}
    paths = {0: "src/a.py", 1: "src/a.py", 2: "src/b.py", 3: "src/c.py"}
    legs = {"semantic": [(0, 0.9), (2, 0.8), (3, 0.5)], "fts": [(1, 10.0), (2, 9.5)]}
    query = "parse the config"
    assert [r.row for r in _rank(legs, query, texts, paths)][:2] == [0, 2]
    off = ranking.dataclasses.replace(ranking.DEFAULT, file_evidence=0.0)
    assert _rank(legs, query, texts, paths, params=off)[0].row == 2


@pytest.mark.parametrize(("query", "path", "matches"), [
    ("template rendering", "src/flask/templating.py", True),
    ("how are routes registered", "starlette/routing.py", True),
    ("quantize", "model2vec/quantization.py", True),
    ("session management", "flask/sessions.py", True),
    ("template rendering", "src/flask/tempo.py", False),
    ("routes", "src/roundtrip.py", False),
])
def test_query_words_meet_file_names_by_their_stem(query: str, path: str, matches: bool) -> None:
    assert (ranking._path_match(classify(query).words, path) > 0) is matches


@pytest.mark.parametrize(("query", "name", "spelt"), [
    ("Return true if the object is a coroutine function", "iscoroutinefunction", True),
    ("Return a TarInfo object for member name", "getmember", True),
    ("Add 'dir' to the list of directories searched for header files", "add_include_dir", False),
    ("how are routes registered", "route", True),
    ("cookie storage and persistence", "RequestsCookieJar", False),  # "requests", "jar" unspelt
    ("open a url with a timeout", "urlopen", True),
    ("Return true if the pathname refers to an existing directory", "isdir", True),
    ("Return true if the pathname refers to an existing directory", "isfile", False),
    # a three-letter prefix ("sta" of "standard") does not spell the start of another word...
    ("Standard deviation of the normal distribution", "__getstate__", False),
    # ...but ends a name's word (plural too), and a longer one is mostly the word's own stem
    ("positional argument validators", "PositionalArgs", True),
    ("Generated requirements specified for this Distribution", "requires", True),
    ("Asserts that the message in a triggered warning matches a regexp", "assertWarnsRegex", True),
])
def test_a_sentence_spells_the_names_it_describes(query: str, name: str, spelt: bool) -> None:
    speller = ranking.Speller(ranking._spelling_vocabulary(query), len(classify(query).words))
    assert (speller.value(name) > 0) is spelt


class _Defs:
    """A symbol index over hand-made rows, for the name-spelling signal."""

    def __init__(self, defs: dict[int, str]) -> None:
        from cidx_daemon.index.chunking import Symbol

        self.defs = {row: [Symbol(name, "function", "", 1)] for row, name in defs.items()}
        self.syntax_rows = [True] * (max(defs) + 1)

    def lookup(self, name: str, *, fold: bool = False) -> list:
        return [(row, syms[0]) for row, syms in sorted(self.defs.items()) if syms[0].name == name]

    def defined_in(self, row: int) -> list:
        return self.defs.get(row, [])


def test_a_definition_whose_name_the_query_spells_is_lifted() -> None:
    # Both legs slightly prefer the caller; the function the sentence names wins once the
    # ranking reads names, and does not without the signal.
    texts = {0: "def check(obj):\n    return iscoroutinefunction(obj) or x",
             1: "def iscoroutinefunction(obj):\n    return _f(obj)", 2: "def unrelated(): pass"}
    paths = {0: "a.py", 1: "b.py", 2: "c.py"}
    legs = {"semantic": [(0, 0.60), (1, 0.58), (2, 0.30)], "fts": [(0, 3.0), (1, 2.9), (2, 0.5)]}
    query = "Return true if the object is a coroutine function"
    kwargs = dict(query=query, limit=10, text_of=texts.__getitem__, path_of=paths.__getitem__,
                  symbols=_Defs({0: "check", 1: "iscoroutinefunction", 2: "unrelated"}))
    assert rank(legs, **kwargs)[0].row == 1
    off = ranking.RankingParams(name_boost=0.0)
    assert rank(legs, params=off, **kwargs)[0].row == 0


def test_a_file_many_hits_point_at_outranks_one_mentioning_the_query_once() -> None:
    # hub.py holds the best single hit; topic.py holds the next four: it is about the query.
    texts = {0: "hub", 1: "t1", 2: "t2", 3: "t3", 4: "t4", 5: "far"}
    paths = {0: "hub.py", 1: "topic.py", 2: "topic.py", 3: "topic.py", 4: "topic.py", 5: "far.py"}
    legs = {"semantic": [(0, 0.62), (1, 0.60), (2, 0.59), (3, 0.58), (4, 0.57), (5, 0.1)]}
    kwargs = dict(query="cookie storage", limit=10, text_of=texts.__getitem__, path_of=paths.__getitem__)
    assert paths[rank(legs, **kwargs)[0].row] == "topic.py"
    flat = ranking.RankingParams(breadth=0.0)
    assert paths[rank(legs, params=flat, **kwargs)[0].row] == "hub.py"


def test_a_spelt_function_outranks_a_variable_of_the_same_name() -> None:
    from cidx_daemon.index.chunking import Symbol

    class Defs(_Defs):
        def __init__(self) -> None:
            self.defs = {0: [Symbol("register", "variable", "", 1)],
                         1: [Symbol("register", "method", "Pool", 1)],
                         2: [Symbol("other", "function", "", 1)]}
            self.syntax_rows = [True, True, True]

    texts = {0: "register = _tracker.register", 1: "def register(self, name):\n    self._send(name)", 2: "x"}
    paths = {0: "a.py", 1: "b.py", 2: "c.py"}
    legs = {"semantic": [(0, 0.60), (1, 0.59), (2, 0.2)]}
    kwargs = dict(query="Register name of resource with resource tracker", limit=10,
                  text_of=texts.__getitem__, path_of=paths.__getitem__, symbols=Defs())
    assert rank(legs, **kwargs)[0].row == 1
    same = ranking.RankingParams(name_value_factor=1.0)
    assert rank(legs, params=same, **kwargs)[0].row == 0


@pytest.mark.parametrize(("path", "paths", "expected"), [
    ("pydantic/v1/config.py", {"pydantic/config.py"}, True),
    ("legacy/a.py", {"a.py"}, True),
    ("pydantic/v1/config.py", {"pydantic/main.py"}, False),  # no current copy among the candidates
    ("api/v1/users.py", {"api/v2/users.py"}, False),
    ("src/config.py", {"config.py"}, False),
])
def test_a_legacy_copy_is_shadowed_by_its_current_file(path: str, paths: set[str], expected: bool) -> None:
    assert ranking.shadowed(path, paths) is expected


def test_an_exact_match_of_the_whole_query_is_not_buried() -> None:
    # Full text ranks the one chunk holding the query verbatim first; semantic never saw it
    # and likes twenty other files, and weighs more for a sentence query.
    query = "retry with exponential backoff"
    texts = {i: f"def handler_{i}(request):\n    return send(request)" for i in range(20)}
    texts[20] = "# retry with exponential backoff, then give up\nfor delay in delays: ..."
    texts.update({i: f"retry the {i}th send" for i in range(21, 30)})
    paths = {i: f"pkg/mod{i}.py" for i in range(30)}
    legs = {"semantic": [(i, 0.9 - 0.01 * i) for i in range(20)],
            "fts": [(20, 12.0)] + [(i, 10.0 - 0.5 * (i - 21)) for i in range(21, 30)]}
    rows = [r.row for r in _rank(legs, query, texts, paths)]
    assert 20 in rows[:3]
    without = ranking.dataclasses.replace(ranking.DEFAULT, exact_boost=0.0)
    assert 20 not in [r.row for r in _rank(legs, query, texts, paths, params=without)][:3]


@pytest.mark.parametrize(("part", "word", "expected"), [
    ("ctx", "context", True), ("cfg", "configuration", True), ("hf", "huggingface", True),
    ("mgr", "managers", True), ("db", "database", True), ("ws", "websocket", True),
    ("re", "return", False),  # vowels: a real short word, not a short form
    ("io", "information", False), ("fs", "futures", False),  # a plural's s is not a word's consonant
    ("tx", "context", False), ("ctx", "ctxs", False),
])
def test_short_forms_in_file_names(part: str, word: str, expected: bool) -> None:
    assert ranking._abbreviates(part, word) is expected


def test_a_file_named_by_a_short_form_matches_the_query_word() -> None:
    assert ranking._path_match(frozenset({"request", "context"}), "src/flask/ctx.py") == 0.5
    assert ranking._path_match(frozenset({"hub", "huggingface"}), "model2vec/hf.py") == 0.5
    assert ranking._path_match(frozenset({"return", "value"}), "lib/re.py") == 0.0


@pytest.mark.parametrize(("query", "describes"), [
    ("return the number of days in a month", True), ("Parses the header line", True),
    ("retry with backoff", True), ("copies a tree of files", True),
    ("how are routes registered", False), ("request context handling", False),
    ("testing client", False), ("return", False), ("returned value of the call", False),
])
def test_descriptions_of_behaviour_are_told_from_topics(query: str, describes: bool) -> None:
    assert classify(query).describes is describes


def test_a_description_of_behaviour_keeps_the_best_files_other_functions_close() -> None:
    texts = {0: "def a(): pass", 1: "def b(): pass", 2: "def c(): pass", 3: "def d(): pass"}
    paths = {0: "calendar.py", 1: "calendar.py", 2: "locale.py", 3: "time.py"}
    legs = {"semantic": [(0, 0.80), (1, 0.78), (2, 0.70), (3, 0.40)]}
    described = [r.row for r in _rank(legs, "return the number of days in a month", texts, paths)]
    topic = [r.row for r in _rank(legs, "number of days in a month", texts, paths)]
    assert described[:3] == [0, 1, 2]
    assert topic[:3] == [0, 2, 1]


def test_within_a_file_a_description_of_behaviour_is_ordered_by_meaning() -> None:
    """Both legs point at one file; full text's best chunk there repeats the sentence's
    words (``makeLogRecord``'s docstring), semantic is surest of another (``formatTime``). For
    a description of behaviour the file's chunks are ordered by meaning; for a topic, by both
    legs as before."""
    texts = {0: "def makeLogRecord(d): 'Make a LogRecord from the specified dict' ...",
             1: "def formatTime(self, record): ct = self.converter(record.created) ...",
             2: "def other(): pass", 3: "def unrelated(): pass"}
    paths = {0: "logging.py", 1: "logging.py", 2: "logging.py", 3: "os.py"}
    legs = {"semantic": [(1, 0.80), (0, 0.70), (2, 0.65), (3, 0.30)], "fts": [(0, 12.0), (3, 3.0)]}
    described = [r.row for r in _rank(legs, "Return the creation time of the specified LogRecord as text",
                                      texts, paths)]
    topic = [r.row for r in _rank(legs, "creation time of the specified LogRecord as text", texts, paths)]
    assert described[:2] == [1, 0]
    assert topic[:2] == [0, 1]
    # the file's place among the others is both legs' still: os.py stays last
    assert described[-1] == topic[-1] == 3
    off = ranking.dataclasses.replace(ranking.DEFAULT, describing_order_by_meaning=False)
    assert [r.row for r in _rank(legs, "Return the creation time of the specified LogRecord as text",
                                 texts, paths, params=off)][:2] == [0, 1]


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 5), st.floats(0, 1)), min_size=1, max_size=12))
def test_ordering_a_files_chunks_keeps_its_scores_and_its_place(rows: list[tuple[str, float, float]]) -> None:
    """``_order_files_by`` hands a file's scores out again: each file keeps the same scores (so
    files interleave as before), and within a file they follow the key."""
    fused = {i: ranking.Ranked(i, score, {}, {}) for i, (_path, score, _key) in enumerate(rows)}
    key = {i: k for i, (_path, _score, k) in enumerate(rows)}

    def path_of(row: int) -> str:
        return rows[row][0]

    before = {p: sorted(r.score for r in fused.values() if path_of(r.row) == p) for p in "abc"}
    ranking._order_files_by(key, fused, path_of)
    for p in "abc":
        items = sorted((r for r in fused.values() if path_of(r.row) == p), key=lambda r: (-key[r.row], r.row))
        assert sorted(r.score for r in items) == before[p]
        assert [r.score for r in items] == sorted((r.score for r in items), reverse=True)


def test_a_short_name_in_a_sentence_is_an_identifier() -> None:
    # "g" is no English word: the chunk defining it comes first, though semantic put it last;
    # "is" and "a" are words, and what defines them is not brought in.
    texts = {0: "def app_context(): ...", 1: "def helper(): ...", 2: "g = LocalProxy(_cv_app)",
             3: "is = 1", 4: "a = 2"}
    paths = {0: "ctx.py", 1: "helpers.py", 2: "globals.py", 3: "x.py", 4: "y.py"}
    legs = {"semantic": [(0, 0.6), (1, 0.5), (2, 0.2)]}
    out = _rank(legs, "how is g used to store data in a request", texts, paths,
                symbols=_Defs({0: "app_context", 1: "helper", 2: "g", 3: "is", 4: "a"}))
    assert [r.row for r in out][:1] == [2]
    assert {3, 4}.isdisjoint(r.row for r in out)


def test_a_method_is_spelt_with_its_class_name() -> None:
    from cidx_daemon.index.chunking import Symbol

    query = "Produce text documentation for a given class object"
    speller = ranking.Speller(ranking._spelling_vocabulary(query), len(classify(query).words))
    text_doc = speller.best([Symbol("docclass", "method", "TextDoc", 1)], 0.5)
    html_doc = speller.best([Symbol("docclass", "method", "HTMLDoc", 1)], 0.5)
    assert text_doc > html_doc > 0


def test_a_name_in_a_description_of_behaviour_is_context_not_the_target() -> None:
    texts = {0: "class TarInfo(object):\n    pass", 1: "def getmembers(self):\n    return self.members",
             2: "def other(): pass"}
    paths = {0: "tarfile.py", 1: "tarfile.py", 2: "zipfile.py"}
    legs = {"semantic": [(1, 0.7), (0, 0.68), (2, 0.3)]}
    described = _rank(legs, "Return the members of the archive as a list of TarInfo objects", texts, paths,
                      find_definitions=lambda name: [0])
    asked = _rank(legs, "where are TarInfo objects made", texts, paths, find_definitions=lambda name: [0])
    assert described[0].row == 1
    assert asked[0].row == 0


def test_the_speller_reads_names_the_same_whatever_the_hash_seed() -> None:
    """Which query word a shared piece stands for ("log": the word, or a prefix of "logger")
    followed a set's order, which changes with PYTHONHASHSEED: the same query ranked
    differently after a daemon restart (stdlib set: "Log 'msg % args' with the integer
    severity..." put Logger.log or the module's log first, by seed)."""
    import subprocess
    import sys

    script = ("from cidx_daemon.search.ranking import Speller, _spelling_vocabulary, _spelling_words\n"
              "q = \"Log 'msg % args' with the integer severity 'level' on the root logger\"\n"
              "v = _spelling_vocabulary(q)\n"
              "s = Speller(v, 8)\n"
              "print(_spelling_words(v), [(c, sorted(u)) for c, u in\n"
              "                           map(s.spelt, ('log', 'getLogger', 'setLevel', 'logLevel'))])\n")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
               for seed in range(12)}
    assert len(outputs) == 1, outputs


class _Symbols(_Defs):
    """Hand-made definitions with kinds and owners."""

    def __init__(self, defs: dict[int, tuple[str, str, str]]) -> None:
        from cidx_daemon.index.chunking import Symbol

        self.defs = {row: [Symbol(name, kind, parent, 1)] for row, (name, kind, parent) in defs.items()}
        self.syntax_rows = [True] * (max(defs) + 1)


def test_a_bare_name_prefers_the_module_level_definition_a_qualified_one_its_method() -> None:
    # Django: QuerySet.reverse and a list method ranked above django.urls.reverse for "reverse".
    texts = {0: "    def reverse(self):\n        return self._chain()",
             1: "    def reverse(self):\n        pass",
             2: "def reverse(viewname, urlconf=None):\n    return resolver.reverse(viewname)"}
    paths = {0: "django/db/models/query.py", 1: "django/contrib/gis/geos/mutable_list.py",
             2: "django/urls/base.py"}
    symbols = _Symbols({0: ("reverse", "method", "QuerySet"), 1: ("reverse", "method", "ListMixin"),
                        2: ("reverse", "function", "")})
    legs = {"fts": [(0, 9.0), (1, 8.5), (2, 8.0)]}
    assert _rank(legs, "reverse", texts, paths, symbols=symbols)[0].row == 2
    assert _rank(legs, "QuerySet.reverse", texts, paths, symbols=symbols)[0].row == 0
    flat = ranking.RankingParams(method_definition_factor=1.0)
    assert _rank(legs, "reverse", texts, paths, symbols=symbols, params=flat)[0].row == 0


def test_a_package_init_that_defines_the_name_is_not_demoted_as_a_reexport() -> None:
    # django/core/mail/__init__.py defines send_mail; the re-export demotion put it third.
    texts = {0: "def send_mail(subject, message):\n    return conn.send()",
             1: "def send_mail(subject, message):\n    ...", 2: "from .mail import send_mail"}
    paths = {0: "django/core/mail/__init__.py", 1: "django/core/mail/compat.py", 2: "pkg/__init__.py"}
    symbols = _Symbols({0: ("send_mail", "function", ""), 1: ("send_mail", "function", ""),
                        2: ("other", "function", "")})
    legs = {"fts": [(0, 9.0), (1, 8.8), (2, 8.7)]}
    assert _rank(legs, "send_mail", texts, paths, symbols=symbols)[0].row == 0  # was 1: 0.7 x 9.0 < 8.8
    # a chunk of an __init__.py that defines nothing asked for is still a re-export's
    assert role_factor("pkg/__init__.py", classify("send_mail").asks_for) < 1.0
