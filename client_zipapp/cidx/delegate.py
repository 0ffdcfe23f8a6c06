"""Daemon delegation: perform the recovery machine's actions, feed back events.

All policy (when to retry, restart, give up) lives in ``recovery.Recovery``;
this module is the thin layer that owns the socket, the clock and the
processes. Classification rules, stated once:

* socket file absent                      -> SocketAbsent  (first use: start it)
* ECONNREFUSED on an existing socket file -> SocketStale   (nobody listens: a
  daemon died without cleaning up; on Linux a listening Unix socket with a
  full backlog blocks or times out, it does not refuse)
* connect timeout / EAGAIN                -> ConnectRefused (busy or starting:
  back off and retry)
* EOF / reset / timeout during a call     -> ConnectionLost (crash or hang)
* an error document from the engine       -> QueryError    (healthy daemon)

Import warming: what only the display needs (the renderer) is imported
between sending the query and reading the reply, while the daemon works. A
background thread was measured first and lost: importing ``threading`` costs
more (~0.85 ms) than the renderer it would hide (~0.6 ms); the in-line hook
costs nothing and takes the renderer off the critical path.
"""

from __future__ import annotations

import json
import os
import sys
import time

from cidx_shared import config as cfgmod
from cidx_shared.schema import PROTOCOL_VERSION

from . import recovery as rc
from .restart_budget import clear_budget, load_budget, save_budget
from .rpc_client import ProtocolError, RemoteError, TransportError, connect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

CONNECT_TIMEOUT_S = 5.0
HELLO_TIMEOUT_S = 30.0
#: A query that takes longer than this is treated as a hung daemon.
QUERY_TIMEOUT_S = 300.0


def _warm_imports() -> None:
    from cidx_shared import render  # noqa: F401


def query_via_daemon(cfg: dict, config_path: Path, req: dict) -> dict:
    """Answer ``req`` through the daemon, recovering as the policy says; maybe standalone."""
    d = cfg["daemon"]
    budget_path = cfgmod.sibling(config_path, cfgmod.BUDGET_NAME)
    log_path = cfgmod.sibling(config_path, cfgmod.LOG_NAME)
    sock = cfgmod.sibling(config_path, cfgmod.SOCKET_NAME)
    machine = rc.Recovery(
        enabled=True, protocol_version=PROTOCOL_VERSION, now=time.time(),
        budget=load_budget(budget_path), retry_delays_ms=d["retry_delays_ms"],
        max_restarts=d["max_restarts"], window_s=float(d["restart_window_minutes"]) * 60.0,
        log_path=str(log_path))
    driver = _Driver(cfg, config_path, sock, json.dumps(req))
    action = machine.action
    try:
        while not action.final:
            action = machine.send(driver.perform(action, budget_path))
    finally:
        driver.close()
    if isinstance(action, rc.Done):
        if action.reset_budget:
            _quietly(clear_budget, budget_path)
        return action.result if action.result is not None else action.error
    assert isinstance(action, rc.RunStandalone)
    if action.message:
        sys.stderr.write(action.message + "\n")
    from .standalone import run_query

    return run_query(cfg, config_path, req)


def _quietly(func, *args) -> None:  # type: ignore[no-untyped-def]
    """Budget bookkeeping must never fail a query (a read-only .code-indexer, say)."""
    try:
        func(*args)
    except OSError:
        pass


class _Driver:
    """Performs one action at a time; remembers the open connection and daemon pid."""

    def __init__(self, cfg: dict, config_path: Path, sock: Path, request_json: str) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.sock = sock
        self.request_json = request_json
        self.conn = None
        self.pid: int | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def perform(self, action: object, budget_path: Path) -> object:
        if isinstance(action, rc.Connect):
            return self._connect(action.delay_ms)
        if isinstance(action, rc.Handshake):
            return self._hello()
        if isinstance(action, rc.SendQuery):
            return self._query()
        if isinstance(action, rc.StartDaemon):
            return self._start()
        if isinstance(action, rc.RestartDaemon):
            sys.stderr.write(action.message + "\n")
            _quietly(save_budget, budget_path, list(action.budget))
            self._stop_old()
            return self._start()
        raise AssertionError(f"unexpected action {action!r}")

    def _connect(self, delay_ms: int) -> object:
        self.close()
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        try:
            self.conn = connect(self.sock, CONNECT_TIMEOUT_S)
        except TransportError as exc:
            if exc.kind == "absent":
                return rc.SocketAbsent()
            if exc.kind == "refused":
                return rc.SocketStale(str(exc))
            return rc.ConnectRefused(str(exc))
        return rc.Connected()

    def _hello(self) -> object:
        try:
            reply = json.loads(self.conn.call("hello", PROTOCOL_VERSION, timeout=HELLO_TIMEOUT_S))
        except TransportError as exc:
            return rc.ConnectionLost(str(exc), timed_out=exc.kind == "timeout")
        except (RemoteError, ProtocolError, ValueError):
            # Something answers that does not speak our protocol: an old or foreign daemon.
            return rc.HelloReply(None)
        self.pid = reply.get("pid") if isinstance(reply, dict) else None
        return rc.HelloReply(reply.get("protocol") if isinstance(reply, dict) else None)

    def _query(self) -> object:
        try:
            text = self.conn.call("query", self.request_json, timeout=QUERY_TIMEOUT_S,
                                  on_sent=_warm_imports)
        except TransportError as exc:
            return rc.ConnectionLost(str(exc), timed_out=exc.kind == "timeout")
        except (RemoteError, ProtocolError) as exc:
            # The service turns every engine failure into an error document, so an
            # exception here means the daemon itself is broken (or too old to have
            # the method): replacing it is the right cure.
            return rc.ConnectionLost(f"daemon failed: {exc}")
        try:
            doc = json.loads(text)
        except (TypeError, ValueError):
            return rc.ConnectionLost("daemon sent an unreadable answer")
        if doc.get("error"):
            return rc.QueryError(doc)
        return rc.QueryOk(doc)

    def _start(self) -> object:
        from .daemon_control import start

        self.close()
        # DaemonNotInstalled propagates: no restart can fix a missing package, and the
        # user needs the one line that says how to install it.
        ok, message = start(self.cfg, self.config_path)
        return rc.DaemonReady() if ok else rc.StartFailed(message)

    def _stop_old(self) -> None:
        """A restart replaces the old daemon: kill it if it still lives (it may hang),
        and remove its socket if nobody listens on it any more."""
        self.close()
        if self.pid:
            import signal

            try:
                os.kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.pid = None
        try:
            probe = connect(self.sock, 1.0)
        except TransportError as exc:
            if exc.kind == "refused":
                try:
                    os.unlink(self.sock)
                except FileNotFoundError:
                    pass
            return
        probe.close()
