"""The walker on real trees: real ignore files, symlinks, odd names, odd bytes, permissions."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cidx_daemon.index.walk import (
    SECRET_REASON,
    SourceFile,
    check_paths,
    content_hash,
    read_source,
    walk_project,
    walk_settings,
)

NOBODY = 65534


def make(root: Path, files: dict[str, str | bytes]) -> None:
    """Create files (parents included); a name ending in '/' makes an empty directory."""
    for rel, content in files.items():
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def walk(root: Path, **kwargs: object) -> tuple[list[str], dict[str, str]]:
    """Paths yielded, and the skip reasons reported, for one walk."""
    skipped: dict[str, str] = {}
    paths = [f.rel_path for f in walk_project(root, on_skip=skipped.__setitem__, **kwargs)]  # type: ignore[arg-type]
    return paths, skipped


# ---------------------------------------------------------------- basics


def test_empty_directory_yields_nothing(tmp_path: Path) -> None:
    assert walk(tmp_path) == ([], {})


def test_repository_with_only_git_metadata_yields_nothing(tmp_path: Path) -> None:
    make(tmp_path, {".git/HEAD": "ref: refs/heads/main\n", ".git/config": "[core]\n"})
    assert walk(tmp_path) == ([], {})


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        walk_project(tmp_path / "nope")


def test_paths_come_in_plain_string_order(tmp_path: Path) -> None:
    # '-' sorts before '/', so a per-directory name sort would put a/b.py first.
    make(tmp_path, {"a/b.py": "", "a-c.py": "", "B.py": "", "a/z/y.py": "", "a/a.py": "", "é.py": ""})
    paths, _ = walk(tmp_path)
    assert paths == sorted(paths) == ["B.py", "a-c.py", "a/a.py", "a/b.py", "a/z/y.py", "é.py"]


def test_source_file_fields(tmp_path: Path) -> None:
    make(tmp_path, {"pkg/mod.py": "x = 1\n", "tool": "#!/usr/bin/env python3\nprint()\n", "data.xyz": "a"})
    files = {f.rel_path: f for f in walk_project(tmp_path)}
    mod = files["pkg/mod.py"]
    assert mod == SourceFile(
        rel_path="pkg/mod.py",
        abs_path=tmp_path.resolve() / "pkg" / "mod.py",
        size=6,
        mtime_ns=(tmp_path / "pkg/mod.py").stat().st_mtime_ns,
        language="python",
    )
    assert files["tool"].language == "python"  # shebang
    assert files["data.xyz"].language == "text"  # unknown extension, text content


def test_deep_trees_do_not_recurse_per_level(tmp_path: Path) -> None:
    depth = 300
    deep = tmp_path.joinpath(*(["d"] * depth))
    deep.mkdir(parents=True)
    (deep / "leaf.py").write_text("x = 1\n")
    # Allow far fewer frames than the tree has levels: only a walker with its own stack passes.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)
    try:
        paths, _ = walk(tmp_path)
    finally:
        sys.setrecursionlimit(limit)
    assert paths == ["d/" * depth + "leaf.py"]


# ---------------------------------------------------------------- ignore rules


def test_root_gitignore_negation_anchoring_and_dir_only(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            ".gitignore": "*.log\n!keep.log\n/build\nlogs/\n",
            "a.log": "",
            "keep.log": "",
            "sub/keep.log": "",
            "sub/b.log": "",
            "build/out.py": "",
            "sub/build/out.py": "",  # /build is anchored to the root
            "logs/today.txt": "",
            "sub/logs/today.txt": "",  # logs/ matches at any depth
            "other/logs": "a file, not a directory",  # logs/ matches directories only
            "main.py": "",
        },
    )
    paths, skipped = walk(tmp_path)
    assert paths == [".gitignore", "keep.log", "main.py", "other/logs", "sub/build/out.py", "sub/keep.log"]
    assert skipped == {}, "ignored paths are not reported"


def test_nested_gitignore_applies_to_its_subtree_with_its_own_anchor(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            ".gitignore": "*.gen.py\n",
            "sub/.gitignore": "*.tmp\n/only_here.py\n!keep.gen.py\n",
            "a.tmp": "",
            "only_here.py": "",
            "keep.gen.py": "",
            "sub/a.tmp": "",
            "sub/only_here.py": "",
            "sub/deeper/only_here.py": "",
            "sub/keep.gen.py": "",  # the deeper negation beats the root pattern
            "sub/other.gen.py": "",
        },
    )
    paths, _ = walk(tmp_path)
    assert paths == [
        ".gitignore",
        "a.tmp",
        "only_here.py",
        "sub/.gitignore",
        "sub/deeper/only_here.py",
        "sub/keep.gen.py",
    ]


def test_files_in_an_ignored_directory_cannot_be_re_included(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            ".gitignore": "vendor/\n!vendor/keep.py\n",
            "vendor/keep.py": "",
            "vendor/.gitignore": "!*\n",  # never read: git does not enter ignored directories
            "app.py": "",
        },
    )
    assert walk(tmp_path)[0] == [".gitignore", "app.py"]


def test_cidxignore_nests_like_gitignore_and_overrides_it(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            ".gitignore": "*.md\n",
            ".cidxignore": "!README.md\ngenerated/\n",
            "README.md": "",
            "CHANGES.md": "",
            "generated/x.py": "",
            "pkg/.cidxignore": "fixtures/\n",
            "pkg/fixtures/data.json": "",
            "fixtures/data.json": "",
            "pkg/mod.py": "",
        },
    )
    paths, _ = walk(tmp_path)
    assert paths == [
        ".cidxignore", ".gitignore", "README.md", "fixtures/data.json", "pkg/.cidxignore", "pkg/mod.py"
    ]


def test_git_info_exclude_is_honoured_below_gitignore(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            ".git/info/exclude": "secret.py\n*.bak\n",
            ".gitignore": "!wanted.bak\n",
            "secret.py": "",
            "old.bak": "",
            "wanted.bak": "",
            "main.py": "",
        },
    )
    assert walk(tmp_path)[0] == [".gitignore", "main.py", "wanted.bak"]


def test_extra_ignores_have_the_last_word(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "!*.md\n", "doc.md": "", "sub/doc.md": "", "main.py": "", "tests/t.py": ""})
    paths, _ = walk(tmp_path, extra_ignores=["*.md", "/tests/"])
    assert paths == [".gitignore", "main.py"]


def test_tool_and_cache_directories_are_always_skipped_silently(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            ".git/config": "",
            ".code-indexer/index.json": "{}",
            "sub/.git/HEAD": "",  # a nested repository's metadata
            "module/.git": "gitdir: ../.git/modules/module\n",  # a submodule's pointer file
            "pkg/__pycache__/mod.cpython-311.pyc": b"\x00\x01",
            "pkg/stale.pyc": "text pretending",
            "pkg/mod.py": "",
            ".git-blame-ignore-revs": "",  # only the directory name is special
        },
    )
    assert walk(tmp_path) == ([".git-blame-ignore-revs", "pkg/mod.py"], {})


def test_unreadable_gitignore_is_reported_and_the_walk_goes_on(tmp_path: Path) -> None:
    make(tmp_path, {"main.py": "", "sub/x.py": ""})
    (tmp_path / ".gitignore").mkdir()  # a directory where a file was expected
    paths, skipped = walk(tmp_path)
    assert paths == ["main.py", "sub/x.py"]
    assert skipped[".gitignore"].startswith("ignore file not read")


def _git(root: Path, *args: str) -> str:
    command = ["git", "-c", "core.excludesFile=/dev/null", "-C", str(root), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_ignore_decisions_agree_with_git(tmp_path: Path) -> None:
    """Differential test: the same tree through git's own ignore engine."""
    make(
        tmp_path,
        {
            ".gitignore": "*.log\n!important.log\n/dist\ncache/\n**/tmp/**\n!**/tmp/keep/\n"
            "docs/*.html\n#c\n\\#hash\n",
            ".cidxignore": "",
            "important.log": "",
            "x.log": "",
            "a/b/important.log": "",
            "a/b/c.log": "",
            "dist/app.js": "",
            "a/dist/app.js": "",
            "cache/x": "",
            "a/cache/y": "",
            "a/cachefile": "",
            "tmp/t.py": "",
            "a/tmp/t.py": "",
            "docs/i.html": "",
            "docs/sub/i.html": "",
            "#hash": "",
            "#c": "",
            "a/.gitignore": "/b/\n!x.log\n*.py\n",
            "a/x.log": "",
            "a/b/z.txt": "",
            "a/m.py": "",
            "a/n/m.py": "",
            "a/n/.gitignore": "!m.py\n",
            "z/space name.txt": "",
            "z/[brackets].txt": "",
            "z/.gitignore": "\\[brackets\\].txt\n",
            "main.py": "",
        },
    )
    _git(tmp_path, "init", "-q")
    expected = sorted(_git(tmp_path, "ls-files", "--others", "--exclude-standard", "-z").split("\0")[:-1])
    # .cidxignore is not a git concept; it is empty here so both sides must agree.
    assert walk(tmp_path)[0] == expected


# ---------------------------------------------------------------- content checks


def test_binary_files_are_skipped_by_extension_or_nul_byte(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "logo.png": "not even an image",  # known binary extension: not opened
            "blob.txt": b"abc\x00def",
            "late_nul.txt": b"a" * 8192 + b"\x00",  # beyond the sniff window: treated as text
            "text.py": "x = 1\n",
        },
    )
    paths, skipped = walk(tmp_path)
    assert paths == ["late_nul.txt", "text.py"]
    assert skipped == {"logo.png": "binary", "blob.txt": "binary"}


def test_utf16_with_bom_is_text(tmp_path: Path) -> None:
    make(tmp_path, {"win.rc": "\ufeffname = 1\r\n".encode("utf-16-le")})
    files = list(walk_project(tmp_path))
    assert [f.rel_path for f in files] == ["win.rc"]
    assert read_source(files[0].abs_path) == "name = 1\n"


def test_oversize_files_are_skipped(tmp_path: Path) -> None:
    make(tmp_path, {"small.py": "x" * 10, "big.py": "x" * 11})
    paths, skipped = walk(tmp_path, max_file_bytes=10)
    assert paths == ["small.py"]
    assert skipped == {"big.py": "larger than 10 bytes"}


def test_fifo_is_skipped_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")
    make(tmp_path, {"main.py": ""})
    paths, skipped = walk(tmp_path)
    assert paths == ["main.py"]
    assert skipped == {"pipe.py": "not a regular file"}


# ---------------------------------------------------------------- symlinks


def test_symlinks_out_of_the_project_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    make(outside, {"secret.py": "", "dir/inner.py": ""})
    project = tmp_path / "project"
    make(project, {"main.py": ""})
    (project / "leak.py").symlink_to(outside / "secret.py")
    (project / "leakdir").symlink_to(outside / "dir", target_is_directory=True)
    paths, skipped = walk(project)
    assert paths == ["main.py"]
    assert skipped == {
        "leak.py": "symlink points outside the project",
        "leakdir": "symlink points outside the project",
    }


def test_symlinks_inside_the_project_are_skipped_as_duplicates(tmp_path: Path) -> None:
    make(tmp_path, {"real/mod.py": "", "real/util.py": ""})
    (tmp_path / "alias.py").symlink_to("real/mod.py")
    (tmp_path / "again").symlink_to("real", target_is_directory=True)
    paths, skipped = walk(tmp_path)
    assert paths == ["real/mod.py", "real/util.py"]
    assert skipped == {
        "again": "symlink (its target is indexed under its own path)",
        "alias.py": "symlink (its target is indexed under its own path)",
    }


def test_symlink_loops_terminate(tmp_path: Path) -> None:
    make(tmp_path, {"sub/x.py": ""})
    (tmp_path / "sub" / "up").symlink_to("..", target_is_directory=True)
    (tmp_path / "self").symlink_to("self")
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    (tmp_path / "dangling.py").symlink_to("missing.py")
    paths, skipped = walk(tmp_path)
    assert paths == ["sub/x.py"]
    assert skipped["sub/up"] == "symlink (its target is indexed under its own path)"
    for name in ("self", "a", "b", "dangling.py"):
        assert skipped[name] == "symlink is broken or loops"


def test_root_given_through_a_symlink_is_walked(tmp_path: Path) -> None:
    make(tmp_path, {"real/main.py": ""})
    (tmp_path / "link").symlink_to("real", target_is_directory=True)
    files = list(walk_project(tmp_path / "link"))
    assert [f.rel_path for f in files] == ["main.py"]
    assert files[0].abs_path == (tmp_path / "real" / "main.py").resolve()


# ---------------------------------------------------------------- names and permissions


def test_file_names_that_are_not_utf8_are_indexed_with_replacement_characters(tmp_path: Path) -> None:
    base = os.fsencode(tmp_path)
    with open(base + b"/bad\xfe.py", "wb") as fh:
        fh.write(b"x = 1\n")
    os.mkdir(base + b"/dir\xfe")
    os.close(os.open(base + b"/dir\xfe/inner.py", os.O_CREAT | os.O_WRONLY))
    os.close(os.open(base + b"/bad\xff.py", os.O_CREAT | os.O_WRONLY))  # reads like bad\xfe.py
    make(tmp_path, {"good.py": "", "sub/ok.py": ""})
    found = list(walk_project(tmp_path))
    paths = [f.rel_path for f in found]
    assert paths == ["bad\ufffd.py", "dir\ufffd/inner.py", "good.py", "sub/ok.py"]
    json.dumps(paths).encode("utf-8")  # travels through JSON and to a terminal
    by_path = {f.rel_path: f for f in found}
    assert read_source(by_path["bad\ufffd.py"].abs_path) == "x = 1\n"  # read under its real name
    _, skipped = walk(tmp_path)
    assert skipped == {"bad\\xff.py": "file name is not valid UTF-8 and reads like another one"}


def test_secrets_are_skipped_and_reported_unless_the_config_says_otherwise(tmp_path: Path) -> None:
    make(tmp_path, {".env": "TOKEN=1", ".env.example": "TOKEN=", "deploy/id_rsa": "KEY", "certs/site.pem": "",
                    "credentials.yml": "", ".npmrc": "", ".ssh/config": "", ".aws/credentials": "",
                    "app/secrets.json": "", "main.tf": "", "prod.tfvars": "", "src/app.py": "TOKEN = env()"})
    paths, skipped = walk(tmp_path)
    assert paths == [".env.example", "main.tf", "src/app.py"]
    assert set(skipped) == {".env", "deploy/id_rsa", "certs/site.pem", "credentials.yml", ".npmrc", ".ssh",
                            ".aws", "app/secrets.json", "prod.tfvars"}
    assert set(skipped.values()) == {SECRET_REASON}
    everything = [f.rel_path for f in walk_project(tmp_path, **walk_settings(
        {"max_file_bytes": 1 << 20, "exclude": [], "skip_secrets": False}))]
    assert ".env" in everything and "deploy/id_rsa" in everything
    custom = [f.rel_path for f in walk_project(tmp_path, **walk_settings(
        {"max_file_bytes": 1 << 20, "exclude": [], "skip_secrets": True, "secret_patterns": ["*.tf"]}))]
    assert "main.tf" not in custom and ".env" in custom


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temp dir another user can enter (pytest's own tmp_path lives under a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="cidx-walk-"))
    path.chmod(0o755)
    yield path
    for sub in path.rglob("*"):
        if not sub.is_symlink():
            sub.chmod(0o755)
    shutil.rmtree(path)


def _walk_in_child(root: Path, uid: int | None) -> tuple[list[str], dict[str, str]]:
    """Walk in a forked child, as ``uid`` if given: root reads everything, so to meet a real
    'permission denied' the walk must run as an unprivileged user."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        status = 1
        try:
            os.close(read_end)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            paths, skipped = walk(root)
            with os.fdopen(write_end, "w") as out:
                json.dump([paths, skipped], out)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as result:
        data = result.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        pytest.skip("could not run the walk as an unprivileged user")
    paths, skipped = json.loads(data)
    return paths, skipped


def test_unreadable_files_and_directories_are_reported_not_fatal(shared_tmp: Path) -> None:
    make(shared_tmp, {"public.py": "", "secret.py": "", "locked/inner.py": "", "z/after.py": ""})
    (shared_tmp / "secret.py").chmod(0o000)
    (shared_tmp / "locked").chmod(0o000)
    uid = NOBODY if os.geteuid() == 0 else None
    paths, skipped = _walk_in_child(shared_tmp, uid)
    assert paths == ["public.py", "z/after.py"]
    assert skipped == {"secret.py": "permission denied", "locked": "permission denied"}


# ---------------------------------------------------------------- reading


def test_read_source_normalises_text(tmp_path: Path) -> None:
    path = tmp_path / "f.py"
    path.write_bytes(b"\xef\xbb\xbfa = 1\r\nb = 2\rc = '\xff\xfe'\n")
    assert read_source(path) == "a = 1\nb = 2\nc = '\ufffd\ufffd'\n"


def test_read_source_returns_none_for_binary(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"\x7fELF\x00\x00")
    assert read_source(path) is None


def test_content_hash_is_stable_and_sensitive() -> None:
    digest = content_hash("x = 1\n")
    assert digest == content_hash("x = 1\n")
    assert len(digest) == 32 and int(digest, 16) >= 0
    assert digest != content_hash("x = 2\n")
    assert content_hash("") != content_hash("\n")


_NAMES = st.sampled_from(["a.py", "b.txt", "c.md", "build", "src", "keep.py", ".env", "x.log"])
_PATTERNS = st.sampled_from(["*.log", "build/", "!keep.py", "src/*.md", "*.py", "!src/", "c.md", "/b.txt"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.lists(_NAMES, min_size=1, max_size=3), min_size=1, max_size=12),
       ignores=st.dictionaries(st.sampled_from(["", "src/", "build/", "src/build/"]),
                               st.lists(_PATTERNS, max_size=3), max_size=3))
def test_checking_paths_agrees_with_the_walk(tmp_path_factory: pytest.TempPathFactory,
                                             files: list[list[str]], ignores: dict[str, list[str]]) -> None:
    """What the watcher asks about single paths is what a full walk would have said."""
    root = tmp_path_factory.mktemp("tree")
    for parts in files:
        path = root.joinpath(*parts)
        if any(p.exists() and p.is_file() for p in path.parents if root in p.parents):
            continue
        if path.exists() and path.is_dir():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("text\n")
    for base, patterns in ignores.items():
        if (root / base).is_dir():
            (root / base / ".gitignore").write_text("\n".join(patterns) + "\n")
    walked = {f.rel_path: f for f in walk_project(root)}
    every_file = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    checked = check_paths(root, every_file)
    assert {rel for rel, f in checked.items() if f is not None} == set(walked)
    for rel, f in checked.items():
        if f is not None:
            assert (f.rel_path, f.size, f.language) == (rel, walked[rel].size, walked[rel].language)


def test_files_an_index_knows_unchanged_are_not_opened(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A rescan reads no data of a file the index holds with the same size and mtime (after a
    reboot each open is a disk read); anything it cannot vouch for is still sniffed."""
    from cidx_daemon.index import walk as walk_mod

    make(tmp_path, {"a.py": "x = 1\n", "b.py": "y = 2\n", "tool": "#!/usr/bin/env python3\nprint(1)\n",
                    "c.py": "z = 3\n"})
    before = {sf.rel_path: sf for sf in walk_project(tmp_path)}
    known = {rel: (sf.size, sf.mtime_ns, sf.language) for rel, sf in before.items()}
    assert known["tool"][2] == "python"  # from its shebang: only its head says so
    (tmp_path / "c.py").write_bytes(b"\0\1binary now")  # changed since it was indexed
    opened: list[str] = []
    real_open = open

    def counting_open(path: object, *args: object, **kwargs: object) -> object:
        opened.append(Path(str(path)).name)
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(walk_mod, "open", counting_open, raising=False)
    skipped: dict[str, str] = {}
    after = {sf.rel_path: sf for sf in walk_project(tmp_path, known=known,
                                                    on_skip=lambda p, why: skipped.setdefault(p, why))}
    assert sorted(opened) == ["c.py", "tool"]
    assert after == {rel: sf for rel, sf in before.items() if rel != "c.py"}  # same verdicts
    assert skipped == {"c.py": "binary"}
