"""Turn a request's language and path filters into a boolean mask over rows.

Filters are applied *inside* each search leg (the mask is handed to the
vector scan and to the full-text search), so ``--limit 5`` with a filter
returns five matching results whenever five exist (filtering after the
top-k would lose them). Masks are built per file (hundreds to a few
thousand) and broadcast to rows, so they cost well under a millisecond on
a warm daemon (cached per generation and filter set).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pathspec

from cidx_daemon.languages import resolve_languages


def file_mask(files: Sequence[Any], req: dict[str, Any]) -> np.ndarray | None:
    """Per-file allowed mask, or None when the request has no filters."""
    include = resolve_languages(req["language"]) if req["language"] else None
    exclude = resolve_languages(req["exclude_language"]) if req["exclude_language"] else None
    paths = pathspec.GitIgnoreSpec.from_lines(req["path_filter"]) if req["path_filter"] else None
    skip = pathspec.GitIgnoreSpec.from_lines(req["exclude_path"]) if req["exclude_path"] else None
    if include is None and exclude is None and paths is None and skip is None:
        return None
    def allowed(f: Any) -> bool:
        if include is not None and f.language not in include:
            return False
        if exclude is not None and f.language in exclude:
            return False
        if paths is not None and not paths.match_file(f.path):
            return False
        return skip is None or not skip.match_file(f.path)

    mask = np.fromiter((allowed(f) for f in files), dtype=bool, count=len(files))
    return mask


def filter_key(req: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(req[k]) for k in ("language", "exclude_language", "path_filter", "exclude_path"))
