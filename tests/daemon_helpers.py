"""Shared helpers for the daemon tests: real projects, real daemon processes, real sockets.

Nothing here fakes the daemon: every helper starts ``python -m cidx_daemon
serve`` as a separate process and talks to it over its Unix socket. Waits
poll a condition under a generous deadline; nothing asserts on durations.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import rpyc

from cidx_shared.schema import PROTOCOL_VERSION

ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join([str(ROOT / "daemon_pkg" / "src"), str(ROOT / "client_zipapp")])
DEADLINE_S = 60.0

SOURCES = {
    "calc.py": 'def add_numbers(a, b):\n    """Add two numbers and return the sum."""\n    return a + b\n',
    "config_loader.py": ("import json\n\n\ndef load_settings(path):\n"
                         '    """Read the JSON settings file."""\n'
                         "    with open(path) as fh:\n        return json.load(fh)\n"),
    "server.js": "function startServer(port) {\n  console.log('listening on ' + port);\n}\n",
}


def build_indexed_project(root: Path) -> Path:
    """A small real project, indexed by the real indexer; returns its config path."""
    from cidx_daemon.index.indexer import index_project
    from cidx_shared import config as cfgmod

    root.mkdir(parents=True, exist_ok=True)
    for name, text in SOURCES.items():
        (root / name).write_text(text, encoding="utf-8")
    config_path = cfgmod.init_project(root)
    index_project(config_path)
    return config_path


def copy_project(template_config: Path, dest: Path, **daemon_settings: Any) -> Path:
    """Copy an indexed template (indexing once per module keeps tests fast), tweak daemon settings."""
    from cidx_shared import config as cfgmod

    shutil.copytree(cfgmod.project_root(template_config), dest, symlinks=True)
    config_path = dest / cfgmod.CONFIG_DIR / cfgmod.CONFIG_FILE
    for leftover in (cfgmod.SOCKET_NAME, cfgmod.LOG_NAME, cfgmod.LOCK_NAME):
        with contextlib.suppress(FileNotFoundError):
            (config_path.parent / leftover).unlink()
    if daemon_settings:
        cfg = json.loads(config_path.read_text())
        cfg.setdefault("daemon", {}).update(daemon_settings)
        cfgmod.write_json_atomic(config_path, cfg)
    return config_path


def daemon_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHONPATH + (os.pathsep + extra.pop("PYTHONPATH") if "PYTHONPATH" in extra else "")
    env.update(extra)
    return env


def serve_argv(config_path: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "cidx_daemon", "serve", "--config", str(config_path), *more]


def start_detached(config_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(serve_argv(config_path, "--detach"), env=env or daemon_env(),
                          capture_output=True, text=True, timeout=DEADLINE_S, check=False)


def socket_path(config_path: Path) -> Path:
    return config_path.parent / "daemon.sock"


@contextlib.contextmanager
def connect(config_path: Path) -> Iterator[rpyc.Connection]:
    """A raw rpyc client; deep paths go through the /proc/self/fd alias."""
    from cidx_daemon.server.socket_setup import connect_address

    address, dir_fd = connect_address(config_path.parent, "daemon.sock")
    try:
        conn = rpyc.utils.factory.unix_connect(address, config={"sync_request_timeout": DEADLINE_S})
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    try:
        yield conn
    finally:
        conn.close()


def rpc(config_path: Path, method: str, *args: Any) -> Any:
    with connect(config_path) as conn:
        text = getattr(conn.root, method)(*args)
        assert type(text) is str, f"{method} returned {type(text)}, not JSON text"
        doc = json.loads(text)
        assert doc.pop("protocol") == PROTOCOL_VERSION, f"{method}: every answer says its protocol"
        return doc


def envelope(config_path: Path, request: Any, **overrides: Any) -> str:
    """A query as the client sends it: protocol and project travel with the request."""
    return json.dumps({"protocol": PROTOCOL_VERSION, "project": str(config_path.parent.parent),
                       "request": request, **overrides})


def query(config_path: Path, **request: Any) -> dict[str, Any]:
    return rpc(config_path, "query", envelope(config_path, request))


def pid_alive(pid: int) -> bool:
    """Any thread still running (a zombie leader's other threads may still be exiting;
    a detached daemon's parent may never reap it, so a zombie counts as dead)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state not in ("Z", "X"):
            return True
    return False


def daemon_pids(config_path: Path) -> list[int]:
    """Live ``cidx_daemon serve`` processes for this config (found by their command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = b"cidx_daemon" in argv and b"serve" in argv and os.fsencode(str(config_path)) in argv
        if ours and pid_alive(int(entry)):
            found.append(int(entry))
    return sorted(found)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    """Poll until ``condition()`` is truthy; fail naming ``what`` after a generous deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def thread_dump(pid: int, log_path: Path) -> str:
    """The daemon's thread stacks (its SIGUSR1 handler writes them to the log): what a
    daemon that will not stop is doing, for the failure message."""
    before = log_path.stat().st_size if log_path.exists() else 0
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and (not log_path.exists() or log_path.stat().st_size == before):
        time.sleep(0.05)
    time.sleep(0.2)  # let the dump finish
    return log_path.read_text(errors="replace")[-6000:] if log_path.exists() else "(no log)"


def wait_for_exit(pid: int, log_path: Path, what: str) -> None:
    """``wait_for`` the daemon ``pid`` to exit; on timeout the failure carries its stacks."""
    try:
        wait_for(lambda: not pid_alive(pid), what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; its log and thread stacks:\n{thread_dump(pid, log_path)}") from None


def kill_all(config_path: Path) -> None:
    """Test cleanup: SIGKILL, by pid, every daemon this test started for its config."""
    for pid in daemon_pids(config_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not daemon_pids(config_path), "leftover daemons to die")
