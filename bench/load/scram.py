"""SCRAM-SHA-256 for the load generator's clients (RFC 5802, RFC 7677), with cached keys.

A SCRAM client normally derives ``SaltedPassword = PBKDF2(password, salt, i)`` at every
login: 10,000 iterations are ~5 ms of CPU, which would cap one load generator at ~200
logins per second and measure the client, not the server. Real clients may keep the
derived keys instead of the password (RFC 5802 section 5.1 lets a client store
``ClientKey``/``ServerKey``); :class:`ScramKeys` is that cache, computed once per account
at provisioning time, with the same salt and iteration count the server stores. When the
server offers another salt or count the client derives the keys afresh, as any client
would. The server side is untouched: it never runs PBKDF2 at login either.

Provisioning derives both sides from one PBKDF2 run (:func:`derive`): the server's
verifiers (``StoredKey = H(ClientKey)``, ``ServerKey``) are exactly what
``scramp.ScramMechanism('SCRAM-SHA-256').make_auth_info`` writes for that password, salt
and count (tests/unit/bench/test_load_scram.py checks it against scramp's server).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

MECHANISM: Final = "SCRAM-SHA-256"
GS2_HEADER: Final = "n,,"
_CBIND: Final = base64.b64encode(GS2_HEADER.encode()).decode()


class ScramFailure(Exception):
    """The server's messages were malformed, or its signature was wrong."""


@dataclass(frozen=True, slots=True)
class ScramKeys:
    """What a client keeps per account (and what the server's verifiers come from)."""

    salt: bytes
    iterations: int
    client_key: bytes
    server_key: bytes

    @property
    def stored_key(self) -> bytes:
        return hashlib.sha256(self.client_key).digest()


def derive(password: str, salt: bytes, iterations: int) -> ScramKeys:
    """One PBKDF2-HMAC-SHA-256 run: the client's keys and the server's verifiers."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return ScramKeys(salt, iterations, client_key, server_key)


def _escape(username: str) -> str:
    return username.replace("=", "=3D").replace(",", "=2C")


def _fields(message: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in message.split(","):
        name, sep, value = part.partition("=")
        if not sep or len(name) != 1:
            raise ScramFailure(f"malformed SCRAM attribute {part[:20]!r}")
        out[name] = value
    return out


class ScramClient:
    """One client exchange: :meth:`first`, :meth:`final`, :meth:`verify` (no binding)."""

    __slots__ = ("_bare", "_expected", "_nonce", "keys", "password")

    def __init__(self, username: str, password: str, keys: ScramKeys | None = None) -> None:
        self.password = password
        self.keys = keys
        self._nonce = secrets.token_urlsafe(18)
        self._bare = f"n={_escape(username)},r={self._nonce}"
        self._expected = b""

    def first(self) -> str:
        """client-first-message."""
        return GS2_HEADER + self._bare

    def final(self, server_first: str) -> str:
        """client-final-message for ``server_first`` (derives keys only on a cache miss)."""
        attrs = _fields(server_first)
        try:
            nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        except (KeyError, ValueError) as exc:
            raise ScramFailure(f"malformed server-first: {exc}") from None
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise ScramFailure("server nonce does not extend ours")
        if iterations < 4096:
            raise ScramFailure(f"iteration count {iterations} below RFC 7677's 4096")
        keys = self.keys
        if keys is None or keys.salt != salt or keys.iterations != iterations:
            keys = self.keys = derive(self.password, salt, iterations)
        without_proof = f"c={_CBIND},r={nonce}"
        auth_message = f"{self._bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(keys.stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(keys.client_key, signature, strict=True))
        self._expected = hmac.digest(keys.server_key, auth_message, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}"

    def verify(self, server_final: str) -> None:
        """Check the server's signature (mutual authentication); raises ScramFailure."""
        attrs = _fields(server_final)
        if "e" in attrs:
            raise ScramFailure(f"server error {attrs['e']}")
        try:
            signature = base64.b64decode(attrs["v"])
        except (KeyError, ValueError):
            raise ScramFailure("malformed server-final") from None
        if not self._expected or not hmac.compare_digest(signature, self._expected):
            raise ScramFailure("wrong server signature")
