"""Ray embedding throughput: 1 and 2 Ray workers against the local embedder, same chunks, same run.

Not part of the test suite (timings depend on the machine and its load). Run it with
the interpreter that has ``cidx-daemon[ray]`` (the dev venv has it):

    .venv-dev/bin/python bench/ray_bench.py [--chunks 500] [--json out.json]

The script re-runs itself inside private network and PID namespaces (``unshare -n -p
-f --mount-proc``, as tests/integration/test_ray.py does): there a local cluster (a head
with no CPUs and two one-CPU worker nodes, separate ``ray start`` processes) uses
127.0.0.1 only, and everything it started ends with the script. Measured: the local
embedder at one thread (what one actor runs) and at its default threads, then the
``RayEmbedder`` with 1 and 2 actors (model loading excluded: the pool is ready before
the clock starts). The extrapolation to 100k and 1M chunks on N nodes multiplies the
measured *per-worker* Ray throughput by N x ``--workers-per-node``, i.e. assumes linear
scaling: each 64-chunk task costs the driver well under a millisecond (send 50 KB of text,
receive 98 KB of vectors) against ~2.5 s of embedding, so one driver is far from its
limit at 64 nodes; the cost Ray adds per chunk (1 worker against the local embedder at
one thread) is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon_pkg/src"))
sys.path.insert(0, str(ROOT / "bench"))

PORT = 6392
NODES = (1, 4, 16, 64)
TOTALS = (100_000, 1_000_000)


def _clock(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _timed(embed, chunks: list[str]) -> float:
    started = time.perf_counter()
    vectors = embed(chunks)
    elapsed = time.perf_counter() - started
    assert vectors.shape[0] == len(chunks)
    return len(chunks) / elapsed


def inside(args: argparse.Namespace) -> dict:
    """Runs in the namespaces: start the cluster, measure, return the figures."""
    from cidx_daemon.search.embedding import load_embedder
    from cidx_daemon.search.embedding.ray_pool import RayEmbedder
    from embedding_bench import stdlib_chunks

    ray_cli = str(Path(sys.executable).with_name("ray"))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = tempfile.mkdtemp(prefix="cidx-rb-", dir="/tmp")  # short: Ray's Unix socket paths
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "check": True}
    try:
        subprocess.run([ray_cli, "start", "--head", f"--port={PORT}", "--num-cpus=0",
                        "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tmp}"], **quiet)
        for _ in range(2):
            subprocess.run([ray_cli, "start", f"--address=127.0.0.1:{PORT}", "--num-cpus=1"], **quiet)
        chunks = stdlib_chunks(args.chunks)
        results: dict = {"chunks": len(chunks), "python": sys.executable,
                         "python_version": platform.python_version(), "cpus": os.cpu_count(),
                         "load_before": os.getloadavg()[0]}
        for threads in (1, None):
            local = load_embedder(args.embedder, threads=threads)
            local.embed_documents(chunks[:32])  # warm-up: first-run allocations
            key = "local_1_thread" if threads == 1 else "local_default_threads"
            results[key] = _timed(local.embed_documents, chunks)
            del local
        for actors in (1, 2):
            pool = RayEmbedder(f"127.0.0.1:{PORT}", args.embedder, max_actors=actors)
            pool.embed_documents(chunks[:pool.actors * 8])  # warm-up on every actor
            results[f"ray_{actors}_workers"] = _timed(pool.embed_documents, chunks)
            results[f"ray_{actors}_nodes_used"] = pool.nodes
            pool.close()
        results["load_after"] = os.getloadavg()[0]
        subprocess.run([ray_cli, "stop", "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(results: dict, workers_per_node: int) -> None:
    print(f"interpreter: {results['python']} (Python {results['python_version']}), "
          f"{results['cpus']} CPUs, load average {results['load_before']:.1f} -> {results['load_after']:.1f}")
    print(f"{results['chunks']} stdlib chunks (~800 characters each), model loading excluded\n")
    print("| embedder | chunks/s |")
    print("|---|---:|")
    print(f"| local, 1 thread | {results['local_1_thread']:.1f} |")
    print(f"| local, default threads | {results['local_default_threads']:.1f} |")
    print(f"| Ray, 1 worker (1 actor) | {results['ray_1_workers']:.1f} |")
    print(f"| Ray, 2 workers (2 actors, 2 nodes) | {results['ray_2_workers']:.1f} |")
    per_worker = results["ray_1_workers"]
    overhead = 1 / per_worker - 1 / results["local_1_thread"]
    print(f"\nRay's cost per chunk, 1 worker against local 1 thread: {overhead * 1000:+.1f} ms "
          f"({results['local_1_thread'] / per_worker - 1:+.0%}; includes load noise)")
    speedup = results["ray_2_workers"] / per_worker
    print(f"\n2 workers / 1 worker: x{speedup:.2f} (linear would be x2.00; this machine has "
          f"{results['cpus']} cores shared with the driver and other work)")
    print(f"\nExtrapolation: {per_worker:.1f} chunks/s per worker x {workers_per_node} worker(s) per node, "
          "linear scaling\n")
    print("| nodes | " + " | ".join(f"{total:,} chunks" for total in TOTALS) + " |")
    print("|---:|" + "---:|" * len(TOTALS))
    for nodes in NODES:
        rate = per_worker * workers_per_node * nodes
        print(f"| {nodes} | " + " | ".join(_clock(total / rate) for total in TOTALS) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--workers-per-node", type=int, default=1,
                        help="for the extrapolation: workers (cores) per node (default 1, as measured)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)  # the namespaced half
    args = parser.parse_args()
    if args.inside:
        args.inside.write_text(json.dumps(inside(args)))
        return 0
    unshare = ["unshare", *([] if os.geteuid() == 0 else ["-r"]), "-n", "-p", "-f", "--mount-proc"]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "results.json"
        argv = [sys.executable, __file__, "--inside", str(out), "--chunks", str(args.chunks),
                "--embedder", args.embedder]
        proc = subprocess.run([*unshare, *argv], check=False)
        if proc.returncode != 0 or not out.is_file():
            print(f"the namespaced run failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        results = json.loads(out.read_text())
    report(results, args.workers_per_node)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
