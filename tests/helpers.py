"""Shared test helpers: small real projects, subprocess environments, the real interpreter."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
CLIENT_SRC = ROOT / "client_zipapp"


def load_build_script() -> ModuleType:
    """build.py as a module (a script at the project root, not a package); loaded once."""
    name = "cidx_build_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
DAEMON_SRC = ROOT / "daemon_pkg" / "src"
PYTHON = sys.executable  # the venv interpreter (a symlink: never resolve it)

SAMPLE_FILES = {
    "net/fetch.py": '''
        import time
        import urllib.request


        def fetch_with_timeout(url, timeout=10.0):
            """Open a URL and read the body, giving up after `timeout` seconds."""
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.read()


        def retry_with_backoff(func, attempts=5, base_delay=0.1):
            """Call func until it succeeds, sleeping exponentially longer between tries."""
            for attempt in range(attempts):
                try:
                    return func()
                except OSError:
                    time.sleep(base_delay * (2 ** attempt))
            raise RuntimeError("gave up")
        ''',
    "util/sorting.py": '''
        def bubble_sort(items):
            """Sort a list in place by swapping neighbours."""
            n = len(items)
            for i in range(n):
                for j in range(n - i - 1):
                    if items[j] > items[j + 1]:
                        items[j], items[j + 1] = items[j + 1], items[j]
            return items


        class HTTPResponseParser:
            def parse_http_response(self, raw):
                head, _, body = raw.partition(b"\\r\\n\\r\\n")
                return head.split(b"\\r\\n"), body
        ''',
    "web/app.js": '''
        // Fetch JSON from the server with a timeout using AbortController.
        async function fetchJson(url, timeoutMs) {
          const controller = new AbortController();
          const timer = setTimeout(() => controller.abort(), timeoutMs);
          try {
            const response = await fetch(url, { signal: controller.signal });
            return await response.json();
          } finally {
            clearTimeout(timer);
          }
        }
        ''',
    "docs/notes.md": '''
        # Notes

        The cache is invalidated whenever the configuration file changes.
        Use exponential backoff when the server answers 503.
        ''',
}


def write_project(root: Path, files: dict[str, str] | None = None) -> Path:
    for rel, text in (files or SAMPLE_FILES).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses running the source trees (editable or not)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(DAEMON_SRC), str(CLIENT_SRC)])
    e.update(extra)
    return e


def daemon_cli(*args: str, cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m cidx_daemon ARGS`` in ``cwd``."""
    proc = subprocess.run([PYTHON, "-m", "cidx_daemon", *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=600, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"cidx-daemon {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def init_and_index(root: Path) -> Path:
    daemon_cli("init", cwd=root)
    daemon_cli("index", "--quiet", cwd=root)
    return root / ".code-indexer" / "config.json"


def run_in_threads(work: Callable[[], object], count: int) -> list[BaseException]:
    """Run ``work`` in ``count`` threads released together; return what they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def worker() -> None:
        try:
            start.wait()
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


class RecordedProgress:
    """An indexer progress sink that keeps what a user would read: ``phase NAME`` lines and notes."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def phase(self, name: str, total: int | None) -> None:
        self.lines.append(f"phase {name}")

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        self.lines.append(message)
