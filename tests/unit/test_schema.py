"""The shared request schema: parser, validator and argv round trip."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cidx_shared import cli_args, schema


def parse(argv: list[str]) -> dict:
    """argv -> the request the engine works on: parsed (types only), then validated once."""
    p = argparse.ArgumentParser(exit_on_error=False)
    cli_args.add_query_arguments(p)
    return schema.validate_request(cli_args.request_from_namespace(p.parse_args(argv)))


text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(
    lambda s: s.strip() and s == s.strip())


@st.composite
def requests(draw: st.DrawFn) -> dict:
    raw: dict = {"query": draw(text)}
    for opt in schema.QUERY_OPTIONS:
        if not draw(st.booleans()):
            continue
        if opt.kind == "bool":
            raw[opt.key] = draw(st.booleans())
        elif opt.kind == "list":
            # argparse drops a value of exactly "--" even in "--flag=--" form (a known
            # argparse quirk); no language or path glob is spelled "--".
            raw[opt.key] = draw(st.lists(text.filter(lambda s: s != "--"), max_size=3))
        elif opt.kind == "int":
            raw[opt.key] = draw(st.integers(int(opt.minimum), int(opt.maximum)))
        else:
            raw[opt.key] = draw(st.floats(-5, 5, allow_nan=False))
    try:
        return schema.validate_request(raw)
    except schema.RequestError:
        from hypothesis import reject

        reject()


@settings(max_examples=300)
@given(requests())
def test_argv_round_trip_keeps_every_flag(req: dict) -> None:
    assert parse(schema.request_to_argv(req)) == req


def test_every_option_has_a_flag_and_reaches_the_request() -> None:
    keys = {o.key for o in schema.QUERY_OPTIONS}
    assert keys | {"query"} == schema.REQUEST_KEYS
    req = parse(["x"])
    assert set(req) == schema.REQUEST_KEYS


def test_defaults_and_modes() -> None:
    assert schema.request_mode(parse(["q"])) == "hybrid"  # neither flag: both legs
    assert schema.request_mode(parse(["q", "--semantic"])) == "semantic"
    assert schema.request_mode(parse(["q", "--fts"])) == "fts"
    assert schema.request_mode(parse(["q", "--fts", "--semantic"])) == "hybrid"
    # a full-text-only flag on its own implies --fts
    assert schema.request_mode(parse(["q", "--regex"])) == "fts"
    assert parse(["q", "--fuzzy"])["edit_distance"] == 1
    assert parse(["q", "--edit-distance", "2"])["fuzzy"] is True


@pytest.mark.parametrize("raw, message", [
    ({"query": ""}, "empty"),
    ({"query": "x", "limit": 0}, "--limit must be at least 1"),
    ({"query": "x", "limit": "5"}, "--limit must be a whole number"),
    ({"query": "x", "limit": True}, "--limit must be a whole number"),
    ({"query": "x", "edit_distance": 3}, "--edit-distance must be at most 2"),
    ({"query": "x", "language": "python"}, "--language must be a list"),
    ({"query": "x", "bogus": 1}, "unknown request field"),
    ({"query": "x", "regex": True, "semantic": True}, "add --fts"),
    ({"query": "x", "regex": True, "fuzzy": True}, "--regex cannot be combined"),
    ({"query": "x", "min_score": float("nan")}, "--min-score must be a number"),
    ([1, 2], "JSON object"),
])
def test_bad_requests_get_one_clear_message(raw: object, message: str) -> None:
    with pytest.raises(schema.RequestError, match=message):
        schema.validate_request(raw)


def test_query_starting_with_dash_survives_the_round_trip() -> None:
    req = schema.validate_request({"query": "--limit"})
    assert parse(schema.request_to_argv(req))["query"] == "--limit"


# ---------------------------------------------------------------- the client's fast path

FLAG_TOKENS = [o.flag for o in (*schema.QUERY_OPTIONS, *schema.OUTPUT_OPTIONS)]
VALUES = st.one_of(text, st.integers(-3, 60).map(str), st.sampled_from(["0.5", "-1", "1e3", "nan", "x", ""]))
TOKENS = st.one_of(
    st.sampled_from(FLAG_TOKENS),
    st.builds(lambda f, v: f"{f}={v}", st.sampled_from(FLAG_TOKENS), VALUES),
    VALUES,
    st.sampled_from(["--", "-h", "--lim", "--limit", "-", "--json", "--bogus"]),
)


def argparse_result(argv: list[str]) -> object:
    """What the argparse path makes of ``cidx query ARGV``: (request, output) or an error marker."""
    from cidx.cli import build_parsers

    try:
        ns = cli_args.parse_query_args(build_parsers()[1]["query"], argv)
    except SystemExit:
        return "usage-error"
    try:
        req = schema.validate_request(cli_args.request_from_namespace(ns))
    except schema.RequestError as exc:
        return ("request-error", str(exc))
    return req, cli_args.output_from_namespace(ns)


@st.composite
def plausible_argv(draw: st.DrawFn) -> list[str]:
    """A command line a person might type: flags in either spelling, query anywhere."""
    parts: list[list[str]] = []
    for opt in draw(st.lists(st.sampled_from([*schema.QUERY_OPTIONS, *schema.OUTPUT_OPTIONS]), max_size=5)):
        if opt.kind == "bool":
            parts.append([opt.flag])
        else:
            value = draw(VALUES)
            parts.append([f"{opt.flag}={value}"] if draw(st.booleans()) else [opt.flag, value])
    query = draw(text)
    if draw(st.booleans()):
        return [tok for part in parts for tok in part] + ["--", query]
    parts.insert(draw(st.integers(0, len(parts))), [query])
    return [tok for part in parts for tok in part]


@settings(max_examples=500, deadline=None)
@given(st.one_of(plausible_argv(), st.lists(TOKENS, max_size=7)))
def test_fast_path_agrees_with_argparse_whenever_it_answers(argv: list[str]) -> None:
    import contextlib
    import io

    fast = schema.parse_query_argv(argv)
    if fast is None:
        return  # deferred: argparse handles it (and prints its own messages)
    raw, output = fast
    try:
        mine: object = (schema.validate_request(raw), output)
    except schema.RequestError as exc:
        mine = ("request-error", str(exc))
    with contextlib.redirect_stderr(io.StringIO()):
        assert mine == argparse_result(argv)


@given(requests())
def test_fast_path_reads_everything_the_standalone_path_writes(req: dict) -> None:
    fast = schema.parse_query_argv(schema.request_to_argv(req))
    assert fast is not None and schema.validate_request(fast[0]) == req


def test_fast_path_defers_on_help_and_abbreviations() -> None:
    for argv in (["-h"], ["x", "--lim", "3"], ["x", "--limit"], ["x", "--min-score", "-1"], [],
                 ["x", "--color", "sometimes"], ["x", "--max-tokens", "3"]):
        assert schema.parse_query_argv(argv) is None


def test_several_words_are_one_query_in_both_parsers() -> None:
    """`cidx query read a file` searches "read a file" (no quotes needed), as argparse agrees."""
    for argv in (["read", "a", "file"], ["read", "--fts", "a", "file"], ["--", "read", "a", "-file"]):
        raw, _ = schema.parse_query_argv(argv)
        assert raw["query"] == " ".join(a for a in argv if a not in ("--fts", "--"))
        assert argparse_result(argv)[0]["query"] == raw["query"]


def test_regex_is_case_sensitive_like_grep_and_words_are_not() -> None:
    regex = schema.validate_request({"query": "Foo", "regex": True})
    assert schema.case_sensitive(regex) is True
    assert schema.case_sensitive(schema.validate_request({"query": "Foo", "regex": True,
                                                          "ignore_case": True})) is False
    assert schema.case_sensitive(schema.validate_request({"query": "Foo", "fts": True})) is False
    raw, _ = schema.parse_query_argv(["Foo", "--regex", "-i"])
    assert raw == {"query": "Foo", "regex": True, "ignore_case": True}
    with pytest.raises(schema.RequestError, match="contradict"):
        schema.validate_request({"query": "x", "regex": True, "ignore_case": True, "case_sensitive": True})


def test_a_semantic_query_says_so_and_one_full_text_flag_is_worded_right() -> None:
    assert schema.validate_request({"query": "x"})["semantic"] is True
    with pytest.raises(schema.RequestError, match=r"^--regex applies to full-text search"):
        schema.validate_request({"query": "x", "regex": True, "semantic": True})


def test_parsing_only_types_the_flags_given_and_leaves_validation_to_the_engine() -> None:
    """Validate once, in the engine: the client sends what the user typed, typed."""
    raw, _ = schema.parse_query_argv(["x", "--limit", "0", "--regex"])
    assert raw == {"query": "x", "limit": 0, "regex": True}
    p = argparse.ArgumentParser(exit_on_error=False)
    cli_args.add_query_arguments(p)
    assert cli_args.request_from_namespace(p.parse_args(["x", "--limit", "0"])) == {"query": "x", "limit": 0}
    with pytest.raises(schema.RequestError, match="--limit must be at least 1"):
        schema.validate_request(raw)


def test_envelope_round_trip_and_refusals() -> None:
    env = schema.make_envelope("/repo", {"query": "x"})
    assert schema.read_envelope(env) == (schema.PROTOCOL_VERSION, "/repo", {"query": "x"})
    for bad, message in (([1], "not a cidx request envelope"), ({"query": "x"}, "not a cidx request"),
                         ({"protocol": "2"}, "must be an integer"),
                         ({"protocol": 2, "project": 5}, "must be a path")):
        with pytest.raises(schema.RequestError, match=message):
            schema.read_envelope(bad)


def test_every_error_code_sent_anywhere_is_documented() -> None:
    """ERROR_CODES lists exactly the codes the code base sends (none missing, none dead)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sent: set[str] = set()
    for path in [*root.glob("daemon_pkg/src/**/*.py"), *root.glob("client_zipapp/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
                    == "make_error_document" and node.args and isinstance(node.args[0], ast.Constant)):
                sent.add(node.args[0].value)
            if isinstance(node, ast.Dict):  # {"code": "busy", ...} made by the client
                for k, v in zip(node.keys, node.values, strict=True):
                    if (isinstance(k, ast.Constant) and k.value == "code" and isinstance(v, ast.Constant)
                            and isinstance(v.value, str)):
                        sent.add(v.value)
    assert sent == set(schema.ERROR_CODES), sent ^ set(schema.ERROR_CODES)
    with pytest.raises(ValueError, match="unknown error code"):
        schema.make_error_document("nonsense", "x")


def test_files_only_asks_for_more_chunks_and_prints_the_first_n_files() -> None:
    from cidx_shared.render import render_files

    raw, output = schema.parse_query_argv(["zebra", "--files-only", "--limit", "3"])
    wide, out = schema.widen_for_files(raw, output)
    assert wide["limit"] == 3 * schema.FILES_ONLY_WIDEN and wide["snippet_lines"] == 0
    assert out["files_limit"] == 3 and raw["limit"] == 3  # the caller's dicts are not changed
    doc = {"root": "/p", "results": [{"path": p} for p in ("a.py", "a.py", "b.py", "a.py", "c.py", "d.py")]}
    assert render_files(doc, "/p", out["files_limit"]) == "a.py\nb.py\nc.py\n"
    default, _ = schema.widen_for_files(*schema.parse_query_argv(["zebra", "--files-only"]))
    assert default["limit"] == 10 * schema.FILES_ONLY_WIDEN
    huge, _ = schema.widen_for_files(*schema.parse_query_argv(["zebra", "--files-only", "--limit", "900"]))
    assert huge["limit"] == schema.MAX_LIMIT


@pytest.mark.parametrize("argv", [["zebra", "--limit", "3"], ["zebra", "--files-only", "--json"],
                                  ["zebra", "--files-only", "--jsonl"]])
def test_other_outputs_get_the_limit_asked_for(argv: list[str]) -> None:
    raw, output = schema.parse_query_argv(argv)
    assert schema.widen_for_files(raw, output) == (raw, output)


def test_a_bad_limit_is_left_for_validation_to_explain() -> None:
    for bad in (0, -1, "3", True, schema.MAX_LIMIT + 1):
        raw, output = {"query": "x", "limit": bad}, {**schema.output_defaults(), "files_only": True}
        assert schema.widen_for_files(raw, output) == (raw, output)


def test_the_readme_documents_every_query_flag() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Query flags", 1)[1].split("\n\n", 2)[1]
    documented = {cell.strip("` ").split()[0] for line in table.splitlines()[2:]
                  for cell in line.split("|")[1].split(",")}
    options = (*schema.QUERY_OPTIONS, *schema.OUTPUT_OPTIONS)
    flags = {spelling for o in options for spelling in (o.flag, o.alias) if spelling}
    assert flags <= documented, sorted(flags - documented)
