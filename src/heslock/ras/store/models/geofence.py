"""Geofencing tables (issue 7): fences, location reports, arrival suggestions.

- ``geofences``: one fence per lock *or* per home (exactly one of ``lock_id`` and
  ``home_id``; each unique, so a lock or home has at most one fence). A home's fence
  applies to every lock in it that has no fence of its own. Its policies are opt-in
  columns (:class:`heslock.ras.services.geofence.policy.Policy`); the centre is the
  owner's personal data, so the row goes with the lock, the home, or the owner's account.
- ``location_reports``: a person's location fixes (personal data). Kept only
  ``location_retention_hours`` (settings) after receipt and deleted with the account;
  indexed per user in order of arrival and by receipt time (the retention sweep).
- ``arrival_suggestions``: "you are arriving at <lock>" raised for one person; holds no
  coordinates, only the lock, the fence, when it was raised, until when it may be
  confirmed and whether it was. Swept with the reports and deleted with the account.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from heslock.ras.services.geofence.policy import (
    DEFAULT_MAX_ACCURACY_M,
    DEFAULT_MAX_AGE_S,
    DEFAULT_SUPPRESS_AFTER_OPEN_S,
    ArrivalMode,
)
from heslock.ras.store.base import Base, UTCDateTime, new_id, utcnow


class Geofence(Base):
    """A fence of one lock or one home, with its opt-in policies (module docstring)."""

    __tablename__ = "geofences"
    __table_args__ = (
        CheckConstraint("(lock_id IS NULL) <> (home_id IS NULL)", name="lock_or_home"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    lock_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("locks.id", ondelete="CASCADE"), unique=True
    )
    home_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("homes.id", ondelete="CASCADE"), unique=True
    )
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float)
    remote_unlock_inside: Mapped[bool] = mapped_column(Boolean, default=False)
    arrival: Mapped[str] = mapped_column(String(16), default=ArrivalMode.OFF.value)
    suppress_after_open_s: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_SUPPRESS_AFTER_OPEN_S
    )
    max_age_s: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_AGE_S)
    max_accuracy_m: Mapped[float] = mapped_column(Float, default=DEFAULT_MAX_ACCURACY_M)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LocationReport(Base):
    """One location fix of one person (personal data: module docstring)."""

    __tablename__ = "location_reports"
    __table_args__ = (
        Index("ix_location_reports_user_id_id", "user_id", "id"),
        Index("ix_location_reports_received_at", "received_at"),
        {"sqlite_autoincrement": True},
    )

    #: Grows with every report (SQLite ``AUTOINCREMENT``, PostgreSQL ``BIGSERIAL``): the
    #: order of arrival, even for reports received in the same instant.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float] = mapped_column(Float)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ArrivalSuggestion(Base):
    """An arrival suggestion for one person and one lock (module docstring)."""

    __tablename__ = "arrival_suggestions"
    __table_args__ = (
        Index("ix_arrival_suggestions_user_id_created_at", "user_id", "created_at"),
        Index("ix_arrival_suggestions_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    lock_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locks.id", ondelete="CASCADE"))
    fence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("geofences.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(16))  #: ArrivalMode at the time it was raised
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


__all__ = ["ArrivalSuggestion", "Geofence", "LocationReport"]
