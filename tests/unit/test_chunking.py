"""The chunker is a pure function over text: its guarantees are checked as properties."""

from __future__ import annotations

import json.decoder
import re
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cidx_daemon.index.chunking import Chunk, chunk_text


def file_lines(text: str) -> list[str]:
    """Lines as the chunker numbers them: split on '\\n', a final newline adds no line."""
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


def assert_chunk_invariants(
    text: str, chunks: list[Chunk], *, max_chars: int, target_lines: int, overlap_lines: int
) -> None:
    lines = file_lines(text)
    long_pieces: dict[int, list[str]] = {}
    for chunk in chunks:
        assert 1 <= chunk.start_line <= chunk.end_line <= len(lines)
        assert len(chunk.text) <= max_chars
        assert chunk.text.strip(), "whitespace-only chunks carry nothing to search"
        assert chunk.end_line - chunk.start_line + 1 <= target_lines
        line = lines[chunk.start_line - 1]
        if chunk.start_line == chunk.end_line and len(line) > max_chars:
            long_pieces.setdefault(chunk.start_line, []).append(chunk.text)
        else:
            assert chunk.text == "\n".join(lines[chunk.start_line - 1 : chunk.end_line])

    # A long line is cut into fixed windows; only whitespace-only windows may be dropped.
    for number, pieces in long_pieces.items():
        line = lines[number - 1]
        windows = [line[i : i + max_chars] for i in range(0, len(line), max_chars)]
        assert pieces == [w for w in windows if w.strip()]

    for number, line in enumerate(lines, start=1):
        if line.strip():
            assert any(c.start_line <= number <= c.end_line for c in chunks), f"line {number} lost"

    for before, after in pairwise(chunks):
        same_long_line = before.start_line == after.start_line == before.end_line == after.end_line
        if same_long_line:
            continue
        assert before.start_line < after.start_line
        assert before.end_line < after.end_line
        shared = before.end_line - after.start_line + 1
        assert shared <= overlap_lines
        if shared < 0:  # a gap is allowed only over whitespace-only lines
            assert not "".join(lines[before.end_line : after.start_line - 1]).strip()


# ---------------------------------------------------------------- examples


def test_blank_text_gives_no_chunks() -> None:
    assert chunk_text("") == []
    assert chunk_text(" \n\t\n\n   ") == []


def test_small_text_is_one_chunk_and_final_newline_adds_no_line() -> None:
    assert chunk_text("a = 1\nb = 2\n") == [Chunk(1, 2, "a = 1\nb = 2")]
    assert chunk_text("a = 1\nb = 2") == [Chunk(1, 2, "a = 1\nb = 2")]


def test_leading_blank_lines_keep_file_absolute_numbers() -> None:
    assert chunk_text("\n\n\nx = 1\n") == [Chunk(1, 4, "\n\n\nx = 1")]


def test_long_line_is_split_into_pieces_on_one_line_number() -> None:
    line = "".join(str(i % 10) for i in range(2050))
    chunks = chunk_text(f"first\n{line}\nlast\n", max_chars=800)
    assert chunks[0] == Chunk(1, 1, "first")
    pieces = [c for c in chunks if c.start_line == 2]
    assert [(c.start_line, c.end_line) for c in pieces] == [(2, 2)] * 3
    assert "".join(c.text for c in pieces) == line
    assert chunks[-1] == Chunk(3, 3, "last")


def test_whitespace_only_pieces_of_a_long_line_are_dropped() -> None:
    chunks = chunk_text(" " * 1001 + "x", max_chars=500)
    assert chunks == [Chunk(1, 1, " x")]


def test_size_limits_hold_on_dense_code() -> None:
    text = "\n".join(f"value_{i} = compute({i}, {i * 2})" for i in range(500))
    chunks = chunk_text(text, max_chars=800, target_lines=50)
    assert all(len(c.text) <= 800 for c in chunks)
    assert all(c.end_line - c.start_line + 1 <= 50 for c in chunks)
    assert_chunk_invariants(text, chunks, max_chars=800, target_lines=50, overlap_lines=2)


def test_hard_cuts_overlap_by_overlap_lines() -> None:
    text = "\n".join(f"x{i} = {i}" for i in range(200))  # no blank line, no definition
    chunks = chunk_text(text, max_chars=10_000, target_lines=50, overlap_lines=3)
    assert [(c.start_line, c.end_line) for c in chunks[:3]] == [(1, 50), (48, 97), (95, 144)]


def test_overlap_never_restarts_the_previous_chunk() -> None:
    # The preferred cut (after the blank line) leaves a 2-line chunk; a 3-line overlap must
    # not send the next chunk back to line 1.
    text = "a\n\nb\n" + "c" * 30
    chunks = chunk_text(text, max_chars=20, target_lines=10, min_lines=1, overlap_lines=3)
    assert chunks[0] == Chunk(1, 2, "a\n")
    assert chunks[1].start_line > 1
    assert_chunk_invariants(text, chunks, max_chars=20, target_lines=10, overlap_lines=3)


def test_a_chunk_after_an_overlap_always_reaches_new_lines() -> None:
    # After the cut below line 3 the next chunk starts at line 2 (overlap) and sees the same
    # blank-line boundary again; cutting there would repeat lines 2-3 and cover nothing new.
    text = "a\ny\n\nb\n" + "c" * 20
    chunks = chunk_text(text, max_chars=10, target_lines=10, min_lines=1, overlap_lines=2)
    assert_chunk_invariants(text, chunks, max_chars=10, target_lines=10, overlap_lines=2)


def test_overlap_does_not_start_on_a_blank_line() -> None:
    lines = [f"x{i} = {i}" for i in range(120)]
    lines[48] = ""  # would be the first overlap line of the hard cut after line 50
    chunks = chunk_text("\n".join(lines), max_chars=10_000, target_lines=50, min_lines=50, overlap_lines=2)
    assert (chunks[0].end_line, chunks[1].start_line) == (50, 50)


def test_cuts_go_before_definitions_with_their_decorators_and_comments() -> None:
    def function(name: str) -> str:
        body = "\n".join(f"    total += {name}_{i}" for i in range(12))
        head = f"# {name} keeps a running total\n@cached\ndef {name}():\n    total = 0\n"
        return f"{head}{body}\n    return total\n"

    text = "import os\n\n" + "\n\n".join(function(name) for name in ("alpha", "beta", "gamma", "delta"))
    lines = file_lines(text)
    chunks = chunk_text(text, max_chars=800, target_lines=50, min_lines=5)
    assert len(chunks) > 1
    for chunk in chunks[1:]:
        assert lines[chunk.start_line - 1].startswith("# "), chunk
        assert lines[chunk.start_line].startswith("@cached")
    # A clean definition boundary needs no overlap.
    assert all(a.end_line + 1 == b.start_line for a, b in pairwise(chunks))


def test_markdown_is_cut_at_headings() -> None:
    sections = [f"## Section {i}\n\n" + "Some prose about it. " * 20 + "\n" for i in range(6)]
    text = "# Title\n\n" + "\n".join(sections)
    lines = file_lines(text)
    chunks = chunk_text(text, max_chars=800, min_lines=2)
    assert all(lines[c.start_line - 1].startswith("#") for c in chunks)


def test_real_python_file_cuts_at_definitions_far_more_than_chance() -> None:
    path = Path(json.decoder.__file__)
    text = path.read_text(encoding="utf-8")
    lines = file_lines(text)
    chunks = chunk_text(text)
    assert_chunk_invariants(text, chunks, max_chars=800, target_lines=50, overlap_lines=2)

    definition = re.compile(r"\s*(async def|def|class)\s")
    lead_in = re.compile(r"\s*[@#]")

    def boundary_of(number: int) -> int:
        """The line a definition's chunk should start on: above its decorators and comments."""
        while number > 1 and lead_in.match(lines[number - 2]):
            number -= 1
        return number

    definitions = [n for n, line in enumerate(lines, start=1) if definition.match(line)]
    starts = {c.start_line for c in chunks}
    started = sum(boundary_of(n) in starts for n in definitions)
    assert started / len(definitions) > 0.5, "most definitions should begin a chunk"

    cut_at_definition = sum(1 for c in chunks[:-1] if definition.match(lines[c.end_line]) or
                            lead_in.match(lines[c.end_line]))
    base_rate = len(definitions) / len(lines)
    assert cut_at_definition / (len(chunks) - 1) > 5 * base_rate


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_chars": 0},
        {"target_lines": 0},
        {"min_lines": 0},
        {"min_lines": 60, "target_lines": 50},
        {"overlap_lines": -1},
        {"overlap_lines": 50, "target_lines": 50},
    ],
)
def test_bad_parameters_are_rejected(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        chunk_text("x = 1\n", **kwargs)


# ---------------------------------------------------------------- properties

_LINE = st.one_of(
    st.sampled_from(
        ["", "   ", "\t", "def f(x):", "    return x", "class A:", "@decorator", "# heading", "}", "fn f() {"]
    ),
    st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=80),
    st.text("ab \t", min_size=100, max_size=1200),
)


@st.composite
def texts_and_params(draw: st.DrawFn) -> tuple[str, dict[str, int]]:
    text = "\n".join(draw(st.lists(_LINE, max_size=120)))
    if draw(st.booleans()):
        text += "\n"
    target_lines = draw(st.integers(1, 60))
    params = {
        "max_chars": draw(st.integers(1, 900)),
        "target_lines": target_lines,
        "min_lines": draw(st.integers(1, target_lines)),
        "overlap_lines": draw(st.integers(0, min(3, target_lines - 1))),
    }
    return text, params


@settings(max_examples=300, deadline=None)
@given(texts_and_params())
def test_chunk_invariants_hold_for_any_text(case: tuple[str, dict[str, int]]) -> None:
    text, params = case
    chunks = chunk_text(text, **params)
    assert_chunk_invariants(
        text,
        chunks,
        max_chars=params["max_chars"],
        target_lines=params["target_lines"],
        overlap_lines=params["overlap_lines"],
    )
    assert chunks == chunk_text(text, **params), "chunking must be deterministic"


@settings(max_examples=200, deadline=None)
@given(st.lists(_LINE, max_size=200).map("\n".join))
def test_default_parameters_satisfy_invariants(text: str) -> None:
    chunks = chunk_text(text)
    assert_chunk_invariants(text, chunks, max_chars=800, target_lines=50, overlap_lines=2)
    assert (chunks == []) == (not text.strip())
