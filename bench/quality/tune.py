"""Measure ranking variants fast: every query of a set against already-built indexes, in-process.

    .venv-dev/bin/python -m bench.quality.tune [--set dev|heldout|both|stdlib|stdlib-heldout|stdlib-both] \
        [--modes ...] [--param definition_boost=2.5 --param saturation=0.6 ...] [--per-query]

The full benchmark (``run.py``) also times queries, digs 100 deep and writes reports; a
ranking experiment needs only NDCG@10 per repo, category and mode, in seconds. Indexes
must exist already (``run.py`` builds and caches them). Each ``--param`` sets a field of
``cidx_daemon.search.ranking.RankingParams`` for this process only; ``weights.symbol=0.2,0.8``
sets one query kind's (semantic, fts) weights; any other tuple field takes comma-separated
floats. Development aid only: the reported figures come from ``run.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.quality import cidx_adapter as cidx
from bench.quality import evaluate as ev
from bench.quality.annotations import load_queries
from bench.quality.cli import DEFAULT_CACHE, DEFAULT_DEV_DATA, HERE
from bench.quality.corpora import load_specs, materialise
from bench.quality.indexes import ensure_index
from bench.quality.metric import mean, ndcg_at_k, reciprocal_rank, target_rank
from bench.quality.stdlib_set import ensure as ensure_stdlib_set


def _set_params(assignments: list[str]) -> Any:
    from cidx_daemon.search import ranking

    params = ranking.DEFAULT
    for item in assignments:
        key, _, value = item.partition("=")
        if key.startswith("weights."):
            kind = key.split(".", 1)[1]
            sem, fts = (float(v) for v in value.split(","))
            params = dataclasses.replace(params, weights={**params.weights, kind: (sem, fts)})
        else:
            current = getattr(params, key)
            parsed = tuple(float(v) for v in value.split(",")) if isinstance(current, tuple) \
                else type(current)(value)
            params = dataclasses.replace(params, **{key: parsed})
    ranking.DEFAULT = params  # the engine reads it at every query
    return params


def evaluate(set_name: str, modes: list[str], per_query: bool) -> dict[str, dict[str, float]]:
    engine_fp = cidx.engine_fingerprint()
    specs = [s for s in load_specs() if s.set == set_name]
    by_repo: dict[str, dict[str, float]] = {}
    cats: dict[str, dict[str, list[float]]] = {}
    for spec in specs:
        data = HERE / "data" / spec.annotations
        ann = DEFAULT_DEV_DATA / f"{spec.name}.json" if set_name == "dev" else data
        source = materialise(spec, DEFAULT_CACHE)
        built = ensure_index(spec.name, source, DEFAULT_CACHE, engine_fp, {})
        presence = ev.PresenceIndex(built.project)
        scores: dict[str, list[float]] = {m: [] for m in modes}
        for q in load_queries(ann, spec.name):
            present = [t for t in q.targets if presence.present(t)]
            if not present:
                continue
            for mode in modes:
                hits = ev._hits(cidx.search(built.config_path, q.text, mode, ev.K))
                score = ndcg_at_k([target_rank(hits, t) for t in present], len(present), ev.K)
                scores[mode].append(score)
                cats.setdefault(q.semble_category, {}).setdefault(mode, []).append(score)
                if per_query:
                    print(f"{spec.name:10} {mode:8} {score:.3f}  {q.text}")
        cidx.close(built.config_path)
        by_repo[spec.name] = {m: mean(v) for m, v in scores.items()}
    print(f"\n{set_name}: NDCG@10")
    print(f"{'repo':12}" + "".join(f"{m:>10}" for m in modes))
    for repo, row in by_repo.items():
        print(f"{repo:12}" + "".join(f"{row[m]:10.3f}" for m in modes))
    overall = {m: mean(row[m] for row in by_repo.values()) for m in modes}
    print(f"{'MEAN':12}" + "".join(f"{overall[m]:10.3f}" for m in modes))
    for cat, row in sorted(cats.items()):
        print(f"  {cat:10}" + "".join(f"{mean(row[m]):10.3f}" for m in modes))
    return {"overall": overall, **by_repo}


def evaluate_stdlib(modes: list[str], per_query: bool, heldout: bool = False) -> dict[str, dict[str, float]]:
    """The stdlib docstring -> function set (or its held-out twin): MRR@10 per mode (built here
    if run.py has not)."""
    source, queries, _ = ensure_stdlib_set(DEFAULT_CACHE, quick=False, heldout=heldout)
    built = ensure_index(source.name, source, DEFAULT_CACHE, cidx.engine_fingerprint(), {})
    ranks: dict[str, list[float]] = {m: [] for m in modes}
    for q in queries:
        for mode in modes:
            rank = target_rank(ev._hits(cidx.search(built.config_path, q.text, mode, ev.K)), q.target)
            ranks[mode].append(reciprocal_rank(rank, ev.K))
            if per_query:
                print(f"{source.name} {mode:8} {rank or '-':>3}  {q.qualname}: {q.text}")
    cidx.close(built.config_path)
    overall = {m: mean(v) for m, v in ranks.items()}
    print(f"\n{source.name} ({len(queries)} queries): MRR@10")
    print("".join(f"{m:>10}" for m in modes))
    print("".join(f"{overall[m]:10.3f}" for m in modes))
    return {"overall": overall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", default="dev",
                   choices=("dev", "heldout", "both", "stdlib", "stdlib-heldout", "stdlib-both"))
    p.add_argument("--modes", nargs="+", default=["hybrid", "semantic", "fts"])
    p.add_argument("--param", action="append", default=[])
    p.add_argument("--per-query", action="store_true")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    params = _set_params(args.param)
    print(f"params: {params}")
    t0 = time.monotonic()
    out = {}
    groups = {"both": ("dev", "heldout"), "stdlib-both": ("stdlib", "stdlib-heldout")}
    for set_name in groups.get(args.set, (args.set,)):
        if set_name.startswith("stdlib"):
            out[set_name] = evaluate_stdlib(args.modes, args.per_query, heldout=set_name == "stdlib-heldout")
        else:
            out[set_name] = evaluate(set_name, args.modes, args.per_query)
    print(f"({time.monotonic() - t0:.0f}s)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
