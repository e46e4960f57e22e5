"""SimulatedLock driven by frames the RAS side of the protocol core builds (issue 3)."""

from __future__ import annotations

import secrets

import pytest

from heslock.bsld import LockClock, LockConfig, LogCode, PhysicalError, SimulatedLock
from heslock.protocol import (
    AcceptorState,
    BoltState,
    Cmd,
    ConfigOp,
    ConfigType,
    Direction,
    DoorState,
    EventType,
    FrameAcceptor,
    FrameCodec,
    LockRefused,
    OperationOp,
    OperationType,
    Profile,
    QueryOp,
    QueryType,
    RasKeyNegotiation,
    ReasonCode,
    StatusFlag,
    TimeOp,
    TimeType,
    decode_body,
)
from heslock.protocol.messages import read_u16, read_u32, u16, u32
from tests.unit.bsld.ras import T0, Ras, make_identity

BOLT = OperationType.BOLT


class Events:
    """Collects the sealed EVENT frames a lock delivers."""

    def __init__(self, lock: SimulatedLock) -> None:
        self.frames: list[bytes] = []
        lock.add_event_listener(self.frames.append)

    def decoded(self, ras: Ras) -> list[tuple[EventType, int, int]]:
        out = []
        for wire in self.frames:
            frame, body = ras.open(wire)
            out.append((EventType(frame.type), body.op, body.seq))
        return out


def bound_lock(
    profile: Profile = Profile.SECURE, config: LockConfig | None = None
) -> tuple[SimulatedLock, Ras]:
    lock = SimulatedLock(make_identity(profile), config)
    lock.press_registration_button(T0)
    ras = Ras(lock)
    ras.negotiate(T0)
    return lock, ras


def unlock(ras: Ras, ts: float) -> bytes:
    return ras.command(Cmd.OPERATION, BOLT, OperationOp.UNLOCK, ts)


@pytest.mark.parametrize("profile", list(Profile))
def test_registration_binds_and_retires_the_factory_key(profile: Profile) -> None:
    lock = SimulatedLock(make_identity(profile))
    assert not lock.status(T0).bound
    lock.press_registration_button(T0)
    assert lock.status(T0).registration_open
    ras = Ras(lock)
    ras.negotiate(T0 + 1)
    status = lock.status(T0 + 1)
    assert status.bound
    assert status.key_version == 1
    assert not status.registration_open
    assert lock.log.newest(0).code is LogCode.BOUND
    # the factory key is refused from now on, even inside what was the window
    factory = ras.command(
        Cmd.OPERATION, BOLT, OperationOp.UNLOCK, T0 + 2, key=lock.identity.factory_key
    )
    assert ras.reason(lock.handle_frame(factory, T0 + 2)) is ReasonCode.WRONG_KEY
    # and the new key works
    assert ras.status(lock.handle_frame(unlock(ras, T0 + 3), T0 + 3)).bolt is BoltState.UNLOCKED


@pytest.mark.parametrize("profile", list(Profile))
def test_unlock_answers_with_status_and_raises_an_event(profile: Profile) -> None:
    lock, ras = bound_lock(profile)
    events = Events(lock)
    answer = lock.handle_frame(unlock(ras, T0 + 5), T0 + 5)
    status = ras.status(answer)
    assert status.bolt is BoltState.UNLOCKED
    assert status.has(StatusFlag.BOUND)
    frame, body = ras.open(answer)
    assert frame.cmd == Cmd.OPERATION | 0x80
    assert body.seq == ras.seq
    assert lock.status(T0 + 5).bolt is BoltState.UNLOCKED
    assert events.decoded(ras) == [(EventType.REMOTE_OPERATION, OperationOp.UNLOCK, 1)]
    # The RAS-side acceptor (FROM_LOCK) accepts the event, with its counter.
    rx = FrameAcceptor.for_key(ras.key, profile, direction=Direction.FROM_LOCK)  # type: ignore[arg-type]
    assert rx.accept(events.frames[0], int(T0 + 5)).__class__.__name__ == "Accepted"


def test_retried_frame_gets_the_first_answer_and_actuates_once() -> None:
    lock, ras = bound_lock()
    events = Events(lock)
    wire = unlock(ras, T0 + 5)
    first = lock.handle_frame(wire, T0 + 5)
    lock.turn_knob(BoltState.LOCKED, T0 + 6)  # a person locks it by hand in between
    again = lock.handle_frame(wire, T0 + 7)
    assert again == first
    assert lock.status(T0 + 7).bolt is BoltState.LOCKED  # the retry did not unlock again
    kinds = [kind for kind, _, _ in events.decoded(ras)]
    assert kinds == [EventType.REMOTE_OPERATION, EventType.MANUAL_OPERATION]
    remote = [e for e in lock.log if e.code is LogCode.REMOTE_OPERATION]
    assert len(remote) == 1


def test_replay_after_the_retry_period_is_refused() -> None:
    lock, ras = bound_lock(config=LockConfig(retry_s=5))
    wire = unlock(ras, T0 + 5)
    lock.handle_frame(wire, T0 + 5)
    lock.turn_knob(BoltState.LOCKED, T0 + 6)
    assert ras.reason(lock.handle_frame(wire, T0 + 12)) is ReasonCode.REPLAY
    assert lock.status(T0 + 12).bolt is BoltState.LOCKED
    assert lock.log.newest(0).code is LogCode.REFUSED
    assert lock.log.newest(0).detail == ReasonCode.REPLAY


def test_wrong_key_is_refused_and_old_keys_are_named() -> None:
    lock, ras = bound_lock()
    stranger = ras.command(
        Cmd.OPERATION, BOLT, OperationOp.UNLOCK, T0 + 5, key=secrets.token_bytes(16)
    )
    # an unknown key is garbage to the lock; in the secure profile the tag fails first
    assert ras.reason(lock.handle_frame(stranger, T0 + 5)) is ReasonCode.BAD_TAG
    old_key = ras.key
    ras.negotiate(T0 + 6)  # rotation
    assert lock.status(T0 + 6).key_version == 2
    assert lock.log.newest(0).code is LogCode.KEY_ROTATED
    old = ras.command(Cmd.OPERATION, BOLT, OperationOp.UNLOCK, T0 + 7, key=old_key)
    assert ras.reason(lock.handle_frame(old, T0 + 7)) is ReasonCode.WRONG_KEY
    assert lock.status(T0 + 7).bolt is BoltState.LOCKED


def test_stale_timestamp_is_refused() -> None:
    lock, ras = bound_lock()
    late = unlock(ras, T0 - 100)
    assert ras.reason(lock.handle_frame(late, T0 + 1)) is ReasonCode.STALE
    early = unlock(ras, T0 + 100)
    assert ras.reason(lock.handle_frame(early, T0 + 1)) is ReasonCode.STALE
    assert lock.status(T0 + 1).bolt is BoltState.LOCKED


def test_counter_regression_is_refused_in_the_secure_profile() -> None:
    lock, ras = bound_lock(Profile.SECURE)
    ras.seq = 100
    ok = unlock(ras, T0 + 2)
    assert ras.status(lock.handle_frame(ok, T0 + 2)).bolt is BoltState.UNLOCKED
    # a counter far below the highest accepted (outside the reordering window)
    behind = ras.command(Cmd.OPERATION, BOLT, OperationOp.LOCK, T0 + 3, seq=50)
    assert ras.reason(lock.handle_frame(behind, T0 + 3)) is ReasonCode.COUNTER
    # the same counter again, in a new frame
    same = ras.command(Cmd.OPERATION, BOLT, OperationOp.LOCK, T0 + 4, seq=101)
    assert ras.reason(lock.handle_frame(same, T0 + 4)) is ReasonCode.COUNTER
    assert lock.status(T0 + 4).bolt is BoltState.UNLOCKED


def test_lockout_after_garbage_and_recovery_after_back_off() -> None:
    lock, ras = bound_lock(config=LockConfig(wrong_attempt_limit=5, lockout_s=60))
    events = Events(lock)
    for i in range(4):
        answer = lock.handle_frame(secrets.token_bytes(20), T0 + 1 + i)
        assert ras.reason(answer) is ReasonCode.BAD_TAG
    assert not lock.status(T0 + 5).locked_out
    lock.handle_frame(b"\x00" * 3, T0 + 5)  # the fifth: wrong length
    assert lock.status(T0 + 5).locked_out
    assert events.decoded(ras) == [(EventType.WRONG_ATTEMPTS, 5, 1)]
    # a valid frame is refused during the back-off ...
    assert ras.reason(lock.handle_frame(unlock(ras, T0 + 30), T0 + 30)) is ReasonCode.LOCKED_OUT
    assert lock.next_deadline(T0 + 30) == pytest.approx(T0 + 65)
    # ... and accepted after it
    lock.tick(T0 + 65)
    assert not lock.status(T0 + 65).locked_out
    assert lock.log.newest(0).code is LogCode.LOCKOUT_ENDED
    assert ras.status(lock.handle_frame(unlock(ras, T0 + 66), T0 + 66)).bolt is BoltState.UNLOCKED


def test_an_accepted_frame_resets_the_wrong_attempt_count() -> None:
    lock, ras = bound_lock(config=LockConfig(wrong_attempt_limit=3))
    for i in range(2):
        lock.handle_frame(b"junk", T0 + i)
    lock.handle_frame(unlock(ras, T0 + 3), T0 + 3)
    for i in range(2):
        lock.handle_frame(b"junk", T0 + 4 + i)
    assert not lock.status(T0 + 6).locked_out


def test_factory_reset_unbinds_and_needs_a_registration_window() -> None:
    lock, ras = bound_lock(config=LockConfig(registration_window_s=300))
    events = Events(lock)
    old_key = ras.key
    lock.factory_reset(T0 + 10)
    assert not lock.status(T0 + 10).bound
    # the reset was announced under the key in force before it
    assert events.decoded(ras) == [(EventType.FACTORY_RESET, 1, 1)]
    assert lock.log.newest(0).code is LogCode.FACTORY_RESET
    # the wiped key is garbage now; answers are sealed under the factory key
    answer = lock.handle_frame(unlock(ras, T0 + 11), T0 + 11)
    assert ras.reason(answer, key=lock.identity.factory_key) is ReasonCode.BAD_TAG
    # the factory key works again only inside a registration window
    ras.key, ras.version = None, 0
    with pytest.raises(LockRefused) as refused:
        ras.negotiate(T0 + 12)
    assert refused.value.reason is ReasonCode.REGISTRATION_CLOSED
    lock.press_registration_button(T0 + 20)
    assert lock.next_deadline(T0 + 20) == pytest.approx(T0 + 320)
    lock.tick(T0 + 320)
    assert not lock.status(T0 + 320).registration_open
    with pytest.raises(LockRefused):
        ras.negotiate(T0 + 321)
    lock.press_registration_button(T0 + 400)
    ras.negotiate(T0 + 401)
    assert lock.status(T0 + 401).bound
    assert ras.key != old_key


def test_operations_while_unbound_are_not_bound() -> None:
    lock = SimulatedLock(make_identity())
    ras = Ras(lock)
    wire = ras.command(Cmd.OPERATION, BOLT, OperationOp.UNLOCK, T0, key=lock.identity.factory_key)
    assert ras.reason(lock.handle_frame(wire, T0), key=lock.identity.factory_key) is (
        ReasonCode.NOT_BOUND
    )
    assert lock.status(T0).bolt is BoltState.LOCKED


def test_events_of_an_unbound_lock_stay_in_the_log() -> None:
    lock = SimulatedLock(make_identity())
    seen: list[bytes] = []
    lock.add_event_listener(seen.append)
    lock.turn_knob(BoltState.UNLOCKED, T0)
    assert seen == []
    assert lock.log.newest(0).code is LogCode.MANUAL_OPERATION


def test_negotiation_expires_and_rolls_back() -> None:
    lock = SimulatedLock(make_identity())
    lock.press_registration_button(T0)
    neg = RasKeyNegotiation.start(
        lock.identity.device_id, lock.profile, lock.identity.factory_key, 1, int(T0)
    )
    for wire in neg.stage_a_frames(int(T0)):
        neg.receive(lock.handle_frame(wire, T0), int(T0))
    deadline = lock.next_deadline(T0)
    assert deadline == pytest.approx(T0 + 120)
    lock.tick(T0 + 121)
    assert lock.log.newest(0).code is LogCode.NEGOTIATION_EXPIRED
    commit = neg.commit_frame(int(T0 + 1))  # still inside the RAS's own timeout
    answer = lock.handle_frame(commit, T0 + 122)
    factory = FrameCodec(lock.identity.factory_key, lock.profile)
    assert ReasonCode(factory.open(answer).type) is ReasonCode.BAD_TAG
    assert not lock.status(T0 + 122).bound


def test_auto_relock_waits_for_the_delay_and_a_closed_door() -> None:
    lock, ras = bound_lock()
    events = Events(lock)
    set_relock = ras.command(Cmd.CONFIG, ConfigType.AUTO_RELOCK, ConfigOp.SET, T0 + 1, u16(5))
    frame, body = ras.open(lock.handle_frame(set_relock, T0 + 1))
    assert frame.group == Cmd.CONFIG
    assert read_u16(body.args) == 5
    lock.handle_frame(unlock(ras, T0 + 2), T0 + 2)
    assert lock.next_deadline(T0 + 2) == pytest.approx(T0 + 7)
    lock.tick(T0 + 6)
    assert lock.status(T0 + 6).bolt is BoltState.UNLOCKED
    lock.tick(T0 + 7)
    assert lock.status(T0 + 7).bolt is BoltState.LOCKED
    assert events.decoded(ras)[-1] == (EventType.AUTO_RELOCK, BoltState.LOCKED, 2)
    # with the door open, the relock waits until it closes
    lock.turn_knob(BoltState.UNLOCKED, T0 + 10)
    lock.open_door(T0 + 11)
    lock.tick(T0 + 20)
    assert lock.status(T0 + 20).bolt is BoltState.UNLOCKED
    lock.close_door(T0 + 30)
    lock.tick(T0 + 35)
    assert lock.status(T0 + 35).bolt is BoltState.LOCKED
    assert lock.next_deadline(T0 + 35) is None


def test_passage_mode_keeps_the_bolt_retracted() -> None:
    lock, ras = bound_lock(config=LockConfig(auto_relock_s=5))
    on = ras.command(Cmd.CONFIG, ConfigType.PASSAGE_MODE, ConfigOp.SET, T0 + 1, b"\x01")
    assert ras.open(lock.handle_frame(on, T0 + 1))[1].args[0] == 1
    status = lock.status(T0 + 1)
    assert status.passage_mode
    assert status.bolt is BoltState.UNLOCKED
    lock_cmd = ras.command(Cmd.OPERATION, BOLT, OperationOp.LOCK, T0 + 2)
    assert ras.reason(lock.handle_frame(lock_cmd, T0 + 2)) is ReasonCode.PASSAGE_MODE
    lock.tick(T0 + 100)
    assert lock.status(T0 + 100).bolt is BoltState.UNLOCKED
    off = ras.command(Cmd.CONFIG, ConfigType.PASSAGE_MODE, ConfigOp.SET, T0 + 101, b"\x00")
    lock.handle_frame(off, T0 + 101)
    lock.tick(T0 + 106)
    assert lock.status(T0 + 106).bolt is BoltState.LOCKED


def test_jam_refuses_actuation_until_cleared() -> None:
    lock, ras = bound_lock()
    events = Events(lock)
    lock.jam(T0 + 1)
    assert lock.status(T0 + 1).bolt is BoltState.JAMMED
    assert events.decoded(ras) == [(EventType.JAM, OperationOp.UNLOCK, 1)]
    assert ras.reason(lock.handle_frame(unlock(ras, T0 + 2), T0 + 2)) is ReasonCode.JAMMED
    with pytest.raises(PhysicalError):
        lock.turn_knob(BoltState.UNLOCKED, T0 + 3)
    lock.clear_jam(T0 + 4, to=BoltState.LOCKED)
    assert ras.status(lock.handle_frame(unlock(ras, T0 + 5), T0 + 5)).bolt is BoltState.UNLOCKED


def test_low_battery_warns_once_and_stops_the_motor() -> None:
    lock, ras = bound_lock(config=LockConfig(low_battery_percent=20, min_actuation_percent=5))
    events = Events(lock)
    lock.set_battery(15, T0 + 1)
    lock.set_battery(12, T0 + 2)
    assert events.decoded(ras) == [(EventType.LOW_BATTERY, 15, 1)]
    assert ras.status(lock.handle_frame(unlock(ras, T0 + 3), T0 + 3)).has(StatusFlag.LOW_BATTERY)
    lock.set_battery(3, T0 + 4)
    lock_cmd = ras.command(Cmd.OPERATION, BOLT, OperationOp.LOCK, T0 + 5)
    assert ras.reason(lock.handle_frame(lock_cmd, T0 + 5)) is ReasonCode.LOW_BATTERY
    query = ras.command(Cmd.QUERY, QueryType.BATTERY, QueryOp.READ, T0 + 6)
    args = ras.open(lock.handle_frame(query, T0 + 6))[1].args
    assert args[0] == 3
    assert 4400 <= read_u16(args[1:3]) < 4500


def test_door_events_and_physical_limits() -> None:
    lock, ras = bound_lock()
    events = Events(lock)
    with pytest.raises(PhysicalError):
        lock.open_door(T0 + 1)  # the bolt is thrown
    lock.turn_knob(BoltState.UNLOCKED, T0 + 2)
    lock.open_door(T0 + 3)
    lock.open_door(T0 + 4)  # already open: nothing happens
    lock.tamper(T0 + 5)
    kinds = [(k, d) for k, d, _ in events.decoded(ras)]
    assert kinds == [
        (EventType.MANUAL_OPERATION, BoltState.UNLOCKED),
        (EventType.DOOR, DoorState.OPEN),
        (EventType.TAMPER, 1),
    ]
    assert [seq for _, _, seq in events.decoded(ras)] == [1, 2, 3]
    assert lock.status(T0 + 5).tampered


def test_log_ring_buffer_wraps_and_is_readable_by_frames() -> None:
    lock, ras = bound_lock()
    assert lock.log.capacity == 500
    for i in range(300):
        lock.turn_knob(BoltState.UNLOCKED, T0 + 1 + i)
        lock.turn_knob(BoltState.LOCKED, T0 + 1 + i)
    assert len(lock.log) == 500
    now = T0 + 400
    count = ras.command(Cmd.QUERY, QueryType.LOG_COUNT, QueryOp.READ, now)
    args = ras.open(lock.handle_frame(count, now))[1].args
    assert (read_u16(args[0:2]), read_u16(args[2:4])) == (500, 500)
    newest = ras.command(Cmd.QUERY, QueryType.LOG_ENTRY, QueryOp.READ, now, u16(0))
    args = ras.open(lock.handle_frame(newest, now))[1].args
    assert tuple(args) == (LogCode.MANUAL_OPERATION, BoltState.LOCKED, 1, 0)
    oldest = ras.command(Cmd.QUERY, QueryType.LOG_TIME, QueryOp.READ, now, u16(499))
    # 600 knob entries: the oldest kept is number 100 (0-based), i.e. turn 50, at T0 + 51
    assert read_u32(ras.open(lock.handle_frame(oldest, now))[1].args) == int(T0 + 51)
    beyond = ras.command(Cmd.QUERY, QueryType.LOG_ENTRY, QueryOp.READ, now, u16(500))
    assert ras.reason(lock.handle_frame(beyond, now)) is ReasonCode.BAD_VALUE


def test_clock_drift_is_corrected_by_time_set() -> None:
    # 1000 ppm fast: after a day the lock is 86.4 s ahead, outside the 30 s window
    clock = LockClock(drift_ppm=1000.0, anchor=T0)
    lock = SimulatedLock(make_identity(), clock=clock)
    lock.press_registration_button(T0)
    ras = Ras(lock)
    ras.negotiate(T0)
    day = T0 + 86_400
    assert lock.status(day).lock_time == int(T0 + 86_400 * 1.001)
    assert ras.reason(lock.handle_frame(unlock(ras, day), day)) is ReasonCode.STALE
    # A SET without the challenge of a fresh GET is refused, inside the window or not.
    blind = ras.command(Cmd.TIME, TimeType.CLOCK, TimeOp.SET, day, u32(int(day)))
    assert ras.reason(lock.handle_frame(blind, day)) is ReasonCode.STALE
    # GET is read-only and answered whatever its timestamp; its clock is the challenge.
    get = ras.command(Cmd.TIME, TimeType.CLOCK, TimeOp.GET, day)
    reported = read_u32(ras.open(lock.handle_frame(get, day))[1].args)
    assert reported == int(T0 + 86_400 * 1.001)
    time_set = ras.command(Cmd.TIME, TimeType.CLOCK, TimeOp.SET, day, u32(reported))
    frame, body = ras.open(lock.handle_frame(time_set, day))
    assert read_u32(body.args) == int(day)
    assert frame.timestamp == int(day)
    assert lock.log.newest(0).code is LogCode.TIME_SET
    assert ras.status(lock.handle_frame(unlock(ras, day + 1), day + 1)).bolt is BoltState.UNLOCKED
    get = ras.command(Cmd.TIME, TimeType.CLOCK, TimeOp.GET, day + 2)
    assert read_u32(ras.open(lock.handle_frame(get, day + 2))[1].args) == int(day + 2)


def test_battery_swap_resets_the_clock() -> None:
    lock, ras = bound_lock()
    lock.replace_battery(T0 + 10)
    assert lock.status(T0 + 10).lock_time < T0 - 86_400
    assert ras.reason(lock.handle_frame(unlock(ras, T0 + 11), T0 + 11)) is ReasonCode.STALE
    get = ras.command(Cmd.TIME, TimeType.CLOCK, TimeOp.GET, T0 + 12)
    reported = read_u32(ras.open(lock.handle_frame(get, T0 + 12))[1].args)
    time_set = ras.command(Cmd.TIME, TimeType.CLOCK, TimeOp.SET, T0 + 12, u32(reported))
    assert ras.reason(lock.handle_frame(time_set, T0 + 12)) is None
    assert ras.status(lock.handle_frame(unlock(ras, T0 + 13), T0 + 13)).bolt is BoltState.UNLOCKED


@pytest.mark.parametrize(
    ("kind", "args"),
    [
        (ConfigType.TIMESTAMP_WINDOW, u16(4)),
        (ConfigType.TIMESTAMP_WINDOW, u16(301)),
        (ConfigType.AUTO_RELOCK, u16(3601)),
        (ConfigType.AUTO_RELOCK, u16(5) + b"\x00\x01"),
        (ConfigType.SOUND, b"\x03"),
        (ConfigType.PASSAGE_MODE, b"\x02"),
        (ConfigType.SOUND, b"\x01\x00\x00\x01"),
    ],
)
def test_config_out_of_range_is_bad_value(kind: ConfigType, args: bytes) -> None:
    lock, ras = bound_lock()
    before = lock.config.timestamp_window_s, lock.config.auto_relock_s, lock.config.sound
    wire = ras.command(Cmd.CONFIG, kind, ConfigOp.SET, T0 + 1, args)
    assert ras.reason(lock.handle_frame(wire, T0 + 1)) is ReasonCode.BAD_VALUE
    after = lock.config.timestamp_window_s, lock.config.auto_relock_s, lock.config.sound
    assert after == before
    assert not lock.config.passage_mode


def test_config_set_and_get_round_trip() -> None:
    lock, ras = bound_lock()
    wire = ras.command(Cmd.CONFIG, ConfigType.TIMESTAMP_WINDOW, ConfigOp.SET, T0 + 1, u16(120))
    assert read_u16(ras.open(lock.handle_frame(wire, T0 + 1))[1].args) == 120
    get = ras.command(Cmd.CONFIG, ConfigType.TIMESTAMP_WINDOW, ConfigOp.GET, T0 + 2)
    assert read_u16(ras.open(lock.handle_frame(get, T0 + 2))[1].args) == 120
    # the wider window is in force: 100 s late is accepted now
    late = ras.command(Cmd.OPERATION, BOLT, OperationOp.STATUS, T0 - 97)
    assert ras.reason(lock.handle_frame(late, T0 + 3)) is None
    sound = ras.command(Cmd.CONFIG, ConfigType.SOUND, ConfigOp.SET, T0 + 4, b"\x02")
    assert ras.open(lock.handle_frame(sound, T0 + 4))[1].args[0] == 2


def test_firmware_query_and_nonzero_args() -> None:
    lock, ras = bound_lock()
    fw = ras.command(Cmd.QUERY, QueryType.FIRMWARE, QueryOp.READ, T0 + 1)
    assert tuple(ras.open(lock.handle_frame(fw, T0 + 1))[1].args) == (1, 2, 3, 4)
    bad = ras.command(Cmd.OPERATION, BOLT, OperationOp.UNLOCK, T0 + 2, b"\x00\x00\x00\x01")
    assert ras.reason(lock.handle_frame(bad, T0 + 2)) is ReasonCode.BAD_VALUE
    assert lock.status(T0 + 2).bolt is BoltState.LOCKED


def test_base_profile_event_sequence_wraps() -> None:
    lock, ras = bound_lock(Profile.BASE)
    events = Events(lock)
    lock._event_counter = 0xFFFE  # as if 65,534 events had been raised under this key
    for i in range(3):
        lock.turn_knob(BoltState.UNLOCKED if i % 2 == 0 else BoltState.LOCKED, T0 + 1 + i)
    assert [seq for _, _, seq in events.decoded(ras)] == [0xFFFF, 1, 2]


def test_a_failing_listener_does_not_stop_the_lock() -> None:
    lock, ras = bound_lock()

    def broken(wire: bytes) -> None:
        raise RuntimeError("listener bug")

    lock.add_event_listener(broken)
    events = Events(lock)
    assert ras.status(lock.handle_frame(unlock(ras, T0 + 1), T0 + 1)).bolt is BoltState.UNLOCKED
    assert len(events.frames) == 1


def test_error_answers_echo_the_request() -> None:
    lock, ras = bound_lock()
    late = unlock(ras, T0 - 100)
    frame, body = ras.open(lock.handle_frame(late, T0))
    assert frame.group == Cmd.ERROR
    assert frame.type == ReasonCode.STALE
    assert body.op == OperationOp.UNLOCK
    assert body.seq == ras.seq
    assert tuple(body.args[:2]) == (Cmd.OPERATION, BOLT)


def test_reflected_answer_is_not_a_command() -> None:
    lock, ras = bound_lock()
    answer = lock.handle_frame(unlock(ras, T0 + 1), T0 + 1)
    assert ras.reason(lock.handle_frame(answer, T0 + 2)) is ReasonCode.UNKNOWN_COMMAND
    frame = ras.codec().open(answer)
    with pytest.raises(Exception, match="wrong direction"):
        decode_body(frame, Direction.TO_LOCK, Profile.SECURE)


def test_persisted_acceptor_state_is_what_the_lock_used() -> None:
    lock, ras = bound_lock()
    lock.handle_frame(unlock(ras, T0 + 3), T0 + 3)
    snap = lock.snapshot()
    assert isinstance(snap.current_acceptor, AcceptorState)
    assert snap.current_acceptor.highest_ts == int(T0 + 3)
    assert snap.current_acceptor.counter_high == ras.seq


def test_a_flood_of_refusals_cannot_push_the_history_out_of_the_log() -> None:
    lock, ras = bound_lock(config=LockConfig(wrong_attempt_limit=255))
    lock.turn_knob(BoltState.UNLOCKED, T0 + 1)
    wire = unlock(ras, T0 + 2)
    lock.handle_frame(wire, T0 + 2)
    for i in range(30):
        lock.handle_frame(wire, T0 + 20 + i)  # replays, not counted as wrong attempts
    refused = [e for e in lock.log if e.code is LogCode.REFUSED]
    assert len(refused) == 10
    assert {e.detail for e in refused} == {ReasonCode.REPLAY}
    deadline = lock.next_deadline(T0 + 50)
    assert deadline is not None
    lock.tick(deadline)
    newest = lock.log.newest(0)
    assert newest.code is LogCode.REFUSALS_SUPPRESSED
    assert newest.detail == 20
    assert any(e.code is LogCode.MANUAL_OPERATION for e in lock.log)


@pytest.mark.parametrize("drift_ppm", [0.0, 37.5, -250.0])
def test_every_deadline_does_its_work_when_ticked(drift_ppm: float) -> None:
    """A caller that sleeps until next_deadline() and ticks never spins on a past deadline."""
    lock = SimulatedLock(
        make_identity(),
        LockConfig(auto_relock_s=7, registration_window_s=333, wrong_attempt_limit=255),
        clock=LockClock(drift_ppm=drift_ppm, anchor=T0 - 12_345.678),
    )
    start = T0 + 0.123456
    lock.press_registration_button(start)
    neg = RasKeyNegotiation.start(
        lock.identity.device_id,
        lock.profile,
        lock.identity.factory_key,
        1,
        lock.status(start).lock_time,
    )
    lock.handle_frame(neg.stage_a_frames(lock.status(start).lock_time)[0], start)
    for i in range(15):
        lock.handle_frame(b"x", start + i * 0.1)
    lock.turn_knob(BoltState.UNLOCKED, start + 2)
    ticks = 0
    deadline = lock.next_deadline(start)
    while deadline is not None:
        lock.tick(deadline)
        following = lock.next_deadline(deadline)
        assert following is None or following > deadline
        deadline = following
        ticks += 1
    assert 1 <= ticks <= 5
    assert lock.status(start + 1000).bolt is BoltState.LOCKED


def test_an_unbound_lock_with_a_reset_clock_is_synced_then_registered() -> None:
    """A lock fresh out of a battery swap refuses every stamped frame as STALE; inside its
    registration window it answers TIME/GET and takes the echoing TIME/SET under the
    factory key, and then registers."""
    lock = SimulatedLock(make_identity())
    lock.replace_battery(T0)
    lock.press_registration_button(T0)
    ras = Ras(lock)
    factory = lock.identity.factory_key
    get = ras.command(Cmd.TIME, TimeType.CLOCK, TimeOp.GET, T0, key=factory)
    reported = read_u32(ras.open(lock.handle_frame(get, T0), key=factory)[1].args)
    assert reported < T0 - 86_400  # the clock restarted far in the past
    time_set = ras.command(Cmd.TIME, TimeType.CLOCK, TimeOp.SET, T0, u32(reported), key=factory)
    assert ras.reason(lock.handle_frame(time_set, T0), key=factory) is None
    assert lock.status(T0).lock_time == T0
    ras.negotiate(T0 + 1)
    assert lock.bound


def test_an_unbound_lock_refuses_time_frames_outside_its_registration_window() -> None:
    lock = SimulatedLock(make_identity())
    ras = Ras(lock)
    factory = lock.identity.factory_key
    get = ras.command(Cmd.TIME, TimeType.CLOCK, TimeOp.GET, T0, key=factory)
    assert ras.reason(lock.handle_frame(get, T0), key=factory) is ReasonCode.NOT_BOUND
