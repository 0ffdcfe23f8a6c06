"""What the benchmarks run against: an installation, corpora, their indexes, daemons.

Standard library only (imported by run_all.py). Everything expensive is
cached under one directory (default ``~/.cache/cidx-bench``):

* ``venv/`` — ``build.py install --prefix``: the daemon package installed the
  way users get it (precompiled, not editable) and ``cidx`` next to
  ``cidx-daemon`` in its bin dir, so the client finds the daemon as it would
  in the field. ``build.py`` skips the install while nothing changed.
* ``corpora/<label>/<key>/`` — a copy of the corpus with its index. The key
  hashes the source files (paths, sizes, mtimes) and the daemon's version, so
  re-running the query benchmarks never re-embeds (10-15 min for the stdlib)
  while a new package version or a changed corpus gets a fresh index.

The corpus is always a copy: the indexing benchmark edits a file, and a
user's ``--corpus`` tree must never be written to.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import BenchError, now

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cidx-bench"

#: The quick corpus: packages that hold answers to the benchmark queries (~1.3 MB).
QUICK_PACKAGES = ("json", "http", "urllib", "email", "asyncio")
#: Not the library itself (tests, GUI, vendored tools) or not source.
STDLIB_EXCLUDES = (
    "test", "tests", "idlelib", "tkinter", "lib2to3", "site-packages", "dist-packages", "ensurepip",
    "turtledemo", "pydoc_data", "__pycache__", "config-*", "lib-dynload",
)
#: Never copied from a --corpus tree: VCS data, and an index of its own.
CUSTOM_EXCLUDES = (".git", ".hg", ".svn", ".code-indexer", "__pycache__")
#: Runtime files of a live daemon: never copied into the standalone twin.
RUNTIME_FILES = ("daemon.sock", "daemon.lock", "daemon.log", "index.lock", "daemon-restarts.json")
#: Files the indexer writes beside each corpus (outside it, so grep and rg never see them).
FULL_INDEX_STATS = "full-index.json"


def say(message: str) -> None:
    """Progress to stderr, so stdout carries only the report."""
    print(message, file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    """The environment for every benchmarked process: ours, minus what would redirect python.

    A developer's PYTHONPATH or VIRTUAL_ENV must not make the venv's
    cidx-daemon import a source tree instead of its installed (precompiled) copy.
    """
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "CIDX_DEBUG"):
        env.pop(key, None)
    return env


def run_json(argv: list[str | os.PathLike[str]], cwd: Path) -> object:
    """Run a helper command that prints JSON on stdout; its failure is the benchmark's."""
    proc = subprocess.run([os.fspath(a) for a in argv], cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BenchError(f"{' '.join(map(str, argv))}: exit {proc.returncode}: {' | '.join(tail)}")
    return json.loads(proc.stdout)


def run_quiet(argv: list[str | os.PathLike[str]], cwd: Path) -> str:
    proc = subprocess.run([os.fspath(a) for a in argv], cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BenchError(f"{' '.join(map(str, argv))}: exit {proc.returncode}: {' | '.join(tail)}")
    return proc.stdout


def digest(*parts: object) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(str(part).encode())
        hasher.update(b"\0")
    return hasher.hexdigest()[:12]


# --------------------------------------------------------------------------- installation


def real_python(requested: str | None) -> str:
    """A real interpreter binary: a pyenv shim costs 100+ ms per start and would swamp the client."""
    found = requested if requested and os.sep in requested else shutil.which(requested) if requested else None
    if requested and not found:
        raise BenchError(f"--python {requested}: not found")
    candidate = found or sys.executable
    # A venv's python is a symlink to the base binary; a shim is a script: ask the binary itself.
    proc = subprocess.run([candidate, "-I", "-S", "-c", "import sys; print(sys.executable)"],
                          capture_output=True, text=True, check=True)
    return os.path.realpath(proc.stdout.strip())


@dataclass(frozen=True)
class Install:
    """`cidx` and `cidx-daemon` side by side in one bin dir, as `build.py install` makes them."""

    bindir: Path
    python: str

    @property
    def cidx(self) -> Path:
        return self.bindir / "cidx"

    @property
    def cidx_daemon(self) -> Path:
        return self.bindir / "cidx-daemon"

    @property
    def venv_python(self) -> Path:
        return self.bindir / "python"

    def version(self) -> str:
        return run_quiet([self.cidx_daemon, "--version"], ROOT).strip()

    def shebang(self) -> str:
        """The launcher's exec line (the archive starts with a /bin/sh script, see build.py)."""
        with self.cidx.open("rb") as handle:
            head = handle.read(2048).decode("utf-8", "replace").splitlines()
        return next((line for line in head if line.startswith("exec ")), head[0] if head else "").strip()


def ensure_install(python: str, cache: Path, bindir: Path | None) -> Install:
    """The installation under test: `--install-dir`, else `build.py install` into the cache.

    Online first (the daemon package from ./daemon_pkg, the current source);
    offline from dist/wheelhouse when the registry cannot be reached.
    """
    if bindir is not None:
        install = Install(bindir.absolute(), python)
    else:
        prefix = cache / "venv"
        base = [python, ROOT / "build.py", "install", "--prefix", prefix, "--python", python]
        say(f"==> build.py install --prefix {prefix}")
        try:
            run_quiet(base, ROOT)
        except BenchError as online_error:
            if not (ROOT / "dist" / "wheelhouse" / ".cidx-stamp").is_file():
                raise
            say(f"    online install failed ({online_error}); trying --offline")
            run_quiet([*base, "--offline"], ROOT)
        install = Install(prefix / "bin", python)
    for tool in (install.cidx, install.cidx_daemon):
        if not os.access(tool, os.X_OK):
            raise BenchError(f"{tool} is missing or not executable")
    return install


# --------------------------------------------------------------------------- corpora


@dataclass(frozen=True)
class Corpus:
    """A directory tree to index and search, plus a short label for tables."""

    label: str
    root: Path
    files: int
    size_bytes: int

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "root": str(self.root), "files": self.files,
                "size_mb": round(self.size_mb, 2)}


def _excluded(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def _walk_files(top: Path, excludes: tuple[str, ...], suffix: str | None) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not _excluded(d, excludes))
        for name in sorted(filenames):
            path = Path(directory, name)
            if (suffix is None or name.endswith(suffix)) and path.is_file() and not path.is_symlink():
                yield path


def stdlib_sources(quick: bool) -> tuple[Path, list[Path]]:
    """The running interpreter's standard library .py files: a real code base every machine has."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    tops = [stdlib / p for p in QUICK_PACKAGES] if quick else [stdlib]
    files = [f for top in tops for f in _walk_files(top, STDLIB_EXCLUDES, ".py")]
    return stdlib, files


def custom_sources(path: Path) -> tuple[Path, list[Path]]:
    root = path.resolve()
    if not root.is_dir():
        raise BenchError(f"--corpus {path}: not a directory")
    return root, list(_walk_files(root, CUSTOM_EXCLUDES, None))


def _fingerprint(base: Path, files: list[Path]) -> str:
    parts = []
    for f in files:
        st = f.stat()
        parts.append(f"{f.relative_to(base)}:{st.st_size}:{st.st_mtime_ns}")
    return digest(*parts)


def _prune_others(label_dir: Path, keep: str) -> None:
    """Older copies of the same corpus (another key) are dead weight: remove them."""
    for old in label_dir.iterdir() if label_dir.is_dir() else ():
        if not old.name.startswith(keep):
            say(f"    removing the outdated cache {old}")
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()


def _copy_tree(pairs: list[tuple[Path, Path]], dest: Path) -> None:
    """Copy (source, relative target) pairs into `dest`, all or nothing (a crash leaves no half copy)."""
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for src, rel in pairs:
        target = partial / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    partial.rename(dest)


def materialise(label: str, base: Path, files: list[Path], cache: Path, version: str) -> Corpus:
    """Copy `files` (relative to `base`) into the cache once; reuse the copy while unchanged."""
    key = digest(label, version, _fingerprint(base, files))
    label_dir = cache / "corpora" / label
    dest = label_dir / key
    if not dest.is_dir():
        _prune_others(label_dir, key)
        say(f"==> copying {len(files)} files of {label} to {dest}")
        _copy_tree([(f, f.relative_to(base)) for f in files], dest)
    size = sum(f.stat().st_size for f in files)
    return Corpus(label, dest, len(files), size)


def replicate(source: Corpus, target_mb: float, cache: Path) -> Corpus:
    """`source`'s files copied into copy-NN/ subdirectories until the tree reaches `target_mb`."""
    copies = max(1, math.ceil(target_mb * 1e6 / source.size_bytes))
    key = f"{copies}x-{source.label}-{source.root.name}"
    label_dir = cache / "corpora" / "large"
    dest = label_dir / key
    files = list(_walk_files(source.root, (".code-indexer",), None))
    if not dest.is_dir():
        _prune_others(label_dir, key)
        say(f"==> replicating {source.label} {copies}x into {dest} (~{copies * source.size_mb:.0f} MB)")
        pairs = [(f, Path(f"copy-{n:02d}") / f.relative_to(source.root))
                 for n in range(1, copies + 1) for f in files]
        _copy_tree(pairs, dest)
    return Corpus(f"{source.label} x{copies}", dest, copies * len(files), copies * source.size_bytes)


# --------------------------------------------------------------------------- projects and daemons


@dataclass(frozen=True)
class Project:
    """A corpus with its `.code-indexer/`, driven through the installed commands."""

    corpus: Corpus
    install: Install

    @property
    def root(self) -> Path:
        return self.corpus.root

    @property
    def config(self) -> Path:
        return self.root / ".code-indexer" / "config.json"

    @property
    def stats_file(self) -> Path:
        return self.root.with_name(self.root.name + "." + FULL_INDEX_STATS)

    def cidx(self, *args: str) -> list[str | os.PathLike[str]]:
        return [self.install.cidx, *args]

    def status(self) -> dict:
        return run_json([self.install.cidx_daemon, "status", "--json"], self.root)  # type: ignore[return-value]

    def init(self) -> None:
        if not self.config.is_file():
            run_quiet(self.cidx("init"), self.root)

    def daemon_start(self) -> int:
        run_quiet(self.cidx("daemon", "start"), self.root)
        return self.daemon_pid()

    def daemon_pid(self) -> int:
        info = run_json(self.cidx("daemon", "status", "--json"), self.root)
        pid = ((info or {}).get("daemon") or {}).get("pid")  # type: ignore[union-attr]
        if not isinstance(pid, int):
            raise BenchError(f"no daemon running for {self.root}: {info}")
        return pid

    def daemon_stop(self) -> None:
        subprocess.run([os.fspath(a) for a in self.cidx("daemon", "stop")], cwd=self.root, env=child_env(),
                       stdin=subprocess.DEVNULL, capture_output=True, check=False)

    def is_current(self) -> bool:
        """Indexed, and no file changed since: the cached index can serve as is."""
        if not self.config.is_file():
            return False
        info = self.status()
        stale = info.get("stale") or {}
        return bool(info.get("indexed")) and not any(stale.get(k) for k in ("changed", "added", "deleted"))


def index_full(project: Project, argv: list[str | os.PathLike[str]]) -> dict:
    """A from-scratch index with `argv` (prints the stats JSON); stats saved beside the corpus."""
    project.init()
    say(f"==> indexing {project.corpus.label} from scratch ({project.corpus.size_mb:.1f} MB): "
        f"{' '.join(os.fspath(a) for a in argv[-3:])}")
    started = now()
    stats = run_json(argv, project.root)
    record = {"stats": stats, "wall_s": round(now() - started, 3), "measured_at": time.time(),
              "version": project.install.version()}
    project.stats_file.write_text(json.dumps(record, indent=2))
    say(f"    done in {record['wall_s']:.0f} s")
    return record


def ensure_indexed(project: Project, reindex: bool, argv: list[str | os.PathLike[str]]) -> dict:
    """Reuse the cached index when it is current; otherwise build it (the slow part)."""
    if not reindex and project.stats_file.is_file() and project.is_current():
        record = json.loads(project.stats_file.read_text())
        record["cached"] = True
        return record
    record = index_full(project, argv)
    record["cached"] = False
    return record


def standalone_twin(project: Project) -> Project:
    """A copy of the project (corpus + index) whose config disables the daemon.

    Daemon and standalone runs can then alternate query by query, while the
    original project's daemon stays warm: toggling one project's config would
    stop its daemon on every switch.
    """
    twin_root = project.root.with_name(project.root.name + ".standalone")
    shutil.rmtree(twin_root, ignore_errors=True)
    shutil.copytree(project.root, twin_root, symlinks=True,
                    ignore=shutil.ignore_patterns(*RUNTIME_FILES))
    twin = Project(Corpus(project.corpus.label, twin_root, project.corpus.files, project.corpus.size_bytes),
                   project.install)
    run_quiet(twin.cidx("config", "--no-daemon"), twin_root)
    return twin
