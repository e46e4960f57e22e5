"""Webhook subscriptions of third-party apps and their delivery log (TPSP, issue 8).

- ``webhook_subscriptions``: one URL an app asked the RAS to POST its events to, under
  one grant (the user who consented, the locks and scopes they allowed). The signing
  secret is a keystore envelope (``secret_enc``; during a rotation also
  ``previous_secret_enc`` until ``previous_valid_until``). ``cursor`` is the last feed
  event id settled for this subscription (delivered, or given up after every retry):
  the dispatcher resumes after it, so a RAS restart loses nothing. ``attempt`` and
  ``next_attempt_at`` are the retry state of the event after the cursor.
- ``webhook_deliveries``: one row per delivery attempt (event id, attempt number, HTTP
  status or error, next retry), kept :data:`heslock.ras.services.webhooks.store.LOG_KEEP`
  rows per subscription.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from heslock.ras.store.base import Base, UTCDateTime, new_id, utcnow

#: Longest destination URL accepted (and stored).
MAX_WEBHOOK_URL_LEN = 2048
#: Longest free-text description.
MAX_WEBHOOK_DESCRIPTION_LEN = 200
#: Longest error text kept in the delivery log.
MAX_DELIVERY_ERROR_LEN = 200


class WebhookState(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"
    __table_args__ = (Index("ix_webhook_subscriptions_state_next", "state", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    grant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("oauth_grants.id", ondelete="CASCADE"), index=True
    )
    #: The user who granted (whose rights bound what is delivered).
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(MAX_WEBHOOK_URL_LEN))
    #: Feed kinds, ``family.*`` prefixes or ``*``.
    events: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(String(MAX_WEBHOOK_DESCRIPTION_LEN))
    state: Mapped[str] = mapped_column(String(16), default=WebhookState.ACTIVE.value)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The last feed id settled (module docstring).
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Failed attempts at the event after the cursor.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Since when every attempt has failed (None: the last one succeeded).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Events given up in a row (every retry failed).
    failed_events: Mapped[int] = mapped_column(Integer, default=0)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(64))
    #: A node delivering this subscription holds it until then (several RAS nodes).
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_subscription_id_id", "subscription_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(MAX_DELIVERY_ERROR_LEN))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


__all__ = ["WebhookDelivery", "WebhookState", "WebhookSubscription"]
