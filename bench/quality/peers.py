"""Published figures of other tools, printed beside ours (never measured here).

NDCG@10 per dev-set repo: the table in the dev set's README (from semble's
``benchmarks/results/``). Latencies: semble's ``benchmarks/plot.py`` (warm query
p50, index pre-built; measured on semble's machine, averaged over its
all-language benchmark, so only the order of magnitude carries over) and its
benchmarks README for CodeRankEmbed Hybrid, which plot.py does not list (16 ms,
from the README's speed table).
"""

from __future__ import annotations

PEERS = ("semble", "CodeRankEmbed hybrid", "CodeRankEmbed", "ColGREP", "ck", "BM25", "ripgrep")

#: repo -> peer -> NDCG@10 (dev set README table).
NDCG10: dict[str, dict[str, float]] = {
    "aiohttp": dict(zip(PEERS, (0.855, 0.836, 0.887, 0.763, 0.669, 0.621, 0.135), strict=True)),
    "fastapi": dict(zip(PEERS, (0.784, 0.837, 0.801, 0.717, 0.648, 0.574, 0.182), strict=True)),
    "flask": dict(zip(PEERS, (0.887, 0.914, 0.890, 0.741, 0.671, 0.590, 0.212), strict=True)),
    "httpx": dict(zip(PEERS, (0.915, 0.907, 0.939, 0.804, 0.789, 0.708, 0.262), strict=True)),
    "model2vec": dict(zip(PEERS, (0.738, 0.743, 0.733, 0.807, 0.538, 0.576, 0.206), strict=True)),
    "pydantic": dict(zip(PEERS, (0.784, 0.769, 0.754, 0.549, 0.513, 0.578, 0.206), strict=True)),
    "requests": dict(zip(PEERS, (0.967, 0.990, 0.974, 0.846, 0.913, 0.644, 0.232), strict=True)),
    "starlette": dict(zip(PEERS, (0.963, 0.972, 0.959, 0.872, 0.832, 0.803, 0.187), strict=True)),
}
#: The dev README's own mean row (a check on our mean of the rows above).
NDCG10_MEAN = dict(zip(PEERS, (0.862, 0.871, 0.867, 0.762, 0.697, 0.637, 0.203), strict=True))

#: cidx as the dev README measured it on 2026-12-01 (before this benchmark existed): a reproduction check.
CIDX_README: dict[str, dict[str, float]] = {
    "aiohttp": {"hybrid": 0.715, "semantic": 0.651, "fts": 0.569},
    "fastapi": {"hybrid": 0.619, "semantic": 0.539, "fts": 0.594},
    "flask": {"hybrid": 0.638, "semantic": 0.720, "fts": 0.518},
    "httpx": {"hybrid": 0.849, "semantic": 0.758, "fts": 0.720},
    "model2vec": {"hybrid": 0.576, "semantic": 0.613, "fts": 0.370},
    "pydantic": {"hybrid": 0.551, "semantic": 0.518, "fts": 0.533},
    "requests": {"hybrid": 0.832, "semantic": 0.866, "fts": 0.644},
    "starlette": {"hybrid": 0.704, "semantic": 0.693, "fts": 0.714},
}

#: Warm query p50 in ms (semble plot.py; CodeRankEmbed hybrid from its README).
QUERY_P50_MS: dict[str, float] = {
    "semble": 0.91, "CodeRankEmbed": 15.56, "CodeRankEmbed hybrid": 16.0, "ColGREP": 122.42, "ck": 187.0,
    "BM25": 0.17, "ripgrep": 14.46,
}
LATENCY_SOURCE = ("semble benchmarks/plot.py (warm query p50 on semble's machine, all-language benchmark); "
                  "CodeRankEmbed hybrid: semble benchmarks/README.md speed table")

#: The stdlib docstring set, prior measurement on a similar set (MRR@10), for orientation.
STDLIB_PRIOR = {"semantic": "0.462 (MiniLM)", "fts": "0.34-0.39 (BM25)", "hybrid": "0.486 (RRF)"}
