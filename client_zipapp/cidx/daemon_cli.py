"""``cidx daemon start|stop|status|restart``: print what ``daemon_process`` finds and does.

Nothing here decides anything about the process (that is ``daemon_process``);
this module only words it. Liveness is an answer over the socket, never the
socket file's existence: the file outlives a ``kill -9``.

Exit codes: 0 done (status: the daemon runs), 1 failed, 3 status: not running.
"""

from __future__ import annotations

import json
import sys
import time

from cidx_shared import config as cfgmod

from . import daemon_process as dp
from . import restart_budget

EXIT_NOT_RUNNING = 3


def run(action: str, config_path: str, cfg: dict | None, *, as_json: bool = False) -> int:
    if action == "status":
        return status(config_path, as_json)
    if action == "stop":
        result = dp.stop(config_path)
        print(result.message)
        return 0 if result.stopped or "not running" in result.message else 1
    if action == "restart":
        result = dp.stop(config_path)
        if not result.stopped and "not running" not in result.message:
            print(result.message)
            return 1
    return start(config_path, cfg or {})


def start(config_path: str, cfg: dict) -> int:
    from cidx_shared import config as cfgmod

    try:  # an explicit start forgives earlier crashes
        restart_budget.clear_budget(cfgmod.sibling(config_path, cfgmod.BUDGET_NAME))
    except OSError:
        pass
    found = dp.probe(config_path)
    if found.state == dp.RUNNING:
        print(f"Daemon already running (pid {found.pid})")
        return 0
    if found.state not in (dp.ABSENT, dp.STALE):
        sys.stderr.write(f"error: cannot start the daemon: {found.state}: {found.reason}\n")
        return 1
    ok, message = dp.start(cfg, config_path)
    if not ok:
        sys.stderr.write(f"error: daemon did not start: {message}\nSee the log: {dp.log_path(config_path)}\n")
        return 1
    found = dp.probe(config_path)
    if found.state != dp.RUNNING:
        sys.stderr.write(f"error: daemon started but does not answer ({found.state}: {found.reason})\n")
        return 1
    print(f"Daemon running (pid {found.pid}) on {dp.socket_path(config_path)}")
    return 0


def status(config_path: str, as_json: bool) -> int:
    snap = dp.status_snapshot(config_path)
    state, info, why = snap["state"], snap["daemon"], snap["reason"]
    code = 0 if state == dp.RUNNING else EXIT_NOT_RUNNING
    if as_json:
        print(json.dumps(snap, indent=2))
        return code
    if state == dp.RUNNING:
        info = info or {}
        cache = info.get("cache") or {}
        loaded = (info.get("engine") or {}).get("cache") or {}
        print(f"Daemon:     running (pid {snap['pid']}, up {_uptime(info)})")
        print(f"Socket:     {snap['socket']}")
        serving = loaded.get("generation_loaded")
        live = _published(config_path) or info.get("generation")
        lag = f" (serving {serving} until the next query loads it)" if serving and live != serving else ""
        print(f"Generation: {live or 'none'}{lag}")
        print(f"Cache:      model {'loaded' if loaded.get('model_loaded') else 'not loaded'}, "
              f"index {loaded.get('generation_loaded') or 'not loaded'}; warm-up {cache.get('warm', '?')}; "
              f"idle {cache.get('idle_seconds', '?')}s of {info.get('ttl_seconds', '?')}s TTL"
              + (" (evicted)" if cache.get("evicted") else ""))
        watch = info.get("refresher")
        if watch:
            state = "on" if watch.get("watching") else f"off ({watch.get('watch_error') or 'starting'})"
            queued = watch.get("queued_paths") or 0
            print(f"Watching:   {state}; {watch.get('refreshes', 0)} refreshes (last "
                  f"{watch.get('last_refresh_seconds') or 0}s), {watch.get('embedded', 0)} chunks embedded"
                  + (f", {queued} changes queued" if queued else "")
                  + (f"; embedding left to {watch['embedding_elsewhere']} (cidx index)"
                     if watch.get("embedding_elsewhere") else "")
                  + (f"; last error: {watch['last_error']}" if watch.get("last_error") else ""))
    elif state == dp.STALE:
        print(f"Daemon:     stale socket, no process answers ({why}); the next query or "
              "'cidx daemon start' cleans it up")
    elif state == dp.UNRESPONSIVE:
        print(f"Daemon:     not answering (pid {snap['pid']}): {why}; the next query replaces it")
    elif state in (dp.BUSY, dp.UNUSABLE):
        print(f"Daemon:     {state}: {why}")
    else:
        print("Daemon:     not running (starts on the next query)")
    print(f"Log:        {snap['log']}")
    return code


def _published(config_path: str) -> str | None:
    """The generation ``CURRENT`` names: the daemon serves it from its next query on."""
    try:
        with open(cfgmod.sibling(config_path, "index/CURRENT"), encoding="ascii") as fh:
            return fh.readline().strip() or None
    except (OSError, ValueError):
        return None


def _uptime(info: dict) -> str:
    secs = info.get("uptime_seconds")
    if secs is None:
        started = info.get("started_at")
        secs = time.time() - started if started else None
    if secs is None:
        return "?"
    secs = int(secs)
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m{secs % 60:02d}s"
