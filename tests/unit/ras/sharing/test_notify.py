"""The invitation notice's words: who, what, how to accept; bounded, printable, no secret."""

from __future__ import annotations

from datetime import UTC, datetime

from heslock.ras.services.sharing.notify import (
    MAX_NAME_CHARS,
    InvitationNotice,
    clean_name,
    describe,
)
from heslock.ras.services.udms.senders import SMS_MAX_CHARS


def test_names_are_cleaned_and_bounded() -> None:
    assert clean_name("  Olga \n\t Smith ", "x") == "Olga Smith"
    assert clean_name("\x1b[31mred", "x") == "[31mred"
    assert clean_name(None, "Someone") == "Someone"
    assert clean_name(" \n ", "Someone") == "Someone"
    long = clean_name("a" * 100, "x")
    assert len(long) == MAX_NAME_CHARS
    assert long.endswith("…")


def test_what_was_shared_in_words() -> None:
    assert describe("Home", []) == 'the home "Home"'
    assert describe(None, ["A"]) == '"A"'
    assert describe(None, ["A", "B"]) == '"A" and "B"'
    assert describe(None, ["A", "B", "C"]) == '"A", "B" and "C"'
    assert describe(None, ["A", "B", "C", "D", "E"]) == '"A", "B", "C" and 2 more'
    assert describe(None, []) == "a lock"


def notice(channel: str) -> InvitationNotice:
    return InvitationNotice(
        channel=channel, destination="+442079460958" if channel == "sms" else "m@example.org",
        code="", purpose="share_invitation", domain="ras.example", ttl_s=86_400,
        at=datetime(2026, 6, 3, tzinfo=UTC), granter="O" * MAX_NAME_CHARS,
        what=describe(None, ["x" * MAX_NAME_CHARS] * 5), expires="2026-06-17",
    )  # fmt: skip


def test_sms_and_email_say_who_what_and_how() -> None:
    sms = notice("sms").sms_text()
    assert len(sms) <= SMS_MAX_CHARS
    assert sms.startswith("O" * MAX_NAME_CHARS + " shared")
    email = notice("email").email("heslock@ras.example")
    body = email.get_content()
    assert "https://ras.example" in body
    assert "Invitations" in body
    assert "2026-06-17" in body
    assert "this address" in body
    assert email["To"] == "m@example.org"
    assert "m@example.org" not in repr(notice("email"))
