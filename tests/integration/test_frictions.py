"""What a new user ran into, each reproduced once and now held by a test (real processes)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from client_helpers import cidx, client_env, daemon_pids, drain, run_on_a_terminal, status
from helpers import write_project


def test_init_keeps_the_index_out_of_git(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_project(repo)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    proc = cidx("init", cwd=repo)
    assert proc.returncode == 0 and ".git/info/exclude" in proc.stdout
    git = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                         capture_output=True, text=True, check=True).stdout
    assert ".code-indexer" not in git and "net/fetch.py" in git
    assert cidx("init", cwd=repo).returncode == 0  # again: the line is not added twice
    exclude = (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert exclude.count("/.code-indexer/") == 1
    sub = repo / "util"
    assert cidx("init", "--force", cwd=sub).returncode == 0
    assert "/util/.code-indexer/" in (repo / ".git" / "info" / "exclude").read_text().splitlines()


def test_init_inside_a_project_points_at_it_instead_of_nesting(project: Path) -> None:
    proc = cidx("init", cwd=project / "net")
    assert proc.returncode == 2 and f"inside the cidx project at {project}" in proc.stderr
    assert "--force" in proc.stderr and not (project / "net" / ".code-indexer").exists()
    assert cidx("init", "--force", cwd=project / "net").returncode == 0
    assert (project / "net" / ".code-indexer" / "config.json").is_file()


def test_a_query_with_no_index_starts_nothing_and_says_what_to_do(tmp_path: Path) -> None:
    root = write_project(tmp_path / "fresh")
    assert cidx("init", cwd=root).returncode == 0
    proc = cidx("query", "backoff", cwd=root)
    assert proc.returncode == 1 and "run 'cidx index'" in proc.stderr
    assert daemon_pids(root) == [] and not (root / ".code-indexer" / "daemon.sock").exists()


def test_unquoted_words_are_one_query(project: Path) -> None:
    doc = json.loads(cidx("query", "retry", "with", "backoff", "--json", cwd=project).stdout)
    assert doc["query"] == "retry with backoff" and doc["results"][0]["path"] == "net/fetch.py"
    doc = json.loads(cidx("query", "retry", "--fts", "backoff", "--json", cwd=project).stdout)
    assert doc["query"] == "retry backoff" and doc["mode"] == "fts"


def test_usage_errors_print_the_commands_own_usage(project: Path) -> None:
    proc = cidx("query", "x", "--bogus", cwd=project)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: cidx query ")
    proc = cidx("daemon", "sideways", cwd=project)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: cidx daemon ")
    helped = cidx("index", "--help", cwd=project)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: cidx index ")


def test_a_closed_pipe_exits_quietly(project: Path) -> None:
    write_project(project, {f"many/m{i}.py": f"def handler_{i}(event):\n    return event\n"
                            for i in range(60)})
    assert cidx("index", "--quiet", cwd=project).returncode == 0
    shell = (f"{sys.executable} -m cidx query handler event --fts --limit 60 --snippet-lines 5 | head -1; "
             "echo \"rc=${PIPESTATUS[0]}\"")
    proc = subprocess.run(["bash", "-c", shell], cwd=project, env=client_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.splitlines()[-1] == "rc=0" and proc.stderr == "", proc.stderr


def test_regex_is_case_sensitive_like_grep_with_i_to_ignore_case(project: Path) -> None:
    def paths(*args: str) -> list[str]:
        return [r["path"] for r in json.loads(cidx("query", *args, "--json", cwd=project).stdout)["results"]]

    assert paths("HTTPRESPONSEPARSER", "--regex") == []
    assert paths("HTTPRESPONSEPARSER", "--regex", "-i") == ["util/sorting.py"]
    assert paths("HTTPResponseParser", "--regex") == ["util/sorting.py"]
    proc = cidx("query", "x", "--regex", "--semantic", cwd=project)
    assert proc.returncode == 2 and "--regex applies to full-text search" in proc.stderr


def test_the_header_shows_the_query_as_typed_and_json_names_the_mode(project: Path) -> None:
    proc = cidx("query", r"def _?parse\w*\(", "--regex", cwd=project)
    assert proc.returncode == 0
    assert r"for 'def _?parse\w*\('" in proc.stdout.splitlines()[1]
    doc = json.loads(cidx("query", "read a file", "--json", cwd=project).stdout)
    assert doc["mode"] == "hybrid" and doc["request"]["semantic"] is doc["request"]["fts"] is True


def test_semantic_results_show_a_snippet_not_the_whole_chunk(project: Path) -> None:
    long = "\n".join(f"    step_{i} = compute({i})" for i in range(40))
    write_project(project, {"long.py": f"def compute_everything():\n{long}\n"
                                       "    return retry_backoff_total\n"})
    assert cidx("index", "--quiet", cwd=project).returncode == 0
    proc = cidx("query", "retry backoff total", "--limit", "1", "--path-filter", "long.py", cwd=project)
    body = [line for line in proc.stdout.splitlines() if " | " in line]
    assert 1 <= len(body) <= 5 and any("retry_backoff_total" in line for line in body)
    proc = cidx("query", "retry backoff total", "--limit", "1", "--path-filter", "long.py",
                "--snippet-lines", "0", cwd=project)
    body = [line for line in proc.stdout.splitlines() if " | " in line]
    assert len(body) == 1 and body[0].lstrip().startswith(">")


def test_paths_are_relative_to_where_the_user_stands(project: Path) -> None:
    out = cidx("query", "bubble", "--fts", "--files-only", cwd=project / "net").stdout
    assert out.splitlines()[0] == "../util/sorting.py"
    doc = json.loads(cidx("query", "bubble", "--fts", "--json", cwd=project / "net").stdout)
    assert doc["results"][0]["path"] == "util/sorting.py" and doc["root"] == str(project)


def test_jsonl_files_only_and_a_token_budget(project: Path) -> None:
    lines = cidx("query", "fetch", "--fts", "--jsonl", cwd=project).stdout.splitlines()
    assert lines and all(json.loads(line)["rank"] == n for n, line in enumerate(lines, 1))
    files = cidx("query", "fetch", "--fts", "--files-only", cwd=project).stdout.splitlines()
    assert files and len(files) == len(set(files))
    full = cidx("query", "function", "--limit", "10", cwd=project)
    small = cidx("query", "function", "--limit", "10", "--max-tokens", "120", cwd=project)
    assert len(small.stdout) < len(full.stdout) and small.stderr.startswith("note: trimmed to ~")
    doc = json.loads(cidx("query", "function", "--limit", "10", "--max-tokens", "120", "--json",
                          cwd=project).stdout)
    assert doc["trimmed"]["max_tokens"] == 120 and all("content" not in r for r in doc["results"])


def test_files_only_limit_counts_files_not_chunks(tmp_path: Path) -> None:
    # `--files-only --limit 2` printed one file when the two best chunks were both in it.
    body = "".join(f"    zebra_{j} = [zebra for zebra in herd if zebra.stripes > {j}]\n" for j in range(8))
    herd = "".join(f"def zebra_step_{i}(herd):\n{body}    return zebra_0\n\n\n" for i in range(6))
    filler = "".join(f"def helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(12))
    root = write_project(tmp_path / "zoo", {"herd.py": herd, "one.py": filler + "Z = 'one zebra'\n",
                                            "two.py": filler + "Z = 'two zebra'\n", "other.py": "x = 1\n"})
    try:
        assert cidx("init", cwd=root).returncode == 0
        assert cidx("index", "--quiet", "--no-embed", cwd=root).returncode == 0
        # A regex lists chunks by matching lines, so herd.py's fill the top.
        doc = json.loads(cidx("query", "zebra", "--regex", "--limit", "2", "--json", cwd=root).stdout)
        assert [r["path"] for r in doc["results"]] == ["herd.py", "herd.py"]  # what used to decide
        files = cidx("query", "zebra", "--regex", "--limit", "2", "--files-only",
                     cwd=root).stdout.splitlines()
        assert files[0] == "herd.py" and len(files) == 2 and files[1] in ("one.py", "two.py"), files
        files = cidx("query", "zebra", "--regex", "--files-only", cwd=root).stdout.splitlines()
        assert sorted(files) == ["herd.py", "one.py", "two.py"], files
    finally:
        cidx("daemon", "stop", cwd=root)
        for pid in daemon_pids(root):
            os.kill(pid, signal.SIGKILL)


def test_index_piped_to_a_log_reports_progress_in_lines(tmp_path: Path) -> None:
    # Without a terminal rich draws no bar: a 20-minute first index printed nothing until it
    # ended, and an agent could not tell it from a hung one.
    root = write_project(tmp_path / "logged", {f"m{i}.py": f"def step_{i}(x):\n    return x + {i}\n"
                                               for i in range(12)})
    assert cidx("init", cwd=root).returncode == 0
    proc = cidx("index", cwd=root)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "Scanning files..." in lines and "Embedding chunks: 12 chunks to do" in lines, lines
    assert any(line.startswith("Embedding chunks: 12 chunks done in ") for line in lines), lines
    assert "\x1b[" not in proc.stderr and "Traceback" not in proc.stderr
    assert "12 chunks" in proc.stdout  # the summary stays on stdout
    quiet = cidx("index", "--quiet", "--clear", cwd=root)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_colour_only_on_a_terminal_unless_asked_and_never_with_no_color(project: Path) -> None:
    plain = cidx("query", "bubble", "--fts", cwd=project).stdout
    assert "\x1b[" not in plain
    forced = cidx("query", "bubble", "--fts", "--color", "always", cwd=project).stdout
    assert "\x1b[1;31mbubble\x1b[0m" in forced
    tty = run_on_a_terminal([sys.executable, "-m", "cidx", "query", "bubble", "--fts"], project)
    assert "\x1b[35m" in tty
    no_color = run_on_a_terminal([sys.executable, "-m", "cidx", "query", "bubble", "--fts"], project,
                                  NO_COLOR="1")
    assert "\x1b[" not in no_color and "util/sorting.py" in no_color


def test_daemon_status_exit_codes_and_an_idle_clock_status_does_not_reset(project: Path) -> None:
    assert cidx("daemon", "status", cwd=project).returncode == 3  # documented: not running
    assert cidx("query", "backoff", "--fts", cwd=project).returncode == 0
    time.sleep(1.2)
    first = status(project)
    second = status(project)
    assert first["state"] == "running" and cidx("daemon", "status", cwd=project).returncode == 0
    assert first["daemon"]["cache"]["idle_seconds"] >= 1.0
    assert second["daemon"]["cache"]["idle_seconds"] >= first["daemon"]["cache"]["idle_seconds"]


def test_index_progress_shows_a_rate_and_labelled_times_and_ctrl_c_finishes_its_line(project: Path) -> None:
    write_project(project, {f"bulk/b{i}.py": "\n".join(f"def f_{i}_{j}(x):\n    return x * {j}\n"
                                                       for j in range(30)) for i in range(300)})
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cidx", "index"], cwd=project, env=client_env(),
                            stdout=follower, stderr=follower, stdin=subprocess.DEVNULL,
                            start_new_session=True,
                            # a background run (`cmd &` without job control) ignores SIGINT, and
                            # children inherit that: give the client what a terminal gives it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 120
    while b"left ~" not in out.rpartition(b"Embedding chunks")[2] and time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            out += os.read(leader, 65536)
    embedding = out.rpartition(b"Embedding chunks")[2]
    assert b"chunks/s" in embedding and b"elapsed " in embedding and b"left ~" in embedding
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
    out += drain(leader, 30)
    assert proc.wait(timeout=60) == 130
    text = out.decode("utf-8", "replace")
    assert text.rstrip().endswith("interrupted")
    before = text[:text.rindex("interrupted")]
    assert before.endswith("\n") or before.endswith("\r\n")  # the bar's line was finished first
