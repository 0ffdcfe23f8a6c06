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
from .mcp_protocol import LATEST_VERSION, Message, Session, ToolFailure, encode_reply, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

#: How long ``status`` may take (it opens the index and hashes nothing); ``index`` has no limit.
STATUS_TIMEOUT_S = 120.0


def log(message: str) -> None:
    sys.stderr.write(f"cidx mcp: {message.rstrip()}\n")
    sys.stderr.flush()


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

    def index(self) -> dict[str, Any]:
        config_path, cfg = self._project()
        # One run at a time from this server; another process's run is refused by the
        # index lock, and that refusal is the tool's answer.
        with self._index_lock:
            return self._daemon_json(cfg, config_path, ["index", "--json"], timeout=None)

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
    for raw in source:
        if not raw.strip():
            continue
        msg = parse(raw)
        if msg.kind == "request" and msg.method == "tools/call":
            worker = threading.Thread(target=_answer, args=(session, msg, writer), daemon=True)
            worker.start()
            workers = [w for w in workers if w.is_alive()] + [worker]
            continue
        _answer(session, msg, writer)
        if writer.broken:
            break
    for worker in workers:  # a client that closed its end early may still read the answers
        worker.join()
    channel.close()
    return 0


def _answer(session: Session, msg: Message, writer: _Writer) -> None:
    reply = session.respond(msg)
    if reply is None:
        return
    result = reply.get("result")
    if isinstance(result, dict) and result.get("isError"):
        log(f"tool call {msg.id!r}: {result['content'][0]['text']}")
    writer.write(encode_reply(msg, reply))
