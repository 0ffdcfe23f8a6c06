"""When an idle daemon drops its caches or exits.

A resident daemon holds a model and an index in memory; nobody wants that
forever for a project they stopped touching. The decision is a pure function
of timestamps and counters (tested without clocks); ``ActivityTracker`` is the
thread-safe bookkeeping the RPC methods update.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

#: The checker never sleeps longer than this, so a long TTL still reacts promptly.
MAX_CHECK_INTERVAL_S = 30.0


def idle_decision(
    last_activity: float,
    now: float,
    ttl: float,
    active_connections: int,
    *,
    in_flight: int = 0,
    auto_shutdown: bool = True,
    evicted: bool = False,
) -> str:
    """"none" | "evict" | "shutdown".

    Idle for ``ttl`` seconds with no client connected -> shutdown (when
    enabled); idle but a client still holds a connection (or shutdown is
    disabled) -> evict the caches once. A running query is never idle.
    """
    if in_flight > 0 or now - last_activity < ttl:
        return "none"
    if auto_shutdown and active_connections <= 0:
        return "shutdown"
    return "none" if evicted else "evict"


def check_interval(ttl: float) -> float:
    """How often the checker wakes: a quarter TTL, at most 30 s (and not a busy loop)."""
    return max(0.05, min(ttl / 4.0, MAX_CHECK_INTERVAL_S))


@dataclass(frozen=True)
class Snapshot:
    last_activity: float
    connections: int
    in_flight: int
    evicted: bool


class ActivityTracker:
    """Counts connections and in-flight calls; remembers the last client activity."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or time.monotonic
        self._cond = threading.Condition()
        self._last = self._clock()
        self._connections = 0
        self._in_flight = 0
        self._evicted = False

    def now(self) -> float:
        return self._clock()

    def touch(self) -> None:
        with self._cond:
            self._last = self._clock()
            self._evicted = False

    # Connecting is not activity (a status poller must not keep a daemon alive);
    # an open connection only blocks idle *shutdown*, never eviction.
    def connected(self) -> None:
        with self._cond:
            self._connections += 1

    def disconnected(self) -> None:
        with self._cond:
            self._connections = max(0, self._connections - 1)
            self._cond.notify_all()

    @contextmanager
    def call(self, *, activity: bool = True) -> Iterator[None]:
        """Wrap one RPC: counts as in flight (graceful stop waits for it)."""
        with self._cond:
            self._in_flight += 1
            if activity:
                self._last = self._clock()
                self._evicted = False
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                if activity:
                    self._last = self._clock()
                self._cond.notify_all()

    def mark_evicted(self, as_of: float | None = None) -> None:
        """Record an eviction. An idle eviction passes the ``last_activity`` of the snapshot
        it was decided on: a call since then (it may have reloaded what the eviction cleared)
        leaves the flag down, so the next idle period evicts again. ``None``: asked for by a
        client, recorded as is."""
        with self._cond:
            if as_of is None or (self._last == as_of and self._in_flight == 0):
                self._evicted = True

    def snapshot(self) -> Snapshot:
        with self._cond:
            return Snapshot(self._last, self._connections, self._in_flight, self._evicted)

    def wait_until(self, predicate_name: str, timeout: float) -> bool:
        """Block until no call is in flight ("in_flight") or no client is connected
        ("connections"), or until ``timeout`` seconds pass. Returns True if reached."""
        def done() -> bool:
            return (self._in_flight if predicate_name == "in_flight" else self._connections) == 0

        with self._cond:
            return self._cond.wait_for(done, timeout=timeout)
