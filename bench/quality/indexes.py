"""Built indexes, cached by what determines their content: engine source, config, corpus.

Embedding runs at ~25 chunks/s here, so the dev set alone costs minutes to index;
a re-run with nothing changed must cost nothing. Each index lives in
``<cache>/indexes/<corpus>/<key>/project`` (a copy of the corpus plus its
``.code-indexer/``), where the key hashes

* the engine fingerprint (cidx_daemon's source tree and the versions of the model,
  tantivy, onnxruntime...: ``cidx_adapter.engine_fingerprint``),
* the index config (defaults plus ``--config`` overrides),
* the corpus content.

So switching branches back and forth reuses both indexes, and any change to
chunking or embedding code builds a new one. The newest few keys per corpus are
kept. ``--reindex`` rebuilds regardless.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cidx_adapter as cidx
from .corpora import say, tree_digest

KEEP_PER_CORPUS = 4
#: An index build unfinished after this long was interrupted (the largest takes ~5 min).
ABANDONED_S = 6 * 3600
READY = "ready.json"


@dataclass
class BuiltIndex:
    name: str
    key: str
    project: Path
    config_path: Path
    built_now: bool
    index_s: float  # seconds the indexer took (when it was built, maybe in an earlier run)
    stats: dict[str, Any]


def index_key(engine_fp: str, overrides: dict[str, Any], corpus_digest: str) -> str:
    cfg = {**{f"index.{k}": v for k, v in cidx.default_index_config().items()}, **overrides}
    doc = json.dumps({"engine": engine_fp, "config": cfg, "corpus": corpus_digest}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def ensure_index(name: str, source: Path, cache: Path, engine_fp: str, overrides: dict[str, Any],
                 reindex: bool = False) -> BuiltIndex:
    """The index of ``source`` for this engine and config, built if needed."""
    key = index_key(engine_fp, overrides, tree_digest(source))
    base = cache / "indexes" / name / key
    project = base / "project"
    ready = base / READY
    if ready.exists() and not reindex:
        info = json.loads(ready.read_text())
        ready.touch()  # most recently used: pruned last
        return BuiltIndex(name, key, project, cidx.config_path_of(project), False, info["index_s"],
                          info["stats"])
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    shutil.copytree(source, project, symlinks=False)
    say(f"==> indexing {name} (key {key})")
    t0 = time.monotonic()
    config_path, stats = cidx.index(project, overrides, label=name)
    elapsed = time.monotonic() - t0
    say(f"    {name}: {stats.get('files')} files, {stats.get('chunks')} chunks in {elapsed:.0f} s")
    ready.write_text(json.dumps({"index_s": round(elapsed, 2), "stats": stats, "overrides": overrides,
                                 "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1))
    _prune(cache / "indexes" / name)
    return BuiltIndex(name, key, project, config_path, True, elapsed, stats)


def _prune(corpus_dir: Path) -> None:
    """Keep the most recently used few keys of one corpus (each holds a full index)."""
    keys = [d for d in corpus_dir.iterdir() if d.is_dir()]
    ready = sorted((d for d in keys if (d / READY).exists()), key=lambda d: (d / READY).stat().st_mtime,
                   reverse=True)
    # an unfinished one may be another benchmark's build in progress: only abandoned ones go
    abandoned = [d for d in keys
                 if not (d / READY).exists() and time.time() - d.stat().st_mtime > ABANDONED_S]
    for stale in ready[KEEP_PER_CORPUS:] + abandoned:
        shutil.rmtree(stale, ignore_errors=True)
