"""Webhook secrets and signatures (Standard Webhooks, pure).

A secret is ``whsec_`` + base64 of 32 random bytes; the HMAC key is those 32 bytes.
A delivery carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: space-separated ``v1,<base64(HMAC-SHA256(key, signed))>`` with
``signed = f"{id}.{timestamp}.{body}"`` (UTF-8), one per secret in force (two during a
rotation). docs/api.md, "Webhooks", gives a worked example.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Final

PREFIX: Final = "whsec_"
KEY_BYTES: Final = 32
VERSION: Final = "v1"


def new_key() -> bytes:
    """32 bytes from the OS CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def render_secret(key: bytes) -> str:
    """The secret as an app receives it: ``whsec_<base64(key)>``."""
    return PREFIX + base64.b64encode(key).decode("ascii")


def key_of(secret: str) -> bytes:
    """The HMAC key in a ``whsec_`` secret; ValueError if malformed."""
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        return base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ and base64") from None


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return msg_id.encode("utf-8") + b"." + str(timestamp).encode("ascii") + b"." + body


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    mac = hmac.new(key, signed_content(msg_id, timestamp, body), hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(mac).decode('ascii')}"


def signature_header(keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature``: one signature per key, space-separated."""
    return " ".join(sign(key, msg_id, timestamp, body) for key in keys)
