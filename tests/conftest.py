"""Make the source trees importable and mark each test by where it lives.

* ``unit/``        in-process: pure functions, the real engine, index and model;
* ``integration/`` real daemon processes on real sockets, from the source trees;
* ``e2e/``         the built artifacts (``dist/``) driven as a user would.

``pytest -m unit`` (seconds) is the quick loop; ``python3 build.py test`` runs all.
"""

from __future__ import annotations

import sys
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        kind = next((k for k in _KINDS if f"/tests/{k}/" in str(item.path)), None)
        if kind is not None:
            item.add_marker(getattr(pytest.mark, kind))
