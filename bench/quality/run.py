#!/usr/bin/env python3
"""cidx search-quality benchmark: ``python bench/quality/run.py --help``.

Run it with an interpreter that can import the daemon package
(``.venv-dev/bin/python`` after ``build.py test``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/: makes `quality` a package

from quality.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
