"""``cidx mcp``'s Model Context Protocol, without I/O: one JSON-RPC line in, one reply out.

Why sans-IO: the protocol rules (JSON-RPC 2.0 framing, version negotiation, which
message gets which error, tool arguments -> a query request, a document -> what a model
reads) are where the bugs would be, and they are easiest to test, property-test too,
with no pipes and no daemon. ``mcp_server`` owns stdin/stdout and threads; a ``Backend``
(there: the same query path as ``cidx query``) does the work.

The rules:

* Newline-delimited JSON-RPC 2.0 messages; batches (JSON arrays) were removed from MCP
  in 2025-06-18, and are refused as one invalid request.
* Every request (a ``method`` and a string or integer ``id``) gets exactly one reply;
  notifications (no ``id``) and responses (we send no requests) get none, whatever they
  hold. Anything else gets an error reply: -32700 for text that is not JSON, -32600 for
  JSON that is not a request, -32601 for an unknown method, -32602 for bad params.
* A tool that fails is not a protocol error: it answers ``isError: true`` with one line
  a model can act on (MCP's rule, so the model sees it), and the server lives on.

The search tool's arguments are derived from ``schema.QUERY_OPTIONS``, the table every
other front end is built from, so an option added there appears here with no edit;
the two mode flags become one ``mode`` argument, since a model chooses a mode better
than it combines two booleans. Standard library only.
"""

from __future__ import annotations

from cidx_shared import budget, jsontext, render
from cidx_shared.schema import (
    FTS_ONLY_KEYS,
    MODES,
    OUTPUT_OPTIONS,
    QUERY_OPTIONS,
    RESULT_SCHEMA_VERSION,
    Option,
    RequestError,
    validate_request,
)

from . import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    #: (phase, done, total or None): an index run's progress, as the daemon reports it.
    Report = Callable[[str, int, "int | None"], None]

    class Backend(Protocol):
        """What the tools need from the outside world (the daemon, the index command)."""

        def search(self, request: dict[str, Any]) -> dict[str, Any]:
            """The result or error document for a raw query request (as ``cidx query``)."""

        def status(self) -> dict[str, Any]:
            """``{"index": <cidx status --json>, "daemon": <cidx daemon status --json>}``."""

        def index(self, report: Report | None = None) -> dict[str, Any]:
            """Run an incremental index; its statistics (``cidx index --json``). ``report``
            hears its progress as it goes."""


#: The revision this server implements, then older ones whose tool messages are a subset.
LATEST_VERSION = "2025-06-18"
SUPPORTED_VERSIONS = (LATEST_VERSION, "2025-03-26", "2024-11-05")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

#: What a search returns when the caller sets no ``max_tokens``: a few results with
#: their context lines, small enough to leave most of a model's window for work.
DEFAULT_MAX_TOKENS = 2000
#: ``mode`` stands for these two request flags.
MODE_KEYS = ("fts", "semantic")

INSTRUCTIONS = (
    "cidx searches this project's source code through a local index that follows file edits. "
    "Use the search tool before reading files to find where something is defined or done: "
    "mode 'fts' for exact identifiers, strings and error messages (regex=true for a grep-like "
    "pattern), 'semantic' for behaviour described in words, 'hybrid' (the default) when unsure. "
    "Results name project-relative paths and 1-based line ranges; read those lines next. "
    "status reports the index; index refreshes it after large changes."
)

_MODE_HELP = (
    "How to match. 'fts' (full text): exact identifiers, strings, error messages, words "
    "(BM25 ranking; with regex=true a grep-like regular expression per line). 'semantic': "
    "by meaning, for behaviour or concepts described in words ('where are failed uploads "
    "retried'), even when the code uses other words. 'hybrid': both lists fused by rank; "
    "the best choice when unsure. Default: hybrid, or fts when a full-text-only option "
    f"({', '.join(FTS_ONLY_KEYS)}) is set."
)

_SEARCH_HELP = (
    "Search this project's code (a local index that follows edits). Returns the best "
    "matching chunks, best first: project-relative path:start-end lines, language, score, "
    "and the lines around each chunk's best line ('>' marks matched lines). Pick mode: fts "
    "for exact identifiers/strings/error messages, semantic for behaviour described in "
    "words, hybrid (default) when unsure. Narrow with language and path_filter globs. "
    f"Output is trimmed to about max_tokens (default {DEFAULT_MAX_TOKENS}) and says what "
    "it dropped; raise it or lower limit as needed."
)


class ToolFailure(Exception):
    """A tool could not do its work; the message is the one line the model reads."""


class RpcError(Exception):
    """A JSON-RPC error reply (code, message) for the request being handled."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- tools


def _by_key(key: str) -> Option:
    return next(o for o in OUTPUT_OPTIONS if o.key == key)


_MAX_TOKENS = _by_key("max_tokens")


def _model_text(text: str) -> str:
    """A CLI help text for a model: flags named as the tool's arguments (--exclude-path -> exclude_path)."""
    for opt in sorted((*QUERY_OPTIONS, *OUTPUT_OPTIONS), key=lambda o: -len(o.flag)):
        text = text.replace(opt.flag, "mode fts" if opt.key == "fts" else opt.key)
    return text


def _property(opt: Option) -> dict[str, Any]:
    """One JSON Schema property from one row of the shared option table."""
    prop: dict[str, Any]
    if opt.kind == "bool":
        prop = {"type": "boolean", "default": opt.default}
    elif opt.kind == "list":
        prop = {"type": "array", "items": {"type": "string", "minLength": 1}}
    elif opt.kind == "choice":
        prop = {"type": "string", "enum": list(opt.choices or ()), "default": opt.default}
    else:
        prop = {"type": "integer" if opt.kind == "int" else "number"}
        if opt.minimum is not None:
            prop["minimum"] = opt.minimum
        if opt.maximum is not None:
            prop["maximum"] = opt.maximum
        if opt.default is not None:
            prop["default"] = opt.default
    prop["description"] = _model_text(opt.help)
    return prop


def search_input_schema() -> dict[str, Any]:
    """The search tool's arguments: the query, ``mode``, every other query option, ``max_tokens``."""
    props: dict[str, Any] = {
        "query": {"type": "string", "minLength": 1,
                  "description": "What to look for: words, an identifier, a phrase, a question, or "
                                 "(regex=true) a regular expression."},
        "mode": {"type": "string", "enum": list(MODES), "description": _MODE_HELP},
    }
    for opt in QUERY_OPTIONS:
        if opt.key not in MODE_KEYS:
            props[opt.key] = _property(opt)
    props["max_tokens"] = {**_property(_MAX_TOKENS), "default": DEFAULT_MAX_TOKENS,
                           "description": "Fit the answer in about this many tokens: snippets are "
                                          "shortened, then the last results dropped (the text says "
                                          f"so). Default {DEFAULT_MAX_TOKENS}."}
    return {"type": "object", "properties": props, "required": ["query"], "additionalProperties": False}


_NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}

_SEARCH_OUTPUT = {
    "type": "object",
    "properties": {
        "schema": {"type": "integer", "const": RESULT_SCHEMA_VERSION},
        "query": {"type": "string"},
        "mode": {"type": "string", "enum": list(MODES)},
        "results": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "relative to the project root, '/'-separated"},
                "start_line": {"type": "integer"},
                "end_line": {"type": "integer"},
                "language": {"type": ["string", "null"]},
                "score": {"type": "number"},
                "snippet": {"type": "object"},
                "matches": {"type": "array"},
            },
            "required": ["path", "start_line", "end_line", "score"],
        }},
        "trimmed": {"type": "object", "description": "what max_tokens gave up, when it did"},
    },
    "required": ["query", "mode", "results"],
}

_STATUS_OUTPUT = {
    "type": "object",
    "properties": {"index": {"type": "object"}, "daemon": {"type": "object"}},
    "required": ["index", "daemon"],
}

_INDEX_OUTPUT = {
    "type": "object",
    "properties": {"generation": {"type": "string"}, "files": {"type": "integer"},
                   "chunks": {"type": "integer"}, "unchanged": {"type": "boolean"}},
    "required": ["generation", "files", "chunks"],
}


def tool_list(version: str = LATEST_VERSION) -> list[dict[str, Any]]:
    """The tools, as ``tools/list`` answers; titles and output schemas only from 2025-06-18 on."""
    tools = [
        {"name": "search", "title": "Search code", "description": _SEARCH_HELP,
         "inputSchema": search_input_schema(), "outputSchema": _SEARCH_OUTPUT,
         "annotations": {"readOnlyHint": True, "openWorldHint": False}},
        {"name": "status", "title": "Index status",
         "description": "The project's index: files, chunks, generation, model, size, files changed "
                        "since indexing, chunks not embedded yet; and whether the daemon runs.",
         "inputSchema": _NO_ARGS, "outputSchema": _STATUS_OUTPUT,
         "annotations": {"readOnlyHint": True, "openWorldHint": False}},
        {"name": "index", "title": "Refresh the index",
         "description": "Bring the index up to date with the files (incremental: only changed files are "
                        "re-read and embedded). Searches follow edits on their own while the daemon runs; "
                        "use this after large changes, or when status reports changed files. Answers with "
                        "one summary line; reports progress when the call asks for it (a progress token), "
                        "and stops when the call is cancelled (the index stays as it was).",
         "inputSchema": _NO_ARGS, "outputSchema": _INDEX_OUTPUT,
         "annotations": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": True,
                         "openWorldHint": False}},
    ]
    if version < "2025-06-18":
        for tool in tools:
            del tool["title"], tool["outputSchema"]
    return tools


_TOOL_NAMES = ("search", "status", "index")


def search_request(args: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The search tool's arguments -> (raw query request, token budget); ToolFailure if bad.

    The request is validated here, with the engine's own rules, so a mistake costs no
    daemon start and is reported in the tool's terms (``limit``, not ``--limit``).
    """
    known = {"query", "mode", "max_tokens", *(o.key for o in QUERY_OPTIONS if o.key not in MODE_KEYS)}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ToolFailure(f"unknown argument(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    query = args.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ToolFailure("query must be a non-empty string")
    raw: dict[str, Any] = {"query": query}
    for opt in QUERY_OPTIONS:
        value = args.get(opt.key)
        if opt.key in MODE_KEYS or value is None:
            continue
        if opt.kind == "list" and isinstance(value, str):
            value = [value]  # a lone value where a list belongs: what was meant is clear
        elif opt.kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        raw[opt.key] = value
    fts_only = [k for k in FTS_ONLY_KEYS if raw.get(k)]
    mode = args.get("mode")
    if mode is None:
        mode = "fts" if fts_only else "hybrid"
    if mode not in MODES:
        raise ToolFailure(f"mode must be one of {', '.join(MODES)}, got {_short(mode)}")
    if mode == "semantic" and fts_only:
        raise ToolFailure(f"{', '.join(fts_only)} only apply to full-text search: use mode fts or hybrid")
    if mode != "semantic":
        raw["fts"] = True
    if mode != "fts":
        raw["semantic"] = True
    try:
        validate_request(raw)
    except RequestError as exc:
        raise ToolFailure(_model_text(str(exc))) from None
    max_tokens = args.get("max_tokens")
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if isinstance(max_tokens, float) and max_tokens.is_integer():
        max_tokens = int(max_tokens)
    low, high = int(_MAX_TOKENS.minimum or 0), int(_MAX_TOKENS.maximum or 0)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not low <= max_tokens <= high:
        raise ToolFailure(f"max_tokens must be a whole number from {low} to {high}, got {_short(max_tokens)}")
    return raw, max_tokens


def _short(value: Any) -> str:
    scalar = isinstance(value, (str, int, float, bool, type(None)))
    text = jsontext.dumps(value) if scalar else type(value).__name__
    return text if len(text) <= 40 else text[:39] + "…"


def search_result(doc: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """A result document -> the tool result: ripgrep-like text plus the (trimmed) document."""
    if doc.get("error"):
        return tool_error(render.render_error(doc).removeprefix("error: "))
    doc = budget.fit(doc, max_tokens, json_output=True)
    doc.pop("request", None)  # the caller knows what it asked; tokens are dear
    lines = [render.render_human(doc, timing=False).rstrip("\n")]
    lines.extend(f"warning: {render.clean(str(w))}" for w in doc.get("warnings") or ())
    if doc.get("trimmed"):
        lines.append(f"note: {budget.describe(doc['trimmed'])}")
    return {"content": [_text("\n".join(lines))], "structuredContent": doc, "isError": False}


def status_result(info: dict[str, Any]) -> dict[str, Any]:
    return {"content": [_text(status_text(info))], "structuredContent": info, "isError": False}


def status_text(info: dict[str, Any]) -> str:
    """A few lines, as ``cidx status`` and ``cidx daemon status`` would print them."""
    index = info.get("index") or {}
    lines = [f"Project: {index.get('project_root', '?')}"]
    for problem in index.get("damage") or ():
        lines.append(f"Damage: {problem}")
    if not index.get("indexed"):
        lines.append("Index: none usable; run the index tool" if index.get("damage")
                     else "Index: none yet; run the index tool")
    else:
        pending = (index.get("pending") or {}).get("embed") or 0
        texts = (index.get("pending") or {}).get("function_texts") or 0
        size = float(index.get("size_bytes") or 0) / 1e6
        lines.append(f"Index: {index.get('files')} files, {index.get('chunks')} chunks in "
                     f"{index.get('generation')}, model {index.get('model')}, {size:.1f} MB"
                     + (f", {pending} chunks not embedded yet (full text covers them)" if pending else "")
                     + (f", {texts} chunks' function texts not embedded yet" if texts else ""))
        stale = index.get("stale") or {}
        changes = sum(int(stale.get(k) or 0) for k in ("changed", "added", "deleted"))
        lines.append("Freshness: up to date" if not changes else
                     f"Freshness: {changes} file(s) changed since indexing ({stale.get('changed', 0)} "
                     f"changed, {stale.get('added', 0)} new, {stale.get('deleted', 0)} deleted)")
    daemon = info.get("daemon") or {}
    state = daemon.get("state", "?")
    lines.append(f"Daemon: {state}" + (f" (pid {daemon['pid']})" if daemon.get("pid") else "")
                 + (f": {daemon['reason']}" if daemon.get("reason") else ""))
    return "\n".join(render.clean(line) for line in lines)


def index_result(stats: dict[str, Any]) -> dict[str, Any]:
    return {"content": [_text(index_summary(stats))], "structuredContent": stats, "isError": False}


def index_summary(stats: dict[str, Any]) -> str:
    """One line, as ``cidx index`` prints it."""
    seconds = float((stats.get("timings_s") or {}).get("total") or 0.0)
    if stats.get("unchanged"):
        line = (f"Index is up to date: {stats.get('files')} files, {stats.get('chunks')} chunks in "
                f"{stats.get('generation')} (checked in {seconds:.1f}s)")
    else:
        skipped = sum((stats.get("skipped") or {}).values())
        line = (f"Indexed {stats.get('files')} files, {stats.get('chunks')} chunks into "
                f"{stats.get('generation')} ({stats.get('embedded')} chunks embedded, "
                f"{stats.get('reused_files')} files unchanged, {stats.get('deleted_files')} removed, "
                f"{skipped} skipped) in {seconds:.1f}s")
    if stats.get("pending"):
        line += f"; {stats['pending']} chunks not embedded yet"
    return line


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def tool_error(message: str) -> dict[str, Any]:
    """A failed tool call: one line, ``isError``, so the model reads it and can try again."""
    line = render.clean(" ".join(str(message).split())) or "unknown error"
    return {"content": [_text(f"error: {line}")], "isError": True}


# --------------------------------------------------------------------------- JSON-RPC


class Message:
    """One decoded line: a request, a notification, or something that is answered at once.

    ``kind``: "request" (answer it), "notification" (never answered), "ignored" (a response
    to nothing we asked), "invalid" (``reply`` holds its error response).
    """

    __slots__ = ("id", "kind", "method", "params", "reply")

    def __init__(self, kind: str, method: str = "", id: Any = None, params: Any = None,
                 reply: dict[str, Any] | None = None) -> None:
        self.kind = kind
        self.method = method
        self.id = id
        self.params = params
        self.reply = reply


def error_reply(id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def parse(line: str | bytes) -> Message:
    """Classify one line of input; never raises."""
    try:
        msg = jsontext.loads(line)
    except Exception:  # ValueError (UnicodeDecodeError too), RecursionError: one bad line, not a dead server
        return Message("invalid", reply=error_reply(None, PARSE_ERROR, "parse error: not a JSON text"))
    if isinstance(msg, list):
        return Message("invalid", reply=error_reply(None, INVALID_REQUEST,
                                                    "invalid request: JSON-RPC batches are not supported"))
    if not isinstance(msg, dict):
        return Message("invalid", reply=error_reply(None, INVALID_REQUEST,
                                                    "invalid request: a message must be a JSON object"))
    has_id = "id" in msg
    rid = msg.get("id")
    method = msg.get("method")
    if not has_id and isinstance(method, str):
        return Message("notification", method=method, params=msg.get("params"))
    if "method" not in msg and ("result" in msg or "error" in msg):
        return Message("ignored")  # a response: this server sends no requests to answer
    reply_id = rid if _valid_id(rid) else None
    if msg.get("jsonrpc") != "2.0":
        return Message("invalid", reply=error_reply(reply_id, INVALID_REQUEST,
                                                    'invalid request: "jsonrpc" must be "2.0"'))
    if not isinstance(method, str):
        return Message("invalid", reply=error_reply(reply_id, INVALID_REQUEST,
                                                    'invalid request: "method" must be a string'))
    if not _valid_id(rid):
        return Message("invalid", reply=error_reply(None, INVALID_REQUEST,
                                                    'invalid request: "id" must be a string or an integer'))
    params = msg.get("params")
    if "params" in msg and not isinstance(params, dict):
        return Message("invalid", reply=error_reply(rid, INVALID_PARAMS,
                                                    'invalid params: "params" must be an object'))
    return Message("request", method=method, id=rid, params=params or {})


def encode(reply: dict[str, Any]) -> str:
    """One line of JSON. ASCII-only: a path with undecodable bytes (lone surrogates) is
    still valid JSON that way, and no newline can appear inside it."""
    return jsontext.dumps(reply, ensure_ascii=True)


def encode_reply(msg: Message, reply: dict[str, Any]) -> str:
    """``encode``; a reply that cannot be encoded becomes an internal error, still a reply."""
    try:
        return encode(reply)
    except (TypeError, ValueError) as exc:
        return encode(error_reply(msg.id, INTERNAL_ERROR, f"internal error: unencodable reply ({exc})"))


def progress_token(params: dict[str, Any]) -> str | int | None:
    """The request's ``_meta.progressToken`` (a string or an integer), if it asked for progress."""
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    return token if _valid_id(token) else None


def cancelled_request(msg: Message) -> str | int | None:
    """The id a ``notifications/cancelled`` names, else None."""
    if msg.kind != "notification" or msg.method != "notifications/cancelled":
        return None
    rid = msg.params.get("requestId") if isinstance(msg.params, dict) else None
    return rid if _valid_id(rid) else None


class ProgressRelay:
    """An index run's progress -> ``notifications/progress`` messages for one request.

    MCP wants one number that only grows: the phases' counts are added up (a phase's
    count starts again at 0), a report that would not raise it is dropped, and the phase
    goes in the message (revisions from 2025-03-26 carry one). ``send`` takes the
    notification; the I/O layer writes it.
    """

    def __init__(self, token: str | int, send: Callable[[dict[str, Any]], None],
                 version: str = LATEST_VERSION) -> None:
        self.token = token
        self.send = send
        self.version = version
        self._phase: str | None = None
        self._base = 0  # counted by the phases before the current one
        self._done = 0
        self._sent = -1

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if phase != self._phase:
            self._base += self._done
            self._phase, self._done = phase, 0
        self._done = max(self._done, done)
        progress = self._base + self._done
        if progress <= self._sent and self._sent >= 0:
            return
        self._sent = progress
        params: dict[str, Any] = {"progressToken": self.token, "progress": progress}
        if self.version >= "2025-03-26":
            params["message"] = f"{phase}: {done:,}" + (f" of {total:,}" if total is not None else "")
        self.send({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})


class Session:
    """One client's session: the negotiated version and the dispatch of its requests.

    Lenient where the specification lets a server be: requests before ``initialize`` are
    served (a client that skips the handshake still gets answers).
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.version = LATEST_VERSION
        self.initialized = False

    def handle_line(self, line: str | bytes) -> str | None:
        """The reply line for an input line, or None (notifications, responses)."""
        return self.reply_line(parse(line))

    def reply_line(self, msg: Message) -> str | None:
        reply = self.respond(msg)
        return None if reply is None else encode_reply(msg, reply)

    def respond(self, msg: Message, send: Callable[[dict[str, Any]], None] | None = None,
                ) -> dict[str, Any] | None:
        """The reply to ``msg``; ``send`` writes notifications (progress) while it runs."""
        if msg.kind == "invalid":
            return msg.reply
        if msg.kind == "notification":
            if msg.method == "notifications/initialized":
                self.initialized = True
            return None  # notifications/cancelled and the rest: nothing to answer, nothing to undo
        if msg.kind != "request":
            return None
        token = progress_token(msg.params)
        report = ProgressRelay(token, send, self.version) if token is not None and send is not None else None
        try:
            result = self._dispatch(msg.method, msg.params, report)
        except RpcError as exc:
            return error_reply(msg.id, exc.code, str(exc))
        except Exception as exc:  # a bug here must cost one request, not the session
            return error_reply(msg.id, INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
        return {"jsonrpc": "2.0", "id": msg.id, "result": result}

    def _dispatch(self, method: str, params: dict[str, Any], report: Report | None = None) -> dict[str, Any]:
        if method == "initialize":
            return self._initialize(params)
        if method == "ping":
            return {}
        if method == "tools/list":
            return {"tools": tool_list(self.version)}
        if method == "tools/call":
            name = params.get("name")
            args = params.get("arguments")
            if not isinstance(name, str):
                raise RpcError(INVALID_PARAMS, 'invalid params: "name" must be a string')
            if name not in _TOOL_NAMES:
                raise RpcError(INVALID_PARAMS,
                               f"unknown tool {_short(name)} (tools: {', '.join(_TOOL_NAMES)})")
            if args is not None and not isinstance(args, dict):
                raise RpcError(INVALID_PARAMS, 'invalid params: "arguments" must be an object')
            return self.call_tool(name, args or {}, report)
        raise RpcError(METHOD_NOT_FOUND, f"method not found: {_short(method)}")

    def _initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        requested = params.get("protocolVersion")
        self.version = requested if requested in SUPPORTED_VERSIONS else LATEST_VERSION
        info: dict[str, Any] = {"name": "cidx", "version": __version__}
        if self.version >= "2025-06-18":
            info["title"] = "cidx code search"
        return {"protocolVersion": self.version,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": info,
                "instructions": INSTRUCTIONS}

    def call_tool(self, name: str, args: dict[str, Any], report: Report | None = None) -> dict[str, Any]:
        """Run one tool; every failure is a tool result with ``isError``, never an exception."""
        try:
            result = self._run_tool(name, args, report)
        except ToolFailure as exc:
            return tool_error(str(exc))
        except Exception as exc:
            return tool_error(f"{type(exc).__name__}: {exc}")
        if self.version < "2025-06-18":
            result.pop("structuredContent", None)
        return result

    def _run_tool(self, name: str, args: dict[str, Any], report: Report | None) -> dict[str, Any]:
        if name == "search":
            request, max_tokens = search_request(args)
            return search_result(self.backend.search(request), max_tokens)
        if args:
            raise ToolFailure(f"{name} takes no arguments, got: {', '.join(sorted(args))}")
        if name == "status":
            return status_result(self.backend.status())
        return index_result(self.backend.index(report))
