"""UDMS one-time codes sent by SMS or e-mail (contact verification and login).

NIST SP 800-63B 5.1.3 (out-of-band authenticators) and our decisions:

- 6 decimal digits from ``secrets`` (the OS CSPRNG): 10^6 values, so at most
  ``otp_max_attempts`` (5) guesses per code give an attacker a 5-in-a-million chance.
- Valid ``otp_ttl_s`` (10 minutes), single use, stored only as an HMAC (see
  :mod:`.keys` for why HMAC with a pepper rather than argon2).
- Checking charges the attempt first, atomically (``UPDATE ... attempts = attempts + 1
  ... RETURNING``), then compares in constant time; consuming is a second conditional
  update, so two concurrent requests with the right code cannot both succeed.
- Sending is capped per destination per day and, for SMS, for the whole RAS per day:
  SMS pumping (toll fraud through premium numbers) costs real money.
- The code appears in no log and no audit record.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.udms import throttle
from heslock.ras.services.udms.keys import Pepper
from heslock.ras.services.udms.rows import rowcount
from heslock.ras.services.udms.senders import OutgoingCode, Senders
from heslock.ras.settings import Settings
from heslock.ras.store.models import OtpCode

log = logging.getLogger(__name__)

CODE_DIGITS: Final = 6
#: Daily caps count over a fixed day-long window per bucket.
CAP_WINDOW: Final = timedelta(days=1)


class Purpose(StrEnum):
    VERIFY_CONTACT = "verify_contact"
    LOGIN = "login"


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


def generate_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


@dataclass(frozen=True)
class Issued:
    code_id: uuid.UUID
    expires_at: datetime


class CodeBook:
    """Issues, delivers and checks one-time codes."""

    def __init__(self, settings: Settings, pepper: Pepper, bucket_pepper: Pepper, senders: Senders):
        self.settings = settings
        self.pepper = pepper
        self.bucket_pepper = bucket_pepper
        self.senders = senders
        self.ttl = timedelta(seconds=settings.otp_ttl_s)
        self.max_attempts = settings.otp_max_attempts

    def send_limits(self, channel: Channel, destination: str) -> dict[str, throttle.Limit]:
        label = self.bucket_pepper.label(destination)
        if channel is Channel.SMS:
            return {
                f"send:sms:{label}": throttle.Limit(
                    self.settings.otp_sms_per_number_per_day, CAP_WINDOW
                ),
                "send:sms:all": throttle.Limit(self.settings.otp_sms_per_day, CAP_WINDOW),
            }
        return {
            f"send:email:{label}": throttle.Limit(
                self.settings.otp_email_per_address_per_day, CAP_WINDOW
            )
        }

    async def issue(
        self,
        session: AsyncSession,
        context: audit.AuditContext,
        *,
        user_id: uuid.UUID,
        purpose: Purpose,
        channel: Channel,
        destination: str,
        now: datetime,
        contact_id: uuid.UUID | None = None,
    ) -> Issued:
        """Create, store (hashed) and deliver a code; 429 past a cap, 503 if undeliverable.

        Earlier unused codes for the same purpose and contact are retired: only the
        newest one works.
        """
        await throttle.charge(session, context, self.send_limits(channel, destination), now)
        retire = update(OtpCode).where(
            OtpCode.user_id == user_id,
            OtpCode.purpose == purpose.value,
            OtpCode.consumed_at.is_(None),
        )
        if contact_id is not None:
            retire = retire.where(OtpCode.contact_id == contact_id)
        await session.execute(
            retire.values(consumed_at=now).execution_options(synchronize_session=False)
        )
        code = generate_code()
        row = OtpCode(
            id=uuid.uuid4(),
            user_id=user_id,
            contact_id=contact_id,
            purpose=purpose.value,
            channel=channel.value,
            destination=destination,
            attempts=0,
            created_at=now,
            expires_at=now + self.ttl,
        )
        row.code_hash = self.pepper.code_digest(row.id, code)
        session.add(row)
        await session.flush()
        message = OutgoingCode(
            channel=channel.value,
            destination=destination,
            code=code,
            purpose=purpose.value,
            domain=self.settings.domain,
            ttl_s=self.settings.otp_ttl_s,
            at=now,
        )
        await self.senders.for_channel(channel.value).send(message)
        log.info("one-time code %s sent by %s for %s", row.id, channel.value, purpose.value)
        return Issued(row.id, row.expires_at)

    async def check(
        self, session: AsyncSession, code_id: uuid.UUID, code: str, now: datetime
    ) -> bool:
        """True once for the right code; the attempt counts either way (flush, not commit)."""
        charged = (
            await session.execute(
                update(OtpCode)
                .where(
                    OtpCode.id == code_id,
                    OtpCode.consumed_at.is_(None),
                    OtpCode.expires_at > now,
                    OtpCode.attempts < self.max_attempts,
                )
                .values(attempts=OtpCode.attempts + 1)
                .returning(OtpCode.code_hash)
                .execution_options(synchronize_session=False)
            )
        ).first()
        if charged is None:
            return False  # expired, used, out of attempts, or no such code
        if not hmac.compare_digest(bytes(charged[0]), self.pepper.code_digest(code_id, code)):
            return False
        consumed = await session.execute(
            update(OtpCode)
            .where(OtpCode.id == code_id, OtpCode.consumed_at.is_(None))
            .values(consumed_at=now)
            .execution_options(synchronize_session=False)
        )
        return rowcount(consumed) == 1
