"""Delivery of UDMS one-time codes behind one small interface: outbox, SMTP, SMS gateway.

A :class:`CodeSender` delivers an :class:`OutgoingCode` or raises :class:`DeliveryFailed`.
Three implementations:

- :class:`OutboxSender` appends one JSON line per code to ``<data_dir>/outbox.jsonl``
  (mode 0600) for ``heslock ras outbox [--follow]``: the development default, used for a
  channel when no real sender is configured for it. The outbox is a delivery channel,
  so it holds the code; no *log* ever does.
- :class:`SmtpSender` sends e-mail with aiosmtplib (STARTTLS, implicit TLS, or plain
  for a local relay), optionally authenticated.
- :class:`HttpSmsSender` POSTs JSON ``{"to", "text"}`` with a bearer token to an SMS
  gateway's HTTPS endpoint (httpx) and expects a 2xx answer.

Caps against SMS pumping live with the caller (:mod:`.codes`), before any sender runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Final, Protocol

import aiosmtplib
import httpx

from heslock.ras.services.errors import Unavailable
from heslock.ras.settings import Settings

log = logging.getLogger(__name__)

OUTBOX_NAME: Final = "outbox.jsonl"
#: An SMS is 160 GSM-7 characters; our text stays within one segment.
SMS_MAX_CHARS: Final = 160


class DeliveryFailed(Unavailable):
    """The code could not be handed to its channel (the request fails with 503)."""


@dataclass(frozen=True)
class OutgoingCode:
    channel: str  # "sms" | "email"
    destination: str  # E.164 number or e-mail address
    code: str
    purpose: str  # "verify_contact" | "login"
    domain: str  # the RAS's DNS name (WebOTP origin line, sender identity)
    ttl_s: int
    at: datetime

    def __repr__(self) -> str:  # never show the code, not even in a traceback
        return f"OutgoingCode(channel={self.channel!r}, purpose={self.purpose!r})"

    @property
    def minutes(self) -> int:
        return max(1, self.ttl_s // 60)

    def sms_text(self) -> str:
        # Last line: the WebOTP / origin-bound one-time code format ("@domain #code").
        text = f"heslock code {self.code} (valid {self.minutes} min)\n\n@{self.domain} #{self.code}"
        return text[:SMS_MAX_CHARS]

    def email(self, sender: str) -> EmailMessage:
        what = "verification" if self.purpose == "verify_contact" else "login"
        message = EmailMessage()
        message["From"] = sender
        message["To"] = self.destination
        message["Subject"] = f"Your heslock {what} code"
        message.set_content(
            f"Your heslock {what} code is {self.code}.\n"
            f"It is valid for {self.minutes} minutes and can be used once.\n\n"
            "If you did not ask for it, someone may know your password: change it.\n"
        )
        return message


class CodeSender(Protocol):
    """Delivers one code; raises :class:`DeliveryFailed` if it could not."""

    async def send(self, message: OutgoingCode) -> None:
        """Hand ``message`` to its channel."""


class OutboxSender:
    """Appends codes to a JSONL file (development and tests)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    def _append(self, line: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    async def send(self, message: OutgoingCode) -> None:
        record = {
            "at": message.at.isoformat(),
            "channel": message.channel,
            "to": message.destination,
            "purpose": message.purpose,
            "code": message.code,
            "text": message.sms_text() if message.channel == "sms" else None,
        }
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        try:
            async with self._lock:
                await asyncio.to_thread(self._append, line)
        except OSError:
            log.exception("outbox %s not writable", self.path)
            raise DeliveryFailed("the code could not be delivered") from None


class SmtpSender:
    """E-mail through an SMTP server (aiosmtplib)."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        tls: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.tls, self.username, self._password = tls, username, password
        self.timeout_s = timeout_s
        self.tls_context = tls_context or ssl.create_default_context()

    async def send(self, message: OutgoingCode) -> None:
        try:
            await aiosmtplib.send(
                message.email(self.sender),
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self._password,
                use_tls=self.tls == "tls",
                start_tls=self.tls == "starttls",
                tls_context=self.tls_context,
                timeout=self.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning(
                "SMTP delivery via %s:%d failed: %s", self.host, self.port, type(exc).__name__
            )
            raise DeliveryFailed("the code could not be delivered by e-mail") from None


class HttpSmsSender:
    """SMS through an HTTP gateway: ``POST url`` with ``Authorization: Bearer <token>``."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.url, self._token, self.timeout_s, self.verify = url, token, timeout_s, verify

    async def send(self, message: OutgoingCode) -> None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, verify=self.verify) as client:
                response = await client.post(
                    self.url,
                    json={"to": message.destination, "text": message.sms_text()},
                    headers={"Authorization": f"Bearer {self._token}"},
                )
        except httpx.HTTPError as exc:
            log.warning("SMS gateway unreachable: %s", type(exc).__name__)
            raise DeliveryFailed("the code could not be delivered by SMS") from None
        if not response.is_success:
            log.warning("SMS gateway answered %d", response.status_code)
            raise DeliveryFailed("the code could not be delivered by SMS")


@dataclass(frozen=True)
class Senders:
    """One sender per channel."""

    email: CodeSender
    sms: CodeSender

    def for_channel(self, channel: str) -> CodeSender:
        return self.sms if channel == "sms" else self.email


def outbox_path(settings: Settings) -> Path:
    return settings.data_dir / OUTBOX_NAME


def senders_from_settings(settings: Settings) -> Senders:
    outbox = OutboxSender(outbox_path(settings))
    email: CodeSender = outbox
    sms: CodeSender = outbox
    if settings.otp_email_sender == "smtp" and settings.smtp_host:
        email = SmtpSender(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            timeout_s=settings.smtp_timeout_s,
        )
    if settings.otp_sms_sender == "http" and settings.sms_url and settings.sms_token:
        sms = HttpSmsSender(
            settings.sms_url,
            settings.sms_token.get_secret_value(),
            timeout_s=settings.sms_timeout_s,
        )
    return Senders(email=email, sms=sms)
