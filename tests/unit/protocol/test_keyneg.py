"""Two-stage key negotiation, both sides (heslock.protocol.keyneg): the documented
transition tables, idempotent retries, expiry, rotation and every refusal."""

from __future__ import annotations

from dataclasses import replace

import pytest

from heslock.protocol import (
    NEGOTIATION_TIMEOUT_S,
    Cmd,
    DeviceId,
    Direction,
    Frame,
    FrameCodec,
    FrameRejected,
    KeyPartBody,
    KeyType,
    LockKeyNegotiation,
    LockKeyState,
    LockPhase,
    LockRefused,
    NegotiationError,
    OpBody,
    Profile,
    RasKeyNegotiation,
    RasPhase,
    ReasonCode,
    decode_body,
    next_version,
)
from heslock.protocol import messages as m
from heslock.protocol.errors import ProtocolError
from heslock.protocol.frame import check_byte

DEVICE = DeviceId.parse("F0:11:22:33:44:55")
OTHER_DEVICE = DeviceId.parse("F0:11:22:33:44:56")
FACTORY = bytes.fromhex("00112233445566778899aabbccddeeff")
NEW = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
NEWER = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")
T0 = 1_700_000_000
PROFILES = list(Profile)


def open_command(wire: bytes, key: bytes, profile: Profile) -> tuple[Frame, object]:
    frame = FrameCodec(key, profile).open(wire)
    return frame, decode_body(frame, Direction.TO_LOCK, profile)


class Lock:
    """The lock's side as a BSLD would drive it: open a frame under the key it is under,
    hand KEY frames to LockKeyNegotiation. Refusals come back as FrameRejected."""

    def __init__(self, profile: Profile, registration_open: bool = True) -> None:
        self.neg = LockKeyNegotiation.unbound(DEVICE, profile, FACTORY)
        self.profile = profile
        self.registration_open = registration_open

    def keys(self) -> list[bytes]:
        st = self.neg.state
        keys = [st.current_key]
        if len(st.pending_key) == 16:
            keys.append(st.pending_key)
        return keys

    def handle(self, wire: bytes, now: int, key: bytes | None = None) -> bytes:
        for candidate in [key] if key is not None else self.keys():
            try:
                frame, body = open_command(wire, candidate, self.profile)
            except FrameRejected:
                continue
            if isinstance(body, KeyPartBody):
                return self.neg.on_part(
                    body,
                    KeyType(frame.type),
                    candidate,
                    now,
                    registration_open=self.registration_open,
                )
            assert isinstance(body, OpBody)
            return self.neg.on_commit(frame, body, candidate, now)
        raise FrameRejected(ReasonCode.WRONG_KEY, "under no key the lock holds")


def phase_of(lock: Lock) -> LockPhase:
    """The lock's phase (a call, so the type checker does not narrow it across steps)."""
    return lock.neg.state.phase


def start(profile: Profile, old: bytes = FACTORY, new: bytes = NEW, version: int = 1,
          now: int = T0) -> RasKeyNegotiation:  # fmt: skip
    return RasKeyNegotiation.start(DEVICE, profile, old, version, now, new_key=new)


def register(profile: Profile, lock: Lock, ras: RasKeyNegotiation, now: int = T0) -> None:
    p1, p2 = ras.stage_a_frames(now)
    assert ras.receive(lock.handle(p1, now), now) is RasPhase.PART1_ACKED
    assert ras.receive(lock.handle(p2, now), now) is RasPhase.PROVEN
    assert ras.receive(lock.handle(ras.commit_frame(now), now), now) is RasPhase.COMMITTED


# ------------------------------------------------------------------- happy paths


@pytest.mark.parametrize("profile", PROFILES)
def test_registration_happy_path(profile: Profile) -> None:
    lock, ras = Lock(profile), start(profile)
    assert ras.phase is RasPhase.STARTED
    assert not lock.neg.state.bound
    p1, p2 = ras.stage_a_frames(T0)
    assert len(p1) == len(p2) == profile.wire_size

    ack1 = lock.handle(p1, T0)
    assert phase_of(lock) is LockPhase.PART1
    # The part-1 ack is under the factory key and names device, version and part.
    ack_frame = FrameCodec(FACTORY, profile).open(ack1)
    assert ack_frame.cmd == Cmd.KEY | 0x80
    assert ack_frame.value == m.key_ack(KeyType.PART_1, 1, bytes(DEVICE), T0).value
    assert ras.receive(ack1, T0) is RasPhase.PART1_ACKED

    proof = lock.handle(p2, T0 + 1)
    assert phase_of(lock) is LockPhase.PENDING
    assert lock.neg.state.pending_key == NEW
    with pytest.raises(FrameRejected):  # the proof is readable only under the new key
        FrameCodec(FACTORY, profile).open(proof)
    assert FrameCodec(NEW, profile).open(proof).type == KeyType.PART_2
    assert ras.receive(proof, T0 + 1) is RasPhase.PROVEN

    commit = ras.commit_frame(T0 + 2)
    answer = lock.handle(commit, T0 + 2)
    state = lock.neg.state
    assert state.bound
    assert (state.lock_key, state.key_version, state.phase) == (NEW, 1, LockPhase.IDLE)
    assert state.current_key == NEW
    assert (state.pending_key, state.pending_version) == (b"", 0)
    assert ras.receive(answer, T0 + 2) is RasPhase.COMMITTED
    assert ras.record.new_key == NEW


@pytest.mark.parametrize("profile", PROFILES)
def test_rotation_under_current_key(profile: Profile) -> None:
    lock = Lock(profile)
    register(profile, lock, start(profile))
    lock.registration_open = False  # rotation does not need the registration window
    rotation = start(profile, old=NEW, new=NEWER, version=next_version(1), now=T0 + 10)
    register(profile, lock, rotation, T0 + 10)
    assert (lock.neg.state.lock_key, lock.neg.state.key_version) == (NEWER, 2)
    # The previous lock key is refused now.
    stale_parts = start(profile, old=NEW, new=NEWER[::-1], version=3, now=T0 + 20)
    p1, _ = stale_parts.stage_a_frames(T0 + 20)
    with pytest.raises(FrameRejected) as info:
        lock.neg.on_part(
            KeyPartBody(3, NEWER[::-1][:8]), KeyType.PART_1, NEW, T0 + 20, registration_open=True
        )
    assert info.value.reason is ReasonCode.WRONG_KEY
    with pytest.raises(FrameRejected) as info:
        lock.handle(p1, T0 + 20)
    assert info.value.reason is ReasonCode.WRONG_KEY


def test_next_version_wraps_and_skips_zero() -> None:
    assert next_version(0) == 1
    assert next_version(1) == 2
    assert next_version(254) == 255
    assert next_version(255) == 1


# ------------------------------------------------------------------- idempotent retries


@pytest.mark.parametrize("profile", PROFILES)
def test_every_step_idempotent(profile: Profile) -> None:
    lock, ras = Lock(profile), start(profile)
    p1, p2 = ras.stage_a_frames(T0)
    # PART_1 twice: same phase, same ack body, and the timer is not restarted.
    ack_a = lock.handle(p1, T0)
    ack_b = lock.handle(p1, T0 + 5)
    assert phase_of(lock) is LockPhase.PART1
    assert lock.neg.state.phase_since == T0
    assert FrameCodec(FACTORY, profile).open(ack_a).value == (
        FrameCodec(FACTORY, profile).open(ack_b).value
    )
    assert ras.receive(ack_a, T0) is RasPhase.PART1_ACKED
    assert ras.receive(ack_b, T0 + 5) is RasPhase.PART1_ACKED
    # PART_2 twice: PENDING both times, both proofs verify.
    proof_a = lock.handle(p2, T0 + 6)
    proof_b = lock.handle(p2, T0 + 7)
    assert phase_of(lock) is LockPhase.PENDING
    assert ras.receive(proof_a, T0 + 7) is RasPhase.PROVEN
    assert ras.receive(proof_b, T0 + 7) is RasPhase.PROVEN
    # Stage a resent as a pair (a lost part-2 ack) after the lock is PENDING: start over, same key.
    assert ras.phase is RasPhase.PROVEN
    lock.handle(p1, T0 + 8)
    assert phase_of(lock) is LockPhase.PART1
    lock.handle(p2, T0 + 8)
    assert lock.neg.state.pending_key == NEW
    # COMMIT twice, and again after success: the same answer.
    commit = ras.commit_frame(T0 + 9)
    first = lock.handle(commit, T0 + 9)
    second = lock.handle(commit, T0 + 10)
    assert ras.receive(first, T0 + 10) is RasPhase.COMMITTED
    assert ras.receive(second, T0 + 10) is RasPhase.COMMITTED
    # The RAS can rebuild the commit after success, even past the deadline.
    late = T0 + NEGOTIATION_TIMEOUT_S + 50
    again = lock.handle(ras.commit_frame(late), late)
    assert ras.receive(again, late) is RasPhase.COMMITTED
    assert lock.neg.state.lock_key == NEW


@pytest.mark.parametrize("profile", PROFILES)
def test_part1_ack_lost_proof_still_advances(profile: Profile) -> None:
    lock, ras = Lock(profile), start(profile)
    p1, p2 = ras.stage_a_frames(T0)
    lock.handle(p1, T0)  # ack lost
    assert ras.receive(lock.handle(p2, T0), T0) is RasPhase.PROVEN


@pytest.mark.parametrize("profile", PROFILES)
def test_restart_with_new_version(profile: Profile) -> None:
    lock = Lock(profile)
    first = start(profile, version=1)
    p1, p2 = first.stage_a_frames(T0)
    lock.handle(p1, T0)
    lock.handle(p2, T0)
    assert phase_of(lock) is LockPhase.PENDING
    second = start(profile, new=NEWER, version=2, now=T0 + 20)
    q1, q2 = second.stage_a_frames(T0 + 20)
    lock.handle(q1, T0 + 20)
    assert (lock.neg.state.phase, lock.neg.state.pending_version) == (LockPhase.PART1, 2)
    assert lock.neg.state.phase_since == T0 + 20
    lock.handle(q2, T0 + 21)
    assert second.receive(lock.handle(q1, T0 + 22), T0 + 22) is RasPhase.PART1_ACKED
    lock.handle(q2, T0 + 22)
    assert lock.neg.state.pending_key == NEWER
    # The first exchange's commit (version 1 under NEW) matches nothing pending now.
    with pytest.raises(FrameRejected) as info:
        lock.neg.on_commit(
            Frame(Cmd.KEY, KeyType.COMMIT, OpBody(1, 1, b"\x01\0\0\0").pack(profile.layout), T0),
            OpBody(1, 1, b"\x01\0\0\0"),
            NEW,
            T0 + 23,
        )
    assert info.value.reason is ReasonCode.KEY_SEQUENCE


@pytest.mark.parametrize("profile", PROFILES)
def test_part1_same_version_new_bytes_starts_over(profile: Profile) -> None:
    lock = Lock(profile)
    lock.neg.on_part(KeyPartBody(1, NEW[:8]), KeyType.PART_1, FACTORY, T0, registration_open=True)
    lock.neg.on_part(
        KeyPartBody(1, NEWER[:8]), KeyType.PART_1, FACTORY, T0 + 3, registration_open=True
    )
    assert (lock.neg.state.pending_key, lock.neg.state.phase_since) == (NEWER[:8], T0 + 3)


# ------------------------------------------------------------------- expiry


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("stop_after", ["part1", "part2"])
def test_lock_side_expiry_rolls_back(profile: Profile, stop_after: str) -> None:
    lock, ras = Lock(profile), start(profile)
    p1, p2 = ras.stage_a_frames(T0)
    lock.handle(p1, T0)
    if stop_after == "part2":
        lock.handle(p2, T0)
    assert not lock.neg.expire(T0 + NEGOTIATION_TIMEOUT_S - 1)
    assert phase_of(lock) is not LockPhase.IDLE
    assert lock.neg.expire(T0 + NEGOTIATION_TIMEOUT_S)
    st = lock.neg.state
    assert (st.phase, st.pending_key, st.pending_version, st.bound) == (
        LockPhase.IDLE,
        b"",
        0,
        False,
    )
    assert not lock.neg.expire(T0 + NEGOTIATION_TIMEOUT_S + 1)  # nothing left to expire


@pytest.mark.parametrize("profile", PROFILES)
def test_lock_expires_before_commit_refuses_it(profile: Profile) -> None:
    lock, ras = Lock(profile), start(profile)
    p1, p2 = ras.stage_a_frames(T0)
    lock.handle(p1, T0)
    ras.receive(lock.handle(p2, T0), T0)
    commit = ras.commit_frame(T0 + NEGOTIATION_TIMEOUT_S - 1)
    # The lock sees it after its own deadline: rolled back, the commit is out of sequence.
    with pytest.raises(FrameRejected) as info:
        lock.handle(commit, T0 + NEGOTIATION_TIMEOUT_S, key=NEW)
    assert info.value.reason is ReasonCode.KEY_SEQUENCE
    assert not lock.neg.state.bound


@pytest.mark.parametrize("profile", PROFILES)
def test_lock_expiry_then_part2_is_out_of_sequence(profile: Profile) -> None:
    lock, ras = Lock(profile), start(profile)
    p1, p2 = ras.stage_a_frames(T0)
    lock.handle(p1, T0)
    with pytest.raises(FrameRejected) as info:
        lock.handle(p2, T0 + NEGOTIATION_TIMEOUT_S)
    assert info.value.reason is ReasonCode.KEY_SEQUENCE


@pytest.mark.parametrize("profile", PROFILES)
def test_ras_side_expiry(profile: Profile) -> None:
    ras = start(profile)
    assert ras.record.expires_at == T0 + NEGOTIATION_TIMEOUT_S
    assert ras.check_expiry(T0 + NEGOTIATION_TIMEOUT_S - 1) is RasPhase.STARTED
    assert ras.check_expiry(T0 + NEGOTIATION_TIMEOUT_S) is RasPhase.EXPIRED
    assert ras.phase.final
    with pytest.raises(NegotiationError, match="expired"):
        ras.stage_a_frames(T0 + NEGOTIATION_TIMEOUT_S)
    with pytest.raises(NegotiationError, match="expired"):
        ras.commit_frame(T0 + NEGOTIATION_TIMEOUT_S)
    lock = Lock(profile)
    p1, _ = start(profile).stage_a_frames(T0)
    with pytest.raises(NegotiationError, match="expired"):
        ras.receive(lock.handle(p1, T0), T0 + NEGOTIATION_TIMEOUT_S)


def test_ras_custom_timeout() -> None:
    ras = RasKeyNegotiation.start(DEVICE, Profile.SECURE, FACTORY, 1, T0, timeout_s=5)
    assert ras.check_expiry(T0 + 5) is RasPhase.EXPIRED


def test_ras_committed_never_expires() -> None:
    lock, ras = Lock(Profile.SECURE), start(Profile.SECURE)
    register(Profile.SECURE, lock, ras)
    assert ras.check_expiry(T0 + 10 * NEGOTIATION_TIMEOUT_S) is RasPhase.COMMITTED


def test_ras_does_not_abandon_a_commit_the_lock_may_have_applied() -> None:
    lock, ras = Lock(Profile.SECURE), start(Profile.SECURE)
    p1, p2 = ras.stage_a_frames(T0)
    ras.receive(lock.handle(p1, T0), T0)
    ras.receive(lock.handle(p2, T0), T0)
    commit_time = T0 + NEGOTIATION_TIMEOUT_S - 1
    answer = lock.handle(ras.commit_frame(commit_time), commit_time)
    assert lock.neg.state.lock_key == NEW  # the lock is bound to the new key ...
    # ... and its answer reaches the RAS one second later, after the RAS deadline.
    assert ras.receive(answer, T0 + NEGOTIATION_TIMEOUT_S) is RasPhase.COMMITTED


# ------------------------------------------------------------------- refusals, lock side


@pytest.mark.parametrize("profile", PROFILES)
def test_registration_closed(profile: Profile) -> None:
    lock = Lock(profile, registration_open=False)
    p1, _ = start(profile).stage_a_frames(T0)
    with pytest.raises(FrameRejected) as info:
        lock.handle(p1, T0)
    assert info.value.reason is ReasonCode.REGISTRATION_CLOSED
    assert phase_of(lock) is LockPhase.IDLE


@pytest.mark.parametrize("profile", PROFILES)
def test_factory_key_refused_after_commit(profile: Profile) -> None:
    """After the commit the old-key acceptor is no longer used: a key part under the
    factory key reaching LockKeyNegotiation is WRONG_KEY, with registration open or not."""
    lock = Lock(profile)
    register(profile, lock, start(profile))
    again = start(profile, new=NEWER, version=2)
    p1, p2 = again.stage_a_frames(T0 + 30)
    for registration_open in (True, False):
        for wire, part in ((p1, KeyType.PART_1), (p2, KeyType.PART_2)):
            _, body = open_command(wire, FACTORY, profile)
            assert isinstance(body, KeyPartBody)
            with pytest.raises(FrameRejected) as info:
                lock.neg.on_part(body, part, FACTORY, T0 + 30, registration_open=registration_open)
            assert info.value.reason is ReasonCode.WRONG_KEY
    assert lock.neg.state.lock_key == NEW


@pytest.mark.parametrize("profile", PROFILES)
def test_factory_reset_accepts_factory_key_again(profile: Profile) -> None:
    lock = Lock(profile)
    register(profile, lock, start(profile))
    lock.neg.factory_reset()
    assert lock.neg.state == LockKeyState(FACTORY)
    register(profile, lock, start(profile, new=NEWER, version=1, now=T0 + 50), T0 + 50)
    assert lock.neg.state.lock_key == NEWER


@pytest.mark.parametrize("profile", PROFILES)
def test_part2_without_part1(profile: Profile) -> None:
    lock = Lock(profile)
    _, p2 = start(profile).stage_a_frames(T0)
    with pytest.raises(FrameRejected) as info:
        lock.handle(p2, T0)
    assert info.value.reason is ReasonCode.KEY_SEQUENCE


@pytest.mark.parametrize("profile", PROFILES)
def test_part2_version_mismatch(profile: Profile) -> None:
    lock = Lock(profile)
    lock.neg.on_part(KeyPartBody(1, NEW[:8]), KeyType.PART_1, FACTORY, T0, registration_open=True)
    with pytest.raises(FrameRejected) as info:
        lock.neg.on_part(
            KeyPartBody(2, NEW[8:]), KeyType.PART_2, FACTORY, T0, registration_open=True
        )
    assert info.value.reason is ReasonCode.KEY_SEQUENCE


@pytest.mark.parametrize("profile", PROFILES)
def test_different_part2_while_pending(profile: Profile) -> None:
    lock = Lock(profile)
    lock.neg.on_part(KeyPartBody(1, NEW[:8]), KeyType.PART_1, FACTORY, T0, registration_open=True)
    lock.neg.on_part(KeyPartBody(1, NEW[8:]), KeyType.PART_2, FACTORY, T0, registration_open=True)
    with pytest.raises(FrameRejected) as info:
        lock.neg.on_part(
            KeyPartBody(1, NEWER[8:]), KeyType.PART_2, FACTORY, T0, registration_open=True
        )
    assert info.value.reason is ReasonCode.KEY_SEQUENCE
    assert lock.neg.state.pending_key == NEW


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("new_key", [FACTORY, bytes(16)])
def test_new_key_must_be_fresh(profile: Profile, new_key: bytes) -> None:
    lock = Lock(profile)
    lock.neg.on_part(
        KeyPartBody(1, new_key[:8]), KeyType.PART_1, FACTORY, T0, registration_open=True
    )
    with pytest.raises(FrameRejected) as info:
        lock.neg.on_part(
            KeyPartBody(1, new_key[8:]), KeyType.PART_2, FACTORY, T0, registration_open=True
        )
    assert info.value.reason is ReasonCode.BAD_VALUE
    assert phase_of(lock) is LockPhase.PART1


@pytest.mark.parametrize("profile", PROFILES)
def test_rotation_to_the_current_key_refused(profile: Profile) -> None:
    lock = Lock(profile)
    register(profile, lock, start(profile))
    lock.neg.on_part(KeyPartBody(2, NEW[:8]), KeyType.PART_1, NEW, T0, registration_open=False)
    with pytest.raises(FrameRejected) as info:
        lock.neg.on_part(KeyPartBody(2, NEW[8:]), KeyType.PART_2, NEW, T0, registration_open=False)
    assert info.value.reason is ReasonCode.BAD_VALUE


def commit_frame(profile: Profile, version: int) -> tuple[Frame, OpBody]:
    frame = m.key_commit(version, 1, T0, profile.layout)
    body = OpBody.unpack(frame.value, profile.layout)
    return frame, body


@pytest.mark.parametrize("profile", PROFILES)
def test_commit_refusals(profile: Profile) -> None:
    lock = Lock(profile)
    frame, body = commit_frame(profile, 1)
    # IDLE and unbound: nothing to commit.
    with pytest.raises(FrameRejected) as info:
        lock.neg.on_commit(frame, body, NEW, T0)
    assert info.value.reason is ReasonCode.KEY_SEQUENCE
    # PART1: not yet.
    lock.neg.on_part(KeyPartBody(1, NEW[:8]), KeyType.PART_1, FACTORY, T0, registration_open=True)
    with pytest.raises(FrameRejected) as info:
        lock.neg.on_commit(frame, body, NEW[:8] * 2, T0)
    assert info.value.reason is ReasonCode.KEY_SEQUENCE
    lock.neg.on_part(KeyPartBody(1, NEW[8:]), KeyType.PART_2, FACTORY, T0, registration_open=True)
    # PENDING: wrong key, wrong version.
    with pytest.raises(FrameRejected) as info:
        lock.neg.on_commit(frame, body, FACTORY, T0)
    assert info.value.reason is ReasonCode.KEY_SEQUENCE
    wrong_frame, wrong_body = commit_frame(profile, 2)
    with pytest.raises(FrameRejected) as info:
        lock.neg.on_commit(wrong_frame, wrong_body, NEW, T0)
    assert info.value.reason is ReasonCode.KEY_SEQUENCE
    assert phase_of(lock) is LockPhase.PENDING
    lock.neg.on_commit(frame, body, NEW, T0)
    assert lock.neg.state.bound
    # Bound: a commit under the factory key or for another version is refused.
    with pytest.raises(FrameRejected):
        lock.neg.on_commit(frame, body, FACTORY, T0)
    with pytest.raises(FrameRejected):
        lock.neg.on_commit(wrong_frame, wrong_body, NEW, T0)


# ------------------------------------------------------------------- refusals, RAS side


def test_start_refusals() -> None:
    with pytest.raises(NegotiationError, match="differ"):
        RasKeyNegotiation.start(DEVICE, Profile.SECURE, FACTORY, 1, T0, new_key=FACTORY)
    for version in (0, 256):
        with pytest.raises(NegotiationError, match=r"1\.\.255"):
            RasKeyNegotiation.start(DEVICE, Profile.SECURE, FACTORY, version, T0, new_key=NEW)
    fresh = RasKeyNegotiation.start(DEVICE, Profile.SECURE, FACTORY, 1, T0)
    assert len(fresh.record.new_key) == 16
    assert fresh.record.new_key != FACTORY
    assert (
        fresh.record.new_key
        != RasKeyNegotiation.start(DEVICE, Profile.SECURE, FACTORY, 1, T0).record.new_key
    )


def test_ras_out_of_order_calls() -> None:
    ras = start(Profile.SECURE)
    with pytest.raises(NegotiationError, match="proof first"):
        ras.commit_frame(T0)
    lock = Lock(Profile.SECURE)
    p1, p2 = ras.stage_a_frames(T0)
    lock.handle(p1, T0)
    ras.receive(lock.handle(p2, T0), T0)
    with pytest.raises(NegotiationError, match="stage a is over"):
        ras.stage_a_frames(T0)
    commit_answer = lock.handle(ras.commit_frame(T0), T0)
    ras.receive(commit_answer, T0)
    with pytest.raises(NegotiationError, match="stage a is over"):
        ras.stage_a_frames(T0)


def test_ras_commit_ack_before_proof_refused() -> None:
    """A commit answer cannot move STARTED to COMMITTED: this RAS sent no commit, so the
    answer echoes a counter it never used and is refused before the table is consulted."""
    lock = Lock(Profile.SECURE)
    register(Profile.SECURE, lock, start(Profile.SECURE))
    fresh = start(Profile.SECURE)
    answer = lock.handle(fresh_commit(Profile.SECURE), T0)
    with pytest.raises(FrameRejected) as info:
        fresh.receive(answer, T0)
    assert info.value.reason is ReasonCode.BAD_VALUE
    assert fresh.phase is RasPhase.STARTED


def fresh_commit(profile: Profile) -> bytes:
    return FrameCodec(NEW, profile).seal(m.key_commit(1, 1, T0, profile.layout))


def sealed_ack(profile: Profile, key: bytes, part: KeyType, version: int = 1,
               device: DeviceId = DEVICE, ack_part: int | None = None,
               ts: int = T0) -> bytes:  # fmt: skip
    frame = m.key_ack(part, version, bytes(device), ts)
    if ack_part is not None:
        value = bytearray(frame.value)
        value[7] = ack_part
        frame = Frame(frame.cmd, frame.type, bytes(value), ts)
    return FrameCodec(key, profile).seal(frame)


@pytest.mark.parametrize("profile", PROFILES)
def test_ras_refuses_wrong_version(profile: Profile) -> None:
    ras = start(profile)
    with pytest.raises(FrameRejected) as info:
        ras.receive(sealed_ack(profile, FACTORY, KeyType.PART_1, version=2), T0)
    assert info.value.reason is ReasonCode.BAD_VALUE
    with pytest.raises(FrameRejected):
        ras.receive(sealed_ack(profile, NEW, KeyType.PART_2, version=2), T0)
    assert ras.phase is RasPhase.STARTED


@pytest.mark.parametrize("profile", PROFILES)
def test_ras_refuses_wrong_device_in_ack(profile: Profile) -> None:
    ras = start(profile)
    with pytest.raises(FrameRejected) as info:
        ras.receive(sealed_ack(profile, NEW, KeyType.PART_2, device=OTHER_DEVICE), T0)
    assert info.value.reason is ReasonCode.BAD_VALUE
    assert ras.phase is RasPhase.STARTED


@pytest.mark.parametrize("profile", PROFILES)
def test_ras_refuses_ack_part_mismatch(profile: Profile) -> None:
    ras = start(profile)
    with pytest.raises(FrameRejected) as info:
        ras.receive(sealed_ack(profile, NEW, KeyType.PART_2, ack_part=1), T0)
    assert info.value.reason is ReasonCode.BAD_VALUE


@pytest.mark.parametrize("profile", PROFILES)
def test_ras_refuses_proof_under_wrong_key(profile: Profile) -> None:
    """A part-2 ack under the old key proves nothing; a part-1 ack under the new key is odd."""
    ras = start(profile)
    with pytest.raises(FrameRejected) as info:
        ras.receive(sealed_ack(profile, FACTORY, KeyType.PART_2), T0)
    assert info.value.reason is ReasonCode.WRONG_KEY
    with pytest.raises(FrameRejected) as info:
        ras.receive(sealed_ack(profile, NEW, KeyType.PART_1), T0)
    assert info.value.reason is ReasonCode.WRONG_KEY
    assert ras.phase is RasPhase.STARTED


@pytest.mark.parametrize("profile", PROFILES)
def test_ras_refuses_frames_under_no_key(profile: Profile) -> None:
    ras = start(profile)
    with pytest.raises(FrameRejected) as info:
        ras.receive(sealed_ack(profile, NEWER, KeyType.PART_2), T0)
    assert info.value.reason in (ReasonCode.BAD_TAG, ReasonCode.BAD_CHECK)
    with pytest.raises(FrameRejected) as info:
        ras.receive(b"\0" * 3, T0)
    assert info.value.reason is ReasonCode.BAD_LENGTH


@pytest.mark.parametrize("profile", PROFILES)
def test_ras_accepts_acks_from_a_lock_whose_clock_is_wrong(profile: Profile) -> None:
    """Acks are bound to the exchange by content (fresh key, version, device id), not by
    time, so a lock whose clock was reset can still be registered (keyneg docstring)."""
    ras = start(profile)
    day = 86_400
    assert ras.receive(sealed_ack(profile, NEW, KeyType.PART_2, ts=T0 - 365 * day), T0) is (
        RasPhase.PROVEN
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_ras_refuses_non_key_answers(profile: Profile) -> None:
    ras = start(profile)
    request = m.command(Cmd.OPERATION, 1, 3, 1, T0, profile.layout)
    status = FrameCodec(NEW, profile).seal(m.response(request, OpBody(3, 1), T0, profile.layout))
    with pytest.raises(FrameRejected) as info:
        ras.receive(status, T0)
    assert info.value.reason is ReasonCode.UNKNOWN_COMMAND
    # A command (no response bit) is not an answer at all.
    with pytest.raises(FrameRejected):
        ras.receive(fresh_commit(profile), T0)
    assert ras.phase is RasPhase.STARTED


def test_ras_reports_the_reason_of_the_key_the_frame_opened_under() -> None:
    ras = start(Profile.SECURE)
    with pytest.raises(FrameRejected) as info:
        ras.receive(fresh_commit(Profile.SECURE), T0)  # a command, not an answer
    assert info.value.reason is ReasonCode.UNKNOWN_COMMAND


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("op", "seq", "version", "key"),
    [(2, 1, 1, NEW), (1, 2, 1, NEW), (1, 1, 2, NEW), (1, 1, 1, FACTORY)],
    ids=["bad-op", "bad-counter", "bad-version", "old-key"],
)
def test_ras_refuses_bad_commit_answers(
    profile: Profile, op: int, seq: int, version: int, key: bytes
) -> None:
    lock, ras = Lock(profile), start(profile)
    p1, p2 = ras.stage_a_frames(T0)
    lock.handle(p1, T0)
    ras.receive(lock.handle(p2, T0), T0)
    request = m.key_commit(1, 1, T0, profile.layout)
    answer = m.response(request, OpBody(op, seq), T0, profile.layout, bytes((version,)))
    with pytest.raises(FrameRejected) as info:
        ras.receive(FrameCodec(key, profile).seal(answer), T0)
    # op 2 is not a KEY/COMMIT op: rule 4 under the new key it opened under. The others
    # fail the commit-answer check (no commit with that counter was sent, wrong version,
    # or the old key).
    expected = ReasonCode.BAD_VALUE if op == 1 else ReasonCode.UNKNOWN_COMMAND
    assert info.value.reason is expected
    assert ras.phase is RasPhase.PROVEN


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("code", [ReasonCode.REGISTRATION_CLOSED, ReasonCode.KEY_SEQUENCE])
def test_lock_refused_on_error_frame(profile: Profile, code: ReasonCode) -> None:
    ras = start(profile)
    for key in (FACTORY, NEW):
        err = FrameCodec(key, profile).seal(m.error_response(code, T0, profile.layout))
        with pytest.raises(LockRefused) as info:
            ras.receive(err, T0)
        assert info.value.reason is code
        assert isinstance(info.value, ProtocolError)
        assert code.name in str(info.value)
    assert ras.phase is RasPhase.STARTED


def test_record_carries_what_the_ras_stores() -> None:
    ras = start(Profile.BASE, version=7)
    r = ras.record
    assert (r.device_id, r.profile, r.old_key, r.new_key, r.version) == (
        "F01122334455",
        Profile.BASE,
        FACTORY,
        NEW,
        7,
    )
    assert (r.phase, r.started_at, r.expires_at) == (
        RasPhase.STARTED,
        T0,
        T0 + NEGOTIATION_TIMEOUT_S,
    )
    # A negotiation is rebuilt from its stored record (e.g. on another RAS node).
    resumed = RasKeyNegotiation(replace(r, phase=RasPhase.PART1_ACKED))
    lock = Lock(Profile.BASE)
    p1, p2 = resumed.stage_a_frames(T0)
    lock.handle(p1, T0)
    assert resumed.receive(lock.handle(p2, T0), T0) is RasPhase.PROVEN


def test_phase_finality() -> None:
    assert {p for p in RasPhase if p.final} == {RasPhase.COMMITTED, RasPhase.EXPIRED}


def test_ras_reads_a_base_frame_under_the_old_key_even_if_it_passes_the_check_under_new() -> None:
    """Base profile: about 1 frame in 256 sealed under K passes the check byte under K'.
    Such a frame must still be read under K, not refused by rule 4 under K'."""
    ras = start(Profile.BASE)
    old, new = FrameCodec(FACTORY, Profile.BASE), FrameCodec(NEW, Profile.BASE)
    colliding = None
    for ts in range(T0, T0 + 5000):  # ~20 expected: look for one that passes under K'
        candidate = old.seal(m.key_ack(KeyType.PART_1, 1, bytes(DEVICE), ts))
        plain = new.open_plaintext(candidate)
        if check_byte(plain[:11]) == plain[11]:
            colliding = candidate
            break
    assert colliding is not None, "no colliding stamp in 5000 (about 20 expected)"
    assert ras.receive(colliding, T0) is RasPhase.PART1_ACKED
