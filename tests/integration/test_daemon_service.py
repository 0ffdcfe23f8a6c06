"""The daemon's RPC service: JSON text only, structured errors, parallel queries, peer check."""

from __future__ import annotations

import json
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from rpyc.utils.authenticators import AuthenticationError

from cidx_daemon.server.idle import ActivityTracker
from cidx_daemon.server.peer import PeerUidAuthenticator, peer_allowed, peer_credentials
from cidx_daemon.server.service import CidxService, DaemonInfo
from cidx_shared.schema import PROTOCOL_VERSION
from daemon_helpers import (
    build_indexed_project,
    connect,
    copy_project,
    envelope,
    kill_all,
    query,
    rpc,
    start_detached,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_indexed_project(tmp_path_factory.mktemp("template") / "proj")


@pytest.fixture(scope="module")
def daemon(template: Path, tmp_path_factory: pytest.TempPathFactory):
    """One running daemon shared by the read-only tests of this module."""
    config = copy_project(template, tmp_path_factory.mktemp("served") / "proj")
    started = start_detached(config)
    assert started.returncode == 0, started.stderr
    yield config
    kill_all(config)


# --------------------------------------------------------------------------- over the socket


def test_every_method_returns_json_text_never_a_netref(daemon: Path) -> None:
    with connect(daemon) as conn:
        for answer in (conn.root.status(), conn.root.query(envelope(daemon, {"query": "add numbers"})),
                       conn.root.clear_cache()):
            assert type(answer) is str
            doc = json.loads(answer)
            assert isinstance(doc, dict) and doc["protocol"] == PROTOCOL_VERSION


def test_status_reports_identity(daemon: Path) -> None:
    status = rpc(daemon, "status")
    assert status["project_root"] == str(daemon.parent.parent)
    assert isinstance(status["pid"], int) and status["generation"]


def test_the_protocol_travels_with_the_query_and_a_mismatch_is_a_document(daemon: Path) -> None:
    doc = rpc(daemon, "query", envelope(daemon, {"query": "add"}, protocol=PROTOCOL_VERSION + 1))
    assert doc["error"]["code"] == "protocol_mismatch"
    assert f"client {PROTOCOL_VERSION + 1}" in doc["error"]["message"]


def test_the_daemon_serves_only_its_own_project(daemon: Path, tmp_path: Path) -> None:
    doc = rpc(daemon, "query", envelope(daemon, {"query": "add", "fts": True}, project=str(tmp_path)))
    assert doc["error"]["code"] == "wrong_project" and str(daemon.parent.parent) in doc["error"]["message"]
    link = tmp_path / "same-project-by-another-name"
    link.symlink_to(daemon.parent.parent)
    doc = rpc(daemon, "query", envelope(daemon, {"query": "add", "fts": True}, project=str(link)))
    assert doc["error"] is None


@pytest.mark.parametrize(("payload", "code", "needle"), [
    ("{not json", "bad_envelope", "unreadable envelope"),
    (json.dumps(["a", "list"]), "bad_envelope", "not a cidx request envelope"),
    (json.dumps({"query": "x"}), "bad_envelope", "not a cidx request envelope"),  # a protocol-1 client
    ("[" * 100_000 + "]" * 100_000, "bad_envelope", "unreadable envelope"),  # no RecursionError escapes
    ({"query": "x", "limit": 0}, "bad_request", "--limit"),
    ({"query": "x", "bogus": 1}, "bad_request", "unknown request field"),
    ({"query": "   "}, "bad_request", "empty"),
    ({"query": "(", "fts": True, "regex": True}, "bad_request", ""),
    (["a", "list"], "bad_request", "JSON object"),
])
def test_application_errors_are_documents_and_daemon_stays_up(daemon: Path, payload: object, code: str,
                                                               needle: str) -> None:
    pid = rpc(daemon, "status")["pid"]
    doc = rpc(daemon, "query", payload if isinstance(payload, str) else envelope(daemon, payload))
    assert doc["error"]["code"] == code, doc
    assert needle in doc["error"]["message"]
    assert rpc(daemon, "status")["pid"] == pid
    assert query(daemon, query="add numbers", fts=True)["error"] is None


def test_non_string_arguments_are_refused_not_dereferenced(daemon: Path) -> None:
    with connect(daemon) as conn:
        doc = json.loads(conn.root.query({"query": "x"}))  # a dict travels as a netref
        assert doc["error"]["code"] == "bad_envelope"


def test_modes_return_results_from_the_real_engine(daemon: Path) -> None:
    for request in ({"query": "add two numbers"},
                    {"query": "settings", "fts": True},
                    {"query": "start the server", "fts": True, "semantic": True}):
        doc = query(daemon, **request)
        assert doc["error"] is None, doc
        assert doc["results"] and doc["served_by"] == "daemon"


def test_sixteen_parallel_clients(daemon: Path) -> None:
    requests = [{"query": "add numbers"}, {"query": "json", "fts": True},
                {"query": "server port", "fts": True, "semantic": True}, {"query": "load.*settings",
                                                                          "fts": True, "regex": True}]

    def client(i: int) -> list[dict]:
        return [query(daemon, **requests[(i + k) % len(requests)]) for k in range(4)]

    with ThreadPoolExecutor(16) as pool:
        docs = [d for batch in pool.map(client, range(16)) for d in batch]
    assert len(docs) == 64
    assert all(d["error"] is None and d["results"] for d in docs), [d for d in docs if d["error"]]


def test_status_shape(daemon: Path) -> None:
    status = rpc(daemon, "status")
    for key in ("pid", "uptime_seconds", "socket_path", "log_path", "generation", "cache", "engine",
                "connections", "in_flight", "ttl_seconds", "daemon_version", "python"):
        assert key in status, key
    assert {"warm", "evicted", "idle_seconds"} <= set(status["cache"])
    assert status["engine"]["indexed"] is True and "cache" in status["engine"]
    assert status["in_flight"] == 0 and status["connections"] >= 1


def test_reindex_while_serving_is_seen_by_the_next_query(template: Path, tmp_path: Path) -> None:
    from cidx_daemon.index.indexer import index_project

    config = copy_project(template, tmp_path / "proj")
    try:
        assert start_detached(config).returncode == 0
        before = query(config, query="zanzibar", fts=True)
        assert before["error"] is None and not before["results"]
        (config.parent.parent / "travel.py").write_text(
            'def visit_zanzibar():\n    """Plan a trip to zanzibar."""\n    return "zanzibar"\n')
        index_project(config)
        after = query(config, query="zanzibar", fts=True)
        assert after["error"] is None
        assert after["generation"] != before["generation"]
        assert [r["path"] for r in after["results"]] == ["travel.py"]
        log = (config.parent / "daemon.log").read_text()
        assert f"serving index generation {after['generation']}" in log
    finally:
        kill_all(config)


def test_shutdown_rpc_acknowledges_then_stops(template: Path, tmp_path: Path) -> None:
    from daemon_helpers import pid_alive, socket_path, wait_for

    config = copy_project(template, tmp_path / "proj")
    try:
        assert start_detached(config).returncode == 0
        ack = rpc(config, "shutdown")
        assert ack["ok"] is True and ack["stopping"] is True
        wait_for(lambda: not pid_alive(ack["pid"]), "the daemon to stop after shutdown()")
        assert not socket_path(config).exists()
    finally:
        kill_all(config)


# --------------------------------------------------------------------------- in process


class _ExplodingEngine:
    """Stands in for an engine *bug*: the real engine never raises, so nothing real can."""

    generation = "gen-000001"

    def query(self, request: dict) -> dict:
        raise RuntimeError("kaboom")

    def status(self) -> dict:
        raise RuntimeError("status kaboom")

    def clear_cache(self) -> None:
        pass


def test_unexpected_exception_is_logged_and_answered_as_internal(caplog: pytest.LogCaptureFixture) -> None:
    info = DaemonInfo(project_root="/p", socket_path="/p/s", log_path="/p/l", ttl_seconds=60,
                      auto_shutdown_on_idle=True)
    service = CidxService(_ExplodingEngine(), info, ActivityTracker(), lambda why: None)
    with caplog.at_level(logging.ERROR, logger="cidx_daemon.service"):
        doc = json.loads(service.exposed_query(json.dumps({"protocol": PROTOCOL_VERSION, "project": "/p",
                                                           "request": {"query": "x"}})))
    assert doc["error"]["code"] == "internal" and "kaboom" in doc["error"]["message"]
    assert any(r.exc_info for r in caplog.records)  # the traceback goes to the log...
    assert "Traceback" not in doc["error"]["message"]  # ...not to the client
    status = json.loads(service.exposed_status())
    assert "status kaboom" in status["engine"]["error"]


# --------------------------------------------------------------------------- peer check


def test_peer_allowed_is_same_uid_only() -> None:
    assert peer_allowed(1000, 1000)
    assert not peer_allowed(0, 1000)
    assert not peer_allowed(1001, 1000)


def test_authenticator_reads_so_peercred_of_a_real_socket() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid, uid, gid = peer_credentials(a)
        assert (pid, uid, gid) == (os.getpid(), os.geteuid(), os.getegid())
        sock, creds = PeerUidAuthenticator()(a)
        assert sock is a and creds == {"pid": os.getpid(), "uid": os.geteuid(), "gid": os.getegid()}
        with pytest.raises(AuthenticationError):
            PeerUidAuthenticator(own_uid=os.geteuid() + 1)(a)
    finally:
        a.close()
        b.close()
