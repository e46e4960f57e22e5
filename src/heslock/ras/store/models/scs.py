"""SCS tables (ISO/IEC 14543-5-104, security authentication service): audit, throttling.

The audit log is append-only: the migration installs triggers that refuse UPDATE and
DELETE (and TRUNCATE on PostgreSQL). It records ``actor`` as an opaque id (a user or
gateway UUID, ``system`` or ``anonymous``), never a name, phone number or e-mail, so
deleting an account (removing the id -> person mapping) pseudonymises its entries
without rewriting the log. ``details`` must follow the same rule.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from heslock.ras.store.base import Base, UTCDateTime, utcnow
from heslock.ras.store.models.udms import MAX_IP_LEN


class AuditRecord(Base):
    __tablename__ = "audit_log"

    # BIGINT on PostgreSQL; SQLite auto-increments only an INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(128), index=True)
    source_ip: Mapped[str | None] = mapped_column(String(MAX_IP_LEN))
    result: Mapped[str] = mapped_column(String(16))  # ok | denied | failed | error
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RateLimitBucket(Base):
    """A token bucket per guessable thing (``login:acct:<id>``, ``otp:ip:<addr>`` ...)."""

    __tablename__ = "rate_limit_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
