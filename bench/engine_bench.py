"""Warm in-process query latency of the engine, per mode, on an indexed project.

Measures what the daemon adds nothing to: ``Engine.query`` called in a loop
in one process (model and generation already loaded), so the figures are the
engine's own floor. Run on an indexed project (for example the stdlib corpus
that ``bench/run_all.py`` caches under ``~/.cache/cidx-bench/corpora``)::

    .venv/bin/python bench/engine_bench.py PROJECT_DIR [--runs 30]

Prints a markdown table (p50 / p95 / min / max in ms) and the interpreter used.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from cidx_daemon.search.engine import Engine
from cidx_shared import config as cfgmod

QUERIES = {
    "semantic": ["open a url with a timeout", "retry with backoff", "parse an http header",
                 "read a json file", "compress data with zlib"],
    "fts": ["urlopen", "HTTPConnection", "json.loads", "TimeoutError", "zlib.compress"],
    "hybrid": ["open a url with a timeout", "retry with backoff", "parse an http header",
               "read a json file", "compress data with zlib"],
    "fts --regex": [r"def \w+_timeout\(", r"^class \w+Error", r"zlib\.\w+\("],
    "fts --fuzzy": ["urlopne", "HTTPConection", "timout"],
}
FLAGS = {
    "semantic": {"semantic": True}, "fts": {"fts": True}, "hybrid": {"fts": True, "semantic": True},
    "fts --regex": {"fts": True, "regex": True}, "fts --fuzzy": {"fts": True, "fuzzy": True},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("project", type=Path, help="an indexed project directory")
    ap.add_argument("--runs", type=int, default=30, help="repetitions per query (default 30)")
    ap.add_argument("--limit", type=int, default=10)
    args = ap.parse_args()
    config = cfgmod.find_config(args.project)
    if config is None:
        sys.exit(f"error: {args.project} has no .code-indexer/config.json")
    engine = Engine(config)
    t0 = time.perf_counter()
    engine.warm()
    warm_s = time.perf_counter() - t0
    status = engine.status()
    print(f"interpreter: {sys.executable}")
    print(f"project: {args.project}  files: {status.get('files')}  chunks: {status.get('chunks')}  "
          f"index size: {status.get('size_bytes', 0) / 1e6:.1f} MB  warm-up: {warm_s:.2f}s\n")
    print("| mode | p50 ms | p95 ms | min ms | max ms | engine-reported p50 ms |")
    print("|---|---|---|---|---|---|")
    for mode, queries in QUERIES.items():
        wall: list[float] = []
        reported: list[float] = []
        for _ in range(args.runs):
            for text in queries:
                t = time.perf_counter()
                doc = engine.query({"query": text, "limit": args.limit, **FLAGS[mode]})
                wall.append((time.perf_counter() - t) * 1000)
                if doc.get("error"):
                    sys.exit(f"error: {mode} {text!r}: {doc['error']['message']}")
                reported.append(doc["timing_ms"]["total"])
        wall.sort()
        p95 = wall[int(0.95 * (len(wall) - 1))]
        print(f"| {mode} | {statistics.median(wall):.2f} | {p95:.2f} | {wall[0]:.2f} | {wall[-1]:.2f} "
              f"| {statistics.median(reported):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
