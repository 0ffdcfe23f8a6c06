"""The stdlib client against a REAL rpyc 6 ThreadedServer on a real Unix socket.

The server runs in a subprocess (so it can be SIGKILLed) with the daemon's
protocol config; nothing is mocked.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cidx import rpc_client
from cidx.rpc_client import ProtocolError, RemoteError, RpcConnection, TransportError, connect, connect_unix

SERVER_SCRIPT = r"""
import os, sys, time
import rpyc
from rpyc.utils.server import ThreadedServer

from cidx_daemon.server.service import publish_root


class TestService(rpyc.Service):
    def on_connect(self, conn):
        publish_root(conn, self)  # as the daemon does: no GETROOT needed

    def exposed_echo(self, value):
        return value

    def exposed_add(self, a, b):
        return a + b

    def exposed_big(self, n=20000):
        return "".join(str(i) for i in range(n))  # > 3000 bytes: sent compressed

    def exposed_fail(self):
        raise ValueError("boom")

    def exposed_sleep(self, seconds):
        time.sleep(seconds)
        return "slept"

    def exposed_dict(self):
        return {"a": 1}

    def exposed_pid(self):
        return os.getpid()


path = sys.argv[1]
directory, name = os.path.split(path)
# Binding has the same sun_path limit as connecting: go through the directory fd.
fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
bind_path = path if len(path) < 100 else f"/proc/self/fd/{fd}/{name}"
config = dict(
    allow_pickle=False,
    allow_public_attrs=False,
    include_local_traceback=False,
    allow_all_attrs=False,
    bind_threads=False,
)
server = ThreadedServer(TestService, socket_path=bind_path, protocol_config=config)
server._listen()
print("ready", flush=True)
server.start()
"""


class Server:
    def __init__(self, path: Path, script: Path) -> None:
        self.path = path
        env = {k: v for k, v in os.environ.items() if k != "RPYC_BIND_THREADS"}
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"test server did not start (exit {self.proc.wait()})")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rpc-script") / "server.py"
    path.write_text(SERVER_SCRIPT)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, script: Path) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("rpc") / "daemon.sock", script)
    yield srv
    srv.kill()


@pytest.fixture
def own_server(tmp_path: Path, script: Path) -> Iterator[Server]:
    """A server this test may kill."""
    srv = Server(tmp_path / "daemon.sock", script)
    yield srv
    srv.kill()


@pytest.fixture
def conn(server: Server) -> Iterator[RpcConnection]:
    with connect(server.path, 10) as c:
        yield c


# ---------------------------------------------------------------------------
# calls
# ---------------------------------------------------------------------------
def test_echo_and_add(conn: RpcConnection) -> None:
    assert conn.call("echo", "héllo") == "héllo"
    assert conn.call("add", 2, 3) == 5
    assert conn.call("add", 1.5, 2**80) == 1.5 + 2**80


# fmt: off
ARGUMENT_VALUES = [
    None, True, False, 0, -1, 2**100, -(10**300), 1.25, float("inf"), "", "日本", b"", b"\x00raw",
    (), (1, ("a", None, (b"x",))), frozenset({1, "two"}), tuple(range(300)),
]
# fmt: on


@pytest.mark.parametrize("value", ARGUMENT_VALUES)
def test_every_argument_type_round_trips(conn: RpcConnection, value: object) -> None:
    result = conn.call("echo", value)
    assert type(result) is type(value) and result == value


def test_big_reply_is_inflated(conn: RpcConnection) -> None:
    expected = "".join(str(i) for i in range(20000))
    assert conn.call("big") == expected
    huge = conn.call("big", 600_000)  # ~3.4 MB: many recv()s
    assert isinstance(huge, str) and len(huge) > 3_000_000 and huge.endswith("599999")


def test_big_argument(conn: RpcConnection) -> None:
    text = "x" * 1_000_000 + "é"
    assert conn.call("echo", text) == text


def test_remote_exception(conn: RpcConnection) -> None:
    with pytest.raises(RemoteError) as info:
        conn.call("fail")
    assert (info.value.module, info.value.name, info.value.message) == ("builtins", "ValueError", "boom")
    assert info.value.remote_traceback == "<traceback denied>"
    assert conn.call("echo", "still usable") == "still usable"


def test_missing_method_is_remote_attribute_error(conn: RpcConnection) -> None:
    with pytest.raises(RemoteError) as info:
        conn.call("no_such_method")
    assert info.value.name == "AttributeError"
    assert conn.call("add", 1, 1) == 2


def test_dict_reply_is_protocol_error(conn: RpcConnection) -> None:
    with pytest.raises(ProtocolError, match="reference, not a value"):
        conn.call("dict")
    assert conn.call("echo", 1) == 1  # the stream stays in sync


def test_unsendable_argument_fails_before_sending(conn: RpcConnection) -> None:
    with pytest.raises(TypeError):
        conn.call("echo", [1, 2])
    assert conn.call("echo", "ok") == "ok"


def test_many_sequential_calls_on_one_connection(conn: RpcConnection) -> None:
    for i in range(2000):
        assert conn.call("add", i, 1) == i + 1
        if i % 500 == 0:
            assert len(conn.call("big")) > 3000


def test_eight_threads_with_their_own_connections(server: Server) -> None:
    errors: list[BaseException] = []

    def worker(tid: int) -> None:
        try:
            with connect(server.path, 20) as c:
                for i in range(100):
                    assert c.call("add", tid, i) == tid + i
                    assert c.call("echo", f"{tid}-{i}") == f"{tid}-{i}"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)


def test_close_is_idempotent_and_final(server: Server) -> None:
    c = connect(server.path, 5)
    assert c.call("echo", 1) == 1
    c.close()
    c.close()
    assert c.closed
    with pytest.raises(TransportError) as info:
        c.call("echo", 1)
    assert info.value.kind == "eof"


def test_close_before_any_call(server: Server) -> None:
    connect(server.path, 5).close()
    with connect(server.path, 5) as c:  # the server is unaffected
        assert c.call("echo", "x") == "x"


def test_call_timeout_keeps_connection_usable(conn: RpcConnection) -> None:
    with pytest.raises(TransportError) as info:
        conn.call("sleep", 1.0, timeout=0.2)
    assert info.value.kind == "timeout"
    assert not conn.closed
    # The late "slept" reply arrives first and is dropped by sequence number.
    assert conn.call("echo", "after", timeout=10) == "after"


def test_long_socket_path(tmp_path: Path, script: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "daemon.sock"
    assert len(str(path)) >= 150
    srv = Server(path, script)
    try:
        with connect(path, 5) as c:
            assert c.call("echo", "far") == "far"
        with connect(str(path), 5) as c:
            assert c.call("add", 1, 2) == 3
    finally:
        srv.kill()


def test_long_socket_path_without_proc(tmp_path: Path, script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where /proc is missing the client connects through a temporary symlink."""
    deep = tmp_path / ("f" * 70) / ("g" * 70)
    deep.mkdir(parents=True)
    path = deep / "daemon.sock"
    srv = Server(path, script)
    monkeypatch.setattr(rpc_client, "_PROC_FD_DIR", str(tmp_path / "no-proc"))
    try:
        with connect(path, 5) as c:
            assert c.call("echo", "linked") == "linked"
    finally:
        srv.kill()


def test_connect_leaves_no_fds_behind(server: Server) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        connect(server.path, 5).close()
    assert len(os.listdir("/proc/self/fd")) <= before


# ---------------------------------------------------------------------------
# failures the recovery logic tells apart
# ---------------------------------------------------------------------------
def test_missing_socket_is_absent(tmp_path: Path) -> None:
    for path in (tmp_path / "daemon.sock", tmp_path / "no-dir" / "daemon.sock"):
        with pytest.raises(TransportError) as info:
            connect_unix(path, 1)
        assert info.value.kind == "absent"
    long_missing = tmp_path / ("m" * 80) / ("n" * 80) / "daemon.sock"
    with pytest.raises(TransportError) as info:
        connect_unix(long_missing, 1)
    assert info.value.kind == "absent"


def test_stale_socket_is_refused(own_server: Server) -> None:
    with connect(own_server.path, 5) as c:
        assert c.call("echo", 1) == 1
    own_server.kill()
    assert own_server.path.exists()
    with pytest.raises(TransportError) as info:
        connect_unix(own_server.path, 1)
    assert info.value.kind == "refused"


def test_server_killed_mid_call(own_server: Server) -> None:
    c = connect(own_server.path, 30)
    assert c.call("echo", 1) == 1
    threading.Timer(0.3, own_server.kill).start()
    with pytest.raises(TransportError) as info:
        c.call("sleep", 30)
    assert info.value.kind in {"eof", "reset"}
    assert c.closed


def test_server_killed_between_calls(own_server: Server) -> None:
    c = connect(own_server.path, 5)
    assert c.call("echo", 1) == 1
    own_server.kill()
    with pytest.raises(TransportError) as info:
        c.call("echo", 2)
    assert info.value.kind in {"eof", "reset"}


def test_full_backlog_is_timeout(tmp_path: Path) -> None:
    """A listener that never accepts: the daemon is alive but swamped."""
    path = tmp_path / "busy.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    held = []
    try:
        start = time.monotonic()
        with pytest.raises(TransportError) as info:
            for _ in range(64):
                held.append(connect_unix(path, 0.3))
        assert info.value.kind == "timeout"
        assert time.monotonic() - start < 10
    finally:
        for s in held:
            s.close()
        listener.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unreadable_directory_is_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(locked / "daemon.sock"))
    listener.listen(1)
    locked.chmod(0)
    try:
        with pytest.raises(TransportError) as info:
            connect_unix(locked / "daemon.sock", 1)
        assert info.value.kind == "permission"
    finally:
        locked.chmod(0o700)
        listener.close()


def test_on_sent_runs_after_sending_before_the_reply(conn: RpcConnection) -> None:
    """The import-warming hook runs while the daemon works, not after it answered.

    The server sleeps 0.3 s after it has the request, so the reply cannot arrive
    earlier than that after the hook ran; a hook run after the reply would leave
    (almost) no time between it and the return. A causal bound, not a speed test.
    """
    sent_at: list[float] = []
    assert conn.call("sleep", 0.3, on_sent=lambda: sent_at.append(time.monotonic())) == "slept"
    returned_at = time.monotonic()
    assert len(sent_at) == 1 and returned_at - sent_at[0] >= 0.25
