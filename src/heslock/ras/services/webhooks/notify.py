"""Telling an app's owner that one of its webhook subscriptions was disabled.

Two channels: a feed event ``webhook.disabled`` addressed to the owning account (in the
transaction that disables the subscription, so it is never lost), and a message by
e-mail to the owner's verified address after that commit -- through SMTP when the RAS
sends e-mail (``otp_email_sender = "smtp"``), else appended to the development outbox
(``<data_dir>/outbox.jsonl``, read by ``heslock ras outbox``) like verification codes.
A message that cannot be sent is logged and dropped: the feed event remains.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Final

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services.feed.publish import publish
from heslock.ras.services.udms.senders import outbox_path
from heslock.ras.settings import Settings
from heslock.ras.store.models import (
    Contact,
    ContactKind,
    FeedPath,
    OAuthClient,
    WebhookSubscription,
)

logger = logging.getLogger(__name__)

DISABLED_KIND: Final = "webhook.disabled"
PURPOSE: Final = "webhook_disabled"


@dataclass(frozen=True)
class Notice:
    """What the owner is told (no secret in it)."""

    owner_id: uuid.UUID
    subscription_id: uuid.UUID
    app_name: str
    url: str
    reason: str
    at: datetime

    def text(self) -> str:
        return (
            f"The webhook {self.subscription_id} of your app {self.app_name!r} "
            f"({self.url}) was disabled: {self.reason}. Every delivery failed. Fix the "
            "receiver, then re-enable it (POST /v1/webhooks/{id}/enable)."
        )


async def publish_disabled(
    session: AsyncSession, row: WebhookSubscription, reason: str, now: datetime
) -> Notice | None:
    """The feed event, in the caller's transaction; the notice to mail after commit."""
    client = await session.get(OAuthClient, row.client_id)
    if client is None:
        return None
    await publish(
        session,
        DISABLED_KIND,
        path=FeedPath.SYSTEM,
        user_id=client.owner_id,
        payload={
            "subscription_id": str(row.id),
            "client_id": str(row.client_id),
            "app": client.name,
            "url": row.url,
            "reason": reason,
        },
        at=now,
    )
    return Notice(client.owner_id, row.id, client.name, row.url, reason, now)


async def _address(session: AsyncSession, owner_id: uuid.UUID) -> str | None:
    query = (
        select(Contact.address)
        .where(
            Contact.user_id == owner_id,
            Contact.kind == ContactKind.EMAIL.value,
            Contact.verified_at.is_not(None),
        )
        .order_by(Contact.created_at)
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


def _append(path: os.PathLike[str], line: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


async def mail(session: AsyncSession, settings: Settings, notice: Notice) -> None:
    """Send the notice to the owner's verified e-mail address (module docstring)."""
    address = await _address(session, notice.owner_id)
    if address is None:
        return
    try:
        if settings.otp_email_sender == "smtp" and settings.smtp_host:
            message = EmailMessage()
            message["From"] = settings.smtp_from
            message["To"] = address
            message["Subject"] = "A webhook of your heslock app was disabled"
            message.set_content(notice.text() + "\n")
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=password,
                use_tls=settings.smtp_tls == "tls",
                start_tls=settings.smtp_tls == "starttls",
                timeout=settings.smtp_timeout_s,
            )
            return
        record = {
            "at": notice.at.isoformat(),
            "channel": "email",
            "to": address,
            "purpose": PURPOSE,
            "code": None,
            "text": notice.text(),
            "subscription_id": str(notice.subscription_id),
        }
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        await asyncio.to_thread(_append, outbox_path(settings), line)
    except (aiosmtplib.SMTPException, OSError) as exc:
        logger.warning("webhook-disabled notice not sent: %s", type(exc).__name__)
