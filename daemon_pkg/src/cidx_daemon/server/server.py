"""``cidx-daemon serve``: run the warm per-project daemon until told to stop or idle.

Life of a daemon
----------------
1. (``--detach``) fork into the background; the starter waits on a readiness pipe.
2. Claim the socket (``socket_setup``): exactly one daemon per project; a
   loser reports "running" and exits 0.
3. Create the engine (cheap) and warm it in a background thread; the socket
   accepts at once, and early queries simply wait for the load.
4. Serve with rpyc's ThreadedServer (a thread per connection, queries run in
   parallel), handed our pre-bound socket.
5. Stop on SIGTERM/SIGINT, an RPC ``shutdown``, or idleness: stop accepting,
   remove the socket if it is still ours, let in-flight queries finish
   (bounded), close the remaining connections, exit 0.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import logging
import logging.handlers
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rpyc.utils.server import ThreadedServer

from cidx_daemon import __version__
from cidx_daemon.server import detach as detachmod
from cidx_daemon.server.idle import ActivityTracker, check_interval, idle_decision
from cidx_daemon.server.peer import PeerUidAuthenticator
from cidx_daemon.server.service import PROTOCOL_CONFIG, CidxService, DaemonInfo
from cidx_daemon.server.socket_setup import AlreadyRunning, BoundSocket, SocketSetupError, claim_socket
from cidx_shared import config as cfgmod

log = logging.getLogger("cidx_daemon.server")

LOG_MAX_BYTES = 5 * 1024 * 1024
#: How long a stopping daemon lets running queries finish.
QUERY_GRACE_S = 60.0
#: Then how long it lets clients that got their answer hang up by themselves.
CONNECTION_GRACE_S = 2.0
#: Testing/benchmark seam: "module:callable" returning an engine for a config path.
ENGINE_FACTORY_ENV = "CIDX_DAEMON_ENGINE_FACTORY"


# --------------------------------------------------------------------------- rpyc server


class PreboundThreadedServer(ThreadedServer):
    """rpyc's ThreadedServer serving a socket we bound and locked ourselves.

    rpyc 6 has no parameter for an existing listener: ``Server.__init__``
    always creates and binds one. We let it bind a throwaway socket in Linux's
    abstract namespace (``socket_path=""`` = kernel autobind: no file, no
    collision), then swap in ours before ``start()``. ``close()`` is made
    graceful: stop accepting, remove our socket file, drain, then close.
    """

    def __init__(self, service: CidxService, bound: BoundSocket, *, tracker: ActivityTracker,
                 lock_name: str, **kwargs: Any) -> None:
        super().__init__(service, socket_path="", **kwargs)
        self.listener.close()
        self.listener = bound.listener
        self.listener.settimeout(None)  # a stop shuts the listener down, which wakes accept()
        self.host, self.port = "", str(bound.path)
        self._bound = bound
        self._tracker = tracker
        self._lock_name = lock_name
        self._close_lock = threading.Lock()
        self.stop_reason: str | None = None

    def _listen(self) -> None:
        # Already listening (socket_setup listened under the lock). Do not
        # re-activate a server whose stop was requested before start().
        if not self.active:
            self.active = self.stop_reason is None

    def request_stop(self, reason: str) -> None:
        """Any thread or a signal handler: stop accepting now; ``start()`` returns and closes."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.active = False
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self.active = False
            if self._bound.remove_if_ours(self._lock_name):
                log.info("removed socket %s", self._bound.path)
            else:
                log.info("socket %s already replaced or gone; left alone", self._bound.path)
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            snap = self._tracker.snapshot()
            if snap.in_flight:
                log.info("waiting for %d in-flight call(s) to finish", snap.in_flight)
            if not self._tracker.wait_until("in_flight", QUERY_GRACE_S):
                log.warning("in-flight calls still running after %.0fs; closing anyway", QUERY_GRACE_S)
            self._tracker.wait_until("connections", CONNECTION_GRACE_S)
            super().close()
            self._bound.close()


# --------------------------------------------------------------------------- logging


class _DaemonLogHandler(logging.handlers.RotatingFileHandler):
    """Size-capped log; in a detached daemon fds 1/2 follow the live file on rotation,
    so stray prints and thread tracebacks land next to the log records."""

    def __init__(self, path: Path, *, own_stdio: bool) -> None:
        super().__init__(path, maxBytes=LOG_MAX_BYTES, backupCount=1, encoding="utf-8")
        self.own_stdio = own_stdio
        self._point_stdio()

    def doRollover(self) -> None:
        super().doRollover()
        self._point_stdio()

    def _point_stdio(self) -> None:
        if self.own_stdio and self.stream is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(self.stream.fileno(), 1)
            os.dup2(self.stream.fileno(), 2)


def setup_logging(log_path: Path, *, own_stdio: bool) -> logging.Handler:
    handler = _DaemonLogHandler(log_path, own_stdio=own_stdio)
    if log_path.exists() and log_path.stat().st_size > LOG_MAX_BYTES:
        handler.doRollover()  # start each daemon with room to write
    handler.setFormatter(logging.Formatter(
        "%(asctime)s pid=%(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # rpyc logs every accept/welcome/goodbye at INFO: noise for a busy daemon
    logging.getLogger("cidx_daemon.rpyc").setLevel(logging.WARNING)

    def excepthook(args: threading.ExceptHookArgs) -> None:
        logging.getLogger("cidx_daemon.thread").error(
            "uncaught exception in thread %s", getattr(args.thread, "name", "?"),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]

    threading.excepthook = excepthook
    return handler


# --------------------------------------------------------------------------- engine


def make_engine(config_path: Path) -> Any:
    spec = os.environ.get(ENGINE_FACTORY_ENV)
    if spec:
        module_name, _, attr = spec.partition(":")
        factory: Callable[[Path], Any] = getattr(importlib.import_module(module_name), attr)
        log.info("engine factory from %s: %s", ENGINE_FACTORY_ENV, spec)
        return factory(config_path)
    from cidx_daemon.search.engine import Engine

    return Engine(config_path, served_by="daemon")


#: How long a stopping daemon waits for its warm-up (a model load: ~1 s) to finish.
WARM_JOIN_S = 30.0


def _warm(engine: Any, info: DaemonInfo) -> None:
    info.warm_state = "warming"
    t0 = time.perf_counter()
    try:
        engine.warm()
    except Exception:
        info.warm_state = "failed"
        log.exception("warm-up failed (queries will load on demand)")
        return
    info.warm_state = "done"
    log.info("warm-up done in %.2fs (generation %s)", time.perf_counter() - t0,
             getattr(engine, "generation", None))


def _idle_loop(engine: Any, tracker: ActivityTracker, info: DaemonInfo,
               server: PreboundThreadedServer, stopped: threading.Event) -> None:
    ttl = info.ttl_seconds
    interval = check_interval(ttl)
    while not stopped.wait(interval):
        snap = tracker.snapshot()
        decision = idle_decision(snap.last_activity, tracker.now(), ttl, snap.connections,
                                 in_flight=snap.in_flight, auto_shutdown=info.auto_shutdown_on_idle,
                                 evicted=snap.evicted)
        if decision == "evict":
            log.info("idle for %.0fs: clearing caches", tracker.now() - snap.last_activity)
            try:
                engine.clear_cache()
            except Exception:
                log.exception("clear_cache failed")
            tracker.mark_evicted(as_of=snap.last_activity)
        elif decision == "shutdown":
            log.info("idle for %.1fs with no client: shutting down", tracker.now() - snap.last_activity)
            server.request_stop("idle")
            return


# --------------------------------------------------------------------------- serve


def serve(config_path: Path, *, detach: bool = False, ready_fd: int | None = None) -> int:
    """Run the daemon of the project owning ``config_path``; returns the process exit code.

    ``detach``: fork into the background and return in the starter once the
    daemon is ready (0), already running (0) or failed (1). ``ready_fd``: a
    pipe to write the one readiness line to (see ``detach``), for starters
    that spawn ``serve`` themselves.
    """
    config_path = Path(config_path).absolute()
    try:
        cfg = cfgmod.load_config(config_path)
    except cfgmod.ConfigError as exc:
        _say(f"error: {exc}")
        detachmod.send_ready(ready_fd, "error", str(exc))
        return 1
    cdir = cfgmod.config_dir(config_path)
    log_path = cdir / cfgmod.LOG_NAME
    if detach:
        sys.stdout.flush()
        sys.stderr.flush()
        in_daemon, fd = detachmod.daemonize(log_path)
        if not in_daemon:
            kind, detail = detachmod.wait_ready(fd)
            detachmod.send_ready(ready_fd, kind if kind != "timeout" else "error", detail)
            return _report_start(kind, detail, log_path)
        if ready_fd is not None:  # the starter answers on it; the daemon must not hold it open
            os.close(ready_fd)
        ready_fd = fd
    return _run(config_path, cfg, ready_fd=ready_fd, detached=detach)


def _report_start(kind: str, detail: str, log_path: Path) -> int:
    if kind == "ready":
        print(f"cidx daemon started (pid {detail})")
    elif kind == "running":
        print(f"cidx daemon already running ({detail})")
    else:
        _say(f"error: the daemon failed to start: {detail} (log: {log_path})")
    return detachmod.exit_code_for(kind)


def _say(message: str) -> None:
    sys.stderr.write(f"cidx-daemon: {message}\n")
    sys.stderr.flush()


def _run(config_path: Path, cfg: dict[str, Any], *, ready_fd: int | None, detached: bool) -> int:
    cdir = cfgmod.config_dir(config_path)
    log_path = cdir / cfgmod.LOG_NAME
    try:
        bound = claim_socket(cdir, cfgmod.SOCKET_NAME, cfgmod.LOCK_NAME)
    except AlreadyRunning as exc:
        if not detached:  # detached: the starter reports it; keep the log free of losers
            print(f"cidx daemon already running: {exc}", flush=True)
        detachmod.send_ready(ready_fd, "running", str(exc))
        return 0
    except SocketSetupError as exc:
        _say(f"error: {exc}")
        detachmod.send_ready(ready_fd, "error", str(exc))
        return 1

    handler = setup_logging(log_path, own_stdio=detached)
    dcfg = cfg["daemon"]
    info = DaemonInfo(project_root=str(cfgmod.project_root(config_path)), socket_path=str(bound.path),
                      log_path=str(log_path), ttl_seconds=float(dcfg["ttl_minutes"]) * 60.0,
                      auto_shutdown_on_idle=bool(dcfg["auto_shutdown_on_idle"]))
    log.info("starting cidx daemon %s (python %s) for %s on %s; ttl %.1fs, idle shutdown %s",
             __version__, sys.executable, info.project_root, info.socket_path, info.ttl_seconds,
             "on" if info.auto_shutdown_on_idle else "off")
    tracker = ActivityTracker()
    stopped = threading.Event()
    try:
        engine = make_engine(config_path)
        refresher = None
        if dcfg.get("watch", True) and os.environ.get(ENGINE_FACTORY_ENV) is None:
            from cidx_daemon.server.refresher import Refresher

            refresher = Refresher(config_path)
        server_box: list[PreboundThreadedServer] = []
        service = CidxService(engine, info, tracker, lambda why: server_box[0].request_stop(why), refresher)
        server = PreboundThreadedServer(
            service, bound, tracker=tracker, lock_name=cfgmod.LOCK_NAME,
            authenticator=PeerUidAuthenticator(), protocol_config=dict(PROTOCOL_CONFIG),
            logger=logging.getLogger("cidx_daemon.rpyc"))
        server_box.append(server)
    except Exception as exc:
        log.exception("start-up failed")
        bound.remove_if_ours(cfgmod.LOCK_NAME)
        bound.close()
        detachmod.send_ready(ready_fd, "error", f"{type(exc).__name__}: {exc}")
        return 1

    def on_signal(signum: int, _frame: Any) -> None:
        server.request_stop(signal.Signals(signum).name)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        # `kill -USR1 <pid>`: every thread's stack into the log (fd 2 follows it when
        # detached), for a daemon that hangs where no log line says why.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    warm = threading.Thread(target=_warm, args=(engine, info), name="cidx-warm", daemon=True)
    warm.start()
    if refresher is not None:
        refresher.start()
    threading.Thread(target=_idle_loop, args=(engine, tracker, info, server, stopped),
                     name="cidx-idle", daemon=True).start()

    log.info("listening on %s (pid %d)", info.socket_path, info.pid)
    detachmod.send_ready(ready_fd, "ready", str(info.pid))
    try:
        server.start()  # returns once request_stop() was called; close() has drained
    finally:
        stopped.set()
        if refresher is not None:
            refresher.stop()
        server.close()  # first: stop accepting and drain, whatever the warm-up is doing
        # A stop during warm-up must not exit while onnxruntime is still creating the model's
        # session on that thread: its native threads would be torn down under it and the
        # process would abort ("terminate called without an active exception", exit -6).
        warm.join(timeout=WARM_JOIN_S)
        log.info("daemon stopped (%s) after %.1fs", server.stop_reason or "listener closed",
                 time.monotonic() - info.started_mono)
        handler.flush()
    return 0


# --------------------------------------------------------------------------- CLI glue


def run_serve(args: argparse.Namespace) -> int:
    config = getattr(args, "config", None)
    if config is None:
        config = cfgmod.find_config()
        if config is None:
            _say(f"error: no .code-indexer/config.json in {os.getcwd()} or above: run 'cidx init'")
            detachmod.send_ready(getattr(args, "ready_fd", None), "error", "no config found")
            return 2
    return serve(Path(config), detach=bool(getattr(args, "detach", False)),
                 ready_fd=getattr(args, "ready_fd", None))
