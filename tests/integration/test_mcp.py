"""``cidx mcp`` under the official MCP SDK's stdio client: the zipapp, a real daemon, a real index.

The server is the client zipapp exactly as build.py writes it (built afresh here with
build.py's own ``build_zipapp``, so a stale dist/ cannot be judged), started the way an
agent starts it: its own /bin/sh launcher, stdin/stdout as the protocol channel. The SDK
is strict about what it reads (it validates every result against the negotiated
revision, and structured content against each tool's output schema), so a test that
passes here is a server a real agent can use.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cidx_shared.schema import QUERY_OPTIONS
from client_helpers import cidx, client_env, daemon_pids, kill_daemon
from helpers import load_build_script

mcp = pytest.importorskip("mcp")
from mcp import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = load_build_script()
    return build.build_zipapp(tmp_path_factory.mktemp("zipapp") / "cidx.pyz", build.resolve_python(None))


def _get(obj: Any, snake: str, camel: str) -> Any:
    """SDK 2.x names fields in snake_case, 1.x as on the wire: accept both."""
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel)


def _text(result: Any) -> str:
    return "".join(block.text for block in result.content if getattr(block, "type", "") == "text")


def _structured(result: Any) -> Any:
    return _get(result, "structured_content", "structuredContent")


def _is_error(result: Any) -> bool:
    return bool(_get(result, "is_error", "isError"))


def run_session(pyz: Path, project: Path, errlog: Path,
                body: Callable[[ClientSession], Awaitable[None]]) -> None:
    """Start ``cidx mcp`` in ``project`` under the SDK's stdio client and run ``body`` on the session."""
    params = StdioServerParameters(command=str(pyz), args=["mcp"], env=client_env(), cwd=str(project))

    async def main() -> None:
        with errlog.open("w") as err:
            async with stdio_client(params, errlog=err) as streams, ClientSession(*streams) as session:
                init = await session.initialize()
                assert _get(init, "protocol_version", "protocolVersion") == "2025-06-18"
                await asyncio.wait_for(body(session), timeout=240)

    asyncio.run(main())


def test_search_survives_a_killed_daemon_and_bad_arguments(pyz: Path, project: Path, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def body(session: ClientSession) -> None:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == {"search", "status", "index"}
        props = _get(tools["search"], "input_schema", "inputSchema")["properties"]
        assert {o.key for o in QUERY_OPTIONS} - {"fts", "semantic"} <= set(props)
        assert props["max_tokens"]["default"] == 2000

        first = await session.call_tool("search", {"query": "retry_with_backoff", "mode": "fts"})
        assert not _is_error(first), _text(first)
        doc = _structured(first)
        top = doc["results"][0]
        assert top["path"] == "net/fetch.py"
        assert 1 <= top["start_line"] <= top["end_line"]
        assert f"net/fetch.py:{top['start_line']}-{top['end_line']}" in _text(first)
        assert "\x1b[" not in _text(first)  # no colour on the protocol channel
        assert doc["served_by"] == "daemon"

        seen["killed"] = kill_daemon(project)  # SIGKILL, mid-session
        again = await session.call_tool("search", {"query": "sleep longer between tries", "limit": 3})
        assert not _is_error(again), _text(again)
        assert _structured(again)["mode"] == "hybrid"
        assert any(r["path"] == "net/fetch.py" for r in _structured(again)["results"])
        seen["after"] = daemon_pids(project)

        for bad in ({"query": "x", "limit": 0}, {"query": "x", "no_such_option": True},
                    {"query": "x", "mode": "semantic", "regex": True}, {"query": ""}):
            refused = await session.call_tool("search", bad)
            assert _is_error(refused), bad
            line = _text(refused)
            assert line.startswith("error: ") and "\n" not in line, line
        assert "limit" in _text(await session.call_tool("search", {"query": "x", "limit": 0}))

        await session.send_ping()  # still serving
        last = await session.call_tool("search", {"query": "bubble_sort", "mode": "fts", "max_tokens": 60})
        assert not _is_error(last)
        assert _structured(last)["results"][0]["path"] == "util/sorting.py"

    run_session(pyz, project, tmp_path / "stderr.txt", body)
    assert seen["after"] and seen["killed"] not in seen["after"]  # a new daemon answered
    log = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in log


def test_status_and_index_tools(pyz: Path, project: Path, tmp_path: Path) -> None:
    async def body(session: ClientSession) -> None:
        status = await session.call_tool("status", {})
        assert not _is_error(status), _text(status)
        text = _text(status)
        assert "Index: 4 files" in text and "Freshness: up to date" in text and "Daemon:" in text
        assert _structured(status)["index"]["indexed"] is True

        (project / "util" / "extra.py").write_text("def brand_new_helper():\n    return 42\n")
        heard: list[tuple[float, Any, Any]] = []

        async def on_progress(progress: float, total: Any, message: Any = None) -> None:
            heard.append((progress, total, message))

        refreshed = await session.call_tool("index", {}, progress_callback=on_progress)
        assert not _is_error(refreshed), _text(refreshed)
        assert heard, "an index call with a progress token reported no progress"
        counts = [p for p, _, _ in heard]
        assert counts == sorted(set(counts))  # strictly growing, as MCP requires
        assert any(m and m.startswith("Scanning files") for _, _, m in heard), heard
        line = _text(refreshed)
        assert "\n" not in line and line.startswith(("Indexed 5 files", "Index is up to date: 5 files"))
        assert _structured(refreshed)["files"] == 5

        found = await session.call_tool("search", {"query": "brand_new_helper", "mode": "fts"})
        assert not _is_error(found), _text(found)
        assert _structured(found)["results"][0]["path"] == "util/extra.py"

        wrong = await session.call_tool("status", {"verbose": True})
        assert _is_error(wrong) and "no arguments" in _text(wrong)

    run_session(pyz, project, tmp_path / "stderr.txt", body)


def test_outside_a_project_every_tool_says_so_in_one_line(pyz: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()

    async def body(session: ClientSession) -> None:
        for name, args in (("search", {"query": "x"}), ("status", {}), ("index", {})):
            result = await session.call_tool(name, args)
            assert _is_error(result) and "cidx init" in _text(result) and "\n" not in _text(result)

    run_session(pyz, elsewhere, tmp_path / "stderr.txt", body)
    assert not (elsewhere / ".code-indexer").exists()


def test_stdout_carries_protocol_messages_only(pyz: Path, project: Path) -> None:
    """Raw pipes, no SDK: every line out is JSON-RPC, including around a daemon start."""
    import json
    import subprocess

    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                    "clientInfo": {"name": "t", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "search", "arguments": {"query": "fetch json", "limit": 2}}},
        {"jsonrpc": "2.0", "id": 3, "method": "resources/list"},
    ]
    text = "".join(json.dumps(m) + "\n" for m in lines) + "{oops\n"
    proc = subprocess.run([str(pyz), "mcp"], input=text, cwd=project, env=client_env(), capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert all(r["jsonrpc"] == "2.0" for r in replies) and len(replies) == 4
    by_id = {r["id"]: r for r in replies}
    assert by_id[1]["result"]["protocolVersion"] == "2024-11-05"
    assert "structuredContent" not in by_id[2]["result"]  # not in the 2024-11-05 revision
    assert by_id[2]["result"]["isError"] is False and "web/app.js" in by_id[2]["result"]["content"][0]["text"]
    assert by_id[3]["error"]["code"] == -32601
    assert by_id[None]["error"]["code"] == -32700
    assert os.path.exists(project / ".code-indexer" / "daemon.sock")


def test_a_cancelled_index_call_stops_its_run_and_gets_no_reply(pyz: Path, tmp_path: Path) -> None:
    """Raw pipes: cancel an index run once it reports embedding; the server answers the
    next request, never the cancelled one, the run's process is gone and the index is usable."""
    import json
    import subprocess
    import time

    project = tmp_path / "big"
    project.mkdir()
    for i in range(150):  # a few seconds of embedding on these machines
        (project / f"mod_{i}.py").write_text("".join(
            f"def handler_{i}_{j}(request, retries={j}):\n    # answer request {j} of module {i}\n"
            f"    return [request.get(k) for k in range({j}, {j + 7})]\n\n" for j in range(6)))
    assert cidx("init", cwd=project).returncode == 0
    proc = subprocess.Popen([str(pyz), "mcp"], cwd=project, env=client_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    def send(message: dict[str, Any]) -> None:
        proc.stdin.write(json.dumps(message) + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]

    try:
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "t", "version": "0"}}})
        assert json.loads(proc.stdout.readline())["id"] == 1
        send({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
              "params": {"name": "index", "arguments": {}, "_meta": {"progressToken": "run"}}})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # wait until the run is embedding
            note = json.loads(proc.stdout.readline())
            assert note.get("id") != 5, f"the run ended before it could be cancelled: {note}"
            if note["params"].get("message", "").startswith("Embedding chunks"):
                break
        send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}})
        send({"jsonrpc": "2.0", "id": 6, "method": "ping"})
        proc.stdin.close()  # the server finishes what runs, answers it, and exits at EOF
        rest = [json.loads(line) for line in proc.stdout]
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 6 in [r.get("id") for r in rest]
    assert 5 not in [r.get("id") for r in rest], "a cancelled call was answered"
    assert "cancelled by the client" in proc.stderr.read()
    # Stopped mid-embedding: the live index is the run's full-text generation, its vectors
    # pending (a run left to finish embeds them all), and the next run can take the lock.
    status = json.loads(cidx("status", "--json", cwd=project).stdout)
    assert (status.get("pending") or {}).get("embed", 0) > 0, status
    done = cidx("index", "--quiet", cwd=project)
    assert done.returncode == 0, done.stderr


def test_help_says_what_it_serves_and_how_to_add_it(tmp_path: Path) -> None:
    proc = cidx("mcp", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    for words in ("Model Context Protocol", "2025-06-18", "search", "status", "index", "max_tokens",
                  "default 2000", "claude mcp add cidx -- cidx mcp", '"mcpServers"', "stderr"):
        assert words in proc.stdout, words
    assert "mcp" in cidx("--help", cwd=tmp_path).stdout
