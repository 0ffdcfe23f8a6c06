"""The RPC surface of the daemon: a handful of methods, JSON text in and out.

Why JSON text and not dicts: rpyc passes dicts and lists *by reference*
(netrefs): a client would read them after the connection closed
(use-after-close) or pay one round trip per item. A ``str`` crosses by
value, once. Arguments are checked to be real
``str``/``int`` too, so a client cannot hand the daemon a netref that would
call back into it.

Every method is wrapped: an unexpected exception is logged with its
traceback and answered with an ``internal`` error document; it never takes
the daemon down and never ships a traceback to the client.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import rpyc

from cidx_daemon import __version__
from cidx_daemon.server.idle import ActivityTracker
from cidx_shared import schema

log = logging.getLogger("cidx_daemon.service")

#: A query may legitimately take long (cold model load + a big regex scan).
SYNC_REQUEST_TIMEOUT_S = 600

PROTOCOL_CONFIG: dict[str, Any] = {
    "allow_pickle": False,
    "allow_public_attrs": False,
    "allow_all_attrs": False,
    "allow_setattr": False,
    "allow_delattr": False,
    "include_local_traceback": False,
    "include_local_version": False,
    "import_custom_exceptions": False,
    "instantiate_custom_exceptions": False,
    "instantiate_oldstyle_exceptions": False,
    "sync_request_timeout": SYNC_REQUEST_TIMEOUT_S,
    # rpyc reads RPYC_BIND_THREADS from the environment by default; that mode adds
    # 16 bytes to every message, which the stdlib client does not speak. Pin it.
    "bind_threads": False,
}


@dataclass
class DaemonInfo:
    """Facts about this daemon process that status reports."""

    project_root: str
    socket_path: str
    log_path: str
    ttl_seconds: float
    auto_shutdown_on_idle: bool
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)  # wall clock, for humans
    started_mono: float = field(default_factory=time.monotonic)
    warm_state: str = "pending"  # pending | warming | done | failed

    def serves(self, project: str) -> bool:
        """Is ``project`` (as a client names it) the directory this daemon serves?"""
        try:
            return os.path.realpath(project) == os.path.realpath(self.project_root)
        except (OSError, ValueError):
            return False


def to_json(doc: Any) -> str:
    """Serialise a document; numpy scalars/arrays (if the engine lets one slip) become plain numbers."""
    def default(obj: Any) -> Any:
        for attr in ("tolist", "item"):
            if hasattr(obj, attr):
                return getattr(obj, attr)()
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    text = json.dumps(doc, default=default, ensure_ascii=False)
    try:
        text.encode("utf-8")  # what rpyc will do with it: a failure there would drop the connection
    except UnicodeEncodeError:  # e.g. a project path with undecodable bytes, in a message
        text = json.dumps(doc, default=default, ensure_ascii=True)
    return text


def uncompressed(conn: rpyc.Connection) -> None:
    """Send frames as they are: on a Unix socket zlib only costs CPU on both sides, and the
    client would import zlib (~0.3 ms of its start) to inflate any reply over 3 KB."""
    conn._channel.compress = False


def publish_root(conn: rpyc.Connection, service: rpyc.Service) -> None:
    """Hold ``service`` at the well-known ``schema.ROOT_ID_PACK`` on this connection.

    The stdlib client then calls it directly instead of asking rpyc for the root
    first (GETROOT, a round trip): a query is one request frame. rpyc has no public
    hook for this; tests/unit/test_rpc_wire.py pins it to rpyc 6's behaviour.
    """
    conn._local_objects.add(schema.ROOT_ID_PACK, service)


class CidxService(rpyc.Service):
    """One instance serves every connection (state is shared and thread-safe)."""

    ALIASES = ("CIDX",)

    def __init__(self, engine: Any, info: DaemonInfo, tracker: ActivityTracker,
                 request_stop: Callable[[str], None], refresher: Any = None) -> None:
        self._engine = engine
        self._info = info
        self._tracker = tracker
        self._request_stop = request_stop
        self._refresher = refresher  # server.refresher.Refresher when the daemon watches
        self._gen_lock = threading.Lock()
        self._last_generation: str | None = None

    # ------------------------------------------------------------ connection hooks

    def on_connect(self, conn: rpyc.Connection) -> None:
        uncompressed(conn)
        publish_root(conn, self)
        self._tracker.connected()

    def on_disconnect(self, conn: rpyc.Connection) -> None:
        self._tracker.disconnected()

    # ------------------------------------------------------------ plumbing

    def _guarded(self, name: str, body: Callable[[], dict[str, Any]]) -> str:
        """Run one method; every answer is a JSON document that says which protocol sent it."""
        try:
            doc = body()
        except Exception as exc:  # the daemon outlives any bug in one request
            log.exception("internal error in %s", name)
            doc = schema.make_error_document("internal", f"{name} failed: {type(exc).__name__}: {exc}")
        doc["protocol"] = schema.PROTOCOL_VERSION
        return to_json(doc)

    def _open_envelope(self, envelope_json: Any) -> tuple[Any, dict[str, Any] | None]:
        """(request, None) for a well-formed envelope of our protocol and project, else
        (None, error document). Only ``str`` is accepted: anything else arrived as a
        netref, and touching it would call back into the client."""
        if type(envelope_json) is not str:
            return None, schema.make_error_document("bad_envelope", "expected the envelope as JSON text")
        try:
            protocol, project, request = schema.read_envelope(json.loads(envelope_json))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            return None, schema.make_error_document("bad_envelope", f"unreadable envelope: {exc}")
        if protocol != schema.PROTOCOL_VERSION:
            return None, schema.make_error_document(
                "protocol_mismatch",
                f"the daemon speaks protocol {schema.PROTOCOL_VERSION}, the client {protocol}")
        if project is not None and not self._info.serves(project):
            return None, schema.make_error_document(
                "wrong_project", f"this daemon serves {self._info.project_root}, not {project}")
        return request, None

    def _generation(self) -> str | None:
        try:
            return self._engine.generation
        except Exception:
            log.exception("cannot read the index generation")
            return None

    def _note_generation(self, generation: str | None) -> None:
        """Log each switch of the served index generation (the engine reloads by itself)."""
        if generation is None:
            return
        with self._gen_lock:
            previous, self._last_generation = self._last_generation, generation
        if previous != generation:
            log.info("serving index generation %s (was %s)", generation, previous)

    # ------------------------------------------------------------ exposed API

    def exposed_query(self, envelope_json: str) -> str:
        """Run one search: the envelope in, the result document (or an error document) out."""
        with self._tracker.call():
            return self._guarded("query", lambda: self._query(envelope_json))

    def _query(self, envelope_json: Any) -> dict[str, Any]:
        request, refused = self._open_envelope(envelope_json)
        if refused is not None:
            log.info("refused a query: %s", refused["error"]["message"])
            return refused
        doc = self._engine.query(request)  # validates; never raises for the user's mistakes
        if doc.get("error") is None:
            self._note_generation(doc.get("generation"))
            waiting = self._refresher.pending_files() if self._refresher is not None else 0
            if waiting:  # saved, seen, not searchable yet: the answer says so
                doc["pending"] = {**(doc.get("pending") or {}), "files": waiting}
            if self._refresher is not None and (doc.get("pending") or {}).get("embed"):
                self._refresher.wake_embedder()
        else:
            log.info("query answered with error %s", doc["error"].get("code"))
        return doc

    def exposed_status(self) -> str:
        """Health and cache state. Not counted as activity: watching a daemon must not keep it alive."""
        with self._tracker.call(activity=False):
            return self._guarded("status", self._status)

    def _status(self) -> dict[str, Any]:
        snap = self._tracker.snapshot()
        now = self._tracker.now()
        try:
            engine_status: Any = self._engine.status()
        except Exception as exc:
            log.exception("engine.status failed")
            engine_status = {"error": f"{type(exc).__name__}: {exc}"}
        return {
            "pid": self._info.pid,
            "daemon_version": __version__,
            "python": sys.executable,
            "project_root": self._info.project_root,
            "started_at": self._info.started_at,
            "uptime_seconds": round(now - self._info.started_mono, 3),
            "socket_path": self._info.socket_path,
            "log_path": self._info.log_path,
            "generation": self._generation(),
            "connections": snap.connections,
            "in_flight": snap.in_flight - 1,  # minus this status call
            "ttl_seconds": self._info.ttl_seconds,
            "auto_shutdown_on_idle": self._info.auto_shutdown_on_idle,
            "cache": {
                "warm": self._info.warm_state,
                "evicted": snap.evicted,
                "idle_seconds": round(max(0.0, now - snap.last_activity), 3),
            },
            "engine": engine_status,
            "refresher": self._refresher.state() if self._refresher is not None else None,
        }

    def exposed_clear_cache(self) -> str:
        """Drop the loaded model and index; the next query reloads them."""
        with self._tracker.call():
            def body() -> dict[str, Any]:
                self._engine.clear_cache()
                self._tracker.mark_evicted()
                log.info("caches cleared on request")
                return {"ok": True, "cleared": True, "pid": self._info.pid}
            return self._guarded("clear_cache", body)

    def exposed_shutdown(self) -> str:
        """Acknowledge, then stop gracefully from another thread (in-flight queries finish)."""
        with self._tracker.call(activity=False):
            def body() -> dict[str, Any]:
                log.info("shutdown requested over RPC")
                threading.Thread(target=self._request_stop, args=("rpc shutdown",),
                                 name="cidx-stop", daemon=True).start()
                return {"ok": True, "stopping": True, "pid": self._info.pid}
            return self._guarded("shutdown", body)
