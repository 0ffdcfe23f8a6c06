"""The stdlib client driven as a user drives it: real processes, a real daemon, a real index.

Shared by the integration tests of the client (``from client_helpers import ...``): an
indexed template project copied per test, ``cidx(...)`` to run the client from the
source tree the way the zipapp runs it, and /proc-based views of the daemon processes.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cidx_daemon.index.indexer import index_project
from cidx_shared import config as cfgmod
from helpers import CLIENT_SRC, env, write_project

BIN = os.path.dirname(sys.executable)  # the venv's bin: cidx-daemon lives here


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = write_project(tmp_path_factory.mktemp("template"))
    index_project(cfgmod.init_project(root))
    return root


@pytest.fixture()
def project(template: Path, tmp_path: Path):
    root = tmp_path / "proj"
    shutil.copytree(template, root, symlinks=True)
    yield root
    cidx("daemon", "stop", cwd=root)
    for pid in daemon_pids(root):
        os.kill(pid, signal.SIGKILL)


def client_env(**extra: str) -> dict[str, str]:
    e = env(**extra)
    e["PYTHONPATH"] = str(CLIENT_SRC)  # the client sees only itself, as in the zipapp
    e["PATH"] = BIN + os.pathsep + e.get("PATH", "")
    return e


def cidx(*args: str, cwd: Path, env_: dict | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cidx", *args], cwd=cwd, env=env_ or client_env(),
                          capture_output=True, text=True, timeout=timeout)


def daemon_pids(root: Path) -> list[int]:
    """Live daemon processes serving this project (from /proc, not from the socket)."""
    config = str(root / ".code-indexer" / "config.json")
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and b"serve" in argv and config.encode() in argv:
            pids.append(int(entry))
    return pids


def status(root: Path) -> dict:
    return json.loads(cidx("daemon", "status", "--json", cwd=root).stdout)


def kill_daemon(root: Path) -> int:
    pid = status(root)["daemon"]["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid in daemon_pids(root) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pid


def run_on_a_terminal(argv: list[str], cwd: Path, **env: str) -> str:
    """Run with stdout on a pseudo-terminal, as a user's shell would; returns what it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, env=client_env(**env), stdout=follower, stderr=follower,
                            stdin=subprocess.DEVNULL)
    os.close(follower)
    out = drain(leader, 60)
    proc.wait(timeout=60)
    os.close(leader)
    return out.decode("utf-8", "replace").replace("\r\n", "\n")


def drain(leader: int, timeout: float) -> bytes:
    """Everything a pseudo-terminal's other side writes until it closes (or is silent for `timeout`)."""
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], timeout)
        if not ready:
            return out
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the other side is gone
            return out
        if not data:
            return out
        out += data
