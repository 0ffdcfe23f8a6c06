"""Timing primitives for the benchmark suite: spawn, time, interleave, summarise.

Standard library only: `run_all.py` imports this and must run under any
python3 (``python3 build.py bench``), whatever is or is not installed.

Everything here measures wall time of whole processes, because that is what a
user waits for. Comparisons are always measured interleaved (A B C A B C ...)
(shuffled per round) so that a burst of load from a neighbour hits every
contender equally instead of whichever block happened to run at the time.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def now() -> float:
    """CLOCK_MONOTONIC in seconds: the one clock shared by this process and its children.

    The instrumented client (probe_client.py) reads the same clock, so a time
    it records can be subtracted from the moment we spawned it.
    """
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class BenchError(RuntimeError):
    """A benchmarked command failed: the figures would be meaningless, so stop and say why."""


@dataclass
class Stats:
    """Median with min/max (and p95) of samples in milliseconds: what every table cell shows."""

    samples_ms: list[float]

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def min(self) -> float:
        return min(self.samples_ms)

    @property
    def max(self) -> float:
        return max(self.samples_ms)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile: with few samples, interpolation would invent values."""
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]

    def to_json(self) -> dict[str, float | int]:
        return {"median_ms": round(self.median, 3), "min_ms": round(self.min, 3),
                "max_ms": round(self.max, 3), "p95_ms": round(self.percentile(0.95), 3), "n": self.n}


@dataclass
class Command:
    """One benchmarked command line; `ok_codes` lets grep's "no match" (1) count as success."""

    name: str
    argv: Sequence[str | os.PathLike[str]]
    cwd: Path
    env: Mapping[str, str] | None = None
    ok_codes: tuple[int, ...] = (0,)
    #: Called with (stdout, stderr, spawn time) after each run; probes return extra figures.
    parse: Callable[[bytes, bytes, float], dict[str, float]] | None = None


@dataclass
class Result:
    """Samples of one command: wall times plus whatever its `parse` extracted, per run."""

    command: Command
    wall_ms: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)

    def stats(self, key: str | None = None) -> Stats:
        return Stats(self.wall_ms if key is None else self.extra[key])


def run_once(cmd: Command) -> tuple[float, dict[str, float]]:
    """Spawn → exit wall time in ms, output captured through a pipe.

    A pipe, not /dev/null: GNU grep notices /dev/null and stops at the first
    match, and a user's terminal is not /dev/null either.
    """
    started = now()
    proc = subprocess.run([os.fspath(a) for a in cmd.argv], cwd=cmd.cwd, env=cmd.env,
                          stdin=subprocess.DEVNULL, capture_output=True, check=False)
    wall_ms = (now() - started) * 1000.0
    if proc.returncode not in cmd.ok_codes:
        tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()[-3:]
        raise BenchError(f"{cmd.name}: exit {proc.returncode}: {' | '.join(tail) or 'no output'}")
    extra = cmd.parse(proc.stdout, proc.stderr, started) if cmd.parse else {}
    return wall_ms, extra


def shuffled(items: Sequence[T], round_no: int) -> list[T]:
    """The order for one round: a fresh (seeded, so reproducible) shuffle.

    Rotating a fixed order would still have each command always run right
    after the same neighbour (a CPU just freed, caches just warmed by a similar
    process); shuffling spreads those effects over every contender.
    """
    order = list(items)
    random.Random(round_no).shuffle(order)
    return order


def interleave(commands: Sequence[Command], runs: int, warmup: int = 1) -> list[Result]:
    """Run every command `runs` times, one of each per round, in a shuffled order per round.

    Warm-up rounds fill the page cache and the daemon's caches and are not recorded.
    """
    results = [Result(c) for c in commands]
    for _ in range(warmup):
        for cmd in commands:
            run_once(cmd)
    for round_no in range(runs):
        for result in shuffled(results, round_no):
            wall_ms, extra = run_once(result.command)
            result.wall_ms.append(wall_ms)
            for key, value in extra.items():
                result.extra.setdefault(key, []).append(value)
    return results


def ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 3) if reference > 0 else None


def load_average() -> tuple[float, float, float]:
    """The 1/5/15-minute load: printed with the figures, since the machine may be shared."""
    return os.getloadavg()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def proc_status_kb(pid: int, key: str) -> int | None:
    """A `/proc/PID/status` field in KiB (VmRSS, VmHWM); None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def disk_usage(path: Path) -> tuple[int, int]:
    """(allocated bytes like `du`, apparent bytes), each inode counted once."""
    seen: set[tuple[int, int]] = set()
    allocated = apparent = 0
    for directory, _dirs, files in os.walk(path):
        for name in (".", *files):
            st = os.lstat(os.path.join(directory, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            allocated += st.st_blocks * 512
            apparent += st.st_size
    return allocated, apparent
