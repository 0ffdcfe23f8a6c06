"""The sans-IO RPyC codec, checked against rpyc's own brine, Channel and Connection.

rpyc may be imported here (tests are not the client); the client modules may not.
"""

from __future__ import annotations

import itertools
import math
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rpyc.core import brine, consts
from rpyc.core.channel import Channel
from rpyc.core.protocol import Connection
from rpyc.core.service import Service

from cidx import rpc_wire as w
from cidx_daemon.server.service import publish_root
from cidx_shared.schema import ROOT_ID_PACK

settings.register_profile("cidx-wire", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cidx-wire")

# ---------------------------------------------------------------------------
# strategies and structural equality
# ---------------------------------------------------------------------------
BIG = 10**400  # beyond 256 digits: exercises TAG_INT_L4
ints = st.one_of(st.integers(-0x40, 0xB0), st.integers(-BIG, BIG))
hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=False),
    st.text(),
    st.binary(max_size=300),
    st.complex_numbers(allow_nan=False),
    st.just(Ellipsis),
    st.just(NotImplemented),
)
scalars = st.one_of(
    hashable_scalars,
    st.floats(),  # NaN and infinities outside frozensets
    st.builds(slice, ints | st.none(), ints | st.none(), ints | st.none()),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6).map(tuple),
        st.frozensets(hashable_scalars, max_size=6),
    ),
    max_leaves=30,
)


def same(a: object, b: object) -> bool:
    """Equality that distinguishes True/1, -0.0/0.0 and treats NaN as equal to NaN."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is complex:
        return same(a.real, b.real) and same(a.imag, b.imag)
    if type(a) is tuple:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is slice:
        return same((a.start, a.stop, a.step), (b.start, b.stop, b.step))
    return a == b


# ---------------------------------------------------------------------------
# brine
# ---------------------------------------------------------------------------
@given(values)
def test_dump_is_byte_identical_to_rpyc(value: object) -> None:
    assert w.dump(value) == brine.dump(value)


@given(values)
def test_load_reads_what_rpyc_dumps(value: object) -> None:
    assert same(w.load(brine.dump(value)), value)


@given(values)
def test_rpyc_reads_what_we_dump(value: object) -> None:
    assert same(brine.load(w.dump(value)), value)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 255, 256, 70_000])
def test_length_encodings_at_every_boundary(n: int) -> None:
    for value in (b"b" * n, "s" * n, "é" * n, tuple(range(n))):
        encoded = w.dump(value)
        assert encoded == brine.dump(value)
        assert w.load(encoded) == value


@pytest.mark.parametrize("n", [-0x31, -0x30, 0x9F, 0xA0, 10**254, 10**256, -(10**300)])
def test_int_encodings_at_every_boundary(n: int) -> None:
    assert w.dump(n) == brine.dump(n)
    assert w.load(brine.dump(n)) == n


def test_dump_refuses_what_brine_refuses() -> None:
    class Text(str):
        pass

    for bad in ([1], {"a": 1}, {1}, Text("x"), object(), (1, [2])):
        with pytest.raises(TypeError):
            w.dump(bad)
        assert not w.dumpable(bad) and not brine.dumpable(bad)


@given(st.binary(max_size=200))
def test_load_of_arbitrary_bytes_raises_only_protocol_error(data: bytes) -> None:
    try:
        w.load(data)
    except w.ProtocolError:
        pass


@given(values, st.data())
def test_load_of_corrupted_encodings_raises_only_protocol_error(value: object, data: st.DataObject) -> None:
    encoded = bytearray(brine.dump(value))
    i = data.draw(st.integers(0, len(encoded) - 1))
    encoded[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    for candidate in (bytes(encoded), bytes(encoded[:cut])):
        try:
            w.load(candidate)
        except w.ProtocolError:
            pass


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x10" * 5000 + b"\x00",  # nesting beyond MAX_DEPTH, not RecursionError
        b"\x1a" * 5000,
        b"\x16\x03abc",  # int with non-digits
        b"\x08\x0a\xff",  # invalid utf-8
        b"\x08\x50",  # str whose body is not bytes
        b"\x1a\x10\x19\x12\x00\x00\x00",  # frozenset({slice}) is unhashable on 3.11
        b"\x19\x11\x00\x00",  # slice of a 2-tuple
        b"\x00\x00",  # trailing bytes
        b"\x0f\xff\xff\xff\xffab",  # length beyond the data
        b"\x15\xff\xff\xff\xff\x00",  # 4G-item tuple, truncated
        b"\x07",
        b"\xf5",  # unknown tags
    ],
)
def test_load_rejects_malformed_input(data: bytes) -> None:
    with pytest.raises(w.ProtocolError):
        w.load(data)


# ---------------------------------------------------------------------------
# framing, against rpyc's real Channel over an in-memory stream
# ---------------------------------------------------------------------------
class MemoryStream:
    """The two methods Channel needs from a stream, backed by a bytes buffer."""

    MAX_IO_CHUNK = 64000

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)
        self.pos = 0

    def write(self, data: bytes) -> None:
        self.data += data

    def read(self, count: int) -> bytes:
        chunk = bytes(self.data[self.pos : self.pos + count])
        if len(chunk) < count:
            raise EOFError("short read")
        self.pos += count
        return chunk


payloads = st.lists(
    st.one_of(st.binary(max_size=100), st.binary(min_size=3001, max_size=9000), st.just(b"z" * 200_000)),
    max_size=6,
)


@given(payloads, st.lists(st.integers(0, 500_000), max_size=12))
def test_decoder_splits_rpyc_frames_at_any_cut(items: list[bytes], cuts: list[int]) -> None:
    stream = MemoryStream()
    channel = Channel(stream)
    for item in items:
        channel.send(item)  # compresses above COMPRESSION_THRESHOLD, like the server
    wire = bytes(stream.data)
    points = sorted({0, len(wire), *(c for c in cuts if c < len(wire))})
    decoder = w.FrameDecoder()
    out: list[bytes] = []
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(wire[start:end]))
    assert out == items
    assert decoder.buffered == 0


@given(st.binary(max_size=20_000), st.booleans())
def test_rpyc_channel_reads_our_frames(payload: bytes, compress: bool) -> None:
    channel = Channel(MemoryStream(w.encode_frame(payload, compress=compress)))
    assert channel.recv() == payload


def test_compressed_frame_built_by_hand_inflates() -> None:
    payload = os.urandom(1000) * 10
    body = zlib.compress(payload)
    frame = struct.pack("!LB", len(body), 1) + body + b"\n"
    assert w.FrameDecoder().feed(frame) == [payload]


@given(st.binary(max_size=300))
def test_decoder_on_garbage_raises_only_protocol_error(data: bytes) -> None:
    decoder = w.FrameDecoder(max_payload=1 << 20)
    try:
        for payload in decoder.feed(data):
            assert isinstance(payload, bytes)
    except w.ProtocolError:
        pass


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack("!LB", 3, 0) + b"abcX",  # no newline terminator
        struct.pack("!LB", 3, 2) + b"abc\n",  # unknown flag
        struct.pack("!LB", 0xFFFFFFFF, 0),  # absurd length
        struct.pack("!LB", 3, 1) + b"abc\n",  # not zlib
        struct.pack("!LB", 4, 1) + zlib.compress(b"hello")[:4] + b"\n",  # truncated zlib
    ],
)
def test_decoder_rejects_bad_frames(frame: bytes) -> None:
    with pytest.raises(w.ProtocolError):
        w.FrameDecoder(max_payload=1 << 20).feed(frame)


def test_decoder_caps_inflated_size() -> None:
    bomb = zlib.compress(b"\0" * 100_000)
    frame = struct.pack("!LB", len(bomb), 1) + bomb + b"\n"
    with pytest.raises(w.ProtocolError, match="too large"):
        w.FrameDecoder(max_payload=10_000).feed(frame)


# ---------------------------------------------------------------------------
# messages, against a real rpyc Connection over an in-memory channel
# ---------------------------------------------------------------------------
class QueueChannel:
    """Channel stand-in: the test plays the client by pushing and popping payloads."""

    def __init__(self) -> None:
        self.inbound: list[bytes] = []
        self.outbound: list[bytes] = []
        self.closed = False

    def send(self, data: bytes) -> None:
        if self.closed:
            raise EOFError("closed")
        self.outbound.append(data)

    def recv(self) -> bytes:
        return self.inbound.pop(0)

    def poll(self, timeout: float) -> bool:
        return bool(self.inbound)

    def close(self) -> None:
        self.closed = True

    def fileno(self) -> int:
        return -1


class EchoService(Service):
    def exposed_echo(self, value: object) -> object:
        return value

    def exposed_fail(self) -> None:
        raise ValueError("boom", 7)

    def exposed_dict(self) -> dict:
        return {"a": 1}

    def exposed_mixed(self) -> tuple:
        return ("a", [1])

    def exposed_kw(self, a: int, b: int = 0) -> int:
        return a * 10 + b


DAEMON_CONFIG = {
    "allow_pickle": False,
    "allow_public_attrs": False,
    "include_local_traceback": False,
    "allow_all_attrs": False,
    "bind_threads": False,
    # A Connection's __del__ sends CLOSE and waits for a reply that never comes here.
    "sync_request_timeout": 0.5,
}


def shut(conn: Connection, channel: QueueChannel) -> None:
    """Close without the 30 s wait rpyc's close() does for an unanswered CLOSE."""
    channel.closed = True  # send() now raises EOFError, which close() swallows
    conn.close()


class Peer:
    """A real rpyc server-side Connection driven synchronously, set up as the daemon's are."""

    def __init__(self, publish: bool = True) -> None:
        self.channel = QueueChannel()
        service = EchoService()
        self.conn = service._connect(self.channel, DAEMON_CONFIG)
        if publish:
            publish_root(self.conn, service)

    def close(self) -> None:
        shut(self.conn, self.channel)

    def ask(self, payload: bytes) -> tuple[int, int, object]:
        self.channel.inbound.append(payload)
        assert self.conn.serve(0)
        return w.parse_message(self.channel.outbound.pop(0))


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


def _root(peer: Peer) -> w.RemoteRef:
    """The daemon's service, addressed at its well-known id_pack: no GETROOT round trip."""
    return w.RemoteRef(ROOT_ID_PACK)


def test_close_matches_what_rpyc_sends() -> None:
    channel = QueueChannel()
    conn = Connection(Service(), channel, DAEMON_CONFIG)
    conn._async_request(consts.HANDLE_CLOSE)
    assert channel.outbound == [w.build_close(0)]
    shut(conn, channel)


def test_the_first_request_is_the_call_itself(peer: Peer) -> None:
    """One crossing: rpyc answers a CALLATTR on the well-known root with no GETROOT before it."""
    msg_type, seq, body = peer.ask(w.build_callattr(0, _root(peer), "echo", ("hi",)))
    assert (msg_type, seq) == (w.MSG_REPLY, 0)
    assert w.decode_reply(msg_type, body) == "hi"


def test_without_the_published_root_rpyc_refuses_the_call() -> None:
    """What publish_root is for: an unknown id_pack is an error, not a call."""
    peer = Peer(publish=False)
    try:
        msg_type, _, body = peer.ask(w.build_callattr(0, _root(peer), "echo", ("hi",)))
        assert msg_type == w.MSG_EXCEPTION
        with pytest.raises(w.RemoteError, match="KeyError"):
            w.decode_reply(msg_type, body)
    finally:
        peer.close()


@given(values)
@settings(max_examples=50)
def test_callattr_echoes_every_brine_value(value: object) -> None:
    peer = Peer()
    try:
        root = _root(peer)
        msg_type, seq, body = peer.ask(w.build_callattr(5, root, "echo", (value,)))
        assert (msg_type, seq) == (w.MSG_REPLY, 5)
        assert same(w.decode_reply(msg_type, body), value)
    finally:
        peer.close()


def test_callattr_with_kwargs(peer: Peer) -> None:
    root = _root(peer)
    msg_type, _, body = peer.ask(w.build_callattr(1, root, "kw", (4,), (("b", 2),)))
    assert w.decode_reply(msg_type, body) == 42


def test_remote_exception_becomes_remote_error(peer: Peer) -> None:
    root = _root(peer)
    msg_type, _, body = peer.ask(w.build_callattr(1, root, "fail", ()))
    assert msg_type == w.MSG_EXCEPTION
    with pytest.raises(w.RemoteError) as info:
        w.decode_reply(msg_type, body)
    err = info.value
    assert (err.module, err.name, err.remote_args) == ("builtins", "ValueError", ("boom", 7))
    assert err.message == str(ValueError("boom", 7))
    assert err.remote_traceback == "<traceback denied>"
    assert str(err) == "builtins.ValueError: ('boom', 7)"


def test_unknown_method_is_a_remote_attribute_error(peer: Peer) -> None:
    root = _root(peer)
    msg_type, _, body = peer.ask(w.build_callattr(1, root, "nope", ()))
    with pytest.raises(w.RemoteError, match="AttributeError"):
        w.decode_reply(msg_type, body)


@pytest.mark.parametrize("method", ["dict", "mixed"])
def test_reference_in_reply_is_protocol_error(peer: Peer, method: str) -> None:
    root = _root(peer)
    msg_type, _, body = peer.ask(w.build_callattr(1, root, method, ()))
    with pytest.raises(w.ProtocolError, match="reference, not a value"):
        w.decode_reply(msg_type, body)


def test_close_gets_no_reply(peer: Peer) -> None:
    peer.channel.inbound.append(w.build_close(3))
    try:
        peer.conn.serve(0)
    except EOFError:
        pass
    assert peer.channel.outbound == []
    assert peer.conn.closed


def _answer_server_request(handler: int, *args: object) -> object:
    """rpyc sends us a request; we answer with answer_request; rpyc reads the answer."""
    channel = QueueChannel()
    conn = Connection(Service(), channel, DAEMON_CONFIG)
    result = conn.async_request(handler, *args)
    msg_type, seq, body = w.parse_message(channel.outbound.pop(0))
    assert msg_type == w.MSG_REQUEST
    reply, close_now = w.answer_request(seq, body)
    assert not close_now and reply is not None
    channel.inbound.append(reply)
    try:
        conn.serve(0)
        return result.value
    finally:
        shut(conn, channel)


def test_server_ping_is_echoed() -> None:
    assert _answer_server_request(consts.HANDLE_PING, "abc" * 10) == "abc" * 10


def test_other_server_requests_get_an_exception() -> None:
    with pytest.raises(NotImplementedError, match="does not serve handler 13"):
        _answer_server_request(consts.HANDLE_DIR, None)


def test_server_close_request_closes_us() -> None:
    assert w.answer_request(9, (consts.HANDLE_CLOSE, (consts.LABEL_VALUE, ()))) == (None, True)


@given(values)
def test_decode_reply_on_arbitrary_bodies_raises_only_ours(body: object) -> None:
    for msg_type in (w.MSG_REPLY, w.MSG_EXCEPTION):
        try:
            w.decode_reply(msg_type, body)
        except (w.ProtocolError, w.RemoteError):
            pass


@given(st.integers(0, 2**40), values)
def test_answer_request_on_arbitrary_bodies_raises_only_protocol_error(seq: int, body: object) -> None:
    try:
        reply, _ = w.answer_request(seq, body)
    except w.ProtocolError:
        return
    assert reply is None or w.parse_message(reply)[1] == seq


@given(st.binary(max_size=100))
def test_parse_message_on_garbage_raises_only_protocol_error(data: bytes) -> None:
    try:
        w.parse_message(data)
    except w.ProtocolError:
        pass


def test_unboxing_our_own_objects_is_refused() -> None:
    with pytest.raises(w.ProtocolError, match="exports none"):
        w.unbox((w.LABEL_LOCAL_REF, ("x", 1, 2)))


def test_sequence_counter_starts_at_zero_like_rpyc() -> None:
    seq = w.SeqCounter()
    assert [seq(), seq(), seq()] == [0, 1, 2]


def test_client_imports_only_its_own_modules() -> None:
    """Cold start: no rpyc, and not even the `socket` module (``_socket`` suffices)."""
    code = (
        "import sys, os; before = set(sys.modules); import cidx.rpc_client; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    root = Path(__file__).resolve().parents[2]
    paths = [str(root / "client_zipapp"), str(root / "daemon_pkg" / "src")]
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", f"import sys; sys.path[:0] = {paths!r}; {code}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    allowed = {"__future__", "_socket", "cidx", "cidx.rpc_client", "cidx.rpc_wire", "cidx_shared",
               "cidx_shared.schema"}
    assert set(out) <= allowed, out
