"""The shared request schema: parser, validator and argv round trip."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cidx import schema


def parse(argv: list[str]) -> dict:
    p = argparse.ArgumentParser(exit_on_error=False)
    schema.add_query_arguments(p)
    return schema.request_from_namespace(p.parse_args(argv))


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
    assert schema.request_mode(parse(["q"])) == "semantic"
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
