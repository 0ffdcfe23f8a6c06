"""Reciprocal Rank Fusion."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cidx_daemon.search.fusion import rrf


def test_rrf_scores_and_ranks() -> None:
    fused = rrf({"semantic": [(1, 0.9), (2, 0.8)], "fts": [(2, 12.0), (3, 5.0)]}, k=60)
    assert [f.row for f in fused] == [2, 1, 3]
    top = fused[0]
    assert top.ranks == {"semantic": 2, "fts": 1}
    assert abs(top.score - (1 / 62 + 1 / 61)) < 1e-12
    assert top.scores == {"semantic": 0.8, "fts": 12.0}


@given(st.lists(st.integers(0, 50), unique=True), st.lists(st.integers(0, 50), unique=True))
def test_rrf_is_a_sorted_union(a: list[int], b: list[int]) -> None:
    fused = rrf({"semantic": [(r, 0.0) for r in a], "fts": [(r, 0.0) for r in b]})
    assert {f.row for f in fused} == set(a) | set(b)
    scores = [f.score for f in fused]
    assert scores == sorted(scores, reverse=True)
    for f in fused:  # a row found by both legs outranks its single-leg self
        expected = sum(1 / (60 + rank) for rank in f.ranks.values())
        assert abs(f.score - expected) < 1e-12
