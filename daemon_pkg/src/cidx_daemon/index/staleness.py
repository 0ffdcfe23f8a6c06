"""How far the project has drifted from its index (for ``status``), judged by content.

A file whose size and mtime match its record is unchanged (no read). One whose
stat differs is read and hashed: only a different hash counts as changed, so a
``git checkout`` back to identical content, or a ``touch``, reports nothing.
"""

from __future__ import annotations

from pathlib import Path

from cidx_daemon.index import generation as gens
from cidx_daemon.index.walk import content_hash, read_source, walk_project, walk_settings
from cidx_shared import config as cfgmod


def stale_files(config_path: Path) -> dict[str, int]:
    cfg = cfgmod.load_config(config_path)
    gen, _ = gens.open_live(gens.index_dir(cfgmod.config_dir(config_path)), with_fts=False)
    indexed = gen.table.by_path() if gen else {}
    seen: set[str] = set()
    changed = added = 0
    for sf in walk_project(cfgmod.project_root(config_path), **walk_settings(cfg["index"])):
        seen.add(sf.rel_path)
        rec = indexed.get(sf.rel_path)
        if rec is None:
            added += 1
        elif rec.size != sf.size or rec.mtime_ns != sf.mtime_ns:
            try:
                text = read_source(sf.abs_path)
            except OSError:
                text = None
            if text is None or content_hash(text) != rec.hash:
                changed += 1
    return {"changed": changed, "added": added, "deleted": len(set(indexed) - seen)}
