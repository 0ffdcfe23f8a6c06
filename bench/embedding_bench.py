"""Embedder throughput, cold load, query latency and peak memory, per runtime.

Not part of the test suite (timings depend on the machine and its load). Each
runtime runs in its own subprocess so its load time is cold and its peak RSS
is its own. Chunks are ~800-character pieces of the running interpreter's
stdlib .py files, cut on line boundaries like an indexer would.

    python bench/embedding_bench.py [--chunks 256] [--runtime minilm ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon_pkg/src"))

QUERIES = [
    "open a url with timeout",
    "parse command line arguments",
    "read a gzip compressed file",
    "sort a list in place",
    "retry on connection error",
]


def stdlib_chunks(count: int, size: int = 800) -> list[str]:
    """Deterministic ~`size`-char chunks of stdlib sources, cut at line ends."""
    chunks: list[str] = []
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py")):
        current: list[str] = []
        length = 0
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
            current.append(line)
            length += len(line)
            if length >= size:
                chunks.append("".join(current))
                current, length = [], 0
                if len(chunks) == count:
                    return chunks
        if current and length > 40:
            chunks.append("".join(current))
            if len(chunks) == count:
                return chunks
    return chunks


def padded_slots(chunks: list[str], batch: int) -> tuple[int, int, int]:
    """Token slots the model computes (padding included) in caller order vs the embedder's
    token-length sort, and the real tokens: what sorting saves, independent of load."""
    from cidx_daemon.search.embedding.minilm import MAX_TOKENS, SORT_WINDOW_BATCHES
    from cidx_daemon.search.embedding.model_files import locate_minilm

    tokenizer = Tokenizer.from_file(str(locate_minilm().tokenizer))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    lengths = [len(e.ids) for e in tokenizer.encode_batch(chunks)]

    def slots(order: list[int]) -> int:
        groups = [order[i : i + batch] for i in range(0, len(order), batch)]
        return sum(len(g) * max(lengths[j] for j in g) for g in groups)

    window = batch * SORT_WINDOW_BATCHES
    by_length = [
        i
        for first in range(0, len(chunks), window)
        for i in sorted(range(first, min(first + window, len(chunks))), key=lambda i: lengths[i])
    ]
    return slots(list(range(len(chunks)))), slots(by_length), sum(lengths)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(runtime: str, count: int, batch: int, threads: int | None, rounds: int) -> dict[str, object]:
    chunks = stdlib_chunks(count)
    start = time.perf_counter()
    from cidx_daemon.search.embedding import load_embedder

    embedder = load_embedder(runtime, threads=threads)
    load_s = time.perf_counter() - start
    rss_after_load = peak_rss_mb()

    embedder.embed_query("warm up")
    latencies = []
    for _ in range(6):
        for q in QUERIES:
            t = time.perf_counter()
            embedder.embed_query(q)
            latencies.append((time.perf_counter() - t) * 1000)

    def length_sorted() -> None:
        embedder.embed_documents(chunks, batch_size=batch)

    def file_order() -> None:  # each call sorts only within its own batch: no gain
        for i in range(0, len(chunks), batch):
            embedder.embed_documents(chunks[i : i + batch], batch_size=batch)

    embedder.embed_documents(chunks[:batch], batch_size=batch)  # first-run allocations
    rates: dict[str, float] = {"sorted": 0.0, "file": 0.0}
    for _ in range(rounds):  # alternate, keep the best: other processes share the cores
        for key, fn in (("sorted", length_sorted), ("file", file_order)):
            t = time.perf_counter()
            fn()
            rates[key] = max(rates[key], len(chunks) / (time.perf_counter() - t))
    sorted_rate, unsorted_rate = rates["sorted"], rates["file"]

    return {
        "runtime": runtime,
        "name": embedder.name,
        "chunks": len(chunks),
        "mean_chunk_chars": round(statistics.mean(len(c) for c in chunks)),
        "load_s": round(load_s, 2),
        "query_p50_ms": round(statistics.median(latencies), 1),
        "chunks_per_s_sorted": round(sorted_rate, 1),
        "chunks_per_s_unsorted": round(unsorted_rate, 1),
        "rss_after_load_mb": round(rss_after_load),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=2, help="timed passes per ordering (best kept)")
    parser.add_argument("--runtime", action="append", help="embedder name (repeatable)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_one(args.runtime[0], args.chunks, args.batch, args.threads, args.rounds)))
        return

    from cidx_daemon.search.embedding import available_embedders

    print(f"python: {sys.executable} {sys.version.split()[0]}; load average {os.getloadavg()[0]:.1f}")
    chunks = stdlib_chunks(args.chunks)
    mixed = [c[: 60 + (i * 97) % 740] for i, c in enumerate(chunks)]  # 60..800 chars
    for label, texts in (("~800-char chunks", chunks), ("60-800-char chunks", mixed)):
        file_slots, sorted_slots, tokens = padded_slots(texts, args.batch)
        print(
            f"token slots for {label}: {file_slots} in file order, {sorted_slots} "
            f"token-length-sorted ({tokens} real tokens)"
        )
    for runtime in args.runtime or available_embedders():
        cmd = [sys.executable, __file__, "--child", "--runtime", runtime]
        cmd += ["--chunks", str(args.chunks), "--batch", str(args.batch), "--rounds", str(args.rounds)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{r['name']:<30} load {r['load_s']:.2f} s | query p50 {r['query_p50_ms']:.1f} ms | "
            f"{r['chunks_per_s_sorted']:.1f} chunks/s length-sorted, {r['chunks_per_s_unsorted']:.1f} "
            f"in file order ({r['chunks']} x ~{r['mean_chunk_chars']} chars, batch {args.batch}) | "
            f"RSS after load {r['rss_after_load_mb']} MB, peak {r['peak_rss_mb']} MB"
        )


if __name__ == "__main__":
    main()
