"""Grouping and sharing tables (issue 7): homes, their locks and gateways, and shares.

- ``homes``: a named group with an owner and an IANA time zone (the zone of its locks:
  schedules are evaluated in it).
- ``home_locks`` / ``home_gateways``: a lock (a gateway) belongs to at most one home; the
  primary key on the lock (gateway) id says so.
- ``shares``: one grant to one person. ``scope`` is ``home`` (the whole home, now and
  later: a *membership*) or ``locks`` (the locks in ``share_locks``). The grantee is a user
  once the invitation is accepted; until then only the invited contact (``invite_kind``,
  ``invite_address``, normalised) is known. Role, permissions, paths, validity
  (``permanent`` | ``from_until`` | ``one_time`` with ``uses``/``spent_at``) and the
  schedule (JSON) are what :mod:`heslock.ras.services.sharing.policy` evaluates.
  ``owner_id`` is the owner of the shared locks when the share was made: a share applies
  to a lock only while the lock still has that owner, so a transfer ends every share
  without touching this table. A revoked share keeps its row (``revoked_at``, ``_by``,
  ``_reason``); the audit log holds the history of every change.

JSON columns are checked on the way in (:class:`CheckedJSON`): a schedule, permission
list or path list that the pure core would refuse never reaches the database, whichever
code writes it. The checks are the pure core's own parsers (no I/O, no models).

Indexes serve the listings with keyset paging on ``(created_at, id)``: per lock
(``share_locks`` by lock, ``shares`` by home), per owner, per grantee, and pending
invitations by contact.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Dialect, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from heslock.ras.services.sharing.policy import Path, Permission
from heslock.ras.services.sharing.schedule import MAX_ZONE_NAME, ScheduleError, canonical
from heslock.ras.store.base import Base, UTCDateTime, new_id, utcnow
from heslock.ras.store.models.udms import MAX_EMAIL_LEN

#: Names of homes and labels of shares, as lock names (DDMS).
MAX_NAME_LEN = 64


class ShareScope(StrEnum):
    HOME = "home"  #: every lock of ``home_id``, also those added later
    LOCKS = "locks"  #: the locks listed in ``share_locks``


def _enum_list(kind: type[StrEnum], what: str) -> Callable[[Any], list[str]]:
    allowed = {member.value for member in kind}

    def check(value: Any) -> list[str]:
        if not isinstance(value, list | tuple | set | frozenset) or not value:
            raise ScheduleError(f"{what}: a non-empty list")
        items = [str(v) for v in value]
        unknown = sorted(set(items) - allowed)
        if unknown or len(set(items)) != len(items):
            raise ScheduleError(f"{what}: unknown or repeated values {unknown}")
        return sorted(items)

    return check


check_permissions = _enum_list(Permission, "permissions")
check_paths = _enum_list(Path, "paths")


class CheckedJSON(TypeDecorator[Any]):
    """JSON whose value passes ``check`` (which may canonicalise it) before it is bound."""

    impl = JSON
    cache_ok = True

    def __init__(self, check: Callable[[Any], Any]) -> None:
        super().__init__()
        self.check = check

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.check(value)


class Home(Base):
    __tablename__ = "homes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(MAX_NAME_LEN))
    time_zone: Mapped[str] = mapped_column(String(MAX_ZONE_NAME))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HomeLock(Base):
    """A lock in a home (at most one: the lock id is the key)."""

    __tablename__ = "home_locks"

    lock_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("locks.id", ondelete="CASCADE"), primary_key=True
    )
    home_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("homes.id", ondelete="CASCADE"), index=True
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HomeGateway(Base):
    """A gateway in a home (at most one)."""

    __tablename__ = "home_gateways"

    gateway_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("gateways.id", ondelete="CASCADE"), primary_key=True
    )
    home_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("homes.id", ondelete="CASCADE"), index=True
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Share(Base):
    """One grant to one person (module docstring)."""

    __tablename__ = "shares"
    __table_args__ = (
        Index("ix_shares_owner_id_created_at", "owner_id", "created_at", "id"),
        Index("ix_shares_grantee_id_created_at", "grantee_id", "created_at", "id"),
        Index("ix_shares_home_id_created_at", "home_id", "created_at", "id"),
        Index("ix_shares_invite_kind_invite_address", "invite_kind", "invite_address"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(8))
    #: ``home`` scope: the home shared. ``locks`` scope: the home the share was made in
    #: (its locks' home when they all were in one), so that revoking the membership
    #: revokes it too; None otherwise.
    home_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"))
    grantee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    invite_kind: Mapped[str | None] = mapped_column(String(8))  #: ContactKind value
    invite_address: Mapped[str | None] = mapped_column(String(MAX_EMAIL_LEN))
    label: Mapped[str | None] = mapped_column(String(MAX_NAME_LEN))
    role: Mapped[str] = mapped_column(String(8))
    permissions: Mapped[list[str]] = mapped_column(CheckedJSON(check_permissions))
    paths: Mapped[list[str]] = mapped_column(CheckedJSON(check_paths))
    validity: Mapped[str] = mapped_column(String(16))
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    schedule: Mapped[dict[str, Any] | None] = mapped_column(CheckedJSON(canonical))
    uses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    spent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    revoke_reason: Mapped[str | None] = mapped_column(String(32))


class ShareLock(Base):
    """A lock a ``locks``-scope share targets."""

    __tablename__ = "share_locks"
    __table_args__ = (Index("ix_share_locks_lock_id_share_id", "lock_id", "share_id"),)

    share_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("shares.id", ondelete="CASCADE"), primary_key=True
    )
    lock_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("locks.id", ondelete="CASCADE"), primary_key=True
    )


__all__ = ["Home", "HomeGateway", "HomeLock", "Share", "ShareLock", "ShareScope"]
