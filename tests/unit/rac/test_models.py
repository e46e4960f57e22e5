"""The one decoder of RAS answers: strict on what a model needs, lenient on additions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from heslock.rac.errors import RasBadAnswer
from heslock.rac.models import (
    GatewayCredentials,
    Lock,
    NearbyFrame,
    Registration,
    Tokens,
    TotpEnrolment,
    decode,
    decode_list,
)

LOCK = {
    "id": "6f1c1f4e-9d2e-4a55-8e0b-1f1d2c3b4a59",
    "device_id": "2AA09AC1BAF5",
    "owner_id": "36e081cb-0686-4ce6-b31e-dd5bac58a60c",
    "name": "Front door",
    "profile": "secure",
    "key_version": 1,
    "bolt_state": 1,
    "door_state": None,
    "battery": 80,
    "state_at": "2026-11-24T00:45:31.511708Z",
    "bound_at": "2026-11-24T00:45:31",
    "a_member_from_a_newer_ras": [1, 2],
}


def test_a_lock_decodes_with_types_and_state_names() -> None:
    lock = decode(Lock, LOCK)
    assert lock.id == uuid.UUID(LOCK["id"])  # type: ignore[arg-type]
    assert lock.state_at == datetime(2026, 11, 24, 0, 45, 31, 511708, tzinfo=UTC)
    assert lock.bound_at.tzinfo is UTC  # a naive time is taken as UTC
    assert lock.door_state is None
    assert lock.bolt in {"locked", "unlocked"}
    assert lock.door is None
    assert decode(Lock, {**LOCK, "bolt_state": 99}).bolt == "unknown (99)"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"id": "not-a-uuid"}, "Lock.id is not a UUID"),
        ({"key_version": "1"}, "Lock.key_version is not an integer"),
        ({"key_version": True}, "Lock.key_version is not an integer"),
        ({"name": None}, "Lock.name is missing"),
        ({"bound_at": "yesterday"}, "Lock.bound_at is not an ISO 8601 time"),
    ],
)
def test_a_wrong_answer_is_a_bad_answer_naming_the_member(
    change: dict[str, object], words: str
) -> None:
    with pytest.raises(RasBadAnswer, match=words):
        decode(Lock, {**LOCK, **change})


def test_missing_members_and_non_objects_are_refused() -> None:
    broken = dict(LOCK)
    del broken["device_id"]
    with pytest.raises(RasBadAnswer, match=r"Lock\.device_id is missing"):
        decode(Lock, broken)
    with pytest.raises(RasBadAnswer, match="not an object"):
        decode(Lock, [LOCK])
    with pytest.raises(RasBadAnswer, match="not a list"):
        decode_list(Lock, LOCK)
    assert [lk.name for lk in decode_list(Lock, [LOCK, LOCK])] == ["Front door"] * 2


def test_frames_are_bytes_from_base64() -> None:
    view = {
        "registration_id": str(uuid.uuid4()), "kind": "register", "device_id": "2AA09AC1BAF5",
        "phase": "started", "version": 1, "lock_id": None, "expires_at": None,
        "frames": ["AQID", "/w=="], "failure": None, "refused": None, "done": False,
    }  # fmt: skip
    reg = decode(Registration, view)
    assert reg.frames == (b"\x01\x02\x03", b"\xff")
    assert not reg.committed
    with pytest.raises(RasBadAnswer, match=r"frames\[1\] is not base64"):
        decode(Registration, {**view, "frames": ["AQID", "!!"]})


def test_tokens_turn_lifetimes_into_instants_and_never_show_themselves() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    answer = {
        "token_type": "Bearer", "access_token": "hla_secret_access", "expires_in": 899,
        "refresh_token": "hlr_secret_refresh", "refresh_expires_in": 2591999,
        "session_id": str(uuid.uuid4()),
    }  # fmt: skip
    tokens = Tokens.from_answer(answer, now)
    assert tokens.access_expires_at == now + timedelta(seconds=899)
    assert tokens.refresh_expires_at == now + timedelta(seconds=2591999)
    assert not tokens.access_expired(now)
    assert tokens.access_expired(now + timedelta(seconds=890))  # within the margin
    assert "hla_" not in repr(tokens)
    assert "hlr_" not in repr(tokens)
    assert Tokens.from_json(tokens.to_json()) == tokens
    with pytest.raises(RasBadAnswer, match="token type"):
        Tokens.from_answer({**answer, "token_type": "MAC"}, now)


def test_secrets_are_not_in_repr() -> None:
    enrolment = TotpEnrolment(otpauth_uri="otpauth://totp/x?secret=SEED", secret="SEED")
    credentials = GatewayCredentials(id=uuid.uuid4(), jid="g@localhost/bgw", secret="s3cr3t")
    frame = NearbyFrame(
        uuid.uuid4(), uuid.uuid4(), "2AA09AC1BAF5", "unlock", b"\x00" * 20,
        datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    assert "SEED" not in repr(enrolment)
    assert "s3cr3t" not in repr(credentials)
    assert "\\x00" not in repr(frame)
