"""Socket I/O for `rpc_wire`: connect to the daemon's Unix socket and call its methods.

Three failure families, because the client's recovery logic treats them differently:

* `TransportError` — no usable connection: ``.kind`` is one of
  ``absent`` (no socket file / directory: daemon not started),
  ``refused`` (socket file exists but nobody listens: stale, daemon died),
  ``permission`` (socket or its directory not accessible),
  ``timeout`` (connect or reply took too long: daemon hung or swamped),
  ``reset`` (connection reset / broken pipe / other socket error),
  ``eof`` (daemon closed the connection, e.g. crashed mid-call).
* `RemoteError` — the daemon answered with an exception: it is alive and the
  method ran (or does not exist).
* `ProtocolError` — the daemon answered with something this client cannot
  read (a corrupt stream, or a method returning a list/dict by reference).

Uses ``_socket`` rather than ``socket``: the ``socket`` module costs ~4 ms at
import (enum construction, ``selectors``) and this client only needs the C
socket object's connect/sendall/recv/settimeout/close.

Not thread-safe: give each thread its own `RpcConnection` (the daemon's
ThreadedServer serves each connection on its own thread anyway).
"""

from __future__ import annotations

import _socket
import os
import sys
from time import monotonic

from cidx_shared.schema import ROOT_ID_PACK

from .rpc_wire import (
    HANDLE_PING,
    MSG_REQUEST,
    FrameDecoder,
    ProtocolError,
    RemoteError,
    RemoteRef,
    SeqCounter,
    answer_request,
    build_callattr,
    build_close,
    build_request,
    decode_reply,
    encode_frame,
    parse_message,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "ProtocolError",
    "RemoteError",
    "RpcConnection",
    "TransportError",
    "connect",
    "connect_unix",
]

KIND_ABSENT = "absent"
KIND_REFUSED = "refused"
KIND_TIMEOUT = "timeout"
KIND_RESET = "reset"
KIND_EOF = "eof"
KIND_PERMISSION = "permission"

# sun_path is 108 bytes on Linux, 104 on the BSDs/macOS, including the NUL.
_SUN_PATH_MAX = 107 if sys.platform.startswith("linux") else 103
# Module-level so a test can point it at a missing directory to exercise the fallback.
_PROC_FD_DIR = "/proc/self/fd"
_RECV_SIZE = 256 * 1024
_BACKLOG_RETRY_SLEEP = 0.005


class TransportError(Exception):
    """No usable connection to the daemon; see the module docstring for ``kind``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def _kind_of(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return KIND_TIMEOUT
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return KIND_ABSENT
    if isinstance(exc, ConnectionRefusedError):
        return KIND_REFUSED
    if isinstance(exc, PermissionError):
        return KIND_PERMISSION
    if isinstance(exc, BlockingIOError):  # listen backlog still full at the deadline
        return KIND_TIMEOUT
    return KIND_RESET


def _connect_retrying(sock: _socket.socket, address: bytes, deadline: float | None) -> None:
    """connect(), retrying while the listen backlog is full.

    With a timeout the socket is non-blocking, and a Unix-socket connect to a
    full backlog fails at once with EAGAIN instead of waiting: the daemon is
    alive but busy, so wait for room until the deadline.
    """
    while True:
        try:
            sock.connect(address)
            return
        except BlockingIOError:
            if deadline is None or monotonic() >= deadline:
                raise
            from time import sleep

            sleep(_BACKLOG_RETRY_SLEEP)


def _connect_via_symlink(sock: _socket.socket, target: bytes, deadline: float | None) -> None:
    """No /proc (macOS, minimal containers): connect through a short symlink.

    connect() follows symlinks; unlike chdir() this does not disturb other
    threads. The private directory keeps the link from being hijacked.
    """
    link_dir = b"/tmp/cidx-%d-%s" % (os.getpid(), os.urandom(6).hex().encode())
    os.mkdir(link_dir, 0o700)
    try:
        link = link_dir + b"/s"
        os.symlink(target, link)
        try:
            _connect_retrying(sock, link, deadline)
        finally:
            os.unlink(link)
    finally:
        os.rmdir(link_dir)


def _connect_long(sock: _socket.socket, raw: bytes, deadline: float | None) -> None:
    """Reach a socket whose path exceeds sun_path via a short alias of its directory."""
    head, name = os.path.split(raw)
    if not os.path.isdir(_PROC_FD_DIR):
        _connect_via_symlink(sock, os.path.abspath(raw), deadline)
        return
    fd = os.open(head or b".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _connect_retrying(sock, b"%s/%d/%s" % (os.fsencode(_PROC_FD_DIR), fd, name), deadline)
    finally:
        os.close(fd)


def connect_unix(path: str | os.PathLike, timeout: float | None) -> _socket.socket:
    """Connected stream socket to ``path`` (any length); raises TransportError.

    ``timeout`` bounds the connect and stays on the socket as the default for
    later calls (`RpcConnection` picks it up). Returns the C-level socket object,
    which has the socket.socket methods the client uses.
    """
    raw = os.fsencode(path)
    deadline = None if timeout is None else monotonic() + timeout
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if len(raw) <= _SUN_PATH_MAX:
            _connect_retrying(sock, raw, deadline)
        else:
            _connect_long(sock, raw, deadline)
    except OSError as exc:
        sock.close()
        raise TransportError(_kind_of(exc), f"cannot connect to {os.fsdecode(raw)}: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


class RpcConnection:
    """One RPyC connection to the daemon, driving the pure codec in `rpc_wire`.

    After a TransportError other than a read timeout, or a ProtocolError from a
    corrupt stream, the connection is closed and further calls raise
    TransportError(kind="eof"). After a read timeout it stays open: the caller
    may ``wait_reply`` for the same answer, or make another call (the late reply
    is then recognised by its sequence number and dropped), or close.
    RemoteError and "returned a reference" leave it usable.
    """

    __slots__ = ("_closed", "_decoder", "_inbox", "_next_seq", "_pending", "_root", "_sock", "_timeout")

    def __init__(self, sock: _socket.socket, timeout: float | None = None) -> None:
        """``timeout``: default for `call`; None takes the socket's (None there: wait forever)."""
        self._sock = sock
        self._timeout = sock.gettimeout() if timeout is None else timeout
        self._decoder = FrameDecoder()
        self._inbox: list[bytes] = []
        self._next_seq = SeqCounter()
        # The daemon holds its service at a well-known id_pack: no GETROOT round trip.
        self._root = RemoteRef(ROOT_ID_PACK)
        self._pending: int | None = None  # seq of a call whose reply timed out (see wait_reply)
        self._closed = False

    def __enter__(self) -> RpcConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def call(self, method: str, *args: object, timeout: float | None = None,
             on_sent: Callable[[], object] | None = None) -> object:
        """``daemon.exposed_<method>(*args)``: one request frame, one reply frame.

        Args and result are immutable values. ``timeout`` (seconds, default: the
        connection's) covers the call. ``on_sent`` runs once the request is on the
        wire, before waiting for the reply: work done there (importing what the
        display needs) overlaps with the daemon's, for free.
        """
        if self._closed:
            raise TransportError(KIND_EOF, "connection is closed")
        if timeout is None:
            timeout = self._timeout
        deadline = None if timeout is None else monotonic() + timeout
        seq = self._next_seq()
        # Built before anything is sent, so a bad argument (TypeError) leaves the stream intact.
        payload = build_callattr(seq, self._root, method, args)
        self._pending = seq
        result = self._roundtrip(seq, payload, deadline, on_sent)
        self._pending = None
        return result

    def wait_reply(self, timeout: float | None) -> object:
        """Keep waiting for the reply of the last ``call`` that raised a timeout.

        Lets a caller check on a slow daemon (is it alive?) between waits instead of
        giving up on an answer that is on its way.
        """
        if self._closed:
            raise TransportError(KIND_EOF, "connection is closed")
        seq = self._pending
        if seq is None:
            raise TransportError(KIND_EOF, "no call is waiting for a reply")
        result = self._receive(seq, None if timeout is None else monotonic() + timeout)
        self._pending = None
        return result

    def ping(self, timeout: float) -> None:
        """rpyc's PING: answered by the connection's own thread in the daemon, so a
        daemon busy with a long query still answers, and a hung one does not."""
        if self._closed:
            raise TransportError(KIND_EOF, "connection is closed")
        seq = self._next_seq()
        self._roundtrip(seq, build_request(seq, HANDLE_PING, (b"cidx",)), monotonic() + timeout)

    def peer_credentials(self) -> tuple[int, int, int]:
        """(pid, uid, gid) of the process that listens on the other end, from the kernel
        (SO_PEERCRED): what a daemon says about itself is never trusted for a pid."""
        raw = self._sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        order = sys.byteorder
        return (int.from_bytes(raw[0:4], order, signed=True), int.from_bytes(raw[4:8], order),
                int.from_bytes(raw[8:12], order))

    def close(self) -> None:
        """Say goodbye (the server frees our state at once) and close; never raises."""
        if self._closed:
            return
        self._closed = True
        sock = self._sock
        try:
            sock.settimeout(0.0)  # never block on a goodbye to a hung daemon
            sock.sendall(encode_frame(build_close(self._next_seq())))
        except OSError:
            pass
        sock.close()

    # -- internals -----------------------------------------------------------

    def _abort(self) -> None:
        self._closed = True
        self._sock.close()

    def _set_timeout(self, deadline: float | None) -> None:
        if deadline is None:
            self._sock.settimeout(None)
            return
        remaining = deadline - monotonic()
        if remaining <= 0:
            raise TransportError(KIND_TIMEOUT, "daemon did not reply in time")
        self._sock.settimeout(remaining)

    def _send(self, frame: bytes, deadline: float | None) -> None:
        try:
            self._set_timeout(deadline)
            self._sock.sendall(frame)
        except TransportError:
            self._abort()  # nothing sent, but the caller's deadline is gone anyway
            raise
        except OSError as exc:
            # A partial frame may be on the wire: the stream is unusable.
            self._abort()
            raise TransportError(_kind_of(exc), f"sending to daemon: {exc}") from exc

    def _recv(self, deadline: float | None) -> bytes:
        self._set_timeout(deadline)
        try:
            data = self._sock.recv(_RECV_SIZE)
        except TimeoutError:
            raise TransportError(KIND_TIMEOUT, "daemon did not reply in time") from None
        except OSError as exc:
            self._abort()
            raise TransportError(_kind_of(exc), f"receiving from daemon: {exc}") from exc
        if not data:
            self._abort()
            raise TransportError(KIND_EOF, "daemon closed the connection")
        return data

    def _roundtrip(self, seq: int, payload: bytes, deadline: float | None,
                   on_sent: Callable[[], object] | None = None) -> object:
        self._send(encode_frame(payload), deadline)
        if on_sent is not None:
            on_sent()
        return self._receive(seq, deadline)

    def _receive(self, seq: int, deadline: float | None) -> object:
        inbox = self._inbox
        while True:
            while inbox:
                try:
                    msg_type, rseq, body = parse_message(inbox.pop(0))
                except ProtocolError:
                    self._abort()
                    raise
                if msg_type == MSG_REQUEST:
                    self._serve_request(rseq, body, deadline)
                elif rseq == seq:
                    return decode_reply(msg_type, body)
                # else: the reply to a call abandoned after a timeout; drop it.
            data = self._recv(deadline)
            try:
                inbox.extend(self._decoder.feed(data))
            except ProtocolError:
                self._abort()
                raise

    def _serve_request(self, seq: int, body: object, deadline: float | None) -> None:
        """The daemon asked us something (see `rpc_wire.answer_request`)."""
        try:
            reply, close_now = answer_request(seq, body)
        except ProtocolError:
            self._abort()
            raise
        if reply is not None:
            self._send(encode_frame(reply), deadline)
        if close_now:
            self._abort()
            raise TransportError(KIND_EOF, "daemon closed the connection")


def connect(path: str | os.PathLike, timeout: float | None) -> RpcConnection:
    """`connect_unix` + `RpcConnection`: ``timeout`` bounds the connect and each call."""
    return RpcConnection(connect_unix(path, timeout))
