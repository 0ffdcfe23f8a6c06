"""The stdlib client against real daemon processes: auto-start, crash recovery
(kill -9 three times), stale sockets, fallback, identical output in both modes,
every flag end to end, concurrent cold starts."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cidx_shared import cli_args, schema
from client_helpers import cidx, client_env, daemon_pids, kill_daemon, status


def test_first_query_starts_the_daemon(project: Path) -> None:
    assert status(project)["state"] == "absent"
    proc = cidx("query", "urlopen", "--fts", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("✓ Query completed in ") and "net/fetch.py" in proc.stdout
    assert proc.stderr == ""
    st = status(project)
    assert st["state"] == "running" and len(daemon_pids(project)) == 1
    sock = project / ".code-indexer" / "daemon.sock"
    assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
    human = cidx("daemon", "status", cwd=project).stdout
    for expected in ("Daemon:     running (pid", "Generation: gen-", "Cache:      model ", "Log:        "):
        assert expected in human, human


def test_daemon_status_names_the_published_generation_and_what_it_still_serves(project: Path) -> None:
    """A generation published after the daemon's last query is what the next query serves:
    status names it, and says the loaded one until then (it named only the loaded one)."""
    assert cidx("query", "urlopen", "--fts", cwd=project).returncode == 0
    serving = status(project)["daemon"]["engine"]["cache"]["generation_loaded"]
    (project / "later.py").write_text("def published_later():\n    return 1\n")
    assert cidx("index", "--quiet", cwd=project).returncode == 0
    live = (project / ".code-indexer" / "index" / "CURRENT").read_text().split()[0]
    assert live != serving
    human = cidx("daemon", "status", cwd=project).stdout
    assert f"Generation: {live} (serving {serving} until the next query loads it)" in human, human
    assert cidx("query", "published_later", "--fts", cwd=project).returncode == 0
    human = cidx("daemon", "status", cwd=project).stdout
    now = (project / ".code-indexer" / "index" / "CURRENT").read_text().split()[0]
    assert f"Generation: {now}\n" in human, human


def test_kill_9_three_times_restarts_twice_then_falls_back(project: Path) -> None:
    assert cidx("query", "backoff", "--fts", cwd=project).returncode == 0
    for attempt in (1, 2):
        old = kill_daemon(project)
        proc = cidx("query", "backoff", "--fts", cwd=project)
        assert proc.returncode == 0 and "net/fetch.py" in proc.stdout
        assert f"⚠️ Daemon crashed, attempting restart ({attempt}/2)" in proc.stderr
        new = status(project)["daemon"]["pid"]
        assert new != old and daemon_pids(project) == [new]
    kill_daemon(project)
    proc = cidx("query", "backoff", "--fts", cwd=project)
    assert proc.returncode == 0 and "net/fetch.py" in proc.stdout
    assert "ℹ️ Daemon unavailable after 2 restart attempts, using standalone mode" in proc.stderr
    assert "Reason: " in proc.stderr and "daemon.log" in proc.stderr
    assert "Tip: Check daemon with 'cidx daemon status'" in proc.stderr
    assert daemon_pids(project) == []
    # an explicit start forgives the crashes: queries are served by the daemon again
    assert cidx("daemon", "start", cwd=project).returncode == 0
    proc = cidx("query", "backoff", "--fts", "--json", cwd=project)
    assert proc.stderr == "" and json.loads(proc.stdout)["served_by"] == "daemon"


def test_stale_socket_is_cleaned_and_served(project: Path) -> None:
    path = project / ".code-indexer" / "daemon.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # a socket file nobody listens on: what kill -9 leaves behind
    assert status(project)["state"] == "stale"
    proc = cidx("query", "backoff", "--fts", "--json", cwd=project)
    assert proc.returncode == 0 and json.loads(proc.stdout)["served_by"] == "daemon"
    assert status(project)["state"] == "running"


def test_app_error_never_restarts_the_daemon(project: Path) -> None:
    assert cidx("daemon", "start", cwd=project).returncode == 0
    pid = status(project)["daemon"]["pid"]
    for args in (["(", "--regex"], ["x", "--language", "klingon"]):
        proc = cidx("query", *args, cwd=project)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ")
        assert "restart" not in proc.stderr and "Traceback" not in proc.stderr
    assert status(project)["daemon"]["pid"] == pid


def _strip_timing(text: str) -> str:
    first, _, rest = text.partition("\n")
    assert first.startswith("✓ Query completed in ")
    return rest


def _wait_for_the_first_rescan(project: Path) -> None:
    """A new daemon rescans the project once (what changed while none ran); until that is done
    its answers rightly say '1 changed file(s) being indexed', which standalone mode never does."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = json.loads(cidx("daemon", "status", "--json", cwd=project).stdout).get("daemon") or {}
        watch = info.get("refresher") or {}
        if watch.get("refreshes") and not watch.get("busy") and not watch.get("full_rescan_queued"):
            return
        time.sleep(0.1)
    raise AssertionError("the daemon's first rescan did not finish")


@pytest.mark.parametrize("mode", [["--fts"], [], ["--fts", "--semantic"]])
def test_output_is_identical_in_daemon_and_standalone_mode(project: Path, mode: list[str]) -> None:
    args = ["query", "open a url with a timeout", *mode, "--limit", "3"]
    assert cidx("daemon", "start", cwd=project).returncode == 0
    _wait_for_the_first_rescan(project)
    daemon_human = cidx(*args, cwd=project)
    daemon_json = json.loads(cidx(*args, "--json", cwd=project).stdout)
    assert cidx("config", "--no-daemon", cwd=project).returncode == 0
    assert daemon_pids(project) == []  # disabling stops the daemon
    alone_human = cidx(*args, cwd=project)
    alone_json = json.loads(cidx(*args, "--json", cwd=project).stdout)
    assert alone_human.stderr == ""  # disabled: standalone without warnings
    assert _strip_timing(daemon_human.stdout) == _strip_timing(alone_human.stdout)
    assert daemon_json["served_by"] == "daemon" and alone_json["served_by"] == "standalone"
    for doc in (daemon_json, alone_json):
        doc.pop("served_by")
        doc.pop("timing_ms")
    assert daemon_json == alone_json
    assert daemon_pids(project) == []


FLAG_VALUES = {
    "fts": [], "semantic": [], "limit": ["3"], "language": ["python"], "exclude_language": ["js"],
    "path_filter": ["net/*"], "exclude_path": ["docs/"], "min_score": ["0.01"],
    "case_sensitive": [], "ignore_case": [], "fuzzy": [], "edit_distance": ["2"], "regex": [],
    "snippet_lines": ["1"],
}


@pytest.mark.parametrize("enabled", [True, False], ids=["daemon", "standalone"])
def test_every_flag_reaches_the_engine(project: Path, enabled: bool) -> None:
    assert set(FLAG_VALUES) == {o.key for o in schema.QUERY_OPTIONS}, "a flag has no end-to-end test"
    if not enabled:
        assert cidx("config", "--no-daemon", cwd=project).returncode == 0
    for opt in schema.QUERY_OPTIONS:
        argv = [opt.flag, *FLAG_VALUES[opt.key]]
        if opt.key in ("case_sensitive", "ignore_case", "fuzzy", "edit_distance", "regex"):
            argv.append("--fts")
        query = "fetch.*timeout" if opt.key == "regex" else "fetch timeout"
        proc = cidx("query", query, *argv, "--json", cwd=project)
        assert proc.returncode == 0, (opt.flag, proc.stderr)
        doc = json.loads(proc.stdout)
        expected = schema.validate_request(cli_args.request_from_namespace(_parse(["query", query, *argv])))
        assert doc["request"] == expected, opt.flag
        assert doc["served_by"] == ("daemon" if enabled else "standalone")
        value = expected[opt.key]
        assert value != opt.default or opt.key == "fuzzy", opt.flag


def _parse(argv: list[str]):
    from cidx.cli import build_parser

    return build_parser().parse_args(argv)


def test_twenty_concurrent_cold_queries_start_one_daemon(project: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "cidx", "query", "backoff", "--fts", "--json"],
                              cwd=project, env=client_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(20)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "net/fetch.py" in out
    assert len(daemon_pids(project)) == 1
    served = [json.loads(out)["served_by"] for out, _ in outs]
    assert served.count("daemon") == 20


def test_missing_daemon_package_is_one_line(project: Path) -> None:
    e = client_env()
    e["PATH"] = "/usr/bin:/bin"
    proc = cidx("query", "backoff", "--fts", cwd=project, env_=e)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not installed" in lines[0] and "build.py install" in lines[0]


def test_query_path_imports_only_the_client(project: Path) -> None:
    assert cidx("daemon", "start", cwd=project).returncode == 0
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cidx", "query", "backoff", "--fts"],
                          cwd=project, env=client_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "cidx.cli" in imported and "cidx.rpc_client" in imported
    heavy = {m for m in imported if m.split(".")[0] in (
        "cidx_daemon", "rpyc", "rich", "numpy", "subprocess", "argparse", "pathlib", "threading",
        "json", "re")}
    assert heavy == set()  # the canonical query spelling never needs argparse (schema.parse_query_argv)
    assert not {m for m in imported if m.startswith("cidx.mcp")}  # the MCP server loads for `cidx mcp` only


def test_query_from_a_subdirectory_finds_the_project(project: Path) -> None:
    proc = cidx("query", "bubble", "--fts", "--json", cwd=project / "util")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["results"][0]["path"] == "util/sorting.py"


def test_usage_errors(project: Path, tmp_path: Path) -> None:
    proc = cidx("query", "x", "--limit", "zero", cwd=project)
    assert proc.returncode == 2 and "whole number" in proc.stderr
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    proc = cidx("query", "x", cwd=elsewhere)
    assert proc.returncode == 2 and "cidx init" in proc.stderr and "Traceback" not in proc.stderr


def test_project_path_longer_than_a_unix_socket_path(template: Path, tmp_path: Path) -> None:
    deep = tmp_path / ("a-rather-long-directory-name-" * 3) / ("and-another-one-" * 3) / "project"
    shutil.copytree(template, deep, symlinks=True)
    assert len(str(deep / ".code-indexer" / "daemon.sock")) > 150
    try:
        proc = cidx("query", "backoff", "--fts", "--json", cwd=deep)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["served_by"] == "daemon"
        assert (deep / ".code-indexer" / "daemon.sock").exists()  # not moved elsewhere
        assert status(deep)["state"] == "running"
    finally:
        cidx("daemon", "stop", cwd=deep)


OLD_DAEMON = r'''
# The protocol-1 daemon, as cidx 0.1.0 shipped it: a handshake method, the request as
# bare JSON, no well-known root. Run as "... serve --config CONFIG", like a real one.
import json, os, sys
import rpyc
from rpyc.utils.server import ThreadedServer

class OldDaemon(rpyc.Service):
    def exposed_hello(self, client_protocol):
        return json.dumps({"protocol": 1, "pid": os.getpid()})

    def exposed_query(self, request_json):
        return json.dumps({"schema": 1, "error": {"code": "bad_request", "message": "unknown fields"}})

config = sys.argv[sys.argv.index("--config") + 1]
os.chdir(os.path.dirname(config))
server = ThreadedServer(OldDaemon, socket_path="daemon.sock",
                        protocol_config={"allow_pickle": False, "bind_threads": False})
print("ready", flush=True)
server.start()
'''


def test_protocol_mismatch_replaces_the_old_daemon(project: Path, tmp_path: Path) -> None:
    script = tmp_path / "old_daemon.py"
    script.write_text(OLD_DAEMON)
    config = project / ".code-indexer" / "config.json"
    old = subprocess.Popen([sys.executable, str(script), "serve", "--config", str(config)],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert old.stdout.readline().strip() == "ready"
        proc = cidx("query", "backoff", "--fts", "--json", cwd=project)
        assert proc.returncode == 0, proc.stderr
        assert "Restarting daemon" in proc.stderr and "crashed" not in proc.stderr
        assert json.loads(proc.stdout)["served_by"] == "daemon"
        assert old.wait(timeout=10) != 0  # the outdated daemon was stopped
        assert status(project)["daemon"]["pid"] != old.pid
    finally:
        if old.poll() is None:
            old.kill()


def test_handed_off_commands_keep_their_flags(project: Path) -> None:
    helped = cidx("index", "--help", cwd=project)
    assert helped.returncode == 0 and "--clear" in helped.stdout
    (project / "net" / "extra.py").write_text("def handed_off_marker():\n    return 1\n")
    stale = json.loads(cidx("status", "--json", cwd=project).stdout)
    assert stale["stale"]["added"] == 1
    indexed = cidx("index", "--quiet", cwd=project)
    assert indexed.returncode == 0, indexed.stdout
    assert "1 chunks and 1 function texts embedded" in indexed.stdout, indexed.stdout
    proc = cidx("query", "handed_off_marker", "--fts", "--json", cwd=project)
    assert json.loads(proc.stdout)["results"][0]["path"] == "net/extra.py"
    cleared = cidx("index", "--clear", "--json", cwd=project)
    cleared_stats = json.loads(cleared.stdout)
    # Rebuilt from scratch: every vector comes back, from the model or the embedding cache.
    assert cleared.returncode == 0 and cleared_stats["embedded"] + cleared_stats["cache_hits"] > 1
    assert cidx("clean", cwd=project).returncode == 0
    gone = cidx("query", "x", "--fts", cwd=project)
    assert gone.returncode == 1 and "cidx index" in gone.stderr
