"""UDMS second factor by TOTP (RFC 6238) with pyotp; seeds encrypted by the keystore.

- Seeds are 160 random bits (RFC 4226 section 4, R6 recommends 160), base32 for the
  ``otpauth://`` URI that authenticator apps scan. Stored only as a keystore envelope
  (slot ``totp_secrets.secret_enc``, bound to the user id).
- Enrolment is pending until the user confirms one code from the app: a typo in the
  scanned secret must not lock anyone out.
- A code is accepted for the current 30 s step or one step either side (clock drift,
  RFC 6238 section 5.2), compared in constant time, and only for a step *after* the
  last one accepted (``last_step``, advanced with a conditional update): the same code
  cannot be replayed within its window, even by two concurrent requests.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import pyotp
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.keystore import TOTP_SECRET, Keystore
from heslock.ras.services.udms.rows import rowcount
from heslock.ras.store.models import TotpSecret

SEED_BYTES: Final = 20  # 160 bits (RFC 4226, R6)
STEP_S: Final = 30  # RFC 6238 default time step X
DIGITS: Final = 6  # what every authenticator app shows
#: Steps accepted either side of now: 1 = +-30 s of clock drift (RFC 6238 5.2).
DRIFT_STEPS: Final = 1
ISSUER: Final = "heslock"


def new_seed() -> str:
    return base64.b32encode(secrets.token_bytes(SEED_BYTES)).decode("ascii")


def step_of(now: datetime) -> int:
    return int(now.timestamp()) // STEP_S


def matching_step(seed: str, code: str, now: datetime, after: int | None) -> int | None:
    """The step in now +- DRIFT_STEPS whose code is ``code`` and that is newer than ``after``."""
    totp = pyotp.TOTP(seed, digits=DIGITS, interval=STEP_S)
    current = step_of(now)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        # Compare every candidate (no early exit) so timing says nothing about which matched.
        if hmac.compare_digest(totp.generate_otp(step), code) and (after is None or step > after):
            found = step
    return found


@dataclass(frozen=True)
class Enrolment:
    seed: str
    uri: str


class TotpStore:
    def __init__(self, keystore: Keystore) -> None:
        self.keystore = keystore

    def _seed(self, row: TotpSecret) -> str:
        return self.keystore.open(TOTP_SECRET, str(row.user_id), row.secret_enc).decode("ascii")

    async def enrol(
        self, session: AsyncSession, user_id: uuid.UUID, label: str, now: datetime
    ) -> Enrolment:
        """A new pending seed, replacing any earlier one (confirmed or not)."""
        seed = new_seed()
        sealed = self.keystore.seal(TOTP_SECRET, str(user_id), seed.encode("ascii"))
        await session.execute(delete(TotpSecret).where(TotpSecret.user_id == user_id))
        session.add(TotpSecret(user_id=user_id, secret_enc=sealed, created_at=now))
        await session.flush()
        uri = pyotp.TOTP(seed, digits=DIGITS, interval=STEP_S).provisioning_uri(
            name=label, issuer_name=ISSUER
        )
        return Enrolment(seed, uri)

    async def is_active(self, session: AsyncSession, user_id: uuid.UUID) -> bool:
        row = await session.get(TotpSecret, user_id)
        return row is not None and row.confirmed_at is not None

    async def verify(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        code: str,
        now: datetime,
        *,
        confirming: bool = False,
    ) -> bool:
        """True if ``code`` is valid now and unused; ``confirming`` checks a pending seed."""
        row = (
            await session.execute(
                select(TotpSecret)
                .where(TotpSecret.user_id == user_id)
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if row is None or (row.confirmed_at is None) is not confirming:
            return False
        step = matching_step(self._seed(row), code, now, row.last_step)
        if step is None:
            return False
        values: dict[str, object] = {"last_step": step}
        if confirming:
            values["confirmed_at"] = now
        advanced = await session.execute(
            update(TotpSecret)
            .where(
                TotpSecret.user_id == user_id,
                or_(TotpSecret.last_step.is_(None), TotpSecret.last_step < step),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return rowcount(advanced) == 1
