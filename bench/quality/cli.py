"""cidx search-quality benchmark: corpora -> cached indexes -> queries -> scores -> results -> chart.

    python bench/quality/run.py [--quick] [--reindex] [--modes semantic,fts,hybrid]
                                [--repos flask,gin] [--set dev|stdlib|heldout|all]

Needs the daemon package importable (``.venv-dev/bin/python``, made by
``python3 build.py test`` or ``install``). Standard library + numpy at run time;
the chart is drawn by ``plot.py`` in a separate venv with matplotlib
(``~/.cache/cidx-bench/venv-plot``, created on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import cidx_adapter as cidx
from . import evaluate as ev
from . import report, stdlib_set
from .annotations import load_queries
from .corpora import CorpusSpec, CorpusUnavailable, count_files, load_specs, materialise, say, stamp_info
from .indexes import BuiltIndex, ensure_index
from .metric import mean, percentile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cidx-bench" / "quality"
DEFAULT_DEV_DATA = ROOT.parent / "shared" / "bench-data" / "semble-python"
QUICK_DEV = ("flask", "httpx", "requests", "starlette")
SETS = ("dev", "heldout", "stdlib", "stdlib-heldout")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="run.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--set", default="all", choices=(*SETS, "all"), help="which query set(s) (default all)")
    p.add_argument("--quick", action="store_true",
                   help=f"dev set on {', '.join(QUICK_DEV)} only, a small stdlib set, no held-out repos")
    p.add_argument("--reindex", action="store_true", help="rebuild the indexes even if cached")
    p.add_argument("--modes", default="semantic,fts,hybrid", help="comma-separated (default all three)")
    p.add_argument("--repos", default="", help="comma-separated repo names (dev and held-out sets)")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                   help="index config override, e.g. index.embedder=minilm-fp32 (JSON value or string); "
                        "part of the index cache key")
    p.add_argument("--dev-data", type=Path, default=DEFAULT_DEV_DATA, help=f"default {DEFAULT_DEV_DATA}")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"default {DEFAULT_CACHE}")
    p.add_argument("--out", type=Path, default=HERE / "results.json", help="results JSON (and .md beside it)")
    p.add_argument("--apt-install", action="store_true",
                   help="apt-get install the Debian packages held-out corpora come from (root)")
    p.add_argument("--latency-runs", type=int,
                   help="runs per query; its latency is their median (default 3; --quick 1)")
    p.add_argument("--landings", action="store_true", help="also print every query's target ranks")
    p.add_argument("--no-plot", action="store_true", help="do not draw quality.png")
    p.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                   help="only re-render the markdown (and chart) of an earlier results.json")
    args = p.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    bad = set(args.modes) - set(cidx.MODES)
    if bad or not args.modes:
        p.error(f"unknown modes {sorted(bad)}; known: {', '.join(cidx.MODES)}")
    args.repos = [r for r in args.repos.split(",") if r]
    unknown = set(args.repos) - {s.name for s in load_specs()}
    if unknown:
        p.error(f"unknown repos {sorted(unknown)}; known: {', '.join(s.name for s in load_specs())}")
    args.latency_runs = args.latency_runs or (1 if args.quick else 3)
    args.sets = list(SETS) if args.set == "all" else [args.set]
    if args.quick and args.set == "all":
        args.sets = ["dev", "stdlib"]
    args.overrides = dict(_override(item, p) for item in args.config)
    return args


def _override(item: str, p: argparse.ArgumentParser) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or "." not in key:
        p.error(f"--config wants SECTION.KEY=VALUE, got {item!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


# ----------------------------------------------------------------------------- sets


def _selected(specs: list[CorpusSpec], set_name: str, args: argparse.Namespace) -> list[CorpusSpec]:
    out = [s for s in specs if s.set == set_name]
    if args.repos:
        out = [s for s in out if s.name in args.repos]
    elif args.quick and set_name == "dev":
        out = [s for s in out if s.name in QUICK_DEV]
    return out


def _corpus_info(spec: CorpusSpec, built: BuiltIndex, cache: Path) -> dict[str, Any]:
    st = stamp_info(spec, cache)
    return {"language": spec.language, "source": spec.describe(), "installed": st.get("installed_version"),
            "note": spec.note, "files": built.stats.get("files") or count_files(built.project),
            "chunks": built.stats.get("chunks"), "index_s": round(built.index_s, 1),
            "built_now": built.built_now, "key": built.key}


def run_annotated_set(set_name: str, args: argparse.Namespace, engine_fp: str,
                      failures: list[str]) -> dict[str, Any] | None:
    """Dev or held-out: every selected repo, indexed (cached) and queried in every mode."""
    specs = _selected(load_specs(), set_name, args)
    if not specs:
        return None
    results: list[ev.QueryResult] = []
    corpora: dict[str, Any] = {}
    for spec in specs:
        ann = args.dev_data / f"{spec.name}.json" if set_name == "dev" else HERE / "data" / spec.annotations
        if not ann.exists():
            failures.append(f"{spec.name}: no annotations at {ann}")
            continue
        try:
            source = materialise(spec, args.cache_dir, apt_install=args.apt_install)
        except CorpusUnavailable as exc:
            failures.append(f"{spec.name}: corpus unavailable: {exc}")
            say(f"    skipped {spec.name}: {exc}")
            continue
        built = ensure_index(spec.name, source, args.cache_dir, engine_fp, args.overrides, args.reindex)
        queries = load_queries(ann, spec.name)
        say(f"==> {set_name}/{spec.name}: {len(queries)} queries x {len(args.modes)} modes")
        rows = ev.run_annotated(built.config_path, built.project, queries, args.modes, args.latency_runs)
        cidx.close(built.config_path)
        results += rows
        info = _corpus_info(spec, built, args.cache_dir)
        first = [r for r in rows if r.mode == args.modes[0]]
        present = sum(r.n_present for r in first)
        total = sum(len(r.targets) for r in first)
        info.update(queries=len(first), queries_scored=len(ev.scored(first)),
                    targets_present=f"{present}/{total}")
        corpora[spec.name] = info
    if not results:
        return None
    per_repo = ev.by_repo(results, args.modes)
    out: dict[str, Any] = {
        "corpora": corpora, "per_repo": per_repo, "overall": ev.overall(per_repo, args.modes),
        "by_category": ev.by_category(results, args.modes, "category"),
        "by_semble_category": ev.by_category(results, args.modes, "semble_category"),
        "overall_dedup": ev.overall(ev.by_repo(results, args.modes, "score_dedup"), args.modes),
        "queries": ev.to_json(results),
    }
    if set_name == "heldout":
        langs: dict[str, list[str]] = {}
        for repo in per_repo:
            langs.setdefault(corpora[repo]["language"], []).append(repo)
        out["by_language"] = {lang: {"repos": len(repos), **{m: mean(per_repo[r][m] for r in repos)
                                                              for m in args.modes}}
                              for lang, repos in langs.items()}
    return out


def run_stdlib_set(args: argparse.Namespace, engine_fp: str, heldout: bool = False) -> dict[str, Any]:
    label = "stdlib-heldout" if heldout else "stdlib"
    say(f"==> {label} docstring set: building the corpus")
    source, queries, summary = stdlib_set.ensure(args.cache_dir, quick=args.quick, heldout=heldout)
    name = source.name
    built = ensure_index(name, source, args.cache_dir, engine_fp, args.overrides, args.reindex)
    say(f"==> {label}: {len(queries)} queries x {len(args.modes)} modes")
    rows = ev.run_docstrings(built.config_path, queries, args.modes, args.latency_runs)
    cidx.close(built.config_path)
    corpus = {**summary, "chunks": built.stats.get("chunks")}
    info = {"language": "python", "source": f"Python {sys.version.split()[0]} stdlib (docstrings blanked)",
            "files": summary["files"], "chunks": built.stats.get("chunks"),
            "index_s": round(built.index_s, 1), "built_now": built.built_now, "key": built.key}
    return {"python": sys.version.split()[0], "corpus": corpus, "corpora": {name: info},
            "mrr": {m: mean(r.score for r in rows if r.mode == m) for m in args.modes},
            "hit_rate": {m: ev.hit_rate(rows, m) for m in args.modes}, "queries": ev.to_json(rows)}


def latency(sets: dict[str, Any], modes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for set_name, s in sets.items():
        out[set_name] = {}
        for m in modes:
            rows = [q for q in s["queries"] if q["mode"] == m and not q["error"]]
            if not rows:
                continue
            totals = [q["engine_ms"] for q in rows]
            embeds = [q["timing_ms"]["embed"] for q in rows if "embed" in q["timing_ms"]]
            out[set_name][m] = {"n": len(rows), "p50": percentile(totals, 50), "p95": percentile(totals, 95),
                                "embed_p50": percentile(embeds, 50) if embeds else None}
    return out


# ----------------------------------------------------------------------------- environment, chart


def environment(engine_fp: str) -> dict[str, Any]:
    def git(*cmd: str) -> str:
        proc = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(git("status", "--porcelain")), "python": sys.executable,
            "python_version": sys.version.split()[0], "cpus": os.cpu_count(),
            "engine_fingerprint": engine_fp, "engine": cidx.engine_description(),
            "model": cidx.default_index_config().get("embedder")}


def draw_chart(results_json: Path, png: Path, cache_root: Path) -> str | None:
    """quality.png via plot.py in a bench-only venv with matplotlib; an error message or None."""
    venv = cache_root.parent / "venv-plot"
    py = venv / "bin" / "python"
    try:
        if subprocess.run([str(py), "-c", "import matplotlib"], capture_output=True, check=False).returncode \
                if py.exists() else True:
            say(f"==> creating {venv} with matplotlib (once)")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
            subprocess.run([str(py), "-m", "pip", "install", "--quiet", "matplotlib"], check=True,
                           capture_output=True)
        proc = subprocess.run([str(py), str(HERE / "plot.py"), str(results_json), str(png)],
                              capture_output=True, text=True, check=False)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"chart: {exc}"
    if proc.returncode:
        return f"chart: plot.py exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    return None


def _complete_dev(doc: dict[str, Any]) -> bool:
    dev = doc["sets"].get("dev")
    return bool(dev) and len(dev["per_repo"]) == 8 and set(doc["args"]["modes"]) == set(cidx.MODES)


def finish(doc: dict[str, Any], args: argparse.Namespace, out: Path) -> int:
    md = report.render(doc)
    out.with_suffix(".md").write_text(md)
    print(report.render(doc, landings=args.landings))
    if not args.no_plot:
        if _complete_dev(doc):
            err = draw_chart(out, HERE / "quality.png", args.cache_dir)
            say(f"    {err}" if err else f"==> wrote {HERE / 'quality.png'}")
        else:
            say("    no chart: it needs the full dev set in all three modes")
    say(f"==> wrote {out} and {out.with_suffix('.md')}")
    return 1 if doc.get("failures") else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        doc = json.loads(args.render.read_text())
        return finish(doc, args, args.render)
    started = time.monotonic()
    try:
        engine_fp = cidx.engine_fingerprint()
    except ImportError as exc:
        say(f"error: {exc}\n(run with .venv-dev/bin/python after `python3 build.py test`, "
            "or .venv/bin/python after `build.py install`)")
        return 2
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    sets: dict[str, Any] = {}
    for set_name in args.sets:
        if set_name in ("stdlib", "stdlib-heldout"):
            if not args.repos:
                sets[set_name] = run_stdlib_set(args, engine_fp, heldout=set_name == "stdlib-heldout")
            continue
        got = run_annotated_set(set_name, args, engine_fp, failures)
        if got:
            sets[set_name] = got
    elapsed = time.monotonic() - started
    env = environment(engine_fp)
    env["load_end"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    doc = {"schema": 1, "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %z"), "elapsed_s": round(elapsed, 1),
           "args": {"sets": args.sets, "modes": args.modes, "repos": args.repos, "quick": args.quick,
                    "reindex": args.reindex, "overrides": args.overrides,
                    "latency_runs": args.latency_runs},
           "environment": env, "sets": sets, "latency": latency(sets, args.modes), "failures": failures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    return finish(doc, args, args.out)
