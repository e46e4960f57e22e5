"""Every API call is described once (heslock.rac.calls): what it sends, what it accepts,
and what it refuses before sending anything."""

from __future__ import annotations

import base64
import uuid

import pytest

from heslock.rac import calls
from heslock.rac.calls import TokenEffect
from heslock.rac.errors import InvalidArgument

LOCK = uuid.UUID("6f1c1f4e-9d2e-4a55-8e0b-1f1d2c3b4a59")


def test_register_sends_only_what_was_given_and_hides_the_password() -> None:
    call = calls.account_register("a@example.org", None, "secret pass phrase", None)
    assert (call.method, call.path, call.ok, call.auth) == (
        "POST", "/v1/account", frozenset({201}), False,
    )  # fmt: skip
    assert call.json == {"password": "secret pass phrase", "email": "a@example.org"}
    assert "secret pass phrase" not in repr(call)
    with pytest.raises(InvalidArgument, match="e-mail address or a phone"):
        calls.account_register(None, None, "x", None)


def test_second_factor_saves_and_logout_clears_the_tokens() -> None:
    sf = calls.second_factor("hlc_x", "email", "123456")
    assert sf.effect is TokenEffect.SAVE
    assert not sf.auth
    assert sf.json == {"challenge": "hlc_x", "method": "email", "code": "123456"}
    assert calls.logout().effect is TokenEffect.CLEAR
    assert calls.account_delete("pw").effect is TokenEffect.CLEAR
    assert calls.refresh("hlr_x").effect is TokenEffect.NONE  # saved under the refresh lock


@pytest.mark.parametrize("code", ["12345", "1234567", "12a456", ""])
def test_codes_are_six_digits(code: str) -> None:
    with pytest.raises(InvalidArgument, match="6 digits"):
        calls.second_factor("hlc_x", "totp", code)


def test_ids_are_checked_and_normalised_before_use() -> None:
    assert calls.lock_get(str(LOCK).upper()).path == f"/v1/locks/{LOCK}"
    assert calls.legitimacy("2a:a0:9a:c1:ba:f5").path == "/v1/devices/2AA09AC1BAF5/legitimacy"
    with pytest.raises(InvalidArgument, match="not a lock id"):
        calls.lock_get("../admin")
    with pytest.raises(InvalidArgument, match="not a device id"):
        calls.legitimacy("2AA09AC1BAF5/../x")
    with pytest.raises(InvalidArgument, match="not a session id"):
        calls.session_revoke("1")


def test_registration_start_leaves_the_default_relay_out() -> None:
    relay = calls.registration_start("2AA09AC1BAF5", "door", "relay", None, False)
    assert relay.json == {"device_id": "2AA09AC1BAF5", "name": "door"}
    assert relay.ok == frozenset({200, 201})
    gw = uuid.uuid4()
    via = calls.registration_start("2AA09AC1BAF5", "door", "gateway", gw, True)
    assert via.json == {
        "device_id": "2AA09AC1BAF5", "name": "door", "time_sync": True,
        "via": "gateway", "gateway_id": str(gw),
    }  # fmt: skip
    with pytest.raises(InvalidArgument, match="via='gateway'"):
        calls.registration_start("2AA09AC1BAF5", "door", "relay", gw, False)
    with pytest.raises(InvalidArgument, match="via is one of"):
        calls.registration_start("2AA09AC1BAF5", "door", "carrier-pigeon", None, False)
    assert calls.registration_relay(uuid.uuid4(), None).json == {}


def test_frames_travel_as_base64() -> None:
    call = calls.registration_answer(uuid.uuid4(), b"\x01\x02\xff")
    assert call.json == {"frame": base64.b64encode(b"\x01\x02\xff").decode()}
    with pytest.raises(InvalidArgument, match="non-empty bytes"):
        calls.nearby_answer(LOCK, uuid.uuid4(), b"")


def test_commands_carry_an_idempotency_key() -> None:
    given = calls.lock_command(LOCK, "unlock", "retry-7")
    assert dict(given.headers) == {"Idempotency-Key": "retry-7"}
    fresh_a = dict(calls.lock_command(LOCK, "lock", None).headers)["Idempotency-Key"]
    fresh_b = dict(calls.lock_command(LOCK, "lock", None).headers)["Idempotency-Key"]
    assert fresh_a != fresh_b
    nearby = calls.nearby_frame(LOCK, "status", "k")
    assert (nearby.path, nearby.ok) == (f"/v1/locks/{LOCK}/frames", frozenset({201}))
    with pytest.raises(InvalidArgument, match="a command is one of"):
        calls.lock_command(LOCK, "open-sesame", None)
    with pytest.raises(InvalidArgument, match="idempotency key"):
        calls.lock_command(LOCK, "unlock", "has space")
    with pytest.raises(InvalidArgument, match="idempotency key"):
        calls.lock_command(LOCK, "unlock", "k" * 129)


def test_event_pages_are_bounded() -> None:
    call = calls.lock_events(LOCK, 50, 17)
    assert call.params == (("limit", "50"), ("before", "17"))
    with pytest.raises(InvalidArgument):
        calls.lock_events(LOCK, 0, None)
    with pytest.raises(InvalidArgument):
        calls.lock_events(LOCK, 501, None)
    with pytest.raises(InvalidArgument):
        calls.lock_events(LOCK, 10, 0)


def test_import_sends_the_file_as_it_is() -> None:
    call = calls.import_devices(b"id,maker\n", "csv", True)
    assert call.content == b"id,maker\n"
    assert call.content_type == "text/csv"
    assert call.params == (("skip_bad", "true"),)
    with pytest.raises(InvalidArgument, match="json or csv"):
        calls.import_devices(b"", "xml", False)
