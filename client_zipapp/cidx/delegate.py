"""Daemon delegation: perform the recovery machine's actions, feed back events.

All policy (when to retry, restart, give up) lives in ``recovery.Recovery``; what
a connect outcome means and which pid may be signalled live in ``daemon_process``.
This module is the thin layer between them that owns the connection and the clock:

* a connection's failure state (``daemon_process.classify``) -> the matching event;
* the query's reply -> QueryOk / QueryError / Mismatch / SocketUnusable;
* EOF or reset during the query -> ConnectionLost;
* no reply within ``HANG_CHECK_S``: a liveness ping on a second connection decides.
  A daemon that answers the ping is busy (keep waiting, up to ``QUERY_DEADLINE_S``,
  then Busy); one that does not is hung (ConnectionLost(timed_out)), and the restart
  kills its kernel-proven pid, so the replacement can take over the socket.

Import warming: what only the display needs (the renderer) is imported between
sending the query and reading the reply, while the daemon works. A background
thread was measured first and lost: importing ``threading`` costs more (~0.85 ms)
than the renderer it would hide (~0.6 ms); the in-line hook costs nothing.
"""

from __future__ import annotations

import os
import sys
import time

from cidx_shared import config as cfgmod
from cidx_shared import jsontext
from cidx_shared.schema import PROTOCOL_VERSION

from . import daemon_process as dp
from . import recovery as rc
from .restart_budget import clear_budget, load_budget, locked, save_budget
from .rpc_client import ProtocolError, RemoteError, TransportError

CONNECT_TIMEOUT_S = 5.0
#: No reply after this long: ask (on a second connection) whether the daemon lives.
HANG_CHECK_S = 3.0
PING_TIMEOUT_S = 3.0
#: A live daemon that has not answered after this long is reported busy (not a crash).
QUERY_DEADLINE_S = 300.0

_EVENT_OF_STATE = {
    dp.ABSENT: lambda reason: rc.SocketAbsent(),
    dp.STALE: rc.SocketStale,
    dp.BUSY: rc.ConnectBusy,
    dp.UNUSABLE: rc.SocketUnusable,
}


def _warm_imports() -> None:
    from cidx_shared import render  # noqa: F401


def query_via_daemon(cfg: dict, config_path: str, req: dict) -> dict:
    """Answer ``req`` through the daemon, recovering as the policy says; maybe standalone."""
    d = cfg["daemon"]
    budget_path = cfgmod.sibling(config_path, cfgmod.BUDGET_NAME)
    machine = rc.Recovery(
        enabled=True, protocol_version=PROTOCOL_VERSION, now=time.time(),
        budget=load_budget(budget_path), retry_delays_ms=d["retry_delays_ms"],
        max_restarts=d["max_restarts"], window_s=float(d["restart_window_minutes"]) * 60.0,
        log_path=dp.log_path(config_path))
    envelope = {"protocol": PROTOCOL_VERSION, "project": os.path.dirname(os.path.dirname(config_path)),
                "request": req}
    driver = _Driver(cfg, config_path, budget_path, jsontext.dumps(envelope))
    action = machine.action
    try:
        while not action.final:
            action = machine.send(driver.perform(action))
    finally:
        driver.close()
    if isinstance(action, rc.Done):
        if action.reset_budget:
            _quietly(clear_budget, budget_path)
        if action.result is not None:
            return action.result
        error = action.error
        return error if "schema" in error else {"schema": 1, "error": error}
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
    """Performs one action at a time; remembers the open connection and its proven peer."""

    def __init__(self, cfg: dict, config_path: str, budget_path: str, envelope_json: str) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.budget_path = budget_path
        self.envelope_json = envelope_json
        self.conn: dp.RpcConnection | None = None
        self.peer_pid: int | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def perform(self, action: object) -> object:
        if isinstance(action, rc.Connect):
            return self._connect(action.delay_ms)
        if isinstance(action, rc.SendQuery):
            return self._query()
        if isinstance(action, rc.StartDaemon):
            return self._start()
        if isinstance(action, rc.RestartDaemon):
            return self._restart(action)
        raise AssertionError(f"unexpected action {action!r}")

    def _connect(self, delay_ms: int) -> object:
        self.close()
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        try:
            self.conn = dp.open_connection(self.config_path, CONNECT_TIMEOUT_S)
        except dp.Unavailable as exc:
            return _EVENT_OF_STATE[exc.state](exc.reason)
        return rc.Connected()

    def _query(self) -> object:
        conn = self.conn
        assert conn is not None
        self.peer_pid = dp._peer_pid(conn)
        waited = 0.0
        sent = False
        while True:
            try:
                if not sent:
                    sent = True
                    text = conn.call("query", self.envelope_json, timeout=HANG_CHECK_S, on_sent=_warm_imports)
                else:
                    text = conn.wait_reply(timeout=HANG_CHECK_S)
                break
            except TransportError as exc:
                if exc.kind != "timeout" or conn.closed:
                    return rc.ConnectionLost(str(exc))
            except (RemoteError, ProtocolError) as exc:
                # The service turns every engine failure into an error document: an
                # exception means a daemon too old to have the method, or broken.
                return rc.Mismatch(None) if isinstance(exc, RemoteError) else rc.ConnectionLost(
                    f"daemon sent an unreadable answer: {exc}")
            waited += HANG_CHECK_S
            if not self._alive():
                return rc.ConnectionLost(f"no answer after {waited:.0f}s and no answer to a liveness ping",
                                         timed_out=True)
            if waited >= QUERY_DEADLINE_S:
                return rc.Busy(f"the daemon is alive but did not answer within {waited:.0f}s "
                               "(see 'cidx daemon status')")
        return self._event_of_reply(text)

    def _event_of_reply(self, text: object) -> object:
        try:
            doc = jsontext.loads(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return rc.ConnectionLost("daemon sent an unreadable answer")
        if not isinstance(doc, dict) or doc.get("protocol") != PROTOCOL_VERSION:
            return rc.Mismatch(doc.get("protocol") if isinstance(doc, dict) else None)
        del doc["protocol"]  # a wire field: the result document is the same in every mode
        err = doc.get("error")
        if not err:
            return rc.QueryOk(doc)
        code = err.get("code") if isinstance(err, dict) else None
        if code == "protocol_mismatch":
            return rc.Mismatch(None)
        if code == "wrong_project":
            return rc.SocketUnusable(err.get("message", "the daemon serves another project"))
        return rc.QueryError(doc)

    def _alive(self) -> bool:
        """A second connection's PING: the daemon's connection threads answer it even
        while another thread is deep in a query; a hung or stopped daemon does not."""
        try:
            conn = dp.open_connection(self.config_path, PING_TIMEOUT_S)
        except dp.Unavailable:
            return False
        with conn:
            try:
                conn.ping(PING_TIMEOUT_S)
            except (TransportError, ProtocolError, RemoteError):
                return False
        return True

    def _start(self) -> object:
        self.close()
        # DaemonNotInstalled propagates: no restart can fix a missing package, and the
        # user needs the one line that says how to install it.
        ok, message = dp.start(self.cfg, self.config_path)
        return rc.DaemonReady() if ok else rc.StartFailed(message)

    def _restart(self, action: rc.RestartDaemon) -> object:
        """Replace the daemon under the budget lock, so concurrent clients that saw the
        same crash take turns: a later one finds the replacement and just uses it."""
        sys.stderr.write(action.message + "\n")
        self.close()
        with locked(self.budget_path):
            if action.kind == rc.CRASH and self.peer_pid is None and self._answers():
                return rc.DaemonReady()  # another client restarted it while we waited
            if action.kind == rc.CRASH:
                recorded = [*load_budget(self.budget_path), action.budget[-1]]
                _quietly(save_budget, self.budget_path, recorded)
            self._stop_old()
            return self._start()

    def _answers(self) -> bool:
        found = dp.probe(self.config_path, timeout=PING_TIMEOUT_S)
        return found.state == dp.RUNNING

    def _stop_old(self) -> None:
        """Kill the old daemon if it still lives and is proven ours, then clear its socket."""
        pid, why = dp.proven_pid(self.peer_pid, self.config_path)
        self.peer_pid = None
        if pid is not None:
            dp.kill_proven(pid, graceful=False)
        elif why and not why.endswith("is gone") and "did not name" not in why:
            sys.stderr.write(f"   Not killing the process on the socket: {why}\n")
        dp.remove_stale_socket(self.config_path)
