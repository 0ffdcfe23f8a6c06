"""What the client does when the daemon is missing, slow, crashed or outdated.

Theory of operation
-------------------
A query is answered either by the warm daemon (over a Unix socket) or
in-process ("standalone", slow cold start but always available). Between the
two sits a policy: connect, start the daemon if it is not there, retry while it
is still coming up, restart it when it crashed, and give up gracefully. That
policy has many small branches and used to be scattered through socket code,
where it could only be tested by killing real processes. Here it is a pure
state machine, in the manner of h11: it performs no I/O, reads no clock and
starts no process. The caller performs *actions* and reports *events*::

    rec = Recovery(enabled=..., budget=load_budget(path), now=time.time(), ...)
    action = rec.action
    while not action.final:
        action = rec.send(perform(action))     # perform() is the only I/O

so any fault sequence can be replayed in microseconds, and Hypothesis replays
thousands of them (tests/test_recovery.py).

The machine's state *is* its pending action (waiting on ``Connect``, on
``StartDaemon``, ...); ``_TRANSITIONS`` below lists, for every event that can
answer each action, the possible next moves. Nothing else changes the state.

Rules
-----
R1  Daemon disabled in config: the first action is ``RunStandalone``, silent.
    The daemon is never touched.
R2  Otherwise always ``Connect`` first, even when the restart budget is spent:
    the daemon may well be healthy, and a healthy daemon is always used. A
    connection is followed by ``SendQuery`` at once: the query is the first and
    only request (the protocol version travels inside it, so there is no
    handshake).
R3  Busy at connect (timed out, backlog full: the daemon is alive or still
    coming up): connect again after ``retry_delays_ms[0]``, then ``[1]``, ... in
    order. When they run out, the daemon is unreachable (R5). Every (re)start
    begins a fresh sequence, from the first delay.
R4  Socket absent: ``StartDaemon``, at most once per invocation. Starting a
    daemon that is not there is normal first use, not a crash, so it costs no
    budget. An absent socket after any (re)start of this invocation means the
    daemon died or listens elsewhere: unreachable (R5). This bounds the loop.
R5  Crash recovery. Unreachable (R3 exhausted, R4 after a start, a stale socket
    (refused: nobody listens), a failed start) or the connection lost in the
    middle of the query (EOF/reset; or no answer while the daemon also fails a
    liveness ping: hung, and the reason says so): ``RestartDaemon`` if the
    budget allows, else ``RunStandalone``. ``RestartDaemon`` means: stop the old
    process if it still lives and its pid is proven ours (it may be hung),
    remove the stale socket, start, wait for readiness.
R6  Budget: at most ``max_restarts`` crash restarts per ``window_s`` seconds,
    counted across invocations through the persisted list of restart times.
    Timestamps from the future (the clock went back) are dropped rather than
    locking the daemon out. The restart's timestamp is in ``RestartDaemon.budget``,
    which the caller saves *before* restarting, so an interrupted client still
    pays. A restart whose start then fails still counted: the attempt was made.
R7  Protocol mismatch (the daemon's reply says another version, or says none):
    restart the daemon to pick up the installed version (dmypy and Bazel do the
    same). An upgrade, not a crash: it costs no budget, but at most one per
    invocation; a second mismatch means the daemon command runs a different
    version, and restarting again would loop: fall back, reason "protocol mismatch".
R8  Query answered: ``Done(result)``. Query refused by the engine (bad regex,
    no index, unknown language): ``Done(error=...)``: the daemon is healthy;
    never a restart, never a fallback. A daemon that is alive (it answers a
    liveness ping) but slow past the caller's deadline is not a crash either:
    ``Busy`` gives ``Done(error=busy)``. ``Done`` carries one of the two, never both.
R9  A healthy daemon clears the budget: ``Done.reset_budget`` is set when this
    invocation made no crash restart (and there is a budget to clear). A
    success that follows its own restart does not clear it, otherwise a daemon
    killed before every query would show "(1/2)" forever and never reach the
    fallback. ``cidx daemon start`` clears the budget explicitly (the caller).
R10 Something that is not our daemon's socket (a symlink, a directory, another
    uid's file, a daemon serving another project): ``RunStandalone`` at once,
    saying what was found. Nothing is restarted, killed or removed.
R11 Every ``RunStandalone`` carries a non-empty reason. Its causes besides R1:
    budget spent (R5/R6), a repeated mismatch (R7), an unusable socket (R10).
R12 Termination: at most 1 start + ``max_restarts`` restarts + 1 upgrade per
    invocation, each followed by at most ``len(retry_delays_ms) + 1`` connects
    and one query, so every invocation ends in a bounded number of steps with
    ``Done`` or ``RunStandalone``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

DEFAULT_RETRY_DELAYS_MS = (100, 500, 1000, 2000)
DEFAULT_MAX_RESTARTS = 2
DEFAULT_WINDOW_S = 600.0
#: Protocol-mismatch restarts allowed per invocation (R7).
MAX_UPGRADES = 1

CRASH = "crash"
UPGRADE = "upgrade"


class RecoveryError(RuntimeError):
    """The caller broke the protocol: an event that cannot answer the pending action."""


class _Record:
    """Plain value object: slots, equality and repr, without importing dataclasses."""

    __slots__ = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Record) and type(other) is type(self) and other._values() == self._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


# --------------------------------------------------------------------- events
# What happened; sent by the caller after performing the pending action.


class Connected(_Record):
    """Connect: the socket accepted the connection."""

    __slots__ = ()


class SocketAbsent(_Record):
    """Connect: no socket file, so no daemon has been started (or it was stopped)."""

    __slots__ = ()


class ConnectBusy(_Record):
    """Connect: timed out or the backlog is full; the daemon may still be starting (R3)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class SocketStale(_Record):
    """Connect: refused on an existing socket file: no process listens any more (R5)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class SocketUnusable(_Record):
    """Connect or SendQuery: something that is not this project's daemon (R10)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class DaemonReady(_Record):
    """StartDaemon / RestartDaemon: the daemon signalled readiness."""

    __slots__ = ()


class StartFailed(_Record):
    """StartDaemon / RestartDaemon: exited early, no readiness signal in time, bad command."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class QueryOk(_Record):
    """SendQuery: the result document."""

    __slots__ = ("result",)

    def __init__(self, result: object) -> None:
        self.result = result


class QueryError(_Record):
    """SendQuery: a structured application error from a healthy daemon (R8)."""

    __slots__ = ("error",)

    def __init__(self, error: object) -> None:
        if error is None:
            raise ValueError("QueryError needs the error the daemon sent")
        self.error = error


class Mismatch(_Record):
    """SendQuery: the daemon speaks another protocol version (None: too old to say) (R7)."""

    __slots__ = ("protocol_version",)

    def __init__(self, protocol_version: int | None) -> None:
        self.protocol_version = protocol_version


class Busy(_Record):
    """SendQuery: no answer by the deadline, but the daemon answers a liveness ping (R8)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class ConnectionLost(_Record):
    """SendQuery: EOF or reset mid-call, or hung (no answer and no ping): transport, not application."""

    __slots__ = ("reason", "timed_out")

    def __init__(self, reason: str, timed_out: bool = False) -> None:
        self.reason = reason
        self.timed_out = timed_out


# -------------------------------------------------------------------- actions
# What to do next; ``final`` actions end the invocation and accept no event.


class _Action(_Record):
    __slots__ = ()
    final = False


class Connect(_Action):
    """Sleep ``delay_ms`` (0 on a first attempt), then connect to the socket."""

    __slots__ = ("delay_ms",)

    def __init__(self, delay_ms: int) -> None:
        self.delay_ms = delay_ms


class StartDaemon(_Action):
    """Start the configured daemon command detached and wait for its readiness."""

    __slots__ = ()


class RestartDaemon(_Action):
    """Print ``message``, save ``budget``, stop the old daemon if alive and proven ours,
    remove the stale socket, start the daemon and wait for readiness (R5, R7)."""

    __slots__ = ("attempt", "budget", "kind", "limit", "message", "reason")

    def __init__(self, kind: str, attempt: int, limit: int, reason: str,
                 budget: tuple[float, ...], message: str) -> None:
        self.kind = kind  # CRASH or UPGRADE
        self.attempt = attempt
        self.limit = limit
        self.reason = reason
        self.budget = budget
        self.message = message


class SendQuery(_Action):
    """Send the query (with the protocol version inside) on the open connection."""

    __slots__ = ()


class Done(_Action):
    """The daemon answered: exactly one of ``result`` / ``error`` is set. If
    ``reset_budget``, clear the persisted restart budget (R9)."""

    __slots__ = ("error", "reset_budget", "result")
    final = True

    def __init__(self, result: object = None, error: object = None, reset_budget: bool = False) -> None:
        if (result is None) == (error is None):
            raise ValueError("Done carries exactly one of result and error")
        self.result = result
        self.error = error
        self.reset_budget = reset_budget


class RunStandalone(_Action):
    """Run the query in-process. Print ``message`` if non-empty (empty when disabled)."""

    __slots__ = ("message", "reason")
    final = True

    def __init__(self, reason: str, message: str) -> None:
        if not reason:
            raise ValueError("RunStandalone needs a reason")
        self.reason = reason
        self.message = message


# ------------------------------------------------------------------- messages


def restart_message(attempt: int, limit: int, reason: str) -> str:
    """The stderr warning for a crash restart; the user should know why it was slow."""
    return f"⚠️ Daemon crashed, attempting restart ({attempt}/{limit})\n   Error: {reason}"


def upgrade_message(reason: str) -> str:
    """The stderr note for a protocol-mismatch restart (R7): expected after an upgrade."""
    return f"ℹ️ Restarting daemon: {reason}"


def fallback_message(attempts: int, reason: str, log_path: str) -> str:
    """The stderr note for a fallback: why it is slow now and where to look."""
    if attempts:
        plural = "attempt" if attempts == 1 else "attempts"
        head = f"ℹ️ Daemon unavailable after {attempts} restart {plural}, using standalone mode"
    else:
        head = "ℹ️ Daemon unavailable, using standalone mode"
    lines = [head, f"   Reason: {reason}"]
    if log_path:
        lines.append(f"   Daemon log: {log_path}")
    lines.append("   Tip: Check daemon with 'cidx daemon status'")
    return "\n".join(lines)


# ---------------------------------------------------------------- the machine

# The whole policy. (pending action, event) -> candidate moves, tried in order;
# the first whose guard holds wins (None: always). A guard "g" is method ``_g``,
# a move "m" is method ``_to_m``, which returns the next action. Pairs not
# listed are protocol errors.
_TRANSITIONS: dict[tuple[type, type], tuple[tuple[str | None, str], ...]] = {
    (Connect, Connected):         ((None, "query"),),
    (Connect, ConnectBusy):       (("retries_left", "retry"), ("budget_left", "restart"), (None, "fallback")),
    (Connect, SocketAbsent):      (("not_started", "start"), ("budget_left", "restart"), (None, "fallback")),
    (Connect, SocketStale):       (("budget_left", "restart"), (None, "fallback")),
    (Connect, SocketUnusable):    ((None, "fallback"),),
    (StartDaemon, DaemonReady):   ((None, "connect"),),
    (StartDaemon, StartFailed):   (("budget_left", "restart"), (None, "fallback")),
    (RestartDaemon, DaemonReady): ((None, "connect"),),
    (RestartDaemon, StartFailed): (("budget_left", "restart"), (None, "fallback")),
    (SendQuery, QueryOk):         ((None, "done"),),
    (SendQuery, QueryError):      ((None, "done"),),
    (SendQuery, Busy):            ((None, "done"),),
    (SendQuery, ConnectionLost):  (("budget_left", "restart"), (None, "fallback")),
    (SendQuery, Mismatch):        (("may_upgrade", "upgrade"), (None, "mismatch_fallback")),
    (SendQuery, SocketUnusable):  ((None, "fallback"),),
}


class Recovery:
    """One invocation's way to the daemon (or away from it). See the module docstring."""

    __slots__ = ("_budget", "_crash_restarts", "_delays", "_had_budget", "_limit", "_log_path",
                 "_now", "_retry", "_started", "_upgrades", "_version", "action")

    def __init__(self, *, enabled: bool, protocol_version: int, now: float,
                 budget: Iterable[float] = (),
                 retry_delays_ms: Sequence[int] = DEFAULT_RETRY_DELAYS_MS,
                 max_restarts: int = DEFAULT_MAX_RESTARTS,
                 window_s: float = DEFAULT_WINDOW_S,
                 log_path: str = "") -> None:
        delays = tuple(retry_delays_ms)
        if any(d < 0 for d in delays) or max_restarts < 0 or not window_s > 0:
            raise ValueError("retry delays and max_restarts must be >= 0, window_s > 0")
        loaded = list(budget)
        self._delays = delays
        self._limit = max_restarts
        self._version = protocol_version
        self._now = now
        self._log_path = log_path
        # R6: only restarts inside the window count; future ones (clock went back) are dropped.
        self._budget = tuple(sorted(t for t in loaded if 0 <= now - t < window_s))
        self._had_budget = bool(loaded)
        self._retry = 0           # retry delays used in the current connect sequence
        self._started = False     # a daemon was (re)started by this invocation (R4)
        self._crash_restarts = 0  # crash restarts made by this invocation (R9)
        self._upgrades = 0        # mismatch restarts made by this invocation (R7)
        self.action: _Action
        if enabled:
            self.action = Connect(0)
        else:
            self.action = RunStandalone("daemon disabled in config", "")

    @property
    def budget(self) -> tuple[float, ...]:
        """Restart timestamps inside the window, including this invocation's."""
        return self._budget

    def send(self, event: _Record) -> _Action:
        """Report the outcome of ``self.action``; returns (and stores) the next action."""
        moves = _TRANSITIONS.get((type(self.action), type(event)))
        if moves is None:
            raise RecoveryError(f"{event!r} cannot answer {self.action!r}")
        for guard, move in moves:
            if guard is None or getattr(self, "_" + guard)(event):
                self.action = getattr(self, "_to_" + move)(event)
                return self.action
        raise AssertionError("every row of _TRANSITIONS ends with an unguarded move")

    # Guards: read-only questions about the state.

    def _retries_left(self, event: object) -> bool:
        return self._retry < len(self._delays)

    def _budget_left(self, event: object) -> bool:
        return len(self._budget) < self._limit

    def _not_started(self, event: object) -> bool:
        return not self._started

    def _may_upgrade(self, event: object) -> bool:
        return self._upgrades < MAX_UPGRADES

    # Moves: the only code that changes the state.

    def _to_query(self, event: object) -> _Action:
        return SendQuery()

    def _to_connect(self, event: object) -> _Action:
        self._retry = 0
        return Connect(0)

    def _to_retry(self, event: object) -> _Action:
        self._retry += 1
        return Connect(self._delays[self._retry - 1])

    def _to_start(self, event: object) -> _Action:
        self._started = True
        return StartDaemon()

    def _to_restart(self, event: object) -> _Action:
        self._started = True
        self._crash_restarts += 1
        self._budget = (*self._budget, self._now)
        attempt, reason = len(self._budget), self._why(event)
        return RestartDaemon(CRASH, attempt, self._limit, reason, self._budget,
                             restart_message(attempt, self._limit, reason))

    def _to_upgrade(self, event: object) -> _Action:
        self._started = True
        self._upgrades += 1
        reason = self._why(event)
        return RestartDaemon(UPGRADE, self._upgrades, MAX_UPGRADES, reason, self._budget,
                             upgrade_message(reason))

    def _to_done(self, event: QueryOk | QueryError | Busy) -> _Action:
        reset = self._crash_restarts == 0 and self._had_budget
        if isinstance(event, QueryOk):
            return Done(result=event.result, reset_budget=reset)
        if isinstance(event, Busy):
            return Done(error={"code": "busy", "message": event.reason}, reset_budget=reset)
        return Done(error=event.error, reset_budget=reset)

    def _to_fallback(self, event: object) -> _Action:
        reason = self._why(event)
        return RunStandalone(reason, fallback_message(len(self._budget), reason, self._log_path))

    def _to_mismatch_fallback(self, event: object) -> _Action:
        reason = self._why(event)
        return RunStandalone(reason, fallback_message(self._upgrades, reason, self._log_path))

    def _why(self, event: object) -> str:
        """The failure in words, for messages and the daemon-less log."""
        if isinstance(event, ConnectBusy):
            return f"daemon not accepting connections after {self._retry + 1} attempts: {event.reason}"
        if isinstance(event, SocketStale):
            return f"stale daemon socket: {event.reason}"
        if isinstance(event, SocketUnusable):
            return event.reason
        if isinstance(event, SocketAbsent):
            return "daemon socket missing after the daemon was started"
        if isinstance(event, StartFailed):
            return f"daemon failed to start: {event.reason}"
        if isinstance(event, ConnectionLost):
            kind = "daemon hung (no answer, no liveness)" if event.timed_out else "connection lost"
            return f"{kind}: {event.reason}"
        if isinstance(event, Mismatch):
            theirs = "no version" if event.protocol_version is None else event.protocol_version
            return f"protocol mismatch: daemon speaks {theirs}, client {self._version}"
        raise AssertionError(f"no failure in {event!r}")
