"""Password hashing for UDMS: argon2id (RFC 9106) through argon2-cffi, off the event loop.

Production uses argon2-cffi's default parameters (RFC 9106 low-memory profile, about
0.36 s per hash on the reference machine, FIELD-NOTES); tests pass cheap parameters
through :class:`~heslock.ras.settings.Settings`. Hashing runs in a worker thread so a
login never stalls other requests. Generated passwords come from the OS CSPRNG.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Final

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from heslock.ras.settings import Settings

#: 18 random bytes = 144 bits, 24 URL-safe characters: beyond any online or offline guess.
GENERATED_PASSWORD_BYTES: Final = 18


class PasswordHasher:
    """argon2id hashing with the configured cost; every call leaves the event loop."""

    def __init__(self, time_cost: int, memory_cost: int, parallelism: int) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordHasher:
        return cls(
            settings.argon2_time_cost, settings.argon2_memory_cost, settings.argon2_parallelism
        )

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """True if ``password`` matches; False for a mismatch or an unreadable hash."""
        try:
            return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters (rehash after a login)."""
        return self._hasher.check_needs_rehash(password_hash)


def generate_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
