"""How far the project has drifted from its index (for ``status``).

Compares the walk (size + mtime only: no file is read) with the live
generation's file records, so it is cheap enough to run on every ``status``.
"""

from __future__ import annotations

from pathlib import Path

from cidx_daemon.index import generation as gens
from cidx_daemon.index.chunk_table import ChunkTable
from cidx_daemon.index.walk import walk_project
from cidx_shared import config as cfgmod


def stale_files(config_path: Path) -> dict[str, int]:
    cfg = cfgmod.load_config(config_path)
    cur = gens.current_path(gens.index_dir(cfgmod.config_dir(config_path)))
    indexed = ChunkTable(cur).by_path() if cur else {}
    seen: set[str] = set()
    changed = added = 0
    for sf in walk_project(cfgmod.project_root(config_path),
                           max_file_bytes=cfg["index"]["max_file_bytes"],
                           extra_ignores=cfg["index"]["exclude"]):
        seen.add(sf.rel_path)
        rec = indexed.get(sf.rel_path)
        if rec is None:
            added += 1
        elif rec.size != sf.size or rec.mtime_ns != sf.mtime_ns:
            changed += 1
    return {"changed": changed, "added": added, "deleted": len(set(indexed) - seen)}
