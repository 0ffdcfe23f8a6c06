"""The activity tracker's eviction flag: an idle eviction that raced a query must not stick.

The idle loop decides on a snapshot, then clears the engine's caches (waiting for any model
load in progress), then records the eviction. A query arriving in between reloads the caches;
recording the eviction anyway left a daemon with loaded caches that believed it had evicted
them, and never evicted again (seen once in CI as a 60 s timeout).
"""

from __future__ import annotations

from cidx_daemon.server.idle import ActivityTracker, idle_decision


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_an_idle_eviction_is_recorded_when_nothing_happened_since_the_decision() -> None:
    clock = Clock()
    tracker = ActivityTracker(clock)
    clock.t += 10
    snap = tracker.snapshot()
    assert idle_decision(snap.last_activity, tracker.now(), 5.0, 1, auto_shutdown=False) == "evict"
    tracker.mark_evicted(as_of=snap.last_activity)
    assert tracker.snapshot().evicted


def test_a_query_between_the_decision_and_the_record_keeps_the_flag_down() -> None:
    clock = Clock()
    tracker = ActivityTracker(clock)
    clock.t += 10
    snap = tracker.snapshot()
    clock.t += 0.5
    with tracker.call():  # the query that reloads the caches
        clock.t += 0.1
    tracker.mark_evicted(as_of=snap.last_activity)
    after = tracker.snapshot()
    assert not after.evicted
    clock.t += 10  # idle again: the loop evicts again
    assert idle_decision(after.last_activity, tracker.now(), 5.0, 1, auto_shutdown=False,
                         evicted=after.evicted) == "evict"


def test_a_query_still_running_keeps_the_flag_down() -> None:
    clock = Clock()
    tracker = ActivityTracker(clock)
    clock.t += 10
    snap = tracker.snapshot()
    with tracker.call(activity=False):  # in flight when the eviction is recorded
        tracker.mark_evicted(as_of=snap.last_activity)
    assert not tracker.snapshot().evicted


def test_a_requested_eviction_is_recorded_as_is() -> None:
    tracker = ActivityTracker(Clock())
    with tracker.call():
        tracker.mark_evicted()
    assert tracker.snapshot().evicted
