"""RPyC 6.x wire protocol, client subset, sans-IO (no sockets here; see `rpc_client`).

Why this exists: importing rpyc costs the client tens of milliseconds on every
start; the few bytes it puts on the wire for "call method X with these
immutable arguments" are simple enough to produce by hand.

Layers (all verified against rpyc 6.0.2 ``rpyc/core/{channel,brine,protocol,vinegar,consts}.py``)

* **Frame** (``Channel``): ``!L`` payload length, ``!B`` compressed flag,
  payload, ``b"\\n"``. The sender zlib-compresses payloads over 3000 bytes, so
  the receiver must inflate when the flag is set; sending uncompressed is always
  accepted.
* **Message** (``Connection._send``/``_dispatch``): one byte msg type
  (1 request, 2 reply, 3 exception) followed by ``brine((seq, body))``.
  Request body: ``(handler, box(args))``; reply body: ``box(result)``;
  exception body: unboxed ``vinegar.dump`` tuple
  ``((module, name), args, attrs, traceback_text)`` (or the int 1 for
  StopIteration). The thread-binding variant (``bind_threads`` /
  ``RPYC_BIND_THREADS=true``) prefixes 16 more bytes and is NOT supported: the
  daemon must run with ``bind_threads=False``.
* **Boxing** (``Connection._box``/``_unbox``): a brine-dumpable value travels as
  ``(LABEL_VALUE, v)``; a tuple holding a non-dumpable item as
  ``(LABEL_TUPLE, (box(item), ...))``; an object of the sender as
  ``(LABEL_REMOTE_REF, id_pack)``; an object of the receiver handed back to it
  as ``(LABEL_LOCAL_REF, id_pack)``. ``id_pack`` is ``(str, int, int)``.
* **Call**: CALLATTR (8) takes ``(root_ref, name, args_tuple, kwargs_pairs)``,
  and the server resolves ``name`` to ``exposed_<name>``. rpyc clients first ask
  for ``root_ref`` with GETROOT (3); the cidx daemon holds its service at a
  well-known id_pack (``cidx_shared.schema.ROOT_ID_PACK``) so this client skips
  that round trip: a query is one request frame and one reply frame.

Decoding never raises anything but `ProtocolError` on malformed input, so a
garbled stream cannot crash the client with a stray IndexError. Standard library
only; `_struct` and `zlib` are imported lazily because most calls need neither.
"""

from __future__ import annotations

MSG_REQUEST = 1
MSG_REPLY = 2
MSG_EXCEPTION = 3

LABEL_VALUE = 1
LABEL_TUPLE = 2
LABEL_LOCAL_REF = 3
LABEL_REMOTE_REF = 4

HANDLE_PING = 1
HANDLE_CLOSE = 2
HANDLE_CALLATTR = 8
HANDLE_DEL = 15

EXC_STOP_ITERATION = 1

COMPRESSION_THRESHOLD = 3000
FRAME_HEADER_SIZE = 5
# A reply larger than this is a corrupt length field, not a search result; it
# also bounds what a zlib bomb may inflate to.
MAX_PAYLOAD = 256 * 1024 * 1024
# rpyc itself only stops at the interpreter's recursion limit; real messages are
# a handful of levels deep, and a cap turns hostile nesting into ProtocolError
# instead of RecursionError.
MAX_DEPTH = 100


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid RPyC 6 message for this client."""


class RemoteError(Exception):
    """The daemon's method raised: the call reached it, so the daemon is alive.

    ``module``/``name`` identify the remote exception class (e.g. ``builtins``,
    ``ValueError``); ``message`` is what ``str(exc)`` gave on the server side.
    """

    def __init__(
        self,
        module: str,
        name: str,
        message: str,
        remote_args: tuple = (),
        attrs: dict | None = None,
        remote_traceback: str = "",
    ) -> None:
        super().__init__(module, name, message)
        self.module = module
        self.name = name
        self.message = message
        self.remote_args = remote_args
        self.attrs = attrs if attrs is not None else {}
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        qual = f"{self.module}.{self.name}" if self.module else self.name
        return f"{qual}: {self.message}" if self.message else qual


class RemoteRef:
    """An object living in the peer, known only by its rpyc ``id_pack``."""

    __slots__ = ("id_pack",)

    def __init__(self, id_pack: tuple) -> None:
        self.id_pack = id_pack

    def __repr__(self) -> str:
        return f"RemoteRef({self.id_pack!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is RemoteRef and other.id_pack == self.id_pack

    def __hash__(self) -> int:
        return hash(self.id_pack)


# ---------------------------------------------------------------------------
# brine
# ---------------------------------------------------------------------------
# Tags, as in rpyc/core/brine.py (ints rather than 1-byte strings).
_NONE, _EMPTY_BYTES, _EMPTY_TUPLE, _TRUE, _FALSE, _NOT_IMPLEMENTED, _ELLIPSIS = range(7)
_UNICODE = 0x08
_STR1, _STR2, _STR3, _STR4, _STR_L1, _STR_L4 = range(0x0A, 0x10)
_TUP1, _TUP2, _TUP3, _TUP4, _TUP_L1, _TUP_L4 = range(0x10, 0x16)
_INT_L1, _INT_L4, _FLOAT, _SLICE, _FSET, _COMPLEX = range(0x16, 0x1C)
# Small ints are one byte: value + 0x50, for -0x30 <= value < 0xA0.
_IMM_MIN, _IMM_MAX, _IMM_BIAS = -0x30, 0xA0, 0x50
_IMM_FIRST_TAG, _IMM_LAST_TAG = _IMM_MIN + _IMM_BIAS, _IMM_MAX - 1 + _IMM_BIAS

_SIMPLE_TYPES = frozenset(
    (type(None), int, bool, float, bytes, str, complex, type(NotImplemented), type(Ellipsis))
)


def dumpable(obj: object) -> bool:
    """Mirror of ``brine.dumpable``: decides value-vs-reference boxing exactly as rpyc does."""
    t = type(obj)
    if t in _SIMPLE_TYPES:
        return True
    if t is tuple or t is frozenset:
        return all(dumpable(item) for item in obj)
    if t is slice:
        return dumpable(obj.start) and dumpable(obj.stop) and dumpable(obj.step)
    return False


def _len_prefixed(short_tags: tuple, tag_l1: int, tag_l4: int, n: int) -> bytes:
    """Header for a length-prefixed item: 1-4 items use their own tag, then 1- or 4-byte lengths."""
    if n <= 4:
        return bytes((short_tags[n],))
    if n < 256:
        return bytes((tag_l1, n))
    return bytes((tag_l4,)) + n.to_bytes(4, "big")


_BYTES_SHORT = (_EMPTY_BYTES, _STR1, _STR2, _STR3, _STR4)
_TUPLE_SHORT = (_EMPTY_TUPLE, _TUP1, _TUP2, _TUP3, _TUP4)


def _dump(obj: object, out: list) -> None:
    t = type(obj)
    if t is str:
        raw = obj.encode("utf-8")
        out.append(bytes((_UNICODE,)) + _len_prefixed(_BYTES_SHORT, _STR_L1, _STR_L4, len(raw)))
        out.append(raw)
    elif t is int:
        if _IMM_MIN <= obj < _IMM_MAX:
            out.append(bytes((obj + _IMM_BIAS,)))
        else:
            digits = str(obj).encode("ascii")
            n = len(digits)
            out.append(bytes((_INT_L1, n)) if n < 256 else bytes((_INT_L4,)) + n.to_bytes(4, "big"))
            out.append(digits)
    elif t is tuple:
        out.append(_len_prefixed(_TUPLE_SHORT, _TUP_L1, _TUP_L4, len(obj)))
        for item in obj:
            _dump(item, out)
    elif obj is None:
        out.append(b"\x00")
    elif t is bool:
        out.append(b"\x03" if obj else b"\x04")
    elif t is bytes:
        out.append(_len_prefixed(_BYTES_SHORT, _STR_L1, _STR_L4, len(obj)))
        out.append(obj)
    elif t is float:
        from _struct import pack

        out.append(bytes((_FLOAT,)) + pack("!d", obj))
    elif t is complex:
        from _struct import pack

        out.append(bytes((_COMPLEX,)) + pack("!dd", obj.real, obj.imag))
    elif t is frozenset:
        out.append(bytes((_FSET,)))
        _dump(tuple(obj), out)
    elif t is slice:
        out.append(bytes((_SLICE,)))
        _dump((obj.start, obj.stop, obj.step), out)
    elif obj is NotImplemented:
        out.append(b"\x05")
    elif obj is Ellipsis:
        out.append(b"\x06")
    else:
        raise TypeError(f"brine cannot dump {t.__name__}")


def dump(obj: object) -> bytes:
    """Serialise an immutable value byte-for-byte as ``rpyc.core.brine.dump`` does.

    Raises TypeError for anything brine would refuse (lists, dicts, subclasses).
    """
    out: list = []
    _dump(obj, out)
    return b"".join(out)


def _need(data: bytes, pos: int, n: int) -> int:
    end = pos + n
    if end > len(data):
        raise ProtocolError("brine: truncated data")
    return end


def _load_bytes(data: bytes, pos: int, tag: int) -> tuple[int, int]:
    """Locate a bytes item's body; returns (start, end) so str can decode without an extra copy."""
    if _STR1 <= tag <= _STR4:
        n = tag - _STR1 + 1
    elif tag == _STR_L1:
        _need(data, pos, 1)
        n = data[pos]
        pos += 1
    elif tag == _STR_L4:
        end = _need(data, pos, 4)
        n = int.from_bytes(data[pos:end], "big")
        pos = end
    elif tag == _EMPTY_BYTES:
        n = 0
    else:
        raise ProtocolError(f"brine: expected bytes, got tag {tag:#x}")
    return pos, _need(data, pos, n)


def _load(data: bytes, pos: int, depth: int) -> tuple[object, int]:
    if pos >= len(data):
        raise ProtocolError("brine: truncated data")
    tag = data[pos]
    pos += 1
    if _IMM_FIRST_TAG <= tag <= _IMM_LAST_TAG:
        return tag - _IMM_BIAS, pos
    if tag == _UNICODE:
        if pos >= len(data):
            raise ProtocolError("brine: truncated data")
        start, end = _load_bytes(data, pos + 1, data[pos])
        try:
            return str(memoryview(data)[start:end], "utf-8"), end
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"brine: invalid utf-8 in str: {exc}") from None
    if _TUP1 <= tag <= _TUP_L4:
        if tag <= _TUP4:
            n = tag - _TUP1 + 1
        elif tag == _TUP_L1:
            _need(data, pos, 1)
            n = data[pos]
            pos += 1
        else:
            end = _need(data, pos, 4)
            n = int.from_bytes(data[pos:end], "big")
            pos = end
        if depth >= MAX_DEPTH:
            raise ProtocolError("brine: nesting too deep")
        items = []
        for _ in range(n):
            item, pos = _load(data, pos, depth + 1)
            items.append(item)
        return tuple(items), pos
    if _STR1 <= tag <= _STR_L4 or tag == _EMPTY_BYTES:
        start, end = _load_bytes(data, pos, tag)
        return data[start:end], end
    if tag == _NONE:
        return None, pos
    if tag == _TRUE:
        return True, pos
    if tag == _FALSE:
        return False, pos
    if tag == _EMPTY_TUPLE:
        return (), pos
    if tag in (_INT_L1, _INT_L4):
        if tag == _INT_L1:
            _need(data, pos, 1)
            n = data[pos]
            pos += 1
        else:
            end = _need(data, pos, 4)
            n = int.from_bytes(data[pos:end], "big")
            pos = end
        end = _need(data, pos, n)
        try:
            return int(data[pos:end]), end
        except ValueError:
            raise ProtocolError("brine: malformed int") from None
    if tag == _FLOAT:
        from _struct import unpack_from

        end = _need(data, pos, 8)
        return unpack_from("!d", data, pos)[0], end
    if tag == _COMPLEX:
        from _struct import unpack_from

        end = _need(data, pos, 16)
        real, imag = unpack_from("!dd", data, pos)
        return complex(real, imag), end
    if tag in (_FSET, _SLICE):
        if depth >= MAX_DEPTH:
            raise ProtocolError("brine: nesting too deep")
        inner, pos = _load(data, pos, depth + 1)
        if type(inner) is not tuple:
            raise ProtocolError("brine: frozenset/slice body is not a tuple")
        if tag == _SLICE:
            if len(inner) != 3:
                raise ProtocolError("brine: slice body is not a 3-tuple")
            return slice(*inner), pos
        try:
            return frozenset(inner), pos
        except TypeError:  # e.g. a slice, unhashable before 3.12
            raise ProtocolError("brine: unhashable frozenset member") from None
    if tag == _NOT_IMPLEMENTED:
        return NotImplemented, pos
    if tag == _ELLIPSIS:
        return Ellipsis, pos
    raise ProtocolError(f"brine: unknown tag {tag:#x}")


def load(data: bytes) -> object:
    """Inverse of `dump`; also reads everything rpyc's brine writes.

    Stricter than rpyc: trailing bytes are an error (a real message never has
    them, so they mean a framing bug).
    """
    if type(data) is not bytes:
        data = bytes(data)
    obj, pos = _load(data, 0, 0)
    if pos != len(data):
        raise ProtocolError(f"brine: {len(data) - pos} trailing bytes")
    return obj


# ---------------------------------------------------------------------------
# framing
# ---------------------------------------------------------------------------
def encode_frame(payload: bytes, compress: bool = False) -> bytes:
    """Wrap one message for the wire. Compression is optional for the sender and
    pointless on a local socket, hence off by default."""
    flag = b"\x00"
    if compress:
        import zlib

        payload = zlib.compress(payload, 1)
        flag = b"\x01"
    return len(payload).to_bytes(4, "big") + flag + payload + b"\n"


def _inflate(data: bytes, limit: int) -> bytes:
    import zlib

    try:
        d = zlib.decompressobj()
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ProtocolError(f"frame: bad zlib data: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise ProtocolError("frame: inflated payload too large")
    if not d.eof or d.unused_data:
        raise ProtocolError("frame: zlib stream truncated or followed by junk")
    return out


class FrameDecoder:
    """Incremental frame splitter: feed it whatever recv() returned.

    After a ProtocolError the byte stream is out of sync: discard the decoder
    and the connection.
    """

    __slots__ = ("_buf", "_max")

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self._max = max_payload

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Return the payloads of every frame completed by `data` (inflated), in order."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        size = len(buf)
        while size - pos >= FRAME_HEADER_SIZE:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            flag = buf[pos + 4]
            if length > self._max:
                raise ProtocolError(f"frame: length {length} exceeds limit {self._max}")
            if flag > 1:
                raise ProtocolError(f"frame: bad compression flag {flag}")
            end = pos + FRAME_HEADER_SIZE + length + 1
            if end > size:
                break
            if buf[end - 1] != 0x0A:
                raise ProtocolError("frame: missing newline terminator")
            payload = bytes(buf[pos + FRAME_HEADER_SIZE : end - 1])
            if flag:
                payload = _inflate(payload, self._max)
            out.append(payload)
            pos = end
        if pos:
            del buf[:pos]
        return out


# ---------------------------------------------------------------------------
# messages
# ---------------------------------------------------------------------------
def box(obj: object) -> tuple:
    """Box an argument as ``Connection._box`` does, minus exporting our own objects."""
    if dumpable(obj):
        return (LABEL_VALUE, obj)
    if type(obj) is tuple:
        return (LABEL_TUPLE, tuple(box(item) for item in obj))
    if type(obj) is RemoteRef:
        # The peer's object handed back: "local" from the receiver's point of view.
        return (LABEL_LOCAL_REF, obj.id_pack)
    raise TypeError(f"cannot send {type(obj).__name__}: the client passes immutable values only")


def build_request(seq: int, handler: int, args: tuple = ()) -> bytes:
    """Message payload (not yet framed) for request `handler` with positional `args`."""
    return bytes((MSG_REQUEST,)) + dump((seq, (handler, box(args))))


def build_callattr(seq: int, root: RemoteRef, name: str, args: tuple = (), kwargs: tuple = ()) -> bytes:
    """``root.<name>(*args, **dict(kwargs))``; `kwargs` is a tuple of (key, value) pairs."""
    return build_request(seq, HANDLE_CALLATTR, (root, name, args, kwargs))


def build_close(seq: int) -> bytes:
    """The server tears down on receipt and never answers this request."""
    return build_request(seq, HANDLE_CLOSE, ())


def build_reply(seq: int, value: object) -> bytes:
    return bytes((MSG_REPLY,)) + dump((seq, box(value)))


def build_exception(seq: int, module: str, name: str, message: str) -> bytes:
    """An exception reply in ``vinegar.dump`` layout (the server rebuilds builtins by name)."""
    body = ((module, name), (message,), (), "<traceback denied>")
    return bytes((MSG_EXCEPTION,)) + dump((seq, body))


def parse_message(payload: bytes) -> tuple[int, int, object]:
    """Split a frame payload into (msg_type, seq, body); body is still boxed."""
    if not payload:
        raise ProtocolError("message: empty payload")
    msg_type = payload[0]
    if msg_type not in (MSG_REQUEST, MSG_REPLY, MSG_EXCEPTION):
        raise ProtocolError(f"message: unknown type {msg_type}")
    # Parse in place: slicing off the type byte would copy a multi-megabyte reply.
    body, end = _load(payload, 1, 0)
    if end != len(payload):
        raise ProtocolError(f"message: {len(payload) - end} trailing bytes")
    if type(body) is not tuple or len(body) != 2 or type(body[0]) is not int:
        raise ProtocolError("message: body is not (seq, args)")
    return msg_type, body[0], body[1]


def _valid_id_pack(value: object) -> bool:
    return (
        type(value) is tuple
        and len(value) == 3
        and type(value[0]) is str
        and type(value[1]) is int
        and type(value[2]) is int
    )


def unbox(package: object) -> object:
    """Inverse of `box` for what a peer sends: remote objects become `RemoteRef`."""
    if type(package) is not tuple or len(package) != 2 or type(package[0]) is not int:
        raise ProtocolError("boxing: package is not (label, value)")
    label, value = package
    if label == LABEL_VALUE:
        return value
    if label == LABEL_TUPLE:
        if type(value) is not tuple:
            raise ProtocolError("boxing: LABEL_TUPLE body is not a tuple")
        return tuple(unbox(item) for item in value)
    if label == LABEL_REMOTE_REF:
        if not _valid_id_pack(value):
            raise ProtocolError("boxing: malformed id_pack")
        return RemoteRef(value)
    if label == LABEL_LOCAL_REF:
        raise ProtocolError("boxing: peer referenced a client object, but the client exports none")
    raise ProtocolError(f"boxing: unknown label {label}")


def _contains_ref(value: object) -> bool:
    if type(value) is RemoteRef:
        return True
    return type(value) is tuple and any(_contains_ref(item) for item in value)


def remote_error(body: object) -> RemoteError:
    """Turn a ``vinegar.dump`` body into a RemoteError without instantiating remote classes."""
    if type(body) is int and body == EXC_STOP_ITERATION:
        return RemoteError("builtins", "StopIteration", "")
    if type(body) is str:  # rpyc's legacy string exceptions
        return RemoteError("", "Exception", body)
    if type(body) is not tuple or len(body) != 4:
        raise ProtocolError("exception: body is not ((module, name), args, attrs, traceback)")
    names, args, attrs, tb = body
    if (
        type(names) is not tuple
        or len(names) != 2
        or type(names[0]) is not str
        or type(names[1]) is not str
        or type(args) is not tuple
        or type(attrs) is not tuple
        or type(tb) is not str
    ):
        raise ProtocolError("exception: malformed vinegar tuple")
    attr_map = {}
    for pair in attrs:
        if type(pair) is not tuple or len(pair) != 2 or type(pair[0]) is not str:
            raise ProtocolError("exception: malformed attribute pair")
        attr_map[pair[0]] = pair[1]
    # Same text str(exc) gives for a Python exception with these args.
    message = "" if not args else str(args[0]) if len(args) == 1 else str(args)
    return RemoteError(names[0], names[1], message, args, attr_map, tb)


def decode_reply(msg_type: int, body: object) -> object:
    """Result of a finished request: the value, or RemoteError raised.

    It must be a plain value, since the client has no proxies: a list or dict
    returned by a daemon method arrives as a reference and is a daemon bug.
    """
    if msg_type == MSG_EXCEPTION:
        raise remote_error(body)
    if msg_type != MSG_REPLY:
        raise ProtocolError(f"message: type {msg_type} is not a reply")
    value = unbox(body)
    if _contains_ref(value):
        raise ProtocolError("daemon returned a reference, not a value")
    return value


def answer_request(seq: int, body: object) -> tuple[bytes | None, bool]:
    """Respond to a request the server sent us: (payload to send or None, close_now).

    The client exports no objects, so a well-behaved daemon only ever sends
    PING (echoed, cheap) or CLOSE (the server is shutting the connection: we
    close too; rpyc never waits for that reply). Anything else gets an
    exception reply, which the server raises inside the handler that asked.
    """
    if type(body) is not tuple or len(body) != 2:
        raise ProtocolError("request: body is not (handler, args)")
    handler, boxed = body
    if handler == HANDLE_CLOSE:
        return None, True
    if handler == HANDLE_PING:
        try:
            args = unbox(boxed)
        except ProtocolError:
            args = None
        if type(args) is tuple and len(args) == 1:
            return build_reply(seq, args[0]), False
    message = f"cidx client does not serve handler {handler}"
    return build_exception(seq, "builtins", "NotImplementedError", message), False


class SeqCounter:
    """Request ids, as rpyc's ``itertools.count()``: per connection, from 0."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def __call__(self) -> int:
        seq = self._next
        self._next = seq + 1
        return seq
