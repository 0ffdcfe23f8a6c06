"""The trust boundary, tried as an attacker and as an unlucky user would, with real processes.

Each case below was a reproduced failure: a project's config ran commands, a socket peer
got an unrelated pid killed, secrets were served, a regex froze the daemon, a stopped
daemon was never replaced, bad bytes crashed the path, a directory or a symlink at the
socket's place was mistaken for a daemon, a broken config blocked ``daemon stop``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from client_helpers import cidx, client_env, daemon_pids, status
from helpers import write_project

SOCK = Path(".code-indexer") / "daemon.sock"


def _wait(condition, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


# --------------------------------------------------------------------------- nothing runs from project files


def test_a_command_in_the_projects_config_never_runs(project: Path) -> None:
    marker = project / "PWNED"
    cfg_path = project / ".code-indexer" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["daemon"]["command"] = ["/bin/sh", "-c", f"touch {marker}; exit 1"]
    cfg_path.write_text(json.dumps(cfg))
    proc = cidx("query", "backoff", "--fts", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["served_by"] == "daemon"  # the default command started it
    assert not marker.exists()
    assert proc.stderr.count("ignoring 'daemon.command' in the project's config") == 1
    assert "never choose a program to run" in proc.stderr


def test_the_users_own_config_or_environment_names_the_command(project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    wrapper = tmp_path / "my-cidx-daemon"
    real = Path(sys.executable).parent / "cidx-daemon"
    wrapper.write_text(f"#!/bin/sh\ntouch {marker}\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    home = tmp_path / "xdg"
    (home / "cidx").mkdir(parents=True)
    (home / "cidx" / "config.json").write_text(json.dumps({"daemon": {"command": [str(wrapper)]}}))
    (home / "cidx" / "config.json").chmod(0o600)
    proc = cidx("query", "backoff", "--fts", "--json", cwd=project,
                env_=client_env(XDG_CONFIG_HOME=str(home)))
    assert proc.returncode == 0 and json.loads(proc.stdout)["served_by"] == "daemon", proc.stderr
    assert marker.exists()
    cidx("daemon", "stop", cwd=project)
    marker.unlink()
    proc = cidx("query", "backoff", "--fts", cwd=project, env_=client_env(CIDX_DAEMON_COMMAND=str(wrapper)))
    assert proc.returncode == 0 and marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")
def test_a_config_planted_above_the_project_by_another_user_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    work = shared / "alice" / "work"
    work.mkdir(parents=True)
    for d in (tmp_path, shared, shared / "alice", work):
        d.chmod(0o755)
    planted = shared / ".code-indexer"
    planted.mkdir()
    marker = tmp_path / "PWNED"
    (planted / "config.json").write_text(json.dumps(
        {"daemon": {"command": ["/bin/sh", "-c", f"touch {marker}"]}}))
    os.chown(planted, 65534, 65534)
    os.chown(planted / "config.json", 65534, 65534)
    proc = cidx("query", "anything", "--fts", cwd=work)
    assert proc.returncode == 2
    assert "refusing the index directory" in proc.stderr and "belongs to uid 65534" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not marker.exists()


def test_a_config_others_may_write_is_refused(project: Path) -> None:
    cfg = project / ".code-indexer" / "config.json"
    cfg.chmod(0o666)
    proc = cidx("query", "backoff", "--fts", cwd=project)
    assert proc.returncode == 2 and "others may write it" in proc.stderr and "chmod go-w" in proc.stderr
    assert daemon_pids(project) == []


# --------------------------------------------------------------------------- no kill without proof


FAKE_DAEMON = r'''
# Listens on a project's socket, is not its daemon: answers every call with a document of
# another protocol, naming a pid that is not its own (a "victim" it would like killed).
import json, os, sys
import rpyc
from rpyc.utils.server import ThreadedServer

victim = int(sys.argv[2])

class Fake(rpyc.Service):
    def on_connect(self, conn):
        conn._local_objects.add(("cidx.service", 0, 0), self)

    def exposed_query(self, envelope):
        return json.dumps({"schema": 1, "protocol": 99, "pid": victim, "error": None, "results": []})

    def exposed_status(self):
        return json.dumps({"pid": victim, "protocol": 99})

os.chdir(os.path.dirname(sys.argv[1]))
server = ThreadedServer(Fake, socket_path=os.path.basename(sys.argv[1]),
                        protocol_config={"allow_pickle": False, "bind_threads": False})
print("ready", flush=True)
server.start()
'''


def test_a_fake_daemon_naming_a_foreign_pid_gets_nothing_killed(project: Path, tmp_path: Path) -> None:
    script = tmp_path / "fake.py"
    script.write_text(FAKE_DAEMON)
    victim = subprocess.Popen(["sleep", "300"])
    fake = subprocess.Popen([sys.executable, str(script), str(project / SOCK), str(victim.pid)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == "ready"
        proc = cidx("query", "backoff", "--fts", "--json", cwd=project)
        assert proc.returncode == 0 and json.loads(proc.stdout)["served_by"] == "standalone"
        assert "Not killing the process on the socket" in proc.stderr
        assert f"process {fake.pid} is not this project's daemon" in proc.stderr
        stop = cidx("daemon", "stop", cwd=project)
        assert stop.returncode == 1 and "nothing was signalled" in stop.stdout
        assert _alive(victim.pid) and _alive(fake.pid)
    finally:
        for p in (fake, victim):
            p.kill()
            p.wait()


def test_daemon_stop_returns_once_the_process_is_gone_and_says_so(project: Path) -> None:
    assert cidx("daemon", "start", cwd=project).returncode == 0
    pid = status(project)["pid"]
    proc = cidx("daemon", "stop", cwd=project)
    assert proc.returncode == 0 and proc.stdout.strip() == f"Daemon stopped (pid {pid})"
    assert not _alive(pid)  # gone when stop returned, not "soon"
    assert not (project / SOCK).exists()
    assert cidx("daemon", "stop", cwd=project).stdout.strip() == "Daemon not running"


def test_daemon_stop_works_with_a_broken_config(project: Path) -> None:
    assert cidx("daemon", "start", cwd=project).returncode == 0
    pid = status(project)["pid"]
    (project / ".code-indexer" / "config.json").write_text("{ not json")
    proc = cidx("daemon", "stop", cwd=project)
    assert proc.returncode == 0 and f"pid {pid}" in proc.stdout and not _alive(pid)


# --------------------------------------------------------------------------- no hangs


def test_a_regex_bomb_holds_nobody_up(project: Path) -> None:
    # Backtracking tries every way to split each run of a's before it meets the "b".
    (project / "bomb.txt").write_text(("a" * 700 + "b\n") * 200)
    assert cidx("index", "--quiet", cwd=project).returncode == 0
    assert cidx("daemon", "start", cwd=project).returncode == 0
    pid = status(project)["pid"]
    answers: dict[str, subprocess.CompletedProcess] = {}
    took: dict[str, float] = {}

    def run(name: str, *args: str) -> None:
        t0 = time.monotonic()
        answers[name] = cidx("query", *args, cwd=project, timeout=120)
        took[name] = time.monotonic() - t0

    bomb = threading.Thread(target=run, args=("bomb", "(a+)+$", "--regex", "--json"))
    other = threading.Thread(target=run, args=("other", "backoff", "--fts", "--json"))
    bomb.start()
    other.start()
    bomb.join()
    other.join()
    print(f"regex bomb answered in {took['bomb']:.2f}s, the other client in {took['other']:.2f}s")
    assert answers["bomb"].returncode == 0, answers["bomb"].stderr
    assert json.loads(answers["bomb"].stdout)["results"] == []  # no line of a's ends the line
    assert answers["other"].returncode == 0 and "net/fetch.py" in answers["other"].stdout
    assert "restart" not in answers["bomb"].stderr + answers["other"].stderr
    assert status(project)["pid"] == pid


def test_a_stopped_daemon_is_replaced_for_real(project: Path) -> None:
    assert cidx("daemon", "start", cwd=project).returncode == 0
    old = status(project)["pid"]
    os.kill(old, signal.SIGSTOP)
    try:
        proc = cidx("query", "backoff", "--fts", "--json", cwd=project, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["served_by"] == "daemon"
        assert "attempting restart (1/2)" in proc.stderr and "hung" in proc.stderr
        _wait(lambda: not _alive(old), "the hung daemon to be gone")
        new = status(project)
        assert new["state"] == "running" and new["pid"] != old
        assert daemon_pids(project) == [new["pid"]]
        again = cidx("query", "backoff", "--fts", cwd=project)
        assert again.returncode == 0 and again.stderr == ""  # the next query is fast and quiet
    finally:
        if _alive(old):
            os.kill(old, signal.SIGKILL)


# --------------------------------------------------------------------------- bytes and things at the edges


@pytest.mark.parametrize("argv", [["query", "caf\udce9"],
                                  ["query", "x", "--fts", "--path-filter", "a\udcff/*"]])
def test_arguments_that_are_not_utf8_are_usage_errors_and_start_nothing(project: Path,
                                                                         argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "cidx", *(os.fsencode(a) for a in argv)], cwd=project,
                          env=client_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "is not valid UTF-8" in proc.stderr and "Traceback" not in proc.stderr
    assert daemon_pids(project) == []


def test_a_directory_at_the_socket_path_is_left_alone_and_reported(project: Path) -> None:
    (project / SOCK).mkdir()
    proc = cidx("query", "backoff", "--fts", "--json", cwd=project)
    assert proc.returncode == 0 and json.loads(proc.stdout)["served_by"] == "standalone"
    assert "daemon.sock is a directory; remove it" in proc.stderr and "Traceback" not in proc.stderr
    assert (project / SOCK).is_dir()
    assert status(project)["state"] == "unusable"


def test_a_symlinked_socket_to_another_project_is_not_used(project: Path, tmp_path: Path,
                                                            template: Path) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(template, other, symlinks=True)
    (other / "net" / "only_other.py").write_text("def only_in_the_other_project():\n    pass\n")
    assert cidx("index", "--quiet", cwd=other).returncode == 0
    assert cidx("daemon", "start", cwd=other).returncode == 0
    try:
        (project / SOCK).symlink_to(other / SOCK)
        proc = cidx("query", "only_in_the_other_project", "--fts", "--json", cwd=project)
        assert proc.returncode == 0 and json.loads(proc.stdout)["results"] == []
        assert "is a symbolic link" in proc.stderr
    finally:
        cidx("daemon", "stop", cwd=other)


def test_a_daemon_of_another_project_refuses_to_serve(project: Path, tmp_path: Path, template: Path) -> None:
    """Hard link, not symlink: the socket file itself, so only the daemon's project check can tell."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(template, other, symlinks=True)
    assert cidx("daemon", "start", cwd=other).returncode == 0
    try:
        os.link(other / SOCK, project / SOCK)
        proc = cidx("query", "backoff", "--fts", "--json", cwd=project)
        assert proc.returncode == 0 and json.loads(proc.stdout)["served_by"] == "standalone"
        assert f"this daemon serves {other}" in proc.stderr
        assert status(other)["state"] == "running"  # never restarted, never killed
    finally:
        cidx("daemon", "stop", cwd=other)


def test_control_characters_in_content_and_names_do_not_reach_the_terminal(project: Path) -> None:
    (project / "evil\x1b[31mname.py").write_text("def paint():\n    return '\x1b]0;owned\x07\x1b[2J'\n")
    assert cidx("index", "--quiet", cwd=project).returncode == 0
    proc = cidx("query", "paint", "--fts", cwd=project)
    assert proc.returncode == 0 and "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "\\x1b[2J" in proc.stdout and "evil\\x1b[31mname.py" in proc.stdout
    assert "\x1b" in json.loads(cidx("query", "paint", "--fts", "--json", cwd=project).stdout)[
        "results"][0]["content"]  # the document keeps the text as it is


def test_secrets_are_not_indexed_and_the_skip_is_reported(project: Path) -> None:
    write_project(project, {".env": "API_TOKEN=hunter2\n", "deploy/id_rsa": "PRIVATE KEY hunter2\n",
                            "config/credentials.yml": "token: hunter2\n",
                            ".npmrc": "//reg/:_authToken=hunter2\n",
                            "src/settings.py": "TOKEN = os.environ['API_TOKEN']\n"})
    indexed = cidx("index", cwd=project)
    assert indexed.returncode == 0 and "4 secret" in indexed.stdout, indexed.stdout
    doc = json.loads(cidx("query", "hunter2", "--fts", "--json", cwd=project).stdout)
    assert doc["results"] == []
    doc = json.loads(cidx("query", "API_TOKEN", "--fts", "--json", cwd=project).stdout)
    assert [r["path"] for r in doc["results"]] == ["src/settings.py"]
