"""The ranking stage's cost, this checkout against a git ref, interleaved in one run.

    .venv-dev/bin/python -m bench.quality.rank_speed [--ref f6833c5] [--queries 300] [--rounds 5]

Engine latency on this shared machine moves by 10-40% between runs, more than a ranking
change costs, so figures from two runs cannot be compared. This captures the inputs of
``ranking.rank`` for the stdlib set's hybrid queries once (legs, table callbacks), loads
``search/ranking.py`` as it is at ``--ref`` beside the current one, and times both on the
same inputs, alternating round by round: the medians and their ratio are the cost of the
change. Caches keyed by the query are emptied before each round, as a daemon meets each
query once. Needs the stdlib set's index (``run.py`` builds it).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.quality import cidx_adapter as cidx  # noqa: E402
from bench.quality.cli import DEFAULT_CACHE  # noqa: E402
from bench.quality.indexes import ensure_index  # noqa: E402
from bench.quality.stdlib_set import ensure  # noqa: E402

RANKING = "daemon_pkg/src/cidx_daemon/search/ranking.py"


def _module_at(ref: str, directory: Path) -> Any:
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{RANKING}"], check=True,
                            capture_output=True, text=True).stdout
    path = directory / "ranking_at_ref.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("cidx_daemon.search.ranking_at_ref", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


#: Caches keyed by the query (or compiled from it): a daemon meets each query once, so a
#: round that found them warm from the last would time what no user sees.
_PER_QUERY_CACHES = ("classify", "_spelling_words", "_spelling_vocabulary", "_path_match", "_definition_re")


def _forget_queries(module: Any) -> None:
    for name in _PER_QUERY_CACHES:
        cached = getattr(module, name, None)
        if cached is not None and hasattr(cached, "cache_clear"):
            cached.cache_clear()
    re.purge()  # patterns compiled from a query's words


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", default="HEAD", help="git ref of the baseline (default HEAD)")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    from cidx_daemon.search import ranking

    source, queries, _ = ensure(DEFAULT_CACHE, quick=False)
    built = ensure_index("stdlib-doc", source, DEFAULT_CACHE, cidx.engine_fingerprint(), {})
    captured: list[tuple[Any, dict[str, Any]]] = []
    current = ranking.rank

    def capture(legs: Any, **kw: Any) -> Any:
        captured.append((legs, kw))
        return current(legs, **kw)

    ranking.rank = capture
    for q in queries[: args.queries]:
        cidx.search(built.config_path, q.text, "hybrid", 10)
    ranking.rank = current
    with tempfile.TemporaryDirectory() as tmp:
        baseline = _module_at(args.ref, Path(tmp))
        times: dict[str, list[float]] = {args.ref: [], "checkout": []}
        for _ in range(args.rounds):
            for name, module in ((args.ref, baseline), ("checkout", ranking)):
                _forget_queries(module)
                started = time.perf_counter()
                accepted = inspect.signature(module.rank).parameters  # a newer argument is left out
                for legs, kw in captured:
                    module.rank(legs, **{k: v for k, v in kw.items() if k in accepted and k != "params"},
                                params=module.DEFAULT)
                times[name].append((time.perf_counter() - started) / len(captured) * 1000)
    print(f"interpreter: {sys.executable}; {len(captured)} stdlib-set hybrid queries, {args.rounds} rounds")
    for name, values in times.items():
        print(f"{name:>10}: rank() {statistics.median(values):.3f} ms/query median "
              f"({min(values):.3f}-{max(values):.3f})")
    ratio = statistics.median(times["checkout"]) / statistics.median(times[args.ref])
    print(f"checkout / {args.ref}: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
