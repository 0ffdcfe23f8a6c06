"""Index generations on disk: build aside, switch a pointer, never half-written.

Theory of operation
-------------------
``.code-indexer/index/`` holds immutable generation directories
(``gen-000007/``) and one pointer file, ``CURRENT``, naming the live one.

* An indexer builds ``gen-NNNNNN.tmp-<pid>/`` completely, renames it to
  ``gen-NNNNNN`` and only then replaces ``CURRENT`` (write aside + rename).
  ``kill -9`` at any moment therefore leaves ``CURRENT`` naming a complete
  generation; the leftover ``.tmp-*`` directory is removed by the next indexer.
* Readers (the daemon, a standalone query) resolve ``CURRENT`` once per query;
  a ``stat`` of it (inode + mtime) is the cheap staleness check the daemon
  makes before every query.
* Two indexers are kept apart by an advisory ``flock`` on
  ``.code-indexer/index.lock``; the holder writes its pid and start time into
  the file so the loser can say who holds it.
* The previous generation is kept (a reader may still have it open); older
  ones are deleted after a successful switch.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POINTER = "CURRENT"
PREFIX = "gen-"
KEEP_GENERATIONS = 2


class IndexLockedError(RuntimeError):
    """Another indexer holds the lock."""


def index_dir(config_dir: Path) -> Path:
    return Path(config_dir) / "index"


def current_name(idx_dir: Path) -> str | None:
    try:
        name = (Path(idx_dir) / POINTER).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not name.startswith(PREFIX) or "/" in name or not (Path(idx_dir) / name).is_dir():
        return None
    return name


def current_path(idx_dir: Path) -> Path | None:
    name = current_name(idx_dir)
    return Path(idx_dir) / name if name else None


def pointer_stamp(idx_dir: Path) -> tuple[int, int] | None:
    """(inode, mtime_ns) of CURRENT: changes whenever a new generation is switched in."""
    try:
        st = os.stat(Path(idx_dir) / POINTER)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _generation_number(name: str) -> int:
    try:
        return int(name[len(PREFIX):].split(".", 1)[0])
    except ValueError:
        return -1


def next_name(idx_dir: Path) -> str:
    numbers = [_generation_number(p.name) for p in Path(idx_dir).glob(f"{PREFIX}*")]
    return f"{PREFIX}{max(numbers, default=0) + 1:06d}"


def staging_dir(idx_dir: Path, name: str) -> Path:
    path = Path(idx_dir) / f"{name}.tmp-{os.getpid()}"
    path.mkdir(mode=0o700, parents=True)
    return path


def publish(idx_dir: Path, staged: Path, name: str) -> Path:
    """Rename the finished staging dir into place, then switch CURRENT to it."""
    final = Path(idx_dir) / name
    os.replace(staged, final)
    _fsync_dir(idx_dir)
    tmp = Path(idx_dir) / f".{POINTER}.{os.getpid()}.tmp"
    tmp.write_text(name + "\n", encoding="utf-8")
    os.replace(tmp, Path(idx_dir) / POINTER)
    _fsync_dir(idx_dir)
    return final


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(idx_dir: Path, keep: int = KEEP_GENERATIONS) -> list[str]:
    """Remove leftovers of killed builds and generations older than the last ``keep``."""
    removed: list[str] = []
    current = current_name(idx_dir)
    gens = sorted((p for p in Path(idx_dir).glob(f"{PREFIX}*") if p.is_dir()),
                  key=lambda p: _generation_number(p.name))
    complete = [p for p in gens if ".tmp-" not in p.name]
    for p in gens:
        if ".tmp-" in p.name:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    for p in complete[:-keep] if len(complete) > keep else []:
        if p.name != current:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


@contextmanager
def index_lock(config_dir: Path) -> Iterator[None]:
    """Hold the indexer lock; raise IndexLockedError naming the holder if taken."""
    path = Path(config_dir) / "index.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexLockedError(f"another indexer is running ({_describe_holder(fd)})") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _describe_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        started = time.strftime("%H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {info['pid']} on {info.get('host', '?')}, started {started}"
    except (ValueError, KeyError, TypeError, OSError):
        return "holder unknown"
