"""cidx benchmark suite: how fast, compared with what, in one run.

    python3 build.py bench [-- OPTIONS]        or        python3 bench/run_all.py [OPTIONS]

Installs cidx with ``build.py install`` into a cache directory, copies a
corpus (this interpreter's standard library, or ``--corpus PATH``), indexes it
once (cached until the corpus or the package version changes), then measures:
startup against a bare interpreter, warm end-to-end queries in daemon and
standalone mode against rg and grep, the client's fallback overhead,
concurrent clients, a >=100 MB corpus (full text only), and indexing
(full, incremental, size, daemon memory). Prints markdown tables and writes
``bench/results.json`` (plus the tables as ``results.md``).

Standard library only, so any python3 can run it; everything benchmarked runs
in subprocesses, always with the real interpreter binary (never a pyenv shim).
``--quick`` uses five stdlib packages (~1.3 MB): minutes instead of the full
run's ~25 min (most of it embedding the stdlib once; later runs reuse it).
Timings are noisy on a shared machine: every comparison is interleaved, every
figure is a median with min/max, and the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sections as sec
import workspace as ws
from harness import BenchError, cpu_model, load_average, proc_status_kb
from report import Section

T = TypeVar("T")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="run_all.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="small corpus and fewer runs (minutes)")
    p.add_argument("--corpus", type=Path, help="benchmark this tree (copied) instead of the stdlib")
    p.add_argument("--runs", type=int, help="startup runs per command (default 30; --quick 20)")
    p.add_argument("--query-runs", type=int, help="runs per command per query (default 7; --quick 3)")
    p.add_argument("--index-runs", type=int, default=3, help="incremental re-index rounds (default 3)")
    p.add_argument("--concurrency", default="1,4,16", help="parallel client counts (default 1,4,16)")
    p.add_argument("--concurrency-queries", type=int,
                   help="queries per level per round (default 96; --quick 48)")
    p.add_argument("--large-mb", type=float, default=100.0, help="size of the large corpus (default 100)")
    p.add_argument("--skip-large", action="store_true", help="no large-corpus section")
    p.add_argument("--modes", default="fts,semantic,hybrid", help="query modes to benchmark")
    p.add_argument("--reindex", action="store_true", help="ignore the cached index: index from scratch")
    p.add_argument("--out", type=Path, default=ws.ROOT / "bench" / "results.json", help="results JSON")
    p.add_argument("--cache-dir", type=Path, default=ws.DEFAULT_CACHE, help=f"default {ws.DEFAULT_CACHE}")
    p.add_argument("--python", help="interpreter for the floor and the probe (default: this one, resolved)")
    p.add_argument("--install-dir", type=Path,
                   help="use the cidx + cidx-daemon in this bin dir instead of `build.py install`")
    p.add_argument("--only", choices=["quality"],
                   help="quality: run the search-quality benchmark instead (bench/quality/run.py; the "
                        "arguments after it go there, e.g. --only quality --quick)")
    args = p.parse_args(argv)
    args.runs = args.runs or (20 if args.quick else 30)
    args.query_runs = args.query_runs or (3 if args.quick else 7)
    args.concurrency_queries = args.concurrency_queries or (48 if args.quick else 96)
    args.levels = [int(n) for n in args.concurrency.split(",")]
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = set(args.modes) - set(sec.QUERIES)
    if unknown:
        p.error(f"unknown modes {sorted(unknown)}; known: {', '.join(sec.QUERIES)}")
    if args.runs < 1 or args.query_runs < 1:
        p.error("--runs and --query-runs must be positive")
    return args


def main_corpus(args: argparse.Namespace, version: str) -> ws.Corpus:
    if args.corpus:
        base, files = ws.custom_sources(args.corpus)
        label = "custom-" + "".join(c if c.isalnum() else "_" for c in base.name)
    else:
        base, files = ws.stdlib_sources(args.quick)
        label = "stdlib-quick" if args.quick else "stdlib"
    if not files:
        raise BenchError(f"the corpus {base} has no files")
    return ws.materialise(label, base, files, args.cache_dir, version)


def git_state() -> dict[str, object]:
    """Which source was measured (read-only git commands)."""

    def git(*cmd: str) -> str:
        proc = subprocess.run(["git", *cmd], cwd=ws.ROOT, capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def environment(args: argparse.Namespace, ctx: sec.Context, version: str) -> dict[str, object]:
    py_version = subprocess.run([ctx.python, "-I", "-S", "-c", "import sys; print(sys.version.split()[0])"],
                                capture_output=True, text=True, check=True).stdout.strip()
    return {
        "python": ctx.python, "python_version": py_version, "orchestrator_python": sys.executable,
        "cidx_daemon_version": version, "cidx": str(ctx.install.cidx), "cidx_shebang": ctx.install.shebang(),
        "cpus": os.cpu_count(), "cpu": cpu_model(), "platform": platform.platform(),
        "rg": ctx.rg, "grep": ctx.grep, "corpus": ctx.project.corpus.to_json(), "quick": args.quick,
        "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE"), **git_state(),
    }


def attempt(title: str, failures: list[str], fn: Callable[[], T]) -> T | None:
    """One section failing (a crashed daemon, a missing tool) must not cost the others."""
    ws.say(f"==> {title}")
    started = time.monotonic()
    try:
        value = fn()
    except (BenchError, OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
        failures.append(f"{title}: {type(exc).__name__}: {exc}")
        ws.say(f"    FAILED: {exc}")
        return None
    ws.say(f"    done in {time.monotonic() - started:.0f} s")
    return value


def daemon_memory(project: ws.Project) -> dict[str, int | None]:
    pid = project.daemon_pid()
    return {"VmRSS": proc_status_kb(pid, "VmRSS"), "VmHWM": proc_status_kb(pid, "VmHWM")}


def run(args: argparse.Namespace) -> tuple[dict[str, object], list[Section], list[str]]:
    """Set up, then every section in an order that keeps them from disturbing each other."""
    python = ws.real_python(args.python)
    ws.say(f"==> benchmark interpreter: {python}")
    install = ws.ensure_install(python, args.cache_dir, args.install_dir)
    version = install.version()
    project = ws.Project(main_corpus(args, version), install)
    record = ws.ensure_indexed(project, args.reindex, [install.cidx_daemon, "index", "--json", "--clear"])
    twin = ws.standalone_twin(project)
    ctx = sec.Context(python, install, project, twin, shutil.which("rg"), shutil.which("grep"))
    env = environment(args, ctx, version)
    ws.say(f"    {project.corpus.label}: {project.corpus.files} files, {project.corpus.size_mb:.1f} MB; "
           f"daemon {version}; rg {ctx.rg or 'missing'}")
    failures: list[str] = []
    sections: list[Section] = []
    rss: dict[str, int | None] = {}
    normal_fts = None
    project.daemon_start()
    try:
        started = attempt("startup", failures, lambda: sec.startup(ctx, args.runs))
        if started:
            sections += [started[0], sec.breakdown(started[1])]
        warm = attempt("warm queries", failures, lambda: sec.warm_queries(ctx, args.query_runs, args.modes))
        if warm:
            sections += [warm[0], sec.fallback(warm[1])]
            normal_fts = warm[1].get("fts")
        conc = attempt("concurrency", failures, lambda: sec.concurrency(
            ctx, args.levels, args.concurrency_queries, rounds=3))
        sections += [conc] if conc else []
        rss = attempt("daemon memory", failures, lambda: daemon_memory(project)) or {}
    finally:
        project.daemon_stop()
    if not args.skip_large:
        large = attempt("large corpus", failures, lambda: run_large(args, ctx, normal_fts))
        sections += [large] if large else []
    indexed = attempt("indexing", failures, lambda: sec.indexing(ctx, record, args.index_runs, rss))
    sections += [indexed] if indexed else []
    return env, sections, failures


def run_large(args: argparse.Namespace, ctx: sec.Context, normal_fts: dict | None) -> Section:
    """The large tree is copies of the whole (test-free) stdlib, whatever the main corpus is."""
    base, files = ws.stdlib_sources(quick=False)
    source = ws.materialise("stdlib", base, files, args.cache_dir, ctx.install.version())
    large = ws.Project(ws.replicate(source, args.large_mb, args.cache_dir), ctx.install)
    helper = [ctx.install.venv_python, sec.BENCH / "fts_only_index.py", "--clear"]
    record = ws.ensure_indexed(large, args.reindex, helper)
    return sec.large_corpus(ctx, large, record, args.query_runs, normal_fts)


def render(env: dict[str, object], sections: list[Section], failures: list[str], elapsed: float) -> str:
    load = load_average()
    head = [
        "# cidx benchmark",
        f"- interpreter: `{env['python']}` (Python {env['python_version']}); orchestrator `{sys.executable}`",
        f"- {env['cidx_daemon_version']}, client `{env['cidx']}` (`{env['cidx_shebang']}`)",
        f"- corpus: {env['corpus']['label']}, {env['corpus']['files']} files, "  # type: ignore[index]
        f"{env['corpus']['size_mb']} MB; commit {env.get('commit')}"  # type: ignore[index]
        + (" (uncommitted changes)" if env.get("dirty") else ""),
        f"- machine: {env['cpus']} CPUs ({env['cpu']}); load average now {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}; total run {elapsed / 60:.1f} min",
    ]
    if env.get("pythondontwritebytecode"):
        head.append("- PYTHONDONTWRITEBYTECODE is set: harmless here (the zipapp ships .pyc, the venv is "
                    "precompiled by pip, -I ignores it)")
    body = [s.markdown() for s in sections]
    tail = ["## Failures", *(f"- {f}" for f in failures)] if failures else []
    return "\n\n".join(["\n".join(head), *body, "\n".join(tail)]).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv):
        if arg == "--only=quality" or (arg == "--only" and argv[i + 1:i + 2] == ["quality"]):
            # A separate benchmark with its own options, given the other arguments. It imports the
            # daemon package, so it runs in this interpreter (build.py bench uses the development venv).
            rest = argv[:i] + argv[i + (1 if "=" in arg else 2):]
            quality = Path(__file__).resolve().parent / "quality" / "run.py"
            return subprocess.run([sys.executable, str(quality), *rest], check=False).returncode
    args = parse_args(argv)
    started = time.monotonic()
    try:
        env, sections, failures = run(args)
    except BenchError as exc:
        ws.say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        ws.say("interrupted")
        return 130
    elapsed = time.monotonic() - started
    text = render(env, sections, failures, elapsed)
    print(text)
    doc = {"schema": 1, "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "elapsed_s": round(elapsed, 1),
           "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
           "environment": env, "sections": {s.key: s.to_json() for s in sections}, "failures": failures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(text)
    ws.say(f"==> wrote {args.out} and {args.out.with_suffix('.md')}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
