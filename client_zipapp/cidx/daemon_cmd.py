"""``cidx daemon start|stop|status|restart``.

Liveness is a successful ``hello`` over the socket, never the socket file's
existence: the file outlives a ``kill -9``. Status therefore distinguishes
*running* (answers), *stale* (file present, connection refused) and *absent*.
"""

from __future__ import annotations

import json
import os
import sys
import time

from cidx_shared import config as cfgmod
from cidx_shared.schema import PROTOCOL_VERSION

from . import daemon_control, restart_budget
from .rpc_client import RpcConnection, TransportError, connect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

CONNECT_TIMEOUT_S = 2.0


def probe(config_path: Path) -> tuple[str, dict | None, str]:
    """('running', status, '') | ('stale', None, why) | ('absent', None, '') | ('unhealthy', None, why)."""
    sock = daemon_control.socket_path(config_path)
    try:
        conn = connect(sock, CONNECT_TIMEOUT_S)
    except TransportError as exc:
        if exc.kind == "absent":
            return "absent", None, ""
        if exc.kind == "refused":  # a socket file nobody listens on
            return "stale", None, str(exc)
        return "unhealthy", None, str(exc)  # busy (full backlog) or not ours
    try:
        with conn:
            hello = json.loads(conn.call("hello", PROTOCOL_VERSION, timeout=10.0))
            status = json.loads(conn.call("status", timeout=10.0))
            status.setdefault("hello", hello)
            return "running", status, ""
    except Exception as exc:  # the socket answered but not as a healthy daemon
        return "unhealthy", None, f"{type(exc).__name__}: {exc}"


def run(action: str, config_path: Path, cfg: dict, *, as_json: bool = False) -> int:
    if action == "status":
        return status(config_path, as_json)
    if action == "stop":
        stop(config_path)
        return 0
    if action == "restart":
        stop(config_path)
    return start(config_path, cfg)


def start(config_path: Path, cfg: dict) -> int:
    state, info, _ = probe(config_path)
    budget = cfgmod.sibling(config_path, cfgmod.BUDGET_NAME)
    try:
        restart_budget.clear_budget(budget)  # an explicit start forgives earlier crashes
    except OSError:
        pass
    if state == "running":
        print(f"Daemon already running (pid {_pid(info)})")
        return 0
    ok, message = daemon_control.start(cfg, config_path)
    if not ok:
        sys.stderr.write(f"error: daemon did not start: {message}\n"
                         f"See the log: {daemon_control.log_path(config_path)}\n")
        return 1
    state, info, why = probe(config_path)
    if state != "running":
        sys.stderr.write(f"error: daemon started but does not answer ({state}: {why})\n")
        return 1
    print(f"Daemon running (pid {_pid(info)}) on {daemon_control.socket_path(config_path)}")
    return 0


def stop(config_path: Path, *, quiet: bool = False, timeout: float = 15.0) -> bool:
    """Ask the daemon to shut down and wait until its socket stops answering."""
    sock = daemon_control.socket_path(config_path)
    try:
        conn = connect(sock, CONNECT_TIMEOUT_S)
    except TransportError as exc:
        if exc.kind == "refused":  # only a refused connect proves nobody listens
            _unlink(sock)
            if not quiet:
                print("Daemon not running; removed a stale socket")
        elif exc.kind != "absent":
            raise RuntimeError(f"cannot reach the daemon to stop it: {exc}") from None
        elif not quiet:
            print("Daemon not running")
        return False
    pid = None
    with conn:
        try:
            pid = json.loads(conn.call("hello", PROTOCOL_VERSION, timeout=5.0)).get("pid")
            conn.call("shutdown", timeout=5.0)
        except Exception:
            pass  # it may close on us as it shuts down: we check below
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _answers(sock) and (pid is None or not _alive(pid)):
            break
        time.sleep(0.05)
    else:
        if pid is not None and _alive(pid):
            import signal

            os.kill(pid, signal.SIGKILL)
        _unlink(sock)
    if not quiet:
        print(f"Daemon stopped (pid {pid})" if pid else "Daemon stopped")
    return True


def status(config_path: Path, as_json: bool) -> int:
    state, info, why = probe(config_path)
    log = str(daemon_control.log_path(config_path))
    if as_json:
        print(json.dumps({"state": state, "reason": why or None, "log": log, "daemon": info}, indent=2))
        return 0 if state == "running" else 3
    if state == "running":
        assert info is not None
        cache = info.get("cache") or {}
        loaded = (info.get("engine") or {}).get("cache") or {}
        print(f"Daemon:     running (pid {_pid(info)}, up {_uptime(info)})")
        print(f"Socket:     {daemon_control.socket_path(config_path)}")
        print(f"Generation: {info.get('generation') or info.get('hello', {}).get('generation') or 'none'}")
        print(f"Cache:      model {'loaded' if loaded.get('model_loaded') else 'not loaded'}, "
              f"index {loaded.get('generation_loaded') or 'not loaded'}; warm-up {cache.get('warm', '?')}; "
              f"idle {cache.get('idle_seconds', '?')}s of {info.get('ttl_seconds', '?')}s TTL"
              + (" (evicted)" if cache.get("evicted") else ""))
    elif state == "stale":
        print(f"Daemon:     stale socket, no process answers ({why}); the next query or "
              "'cidx daemon start' cleans it up")
    elif state == "unhealthy":
        print(f"Daemon:     not answering properly ({why})")
    else:
        print("Daemon:     not running (starts on the next query)")
    print(f"Log:        {log}")
    return 0 if state == "running" else 3


def _pid(info: dict | None) -> object:
    info = info or {}
    return info.get("pid") or info.get("hello", {}).get("pid", "?")


def _uptime(info: dict) -> str:
    secs = info.get("uptime_seconds")
    if secs is None:
        started = info.get("started_at") or info.get("hello", {}).get("started_at")
        secs = time.time() - started if started else None
    if secs is None:
        return "?"
    secs = int(secs)
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m{secs % 60:02d}s"


def _answers(sock: Path) -> bool:
    try:
        conn = connect(sock, 0.5)
    except TransportError:
        return False
    RpcConnection.close(conn)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
