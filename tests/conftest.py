"""Make the two source trees importable: the client (stdlib) and the daemon package."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for sub in ("client_zipapp", "daemon_pkg/src"):
    path = str(ROOT / sub)
    if path not in sys.path:
        sys.path.insert(0, path)
