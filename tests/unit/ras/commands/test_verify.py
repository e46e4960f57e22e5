"""The RAS's check of a lock's answer to a command, and the command service's small rules."""

from __future__ import annotations

import uuid

import pytest

from heslock.protocol import (
    BoltState,
    Cmd,
    DeviceId,
    DoorState,
    Frame,
    FrameCodec,
    OpBody,
    OperationOp,
    OperationType,
    Profile,
    ReasonCode,
    StatusArgs,
    messages,
)
from heslock.ras.relay import (
    GatewayFailure,
    GatewayLost,
    GatewayOffline,
    LinkLost,
    LockBusy,
    LockNotInRange,
    LockTimeout,
    RelayTimeout,
)
from heslock.ras.relay.errors import RelayError
from heslock.ras.services.commands.errors import IdempotencyKeyMissing
from heslock.ras.services.commands.service import (
    _Prepared,
    check_idempotency_key,
    relay_error_code,
    verify,
)
from heslock.ras.store.models import CommandState

KEY = bytes(range(16))
TS = 1_800_000_000
SEQ = 42


def prepared(profile: Profile, *, resend: bool = False) -> tuple[_Prepared, Frame]:
    codec = FrameCodec(KEY, profile)
    request = messages.command(
        Cmd.OPERATION, OperationType.BOLT, OperationOp.UNLOCK, SEQ, TS, profile.layout
    )
    prep = _Prepared(
        uuid.uuid4(),
        uuid.uuid4(),
        DeviceId.parse("F2:00:00:00:00:01"),
        "unlock",
        OperationOp.UNLOCK,
        SEQ,
        codec.seal(request),
        codec,
        profile,
        resend=resend,
    )
    return prep, request


STATUS = StatusArgs(BoltState.UNLOCKED, DoorState.CLOSED, 87)


@pytest.mark.parametrize("profile", [Profile.BASE, Profile.SECURE])
def test_the_answer_to_this_frame_is_ok(profile: Profile) -> None:
    prep, request = prepared(profile)
    body = OpBody(OperationOp.UNLOCK, SEQ)
    answer = messages.response(request, body, TS, profile.layout, bytes(STATUS))
    settled = verify(prep, prep.codec.seal(answer))
    assert (settled.state, settled.code, settled.confirmed) == (CommandState.OK, None, "answer")
    assert settled.status == STATUS
    assert KEY.hex() not in repr(prep)
    assert prep.frame.hex() not in repr(prep)


@pytest.mark.parametrize(
    ("op", "seq"), [(OperationOp.UNLOCK, SEQ + 1), (OperationOp.LOCK, SEQ), (OperationOp.UNLOCK, 0)]
)
def test_an_answer_to_another_frame_proves_nothing(op: OperationOp, seq: int) -> None:
    prep, request = prepared(Profile.SECURE)
    answer = messages.response(request, OpBody(op, seq), TS, Profile.SECURE.layout, bytes(STATUS))
    settled = verify(prep, prep.codec.seal(answer))
    assert (settled.state, settled.reason, settled.code) == (
        CommandState.UNKNOWN,
        "bad-answer",
        "gateway-failure",
    )


def test_garbage_and_foreign_keys_prove_nothing() -> None:
    prep, request = prepared(Profile.SECURE)
    answer = messages.response(request, OpBody(OperationOp.UNLOCK, SEQ), TS, Profile.SECURE.layout)
    other = FrameCodec(bytes(16), Profile.SECURE)
    for wire in (bytes(20), b"short", other.seal(answer)):
        settled = verify(prep, wire)
        assert (settled.state, settled.reason) == (CommandState.UNKNOWN, "bad-answer")


def test_error_frames_are_the_locks_refusal_and_replay_confirms_a_resend() -> None:
    prep, request = prepared(Profile.SECURE)
    layout = Profile.SECURE.layout

    def error(reason: ReasonCode) -> bytes:
        return prep.codec.seal(
            messages.error_response(reason, TS, layout, request, OperationOp.UNLOCK, SEQ)
        )

    settled = verify(prep, error(ReasonCode.JAMMED))
    assert (settled.state, settled.reason, settled.code) == (
        CommandState.REFUSED,
        "JAMMED",
        "lock-refused",
    )
    resend, _ = prepared(Profile.SECURE, resend=True)
    replayed = verify(resend, error(ReasonCode.REPLAY))
    assert (replayed.state, replayed.confirmed, replayed.status) == (
        CommandState.OK,
        "replay",
        None,
    )
    stale = verify(resend, error(ReasonCode.STALE))
    assert (stale.state, stale.code) == (CommandState.UNKNOWN, "command-outcome-unknown")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (GatewayOffline("x"), "gateway-unavailable"),
        (GatewayLost("x"), "gateway-unavailable"),
        (LockBusy("x"), "gateway-unavailable"),
        (RelayTimeout("x"), "lock-unreachable"),
        (LockTimeout("x"), "lock-unreachable"),
        (LockNotInRange("x"), "lock-unreachable"),
        (LinkLost("x"), "lock-unreachable"),
        (GatewayFailure("x"), "gateway-failure"),
        (RelayError("x"), "lock-unreachable"),
    ],
)
def test_relay_errors_map_to_distinct_problems(error: RelayError, code: str) -> None:
    assert relay_error_code(error) == code


@pytest.mark.parametrize("value", [None, "", "   ", "x" * 256, "caf\u00e9", "a b"])
def test_bad_idempotency_keys(value: str | None) -> None:
    with pytest.raises(IdempotencyKeyMissing):
        check_idempotency_key(value)


def test_good_idempotency_key() -> None:
    assert check_idempotency_key(" 0192f1c2-7a4e-7c3e-9a53-3d0c7f4f1a2b ") == (
        "0192f1c2-7a4e-7c3e-9a53-3d0c7f4f1a2b"
    )
