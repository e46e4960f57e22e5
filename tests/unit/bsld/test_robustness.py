"""Every input to a lock gets an answer; nothing crashes it (issue 3, "Malformed traffic")."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from heslock.bsld import LockConfig, SimulatedLock
from heslock.protocol import (
    BoltState,
    Cmd,
    Direction,
    FrameCodec,
    OperationOp,
    OperationType,
    Profile,
    ReasonCode,
    decode_body,
)
from tests.unit.bsld.ras import T0, Ras, make_identity

_LOCKS: dict[tuple[Profile, bool], tuple[SimulatedLock, Ras]] = {}


def _lock(profile: Profile, bound: bool) -> tuple[SimulatedLock, Ras]:
    lock = SimulatedLock(make_identity(profile), LockConfig(wrong_attempt_limit=255))
    ras = Ras(lock)
    if bound:
        lock.press_registration_button(T0)
        ras.negotiate(T0)
    return lock, ras


@settings(max_examples=300, deadline=None)
@given(
    wire=st.binary(min_size=0, max_size=64),
    profile=st.sampled_from(list(Profile)),
    bound=st.booleans(),
    offset=st.floats(min_value=0, max_value=1e6),
)
def test_handle_frame_never_raises_and_always_answers(
    wire: bytes, profile: Profile, bound: bool, offset: float
) -> None:
    key = (profile, bound)
    if key not in _LOCKS:
        _LOCKS[key] = _lock(profile, bound)
    lock, ras = _LOCKS[key]
    answer = lock.handle_frame(wire, T0 + offset)
    assert len(answer) == profile.wire_size
    # the answer is a lock frame, readable under the key the lock answers with
    answer_key = ras.key if bound else lock.identity.factory_key
    assert answer_key is not None
    frame = FrameCodec(answer_key, profile).open(answer)
    decode_body(frame, Direction.FROM_LOCK, profile)
    assert frame.is_response


@given(st.lists(st.binary(min_size=0, max_size=64), min_size=1, max_size=30))
@settings(max_examples=40, deadline=None)
def test_garbage_storms_leave_the_lock_usable(storm: list[bytes]) -> None:
    lock, ras = _lock(Profile.SECURE, bound=True)
    for i, wire in enumerate(storm):
        lock.handle_frame(wire, T0 + i * 0.01)
    later = T0 + 1000  # past any lockout
    lock.tick(later)
    wire = ras.command(Cmd.OPERATION, OperationType.BOLT, OperationOp.UNLOCK, later)
    assert ras.status(lock.handle_frame(wire, later)).bolt is BoltState.UNLOCKED


def test_nonsense_host_time_is_an_internal_error_not_a_crash() -> None:
    lock, ras = _lock(Profile.BASE, bound=True)
    assert ras.reason(lock.handle_frame(b"\x00" * 16, math.nan)) is ReasonCode.INTERNAL
