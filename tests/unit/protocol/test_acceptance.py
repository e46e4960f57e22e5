"""FrameAcceptor and CounterWindow: the acceptance rules, one by one, in the order of the
module docstring of heslock.protocol.acceptance (docs/protocol.md, "Acceptance")."""

from __future__ import annotations

from dataclasses import replace

import pytest

from heslock.protocol import (
    Accepted,
    AcceptorState,
    Cmd,
    ConfigOp,
    ConfigType,
    CounterWindow,
    Direction,
    Duplicate,
    EventType,
    Frame,
    FrameAcceptor,
    FrameCodec,
    KeyAckBody,
    KeyPartBody,
    KeyType,
    OpBody,
    OperationOp,
    OperationType,
    Profile,
    QueryOp,
    QueryType,
    ReasonCode,
    Rejected,
    TimeOp,
    TimeType,
    Verdict,
    decode_body,
)
from heslock.protocol import messages as m
from heslock.protocol.acceptance import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_COUNTER_WINDOW,
    DEFAULT_RETRY_S,
    DEFAULT_WINDOW_S,
    TIME_CHALLENGE_TTL_S,
)

KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
NOW = 1_700_000_000
DEVICE = bytes.fromhex("F01122334455")
PROFILES = list(Profile)


def seal(profile: Profile, frame: Frame) -> bytes:
    return FrameCodec(KEY, profile).seal(frame)


def acceptor(profile: Profile, **kwargs: object) -> FrameAcceptor:
    return FrameAcceptor.for_key(KEY, profile, **kwargs)


def unlock(profile: Profile, seq: int = 1, ts: int = NOW) -> bytes:
    frame = m.command(
        Cmd.OPERATION, OperationType.BOLT, OperationOp.UNLOCK, seq, ts, profile.layout
    )
    return seal(profile, frame)


def accepted(verdict: Verdict) -> Accepted:
    assert isinstance(verdict, Accepted), verdict
    return verdict


def reason(verdict: Verdict) -> ReasonCode:
    assert isinstance(verdict, Rejected), verdict
    return verdict.reason


def accept_and_record(acc: FrameAcceptor, wire: bytes, now: int, answer: bytes = b"ok") -> None:
    acc.record(wire, accepted(acc.accept(wire, now)), answer, now)


def test_defaults() -> None:
    acc = acceptor(Profile.SECURE)
    assert acc.direction is Direction.TO_LOCK
    assert acc.window_s == DEFAULT_WINDOW_S == 30
    assert acc.retry_s == DEFAULT_RETRY_S
    assert acc.cache_size == DEFAULT_CACHE_SIZE
    assert acc.counter_window == DEFAULT_COUNTER_WINDOW
    assert acc.profile is Profile.SECURE
    assert acc.state == AcceptorState()


@pytest.mark.parametrize("profile", PROFILES)
def test_valid_command_accepted(profile: Profile) -> None:
    verdict = accepted(acceptor(profile).accept(unlock(profile, seq=3), NOW))
    assert verdict.frame.group == Cmd.OPERATION
    assert verdict.body == OpBody(OperationOp.UNLOCK, 3, bytes(4))


# ---------------------------------------------------------------- rules 1-3


@pytest.mark.parametrize("profile", PROFILES)
def test_rule1_length(profile: Profile) -> None:
    wire = unlock(profile)
    assert reason(acceptor(profile).accept(wire[:-1], NOW)) is ReasonCode.BAD_LENGTH
    assert reason(acceptor(profile).accept(wire + b"\0", NOW)) is ReasonCode.BAD_LENGTH
    assert reason(acceptor(profile).accept(b"", NOW)) is ReasonCode.BAD_LENGTH


def test_rule2_tag() -> None:
    wire = bytearray(unlock(Profile.SECURE))
    wire[-1] ^= 0x80
    verdict = acceptor(Profile.SECURE).accept(bytes(wire), NOW)
    assert reason(verdict) is ReasonCode.BAD_TAG


def test_rule2_tag_before_check() -> None:
    """A tampered secure frame is refused for its tag, never decrypted to test the check."""
    wire = bytearray(unlock(Profile.SECURE))
    wire[0] ^= 0x01
    assert reason(acceptor(Profile.SECURE).accept(bytes(wire), NOW)) is ReasonCode.BAD_TAG


def test_rule3_check() -> None:
    other = FrameCodec(bytes(16), Profile.BASE).seal(
        m.command(Cmd.OPERATION, 1, 1, 1, NOW, Profile.BASE.layout)
    )
    assert reason(acceptor(Profile.BASE).accept(other, NOW)) is ReasonCode.BAD_CHECK


# ---------------------------------------------------------------- rule 4


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("cmd", "type_", "op"),
    [
        (0x00, 0x01, 0x01),  # no group 0
        (0x07, 0x01, 0x01),  # unassigned group
        (0x7F, 0x01, 0x01),
        (Cmd.OPERATION, 0x02, 0x01),  # unknown type
        (Cmd.OPERATION, 0x01, 0x00),  # unknown op
        (Cmd.OPERATION, 0x01, 0x05),
        (Cmd.TIME, TimeType.CLOCK, 0x03),
        (Cmd.CONFIG, 0x05, ConfigOp.GET),
        (Cmd.CONFIG, ConfigType.SOUND, 0x03),
        (Cmd.QUERY, 0x06, QueryOp.READ),
        (Cmd.QUERY, QueryType.BATTERY, 0x02),
        (Cmd.KEY, KeyType.COMMIT, 0x02),
        (Cmd.KEY, 0x04, 0x01),
        (Cmd.EVENT, EventType.DOOR, 0x01),  # events are lock-originated
        (Cmd.ERROR, ReasonCode.BUSY, 0x00),  # and so are errors
    ],
)
def test_rule4_unknown_command(profile: Profile, cmd: int, type_: int, op: int) -> None:
    wire = seal(profile, m.command(Cmd.OPERATION, 1, 1, 1, NOW, profile.layout))
    frame = Frame(cmd, type_, OpBody(op, 1).pack(profile.layout), NOW)
    assert reason(acceptor(profile).accept(seal(profile, frame), NOW)) is (
        ReasonCode.UNKNOWN_COMMAND
    )
    assert isinstance(acceptor(profile).accept(wire, NOW), Accepted)


@pytest.mark.parametrize("profile", PROFILES)
def test_rule4_wrong_direction(profile: Profile) -> None:
    """A reflected lock answer is never a command, and a command never an answer."""
    request = m.command(Cmd.OPERATION, 1, OperationOp.LOCK, 1, NOW, profile.layout)
    answer = m.response(request, OpBody(OperationOp.LOCK, 1), NOW, profile.layout)
    to_lock = acceptor(profile)
    from_lock = acceptor(profile, direction=Direction.FROM_LOCK)
    assert reason(to_lock.accept(seal(profile, answer), NOW)) is ReasonCode.UNKNOWN_COMMAND
    assert reason(from_lock.accept(seal(profile, request), NOW)) is ReasonCode.UNKNOWN_COMMAND
    assert isinstance(from_lock.accept(seal(profile, answer), NOW), Accepted)
    ack = m.key_ack(KeyType.PART_1, 1, DEVICE, NOW)
    assert reason(to_lock.accept(seal(profile, ack), NOW)) is ReasonCode.UNKNOWN_COMMAND


def test_rule4_reserved_bytes_base() -> None:
    frame = Frame(Cmd.OPERATION, 1, bytes.fromhex("010001000100000000"), NOW)
    verdict = acceptor(Profile.BASE).accept(seal(Profile.BASE, frame), NOW)
    assert reason(verdict) is ReasonCode.BAD_VALUE


def test_rule4_key_layouts() -> None:
    part = m.key_part(KeyType.PART_1, 2, bytes(range(8)), NOW)
    verdict = accepted(acceptor(Profile.SECURE).accept(seal(Profile.SECURE, part), NOW))
    assert verdict.body == KeyPartBody(2, bytes(range(8)))
    zero_version = Frame(Cmd.KEY, KeyType.PART_1, bytes(9), NOW)
    assert reason(acceptor(Profile.SECURE).accept(seal(Profile.SECURE, zero_version), NOW)) is (
        ReasonCode.BAD_VALUE
    )
    ack = m.key_ack(KeyType.PART_2, 2, DEVICE, NOW)
    from_lock = acceptor(Profile.SECURE, direction=Direction.FROM_LOCK)
    assert accepted(from_lock.accept(seal(Profile.SECURE, ack), NOW)).body == KeyAckBody(
        2, DEVICE, 2
    )
    bad_ack = Frame(0x81, KeyType.PART_2, bytes.fromhex("02f01122334455" + "0201"), NOW)
    assert reason(from_lock.accept(seal(Profile.SECURE, bad_ack), NOW)) is ReasonCode.BAD_VALUE


@pytest.mark.parametrize("profile", PROFILES)
def test_rule4_lock_frames(profile: Profile) -> None:
    from_lock = acceptor(profile, direction=Direction.FROM_LOCK)
    for kind in EventType:
        event = m.event(kind, 1, 1, NOW, profile.layout)
        assert isinstance(from_lock.accept(seal(profile, event), NOW), Accepted)
    for code in ReasonCode:
        err = m.error_response(code, NOW, profile.layout)
        assert isinstance(from_lock.accept(seal(profile, err), NOW), Accepted)
    for bad_type in (0x00, 0x0A, 0xFF):
        event = Frame(Cmd.EVENT | 0x80, bad_type, OpBody(1, 1).pack(profile.layout), NOW)
        assert reason(from_lock.accept(seal(profile, event), NOW)) is ReasonCode.UNKNOWN_COMMAND
    for bad_code in (0x00, 0x12, 0x7E):
        err = Frame(Cmd.ERROR | 0x80, bad_code, OpBody(0, 0).pack(profile.layout), NOW)
        assert reason(from_lock.accept(seal(profile, err), NOW)) is ReasonCode.UNKNOWN_COMMAND
    unknown = Frame(0x87, 1, OpBody(1, 1).pack(profile.layout), NOW)
    assert reason(from_lock.accept(seal(profile, unknown), NOW)) is ReasonCode.UNKNOWN_COMMAND


def test_decode_body_direct() -> None:
    frame = m.command(Cmd.TIME, TimeType.CLOCK, TimeOp.GET, 4, NOW, Profile.BASE.layout)
    assert decode_body(frame, Direction.TO_LOCK, Profile.BASE) == OpBody(TimeOp.GET, 4)


# ---------------------------------------------------------------- rule 5


@pytest.mark.parametrize("profile", PROFILES)
def test_rule5_duplicate_within_retry_period_gets_first_answer(profile: Profile) -> None:
    acc = acceptor(profile)
    wire = unlock(profile)
    accept_and_record(acc, wire, NOW, b"first answer")
    for later in (0, 1, DEFAULT_RETRY_S):
        assert acc.accept(wire, NOW + later) == Duplicate(b"first answer")


@pytest.mark.parametrize("profile", PROFILES)
def test_rule5_replay_after_retry_period(profile: Profile) -> None:
    acc = acceptor(profile)
    wire = unlock(profile)
    accept_and_record(acc, wire, NOW)
    assert reason(acc.accept(wire, NOW + DEFAULT_RETRY_S + 1)) is ReasonCode.REPLAY
    # A clock that went backwards does not turn a repeat into a retry either.
    assert reason(acc.accept(wire, NOW - 1)) is ReasonCode.REPLAY


@pytest.mark.parametrize("profile", PROFILES)
def test_rule5_no_recorded_answer_is_replay(profile: Profile) -> None:
    acc = acceptor(profile)
    wire = unlock(profile)
    accept_and_record(acc, wire, NOW, None)  # type: ignore[arg-type]  # record allows None
    assert reason(acc.accept(wire, NOW)) is ReasonCode.REPLAY


@pytest.mark.parametrize("profile", PROFILES)
def test_rule5_before_rule6(profile: Profile) -> None:
    """A retry arriving when its stamp is already outside a short window is still a retry."""
    acc = acceptor(profile, window_s=5, retry_s=10)
    wire = unlock(profile)
    accept_and_record(acc, wire, NOW, b"answer")
    assert acc.accept(wire, NOW + 8) == Duplicate(b"answer")


# ---------------------------------------------------------------- rule 6


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("offset", [-DEFAULT_WINDOW_S - 1, DEFAULT_WINDOW_S + 1, -3600, 3600])
def test_rule6_stale_both_sides(profile: Profile, offset: int) -> None:
    verdict = acceptor(profile).accept(unlock(profile, ts=NOW + offset), NOW)
    assert reason(verdict) is ReasonCode.STALE


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("offset", [-DEFAULT_WINDOW_S, 0, DEFAULT_WINDOW_S])
def test_rule6_window_edges_inclusive(profile: Profile, offset: int) -> None:
    assert isinstance(acceptor(profile).accept(unlock(profile, ts=NOW + offset), NOW), Accepted)


@pytest.mark.parametrize("profile", PROFILES)
def test_rule6_window_is_configurable(profile: Profile) -> None:
    acc = acceptor(profile, window_s=5)
    assert reason(acc.accept(unlock(profile, ts=NOW + 6), NOW)) is ReasonCode.STALE
    assert isinstance(acc.accept(unlock(profile, ts=NOW + 5), NOW), Accepted)


def time_set(profile: Profile, ts: int, seq: int = 1, challenge: int = 0) -> bytes:
    frame = m.command(
        Cmd.TIME, TimeType.CLOCK, TimeOp.SET, seq, ts, profile.layout, m.u32(challenge)
    )
    return seal(profile, frame)


def time_get(profile: Profile, ts: int, seq: int = 1) -> bytes:
    return seal(profile, m.command(Cmd.TIME, TimeType.CLOCK, TimeOp.GET, seq, ts, profile.layout))


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("offset", [-86_400, 0, 86_400])
def test_rule6_time_get_is_accepted_whatever_its_timestamp(profile: Profile, offset: int) -> None:
    """TIME/GET is read-only: a lock whose clock is off by a day must still answer it."""
    assert isinstance(acceptor(profile).accept(time_get(profile, NOW + offset), NOW), Accepted)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("offset", [-86_400, 0, 86_400])
def test_rule6_time_set_echoing_a_fresh_challenge_is_accepted(
    profile: Profile, offset: int
) -> None:
    """A drifted clock is corrected by a TIME/SET that echoes the lock's TIME/GET answer."""
    acc = acceptor(profile)
    lock_clock = NOW - 100_000
    acc.issue_time_challenge(lock_clock, NOW)
    wire = time_set(profile, NOW + offset, seq=2, challenge=lock_clock)
    assert isinstance(acc.accept(wire, NOW + TIME_CHALLENGE_TTL_S), Accepted)


@pytest.mark.parametrize("profile", PROFILES)
def test_rule6_time_set_without_challenge_is_stale_even_inside_the_window(
    profile: Profile,
) -> None:
    acc = acceptor(profile)
    assert reason(acc.accept(time_set(profile, NOW, challenge=0), NOW)) is ReasonCode.STALE


@pytest.mark.parametrize("profile", PROFILES)
def test_rule6_time_set_with_wrong_or_expired_challenge_is_stale(profile: Profile) -> None:
    acc = acceptor(profile)
    acc.issue_time_challenge(1234, NOW)
    assert reason(acc.accept(time_set(profile, NOW, challenge=1235), NOW)) is ReasonCode.STALE
    late = NOW + TIME_CHALLENGE_TTL_S + 1
    assert reason(acc.accept(time_set(profile, late, challenge=1234), late)) is ReasonCode.STALE


@pytest.mark.parametrize("profile", PROFILES)
def test_rule6_time_challenge_is_single_use(profile: Profile) -> None:
    """The held-back-SET attack: a second SET (a relay's stored copy, re-stamped or not)
    cannot reuse the challenge the first one spent."""
    acc = acceptor(profile)
    acc.issue_time_challenge(777, NOW)
    accept_and_record(acc, time_set(profile, NOW, seq=2, challenge=777), NOW)
    second = time_set(profile, NOW + 1, seq=3, challenge=777)
    assert reason(acc.accept(second, NOW + 1)) is ReasonCode.STALE


@pytest.mark.parametrize("profile", PROFILES)
def test_rule6_a_held_back_time_set_is_refused_days_later(profile: Profile) -> None:
    acc = acceptor(profile)
    acc.issue_time_challenge(NOW, NOW)
    held = time_set(profile, NOW, seq=2, challenge=NOW)  # captured, never delivered
    later = NOW + 3 * 86_400
    acc.issue_time_challenge(later, later)  # a new GET in the meantime, or none at all
    assert reason(acc.accept(held, later)) is ReasonCode.STALE


# ---------------------------------------------------------------- rule 7


@pytest.mark.parametrize("profile", PROFILES)
def test_rule7_floor_after_cache_size_eviction(profile: Profile) -> None:
    acc = acceptor(profile, cache_size=2)
    wires = [unlock(profile, seq=i + 1, ts=NOW + i) for i in range(3)]
    for i, wire in enumerate(wires):
        accept_and_record(acc, wire, NOW + i)
    assert acc.state.floor_ts == NOW  # the first frame was dropped: its stamp is the floor
    verdict = acc.accept(wires[0], NOW + 3)
    assert reason(verdict) is ReasonCode.REPLAY
    # Another frame stamped at the floor is refused too, one stamped after it is not.
    assert reason(acc.accept(unlock(profile, seq=50, ts=NOW), NOW + 3)) is ReasonCode.REPLAY
    assert isinstance(acc.accept(unlock(profile, seq=51, ts=NOW + 1), NOW + 3), Accepted)


@pytest.mark.parametrize("profile", PROFILES)
def test_rule7_floor_after_age_eviction(profile: Profile) -> None:
    acc = acceptor(profile)
    first = unlock(profile, seq=1, ts=NOW)
    accept_and_record(acc, first, NOW)
    later = NOW + DEFAULT_WINDOW_S + DEFAULT_RETRY_S + 1
    accept_and_record(acc, unlock(profile, seq=2, ts=later), later)
    assert acc.state.floor_ts == NOW
    # The evicted frame can no longer be recognised as a repeat, yet it stays refused.
    assert reason(acc.accept(first, NOW + 5)) is ReasonCode.REPLAY


@pytest.mark.parametrize("profile", PROFILES)
def test_rule7_floor_survives_restore(profile: Profile) -> None:
    acc = acceptor(profile, cache_size=1)
    first, second = unlock(profile, seq=1, ts=NOW), unlock(profile, seq=2, ts=NOW + 1)
    accept_and_record(acc, first, NOW)
    accept_and_record(acc, second, NOW + 1)
    restored = acceptor(profile, state=replace(acc.state))
    assert reason(restored.accept(first, NOW + 2)) is ReasonCode.REPLAY


def test_rule7_secure_restart_replay_refused_by_floor_and_counter() -> None:
    """After a restart the frame itself is under the raised floor (REPLAY), and the same
    counter re-stamped later is refused by the durable counter window (COUNTER)."""
    acc = acceptor(Profile.SECURE)
    wire = unlock(Profile.SECURE, seq=7)
    accept_and_record(acc, wire, NOW)
    restored = acceptor(Profile.SECURE, state=replace(acc.state))
    assert reason(restored.accept(wire, NOW + 5)) is ReasonCode.REPLAY
    restamped = unlock(Profile.SECURE, seq=7, ts=NOW + 5)
    assert reason(restored.accept(restamped, NOW + 5)) is ReasonCode.COUNTER


def test_rule7_base_restart_replay_refused() -> None:
    """AcceptorState is 'what must survive a restart' so that 'a restarted lock cannot be
    replayed into' (module docstring). In the base profile only the timestamp floor can
    stop a replay of a frame that was still in the (lost) cache."""
    acc = acceptor(Profile.BASE)
    wire = unlock(Profile.BASE, seq=7)
    accept_and_record(acc, wire, NOW)
    restored = acceptor(Profile.BASE, state=replace(acc.state))
    assert reason(restored.accept(wire, NOW + 5)) is ReasonCode.REPLAY


# ---------------------------------------------------------------- rule 8


def test_rule8_counter_regression_outside_window() -> None:
    acc = acceptor(Profile.SECURE)
    accept_and_record(acc, unlock(Profile.SECURE, seq=100), NOW)
    old = unlock(Profile.SECURE, seq=100 - DEFAULT_COUNTER_WINDOW, ts=NOW + 1)
    assert reason(acc.accept(old, NOW + 1)) is ReasonCode.COUNTER
    assert acc.state.counter_high == 100


def test_rule8_reordering_inside_window_accepted_once() -> None:
    acc = acceptor(Profile.SECURE)
    accept_and_record(acc, unlock(Profile.SECURE, seq=10), NOW)
    late = unlock(Profile.SECURE, seq=8, ts=NOW + 1)
    accept_and_record(acc, late, NOW + 1)
    assert acc.state.counter_high == 10
    # The same counter again (in another frame, so the cache cannot catch it) is refused.
    again = unlock(Profile.SECURE, seq=8, ts=NOW + 2)
    assert reason(acc.accept(again, NOW + 2)) is ReasonCode.COUNTER
    same_high = unlock(Profile.SECURE, seq=10, ts=NOW + 2)
    assert reason(acc.accept(same_high, NOW + 2)) is ReasonCode.COUNTER
    assert isinstance(acc.accept(unlock(Profile.SECURE, seq=9, ts=NOW + 2), NOW + 2), Accepted)


def test_rule8_window_edge() -> None:
    acc = acceptor(Profile.SECURE)
    accept_and_record(acc, unlock(Profile.SECURE, seq=100), NOW)
    inside = unlock(Profile.SECURE, seq=100 - DEFAULT_COUNTER_WINDOW + 1, ts=NOW + 1)
    assert isinstance(acc.accept(inside, NOW + 1), Accepted)


def test_rule8_counter_zero_refused() -> None:
    verdict = acceptor(Profile.SECURE).accept(unlock(Profile.SECURE, seq=0), NOW)
    assert reason(verdict) is ReasonCode.COUNTER


def test_rule8_base_profile_has_no_counter_rule() -> None:
    acc = acceptor(Profile.BASE)
    accept_and_record(acc, unlock(Profile.BASE, seq=100), NOW)
    assert isinstance(acc.accept(unlock(Profile.BASE, seq=1, ts=NOW + 1), NOW + 1), Accepted)
    assert isinstance(acc.accept(unlock(Profile.BASE, seq=0, ts=NOW + 1), NOW + 1), Accepted)
    assert acc.state.counter_high == 0


def test_rule8_key_parts_are_not_counted() -> None:
    acc = acceptor(Profile.SECURE)
    accept_and_record(acc, unlock(Profile.SECURE, seq=5), NOW)
    part = seal(Profile.SECURE, m.key_part(KeyType.PART_1, 1, bytes(range(8)), NOW + 1))
    accept_and_record(acc, part, NOW + 1)
    assert acc.state.counter_high == 5


def test_rule8_from_lock_events_counted_responses_not() -> None:
    acc = acceptor(Profile.SECURE, direction=Direction.FROM_LOCK)
    event = seal(Profile.SECURE, m.event(EventType.TAMPER, 1, 9, NOW, Profile.SECURE.layout))
    accept_and_record(acc, event, NOW)
    assert acc.state.counter_high == 9
    old_event = m.event(EventType.TAMPER, 1, 9, NOW + 1, Profile.SECURE.layout)
    assert reason(acc.accept(seal(Profile.SECURE, old_event), NOW + 1)) is ReasonCode.COUNTER
    request = m.command(Cmd.OPERATION, 1, OperationOp.LOCK, 3, NOW, Profile.SECURE.layout)
    answer = m.response(request, OpBody(OperationOp.LOCK, 3), NOW + 1, Profile.SECURE.layout)
    accept_and_record(acc, seal(Profile.SECURE, answer), NOW + 1)
    assert acc.state.counter_high == 9


def test_counter_state_survives_restore() -> None:
    acc = acceptor(Profile.SECURE)
    accept_and_record(acc, unlock(Profile.SECURE, seq=500), NOW)
    restored = acceptor(Profile.SECURE, state=replace(acc.state))
    assert reason(restored.accept(unlock(Profile.SECURE, seq=400, ts=NOW + 1), NOW + 1)) is (
        ReasonCode.COUNTER
    )
    assert isinstance(
        restored.accept(unlock(Profile.SECURE, seq=501, ts=NOW + 1), NOW + 1), Accepted
    )


def test_record_updates_highest_ts() -> None:
    acc = acceptor(Profile.BASE)
    accept_and_record(acc, unlock(Profile.BASE, seq=1, ts=NOW + 10), NOW)
    accept_and_record(acc, unlock(Profile.BASE, seq=2, ts=NOW + 5), NOW)
    assert acc.state.highest_ts == NOW + 10


# ---------------------------------------------------------------- rule order


def test_first_failing_rule_decides() -> None:
    """Wrong direction (4) and stale (6) at once: rule 4 is reported."""
    request = m.command(Cmd.OPERATION, 1, OperationOp.LOCK, 1, NOW, Profile.BASE.layout)
    answer = m.response(request, OpBody(OperationOp.LOCK, 1), NOW - 3600, Profile.BASE.layout)
    verdict = acceptor(Profile.BASE).accept(seal(Profile.BASE, answer), NOW)
    assert reason(verdict) is ReasonCode.UNKNOWN_COMMAND
    # Stale (6) and counter 0 (8): stale is reported.
    stale_zero = unlock(Profile.SECURE, seq=0, ts=NOW - 3600)
    assert reason(acceptor(Profile.SECURE).accept(stale_zero, NOW)) is ReasonCode.STALE


def test_rejection_carries_detail() -> None:
    verdict = acceptor(Profile.BASE).accept(unlock(Profile.BASE, ts=NOW + 99), NOW)
    assert isinstance(verdict, Rejected)
    assert "outside" in verdict.detail


# ---------------------------------------------------------------- CounterWindow


def test_counter_window_basics() -> None:
    state = AcceptorState()
    window = CounterWindow(state, size=4)
    assert not window.allows(0)
    assert window.allows(1)
    window.commit(5)
    assert (state.counter_high, state.counter_bitmap) == (5, 0b1)
    assert not window.allows(5)
    assert window.allows(4)
    assert window.allows(2)
    assert not window.allows(1)  # offset 4 = outside a window of 4
    window.commit(3)
    assert state.counter_bitmap == 0b101
    assert not window.allows(3)
    window.commit(6)
    assert (state.counter_high, state.counter_bitmap) == (6, 0b1011)
    window.commit(100)  # a jump wider than the window clears it
    assert (state.counter_high, state.counter_bitmap) == (100, 0b1)
    assert window.allows(99)


@pytest.mark.parametrize("size", [0, 65, -1])
def test_counter_window_size_limits(size: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.64"):
        CounterWindow(AcceptorState(), size=size)


def test_counter_window_64() -> None:
    state = AcceptorState()
    window = CounterWindow(state, size=64)
    window.commit(1000)
    assert window.allows(1000 - 63)
    assert not window.allows(1000 - 64)
    for counter in range(1000 - 63, 1000):
        window.commit(counter)
    assert state.counter_bitmap == (1 << 64) - 1
    assert not any(window.allows(c) for c in range(1000 - 63, 1001))


@pytest.mark.parametrize("profile", PROFILES)
def test_rule7_cache_size_zero_keeps_only_the_floor(profile: Profile) -> None:
    """With no cache at all (the tightest memory budget) every accepted frame becomes the
    floor at once: repeats are REPLAY (never Duplicate), later frames still pass."""
    acc = acceptor(profile, cache_size=0)
    wire = unlock(profile, seq=1)
    accept_and_record(acc, wire, NOW, b"answer")
    assert acc.state.floor_ts == NOW
    assert reason(acc.accept(wire, NOW)) is ReasonCode.REPLAY
    assert isinstance(acc.accept(unlock(profile, seq=2, ts=NOW + 1), NOW + 1), Accepted)


@pytest.mark.parametrize("profile", PROFILES)
def test_time_frames_never_move_the_replay_horizon(profile: Profile) -> None:
    """A GET stamped a year ahead (a RAS with a wrong clock, or a forgery) must not push
    highest_ts or, through cache eviction, the floor: the lock would refuse every correctly
    stamped frame as REPLAY until that time."""
    acc = acceptor(profile, cache_size=2)
    year = 365 * 86_400
    accept_and_record(acc, time_get(profile, NOW + year, seq=1), NOW)
    assert acc.state.highest_ts < NOW + year
    for i in range(3):  # evict the GET from the cache
        accept_and_record(acc, unlock(profile, seq=2 + i, ts=NOW + i), NOW + i)
    assert acc.state.floor_ts < NOW + year
    assert isinstance(acc.accept(unlock(profile, seq=9, ts=NOW + 5), NOW + 5), Accepted)
