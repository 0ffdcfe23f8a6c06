"""The daemon retry / restart / fallback policy (cidx.recovery).

Readable scenarios first, then a Hypothesis state machine that drives random
fault sequences through many invocations sharing one persisted budget, with a
fake clock, and checks the rules of the module docstring after every step.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cidx import recovery
from cidx.recovery import (
    CRASH,
    UPGRADE,
    Busy,
    Connect,
    ConnectBusy,
    Connected,
    ConnectionLost,
    DaemonReady,
    Done,
    Mismatch,
    QueryError,
    QueryOk,
    Recovery,
    RecoveryError,
    RestartDaemon,
    RunStandalone,
    SendQuery,
    SocketAbsent,
    SocketStale,
    SocketUnusable,
    StartDaemon,
    StartFailed,
    fallback_message,
    restart_message,
)

PROTO = 7
DELAYS = (100, 500, 1000, 2000)
LOG = "/repo/.code-indexer/daemon.log"
RESULT = {"results": [{"path": "a.py"}]}
APP_ERROR = {"code": "bad_regex", "message": "unbalanced parenthesis"}

HEALTHY = [Connected(), QueryOk(RESULT)]
KILLED_9 = [SocketStale("connection refused")]  # a socket file nobody listens on
SWAMPED = [ConnectBusy("timed out")] * (len(DELAYS) + 1)  # accepts nothing, every delay used


def new(now: float = 1000.0, budget=(), **kw) -> Recovery:
    kw.setdefault("enabled", True)
    kw.setdefault("retry_delays_ms", DELAYS)
    return Recovery(protocol_version=PROTO, now=now, budget=budget, log_path=LOG, **kw)


def run(rec: Recovery, events) -> list:
    """Feed events in order; return every action, first included. The trace must end final."""
    actions = [rec.action]
    for event in events:
        actions.append(rec.send(event))
    assert actions[-1].final, actions
    return actions


class FakeClient:
    """The caller's side, reduced to the budget file: what the lead's driver does with it."""

    def __init__(self) -> None:
        self.file: list[float] = []

    def invoke(self, now: float, events) -> list:
        rec = new(now, list(self.file))
        actions = run(rec, events)
        for action in actions:
            if isinstance(action, RestartDaemon):
                self.file = list(action.budget)
            if isinstance(action, Done) and action.reset_budget:
                self.file = []
        return actions


# ------------------------------------------------------------------ scenarios


def test_manual_check_kill_three_times_then_standalone():
    client = FakeClient()
    restart = [DaemonReady(), *HEALTHY]

    first = client.invoke(1000.0, [*KILLED_9, *restart])
    assert [type(a) for a in first] == [Connect, RestartDaemon, Connect, SendQuery, Done]
    assert first[0].delay_ms == 0
    assert first[1].message.startswith("⚠️ Daemon crashed, attempting restart (1/2)\n")
    assert first[-1] == Done(result=RESULT, reset_budget=False)

    second = client.invoke(1010.0, [*KILLED_9, *restart])
    assert second[1].message.startswith("⚠️ Daemon crashed, attempting restart (2/2)\n")
    assert second[-1].result == RESULT and not second[-1].reset_budget

    third = client.invoke(1020.0, KILLED_9)
    assert not any(isinstance(a, RestartDaemon) for a in third)
    last = third[-1]
    assert isinstance(last, RunStandalone)
    assert last.message.splitlines()[0] == (
        "ℹ️ Daemon unavailable after 2 restart attempts, using standalone mode")
    assert last.reason == "stale daemon socket: connection refused"
    assert LOG in last.message and "Tip: Check daemon with 'cidx daemon status'" in last.message

    # Once the first restart leaves the window, one restart is available again: (2/2).
    later = client.invoke(1000.0 + recovery.DEFAULT_WINDOW_S, [SocketStale("pid 4242 is gone"), *restart])
    assert later[1].attempt == 2 and later[1].budget == (1010.0, 1600.0)

    # A daemon found healthy as-is clears the budget.
    healthy = client.invoke(1700.0, HEALTHY)
    assert healthy[-1].reset_budget and client.file == []


def test_disabled_runs_standalone_silently_and_never_touches_the_daemon():
    rec = new(enabled=False, budget=[999.0])
    assert rec.action == RunStandalone("daemon disabled in config", "")
    assert rec.action.final
    with pytest.raises(RecoveryError):
        rec.send(Connected())


def test_a_swamped_daemon_is_retried_with_every_delay_before_a_restart():
    actions = run(new(), [*SWAMPED, DaemonReady(), *HEALTHY])
    assert [type(a) for a in actions] == [Connect] * 5 + [RestartDaemon, Connect, SendQuery, Done]
    assert [a.delay_ms for a in actions[:5]] == [0, *DELAYS]
    assert "not accepting connections after 5 attempts: timed out" in actions[5].reason


def test_a_connection_is_followed_by_the_query_at_once():
    """One crossing: no handshake state between connecting and the query."""
    rec = new()
    assert rec.send(Connected()) == SendQuery()


def test_app_error_is_done_without_restart_or_fallback():
    actions = run(new(budget=[990.0]), [Connected(), QueryError(APP_ERROR)])
    assert actions[-1] == Done(error=APP_ERROR, reset_budget=True)  # the daemon is healthy
    assert actions[-1].result is None


def test_busy_daemon_is_an_error_not_a_crash():
    actions = run(new(budget=[990.0]), [Connected(), Busy("alive but no answer within 300s")])
    assert actions[-1] == Done(error={"code": "busy", "message": "alive but no answer within 300s"},
                               reset_budget=True)
    assert not any(isinstance(a, (RestartDaemon, RunStandalone)) for a in actions)


def test_an_unusable_socket_falls_back_at_once_and_touches_nothing():
    for events in ([SocketUnusable("daemon.sock is a directory; remove it")],
                   [Connected(), SocketUnusable("this daemon serves /other, not /repo")]):
        actions = run(new(), events)
        assert not any(isinstance(a, (RestartDaemon, StartDaemon)) for a in actions)
        last = actions[-1]
        assert isinstance(last, RunStandalone) and last.reason == events[-1].reason
        assert last.reason in last.message


def test_mismatch_restarts_once_without_spending_budget_then_falls_back():
    actions = run(new(), [Connected(), Mismatch(PROTO + 1), DaemonReady(),
                          Connected(), Mismatch(PROTO + 1)])
    upgrade = actions[2]
    assert isinstance(upgrade, RestartDaemon) and upgrade.kind == UPGRADE and upgrade.budget == ()
    assert "protocol mismatch: daemon speaks 8, client 7" in upgrade.message
    last = actions[-1]
    assert isinstance(last, RunStandalone) and last.reason.startswith("protocol mismatch")
    assert last.message.startswith("ℹ️ Daemon unavailable after 1 restart attempt, using")


def test_mismatch_fixed_by_the_restart_is_done():
    actions = run(new(), [Connected(), Mismatch(None), DaemonReady(), *HEALTHY])
    assert "daemon speaks no version" in actions[2].reason
    assert actions[-1] == Done(result=RESULT)


def test_first_use_starts_the_daemon_waits_for_it_and_spends_no_budget():
    actions = run(new(), [SocketAbsent(), DaemonReady(), ConnectBusy("EAGAIN"),
                          ConnectBusy("timed out"), *HEALTHY])
    assert actions[:5] == [Connect(0), StartDaemon(), Connect(0), Connect(100), Connect(500)]
    assert actions[-1] == Done(result=RESULT, reset_budget=False)  # nothing to clear


def test_each_restart_starts_the_delays_from_the_first():
    actions = run(new(), [*SWAMPED, DaemonReady(), ConnectBusy("EAGAIN"), ConnectBusy("EAGAIN"),
                          *HEALTHY])
    assert [a.delay_ms for a in actions if isinstance(a, Connect)] == [0, *DELAYS, 0, 100, 500]


def test_start_failures_spend_the_budget_then_fall_back():
    actions = run(new(), [SocketAbsent(), StartFailed("exit status 1"),
                          StartFailed("exit status 1"), StartFailed("exit status 1")])
    kinds = [type(a) for a in actions]
    assert kinds == [Connect, StartDaemon, RestartDaemon, RestartDaemon, RunStandalone]
    assert actions[-1].reason == "daemon failed to start: exit status 1"


def test_socket_missing_after_start_is_a_failure_not_a_loop():
    actions = run(new(max_restarts=0), [SocketAbsent(), DaemonReady(), SocketAbsent()])
    assert actions[-1].reason == "daemon socket missing after the daemon was started"


def test_a_hung_daemon_is_a_crash_and_says_so():
    actions = run(new(), [Connected(), ConnectionLost("no reply, no ping", timed_out=True),
                          DaemonReady(), *HEALTHY])
    assert actions[2].kind == CRASH
    assert actions[2].reason == "daemon hung (no answer, no liveness): no reply, no ping"
    assert actions[-1].result == RESULT


def test_expired_and_future_timestamps_do_not_count():
    rec = new(now=1000.0, budget=[1000.0 - recovery.DEFAULT_WINDOW_S, 999.0, 5000.0], window_s=600)
    assert rec.budget == (999.0,)


def test_messages():
    assert restart_message(1, 2, "EOF") == "⚠️ Daemon crashed, attempting restart (1/2)\n   Error: EOF"
    assert fallback_message(2, "EOF", "/x/daemon.log") == (
        "ℹ️ Daemon unavailable after 2 restart attempts, using standalone mode\n"
        "   Reason: EOF\n"
        "   Daemon log: /x/daemon.log\n"
        "   Tip: Check daemon with 'cidx daemon status'")
    assert fallback_message(0, "EOF", "").splitlines()[0] == "ℹ️ Daemon unavailable, using standalone mode"


def test_protocol_errors_and_value_checks():
    rec = new()
    with pytest.raises(RecoveryError):
        rec.send(QueryOk(RESULT))  # nothing was sent yet
    with pytest.raises(ValueError):
        Done(result=RESULT, error=APP_ERROR)
    with pytest.raises(ValueError):
        Done()
    with pytest.raises(ValueError):
        RunStandalone("", "")
    with pytest.raises(ValueError):
        new(retry_delays_ms=[-1])


def test_every_guard_and_move_in_the_table_exists():
    for moves in recovery._TRANSITIONS.values():
        assert moves[-1][0] is None  # some move always applies
        for guard, move in moves:
            assert guard is None or callable(getattr(Recovery, "_" + guard))
            assert callable(getattr(Recovery, "_to_" + move))


# ------------------------------------------------------------ state machine

EVENTS = {
    Connect: [Connected(), SocketAbsent(), ConnectBusy("EAGAIN"), ConnectBusy("timed out"),
              SocketStale("connection refused"), SocketUnusable("a directory")],
    StartDaemon: [DaemonReady(), StartFailed("exit status 1")],
    RestartDaemon: [DaemonReady(), StartFailed("no readiness in 10s")],
    SendQuery: [QueryOk(RESULT), QueryOk({"results": []}), QueryError(APP_ERROR), Busy("slow"),
                Mismatch(PROTO + 1), Mismatch(None), SocketUnusable("another project"),
                ConnectionLost("connection reset"), ConnectionLost("no reply", timed_out=True)],
}
FAILURES = (ConnectBusy, SocketAbsent, SocketStale, StartFailed, ConnectionLost)


class Invocations(RuleBasedStateMachine):
    """Many client invocations against one budget file, each fed random outcomes."""

    @initialize(delays=st.lists(st.integers(0, 3000), max_size=5),
                limit=st.integers(0, 3), window=st.integers(1, 1000))
    def configure(self, delays, limit, window):
        self.delays, self.limit, self.window = tuple(delays), limit, window
        self.file: list[float] = []     # what the fake driver persisted
        self.restarts: list[float] = []  # model: crash restart times since the last reset
        self.clock = 1_000_000.0
        self.rec: Recovery | None = None

    def in_window(self) -> list[float]:
        return [t for t in self.restarts if self.clock - t < self.window]

    # --- rules

    @precondition(lambda self: self.rec is None)
    @rule(advance=st.integers(0, 1500), enabled=st.sampled_from([True, True, True, False]))
    def invoke(self, advance, enabled):
        self.clock += advance
        self.enabled, self.loaded = enabled, list(self.file)
        self.steps = self.retry = self.crash_restarts = self.upgrades = 0
        self.started = False  # a daemon was (re)started by this invocation
        self.rec = Recovery(enabled=enabled, protocol_version=PROTO, now=self.clock, budget=self.loaded,
                            retry_delays_ms=self.delays, max_restarts=self.limit, window_s=self.window,
                            log_path=LOG)
        self.check(None, self.rec.action)

    @precondition(lambda self: self.rec is not None)
    @rule(data=st.data())
    def outcome(self, data):
        event = data.draw(st.sampled_from(EVENTS[type(self.rec.action)]))
        self.check(event, self.rec.send(event))

    @precondition(lambda self: self.rec is not None)
    @rule()
    def interrupt(self):
        """Ctrl-C mid-invocation: whatever the driver saved stays saved."""
        self.rec = None

    @precondition(lambda self: self.rec is None)
    @rule()
    def cidx_daemon_start(self):
        self.file, self.restarts = [], []

    @invariant()
    def pending_action_is_never_final(self):
        assert self.rec is None or not self.rec.action.final

    # --- the rules of cidx.recovery, checked on every (event, action) step

    def check(self, event, action):
        self.steps += 1
        assert self.steps <= 1 + (self.limit + 3) * (len(self.delays) + 4), "no termination"
        if not self.enabled:
            assert action == RunStandalone("daemon disabled in config", "")
            assert event is None and self.file == self.loaded
        if isinstance(event, QueryError):
            assert action == Done(error=event.error, reset_budget=action.reset_budget)
        if isinstance(event, ConnectBusy) and not isinstance(action, Connect):
            assert self.retry == len(self.delays), "gave up before the delays ran out"

        if isinstance(action, Connect):
            if isinstance(event, ConnectBusy):
                assert action.delay_ms == self.delays[self.retry]
                self.retry += 1
            else:
                assert event is None or isinstance(event, DaemonReady)
                assert action.delay_ms == 0
                self.retry = 0
        elif isinstance(action, RestartDaemon) and action.kind == CRASH:
            assert isinstance(event, FAILURES)
            self.started = True
            self.crash_restarts += 1
            self.restarts.append(self.clock)
            assert len(self.in_window()) <= self.limit, "too many restarts in one window"
            assert action.attempt == len(self.in_window()) and action.limit == self.limit
            assert action.budget == tuple(self.in_window())
            assert f"({action.attempt}/{self.limit})" in action.message and action.reason in action.message
            self.file = list(action.budget)
        elif isinstance(action, RestartDaemon):
            assert action.kind == UPGRADE
            assert isinstance(event, Mismatch) and event.protocol_version != PROTO
            self.started = True
            self.upgrades += 1
            assert self.upgrades <= recovery.MAX_UPGRADES
            assert action.budget == tuple(self.in_window())
        elif isinstance(action, RunStandalone) and not self.enabled:
            pass  # checked above
        elif isinstance(action, RunStandalone):
            assert action.reason and action.reason in action.message
            assert "using standalone mode" in action.message and LOG in action.message
            if isinstance(event, Mismatch):
                assert self.upgrades == recovery.MAX_UPGRADES
                assert action.reason.startswith("protocol mismatch")
            elif isinstance(event, SocketUnusable):
                assert action.reason == event.reason  # R10: at once, whatever the budget
            else:
                assert isinstance(event, FAILURES)
                assert len(self.in_window()) == self.limit, "fell back with budget left"
        elif isinstance(action, Done):
            assert isinstance(event, (QueryOk, QueryError, Busy))
            assert (action.result is None) != (action.error is None)
            if isinstance(event, QueryOk):
                assert action.result == event.result
            if isinstance(event, Busy):
                assert action.error == {"code": "busy", "message": event.reason}
            assert action.reset_budget == (self.crash_restarts == 0 and bool(self.loaded))
            if action.reset_budget:
                self.file, self.restarts = [], []
        elif isinstance(action, SendQuery):
            assert isinstance(event, Connected)
        else:
            assert isinstance(action, StartDaemon) and isinstance(event, SocketAbsent)
            assert not self.started, "a second start in one invocation"
            self.started = True

        if action.final:
            with pytest.raises(RecoveryError):
                self.rec.send(Connected())
            self.rec = None


@pytest.mark.parametrize("limit", range(4))
@pytest.mark.parametrize("delays", [(), (0,), DELAYS])
def test_every_fault_sequence_terminates(limit, delays):
    """R12 by exhaustion: walk every reachable state under every possible outcome.
    No state repeats on a path (no loop), every event listed for an action is
    accepted, and the longest invocation stays within the bound the stateful test uses."""
    longest: dict[tuple, int] = {}
    on_path: set[tuple] = set()

    def state(rec: Recovery) -> tuple:
        return tuple(repr(getattr(rec, name)) for name in Recovery.__slots__)

    def walk(rec: Recovery) -> int:
        key = state(rec)
        assert key not in on_path, f"loop through {rec.action!r}"
        if key not in longest:
            on_path.add(key)
            longest[key] = 0 if rec.action.final else max(
                1 + walk(_after(rec, event)) for event in EVENTS[type(rec.action)])
            on_path.discard(key)
        return longest[key]

    for used in range(limit + 1):
        rec = Recovery(enabled=True, protocol_version=PROTO, now=5.0, budget=[1.0] * used,
                       retry_delays_ms=delays, max_restarts=limit)
        assert walk(rec) + 1 <= 1 + (limit + 3) * (len(delays) + 4)


def _after(rec: Recovery, event) -> Recovery:
    clone = copy.copy(rec)
    clone.send(event)
    return clone


Invocations.TestCase.settings = settings(max_examples=200, stateful_step_count=100, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
TestInvocations = Invocations.TestCase
