"""The benchmarks themselves: each function measures one question and returns a `Section`.

Standard library only. Every comparison inside a section is measured
interleaved (see `harness.interleave`); comparisons *across* sections (the
normal vs the large corpus) are labelled as such.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness import (
    BenchError,
    Command,
    Result,
    Stats,
    disk_usage,
    interleave,
    now,
    proc_status_kb,
    ratio,
    run_once,
    shuffled,
)
from report import Section, cell, ms, table, times
from workspace import Install, Project, child_env, run_json, say

BENCH = Path(__file__).resolve().parent
PROBE = BENCH / "probe_client.py"
PROBE_PREFIX = "CIDX-PROBE "

#: Realistic questions (semantic and hybrid) and identifiers (full text), all answered by the stdlib.
QUERIES: dict[str, tuple[str, ...]] = {
    "fts": ("urlopen", "HTTPConnection", "json.loads", "TimeoutError", "zlib.compress"),
    "semantic": ("open a url with a timeout", "retry with backoff", "parse an http header",
                 "read a json file", "compress data with zlib"),
    "hybrid": ("open a url with a timeout", "retry with backoff", "parse an http header",
               "read a json file", "compress data with zlib"),
}
MODE_FLAGS: dict[str, tuple[str, ...]] = {
    "fts": ("--fts",), "semantic": ("--semantic",), "hybrid": ("--fts", "--semantic"),
}
DAEMON, STANDALONE, DIRECT, RG, GREP = "cidx (daemon)", "cidx (standalone)", "cidx-daemon query", "rg", "grep"


@dataclass
class Context:
    """What every section needs: the interpreter, the install, the projects, the baseline tools."""

    python: str
    install: Install
    project: Project
    twin: Project
    rg: str | None
    grep: str | None


# --------------------------------------------------------------------------- helpers


def probe_parser(expect: str | None) -> Callable[[bytes, bytes, float], dict[str, float]]:
    """Turn the probe's marks into durations (ms) since the parent spawned it.

    `expect` ("daemon") makes a query served by anything else an error: a
    silent standalone fallback would otherwise pass for a slow daemon.
    """

    def parse(stdout: bytes, stderr: bytes, spawned: float) -> dict[str, float]:
        lines = [ln for ln in stderr.decode("utf-8", "replace").splitlines() if ln.startswith(PROBE_PREFIX)]
        if not lines:
            raise BenchError("the probe printed no marks")
        marks = json.loads(lines[-1][len(PROBE_PREFIX):])
        if expect and marks.get("served_by") not in (None, expect):
            raise BenchError(f"query served by {marks.get('served_by')!r}, expected {expect!r}")
        out = {"python_start": (marks["python_start"] - spawned) * 1000.0,
               "end": (marks["end"] - spawned) * 1000.0}
        if "first_send" in marks:
            out["first_send"] = (marks["first_send"] - spawned) * 1000.0
            out["rpc"] = (marks["last_recv"] - marks["first_send"]) * 1000.0
            out["reply"] = (marks["last_recv"] - spawned) * 1000.0
        if marks.get("engine_ms") is not None:
            out["engine"] = float(marks["engine_ms"])
        return out

    return parse


def count_lines(stdout: bytes, _stderr: bytes, _spawned: float) -> dict[str, float]:
    """Matches printed by rg/grep: shown next to cidx's (at most --limit) results."""
    return {"lines": float(stdout.count(b"\n"))}


def query_argv(tool: Path, mode: str, text: str) -> list[str | os.PathLike[str]]:
    return [tool, "query", text, *MODE_FLAGS[mode]]


def result_count(project: Project, mode: str, text: str, expect: str) -> int:
    """One JSON query up front: checks who serves it and how many results it finds."""
    doc = run_json([*query_argv(project.install.cidx, mode, text), "--json"], project.root)
    assert isinstance(doc, dict)
    if doc.get("error"):
        raise BenchError(f"cidx query {text!r} ({mode}): {doc['error']}")
    if doc.get("served_by") != expect:
        raise BenchError(f"cidx query {text!r} ({mode}) served by {doc.get('served_by')!r}, not {expect}")
    return len(doc.get("results") or [])


def search_tools(ctx: Context, text: str, cwd: Path) -> list[Command]:
    """rg and grep as a user would type them, literal (-F) like the identifier they look for.

    rg skips hidden directories (the index) by itself; grep must be told.
    """
    tools = []
    if ctx.rg:
        tools.append(Command(RG, [ctx.rg, "-n", "-F", text, "."], cwd, child_env(), (0, 1), count_lines))
    if ctx.grep:
        tools.append(Command(GREP, [ctx.grep, "-rn", "-F", "--exclude-dir=.code-indexer", text, "."], cwd,
                             child_env(), (0, 1), count_lines))
    return tools


def paired_difference(a: Result, b: Result) -> Stats:
    """Per-round a − b: both ran in the same round, so the load they saw was the same."""
    return Stats([x - y for x, y in zip(a.wall_ms, b.wall_ms, strict=True)])


def pooled(results: Sequence[Result]) -> Stats:
    return Stats([v for r in results for v in r.wall_ms])


# --------------------------------------------------------------------------- startup and breakdown


def startup(ctx: Context, runs: int) -> tuple[Section, list[Result]]:
    """The floor (a bare interpreter) against the client's start, measured interleaved."""
    section = Section("startup", "Startup (process start → exit; probe: → first RPC byte sent)")
    py, cidx, cwd, env = ctx.python, ctx.install.cidx, ctx.project.root, child_env()
    probe = [py, "-I", "-S", PROBE, cidx]
    commands = [
        Command("python -I -S -c pass", [py, "-I", "-S", "-c", "pass"], cwd, env),
        Command("cidx --version", [cidx, "--version"], cwd, env),
        Command("probe: cidx --version", [*probe, "--version"], cwd, env, parse=probe_parser(None)),
        Command("probe: cidx query --fts", [*probe, "query", QUERIES["fts"][0], "--fts"], cwd, env,
                parse=probe_parser("daemon")),
        Command("probe: cidx query --semantic", [*probe, "query", QUERIES["semantic"][0], "--semantic"],
                cwd, env, parse=probe_parser("daemon")),
    ]
    results = interleave(commands, runs, warmup=2)
    floor, version, probe_version, probe_fts, _ = results
    rows = [
        ["python -I -S -c pass (floor)", cell(floor.stats()), "×1"],
        ["cidx --version", cell(version.stats()), times(ratio(version.stats().median, floor.stats().median))],
        ["cidx query --fts: start → first RPC byte sent", cell(probe_fts.stats("first_send")),
         times(ratio(probe_fts.stats("first_send").median, floor.stats().median))],
        ["cidx query --fts: start → exit (daemon, warm)", cell(probe_fts.stats()),
         times(ratio(probe_fts.stats().median, floor.stats().median))],
    ]
    section.tables.append(table(["what", "median ms (min–max)", "vs floor"], rows))
    overhead = paired_difference(probe_version, version)
    section.notes += [
        f"{floor.stats().n} runs each, interleaved; interpreter {py} (-I -S, as the zipapp's launcher).",
        f"cidx is {cidx}, started by its /bin/sh launcher: `{ctx.install.shebang()}`.",
        "The first-RPC time comes from bench/probe_client.py (a socket subclass records the first "
        "send; the client is not modified). What the probe adds, probe --version − cidx --version "
        f"paired per round: {ms(overhead.median)} ms (min {ms(overhead.min)}, "
        f"max {ms(overhead.max)}).",
    ]
    section.data = {"rows": {r.command.name: _result_json(r) for r in results},
                    "probe_overhead": overhead.to_json()}
    return section.finish(), results


def breakdown(startup_results: list[Result]) -> Section:
    """Where a warm query's time goes, from the probe runs of the startup section."""
    section = Section("breakdown", "Where time goes in a warm query (daemon mode, probe runs)")
    version = startup_results[1]
    fts, sem = startup_results[3], startup_results[4]

    def after_reply(r: Result) -> Stats:
        return Stats([w - reply for w, reply in zip(r.wall_ms, r.extra["reply"], strict=True)])

    def transport(r: Result) -> Stats:
        return Stats([rpc - eng for rpc, eng in zip(r.extra["rpc"], r.extra["engine"], strict=True)])

    rows = [
        ["client start (cidx --version, process start → exit)", cell(version.stats()), cell(version.stats())],
        ["process start → first RPC byte sent", cell(fts.stats("first_send")), cell(sem.stats("first_send"))],
        ["connect + RPC (first send → reply received)", cell(fts.stats("rpc")), cell(sem.stats("rpc"))],
        ["  of which engine search (timing_ms.total)", cell(fts.stats("engine")), cell(sem.stats("engine"))],
        ["  of which transport and daemon dispatch", cell(transport(fts)), cell(transport(sem))],
        ["render + exit (reply → process gone)", cell(after_reply(fts)), cell(after_reply(sem))],
        ["total (process start → exit)", cell(fts.stats()), cell(sem.stats())],
    ]
    headers = ["step", f"FTS `{QUERIES['fts'][0]}`", f"semantic `{QUERIES['semantic'][0]}`"]
    section.tables.append(table(headers, rows))
    section.notes.append("Medians of each step taken separately, so they need not add up exactly to the "
                         "total; 'render + exit' includes closing the connection and leaving the process.")
    section.data = {name: {k: Stats(v).to_json() for k, v in r.extra.items()}
                    for name, r in (("fts", fts), ("semantic", sem))}
    return section.finish()


def _result_json(result: Result) -> dict[str, object]:
    out: dict[str, object] = Stats(result.wall_ms).to_json()
    for key, values in result.extra.items():
        out[key] = Stats(values).to_json()
    return out


# --------------------------------------------------------------------------- warm queries


def warm_queries(ctx: Context, runs: int, modes: Sequence[str]) -> tuple[Section, dict[str, dict]]:
    """End-to-end queries: daemon, standalone, cidx-daemon direct, rg, grep, interleaved per query."""
    section = Section("warm_queries", "Warm queries end to end (process start → output printed)")
    by_mode: dict[str, dict] = {}
    hits: dict[str, int] = {}
    for mode in modes:
        say(f"    {mode} queries")
        by_mode[mode] = {}
        for text in QUERIES[mode]:
            by_mode[mode][text], hits[f"{mode}: {text}"] = _one_query(ctx, mode, text, runs)
        section.tables.append(f"**{mode}**\n\n" + _mode_table(by_mode[mode]))
    section.notes += [
        f"{runs} interleaved runs per command per query (plus one warm-up round), median (min–max) ms; "
        "×N = median / the daemon-mode median of the same query; 'all queries' pools every run.",
        "cidx prints its default human output (10 results, snippets); rg/grep print every matching line "
        "(`rg -n -F Q .`, `grep -rn -F --exclude-dir=.code-indexer Q .`): the counts are in results.json.",
        "standalone = the client with the daemon disabled (a copy of the project, so the daemon of the "
        "original stays warm); cidx-daemon query = the engine's own one-shot CLI, no client.",
    ]
    if not ctx.rg:
        section.notes.append("rg (ripgrep) not found: its column is empty (apt-get install ripgrep).")
    section.data = {mode: {text: {tool: _result_json(r) for tool, r in per_tool.items()}
                           for text, per_tool in queries.items()}
                    for mode, queries in by_mode.items()}
    section.data["cidx_result_counts"] = hits
    return section.finish(), by_mode


def _one_query(ctx: Context, mode: str, text: str, runs: int) -> tuple[dict[str, Result], int]:
    env = child_env()
    hits = result_count(ctx.project, mode, text, "daemon")
    result_count(ctx.twin, mode, text, "standalone")
    commands = [
        Command(DAEMON, query_argv(ctx.install.cidx, mode, text), ctx.project.root, env),
        Command(STANDALONE, query_argv(ctx.install.cidx, mode, text), ctx.twin.root, env),
        Command(DIRECT, query_argv(ctx.install.cidx_daemon, mode, text), ctx.twin.root, env),
    ]
    if mode == "fts":
        commands += search_tools(ctx, text, ctx.project.root)
    return {r.command.name: r for r in interleave(commands, runs)}, hits


def _mode_table(queries: dict[str, dict[str, Result]]) -> str:
    tools = list(next(iter(queries.values())))
    rows = []
    for text, per_tool in queries.items():
        ref = per_tool[DAEMON].stats().median
        row = [f"`{text}`"]
        for tool in tools:
            s = per_tool[tool].stats()
            row.append(cell(s) + ("" if tool == DAEMON else f" {times(ratio(s.median, ref))}"))
        rows.append(row)
    ref_all = pooled([q[DAEMON] for q in queries.values()]).median
    all_row = ["all queries"]
    for tool in tools:
        s = pooled([q[tool] for q in queries.values()])
        all_row.append(cell(s) + ("" if tool == DAEMON else f" {times(ratio(s.median, ref_all))}"))
    rows.append(all_row)
    return table(["query", *tools], rows)


def fallback(by_mode: dict[str, dict[str, dict[str, Result]]]) -> Section:
    """The client's cost in standalone mode: cidx query (daemon off) − cidx-daemon query, paired per run."""
    section = Section("fallback", "Fallback overhead (daemon disabled): cidx query vs cidx-daemon query")
    rows, data = [], {}
    for mode, queries in by_mode.items():
        standalone = pooled([q[STANDALONE] for q in queries.values()])
        direct = pooled([q[DIRECT] for q in queries.values()])
        diffs = [paired_difference(q[STANDALONE], q[DIRECT]).samples_ms for q in queries.values()]
        diff = Stats([d for per_query in diffs for d in per_query])
        rows.append([mode, cell(standalone), cell(direct), cell(diff), times(ratio(standalone.median,
                                                                                  direct.median))])
        data[mode] = {"standalone": standalone.to_json(), "direct": direct.to_json(),
                      "overhead": diff.to_json()}
    section.tables.append(table(["mode", "cidx query (standalone)", "cidx-daemon query", "client overhead",
                                 "ratio"], rows))
    section.notes.append("Same runs as the warm-query table (interleaved); overhead = per-run difference, "
                         "pooled over the queries of each mode.")
    section.data = data
    return section.finish()


# --------------------------------------------------------------------------- concurrency


def concurrency(ctx: Context, levels: Sequence[int], count: int, rounds: int) -> Section:
    """N clients at once, each a full `cidx query --fts` process: throughput and tail latency."""
    section = Section("concurrency", f"Concurrency: {count} warm FTS queries per round, N parallel clients")
    env = child_env()
    texts = QUERIES["fts"]
    commands = [Command(f"fts {t}", query_argv(ctx.install.cidx, "fts", t), ctx.project.root, env)
                for t in texts]
    latencies: dict[int, list[float]] = {n: [] for n in levels}
    throughput: dict[int, list[float]] = {n: [] for n in levels}
    run_burst(commands, max(levels), len(commands))  # warm-up
    for round_no in range(rounds):
        for n in shuffled(levels, round_no):
            wall_s, lat = run_burst(commands, n, count)
            latencies[n] += lat
            throughput[n].append(count / wall_s)
    base = statistics.median(throughput[levels[0]])
    rows, data = [], {}
    for n in levels:
        tput, lat = Stats(throughput[n]), Stats(latencies[n])
        rows.append([str(n), f"{tput.median:.1f} ({tput.min:.1f}–{tput.max:.1f})",
                     times(ratio(tput.median, base)), ms(lat.median), ms(lat.percentile(0.95)), ms(lat.max)])
        data[str(n)] = {"throughput_qps": {"median": round(tput.median, 2), "min": round(tput.min, 2),
                                           "max": round(tput.max, 2), "n": tput.n}, "latency": lat.to_json()}
    headers = ["clients", "queries/s (min–max over rounds)", "vs 1 client", "latency p50 ms", "p95 ms",
               "max ms"]
    section.tables.append(table(headers, rows))
    section.notes.append(f"{rounds} rounds, levels in a shuffled order per round; each query is a whole "
                         f"`cidx query Q --fts` process; {os.cpu_count()} CPUs.")
    section.data = data
    return section.finish()


def run_burst(commands: Sequence[Command], clients: int, count: int) -> tuple[float, list[float]]:
    """`count` queries through `clients` worker threads, each spawning one process at a time."""
    started = now()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        lat = list(pool.map(lambda i: run_once(commands[i % len(commands)])[0], range(count)))
    return now() - started, lat


# --------------------------------------------------------------------------- large corpus


def large_corpus(ctx: Context, large: Project, record: dict, runs: int,
                 normal: dict[str, dict[str, Result]] | None) -> Section:
    """grep/rg against cidx FTS on a ≥100 MB tree (its index has zero vectors: FTS only)."""
    section = Section("large", f"Larger corpus: {large.corpus.label}, {large.corpus.size_mb:.0f} MB, "
                               f"{large.corpus.files} files (FTS only)")
    pid = large.daemon_start()
    try:
        per_query = {}
        for text in QUERIES["fts"]:
            result_count(large, "fts", text, "daemon")
            commands = [Command(DAEMON, query_argv(ctx.install.cidx, "fts", text), large.root, child_env()),
                        *search_tools(ctx, text, large.root)]
            per_query[text] = {r.command.name: r for r in interleave(commands, runs)}
        rss = proc_status_kb(pid, "VmRSS")
    finally:
        large.daemon_stop()
    section.tables.append(_mode_table(per_query))
    if normal:
        section.tables.append(_scaling_table(ctx, normal, per_query, large))
    stats = record["stats"]
    timings = stats["timings_s"]
    section.notes += [
        "`cidx-daemon index` cannot skip embedding (hours at this size), so this index was built by "
        "bench/fts_only_index.py: the real indexer with an embedder that returns zero vectors. The FTS "
        "index is the real one; semantic search on it would be meaningless and is not measured.",
        f"FTS-only index build: {stats['chunks']} chunks, walk+chunk {secs(timings['scan'])}, "
        f"FTS {secs(timings.get('fts_first', 0.0))}, total {secs(timings['total'])}"
        + (" (cached from an earlier run)" if record.get("cached") else "") + "; daemon RSS "
        + (f"{rss / 1024:.0f} MiB" if rss else "unknown") + " after these queries.",
        f"{runs} interleaved runs per command per query.",
    ]
    section.data = {"corpus": large.corpus.to_json(), "index": record, "daemon_rss_kb": rss,
                    "queries": {t: {k: _result_json(r) for k, r in q.items()} for t, q in per_query.items()}}
    return section.finish()


def _scaling_table(ctx: Context, normal: dict[str, dict[str, Result]], large: dict[str, dict[str, Result]],
                   large_project: Project) -> str:
    rows = []
    for label, queries, project in (("normal", normal, ctx.project), ("large", large, large_project)):
        row = [f"{label}: {project.corpus.size_mb:.0f} MB"]
        for tool in (DAEMON, RG, GREP):
            present = [q[tool] for q in queries.values() if tool in q]
            row.append(cell(pooled(present)) if present else "–")
        rows.append(row)
    return ("**scaling** (all FTS queries pooled; the two rows come from different interleaved blocks)\n\n"
            + table(["corpus", DAEMON, RG, GREP], rows))


# --------------------------------------------------------------------------- indexing


def indexing(ctx: Context, record: dict, runs: int, rss: dict[str, int | None]) -> Section:
    """Full index split, incremental re-index after one file changes, index size, daemon RSS."""
    section = Section("indexing", "Indexing")
    project = ctx.project
    stats = record["stats"]
    timings = stats["timings_s"]
    chunks = stats["chunks"]
    full_rows = [
        ["files / chunks", f"{stats['files']} / {chunks}"],
        ["walk + chunk (scan)", secs(timings["scan"])],
        ["full-text index, published first", secs(timings.get("fts_first", 0.0))],
        ["embed", f"{secs(timings.get('embed', 0.0))} "
                  f"({chunks / max(timings.get('embed', 0.0), 1e-9):.1f} chunks/s)"],
        ["total (indexer) / wall (process)",
         f"{timings['total']:.1f} s / {record['wall_s']:.1f} s "
         f"({chunks / max(timings['total'], 1e-9):.1f} chunks/s overall)"],
    ]
    cached = ", cached from an earlier run" if record.get("cached") else ""
    section.tables.append(f"**full index** (n=1{cached})\n\n" + table(["step", "time"], full_rows))
    incremental = incremental_runs(project, runs)
    inc_rows = []
    for kind, results in incremental.items():
        wall = Stats([r["wall_ms"] for r in results])
        inc_rows.append([kind, cell(wall), ms(statistics.median(r["indexer_ms"] for r in results)),
                         str(sorted({r["embedded"] for r in results}))])
    section.tables.append("**incremental re-index** (`cidx-daemon index --json`, one file)\n\n" + table(
        ["change", "wall ms (min–max)", "indexer total ms", "chunks embedded"], inc_rows))
    allocated, apparent = disk_usage(project.root / ".code-indexer" / "index")
    current = project.status().get("size_bytes") or 0
    size_rows = [["index dir (du)", f"{allocated / 1e6:.1f} MB"],
                 ["current generation",
                  f"{current / 1e6:.1f} MB ({current / max(chunks, 1):.0f} bytes/chunk)"],
                 ["corpus", f"{project.corpus.size_mb:.1f} MB, {project.corpus.files} files"]]
    size_rows += [[f"daemon {key} after the query benchmarks", f"{kb / 1024:.0f} MiB" if kb else "unknown"]
                  for key, kb in rss.items()]
    section.tables.append(table(["size", "value"], size_rows))
    section.notes.append(f"{runs} round(s) of touch / edit / revert, in that order: touch changes only the "
                         "mtime (hash unchanged: nothing re-embedded); edit appends a comment line; revert "
                         "restores the file. Every run rewrites the whole FTS index of the new generation.")
    section.data = {"full": record, "incremental": incremental,
                    "size": {"index_dir_du_bytes": allocated, "index_dir_apparent_bytes": apparent,
                             "current_generation_bytes": current}, "daemon": rss}
    return section.finish()


def secs(value: float) -> str:
    """Seconds, or milliseconds below one second (a small corpus walks in a few ms)."""
    return f"{value:.1f} s" if value >= 1 else f"{value * 1000:.0f} ms"


def pick_file(root: Path) -> Path:
    """A mid-sized source file: the change a developer makes between two queries."""
    files = sorted((p for p in root.rglob("*.py") if ".code-indexer" not in p.parts),
                   key=lambda p: (p.stat().st_size, str(p)))
    if not files:
        files = sorted(p for p in root.rglob("*") if p.is_file() and ".code-indexer" not in p.parts)
    if not files:
        raise BenchError(f"no files in {root}")
    return files[len(files) // 2]


def incremental_runs(project: Project, runs: int) -> dict[str, list[dict]]:
    target = pick_file(project.root)
    original = target.read_bytes()
    argv = [project.install.cidx_daemon, "index", "--json"]
    results: dict[str, list[dict]] = {"touch": [], "edit": [], "revert": []}
    changes = {
        "touch": lambda: os.utime(target),
        "edit": lambda: target.write_bytes(original + b"\n# edited by the cidx benchmark\n"),
        "revert": lambda: target.write_bytes(original),
    }
    try:
        for _ in range(runs):
            for kind, change in changes.items():
                change()
                results[kind].append(_timed_index(argv, project.root))
    finally:
        if target.read_bytes() != original:
            target.write_bytes(original)
            subprocess.run([os.fspath(a) for a in argv], cwd=project.root, env=child_env(),
                           capture_output=True, check=False)
    for entries in results.values():
        for entry in entries:
            entry["file"] = str(target.relative_to(project.root))
    return results


def _timed_index(argv: list, cwd: Path) -> dict:
    started = now()
    proc = subprocess.run([os.fspath(a) for a in argv], cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=False)
    wall_ms = (now() - started) * 1000.0
    if proc.returncode:
        raise BenchError(f"incremental index failed: {proc.stderr.strip()[-300:]}")
    stats = json.loads(proc.stdout)
    return {"wall_ms": round(wall_ms, 3), "indexer_ms": stats["timings_s"]["total"] * 1000.0,
            "embedded": stats["embedded"], "changed_files": stats["changed_files"],
            "timings_s": stats["timings_s"]}
