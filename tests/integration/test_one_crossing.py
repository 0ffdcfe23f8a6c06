"""One crossing per query: counted on the wire between the real client and a real daemon.

A recording proxy takes the daemon's place at ``.code-indexer/daemon.sock`` (the
daemon keeps listening on its socket, renamed aside), forwards every byte both
ways, and splits the stream into rpyc messages with the client's own codec.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cidx import rpc_wire as w
from daemon_helpers import build_indexed_project, copy_project, kill_all, start_detached
from helpers import CLIENT_SRC, env


class RecordingProxy:
    """Listens at ``front``, forwards to ``back``, records (direction, message type, handler)."""

    def __init__(self, front: Path, back: Path) -> None:
        self.back = back
        self.messages: list[tuple[str, int, object]] = []
        self._lock = threading.Lock()
        self._pumps: list[threading.Thread] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.listener.bind(str(front))
        finally:
            os.umask(old)
        self.listener.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(self.back))
            for args in ((client, upstream, "to daemon"), (upstream, client, "to client")):
                pump = threading.Thread(target=self._pump, args=args, daemon=True)
                self._pumps.append(pump)
                pump.start()

    def drained(self, timeout: float = 10.0) -> list[tuple[str, int, object]]:
        """The messages once every connection so far has ended: the client's process can exit
        before the proxy's thread has read its last frame (the goodbye) off the socket."""
        for pump in list(self._pumps):
            pump.join(timeout)
        with self._lock:
            return list(self.messages)

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        decoder = w.FrameDecoder()
        try:
            while data := src.recv(65536):
                for payload in decoder.feed(data):
                    msg_type, _seq, body = w.parse_message(payload)
                    handler = body[0] if msg_type == w.MSG_REQUEST else None
                    with self._lock:
                        self.messages.append((direction, msg_type, handler))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture()
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, RecordingProxy]]:
    template = build_indexed_project(tmp_path_factory.mktemp("template") / "proj")
    config = copy_project(template, tmp_path_factory.mktemp("served") / "proj")
    assert start_detached(config).returncode == 0
    sock = config.parent / "daemon.sock"
    real = config.parent / "real.sock"
    os.rename(sock, real)  # the daemon keeps listening on the same inode
    proxy = RecordingProxy(sock, real)
    try:
        yield config, proxy
    finally:
        proxy.close()
        kill_all(config)


def test_a_query_is_one_request_frame_and_one_reply(proxied: tuple[Path, RecordingProxy]) -> None:
    config, proxy = proxied
    e = env()
    e["PYTHONPATH"] = os.pathsep.join([str(CLIENT_SRC), e["PYTHONPATH"]])
    proc = subprocess.run([sys.executable, "-m", "cidx", "query", "add numbers", "--fts", "--json"],
                          cwd=config.parent.parent, env=e, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '"calc.py"' in proc.stdout
    messages = proxy.drained()
    requests = [h for d, t, h in messages if d == "to daemon" and t == w.MSG_REQUEST]
    replies = [t for d, t, h in messages if d == "to client"]
    # One CALLATTR (no GETROOT, no handshake), then the goodbye the client sends as it closes.
    assert requests == [w.HANDLE_CALLATTR, w.HANDLE_CLOSE], messages
    assert replies == [w.MSG_REPLY], messages
