"""Receiving heslock webhooks: the documented algorithm, and nothing from heslock.

A third party verifies what the RAS sends with the published rules alone (docs/api.md,
"Webhooks"; the "Standard Webhooks" signature scheme):

- headers ``webhook-id`` (the event id, the same on every retry), ``webhook-timestamp``
  (Unix seconds of this attempt) and ``webhook-signature`` (space-separated
  ``v1,<base64 signature>``; two of them while a secret is being rotated);
- signature = base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), where ``key`` is the
  base64-decoded part of the subscription's secret after ``whsec_``;
- refuse a timestamp more than five minutes from our own clock (a captured delivery
  cannot be replayed later), compare in constant time, and de-duplicate on the id
  (delivery is at least once: the same event may come again, with a new timestamp).

This module only checks; de-duplication needs the app's storage (see ``store.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix, not a secret)
#: How far a delivery's timestamp may be from our clock, either way (seconds).
TOLERANCE_S = 5 * 60


class WebhookRejected(Exception):
    """A delivery that is not provably the RAS's, or is too old: answer 400, act on nothing."""


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: its id (for de-duplication), its timestamp and its raw body."""

    id: str
    timestamp: int
    body: bytes


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is whsec_ and base64") from None


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64>``: the signature the RAS puts in ``webhook-signature``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(
    secrets: Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_s: int = TOLERANCE_S,
) -> Delivery:
    """Check one delivery against our secrets (the current one, and the previous one for a
    while after we rotate). ``headers`` must look names up case-insensitively (as
    Starlette's do). Raises :class:`WebhookRejected` with the reason."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    offered = headers.get("webhook-signature", "")
    if not msg_id or not stamp or not offered:
        raise WebhookRejected("missing webhook-id, webhook-timestamp or webhook-signature")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise WebhookRejected("webhook-timestamp is not Unix seconds")
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance_s:
        raise WebhookRejected("webhook-timestamp is too far from our clock")
    expected = [signature(s, msg_id, timestamp, body).encode() for s in secrets]
    matched = False
    for candidate in offered.split(" "):
        if not candidate.startswith("v1,"):
            continue  # another scheme (e.g. a future "v1a"): not ours to check
        for mine in expected:
            # Every comparison runs: how long it takes says nothing about which matched.
            matched |= hmac.compare_digest(candidate.encode(), mine)
    if not matched:
        raise WebhookRejected("no valid signature")
    return Delivery(msg_id, timestamp, body)
