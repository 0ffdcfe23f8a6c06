"""Make the source trees importable and mark each test by where it lives.

* ``unit/``        in-process: pure functions, the real engine, index and model;
* ``integration/`` real daemon processes on real sockets, from the source trees;
* ``e2e/``         the built artifacts (``dist/``) driven as a user would.

``pytest -m unit`` (seconds) is the quick loop; ``python3 build.py test`` runs all.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for sub in ("client_zipapp", "daemon_pkg/src", "tests"):
    path = str(ROOT / sub)
    if path not in sys.path:
        sys.path.insert(0, path)

#: Fixtures shared by the client's integration tests (``template``, ``project``).
pytest_plugins = ["client_helpers"]

_KINDS = ("unit", "integration", "e2e")

#: The per-user embedding cache (``$CIDX_CACHE_DIR``) must never be the real one under
#: ~/.cache: set for the whole session at import, before any fixture (module-scoped ones
#: too) or daemon subprocess can read it; each test then gets an empty one of its own.
_SESSION_CACHE = tempfile.mkdtemp(prefix="cidx-test-cache-")
os.environ["CIDX_CACHE_DIR"] = _SESSION_CACHE


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _own_embedding_cache(tmp_path_factory: pytest.TempPathFactory,
                         monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Counts such as ``stats.embedded`` must not depend on which tests ran before."""
    monkeypatch.setenv("CIDX_CACHE_DIR", str(tmp_path_factory.mktemp("cidx-cache")))
    yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        kind = next((k for k in _KINDS if f"/tests/{k}/" in str(item.path)), None)
        if kind is not None:
            item.add_marker(getattr(pytest.mark, kind))
