"""``serve --detach``: become a background daemon, and tell the starter when it is usable.

Why a readiness pipe: the starter must not return before the socket accepts
connections (its next step is to connect), and must not guess with sleeps.
The daemon writes exactly one line to the pipe:

* ``ready <pid>``      the socket listens; exit 0
* ``running <text>``   another daemon already serves this project; exit 0
* ``error <text>``     start-up failed; exit 1

EOF without a line (the daemon died) or no line within the timeout is a
failure too. The double fork + ``setsid`` detaches from the starter's session
and terminal, so closing the terminal or the client never kills the daemon.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

READY_TIMEOUT_S = 30.0
_MAX_LINE = 4096


def parse_ready_line(data: bytes) -> tuple[str, str]:
    """First line from the pipe -> (kind, detail); kind is ready/running/error/eof."""
    if not data:
        return "eof", "the daemon exited before it was ready"
    line = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    kind, _, detail = line.partition(" ")
    if kind in ("ready", "running", "error"):
        return kind, detail
    return "error", f"unexpected readiness message: {line!r}"


def exit_code_for(kind: str) -> int:
    return 0 if kind in ("ready", "running") else 1


def send_ready(fd: int | None, kind: str, detail: str) -> None:
    """Write the one readiness line and close the pipe (at most once per fd)."""
    if fd is None:
        return
    msg = f"{kind} {' '.join(detail.split())}\n".encode()[:_MAX_LINE]
    try:
        os.write(fd, msg)
    except OSError:
        pass  # the starter gave up waiting; nothing to tell
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def wait_ready(read_fd: int, timeout: float = READY_TIMEOUT_S) -> tuple[str, str]:
    """Block until the daemon's readiness line, EOF, or the timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout", f"the daemon did not become ready within {timeout:g} s"
            readable, _, _ = select.select([read_fd], [], [], left)
            if not readable:
                continue
            chunk = os.read(read_fd, _MAX_LINE)
            if not chunk:
                break
            buf += chunk
    finally:
        os.close(read_fd)
    return parse_ready_line(buf)


def redirect_stdio(log_path: Path) -> None:
    """stdin <- /dev/null; stdout/stderr -> the daemon log (append), for stray output."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)


def daemonize(log_path: Path) -> tuple[bool, int]:
    """Fork into the background.

    Returns ``(True, ready_write_fd)`` in the daemon and ``(False, read_fd)`` in
    the starter, which should then call :func:`wait_ready`. Call before any
    thread is started: fork copies only the calling thread.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid > 0:  # the starter
        os.close(write_fd)
        os.waitpid(pid, 0)  # the intermediate child exits at once
        return False, read_fd
    # intermediate child: new session, then fork again so the daemon can never
    # reacquire a controlling terminal, and exit so the starter can reap it
    try:
        os.close(read_fd)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        os.chdir("/")  # do not pin the starter's cwd (a mount may go away)
        redirect_stdio(log_path)
    except BaseException as exc:
        send_ready(write_fd, "error", f"detach failed: {exc}")
        os._exit(1)
    return True, write_fd
