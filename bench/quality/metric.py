"""The ranking metrics, written to match semble's benchmark exactly (pure functions).

semble (github.com/MinishLab/semble, ``benchmarks/data.py`` and ``run_benchmark.py``)
scores a query like this, and the published peer numbers we print beside ours were
computed this way, so every subtlety is kept even where another choice would be
defensible:

* a target is a path, optionally with a line span; a result *covers* it when the
  paths match as suffixes of each other (either way, ``/``-separated) and, only if
  the target has a span, the result's line span overlaps it;
* a target's rank is the first result (1-based) that covers it;
* gains are binary and set per rank, not added: two targets covered by the same
  result count once in the DCG but twice in the ideal DCG;
* the ideal DCG is over ``min(k, n)`` ones where ``n`` counts the targets that some
  chunk of the index covers (a target missing from the corpus is not held against
  the ranking); ``n == 0`` scores 0.

MRR@k (the stdlib docstring set) is the reciprocal rank of the first hit within k.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """What a query should find: a file, or a line span in it (1-based, inclusive)."""

    path: str
    start_line: int | None = None
    end_line: int | None = None

    @property
    def has_span(self) -> bool:
        return self.start_line is not None and self.end_line is not None

    def label(self) -> str:
        return f"{self.path}:{self.start_line}-{self.end_line}" if self.has_span else self.path


@dataclass(frozen=True)
class Hit:
    """One search result, reduced to what the metric reads."""

    path: str
    start_line: int
    end_line: int


def path_matches(file_path: str, target_path: str) -> bool:
    """Either path is a ``/``-suffix of the other (semble compares absolute with relative paths)."""
    f = file_path.replace("\\", "/")
    t = target_path.replace("\\", "/")
    return f == t or f.endswith("/" + t) or t.endswith("/" + f)


def covers(hit: Hit, target: Target) -> bool:
    """The result is in the target's file and, if the target has a span, overlaps it."""
    if not path_matches(hit.path, target.path):
        return False
    if not target.has_span:
        return True
    return not (hit.end_line < target.start_line or hit.start_line > target.end_line)  # type: ignore[operator]


def target_rank(hits: Sequence[Hit], target: Target) -> int | None:
    """1-based rank of the first hit covering the target, or None."""
    for rank, hit in enumerate(hits, 1):
        if covers(hit, target):
            return rank
    return None


def dcg(gains: Sequence[int]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(ranks: Iterable[int | None], n_present: int, k: int = 10) -> float:
    """NDCG@k with binary gains at the given 1-based ranks (None = not found).

    ``n_present`` is the number of targets that exist in the corpus: the ideal list
    holds ``min(k, n_present)`` relevant results.
    """
    if n_present <= 0:
        return 0.0
    gains = [0] * k
    for rank in ranks:
        if rank is not None and 1 <= rank <= k:
            gains[rank - 1] = 1
    ideal = dcg([1] * min(k, n_present))
    return dcg(gains) / ideal if ideal > 0 else 0.0


def reciprocal_rank(rank: int | None, k: int = 10) -> float:
    """1/rank when the first hit is within the top k, else 0 (one term of MRR@k)."""
    return 1.0 / rank if rank is not None and 1 <= rank <= k else 0.0


def mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was actually measured."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, math.ceil(q / 100.0 * len(ordered)) - 1)
    return ordered[min(index, len(ordered) - 1)]
