"""Portable generations: ``cidx export FILE`` and ``cidx import FILE``.

Why: embedding is the expensive step, and every developer of a team would pay it for the
same code. One build serves everyone: the live generation (chunk table, vectors, full-text
index) travels as one archive and becomes a generation of another copy of the project.
There the next ``cidx index`` (or the daemon's start-up rescan) finds the files unchanged
by content and embeds nothing; files that differ are re-chunked as usual.

The archive is a tar file:

* ``manifest.json`` first: format, the generation's meta (embedder, model, chunker,
  full-text format, counts), and the SHA-256 and size of every other member;
* then every file of the generation under ``generation/``.

Importing treats the archive as untrusted data: only regular files with plain relative
names are read (no links, no absolute paths, no ``..``), sizes are bounded by the
manifest and checked, every checksum must match, the embedder and chunker must be the
ones this project is configured with, and the unpacked generation must pass the same
verification as any other before it is published (aside, then renamed, then pointed to).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

from cidx_daemon.index import generation as gens
from cidx_daemon.index import signatures as sigs
from cidx_shared import config as cfgmod

ARCHIVE_FORMAT = 1
MANIFEST = "manifest.json"
PREFIX = "generation/"
_CHUNK = 1 << 20


class PortableError(RuntimeError):
    """An archive that cannot be written or imported; the message is one line for the user."""


def export_generation(config_path: Path, archive: Path) -> dict[str, Any]:
    """Write the live generation of the project to ``archive``; returns the manifest."""
    idx = gens.index_dir(cfgmod.config_dir(config_path))
    gen, warnings = gens.open_live(idx, with_fts=True)
    if gen is None:
        raise PortableError("nothing to export: " + (warnings[0] if warnings else "run 'cidx index' first"))
    if warnings:
        raise PortableError(f"the live generation is damaged ({warnings[0]}): run 'cidx index' first")
    files = sorted(p for p in gen.path.rglob("*") if p.is_file() and not p.name.startswith(".tantivy-"))
    members = {p.relative_to(gen.path).as_posix(): _digest(p) for p in files}
    manifest = {"format": ARCHIVE_FORMAT, "created_at": time.time(), "generation": gen.name,
                "meta": {k: v for k, v in gen.meta.items() if k != "sizes"},
                "files": {name: {"sha256": d, "size": s} for name, (d, s) in members.items()}}
    archive = Path(archive)
    partial = archive.with_name(archive.name + ".partial")
    try:
        with tarfile.open(partial, "w") as tar:
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
            for path in files:
                tar.add(path, arcname=PREFIX + path.relative_to(gen.path).as_posix(), recursive=False)
        partial.replace(archive)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise PortableError(f"cannot write {archive}: {exc.strerror or exc}") from None
    return manifest


def import_generation(config_path: Path, archive: Path) -> gens.Generation:
    """Verify ``archive`` and publish it as this project's live generation."""
    from cidx_daemon.index.indexer import CHUNKER_VERSION, expected_model

    cfg = cfgmod.load_config(config_path)
    cdir = cfgmod.config_dir(config_path)
    idx = gens.index_dir(cdir)
    idx.mkdir(mode=0o700, exist_ok=True)
    try:
        tar = tarfile.open(archive, "r:")  # noqa: SIM115 - closed by the with below
    except (OSError, tarfile.TarError) as exc:
        raise PortableError(f"{archive} is not a cidx export: {exc}") from None
    with tar, gens.index_lock(cdir, wait_s=30.0):
        manifest = _read_manifest(tar)
        meta = manifest["meta"]
        if meta.get("format") not in gens.READABLE_FORMATS:
            raise PortableError(f"the archive holds index format {meta.get('format')}, this cidx reads "
                                f"{gens.FORMAT_VERSION}")
        embedder = cfg["index"]["embedder"]
        if meta.get("embedder") != embedder:
            raise PortableError(f"the archive was embedded with {meta.get('embedder')!r}, this project uses "
                                f"{embedder!r} (index.embedder): its vectors would not match")
        if meta.get("embedded") and meta.get("model") != expected_model(embedder):
            raise PortableError(f"the archive holds vectors of {meta.get('model')}, {embedder!r} here is "
                                f"{expected_model(embedder)}: its vectors would not match")
        chunking = (meta.get("chunker"), meta.get("chunk_max_chars"))
        if chunking != (CHUNKER_VERSION, cfg["index"]["chunk_max_chars"]):
            raise PortableError(f"the archive was chunked by {chunking[0]} at {chunking[1]} characters; "
                                f"this cidx chunks by {CHUNKER_VERSION} at {cfg['index']['chunk_max_chars']}")
        name = gens.next_name(idx)
        staged = gens.staging_dir(idx, name)
        try:
            _extract(tar, manifest, staged)
            meta_hash = gens.write_meta(staged, {**meta, "generation": name, "run": name,
                                                 "lineage": gens.new_lineage(),
                                                 "imported_from": str(manifest.get("generation"))})
            try:
                gens.open_generation(staged, expected_hash=meta_hash)
            except gens.DamagedGeneration as exc:
                raise PortableError(f"the archive's generation does not verify: {exc}") from None
            final = gens.publish(idx, staged, name, meta_hash)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        gens.prune(idx)
    gen = gens.open_generation(final)
    seed_cache(gen)
    return gen


def seed_cache(gen: gens.Generation, cache: Any = None) -> int:
    """Put an imported generation's vectors into the user's embedding cache; returns how many.

    The team's build then serves more than this copy: the next branch, worktree or clone
    that holds the same chunks finds their vectors in the cache instead of embedding them.
    A cache that cannot be written is the cache's problem (it warns once), never the import's.
    """
    import numpy as np

    from cidx_daemon.index.embed_cache import default_cache, text_key
    from cidx_daemon.index.indexer import embedding_input

    model = gen.meta.get("model")
    if not model or not gen.n_embedded:
        return 0
    cache = cache or default_cache()
    if not cache.enabled:
        return 0
    rows = np.flatnonzero(np.asarray(gen.embedded))
    for start in range(0, len(rows), 512):
        batch = rows[start:start + 512]
        vectors = gen.vectors.take(batch)
        cache.put_many(model, [(text_key(embedding_input(gen.table, r)), vectors[i])
                               for i, r in enumerate(batch.tolist())])
    if gen.signatures is not None and len(gen.signatures):  # the functions' signatures too
        slots = np.asarray(gen.signatures.vectors)
        owned, starts, counts = np.unique(np.asarray(gen.signatures.owners), return_index=True,
                                          return_counts=True)
        for row, first, count in zip(owned.tolist(), starts.tolist(), counts.tolist(), strict=True):
            texts = sigs.texts_for(gen.table, row)
            if len(texts) == count:  # (always, unless the archive was made by another extractor)
                cache.put_many(model, [(text_key(t), slots[first + i]) for i, t in enumerate(texts)])
    return len(rows)


def _read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile() or first.size > 64 << 20:
        raise PortableError("not a cidx export: it does not start with its manifest")
    handle = tar.extractfile(first)
    try:
        manifest = json.loads(handle.read()) if handle else None
    except ValueError:
        manifest = None
    if (not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT
            or not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("meta"), dict)):
        raise PortableError("not a cidx export this version can read (bad or newer manifest)")
    return manifest


def _extract(tar: tarfile.TarFile, manifest: dict[str, Any], dest: Path) -> None:
    expected = manifest["files"]
    seen: set[str] = set()
    for member in tar:
        if member.name == MANIFEST and member is tar.members[0]:
            continue
        name = member.name[len(PREFIX):] if member.name.startswith(PREFIX) else None
        if name is None or not member.isfile() or not _plain(name) or name not in expected or name in seen:
            raise PortableError(f"unexpected member in the archive: {member.name!r}")
        want = expected[name]
        if member.size != want.get("size"):
            raise PortableError(f"{name}: {member.size} bytes, the manifest says {want.get('size')}")
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        source = tar.extractfile(member)
        assert source is not None
        with open(target, "wb") as out:
            while block := source.read(_CHUNK):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != want.get("sha256"):
            raise PortableError(f"{name}: checksum mismatch: the archive is damaged")
        seen.add(name)
    missing = sorted(set(expected) - seen)
    if missing:
        raise PortableError(f"the archive lacks {', '.join(missing[:3])}")


def _plain(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def _digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest(), path.stat().st_size
