"""Entry point: ``python -m cidx`` and the zipapp's top-level ``__main__``."""

from __future__ import annotations

from cidx.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
