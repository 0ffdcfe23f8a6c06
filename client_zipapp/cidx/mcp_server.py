"""``cidx mcp``: the MCP server's I/O loop and the backend its tools run on.

The protocol itself lives in ``mcp_protocol`` (no I/O); here are the parts that touch
the world:

* stdout is the protocol channel, so it is taken away from everything else first: the
  real stdout is kept on a private descriptor and descriptor 1 becomes stderr. A stray
  ``print``, a warning, a progress bar, a child process that inherits stdout: all land
  in the log stream, never between two JSON-RPC messages.
* ``tools/call`` runs on its own thread, so a long index run does not stop ``ping`` or
  another search; every other message is answered in line. Replies are written whole,
  one line each, under a lock.
* An ``index`` call that carries a progress token hears the index run's progress: the
  daemon command reports it as JSON lines on stderr (``--progress-json``), read here as
  they come and relayed as ``notifications/progress``. ``notifications/cancelled`` for a
  running call stops its index run (SIGTERM: the index stays at its last generation, and
  the lock dies with the process) and, as MCP asks, the cancelled call gets no reply.
* The backend answers searches with ``cli.query_document``, the function behind
  ``cidx query``: the same project lookup and the same daemon recovery (start, restart
  after a crash, standalone fallback). ``status`` and ``index`` run the daemon package's
  own commands with ``--json`` and their output captured, as ``cidx status`` and
  ``cidx index`` hand them off; a running daemon is not needed for either.

Imported only by ``cidx mcp``: the query hot path never pays for it (or for threading).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from cidx_shared import config as cfgmod
from cidx_shared import jsontext

from . import __version__
from .mcp_protocol import (
    LATEST_VERSION,
    Message,
    Session,
    ToolFailure,
    cancelled_request,
    encode,
    encode_reply,
    parse,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

#: How long ``status`` may take (it opens the index and hashes nothing); ``index`` has no limit.
STATUS_TIMEOUT_S = 120.0


def log(message: str) -> None:
    sys.stderr.write(f"cidx mcp: {message.rstrip()}\n")
    sys.stderr.flush()


class Job:
    """One running tool call, as far as cancelling it goes."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self._stop: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def on_cancel(self, stop: Callable[[], None] | None) -> None:
        """What stops the work now (None: nothing to stop any more)."""
        with self._lock:
            self._stop = stop
            if stop is not None and self.cancelled.is_set():
                stop()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled.set()
            if self._stop is not None:
                self._stop()


#: The job of the tool call this thread runs (each call has its own thread).
_current = threading.local()


def current_job() -> Job | None:
    return getattr(_current, "job", None)


class DaemonBackend:
    """The tools' work, done as the command line does it (see the module docstring)."""

    def __init__(self) -> None:
        self._index_lock = threading.Lock()

    def search(self, request: dict[str, Any]) -> dict[str, Any]:
        from .cli import UsageError, query_document
        from .daemon_process import DaemonNotInstalled
        from .standalone import StandaloneError

        try:
            return query_document(request)
        except (UsageError, cfgmod.ConfigError, DaemonNotInstalled, StandaloneError) as exc:
            raise ToolFailure(str(exc)) from None

    def status(self) -> dict[str, Any]:
        from .daemon_process import status_snapshot

        config_path, cfg = self._project()
        index = self._daemon_json(cfg, config_path, ["status", "--json"], timeout=STATUS_TIMEOUT_S)
        return {"index": index, "daemon": status_snapshot(config_path)}

    def index(self, report: Callable[[str, int, int | None], None] | None = None) -> dict[str, Any]:
        config_path, cfg = self._project()
        # One run at a time from this server; another process's run is refused by the
        # index lock, and that refusal is the tool's answer.
        with self._index_lock:
            return self._index_run(cfg, config_path, report, current_job())

    @staticmethod
    def _index_run(cfg: dict[str, Any], config_path: str,
                   report: Callable[[str, int, int | None], None] | None, job: Job | None) -> dict[str, Any]:
        """``cidx-daemon index --json --progress-json``: progress lines relayed as they come,
        the statistics at the end; a cancelled job's process is terminated."""
        from .daemon_process import DaemonNotInstalled, daemon_command

        try:
            argv = [*daemon_command(cfg), "--config", config_path, "index", "--json", "--progress-json"]
        except (DaemonNotInstalled, cfgmod.ConfigError) as exc:
            raise ToolFailure(str(exc)) from None
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env={**os.environ, "CIDX_PROG": "cidx"})
        except OSError as exc:
            raise ToolFailure(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        if job is not None:
            job.on_cancel(proc.terminate)
        other: list[str] = []  # stderr lines that are not progress: the last says what failed
        try:
            assert proc.stderr is not None and proc.stdout is not None
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace").strip()
                step = _progress_line(line)
                if step is None:
                    if line:
                        other = [*other[-19:], line]
                elif report is not None:
                    report(*step)
            out = proc.stdout.read()
            proc.wait()
        finally:
            if job is not None:
                job.on_cancel(None)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if job is not None and job.cancelled.is_set():
            raise ToolFailure("cancelled: the index stays as it was before this run")
        if proc.returncode == 0:
            try:
                doc = jsontext.loads(out)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                return doc
        last = other[-1].removeprefix("error: ") if other else f"no output (exit {proc.returncode})"
        raise ToolFailure(f"'cidx index' failed: {last}")

    @staticmethod
    def _project() -> tuple[str, dict[str, Any]]:
        from .cli import UsageError, _project

        try:
            return _project()
        except (UsageError, cfgmod.ConfigError) as exc:
            raise ToolFailure(str(exc)) from None

    @staticmethod
    def _daemon_json(cfg: dict[str, Any], config_path: str, args: list[str],
                     timeout: float | None) -> dict[str, Any]:
        """Run ``cidx-daemon --config ... ARGS`` with every stream captured; its JSON answer."""
        from .daemon_process import DaemonNotInstalled, daemon_command

        try:
            argv = [*daemon_command(cfg), "--config", config_path, *args]
        except (DaemonNotInstalled, cfgmod.ConfigError) as exc:
            raise ToolFailure(str(exc)) from None
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                                  env={**os.environ, "CIDX_PROG": "cidx"}, check=False)
        except subprocess.TimeoutExpired:
            raise ToolFailure(f"'cidx {args[0]}' did not finish within {timeout:.0f}s") from None
        except OSError as exc:
            raise ToolFailure(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        if proc.returncode == 0:
            try:
                doc = jsontext.loads(proc.stdout)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                return doc
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        last = lines[-1].removeprefix("error: ") if lines else f"no output (exit {proc.returncode})"
        raise ToolFailure(f"'cidx {args[0]}' failed: {last}")


def _progress_line(line: str) -> tuple[str, int, int | None] | None:
    """(phase, done, total) from one ``--progress-json`` line, else None."""
    if not line.startswith('{"progress"'):
        return None
    try:
        step = jsontext.loads(line)["progress"]
        phase, done, total = step["phase"], step["done"], step["total"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(phase, str) and isinstance(done, int) and (total is None or isinstance(total, int))):
        return None
    return phase, done, total


class _Writer:
    """Whole lines to the protocol channel, one writer at a time."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.broken = False

    def write(self, line: str) -> None:
        with self._lock:
            if self.broken:
                return
            try:
                self._stream.write(line.encode("ascii") + b"\n")
                self._stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                self.broken = True  # the client went away: the read loop ends at EOF


def _claim_stdout() -> BinaryIO:
    """The protocol channel (the real stdout); descriptor 1 and ``sys.stdout`` become stderr."""
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return channel


def serve(project: str | None = None, *, stdin: BinaryIO | None = None) -> int:
    """Serve MCP on stdin/stdout until stdin closes."""
    if project:
        try:
            os.chdir(project)
        except OSError as exc:
            log(f"cannot use --project {project}: {exc.strerror or exc}")
            return 2
    channel = _claim_stdout()
    source = stdin if stdin is not None else sys.stdin.buffer
    writer = _Writer(channel)
    session = Session(DaemonBackend())
    found = cfgmod.find_config()
    where = os.path.dirname(os.path.dirname(found)) if found else f"{os.getcwd()} (no cidx project here yet)"
    log(f"cidx {__version__} serving {where} over stdio (MCP {LATEST_VERSION})")
    workers: list[threading.Thread] = []
    jobs: dict[Any, Job] = {}  # request id -> its running tool call
    for raw in source:
        if not raw.strip():
            continue
        msg = parse(raw)
        if msg.kind == "request" and msg.method == "tools/call":
            job = jobs[msg.id] = Job()
            worker = threading.Thread(target=_answer, args=(session, msg, writer, job, jobs), daemon=True)
            worker.start()
            workers = [w for w in workers if w.is_alive()] + [worker]
            continue
        cancelled = cancelled_request(msg)
        if cancelled is not None and cancelled in jobs:
            log(f"tool call {cancelled!r} cancelled by the client")
            jobs[cancelled].cancel()
        _answer(session, msg, writer)
        if writer.broken:
            break
    for worker in workers:  # a client that closed its end early may still read the answers
        worker.join()
    channel.close()
    return 0


def _answer(session: Session, msg: Message, writer: _Writer, job: Job | None = None,
            jobs: dict[Any, Job] | None = None) -> None:
    _current.job = job
    try:
        reply = session.respond(msg, lambda note: writer.write(encode(note)))
    finally:
        _current.job = None
        if jobs is not None:
            jobs.pop(msg.id, None)
    if reply is None or (job is not None and job.cancelled.is_set()):
        return  # a cancelled request gets no reply (MCP)
    result = reply.get("result")
    if isinstance(result, dict) and result.get("isError"):
        log(f"tool call {msg.id!r}: {result['content'][0]['text']}")
    writer.write(encode_reply(msg, reply))
