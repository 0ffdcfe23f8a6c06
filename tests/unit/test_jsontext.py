"""cidx_shared.jsontext: the client's JSON without the ``json`` package, held equal to it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cidx_shared import jsontext

ROOT = Path(__file__).resolve().parents[2]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=30)


@settings(max_examples=400)
@given(documents, st.sampled_from([None, 2]), st.booleans())
def test_dumps_equals_the_json_module(doc: object, indent: int | None, ensure_ascii: bool) -> None:
    assert jsontext.dumps(doc, indent=indent, ensure_ascii=ensure_ascii) == json.dumps(
        doc, indent=indent, ensure_ascii=ensure_ascii)


@settings(max_examples=400)
@given(documents, st.sampled_from([None, 2]), st.sampled_from(["", " ", "\n\t "]))
def test_loads_equals_the_json_module(doc: object, indent: int | None, ws: str) -> None:
    text = ws + json.dumps(doc, indent=indent) + ws
    mine, theirs = jsontext.loads(text), json.loads(text)
    assert json.dumps(mine) == json.dumps(theirs)  # NaN != NaN: compare the encodings
    assert json.dumps(jsontext.loads(text.encode())) == json.dumps(mine)  # bytes in, same value


@pytest.mark.parametrize("bad", ["", "   ", "{", '{"a": 1} x', "[1,]", "nul", '"\x01"', "{'a': 1}"])
def test_bad_json_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        jsontext.loads(bad)


def test_deep_nesting_is_a_recursion_error_not_a_crash() -> None:
    with pytest.raises(RecursionError):
        jsontext.loads("[" * 100_000 + "]" * 100_000)


def test_bad_json_is_a_value_error_where_json_was_never_imported() -> None:
    """The C scanner words its errors with json.decoder's class, but only if json is loaded."""
    code = ("import sys; from cidx_shared import jsontext\n"
            "for bad in ('{oops', '\"abc', '[1 2]', '{\"a\" 1}', '[1,'):\n"
            "    try:\n        jsontext.loads(bad)\n"
            "    except ValueError:\n        print('ValueError')\n"
            "print('json' in sys.modules)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, "
                          f"{str(ROOT / 'daemon_pkg' / 'src')!r})\n{code}"],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["ValueError"] * 5 + ["False"]


def test_importing_it_imports_neither_json_nor_re() -> None:
    code = ("import sys; from cidx_shared import jsontext; jsontext.loads(jsontext.dumps({'a': [1.5]})); "
            "print(sorted(m for m in ('json', 're') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, "
                          f"{str(ROOT / 'daemon_pkg' / 'src')!r}); {code}"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
