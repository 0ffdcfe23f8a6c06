"""Query annotations in semble's format: ``[{query, relevant, secondary, category?}, ...]``.

A target is a path string or ``{path, start_line, end_line}``. Four of the eight
development files (flask, httpx, requests, starlette) come from an older copy that
has a category on few queries. We report those queries as ``uncategorised`` (the
honest label), and also keep the category semble itself would give them:
semble's ``benchmarks/data.py`` (``infer_category``) fills a missing category from
the query text, so its published per-category figures use that rule. Both are kept
so our per-category table can be compared with semble's as well as read plainly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .metric import Target

UNCATEGORISED = "uncategorised"
CATEGORIES = ("semantic", "architecture", "symbol")


@dataclass(frozen=True)
class Query:
    repo: str
    text: str
    relevant: tuple[Target, ...]
    secondary: tuple[Target, ...]
    category: str  # from the annotation, else "uncategorised"
    semble_category: str  # from the annotation, else semble's infer_category(text)

    @property
    def targets(self) -> tuple[Target, ...]:
        """Primary then secondary: semble scores both with the same gain."""
        return self.relevant + self.secondary


def infer_category(text: str) -> str:
    """semble's rule for a query without a category (benchmarks/data.py, verbatim logic)."""
    if " " not in text.strip():
        return "symbol"
    lowered = text.lower()
    if lowered.startswith(("how ", "how does", "how are")):
        return "architecture"
    return "semantic"


def parse_target(raw: str | dict[str, Any]) -> Target:
    if isinstance(raw, str):
        return Target(raw)
    start, end = raw.get("start_line"), raw.get("end_line")
    return Target(str(raw["path"]), int(start) if start is not None else None,
                  int(end) if end is not None else None)


def load_queries(path: Path, repo: str | None = None) -> list[Query]:
    """Every query of one annotation file, in file order."""
    repo = repo or path.stem
    out: list[Query] = []
    for item in json.loads(path.read_text(encoding="utf-8")):
        category = item.get("category")
        known = category if isinstance(category, str) and category else None
        out.append(Query(
            repo=item.get("repo", repo),
            text=item["query"],
            relevant=tuple(parse_target(t) for t in item.get("relevant", [])),
            secondary=tuple(parse_target(t) for t in item.get("secondary", [])),
            category=known or UNCATEGORISED,
            semble_category=known or infer_category(item["query"]),
        ))
    return out
