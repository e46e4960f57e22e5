"""The UDMS service object: settings, keys, senders and the shared password check.

One :class:`Udms` is built per app (``create_app``) and handed to the routers; it holds
no per-request state. The per-request work lives in :mod:`.accounts` and :mod:`.login`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.keystore import Keystore
from heslock.ras.passwords import PasswordHasher
from heslock.ras.services import audit
from heslock.ras.services.errors import Unauthenticated
from heslock.ras.services.udms import throttle
from heslock.ras.services.udms.codes import CodeBook
from heslock.ras.services.udms.keys import BUCKET_PEPPER, OTP_PEPPER, Pepper, derive_key
from heslock.ras.services.udms.passwords import normalise
from heslock.ras.services.udms.senders import Senders, senders_from_settings
from heslock.ras.services.udms.sessions import SessionService
from heslock.ras.services.udms.totp import TotpStore
from heslock.ras.settings import Settings
from heslock.ras.store.models import PasswordCredential

#: Called when an account is deleted, in its transaction: DDMS revokes the user's
#: grants (gateways, locks) here. Arguments: session, user id, audit context, now.
DeletionHook = Callable[[AsyncSession, uuid.UUID, audit.AuditContext, datetime], Awaitable[None]]

#: Hashed once per process: an unknown login is checked against it, so it costs the
#: same argon2 time as a known one and timing does not reveal which logins exist.
_DUMMY_PASSWORD: Final = "heslock-dummy-password-for-timing"  # noqa: S105  (never valid)


class Scope:
    """Names of the things that can be guessed, for bucket keys."""

    PASSWORD = "password"  # noqa: S105  (a bucket name, not a password)
    CODE = "code"  # login second factor (one-time code or TOTP)
    VERIFY = "verify"  # contact verification codes
    REGISTER = "register"
    SEND = "send-req"  # requests that make the RAS send a code


class Udms:
    def __init__(
        self,
        settings: Settings,
        keystore: Keystore,
        hasher: PasswordHasher,
        senders: Senders | None = None,
    ) -> None:
        self.settings = settings
        self.keystore = keystore
        self.hasher = hasher
        self.senders = senders or senders_from_settings(settings)
        self.bucket_pepper = Pepper(derive_key(keystore, BUCKET_PEPPER))
        self.codes = CodeBook(
            settings, Pepper(derive_key(keystore, OTP_PEPPER)), self.bucket_pepper, self.senders
        )
        self.totp = TotpStore(keystore)
        self.sessions = SessionService(settings)
        window = timedelta(seconds=settings.limits_window_s)
        lockout = timedelta(seconds=settings.limits_lockout_s)
        self.account_limit = throttle.Limit(settings.limits_account_attempts, window, lockout)
        self.address_limit = throttle.Limit(settings.limits_address_attempts, window, lockout)
        self.deletion_hooks: list[DeletionHook] = []
        self._dummy_hash: str | None = None

    def limits(
        self, scope: str, user_id: uuid.UUID | None, source_ip: str | None
    ) -> dict[str, throttle.Limit]:
        """Buckets for one guess: per account and per source address."""
        found: dict[str, throttle.Limit] = {}
        if user_id is not None:
            found[f"{scope}:acct:{user_id}"] = self.account_limit
        if source_ip:
            found[f"{scope}:ip:{source_ip}"] = self.address_limit
        return found

    async def succeeded(
        self, session: AsyncSession, scope: str, user_id: uuid.UUID, source_ip: str | None
    ) -> None:
        """A guess was right: clear the account's bucket, refund the address one attempt."""
        await throttle.clear(session, f"{scope}:acct:{user_id}")
        if source_ip:
            await throttle.refund(session, f"{scope}:ip:{source_ip}")

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hasher.hash(_DUMMY_PASSWORD)
        return self._dummy_hash

    async def verify_password(
        self,
        session: AsyncSession,
        context: audit.AuditContext,
        user_id: uuid.UUID | None,
        password: str,
        now: datetime,
        *,
        action: str,
    ) -> None:
        """Check ``user_id``'s password, throttled; 401 (audited, committed) if wrong.

        The attempt is charged and committed *before* argon2 runs: concurrent guesses
        all count, and SQLite's writer lock is not held during the slow hash.
        """
        await throttle.charge(
            session, context, self.limits(Scope.PASSWORD, user_id, context.source_ip), now
        )
        await session.commit()
        credential = await session.get(PasswordCredential, user_id) if user_id else None
        stored = credential.password_hash if credential else await self._dummy()
        matches = await self.hasher.verify(stored, normalise(password))
        if credential is None or user_id is None or not matches:
            target = f"user:{user_id}" if user_id else None
            await audit.record_and_commit(
                session, context, action, audit.AuditResult.DENIED, target, reason="password"
            )
            raise Unauthenticated("wrong login or password")
        await self.succeeded(session, Scope.PASSWORD, user_id, context.source_ip)
        if self.hasher.needs_rehash(credential.password_hash):
            credential.password_hash = await self.hasher.hash(normalise(password))
