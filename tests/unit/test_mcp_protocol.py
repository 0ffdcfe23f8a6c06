"""``cidx mcp``'s protocol handler driven directly: no pipes, no daemon (see mcp_protocol).

The property tests feed it arbitrary lines, arbitrary JSON, and near-miss JSON-RPC
messages: it must never raise, must answer every request exactly once with a valid
JSON-RPC reply, and must never answer a notification.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cidx import mcp_protocol as mp
from cidx_shared.schema import FTS_ONLY_KEYS, MODES, QUERY_OPTIONS, make_error_document

KNOWN_CODES = {mp.PARSE_ERROR, mp.INVALID_REQUEST, mp.METHOD_NOT_FOUND, mp.INVALID_PARAMS, mp.INTERNAL_ERROR}


def _result(n: int, path: str = "pkg/mod.py", lines: int = 5) -> dict[str, Any]:
    return {"path": path, "start_line": 10 * n + 1, "end_line": 10 * n + lines, "language": "python",
            "score": 1.0 / (n + 1), "ranks": {"fts": n + 1}, "scores": {"fts": 2.0},
            "content": "x = 1\n" * lines,
            "snippet": {"start_line": 10 * n + 1, "line": 10 * n + 2,
                        "lines": [f"line {k} of result {n} " + "y" * 60 for k in range(lines)]}}


def _doc(request: dict[str, Any], n: int = 3) -> dict[str, Any]:
    mode = "hybrid" if request.get("fts") and request.get("semantic") else "fts" if request.get("fts") \
        else "semantic"
    return {"schema": 1, "query": request["query"], "mode": mode, "request": dict(request),
            "generation": "gen-000001", "served_by": "daemon", "timing_ms": {"total": 1.0},
            "results": [_result(k) for k in range(n)], "error": None}


class FakeBackend:
    """Records what the tools asked for; answers with canned documents."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail: Exception | None = None
        self.n_results = 3

    def search(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        if self.fail is not None:
            raise self.fail
        return _doc(request, self.n_results)

    def status(self) -> dict[str, Any]:
        return {"index": {"project_root": "/p", "indexed": True, "files": 4, "chunks": 9, "generation": "g1",
                          "model": "m", "size_bytes": 2_000_000, "pending": {"embed": 0},
                          "stale": {"changed": 1, "added": 0, "deleted": 0}},
                "daemon": {"state": "running", "pid": 42, "reason": None}}

    def index(self, report: Any = None) -> dict[str, Any]:
        if report is not None:  # as the daemon's JSON progress lines arrive
            for phase, done, total in (("Scanning files", 0, None), ("Scanning files", 4, None),
                                       ("Embedding chunks", 0, 2), ("Embedding chunks", 1, 2),
                                       ("Embedding chunks", 1, 2), ("Embedding chunks", 2, 2)):
                report(phase, done, total)
        return {"generation": "g2", "files": 4, "chunks": 9, "embedded": 2, "pending": 0, "reused_files": 3,
                "changed_files": 1, "deleted_files": 0, "unchanged": False, "skipped": {},
                "timings_s": {"total": 1.25}}


def session() -> tuple[mp.Session, FakeBackend]:
    backend = FakeBackend()
    return mp.Session(backend), backend


def rpc(s: mp.Session, method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        msg["params"] = params
    line = s.handle_line(json.dumps(msg))
    assert line is not None and "\n" not in line
    return json.loads(line)


def call(s: mp.Session, name: str, arguments: Any = None) -> dict[str, Any]:
    params = {"name": name} if arguments is None else {"name": name, "arguments": arguments}
    reply = rpc(s, "tools/call", params)
    return reply["result"]


# --------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize(("asked", "answered"), [
    ("2025-06-18", "2025-06-18"), ("2025-03-26", "2025-03-26"), ("2024-11-05", "2024-11-05"),
    ("2025-11-25", "2025-06-18"), ("1999-01-01", "2025-06-18"), (None, "2025-06-18"), (7, "2025-06-18"),
])
def test_initialize_answers_a_known_requested_version_or_its_own(asked: Any, answered: str) -> None:
    s, _ = session()
    result = rpc(s, "initialize", {"protocolVersion": asked, "capabilities": {}})["result"]
    assert result["protocolVersion"] == answered
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["serverInfo"]["name"] == "cidx" and result["instructions"]
    assert s.handle_line('{"jsonrpc": "2.0", "method": "notifications/initialized"}') is None
    assert s.initialized


def test_ping_and_unknown_methods() -> None:
    s, _ = session()
    assert rpc(s, "ping", id="abc") == {"jsonrpc": "2.0", "id": "abc", "result": {}}
    for method in ("resources/list", "prompts/list", "tools/remove", ""):
        assert rpc(s, method)["error"]["code"] == mp.METHOD_NOT_FOUND


@pytest.mark.parametrize(("line", "code", "id"), [
    ("{not json", mp.PARSE_ERROR, None),
    (b"\xff\xfe{}", mp.PARSE_ERROR, None),
    ("[" * 100_000, mp.PARSE_ERROR, None),
    ("[]", mp.INVALID_REQUEST, None),
    ('[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', mp.INVALID_REQUEST, None),
    ("42", mp.INVALID_REQUEST, None),
    ('"ping"', mp.INVALID_REQUEST, None),
    ('{"id": 3, "method": "ping"}', mp.INVALID_REQUEST, 3),
    ('{"jsonrpc": "1.0", "id": 3, "method": "ping"}', mp.INVALID_REQUEST, 3),
    ('{"jsonrpc": "2.0", "id": 3}', mp.INVALID_REQUEST, 3),
    ('{"jsonrpc": "2.0", "id": 3, "method": 5}', mp.INVALID_REQUEST, 3),
    ('{"jsonrpc": "2.0", "id": true, "method": "ping"}', mp.INVALID_REQUEST, None),
    ('{"jsonrpc": "2.0", "id": null, "method": "ping"}', mp.INVALID_REQUEST, None),
    ('{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}', mp.INVALID_REQUEST, None),
    ('{"jsonrpc": "2.0", "id": 4, "method": "ping", "params": [1]}', mp.INVALID_PARAMS, 4),
    ('{"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {}}', mp.INVALID_PARAMS, 4),
    ('{"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "rm"}}', mp.INVALID_PARAMS, 4),
    ('{"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "search", "arguments": [1]}}',
     mp.INVALID_PARAMS, 4),
])
def test_malformed_messages_get_the_matching_error(line: str | bytes, code: int, id: Any) -> None:
    s, backend = session()
    reply = json.loads(s.handle_line(line) or "null")
    assert reply["jsonrpc"] == "2.0" and reply["id"] == id and reply["error"]["code"] == code
    assert backend.requests == []


@pytest.mark.parametrize("line", [
    '{"jsonrpc": "2.0", "method": "notifications/initialized"}',
    '{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}',
    '{"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "index"}}',  # a request without id
    '{"method": "anything"}',
    '{"jsonrpc": "2.0", "id": 9, "result": {}}',  # a response: we asked nothing
    '{"jsonrpc": "2.0", "id": 9, "error": {"code": 1, "message": "x"}}',
])
def test_notifications_and_responses_get_no_reply(line: str) -> None:
    s, backend = session()
    assert s.handle_line(line) is None
    assert backend.requests == []


# --------------------------------------------------------------------------- tools


def test_tools_list_derives_search_from_the_shared_option_table() -> None:
    tools = {t["name"]: t for t in rpc(session()[0], "tools/list")["result"]["tools"]}
    assert set(tools) == {"search", "status", "index"}
    schema = tools["search"]["inputSchema"]
    props = schema["properties"]
    # Every query option is an argument (the two mode flags as "mode"): none can be dropped.
    assert set(props) == {"query", "mode", "max_tokens"} | {o.key for o in QUERY_OPTIONS} - set(mp.MODE_KEYS)
    assert schema["required"] == ["query"] and schema["additionalProperties"] is False
    assert props["mode"]["enum"] == list(MODES)
    assert props["max_tokens"]["default"] == mp.DEFAULT_MAX_TOKENS == 2000
    assert props["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10,
                              "description": props["limit"]["description"]}
    assert props["language"]["type"] == "array" and props["regex"]["type"] == "boolean"
    for name, prop in props.items():
        assert "--" not in prop["description"], name  # the model sees argument names, not CLI flags
    for word in ("identifiers", "error messages", "hybrid", "regex"):
        assert word in tools["search"]["description"] + props["mode"]["description"]
    for tool in tools.values():
        assert tool["outputSchema"]["type"] == "object" and tool["title"]


def test_older_revisions_get_no_fields_they_do_not_define() -> None:
    s, _ = session()
    rpc(s, "initialize", {"protocolVersion": "2025-03-26"})
    for tool in rpc(s, "tools/list")["result"]["tools"]:
        assert "outputSchema" not in tool and "title" not in tool
    assert "structuredContent" not in call(s, "search", {"query": "x"})


@pytest.mark.parametrize(("args", "expected"), [
    ({"query": "retry"}, {"query": "retry", "fts": True, "semantic": True}),
    ({"query": "retry", "mode": "semantic"}, {"query": "retry", "semantic": True}),
    ({"query": "retry", "mode": "fts", "limit": 3}, {"query": "retry", "fts": True, "limit": 3}),
    ({"query": "re.*try", "regex": True}, {"query": "re.*try", "fts": True, "regex": True}),
    ({"query": "x", "language": "python", "limit": 5.0, "min_score": None},
     {"query": "x", "fts": True, "semantic": True, "language": ["python"], "limit": 5}),
    ({"query": "x", "mode": "hybrid", "fuzzy": True, "path_filter": ["src/**"]},
     {"query": "x", "fts": True, "semantic": True, "fuzzy": True, "path_filter": ["src/**"]}),
])
def test_arguments_become_the_request_cidx_query_would_send(args: dict, expected: dict) -> None:
    s, backend = session()
    result = call(s, "search", args)
    assert result["isError"] is False
    assert backend.requests == [expected]


@pytest.mark.parametrize(("args", "words"), [
    ({"query": "x", "limit": 0}, "limit must be at least 1"),
    ({"query": "x", "limit": "ten"}, "limit must be a whole number"),
    ({"query": "x", "edit_distance": 3}, "edit_distance must be at most 2"),
    ({"query": "x", "mode": "semantic", "regex": True}, "regex only apply to full-text search"),
    ({"query": "x", "mode": "grep"}, "mode must be one of"),
    ({"query": "x", "case_sensitive": True, "ignore_case": True}, "contradict"),
    ({"query": "x", "regex": True, "fuzzy": True}, "regex cannot be combined"),
    ({"query": "x", "colour": "never"}, "unknown argument(s): colour"),
    ({"query": "   "}, "query must be a non-empty string"),
    ({}, "query must be a non-empty string"),
    ({"query": "x", "max_tokens": 10}, "max_tokens must be a whole number from 50"),
    ({"query": "x", "language": [""]}, "language values must be non-empty strings"),
])
def test_bad_arguments_are_one_line_tool_errors(args: dict, words: str) -> None:
    s, backend = session()
    result = call(s, "search", args)
    assert result["isError"] is True and "structuredContent" not in result
    text = result["content"][0]["text"]
    assert text.startswith("error: ") and "\n" not in text and words in text, text
    assert "--" not in text
    assert backend.requests == []  # refused before anything is started or sent
    assert rpc(s, "ping")["result"] == {}


def test_search_text_is_the_plain_renderer_with_project_relative_paths() -> None:
    s, _ = session()
    result = call(s, "search", {"query": "parse", "mode": "fts"})
    text = result["content"][0]["text"]
    assert text.startswith("Found 3 results (fts) for 'parse'")
    assert "pkg/mod.py:1-5" in text and "\x1b" not in text and "Query completed" not in text
    doc = result["structuredContent"]
    assert [r["path"] for r in doc["results"]] == ["pkg/mod.py"] * 3 and "request" not in doc


def test_the_token_budget_is_applied_and_reported() -> None:
    s, backend = session()
    backend.n_results = 200
    result = call(s, "search", {"query": "x"})  # the default budget: 2000 tokens
    text = result["content"][0]["text"]
    assert len(text) / 4 <= 2000 * 1.1
    assert "note: trimmed to" in text
    doc = result["structuredContent"]
    assert doc["trimmed"]["max_tokens"] == 2000 and len(doc["results"]) < 200
    small = call(s, "search", {"query": "x", "max_tokens": 100})["structuredContent"]
    assert len(small["results"]) == 1 and small["trimmed"]["results_dropped"] == 199


def test_backend_failures_are_tool_errors_and_the_session_lives_on() -> None:
    s, backend = session()
    backend.fail = mp.ToolFailure("no .code-indexer/config.json in /tmp or above: run 'cidx init'")
    assert call(s, "search", {"query": "x"})["content"][0]["text"].endswith("run 'cidx init'")
    backend.fail = RuntimeError("boom\nwith a second line")
    result = call(s, "search", {"query": "x"})
    assert result == {"content": [{"type": "text", "text": "error: RuntimeError: boom with a second line"}],
                      "isError": True}
    backend.fail = None
    backend.search = lambda request: make_error_document("no_index", "no index yet in /p: run 'cidx index'")
    result = call(s, "search", {"query": "x"})
    assert result["isError"] is True and result["content"][0]["text"].startswith("error: no index yet")


def test_status_and_index_tools() -> None:
    s, _ = session()
    status = call(s, "status")
    text = status["content"][0]["text"]
    assert "Index: 4 files, 9 chunks in g1" in text and "1 file(s) changed" in text
    assert "Daemon: running (pid 42)" in text
    assert status["structuredContent"]["daemon"]["pid"] == 42
    index = call(s, "index", {})
    assert not index["isError"]
    assert index["content"][0]["text"].startswith("Indexed 4 files, 9 chunks into g2")
    assert "\n" not in index["content"][0]["text"]
    assert call(s, "index", {"clear": True})["isError"] is True


def test_status_names_chunks_whose_function_texts_are_still_to_embed() -> None:
    info = FakeBackend().status()
    info["index"]["pending"] = {"embed": 2, "function_texts": 5}
    text = mp.status_text(info)
    assert "2 chunks not embedded yet" in text and "5 chunks' function texts not embedded yet" in text
    assert "function texts" not in mp.status_text(FakeBackend().status())


def test_structured_content_matches_the_output_schemas() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    s, _ = session()
    tools = {t["name"]: t for t in rpc(s, "tools/list")["result"]["tools"]}
    for name, args in (("search", {"query": "x"}), ("status", {}), ("index", {})):
        jsonschema.validate(call(s, name, args)["structuredContent"], tools[name]["outputSchema"])
        jsonschema.Draft202012Validator.check_schema(tools[name]["inputSchema"])


# --------------------------------------------------------------------------- properties

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_json = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=10)
_methods = st.sampled_from(["initialize", "ping", "tools/list", "tools/call", "notifications/initialized",
                            "notifications/cancelled", "resources/read", "", "x"])
_arguments = st.dictionaries(
    st.sampled_from(["query", "mode", "max_tokens", "bogus", *(o.key for o in QUERY_OPTIONS)]),
    _json_scalars | st.sampled_from(list(MODES)) | st.lists(st.text(max_size=5), max_size=2), max_size=5)
_params = st.one_of(
    _json,
    st.fixed_dictionaries({"name": st.sampled_from(["search", "status", "index", "nope"]) | _json_scalars},
                          optional={"arguments": _arguments | _json}),
    st.fixed_dictionaries({}, optional={"protocolVersion": st.sampled_from(mp.SUPPORTED_VERSIONS) | _json}),
)
_messages = st.fixed_dictionaries({}, optional={
    "jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0"]) | _json_scalars,
    "id": st.integers() | st.text(max_size=5) | _json,
    "method": _methods | _json_scalars,
    "params": _params,
    "result": _json,
})


def _check_reply(line: str | bytes, s: mp.Session) -> None:
    reply_line = s.handle_line(line)
    try:
        msg = json.loads(line)
    except ValueError:
        msg = None
    is_notification = isinstance(msg, dict) and "id" not in msg and isinstance(msg.get("method"), str)
    # A response (even a malformed one): this server asks nothing, and answering one could loop.
    is_response = isinstance(msg, dict) and "method" not in msg and ("result" in msg or "error" in msg)
    if is_notification or is_response:
        assert reply_line is None
        return
    assert reply_line is not None and "\n" not in reply_line
    reply = json.loads(reply_line)
    assert reply["jsonrpc"] == "2.0"
    assert set(reply) in ({"jsonrpc", "id", "result"}, {"jsonrpc", "id", "error"})
    assert reply["id"] is None or isinstance(reply["id"], (str, int))
    if "error" in reply:
        assert reply["error"]["code"] in KNOWN_CODES and isinstance(reply["error"]["message"], str)
        assert reply["error"]["code"] != mp.INTERNAL_ERROR, reply
    else:
        assert isinstance(reply["result"], dict)
    valid_request = (isinstance(msg, dict) and msg.get("jsonrpc") == "2.0"
                     and isinstance(msg.get("method"), str) and type(msg.get("id")) in (str, int))
    if valid_request:
        assert reply["id"] == msg["id"]
        if msg["method"] == "tools/call" and "result" in reply:
            result = reply["result"]
            assert isinstance(result["isError"], bool) and result["content"][0]["type"] == "text"
            if result["isError"]:
                assert "\n" not in result["content"][0]["text"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.binary(max_size=40).map(bytes))
def test_arbitrary_lines_never_raise(line: str | bytes) -> None:
    _check_reply(line, session()[0])


@settings(max_examples=300, deadline=None)
@given(_json)
def test_arbitrary_json_never_raises(value: Any) -> None:
    _check_reply(json.dumps(value), session()[0])


@settings(max_examples=500, deadline=None)
@given(st.lists(_messages, min_size=1, max_size=4))
def test_near_miss_messages_get_valid_replies_and_notifications_none(messages: list[dict]) -> None:
    s, _ = session()
    for message in messages:
        _check_reply(json.dumps(message), s)


@settings(max_examples=200, deadline=None)
@given(_arguments)
def test_search_arguments_are_refused_or_make_a_valid_request(args: dict) -> None:
    from cidx_shared.schema import validate_request

    s, backend = session()
    result = call(s, "search", args)
    if result["isError"]:
        assert backend.requests == []
        return
    (request,) = backend.requests
    validate_request(request)  # what the engine will do with it: no surprise there
    mode = args.get("mode") or ("fts" if any(args.get(k) for k in FTS_ONLY_KEYS) else "hybrid")
    assert bool(request.get("fts")) == (mode != "semantic")
    assert bool(request.get("semantic")) == (mode != "fts")


def test_an_index_call_with_a_progress_token_reports_a_growing_count() -> None:
    s, _ = session()
    sent: list[dict[str, Any]] = []
    params = {"name": "index", "arguments": {}, "_meta": {"progressToken": "t1"}}
    msg = mp.parse(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}))
    reply = s.respond(msg, sent.append)
    assert reply is not None and not reply["result"]["isError"]
    assert {n["method"] for n in sent} == {"notifications/progress"}
    assert [n["params"]["progress"] for n in sent] == [0, 4, 5, 6]  # the repeat is dropped
    assert {n["params"]["progressToken"] for n in sent} == {"t1"}
    assert sent[-1]["params"]["message"] == "Embedding chunks: 2 of 2"
    assert sent[0]["params"]["message"] == "Scanning files: 0"


def test_no_token_no_progress_and_old_revisions_get_no_message() -> None:
    s, _ = session()
    sent: list[dict[str, Any]] = []
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "index", "arguments": {}}}
    s.respond(mp.parse(json.dumps(call)), sent.append)
    assert sent == []
    relay = mp.ProgressRelay(3, sent.append, version="2024-11-05")
    relay("Scanning files", 1, None)
    assert sent == [{"jsonrpc": "2.0", "method": "notifications/progress",
                     "params": {"progressToken": 3, "progress": 1}}]


@pytest.mark.parametrize(("line", "expected"), [
    ({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}, 7),
    ({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "a", "reason": "r"}},
     "a"),
    ({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1.5}}, None),
    ({"jsonrpc": "2.0", "method": "notifications/cancelled"}, None),
    ({"jsonrpc": "2.0", "method": "notifications/initialized"}, None),
    ({"jsonrpc": "2.0", "id": 1, "method": "notifications/cancelled", "params": {"requestId": 7}}, None),
])
def test_which_request_a_cancellation_names(line: dict[str, Any], expected: Any) -> None:
    assert mp.cancelled_request(mp.parse(json.dumps(line))) == expected
