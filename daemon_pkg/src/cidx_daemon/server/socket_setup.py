"""Claim `.code-indexer/daemon.sock`: binding the socket *is* the daemon's lock.

Why no PID file: a PID file outlives a ``kill -9`` and then lies. A listening
Unix socket cannot lie: a connect either reaches a live daemon or is refused.
The short flock on ``daemon.lock`` serialises only the probe-unlink-bind step,
so 20 racing starters end with exactly one bound socket; it is released as
soon as the socket listens (a live listener is the lock from then on).

AF_UNIX addresses hold at most 107 bytes. Deep project paths still work: the
directory is opened once and every bind/connect goes through the short alias
``/proc/self/fd/N/daemon.sock`` (same inode, the socket never moves); stat and
unlink use ``dir_fd`` and need no path at all.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: sizeof(sockaddr_un.sun_path) - 1 on Linux (the last byte is the NUL).
MAX_SUN_PATH = 107
PROBE_TIMEOUT_S = 2.0


class AlreadyRunning(Exception):
    """A live daemon already answers on the socket: not an error for a starter."""


class SocketSetupError(Exception):
    """The socket could not be claimed (permissions, a non-socket in the way...)."""


# ------------------------------------------------------------------ pure policy


def decide_existing(probe: str) -> str:
    """What to do with whatever sits at the socket path, from the probe outcome.

    ``alive``/``busy``/``timeout``: something listens -> ``running`` (leave it);
    ``refused``: a dead daemon's leftover -> ``unlink`` then bind;
    ``absent``: -> ``bind``; anything else -> ``error`` (never delete what we
    do not understand).
    """
    if probe in ("alive", "busy", "timeout"):
        return "running"
    if probe == "refused":
        return "unlink"
    if probe == "absent":
        return "bind"
    return "error"


def classify_connect_error(err: int) -> str:
    """errno of a failed connect -> probe outcome for :func:`decide_existing`."""
    if err == errno.ECONNREFUSED:
        return "refused"
    if err == errno.ENOENT:
        return "absent"
    if err in (errno.EAGAIN, errno.EWOULDBLOCK):
        return "busy"  # backlog full: alive, just swamped
    return f"errno:{errno.errorcode.get(err, err)}"


def address_for(dir_fd: int, directory: Path, name: str) -> str:
    """The address string to bind/connect: the real path if it fits, else the fd alias."""
    full = str(directory / name)
    if len(os.fsencode(full)) <= MAX_SUN_PATH:
        return full
    alias = f"/proc/self/fd/{dir_fd}/{name}"
    if os.path.isdir(f"/proc/self/fd/{dir_fd}"):
        return alias
    return ""  # no /proc: callers fall back to a chdir-relative address


# ------------------------------------------------------------------ I/O layer


@contextlib.contextmanager
def _relative_to(dir_fd: int, address: str, name: str) -> Iterator[str]:
    """Yield a usable address; without /proc, chdir into the directory for the call.

    The chdir fallback changes process-wide state, so it is used only during
    start-up (single-threaded) and on systems without /proc.
    """
    if address:
        yield address
        return
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fchdir(dir_fd)
        yield name
    finally:
        os.fchdir(cwd)
        os.close(cwd)


def probe(dir_fd: int, address: str, name: str, timeout: float = PROBE_TIMEOUT_S) -> str:
    """Connect once to the socket and report what answered (no RPC traffic)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return "absent"
    if not stat.S_ISSOCK(st.st_mode):
        return "not_a_socket"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with _relative_to(dir_fd, address, name) as addr:
            sock.connect(addr)
        return "alive"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return classify_connect_error(exc.errno or 0)
    finally:
        sock.close()


@dataclass
class BoundSocket:
    """A listening socket plus what is needed to remove it later, and only if still ours."""

    listener: socket.socket
    dir_fd: int
    directory: Path
    name: str
    address: str
    inode: int
    device: int

    @property
    def path(self) -> Path:
        return self.directory / self.name

    def still_ours(self) -> bool:
        """Has no newer daemon replaced the socket file since we bound it?"""
        try:
            st = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (st.st_ino, st.st_dev) == (self.inode, self.device)

    def remove_if_ours(self, lock_name: str | None = None) -> bool:
        """Unlink the socket file unless a newer daemon owns it now. Under the lock,
        so a starter never probes halfway through our exit."""
        with _flocked(self.dir_fd, lock_name) if lock_name else contextlib.nullcontext():
            if not self.still_ours():
                return False
            try:
                os.unlink(self.name, dir_fd=self.dir_fd)
            except FileNotFoundError:
                return False
            return True

    def close(self) -> None:
        try:
            self.listener.close()
        finally:
            with contextlib.suppress(OSError):
                os.close(self.dir_fd)


@contextlib.contextmanager
def _flocked(dir_fd: int, lock_name: str | None) -> Iterator[None]:
    if lock_name is None:
        yield
        return
    fd = os.open(lock_name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def claim_socket(directory: Path, socket_name: str, lock_name: str, backlog: int = 128) -> BoundSocket:
    """Become the one daemon of ``directory`` or raise AlreadyRunning / SocketSetupError.

    Sequence, all under an exclusive flock: probe -> (unlink stale) -> bind with
    umask 0177 (socket 0600) -> listen. Only once listening is the lock dropped.
    """
    directory = Path(directory).absolute()
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise SocketSetupError(f"cannot open {directory}: {exc.strerror}") from None
    try:
        os.fchmod(dir_fd, 0o700)  # the socket's directory is private to the user
        address = address_for(dir_fd, directory, socket_name)
        with _flocked(dir_fd, lock_name):
            outcome = probe(dir_fd, address, socket_name)
            action = decide_existing(outcome)
            if action == "running":
                raise AlreadyRunning(f"a daemon is already running on {directory / socket_name}")
            if action == "error":
                raise SocketSetupError(
                    f"{directory / socket_name} exists and is not a stale socket ({outcome}); "
                    "remove it by hand")
            if action == "unlink":
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(socket_name, dir_fd=dir_fd)
            listener = _bind_listen(dir_fd, address, socket_name, backlog)
            st = os.stat(socket_name, dir_fd=dir_fd, follow_symlinks=False)
        return BoundSocket(listener, dir_fd, directory, socket_name, address or socket_name,
                           st.st_ino, st.st_dev)
    except BaseException:
        os.close(dir_fd)
        raise


def _bind_listen(dir_fd: int, address: str, name: str, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # start-up is single-threaded: the umask cannot leak
    try:
        with _relative_to(dir_fd, address, name) as addr:
            sock.bind(addr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise SocketSetupError(f"cannot bind the daemon socket: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    return sock


def connect_address(config_dir: Path, socket_name: str) -> tuple[str, int | None]:
    """For clients and tests: an address that fits sun_path, plus the dir fd to keep
    open while connecting (close it afterwards; None when the real path fits)."""
    full = str(Path(config_dir) / socket_name)
    if len(os.fsencode(full)) <= MAX_SUN_PATH:
        return full, None
    fd = os.open(config_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{socket_name}", fd
