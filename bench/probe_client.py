"""Run the cidx client zipapp with timestamps at its socket calls, without touching its code.

    PYTHON -I -S bench/probe_client.py PATH/TO/cidx ARGS...

The client talks to the daemon through the C-level ``_socket.socket`` type; a
subclass installed in its place (before the client is imported) records when
the client first connects, first sends and last receives. Wrapping
``cidx.cli.print_document`` records the engine's own timing from the result
document and when rendering starts and ends. All timestamps are
CLOCK_MONOTONIC, which the parent shares, so it can subtract its spawn time.

The marks go to stderr as the last line, ``CIDX-PROBE {json}``. The client is
started the way the archive's /bin/sh launcher starts it (archive first on
``sys.path``, ``cidx.__main__.run``); ``run`` leaves through ``posix._exit``,
which the probe intercepts to write its marks first. What the wrapper itself
costs is measured by running it with ``--version`` next to the plain zipapp.
"""

import _socket
import sys
import time

CLOCK = time.CLOCK_MONOTONIC
MARKS: dict[str, object] = {"python_start": time.clock_gettime(CLOCK)}
PREFIX = "CIDX-PROBE "


class _TimedSocket(_socket.socket):
    """Records the first connect/send and the last receive; otherwise the real socket."""

    __slots__ = ()

    def connect(self, address):  # type: ignore[no-untyped-def]
        MARKS.setdefault("connect", time.clock_gettime(CLOCK))
        return super().connect(address)

    def sendall(self, data, flags=0):  # type: ignore[no-untyped-def]
        MARKS.setdefault("first_send", time.clock_gettime(CLOCK))
        return super().sendall(data, flags)

    def recv(self, bufsize, flags=0):  # type: ignore[no-untyped-def]
        data = super().recv(bufsize, flags)
        MARKS["last_recv"] = time.clock_gettime(CLOCK)
        return data


def _wrap_print_document(cli: object) -> None:
    """Engine time comes from the document the client is about to render."""
    original = cli.print_document  # type: ignore[attr-defined]

    def timed(doc, *args, **kwargs):  # type: ignore[no-untyped-def]
        MARKS["render_start"] = time.clock_gettime(CLOCK)
        timing = doc.get("timing_ms") or {}
        MARKS["engine_ms"] = timing.get("total")
        MARKS["served_by"] = doc.get("served_by")
        try:
            return original(doc, *args, **kwargs)
        finally:
            sys.stdout.flush()
            MARKS["render_end"] = time.clock_gettime(CLOCK)

    cli.print_document = timed  # type: ignore[attr-defined]


class _Exited(Exception):
    """posix._exit, intercepted: the client is done; the probe still has to report."""


def _exit(code: int) -> None:
    raise _Exited(code)


def main() -> int:
    target = sys.argv[1]
    sys.argv = [target, *sys.argv[2:]]
    _socket.socket = _TimedSocket  # type: ignore[misc]
    sys.path.insert(0, target)
    import posix

    import cidx.cli

    posix._exit = _exit  # type: ignore[assignment]
    _wrap_print_document(cidx.cli)
    from cidx.__main__ import run

    code: object = 0
    try:
        run()
    except _Exited as exc:
        code = exc.args[0]
    sys.stdout.flush()
    MARKS["end"] = time.clock_gettime(CLOCK)
    import json

    sys.stderr.write("\n" + PREFIX + json.dumps(MARKS) + "\n")
    return code if isinstance(code, int) else (0 if code is None else 1)


if __name__ == "__main__":
    raise SystemExit(main())
