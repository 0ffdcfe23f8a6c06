"""The only module that imports cidx: index a project, query it in-process, fingerprint the engine.

Keeping every cidx import here means a change of the daemon package's layout is
mended in one place; the rest of the benchmark never names a cidx module.

Queries run through ``Engine.query`` in this process (no daemon, no socket): the
benchmark measures ranking and engine latency, not the client round trip, which
``bench/run_all.py`` covers.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

MODES = ("semantic", "fts", "hybrid")
#: Request flags per benchmark mode (both legs = hybrid, fused by the engine).
MODE_FLAGS: dict[str, dict[str, bool]] = {
    "semantic": {"semantic": True, "fts": False},
    "fts": {"semantic": False, "fts": True},
    "hybrid": {"semantic": True, "fts": True},
}
#: Distributions whose version can change results (model weights, FTS, runtime).
_RESULT_DEPENDENCIES = ("cidx-model-minilm", "tantivy", "onnxruntime", "tokenizers",
                        "numpy")


def _first(*names: str) -> ModuleType:
    """Import the first module that exists (new layout first)."""
    for name in names:
        try:
            if importlib.util.find_spec(name.rpartition(".")[0] or name) is None:
                continue
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise ImportError(f"none of {names} can be imported: is the cidx daemon package installed?")


def _config() -> ModuleType:
    return _first("cidx_shared.config")


def _schema() -> ModuleType:
    return _first("cidx_shared.schema")


def _indexer() -> ModuleType:
    return _first("cidx_daemon.index.indexer")


def _engine_module() -> ModuleType:
    return _first("cidx_daemon.search.engine")


def _package_dirs() -> list[Path]:
    dirs = []
    for name in ("cidx_daemon", "cidx_shared"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(Path(p).resolve() for p in spec.submodule_search_locations)
    if not dirs:
        raise ImportError("the cidx daemon package is not importable")
    return dirs


#: What writes an index (walk, chunking, chunk table, generation format, full-text build and
#: analyzer, embedding). Everything else (ranking, fusion, filters, snippets) only reads one,
#: so changing it must not cost a re-index of every corpus.
_INDEX_WRITERS = ("cidx_daemon/index", "cidx_daemon/languages.py", "cidx_daemon/syntax",
                  "cidx_daemon/search/fts/analyzer.py", "cidx_daemon/search/fts/index.py",
                  "cidx_daemon/search/embedding", "cidx_shared/config.py")


def engine_fingerprint() -> str:
    """Hash of the index-writing source and of the versions of what it indexes with.

    An index is reused only while chunking, embedding and full-text building are the
    same (code and dependencies); ranking changes reuse it.
    """
    h = hashlib.sha256()
    for base in sorted(set(_package_dirs())):
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base.parent).as_posix()
            if (path.is_file() and path.suffix in (".py", ".json", ".txt") and "__pycache__" not in path.parts
                    and any(rel == w or rel.startswith(w + "/") for w in _INDEX_WRITERS)):
                h.update(rel.encode())
                h.update(b"\0")
                h.update(path.read_bytes())
                h.update(b"\0")
    for dist in _RESULT_DEPENDENCIES:
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "-"
        h.update(f"{dist}={version}\n".encode())
    h.update(f"python={sys.version_info[:2]}".encode())
    return h.hexdigest()


def engine_description() -> dict[str, str]:
    """Which engine was measured, for the results file."""
    out = {"packages": ", ".join(str(p) for p in _package_dirs())}
    for dist in ("cidx-daemon", *_RESULT_DEPENDENCIES):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def default_index_config() -> dict[str, Any]:
    """The ``index`` section a fresh ``cidx init`` writes (part of the cache key)."""
    return dict(_config().default_config()["index"])


def init_project(project_dir: Path, overrides: dict[str, Any]) -> Path:
    """``cidx init`` in ``project_dir`` plus ``section.key`` overrides; returns the config path."""
    cfgmod = _config()
    config_path = Path(project_dir) / ".code-indexer" / "config.json"
    if not config_path.exists():
        config_path = Path(cfgmod.init_project(Path(project_dir)))
    cfg = cfgmod.load_config(config_path)
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        cfg.setdefault(section, {})[key] = value
    cfgmod.save_config(config_path, cfg)
    return config_path


class _PrintProgress:
    """Indexer progress as a line every 15 s: enough to see a long embedding move."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.name = ""
        self.total: int | None = None
        self.done = 0
        self.last = time.monotonic()

    def phase(self, name: str, total: int | None) -> None:
        self.name, self.total, self.done = name, total, 0
        if total:
            print(f"    {self.label}: {name} ({total})", file=sys.stderr, flush=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.total and time.monotonic() - self.last > 15:
            self.last = time.monotonic()
            print(f"    {self.label}: {self.name} {self.done}/{self.total}", file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        print(f"    {self.label}: {message}", file=sys.stderr, flush=True)


def index(project_dir: Path, overrides: dict[str, Any] | None = None, label: str = "") -> tuple[Path, dict]:
    """Index ``project_dir`` from scratch; returns (config path, indexer stats)."""
    config_path = init_project(project_dir, overrides or {})
    progress = _PrintProgress(label or project_dir.name)
    stats = _indexer().index_project(config_path, clear=True, progress=progress)
    return config_path, stats.to_json()


def config_path_of(project_dir: Path) -> Path:
    return Path(project_dir) / ".code-indexer" / "config.json"


@dataclass
class Searched:
    """One query's answer: the results (engine's dicts), the engine's timings, the wall time."""

    results: list[dict[str, Any]]
    timing_ms: dict[str, float]
    wall_ms: float
    error: str | None


_ENGINES: dict[Path, Any] = {}


def _engine(config_path: Path) -> Any:
    key = Path(config_path).resolve()
    if key not in _ENGINES:
        _ENGINES[key] = _engine_module().Engine(key)
    return _ENGINES[key]


def close(config_path: Path) -> None:
    """Drop the cached engine of a project (frees its index; the model is reloaded per engine)."""
    _ENGINES.pop(Path(config_path).resolve(), None)


def request(query: str, mode: str, limit: int) -> dict[str, Any]:
    """A full, validated request dict for one benchmark query."""
    return _schema().validate_request({"query": query, "limit": limit, **MODE_FLAGS[mode]})


def search_timed(config_path: Path, query: str, mode: str, limit: int = 10) -> Searched:
    """Run one query in-process; an error document becomes ``error`` with no results."""
    eng = _engine(config_path)
    req = request(query, mode, limit)
    t0 = time.perf_counter()
    doc = eng.query(req)
    wall = (time.perf_counter() - t0) * 1000.0
    err = doc.get("error")
    if err:
        return Searched([], {}, wall, f"{err.get('code')}: {err.get('message')}")
    return Searched(list(doc.get("results") or []), dict(doc.get("timing_ms") or {}), wall, None)


def search(config_path: Path, query: str, mode: str, limit: int = 10) -> list[dict[str, Any]]:
    """The result dicts (``path``, ``start_line``, ``end_line``, ...) of one query."""
    return search_timed(config_path, query, mode, limit).results


def engine_timings(searched: Searched) -> dict[str, float]:
    """The engine's own per-stage timings of a query (embed, semantic, fts, total)."""
    return dict(searched.timing_ms)


def index_status(config_path: Path) -> dict[str, Any]:
    """Files, chunks, model of the live index."""
    st = _engine(config_path).status()
    return {k: st.get(k) for k in ("files", "chunks", "model", "embedder", "generation")}
