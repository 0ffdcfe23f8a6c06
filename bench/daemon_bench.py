"""Warm daemon RPC latency per mode, 1 and 8 concurrent clients (a benchmark, not a test).

Usage:
    python bench/daemon_bench.py [PROJECT_DIR] [--queries N] [--fresh]

PROJECT_DIR (default: $CIDX_BENCH_PROJECT, else the cwd) must already be
indexed. The daemon is started (detached) unless one already serves the
project; one we started is stopped at the end. ``--fresh`` also measures a
new connection per query, which is what each CLI invocation pays.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for sub in ("client_zipapp", "daemon_pkg/src"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

import rpyc  # noqa: E402

from cidx_daemon.server.socket_setup import connect_address  # noqa: E402
from cidx_shared import config as cfgmod  # noqa: E402
from cidx_shared.schema import make_envelope  # noqa: E402

QUERIES = {
    "semantic": ["parse the configuration file", "open a network connection", "error handling"],
    "fts": ["def", "config", "return"],
    "hybrid": ["load settings", "start server", "read file"],
}


def connect(config_path: Path) -> rpyc.Connection:
    address, dir_fd = connect_address(config_path.parent, cfgmod.SOCKET_NAME)
    try:
        return rpyc.utils.factory.unix_connect(address, config={"sync_request_timeout": 600})
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def request(config_path: Path, mode: str, text: str) -> str:
    """The envelope the client sends: protocol, project, request (see cidx_shared.schema)."""
    req = {"query": text, "fts": mode in ("fts", "hybrid"), "semantic": mode in ("semantic", "hybrid")}
    return json.dumps(make_envelope(str(config_path.parent.parent), req))


def run_clients(config_path: Path, mode: str, clients: int, per_client: int, fresh: bool) -> list[float]:
    """Latencies (ms) of every call across ``clients`` threads, each with its own connection."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[str] = []
    barrier = threading.Barrier(clients)

    def client(i: int) -> None:
        conn = None if fresh else connect(config_path)
        mine = []
        barrier.wait()
        for k in range(per_client):
            text = QUERIES[mode][(i + k) % len(QUERIES[mode])]
            t0 = time.perf_counter()
            if fresh:
                with connect(config_path) as c:
                    answer = c.root.query(request(config_path, mode, text))
            else:
                answer = conn.root.query(request(config_path, mode, text))
            mine.append((time.perf_counter() - t0) * 1000)
            doc = json.loads(answer)
            if doc.get("error"):
                errors.append(str(doc["error"]))
        if conn is not None:
            conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"  {len(errors)} error(s), first: {errors[0]}")
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("project", nargs="?", default=os.environ.get("CIDX_BENCH_PROJECT", os.getcwd()))
    ap.add_argument("--queries", type=int, default=40, help="queries per client per mode (default 40)")
    ap.add_argument("--fresh", action="store_true", help="also time connect+query per call")
    args = ap.parse_args()

    found = cfgmod.find_config(args.project)
    config_path = Path(found) if found else None
    if config_path is None:
        print(f"no .code-indexer/config.json at or above {args.project}", file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT / "daemon_pkg/src"), str(ROOT / "client_zipapp"), os.environ.get("PYTHONPATH", "")]))
    started = subprocess.run([sys.executable, "-m", "cidx_daemon", "serve", "--config", str(config_path),
                              "--detach"], env=env, capture_output=True, text=True, check=False)
    if started.returncode != 0:
        print(started.stdout + started.stderr, file=sys.stderr)
        return 1
    we_started = "started" in started.stdout
    with connect(config_path) as conn:
        status = json.loads(conn.root.status())
    pid = status["pid"]
    print(f"project  {status['project_root']}  ({status['engine'].get('files')} files, "
          f"{status['engine'].get('chunks')} chunks, generation {status['generation']})")
    print(f"daemon   pid {pid}  python {status.get('python')}  ({'started' if we_started else 'reused'})")
    print(f"bench    python {sys.executable}")
    try:
        for mode in QUERIES:  # warm every leg (model, index, fts searcher) before timing
            run_clients(config_path, mode, 1, 3, fresh=False)
        print(f"\n{'mode':<9}{'clients':>8}{'calls':>7}{'p50 ms':>9}{'p95 ms':>9}   kind")
        for fresh in (False, True) if args.fresh else (False,):
            for mode in QUERIES:
                for clients in (1, 8):
                    lat = run_clients(config_path, mode, clients, args.queries, fresh)
                    print(f"{mode:<9}{clients:>8}{len(lat):>7}{statistics.median(lat):>9.2f}"
                          f"{pct(lat, 0.95):>9.2f}   {'connect+query' if fresh else 'query'}")
        rss = rss_kb(pid)
        print(f"\ndaemon RSS: {rss / 1024:.1f} MiB" if rss else "\ndaemon RSS: unknown")
    finally:
        if we_started:
            with connect(config_path) as conn:
                conn.root.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
