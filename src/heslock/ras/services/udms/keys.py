"""Secrets UDMS hands out or checks: opaque tokens, and the server keys that hash codes.

**Tokens** (access, refresh, login challenge) are 256 random bits from the OS CSPRNG,
URL-safe base64, with a short type prefix (``hla_``, ``hlr_``, ``hlc_``) so secret
scanners and people can tell them apart. The database keeps only their SHA-256: a
token has full entropy, so a fast hash is enough (no dictionary to try), and a copy
of the database yields no usable token.

**One-time codes** have only 10^6 values, so a plain hash of one is reversed by trying
them all. They are stored as HMAC-SHA-256 under a *pepper*: a key derived from the RAS
master key, which lives in its own file and never in the database. A database dump
alone then reveals nothing, and checking a code stays a microsecond operation that an
attacker cannot turn into CPU exhaustion (argon2 per guess would). The row id is part
of the MAC input, so a hash copied to another row does not verify there.

**Deriving the pepper**: :meth:`heslock.ras.keystore.Keystore.derive_key`, HKDF-SHA256 of
the master key with an info string of its own per purpose, independent of the sealing
subkeys. A master-key rotation changes the pepper: codes in flight (10 minutes) and
rate-limit buckets keyed by HMAC simply start afresh.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from enum import StrEnum
from typing import Final

from heslock.ras.keystore import Keystore, Slot

#: 256 bits: beyond any guessing, online or offline.
TOKEN_BYTES: Final = 32
#: Key for one-time code MACs; this slot never holds a sealed secret.
OTP_PEPPER: Final = Slot("otp_codes", "code_hash")
#: Key for pseudonymous rate-limit bucket names (no phone number or e-mail in the table).
BUCKET_PEPPER: Final = Slot("rate_limit_buckets", "key")


class TokenKind(StrEnum):
    ACCESS = "hla"
    REFRESH = "hlr"
    CHALLENGE = "hlc"


_TOKEN_RE: Final = re.compile(r"^(hla|hlr|hlc)_[A-Za-z0-9_-]{43}$")


def new_token(kind: TokenKind) -> str:
    return f"{kind.value}_{secrets.token_urlsafe(TOKEN_BYTES)}"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


def is_token(text: str, kind: TokenKind) -> bool:
    """Well-formed and of ``kind``: anything else is refused before a database lookup."""
    return _TOKEN_RE.match(text) is not None and text.startswith(kind.value + "_")


def derive_key(keystore: Keystore, slot: Slot) -> bytes:
    """32 bytes determined by the primary master key and ``slot`` (HKDF, module docstring)."""
    return keystore.derive_key(f"udms/{slot.table}.{slot.column}")


class Pepper:
    """HMAC-SHA-256 under a derived key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "Pepper(<hidden>)"

    def mac(self, *parts: bytes) -> bytes:
        return hmac.new(self._key, b"\x00".join(parts), hashlib.sha256).digest()

    def code_digest(self, code_id: uuid.UUID, code: str) -> bytes:
        return self.mac(code_id.bytes, code.encode("ascii", "replace"))

    def label(self, text: str) -> str:
        """A stable pseudonym of ``text`` (an address) for bucket names: 128 bits, hex."""
        return self.mac(text.encode()).hex()[:32]
