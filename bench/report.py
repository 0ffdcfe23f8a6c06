"""Markdown for the terminal and the JSON document: how results are shown and kept.

Standard library only. A `Section` carries both forms: `data` is what
results.json keeps (raw figures, machine-readable), `tables` is what a human
reads (median with min-max in every cell, ratios next to the reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness import Stats, load_average


@dataclass
class Section:
    """One benchmark's results, plus the load before and after (the machine may be shared)."""

    key: str
    title: str
    data: dict[str, object] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load_before: tuple[float, float, float] = field(default_factory=load_average)
    load_after: tuple[float, float, float] | None = None

    def finish(self) -> Section:
        self.load_after = load_average()
        return self

    def to_json(self) -> dict[str, object]:
        return {"title": self.title, **self.data, "notes": self.notes,
                "load_1min": [self.load_before[0], (self.load_after or self.load_before)[0]]}

    def markdown(self) -> str:
        after = (self.load_after or self.load_before)[0]
        parts = [f"## {self.title}", f"_load average (1 min): {self.load_before[0]:.1f} → {after:.1f}_"]
        parts += self.tables
        parts += [f"- {note}" for note in self.notes]
        return "\n\n".join(parts)


def ms(value: float) -> str:
    """Milliseconds with as many digits as are meaningful at that size."""
    if value < 0:
        return "−" + ms(-value)
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(stats: Stats) -> str:
    """`median (min–max)`: the one format every timing cell uses."""
    return f"{ms(stats.median)} ({ms(stats.min)}–{ms(stats.max)})"


def times(value: float | None) -> str:
    if value is None:
        return "–"
    return f"×{value:.2f}" if value < 10 else f"×{value:.1f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table, columns padded so it also reads well as plain text."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
