"""The reconciler's decision, as a pure function of what it read from a lock.

A lock that executed an UNLOCK/LOCK frame stamped ``ts`` logged REMOTE_OPERATION (source
REMOTE, detail = the op) at its own clock ``t`` with ``|ts - t| <= w``. The tables
below pin what ``decide`` concludes from the log, the lock's clock and the other
commands of the lock: clock skew, window boundaries, several candidates for one entry,
chains of overlapping windows, logs read too short, wrapped or with a clock jump.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from heslock.protocol import LogCode, LogSource, OperationOp
from heslock.ras.services.commands.reconcile import (
    RETRY_MAX_S,
    RETRY_MIN_S,
    Claim,
    Decision,
    LockReading,
    LogRecord,
    Verdict,
    component,
    decide,
    log_floor,
    retry_delay,
    scan_complete,
)
from heslock.ras.services.commands.service import may_replace
from heslock.ras.store.models import CommandState

TS = 1_800_000_000
W = 30
UNLOCK, LOCK = int(OperationOp.UNLOCK), int(OperationOp.LOCK)
#: An old entry that ends the scan (older than any floor below).
OLD = LogRecord(TS - 10_000, int(LogCode.BOUND), 1, int(LogSource.REMOTE))


def claim(ts: int = TS, *, executed: bool = False, op: int = UNLOCK) -> Claim:
    return Claim(uuid.uuid4(), op, ts, executed)


def remote(time: int, op: int = UNLOCK) -> LogRecord:
    return LogRecord(time, int(LogCode.REMOTE_OPERATION), op, int(LogSource.REMOTE))


def reading(clock: int, *entries: LogRecord, window: int = W, complete: bool = True) -> LockReading:
    """``entries`` newest first; ``complete`` appends the old entry that ends the scan."""
    log = (*entries, OLD) if complete else entries
    return LockReading(clock, window, len(log) + (0 if complete else 5), 500, log)


PAST = TS + W + 1  #: the lock's clock once it refuses a frame stamped TS (STALE)


# --------------------------------------------------------------- one command alone


@pytest.mark.parametrize(
    ("entries", "clock", "verdict", "why"),
    [
        # the lock executed it: an entry anywhere in [TS - W, TS + W]
        ((remote(TS),), TS + 5, Verdict.EXECUTED, "log-entry"),
        ((remote(TS + W),), PAST + 100, Verdict.EXECUTED, "log-entry"),
        ((remote(TS - W),), PAST, Verdict.EXECUTED, "log-entry"),
        # clock skew: a lock 25 s slow executed it at its TS - 25 (inside the window)
        ((remote(TS - 25),), TS - 20, Verdict.EXECUTED, "log-entry"),
        # ... and 28 s fast at its TS + 28
        ((remote(TS + 28),), TS + 29, Verdict.EXECUTED, "log-entry"),
        # just outside the window: not this frame's entry (the lock refused it STALE)
        ((remote(TS + W + 1),), PAST + 10, Verdict.NOT_EXECUTED, "window-passed"),
        ((remote(TS - W - 1),), PAST, Verdict.NOT_EXECUTED, "window-passed"),
        # not a trace of this op: a LOCK, a knob turned by hand, an event from the lock
        ((remote(TS, LOCK),), PAST, Verdict.NOT_EXECUTED, "window-passed"),
        (
            (LogRecord(TS, int(LogCode.MANUAL_OPERATION), 2, int(LogSource.LOCK)),),
            PAST,
            Verdict.NOT_EXECUTED,
            "window-passed",
        ),
        (
            (LogRecord(TS, int(LogCode.REMOTE_OPERATION), UNLOCK, int(LogSource.LOCK)),),
            PAST,
            Verdict.NOT_EXECUTED,
            "window-passed",
        ),
        # nothing in the log and the lock's clock past TS + W: it never will
        ((), PAST, Verdict.NOT_EXECUTED, "window-passed"),
        ((), PAST + 86_400, Verdict.NOT_EXECUTED, "window-passed"),
        # nothing yet, but the lock would still accept the frame (boundary: TS + W)
        ((), TS + W, Verdict.UNDECIDED, "window-open"),
        ((), TS, Verdict.UNDECIDED, "window-open"),
        # a lock whose clock is behind the RAS: the window is the lock's
        ((), TS - 100, Verdict.UNDECIDED, "window-open"),
    ],
)
def test_one_command(
    entries: tuple[LogRecord, ...], clock: int, verdict: Verdict, why: str
) -> None:
    target = claim()
    decision = decide(target, [target], reading(clock, *entries))
    assert (decision.verdict, decision.why) == (verdict, why)


def test_window_open_says_when_to_look_again() -> None:
    target = claim()
    assert decide(target, [], reading(TS + W)).retry_in_s == 1
    assert decide(target, [], reading(TS - 4)).retry_in_s == W + 5
    assert decide(target, [], reading(TS + 3, window=5)).retry_in_s == 3  # the lock's window


def test_the_window_is_the_locks() -> None:
    target = claim()
    short = reading(TS + 6, window=5)
    assert decide(target, [target], short).verdict is Verdict.NOT_EXECUTED
    assert decide(target, [target], reading(TS + 6, remote(TS + 6), window=5)).why == (
        "window-passed"  # an entry at TS + 6 is outside +/-5: someone else's
    )
    assert decide(target, [target], reading(TS + 6, remote(TS + 5), window=5)).verdict is (
        Verdict.EXECUTED
    )


# --------------------------------------------------------------- several commands


def test_an_entry_already_accounted_for_by_an_ok_command() -> None:
    done = claim(TS - 5, executed=True)
    target = claim()
    one = reading(PAST, remote(TS - 4))
    assert decide(target, [done, target], one) == Decision(Verdict.NOT_EXECUTED, "window-passed")
    two = reading(PAST, remote(TS + 1), remote(TS - 4))
    assert decide(target, [done, target], two).verdict is Verdict.EXECUTED
    # window still open: not yet, and say when
    assert decide(target, [done, target], reading(TS + 2, remote(TS - 4))).why == "window-open"


def test_two_unknown_candidates_for_one_entry_is_ambiguous() -> None:
    first, second = claim(TS - 5), claim(TS)
    one = reading(PAST, remote(TS - 2))
    assert decide(second, [first, second], one).why == "ambiguous"
    assert decide(first, [first, second], one).why == "ambiguous"
    two = reading(PAST, remote(TS - 1), remote(TS - 3))
    assert decide(second, [first, second], two).verdict is Verdict.EXECUTED
    assert decide(first, [first, second], two).verdict is Verdict.EXECUTED


def test_an_entry_only_one_of_two_windows_holds() -> None:
    early, late = claim(TS - 50), claim(TS)  # windows [-80, -20] and [-30, +30]
    log = reading(PAST, remote(TS + 10))  # only the late window holds it
    assert decide(late, [early, late], log).verdict is Verdict.EXECUTED
    assert decide(early, [early, late], log).verdict is Verdict.NOT_EXECUTED


def test_a_chain_of_overlapping_windows_is_followed() -> None:
    """B (ok) can only have the entry at -65, so A (ok) has the one at -20, so the target
    has none. Without B (a reader that missed it) the entry at -65 would be A's, and the
    one at -20 the target's: why the reconciler reads every command of the chain."""
    b, a, target = claim(TS - 90, executed=True), claim(TS - 40, executed=True), claim()
    log = reading(PAST, remote(TS - 20), remote(TS - 65))
    assert [c.ts for c in component(target, [b, a, target], W)] == [TS - 90, TS - 40, TS]
    assert decide(target, [b, a, target], log) == Decision(Verdict.NOT_EXECUTED, "window-passed")
    assert decide(target, [a, target], log).verdict is Verdict.EXECUTED  # wrong, for want of b


def test_other_ops_and_far_away_commands_do_not_count() -> None:
    locked = claim(TS - 1, executed=True, op=LOCK)
    far = claim(TS - 10 * W, executed=True)
    target = claim()
    log = reading(PAST, remote(TS - 1, LOCK), remote(TS - 10 * W + 1))
    assert component(target, [locked, far, target], W) == [target]
    assert decide(target, [locked, far, target], log).verdict is Verdict.NOT_EXECUTED


def test_an_ok_command_without_its_entry_is_inconsistent() -> None:
    done = claim(TS - 5, executed=True)
    target = claim()
    assert decide(target, [done, target], reading(PAST)).why == "inconsistent"


# --------------------------------------------------------------- how far the log was read


def test_a_log_not_read_back_past_the_window_decides_nothing() -> None:
    target = claim()
    short = reading(PAST, remote(TS + 100), complete=False)
    assert decide(target, [target], short) == Decision(Verdict.UNDECIDED, "log-incomplete")
    # the window of interest starts at the oldest command of the chain, minus W
    early = claim(TS - 50)
    stops_too_soon = LockReading(PAST, W, 10, 500, (LogRecord(TS - 31, 0x23, 0, 2),))
    assert decide(target, [target], stops_too_soon).verdict is Verdict.NOT_EXECUTED
    assert decide(target, [early, target], stops_too_soon).why == "log-incomplete"


def test_the_whole_log_read_is_complete_unless_it_wrapped() -> None:
    target = claim()
    whole = LockReading(PAST, W, 1, 500, (remote(TS + 2),))
    assert decide(target, [target], whole).verdict is Verdict.EXECUTED
    empty = LockReading(PAST, W, 0, 500, ())
    assert decide(target, [target], empty).verdict is Verdict.NOT_EXECUTED
    wrapped = LockReading(PAST, W, 2, 2, (remote(TS + 40), remote(TS + 35)))
    assert decide(target, [target], wrapped).why == "log-incomplete"


def test_a_clock_jump_in_the_log_stops_the_early_end() -> None:
    """A battery swap reset the clock to 2024; a TIME_SET put it right. Entries between
    carry 2024 times: they must not end the reading before the command's own entry."""
    target = claim()
    reset_era = LogRecord(1_704_067_300, int(LogCode.DOOR), 1, int(LogSource.LOCK))
    swap = LogRecord(1_704_067_200, int(LogCode.BATTERY_REPLACED), 0, int(LogSource.LOCK))
    time_set = LogRecord(TS + 200, int(LogCode.TIME_SET), 0, int(LogSource.REMOTE))
    entries = (time_set, reset_era, swap, remote(TS + 3))
    assert not scan_complete(entries[:2], 10, 500, TS - W)
    assert not scan_complete(entries, 10, 500, TS - W)  # still no trusted end
    assert scan_complete((*entries, OLD), 10, 500, TS - W) is False  # OLD after a jump
    whole = LockReading(TS + 300, W, 4, 500, entries)
    assert decide(target, [target], whole).verdict is Verdict.EXECUTED
    partial = LockReading(TS + 300, W, 9, 500, entries)
    assert decide(target, [target], partial).why == "log-incomplete"
    # without the jump the old entry ends the reading at once
    assert scan_complete((remote(TS + 3), OLD), 10, 500, TS - W)
    # a clock-moving entry is itself no end
    assert not scan_complete((replace(OLD, code=int(LogCode.TIME_SET)),), 10, 500, TS - W)


def test_log_floor_covers_every_target_and_its_chain() -> None:
    a, b = claim(TS - 40, executed=True), claim(TS)
    c = claim(TS + 1000)
    assert log_floor([b], [a, b], W) == TS - 40 - W
    assert log_floor([b, c], [a, b, c], W) == TS - 40 - W
    assert log_floor([c], [a, b, c], W) == TS + 1000 - W


# --------------------------------------------------------------- scheduling and state rules


def test_retry_delay() -> None:
    assert retry_delay(Decision(Verdict.UNDECIDED, "window-open", 6.0), 1) == 6.0
    assert retry_delay(Decision(Verdict.UNDECIDED, "window-open", 0.0), 1) == 1.0
    assert retry_delay(Decision(Verdict.UNDECIDED, "window-open", 1e9), 1) == RETRY_MAX_S
    undecided = Decision(Verdict.UNDECIDED, "ambiguous")
    assert [retry_delay(undecided, n) for n in (1, 2, 3)] == [
        RETRY_MIN_S,
        2 * RETRY_MIN_S,
        4 * RETRY_MIN_S,
    ]
    assert retry_delay(undecided, 10_000) == RETRY_MAX_S


@pytest.mark.parametrize(
    ("current", "new", "replaces"),
    [
        (CommandState.PENDING, CommandState.OK, True),
        (CommandState.PENDING, CommandState.UNKNOWN, True),
        (CommandState.UNKNOWN, CommandState.FAILED, True),
        (CommandState.UNKNOWN, CommandState.UNKNOWN, True),
        (CommandState.FAILED, CommandState.OK, True),  # the lock's answer beats a deduction
        (CommandState.FAILED, CommandState.REFUSED, True),
        (CommandState.FAILED, CommandState.UNKNOWN, False),
        (CommandState.FAILED, CommandState.FAILED, False),
        (CommandState.OK, CommandState.UNKNOWN, False),  # a retry never undoes a settlement
        (CommandState.OK, CommandState.FAILED, False),
        (CommandState.OK, CommandState.OK, False),  # the first answer stands
        (CommandState.REFUSED, CommandState.OK, False),
    ],
)
def test_which_outcome_may_replace_which(
    current: CommandState, new: CommandState, replaces: bool
) -> None:
    assert may_replace(current, new) is replaces
