"""Webhook signatures and secrets (Standard Webhooks), against a literal example."""

from __future__ import annotations

import base64

import pytest

from heslock.ras.services.webhooks import signing

# The worked example of docs/api.md, "Webhooks" (computed with openssl there).
SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes 0..31
MSG_ID = "1234"
TIMESTAMP = 1764000000
BODY = b'{"id":"1234","type":"lock.manual_operation"}'
EXPECTED = "v1,bViOnDObrQwxQYD7ra7dTXw0hs2KogeQiY1YUCUqYos="  # openssl dgst -hmac


def test_worked_example() -> None:
    key = signing.key_of(SECRET)
    assert signing.sign(key, MSG_ID, TIMESTAMP, BODY) == EXPECTED


def test_secret_round_trip() -> None:
    key = signing.new_key()
    secret = signing.render_secret(key)
    assert secret.startswith("whsec_")
    assert base64.b64decode(secret[6:]) == key
    assert signing.key_of(secret) == key
    assert len(key) == signing.KEY_BYTES


@pytest.mark.parametrize("bad", ["", "whsec", "sk_abc", "whsec_***", "whsec_abc"])
def test_malformed_secrets_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="whsec_"):
        signing.key_of(bad)


def test_two_keys_two_signatures_in_order() -> None:
    new, old = b"n" * 32, b"o" * 32
    header = signing.signature_header([new, old], MSG_ID, TIMESTAMP, BODY)
    first, second = header.split(" ")
    assert first == signing.sign(new, MSG_ID, TIMESTAMP, BODY)
    assert second == signing.sign(old, MSG_ID, TIMESTAMP, BODY)
    assert first != second


def test_signature_covers_id_timestamp_and_body() -> None:
    key = signing.key_of(SECRET)
    base = signing.sign(key, MSG_ID, TIMESTAMP, BODY)
    assert signing.sign(key, "1235", TIMESTAMP, BODY) != base
    assert signing.sign(key, MSG_ID, TIMESTAMP + 1, BODY) != base
    assert signing.sign(key, MSG_ID, TIMESTAMP, BODY + b" ") != base
