"""The daemon process as the client sees it: its command, its socket, start, probe, stop.

Theory of operation
-------------------
Everything the client does to or learns about the daemon *process* is here, so
each question has one answer:

* **Which command runs it** (``daemon_command``): ``$CIDX_DAEMON_COMMAND``, then
  ``daemon.command`` in the user's own config (``$XDG_CONFIG_HOME/cidx/config.json``),
  then ``cidx-daemon`` next to this client, then on PATH. Never from a project's
  config: a project's files are data, and a config planted in a shared parent
  directory or committed to a repository would otherwise run as whoever types
  ``cidx query``. A project config that names a command is reported, once per
  invocation, as ignored.
* **What a connect outcome means** (``classify``, the only place that decides):
  no socket file -> ``absent`` (start one); refused -> ``stale`` (a dead daemon's
  socket: nobody listens); a timeout or EAGAIN -> ``busy`` (alive but the backlog is
  full, or still starting: wait); anything in the way that is not our socket (a
  symlink, a directory, a file, no permission) -> ``unusable`` (never touched).
* **Is it there** (``probe``): a connection plus one ``status`` call -> ``running``
  (answers), ``unresponsive`` (accepts but does not answer: hung or SIGSTOPped),
  or the connect states above.
* **Which pid may be signalled** (``proven_pid``): the pid the kernel reports for
  the socket's listener (``SO_PEERCRED``), never what a daemon says; it must
  belong to our uid, and its command line must be this project's ``serve``.
  Otherwise nothing is killed and the caller says what was found.
* **Stop** (``stop``): SIGTERM the proven pid (the daemon drains and exits), wait
  until the process is gone, escalate to SIGKILL, and report what really happened.

Starting never sleeps and hopes: ``serve --detach`` returns once its socket
accepts connections (a readiness pipe inside the daemon package).
"""

from __future__ import annotations

import os
import sys
import time

from cidx_shared import config as cfgmod

from .rpc_client import ProtocolError, RemoteError, RpcConnection, TransportError, connect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INSTALL_HINT = ("build and install it with 'python3 build.py install', put the single-file "
                "'cidx-daemon.pyz' from dist/ on PATH as 'cidx-daemon', or name the command in "
                "$CIDX_DAEMON_COMMAND or in 'daemon.command' of ~/.config/cidx/config.json")
COMMAND_ENV = "CIDX_DAEMON_COMMAND"
PROBE_TIMEOUT_S = 3.0
STOP_TIMEOUT_S = 10.0
KILL_TIMEOUT_S = 5.0

ABSENT, STALE, BUSY, UNUSABLE = "absent", "stale", "busy", "unusable"
RUNNING, UNRESPONSIVE = "running", "unresponsive"

_warned_project_command = False


class DaemonNotInstalled(RuntimeError):
    """No daemon command can be found: no restart can fix that, the user must install it."""


class Unavailable(Exception):
    """No connection: ``state`` is absent / stale / busy / unusable, ``reason`` says why."""

    def __init__(self, state: str, reason: str) -> None:
        super().__init__(state, reason)
        self.state = state
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


# --------------------------------------------------------------------------- paths and command


def socket_path(config_path: str) -> str:
    return cfgmod.sibling(config_path, cfgmod.SOCKET_NAME)


def log_path(config_path: str) -> str:
    return cfgmod.sibling(config_path, cfgmod.LOG_NAME)


def daemon_command(project_cfg: dict | None = None) -> list[str]:
    """argv prefix that runs the daemon package's CLI (see the module docstring)."""
    if project_cfg is not None and project_cfg.get("daemon", {}).get("command"):
        _warn_project_command()
    env = os.environ.get(COMMAND_ENV, "").strip()
    if env:
        return _split_command(env, COMMAND_ENV)
    user = cfgmod.load_user_config()
    configured = user.get("daemon", {}).get("command")
    if configured:
        return list(configured)
    here = os.path.dirname(os.path.abspath(sys.argv[0] or "."))
    candidates = [os.path.join(here, "cidx-daemon")]
    candidates += [os.path.join(d, "cidx-daemon") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return [path]
    raise DaemonNotInstalled(f"the cidx daemon package is not installed: {INSTALL_HINT}")


def _split_command(text: str, source: str) -> list[str]:
    """A JSON argv list, or a shell-like string."""
    if text.startswith("["):
        from cidx_shared import jsontext

        try:
            argv = jsontext.loads(text)
        except ValueError:
            argv = None
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
            raise cfgmod.ConfigError(f"{source} must be a JSON list of strings or a command line")
        return argv
    import shlex

    return shlex.split(text)


def _warn_project_command() -> None:
    global _warned_project_command
    if not _warned_project_command:
        _warned_project_command = True
        sys.stderr.write("warning: ignoring 'daemon.command' in the project's config: a project's files "
                         f"never choose a program to run (set {COMMAND_ENV} or daemon.command in "
                         f"{cfgmod.user_config_path()})\n")


# --------------------------------------------------------------------------- connect and probe


def classify(exc: TransportError) -> str:
    """The meaning of a failed connect (the one place that decides it; see the module doc)."""
    if exc.kind == "absent":
        return ABSENT
    if exc.kind == "refused":
        return STALE
    if exc.kind == "timeout":
        return BUSY
    return UNUSABLE


def check_socket_file(sock: str) -> None:
    """Raise Unavailable unless ``sock`` is absent or a socket of ours (one lstat, ~2 us).

    connect() follows symlinks and reports a directory or a plain file as "refused",
    which would read as a stale socket and get it unlinked: look first.
    """
    import stat

    try:
        st = os.lstat(sock)
    except FileNotFoundError:
        raise Unavailable(ABSENT, "no daemon socket") from None
    except OSError as exc:
        raise Unavailable(UNUSABLE, f"cannot inspect {sock}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise Unavailable(UNUSABLE, f"{sock} is a symbolic link, not the daemon's socket; remove it")
    if not stat.S_ISSOCK(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a socket"
        raise Unavailable(UNUSABLE, f"{sock} is {kind}; remove it")
    if st.st_uid != os.geteuid():
        raise Unavailable(UNUSABLE, f"{sock} belongs to uid {st.st_uid}, not to you")


def open_connection(config_path: str, timeout: float) -> RpcConnection:
    """A connection to this project's daemon, or Unavailable(state, reason)."""
    sock = socket_path(config_path)
    check_socket_file(sock)
    try:
        return connect(sock, timeout)
    except TransportError as exc:
        raise Unavailable(classify(exc), str(exc)) from None


class Probe:
    """What ``probe`` found: ``state``, the kernel-proven ``pid`` if connected, the
    daemon's ``status`` document if it answered, and ``reason`` otherwise."""

    __slots__ = ("pid", "reason", "state", "status")

    def __init__(self, state: str, reason: str = "", pid: int | None = None,
                 status: dict | None = None) -> None:
        self.state = state
        self.reason = reason
        self.pid = pid
        self.status = status


def probe(config_path: str, timeout: float = PROBE_TIMEOUT_S) -> Probe:
    """running / unresponsive / absent / stale / busy / unusable (see the module docstring)."""
    from cidx_shared import jsontext

    try:
        conn = open_connection(config_path, timeout)
    except Unavailable as exc:
        return Probe(exc.state, exc.reason)
    with conn:
        pid = _peer_pid(conn)
        try:
            status = jsontext.loads(conn.call("status", timeout=timeout))
        except TransportError as exc:
            return Probe(UNRESPONSIVE, f"the daemon accepts connections but does not answer ({exc})", pid)
        except (RemoteError, ProtocolError, ValueError) as exc:
            return Probe(UNRESPONSIVE, f"something answers on the socket that is not a cidx daemon ({exc})",
                         pid)
    return Probe(RUNNING, "", pid, status if isinstance(status, dict) else {})


def _peer_pid(conn: RpcConnection) -> int | None:
    try:
        pid, _uid, _gid = conn.peer_credentials()
    except OSError:
        return None
    return pid if pid > 0 else None


# --------------------------------------------------------------------------- proving a pid


def proven_pid(pid: int | None, config_path: str) -> tuple[int | None, str]:
    """(pid, "") when ``pid`` is this project's daemon and ours to signal, else (None, why).

    ``pid`` must come from SO_PEERCRED. Checked here: the process exists, runs as our
    uid, and its command line is ``... serve --config <this config> ...``.
    """
    if pid is None:
        return None, "the kernel did not name the socket's owner"
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            uid_line = next((line for line in fh if line.startswith("Uid:")), "")
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except FileNotFoundError:
        return None, f"process {pid} is gone"
    except OSError as exc:
        return None, f"cannot inspect process {pid}: {exc.strerror or exc}"
    uids = uid_line.split()[1:2]
    if not uids or int(uids[0]) != os.geteuid():
        return None, f"process {pid} does not belong to you"
    if b"serve" not in argv or os.fsencode(os.path.abspath(config_path)) not in argv:
        shown = b" ".join(a for a in argv if a)[:200].decode("utf-8", "replace")
        return None, f"process {pid} is not this project's daemon ({shown!r})"
    return pid, ""


def _gone(pid: int) -> bool:
    """Exited, or a zombie nobody reaped yet (a detached daemon's reaper is init)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    except OSError:
        return False
    return state in (b"Z", b"X")


def wait_gone(pid: int, timeout: float) -> bool:
    """Poll until the process is gone; the first checks are tight (a daemon exits in ms)."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while not _gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def kill_proven(pid: int, *, graceful: bool) -> str:
    """Signal a proven daemon pid until it is gone; returns what happened, in words."""
    import signal

    if graceful:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return "exited"
        if wait_gone(pid, STOP_TIMEOUT_S):
            return "stopped"
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "exited"
    if wait_gone(pid, KILL_TIMEOUT_S):
        return "killed"
    return "still running after SIGKILL"


def remove_stale_socket(config_path: str) -> bool:
    """Unlink the socket only if it is our socket file and nobody listens on it."""
    sock = socket_path(config_path)
    try:
        conn = open_connection(config_path, 1.0)
    except Unavailable as exc:
        if exc.state == STALE:
            try:
                os.unlink(sock)
            except FileNotFoundError:
                pass
            return True
        return False
    conn.close()
    return False


# --------------------------------------------------------------------------- start and stop


def start(project_cfg: dict, config_path: str, timeout: float = 120.0) -> tuple[bool, str]:
    """Start the daemon detached and wait for its readiness; (ok, message)."""
    import subprocess

    argv = [*daemon_command(project_cfg), "serve", "--config", os.path.abspath(config_path), "--detach"]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False, f"daemon did not become ready within {timeout:.0f}s"
    except OSError as exc:
        return False, f"cannot run {argv[0]}: {exc.strerror or exc}"
    text = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode == 0:
        return True, text
    return False, text.splitlines()[-1] if text else f"daemon exited with code {proc.returncode}"


class StopResult:
    """``stopped``: a daemon was there and is gone; ``message``: the truth, for the user."""

    __slots__ = ("message", "pid", "stopped")

    def __init__(self, stopped: bool, message: str, pid: int | None = None) -> None:
        self.stopped = stopped
        self.message = message
        self.pid = pid


def stop(config_path: str, *, timeout: float = PROBE_TIMEOUT_S) -> StopResult:
    """Stop this project's daemon if one runs: prove its pid, SIGTERM, wait, escalate.

    Works with a broken or missing config (it needs only the socket's path) and with
    a daemon of any version (signals, not RPC). Raises nothing for a daemon that is
    not there; a process that cannot be proven is left alone and reported.
    """
    try:
        conn = open_connection(config_path, timeout)
    except Unavailable as exc:
        if exc.state == STALE:
            remove_stale_socket(config_path)
            return StopResult(False, "Daemon not running; removed a stale socket")
        if exc.state == ABSENT:
            return StopResult(False, "Daemon not running")
        return StopResult(False, f"Daemon not stopped: {exc.reason}")
    with conn:
        pid, why = proven_pid(_peer_pid(conn), config_path)
    if pid is None:
        return StopResult(False, f"Daemon not stopped: {why}; nothing was signalled")
    outcome = kill_proven(pid, graceful=True)
    remove_stale_socket(config_path)
    if outcome == "still running after SIGKILL":
        return StopResult(False, f"Daemon (pid {pid}) is still running after SIGKILL", pid)
    verb = {"stopped": "stopped", "killed": "did not stop in time; killed", "exited": "stopped"}[outcome]
    return StopResult(True, f"Daemon {verb} (pid {pid})", pid)


def run_daemon_cli(args: list[str], config_path: str | None, project_cfg: dict | None = None) -> int:
    """Hand a command to the daemon package with the terminal attached (progress bars)."""
    import subprocess

    argv = [*daemon_command(project_cfg), *(["--config", str(config_path)] if config_path else []), *args]
    # CIDX_PROG: its usage lines say "cidx index", as the user typed.
    child = subprocess.Popen(argv, env={**os.environ, "CIDX_PROG": "cidx"})
    try:
        return child.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached the child too (one process group): let it finish its line and say so.
        try:
            child.wait(timeout=10)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            child.terminate()
            child.wait()
        return 130


def status_snapshot(config_path: str) -> dict[str, Any]:
    """``probe`` as a plain dict (for ``cidx daemon status --json`` and the MCP tool)."""
    found = probe(config_path)
    return {"state": found.state, "reason": found.reason or None, "pid": found.pid,
            "socket": socket_path(config_path), "log": log_path(config_path), "daemon": found.status}
