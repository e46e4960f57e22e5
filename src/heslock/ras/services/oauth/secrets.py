"""What the authorisation server hands out, and how it is kept.

Every token, code and ticket is 256 bits from the OS CSPRNG with a type prefix, stored
as SHA-256 (:func:`heslock.ras.services.udms.keys.token_hash`: a full-entropy value needs
no slow hash). Client secrets are the same kind of value, stored as HMAC-SHA-256 under a
pepper derived from the master key (as UDMS keeps one-time codes): a database copy alone
then verifies nothing, and checking a secret costs a microsecond. Comparisons of stored
digests use :func:`hmac.compare_digest`; lookups go by the digest, never the value.

=======  =======================  =========================================
prefix   what                     lifetime
=======  =======================  =========================================
hloa_    access token             ``oauth_access_ttl_s`` (15 min)
hlor_    refresh token            single use; family ``oauth_refresh_ttl_s``
hloc_    authorisation code       single use; ``oauth_code_ttl_s`` (<= 10 min)
hlot_    consent ticket           single use; ``oauth_ticket_ttl_s``
hlof_    consent form token       the page it was rendered in
hlos_    client secret            until the app is deleted
=======  =======================  =========================================
"""

from __future__ import annotations

import hmac
import re
import secrets
from enum import StrEnum
from typing import Final

from heslock.ras.keystore import Keystore
from heslock.ras.services.udms.keys import TOKEN_BYTES, Pepper, token_hash

__all__ = ["SecretKind", "client_secret_pepper", "digest", "is_secret", "new_secret", "same"]


class SecretKind(StrEnum):
    ACCESS = "hloa"
    REFRESH = "hlor"
    CODE = "hloc"
    TICKET = "hlot"
    FORM = "hlof"
    CLIENT_SECRET = "hlos"  # noqa: S105 - a prefix, not a secret


_SECRET_RE: Final = re.compile(r"^hlo[arctfs]_[A-Za-z0-9_-]{43}$")


def new_secret(kind: SecretKind) -> str:
    return f"{kind.value}_{secrets.token_urlsafe(TOKEN_BYTES)}"


def is_secret(text: str, kind: SecretKind) -> bool:
    """Well-formed and of ``kind``: anything else is refused before any lookup."""
    return _SECRET_RE.match(text) is not None and text.startswith(kind.value + "_")


def digest(text: str) -> bytes:
    """SHA-256 of a token, code or ticket (the stored form)."""
    return token_hash(text)


def client_secret_pepper(keystore: Keystore) -> Pepper:
    """The pepper of client secrets: HKDF of the master key for this purpose only."""
    return Pepper(keystore.derive_key("oauth/oauth_clients.secret_hash"))


def same(a: bytes | None, b: bytes | None) -> bool:
    """Constant-time equality of two digests (None equals nothing)."""
    return a is not None and b is not None and hmac.compare_digest(a, b)
