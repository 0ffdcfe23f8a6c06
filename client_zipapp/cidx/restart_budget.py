"""The persisted daemon restart budget: ``.code-indexer/daemon-restarts.json``.

Theory of operation
-------------------
``cidx.recovery`` allows at most N crash restarts per time window, and a
"window" spans client invocations (kill the daemon before three queries in a
row and the third falls back). Each client process is short-lived, so the
restart times live in a tiny file: ``{"restarts": [unix_ts, ...]}``.

Rules
-----
* The file is advisory. A missing, unreadable or corrupt file (or junk
  entries) reads as an empty budget: losing it costs at most a few extra
  restarts, while refusing to run over it would break every query.
* Writes are atomic (temp file in the same directory, then ``os.replace``),
  so a concurrent reader sees the old list or the new one, never half a file.
* A restart is decided and recorded under ``locked()`` (an flock on a file
  beside the budget): two clients that saw the same crash take turns, and the
  second finds the daemon already replaced instead of overwriting the first's
  timestamp with its own list.
* Mode 0600: it is per-user state next to the index.
* Clearing deletes the file, so the common healthy query does no write.

JSON goes through ``cidx_shared.jsontext`` (no ``json``, no ``re``): the budget is
read on every query, on the client's hot path.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

FILENAME = "daemon-restarts.json"


def load_budget(path: str | os.PathLike[str]) -> list[float]:
    """Restart timestamps from ``path``; [] when missing or corrupt (see Rules)."""
    from cidx_shared import jsontext

    try:
        with open(path, encoding="utf-8") as f:
            data = jsontext.loads(f.read())
    except (OSError, ValueError, RecursionError):  # ValueError: bad JSON, bad UTF-8
        return []
    raw = data.get("restarts") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        return []
    out = []
    for item in raw:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            try:
                t = float(item)
            except OverflowError:  # a huge JSON integer
                continue
            if t - t == 0:  # finite: rejects inf and nan without importing math
                out.append(t)
    return out


def save_budget(path: str | os.PathLike[str], timestamps: Iterable[float]) -> None:
    """Atomically replace ``path`` with ``timestamps`` (mode 0600). Raises OSError;
    the caller treats the budget as best-effort."""
    from cidx_shared.config import write_json_atomic

    write_json_atomic(path, {"restarts": [float(t) for t in timestamps]})


def clear_budget(path: str | os.PathLike[str]) -> None:
    """Forget all restarts (a healthy daemon, or ``cidx daemon start``)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class locked:
    """Hold an exclusive flock beside the budget file while a restart is decided and done.

    Best effort: if the lock file cannot be made (read-only directory), the restart
    goes ahead unlocked, as the budget itself is advisory.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path) + ".lock"
        self._fd: int | None = None

    def __enter__(self) -> locked:
        import fcntl

        try:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
