"""The search engine: one request dict in, one result document out.

Used in-process by the standalone ``cidx-daemon query`` and, kept warm, by the
daemon's RPC service. Rules:

* ``query`` never raises for anything a user can cause (bad regex, unknown
  language, no index yet): it returns an error document, so a client never
  mistakes an application error for a crash and never restarts a healthy daemon.
* Before every query the generation pointer is ``stat``-ed; a new generation
  is loaded on the spot, so an index run in another process is visible at
  once and nothing stale is served. Loading swaps one reference; queries in
  flight keep the generation they started with (no lock held across a query).
* The embedding model is loaded once, lazily, and only for semantic legs:
  a full-text query never pays for it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cidx_daemon.index import generation as gens
from cidx_daemon.index.chunk_table import ChunkTable
from cidx_daemon.search import filters
from cidx_daemon.search.fusion import rrf
from cidx_shared import config as cfgmod
from cidx_shared.schema import (
    FUSION_WINDOW,
    RRF_K,
    RequestError,
    make_error_document,
    make_result_document,
    request_mode,
    validate_request,
)

log = logging.getLogger("cidx.engine")
_MASK_CACHE = 32


@dataclass
class Loaded:
    """One opened generation; immutable once built, shared by concurrent queries."""

    stamp: tuple[int, int] | None
    name: str
    path: Path
    meta: dict[str, Any]
    table: ChunkTable
    vectors: np.ndarray
    fts: Any
    masks: dict[tuple[Any, ...], np.ndarray | None] = field(default_factory=dict)

    def row_mask(self, req: dict[str, Any]) -> np.ndarray | None:
        key = filters.filter_key(req)
        if key not in self.masks:
            fmask = filters.file_mask(self.table.files, req)
            mask = None if fmask is None else fmask[self.table.file_index]
            if len(self.masks) >= _MASK_CACHE:
                self.masks.pop(next(iter(self.masks)))
            self.masks[key] = mask
        return self.masks[key]


class Engine:
    def __init__(self, config_path: Path, *, served_by: str = "standalone") -> None:
        self.config_path = Path(config_path)
        self.root = cfgmod.project_root(self.config_path)
        self.index_path = gens.index_dir(cfgmod.config_dir(self.config_path))
        self.served_by = served_by
        self._load_lock = threading.Lock()
        self._loaded: Loaded | None = None
        self._embedder: Any = None
        self._embedder_name: str | None = None
        self.last_used = time.monotonic()

    # ------------------------------------------------------------------ caches

    @property
    def generation(self) -> str | None:
        loaded = self._loaded
        return loaded.name if loaded else gens.current_name(self.index_path)

    def current(self) -> Loaded | None:
        """The live generation, reloaded if the pointer moved since we last looked."""
        stamp = gens.pointer_stamp(self.index_path)
        loaded = self._loaded
        if loaded is not None and loaded.stamp == stamp:
            return loaded
        with self._load_lock:
            loaded = self._loaded
            if loaded is not None and loaded.stamp == stamp:
                return loaded
            path = gens.current_path(self.index_path)
            if path is None:
                self._loaded = None
                return None
            loaded = _open_generation(path, stamp)
            if self._loaded is not None:
                log.info("reloaded index generation %s -> %s", self._loaded.name, loaded.name)
            self._loaded = loaded
            return loaded

    def embedder(self, name: str) -> Any:
        if self._embedder is not None and self._embedder_name == name:
            return self._embedder
        with self._load_lock:
            if self._embedder is None or self._embedder_name != name:
                from cidx_daemon.search.embedding import load_embedder

                t0 = time.perf_counter()
                self._embedder = load_embedder(name)
                self._embedder_name = name
                log.info("loaded embedder %s in %.2fs", self._embedder.name, time.perf_counter() - t0)
            return self._embedder

    def warm(self) -> None:
        """Load the index and the model ahead of the first query (daemon start-up)."""
        loaded = self.current()
        if loaded is not None and len(loaded.table):
            self.embedder(loaded.meta["embedder"])

    def clear_cache(self) -> None:
        with self._load_lock:
            self._loaded = None
            self._embedder = None
            self._embedder_name = None

    def cache_state(self) -> dict[str, Any]:
        return {
            "index_loaded": self._loaded is not None,
            "generation_loaded": self._loaded.name if self._loaded else None,
            "model_loaded": self._embedder is not None,
        }

    # ------------------------------------------------------------------ query

    def query(self, request: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.last_used = time.monotonic()
        try:
            req = validate_request(request)
        except RequestError as exc:
            return make_error_document("bad_request", str(exc))
        try:
            return self._query(req, t0)
        except RequestError as exc:
            return make_error_document("bad_request", str(exc))
        except Exception as exc:  # anything else is ours, not the user's: report, stay up
            from cidx_daemon.languages import UnknownLanguageError
            from cidx_daemon.search.embedding import EmbedderError
            from cidx_daemon.search.fts import FtsQueryError

            if isinstance(exc, (UnknownLanguageError, FtsQueryError)):
                return make_error_document("bad_request", str(exc))
            if isinstance(exc, EmbedderError):
                return make_error_document("model", str(exc))
            log.exception("query failed")
            return make_error_document("internal", f"{type(exc).__name__}: {exc}")

    def _query(self, req: dict[str, Any], t0: float) -> dict[str, Any]:
        loaded = self.current()
        if loaded is None:
            return make_error_document(
                "no_index", f"no index yet in {self.root}: run 'cidx index' first")
        mode = request_mode(req)
        limit = req["limit"]
        window = limit if mode != "hybrid" else limit * FUSION_WINDOW
        mask = loaded.row_mask(req)
        timing: dict[str, float] = {}
        legs: dict[str, list[tuple[int, float]]] = {}
        fts_hits: dict[int, Any] = {}
        leg_min = req["min_score"] if mode != "hybrid" else None

        if mode in ("semantic", "hybrid") and len(loaded.table):
            t = time.perf_counter()
            embedder = self.embedder(loaded.meta["embedder"])
            qvec = embedder.embed_query(req["query"])
            timing["embed"] = _ms(t)
            t = time.perf_counter()
            legs["semantic"] = _top_k(loaded.vectors @ qvec, mask, window, leg_min)
            timing["semantic"] = _ms(t)
        if mode in ("fts", "hybrid"):
            t = time.perf_counter()
            hits = loaded.fts.search(
                req["query"], limit=window, case_sensitive=req["case_sensitive"],
                edit_distance=req["edit_distance"], regex=req["regex"],
                snippet_lines=req["snippet_lines"], allowed_rows=mask, min_score=leg_min,
                highlight=False)
            legs["fts"] = [(h.row, float(h.score)) for h in hits]
            fts_hits = {h.row: h for h in hits}
            timing["fts"] = _ms(t)

        if mode == "hybrid":
            fused = rrf(legs, k=RRF_K)
            if req["min_score"] is not None:
                fused = [f for f in fused if f.score >= req["min_score"]]
            picked = [(f.row, f.score, f.ranks, f.scores) for f in fused[:limit]]
        else:
            leg = next(iter(legs.values()), [])
            picked = [(row, score, {mode: rank}, {mode: score})
                      for rank, (row, score) in enumerate(leg[:limit], 1)]
        results = [_result(loaded, row, score, ranks, scores, fts_hits.get(row))
                   for row, score, ranks, scores in picked]
        timing["total"] = _ms(t0)
        return make_result_document(req, results, timing_ms=timing, generation=loaded.name,
                                    served_by=self.served_by)

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        cur = gens.current_path(self.index_path)
        info: dict[str, Any] = {
            "project_root": str(self.root),
            "config": str(self.config_path),
            "generation": cur.name if cur else None,
            "cache": self.cache_state(),
        }
        if cur is None:
            info["indexed"] = False
            return info
        from cidx_daemon.index.indexer import load_meta

        meta = load_meta(cur)
        info.update({
            "indexed": True,
            "files": meta["files"],
            "chunks": meta["chunks"],
            "model": meta["model"],
            "embedder": meta["embedder"],
            "indexed_at": meta["created_at"],
            "size_bytes": _du(cur),
            "last_index": meta.get("stats", {}),
        })
        return info


def _open_generation(path: Path, stamp: tuple[int, int] | None) -> Loaded:
    from cidx_daemon.index.indexer import load_meta
    from cidx_daemon.search.fts import FtsIndex

    meta = load_meta(path)
    return Loaded(stamp=stamp, name=path.name, path=path, meta=meta, table=ChunkTable(path),
                  vectors=np.load(path / "vectors.npy", mmap_mode="r"),
                  fts=FtsIndex.open(path / "fts"))


def _top_k(scores: np.ndarray, mask: np.ndarray | None, k: int,
           min_score: float | None) -> list[tuple[int, float]]:
    """Exact top-k rows by cosine score, restricted to the mask, best first."""
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    n = min(k, scores.shape[0])
    if n <= 0:
        return []
    idx = np.argpartition(-scores, n - 1)[:n]
    order = sorted(idx.tolist(), key=lambda r: (-float(scores[r]), r))
    out = [(r, float(scores[r])) for r in order if np.isfinite(scores[r])]
    if min_score is not None:
        out = [(r, s) for r, s in out if s >= min_score]
    return out


def _result(loaded: Loaded, row: int, score: float, ranks: dict[str, int],
            scores: dict[str, float], hit: Any) -> dict[str, Any]:
    rec = loaded.table.file_of(row)
    start, end = loaded.table.lines(row)
    out: dict[str, Any] = {
        "path": rec.path,
        "start_line": start,
        "end_line": end,
        "language": rec.language,
        "score": round(float(score), 6),
        "ranks": ranks,
        "scores": {k: round(float(v), 6) for k, v in scores.items()},
        "content": loaded.table.text(row),
        "matches": [],
        "snippet": None,
    }
    if hit is not None:
        hit.highlighted()
        out["matches"] = [{"line": m.line, "text": m.text, "columns": [list(c) for c in m.columns]}
                          for m in hit.matches]
        if hit.snippet is not None:
            out["snippet"] = {"start_line": hit.snippet.start_line, "lines": list(hit.snippet.lines)}
    return out


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
