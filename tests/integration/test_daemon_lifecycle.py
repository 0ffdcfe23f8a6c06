"""Daemon life cycle with real processes: start, readiness, stop, kill -9, races, idle, signals."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from cidx_daemon.server.detach import exit_code_for, parse_ready_line
from cidx_daemon.server.idle import check_interval, idle_decision
from cidx_daemon.server.socket_setup import (
    MAX_SUN_PATH,
    classify_connect_error,
    decide_existing,
    probe,
)
from daemon_helpers import (
    DEADLINE_S,
    build_indexed_project,
    connect,
    copy_project,
    daemon_env,
    daemon_pids,
    envelope,
    kill_all,
    pid_alive,
    query,
    rpc,
    serve_argv,
    socket_path,
    start_detached,
    wait_for,
    wait_for_exit,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_indexed_project(tmp_path_factory.mktemp("template") / "proj")


@pytest.fixture
def project(template: Path, tmp_path: Path):
    config = copy_project(template, tmp_path / "proj")
    yield config
    kill_all(config)


# --------------------------------------------------------------------------- pure policy


def test_idle_decision_table() -> None:
    ttl = 60.0
    assert idle_decision(100.0, 150.0, ttl, 0) == "none"
    assert idle_decision(100.0, 160.0, ttl, 0) == "shutdown"
    assert idle_decision(100.0, 160.0, ttl, 1) == "evict"
    assert idle_decision(100.0, 160.0, ttl, 1, evicted=True) == "none"
    assert idle_decision(100.0, 160.0, ttl, 0, auto_shutdown=False) == "evict"
    assert idle_decision(100.0, 160.0, ttl, 0, auto_shutdown=False, evicted=True) == "none"
    assert idle_decision(100.0, 999.0, ttl, 1, in_flight=1) == "none"
    assert check_interval(600.0 * 60) == 30.0
    assert check_interval(1.2) == pytest.approx(0.3)


def test_existing_socket_decision_table() -> None:
    assert decide_existing("alive") == "running"
    assert decide_existing("busy") == "running"
    assert decide_existing("timeout") == "running"
    assert decide_existing("refused") == "unlink"
    assert decide_existing("absent") == "bind"
    assert decide_existing("not_a_socket") == "error"
    assert decide_existing("errno:EACCES") == "error"
    assert classify_connect_error(errno.ECONNREFUSED) == "refused"
    assert classify_connect_error(errno.ENOENT) == "absent"
    assert classify_connect_error(errno.EAGAIN) == "busy"


def test_readiness_line_parsing() -> None:
    assert parse_ready_line(b"ready 123\n") == ("ready", "123")
    assert parse_ready_line(b"running a daemon is already running\n")[0] == "running"
    assert parse_ready_line(b"error cannot bind\n") == ("error", "cannot bind")
    assert parse_ready_line(b"")[0] == "eof"
    assert parse_ready_line(b"garbage\n")[0] == "error"
    assert [exit_code_for(k) for k in ("ready", "running", "error", "eof", "timeout")] == [0, 0, 1, 1, 1]


# --------------------------------------------------------------------------- start / stop


def test_detached_start_status_sigterm(project: Path) -> None:
    os.chmod(project.parent, 0o755)  # the daemon must tighten it
    started = start_detached(project)
    assert started.returncode == 0, started.stderr
    assert "started" in started.stdout

    status = rpc(project, "status")
    pid = status["pid"]
    assert pid_alive(pid)
    assert status["socket_path"] == str(socket_path(project))
    assert status["log_path"] == str(project.parent / "daemon.log")
    assert status["project_root"] == str(project.parent.parent)
    assert stat.S_IMODE(os.stat(socket_path(project)).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(socket_path(project)).st_mode)
    assert stat.S_IMODE(os.stat(project.parent).st_mode) == 0o700
    assert query(project, query="add numbers", fts=True)["error"] is None

    os.kill(pid, signal.SIGTERM)
    wait_for_exit(pid, project.parent / "daemon.log", "the daemon to exit on SIGTERM")
    assert not socket_path(project).exists()
    log = (project.parent / "daemon.log").read_text()
    assert f"pid={pid}" in log
    assert "starting cidx daemon" in log
    assert "daemon stopped (SIGTERM)" in log


def test_foreground_ready_fd_and_exit_code(project: Path) -> None:
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(serve_argv(project, "--ready-fd", str(write_fd)), env=daemon_env(),
                            pass_fds=(write_fd,), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            line = pipe.readline()
        assert line == f"ready {proc.pid}\n".encode()
        assert query(project, query="add numbers", fts=True)["error"] is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=DEADLINE_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not socket_path(project).exists()


def test_kill9_leaves_stale_socket_next_start_cleans_it(project: Path) -> None:
    assert start_detached(project).returncode == 0
    first = rpc(project, "status")["pid"]
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not pid_alive(first), "the killed daemon to die")

    # kill -9 leaves the socket file behind; once the kernel has closed the dead
    # daemon's fds (other threads may outlive the zombie leader briefly) it refuses
    dir_fd = os.open(project.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        wait_for(lambda: probe(dir_fd, str(socket_path(project)), "daemon.sock") == "refused",
                 "the dead daemon's socket to refuse connections")
    finally:
        os.close(dir_fd)
    assert socket_path(project).exists()

    again = start_detached(project)
    assert again.returncode == 0, again.stderr
    assert "started" in again.stdout
    second = rpc(project, "status")["pid"]
    assert second != first
    assert query(project, query="load settings", fts=True)["error"] is None


def test_twenty_racing_starters_leave_exactly_one_daemon(project: Path) -> None:
    env = daemon_env()
    starters = [subprocess.Popen(serve_argv(project, "--detach"), env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(20)]
    outputs = []
    for proc in starters:
        out, err = proc.communicate(timeout=DEADLINE_S * 2)
        outputs.append((proc.returncode, out, err))
    assert all(code == 0 for code, _, _ in outputs), outputs
    assert sum("started" in out for _, out, _ in outputs) == 1, outputs
    assert sum("already running" in out for _, out, _ in outputs) == 19, outputs

    serving = rpc(project, "status")["pid"]
    wait_for(lambda: daemon_pids(project) == [serving], "the losing starters to exit")
    assert query(project, query="add", fts=True)["error"] is None


def test_project_path_longer_than_sun_path(template: Path, tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "a-project-with-a-long-name"
    config = copy_project(template, deep)
    sock = socket_path(config)
    assert len(str(deep)) > 150 and len(os.fsencode(str(sock))) > MAX_SUN_PATH
    try:
        started = start_detached(config)
        assert started.returncode == 0, started.stderr
        assert sock.exists() and stat.S_ISSOCK(os.stat(sock).st_mode)  # at its real place
        with connect(config) as conn:  # through /proc/self/fd/N/daemon.sock
            doc = conn.root.query(envelope(config, {"query": "add numbers", "fts": True}))
        assert type(doc) is str and '"error": null' in doc
        status = rpc(config, "status")
        assert status["socket_path"] == str(sock)
        # a second starter probes through the alias too and sees it alive
        again = start_detached(config)
        assert again.returncode == 0 and "already running" in again.stdout
        os.kill(status["pid"], signal.SIGTERM)
        wait_for(lambda: not pid_alive(status["pid"]), "the daemon to exit")
        assert not sock.exists()
    finally:
        kill_all(config)


def test_idle_shutdown_removes_socket_and_exits(template: Path, tmp_path: Path) -> None:
    config = copy_project(template, tmp_path / "proj", ttl_minutes=0.02, auto_shutdown_on_idle=True)
    try:
        assert start_detached(config).returncode == 0
        pid = rpc(config, "status")["pid"]
        wait_for(lambda: not pid_alive(pid), "the idle daemon to exit")
        assert not socket_path(config).exists()
        log = (config.parent / "daemon.log").read_text()
        assert "no client: shutting down" in log and "daemon stopped (idle)" in log
    finally:
        kill_all(config)


def test_idle_ttl_evicts_caches_without_shutdown(template: Path, tmp_path: Path) -> None:
    config = copy_project(template, tmp_path / "proj", ttl_minutes=0.02, auto_shutdown_on_idle=False)
    try:
        assert start_detached(config).returncode == 0
        assert query(config, query="add numbers")["error"] is None  # loads model + index

        def evicted() -> bool:
            status = rpc(config, "status")  # status is not activity: it does not reset the TTL
            cache = status["engine"]["cache"]
            return status["cache"]["evicted"] and not cache["model_loaded"] and not cache["index_loaded"]

        wait_for(evicted, "the TTL to evict the caches")
        pid = rpc(config, "status")["pid"]
        assert pid_alive(pid) and socket_path(config).exists()
        assert query(config, query="add numbers")["error"] is None  # reloads on demand
    finally:
        kill_all(config)


SLOW_ENGINE = '''
from pathlib import Path

from cidx_daemon.search.engine import Engine


class GatedEngine(Engine):
    """The real engine, except a query for GATED blocks until the test opens the FIFO."""

    def query(self, request):
        if request.get("query") == "GATED":
            gate = Path(self.config_path).parent / "gate.fifo"
            (Path(self.config_path).parent / "gate.entered").write_text("in")
            with open(gate) as fh:
                fh.read()
            request = dict(request, query="add numbers")
        return super().query(request)


def factory(config_path):
    return GatedEngine(config_path, served_by="daemon")
'''


def test_sigterm_lets_in_flight_query_finish(project: Path, tmp_path: Path) -> None:
    (tmp_path / "gated_engine.py").write_text(SLOW_ENGINE)
    os.mkfifo(project.parent / "gate.fifo")
    env = daemon_env(PYTHONPATH=str(tmp_path), CIDX_DAEMON_ENGINE_FACTORY="gated_engine:factory")
    assert start_detached(project, env=env).returncode == 0
    pid = rpc(project, "status")["pid"]

    answers: list[dict] = []
    client = threading.Thread(target=lambda: answers.append(query(project, query="GATED", fts=True)))
    client.start()
    wait_for((project.parent / "gate.entered").exists, "the query to reach the engine")

    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not socket_path(project).exists(), "the daemon to stop accepting")
    assert pid_alive(pid)  # still draining: the query is blocked on the gate
    with open(project.parent / "gate.fifo", "w") as gate:
        gate.write("go")
    client.join(DEADLINE_S)
    assert answers and answers[0]["error"] is None and answers[0]["results"]
    wait_for(lambda: not pid_alive(pid), "the daemon to exit after the query")
    log = (project.parent / "daemon.log").read_text()
    assert "waiting for 1 in-flight call(s)" in log and "daemon stopped (SIGTERM)" in log


def test_start_without_config_fails_cleanly(tmp_path: Path) -> None:
    proc = subprocess.run(serve_argv(tmp_path / "nope" / "config.json", "--detach"), env=daemon_env(),
                          capture_output=True, text=True, timeout=DEADLINE_S, check=False)
    assert proc.returncode != 0
    assert "no config" in proc.stderr and "Traceback" not in proc.stderr
