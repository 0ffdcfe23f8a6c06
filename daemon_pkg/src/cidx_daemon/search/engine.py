"""The search engine: one request dict in, one result document out.

Used in-process by the standalone ``cidx-daemon query`` and, kept warm, by the
daemon's RPC service. Rules:

* ``query`` validates the request (the one place that does) and never raises for
  anything a user can cause (bad regex, unknown language, no index yet): it
  returns an error document, so a client never mistakes an application error
  for a crash and never restarts a healthy daemon.
* Before every query the generation pointer is ``stat``-ed; a new generation
  is opened (and verified) on the spot, so an index run in another process is
  visible at once and nothing stale is served. Loading swaps one reference;
  queries in flight keep the generation they started with.
* A damaged live generation is skipped for the previous good one, and the
  document says so in ``warnings``; with no usable generation the answer is an
  ``index_damaged`` error, never a traceback.
* The embedding model is loaded once, lazily, and only for semantic legs:
  a full-text query never pays for it (nor waits for it: the index and the
  model have separate locks). Semantic search covers the rows embedded so far;
  ``pending`` in the document counts the others.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from cidx_daemon.index import generation as gens
from cidx_daemon.languages import PROSE_AND_DATA
from cidx_daemon.search import filters, ranking
from cidx_shared import config as cfgmod
from cidx_shared.schema import (
    FUSION_WINDOW,
    RequestError,
    case_sensitive,
    make_error_document,
    make_result_document,
    request_mode,
    validate_request,
)

log = logging.getLogger("cidx.engine")
_MASK_CACHE = 32
#: Candidates each leg hands the ranking stage, at least: a definition or a file the
#: ranking lifts may sit well below the leg's own top ``limit``.
MIN_WINDOW = 50
#: onnxruntime threads of the query embedder. A query is a few dozen tokens: a second thread
#: costs more to wake and join than it saves (stdlib set, interleaved: query embedding 3.1-4.3
#: vs 3.5-4.9 ms, hybrid p50 lower in 5 of 6 rounds), and concurrent queries then run on
#: separate cores. Indexing keeps its own embedder with all threads (bulk batches gain from them).
QUERY_THREADS = 1


def row_mask(gen: gens.Generation, req: dict[str, Any]) -> np.ndarray | None:
    """The request's filters as a row mask, cached per generation (None: no filter)."""
    key = ("mask", filters.filter_key(req))
    masks = gen.cache
    if key not in masks:
        fmask = filters.file_mask(gen.table.files, req)
        mask = None if fmask is None else fmask[gen.table.file_index]
        if len(masks) >= _MASK_CACHE:
            masks.pop(next(iter(masks)))
        masks[key] = mask
    return masks[key]


def prose_rows(gen: gens.Generation) -> np.ndarray:
    """Per row: a prose or data file's (``languages.PROSE_AND_DATA``), where no name is
    defined; cached per generation."""
    key = "prose_rows"
    if key not in gen.cache:
        table = gen.table
        prose = np.array([f.language in PROSE_AND_DATA for f in table.files], dtype=bool)
        gen.cache[key] = prose[table.file_index] if len(prose) else np.zeros(len(table), dtype=bool)
    return gen.cache[key]


def definition_runs(gen: gens.Generation) -> list[tuple[int, int]]:
    """The rows whose text ranking scans for a name's definition, as row ranges, cached per
    generation: code the syntax chunker did not cut (its rows list their definitions in the
    symbol index), never prose or data."""
    key = "definition_runs"
    if key not in gen.cache:
        gen.cache[key] = gen.table.row_runs(~gen.table.symbol_index().syntax_rows & ~prose_rows(gen))
    return gen.cache[key]


class Engine:
    def __init__(self, config_path: Path, *, served_by: str = "standalone") -> None:
        self.config_path = Path(config_path)
        self.root = cfgmod.project_root(self.config_path)
        self.index_path = gens.index_dir(cfgmod.config_dir(self.config_path))
        self.served_by = served_by
        self._load_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._loaded: gens.Generation | None = None
        self._warnings: list[str] = []
        self._embedder: Any = None
        self._embedder_name: str | None = None
        self.last_used = time.monotonic()

    # ------------------------------------------------------------------ caches

    @property
    def generation(self) -> str | None:
        loaded = self._loaded
        return loaded.name if loaded else gens.current_name(self.index_path)

    def current(self) -> tuple[gens.Generation | None, list[str]]:
        """The live generation (reopened if the pointer moved since we last looked), and
        the warnings of opening it (a damaged one skipped for an older one)."""
        stamp = gens.pointer_stamp(self.index_path)
        loaded = self._loaded
        if stamp is not None and loaded is not None and loaded.stamp == stamp:
            return loaded, self._warnings
        with self._load_lock:
            loaded = self._loaded
            if stamp is not None and loaded is not None and loaded.stamp == stamp:
                return loaded, self._warnings
            gen, warnings = gens.open_live(self.index_path)
            for warning in warnings:
                log.warning("index: %s", warning)
            if gen is not None and self._loaded is not None and gen.name != self._loaded.name:
                log.info("reloaded index generation %s -> %s", self._loaded.name, gen.name)
            if gen is not None:
                gen.stamp = stamp
            self._loaded, self._warnings = gen, warnings
            return gen, warnings

    def embedder(self, name: str) -> Any:
        if self._embedder is not None and self._embedder_name == name:
            return self._embedder
        with self._model_lock:
            if self._embedder is None or self._embedder_name != name:
                from cidx_daemon.search.embedding import load_embedder

                t0 = time.perf_counter()
                self._embedder = load_embedder(name, threads=QUERY_THREADS)
                self._embedder_name = name
                log.info("loaded embedder %s in %.2fs", self._embedder.name, time.perf_counter() - t0)
            return self._embedder

    def warm(self) -> None:
        """Load the index and the model ahead of the first query (daemon start-up)."""
        loaded, _ = self.current()
        if loaded is not None and loaded.n_embedded:
            self.embedder(loaded.meta["embedder"])

    def clear_cache(self) -> None:
        with self._load_lock, self._model_lock:
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
        loaded, warnings = self.current()
        if loaded is None and warnings:
            return make_error_document("index_damaged", f"the index in {self.index_path} is damaged "
                                       f"({warnings[0]}): run 'cidx index --clear'")
        if loaded is None:
            return make_error_document(
                "no_index", f"no index yet in {self.root}: run 'cidx index' first")
        mode = request_mode(req)
        limit = req["limit"]
        ranked = not req["regex"]  # a regex lists what matches, most matching lines first
        window = max(limit * FUSION_WINDOW, MIN_WINDOW) if ranked else limit
        mask = row_mask(loaded, req)
        if mode != "fts" and loaded.n_embedded < len(loaded):
            embedded = np.asarray(loaded.embedded)
            sem_mask = embedded if mask is None else (mask & embedded)
        else:
            sem_mask = mask
        timing: dict[str, float] = {}
        legs: dict[str, list[tuple[int, float]]] = {}
        fts_hits: dict[int, Any] = {}
        leg_min = req["min_score"] if mode != "hybrid" else None

        if mode in ("semantic", "hybrid") and loaded.n_embedded:
            t = time.perf_counter()
            embedder = self.embedder(loaded.meta["embedder"])
            if embedder.name != loaded.meta.get("model"):
                # e.g. an index embedded when "minilm" meant fp32, read by a daemon where it means
                # int8: dot products across models rank nonsense, so refuse instead of mixing.
                from cidx_daemon.search.embedding import EmbedderError

                raise EmbedderError(f"the index holds vectors of {loaded.meta.get('model')}, the "
                                    f"'{loaded.meta['embedder']}' embedder is now {embedder.name}: run "
                                    "'cidx index' to re-embed (or query with --fts)")
            qvec = embedder.embed_query(req["query"])
            timing["embed"] = _ms(t)
            t = time.perf_counter()
            similarity = loaded.vectors.scores(qvec)
            if loaded.signatures is not None and not (
                    mode == "hybrid" and ranking.classify(req["query"]).kind == ranking.SYMBOL):
                # A chunk is as close as its closest function signature (index/signatures.py). Not
                # for an identifier in hybrid: the symbol index finds its definition there, and the
                # signatures of its methods (their header names the class) would crowd it
                # (held-out symbol queries 0.947 without, 0.928 with; semantic alone gains).
                similarity = loaded.signatures.best(similarity, qvec, sem_mask)
            legs["semantic"] = _top_k(similarity, sem_mask, window, leg_min)
            timing["semantic"] = _ms(t)
        if mode in ("fts", "hybrid"):
            t = time.perf_counter()
            hits = loaded.fts.search(
                req["query"], limit=window, case_sensitive=case_sensitive(req),
                edit_distance=req["edit_distance"], regex=req["regex"],
                snippet_lines=req["snippet_lines"], allowed_rows=mask, min_score=leg_min,
                highlight=False)
            legs["fts"] = [(h.row, float(h.score)) for h in hits]
            fts_hits = {h.row: h for h in hits}
            timing["fts"] = _ms(t)

        if ranked:
            t = time.perf_counter()
            table = loaded.table
            prose = prose_rows(loaded)
            ordered = ranking.rank(legs, query=req["query"], limit=limit, text_of=table.text,
                                   path_of=lambda row: table.file_of(row).path,
                                   find_definitions=lambda name: table.rows_containing(
                                       name, fold=False, within=definition_runs(loaded)),
                                   allowed=None if mask is None else lambda row: bool(mask[row]),
                                   prose=lambda row: bool(prose[row]),
                                   symbols=table.symbol_index(), params=ranking.DEFAULT)
            if mode == "hybrid" and req["min_score"] is not None:
                ordered = [r for r in ordered if r.score >= req["min_score"]]
            picked = [(r.row, r.score, r.ranks, r.scores) for r in ordered]
            timing["rank"] = _ms(t)
        else:
            leg = next(iter(legs.values()), [])
            picked = [(row, score, {mode: rank_no}, {mode: score})
                      for rank_no, (row, score) in enumerate(leg[:limit], 1)]
        t = time.perf_counter()
        results = [_result(loaded, row, score, ranks, scores, fts_hits.get(row), req)
                   for row, score, ranks, scores in picked]
        timing["results"] = _ms(t)
        timing["total"] = _ms(t0)
        doc = make_result_document(req, results, timing_ms=timing, generation=loaded.name,
                                   served_by=self.served_by)
        doc["root"] = str(self.root)  # result paths are relative to it
        pending = len(loaded) - loaded.n_embedded
        if pending:
            doc["pending"] = {"embed": pending}
        if warnings:
            doc["warnings"] = list(warnings)
        return doc

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """What the index holds, opened (and verified) afresh: never the daemon's cached view."""
        gen, warnings = gens.open_live(self.index_path)
        info: dict[str, Any] = {
            "project_root": str(self.root),
            "config": str(self.config_path),
            "generation": gen.name if gen else None,
            "cache": self.cache_state(),
        }
        if warnings:
            info["damage"] = warnings
        if gen is None:
            info["indexed"] = False
            return info
        meta = gen.meta
        pending = {"embed": len(gen) - gen.n_embedded}
        # Embedded chunks whose function texts are not (yet, or of an older version): semantic
        # search answers for them by the chunk's own vector until the next embedding pass.
        texts = gen.n_unsigned - pending["embed"]
        if texts > 0:
            pending["function_texts"] = texts
        info.update({
            "indexed": True,
            "files": meta["files"],
            "chunks": meta["chunks"],
            "embedded": gen.n_embedded,
            "pending": pending,
            "model": meta["model"],
            "embedder": meta["embedder"],
            "chunker": meta.get("chunker"),
            "indexed_at": meta["created_at"],
            "size_bytes": sum(meta.get("sizes", {}).values()),
            "last_index": meta.get("stats", {}),
        })
        return info


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


def _result(loaded: gens.Generation, row: int, score: float, ranks: dict[str, int],
            scores: dict[str, float], hit: Any, req: dict[str, Any]) -> dict[str, Any]:
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
            out["snippet"] = hit.snippet.to_json()
    if out["snippet"] is None:  # every result shows its best lines, whichever leg found it
        from cidx_daemon.search.snippets import snippet_for

        out["snippet"] = snippet_for(out["content"], start, req["query"], req["snippet_lines"]).to_json()
    return out


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)
