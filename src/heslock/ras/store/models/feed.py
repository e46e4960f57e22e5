"""The user-visible event feed: what happened to a user's locks, gateways and shares.

Issue 7, "Live events". One ``feed_events`` row per thing a person may want to see: a
lock's own event (knob turned, door, jam, tamper, low battery, wrong attempts, factory
reset), a command's outcome, a gateway or lock going offline or coming back, a share
change. Its ``id`` is the Server-Sent Events id (``GET /v1/events/stream``): it only grows,
so "everything after id N" is how a client resumes with ``Last-Event-ID``. Hence:

- on SQLite the table is ``AUTOINCREMENT``: an id is never reused, even after retention
  emptied the table (a plain rowid table would restart at max+1);
- on PostgreSQL a ``BIGSERIAL``, and :mod:`heslock.ras.services.feed.publish` inserts the
  rows last, under a transaction-scoped advisory lock, so ids are allocated in commit
  order (a reader that saw id N never later finds an N-1 committed behind its back).

Who sees a row (:mod:`heslock.ras.services.feed.visibility`): ``user_id`` set -- that user
only (gateway events go to the gateway's owner, share events to each person concerned);
``user_id`` None -- whoever may see ``lock_id``'s events under the sharing policy.

Attribution: ``actor_id`` (who did it, when a person did), ``path`` (``remote``,
``nearby``, ``manual`` at the lock, ``system`` for the RAS's own observations) and
``credential`` (what the actor used: ``owner``, ``share:<id>``, ``gateway:<jid>``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from heslock.ras.store.base import Base, UTCDateTime, utcnow

#: ``kind`` is a dotted name (``lock.manual_operation``); 48 characters bound it.
MAX_KIND_LEN = 48
#: ``credential``: ``share:<uuid>`` (42) or ``gateway:<bare JID>`` (bounded like a JID).
MAX_CREDENTIAL_LEN = 330


class FeedPath(StrEnum):
    """How the thing happened (the attribution's "which path")."""

    REMOTE = "remote"  #: through the RAS and a gateway
    NEARBY = "nearby"  #: a client's own BLE link
    MANUAL = "manual"  #: a person at the lock (knob, key, keypad)
    SYSTEM = "system"  #: the RAS's or the lock's own observation


class FeedEvent(Base):
    """One user-visible event (module docstring)."""

    __tablename__ = "feed_events"
    __table_args__ = (
        Index("ix_feed_events_lock_id_id", "lock_id", "id"),
        Index("ix_feed_events_user_id_id", "user_id", "id"),
        Index("ix_feed_events_created_at", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(MAX_KIND_LEN))
    # No foreign keys, on purpose: the feed is a log of what happened, inserted at the end
    # of the transaction under the feed lock, and an FK check would take row locks on
    # locks/homes/gateways/users there (a deadlock against any transaction holding one
    # of those rows and waiting for the feed lock). Deleted rows' events become invisible
    # (visibility follows the lock) and go with retention; account deletion deletes the
    # person's explicitly (heslock.ras.services.feed.accounts).
    lock_id: Mapped[uuid.UUID | None] = mapped_column()
    home_id: Mapped[uuid.UUID | None] = mapped_column()
    gateway_id: Mapped[uuid.UUID | None] = mapped_column()
    #: Addressed to this user only (module docstring); None: by the lock's visibility.
    user_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_id: Mapped[uuid.UUID | None] = mapped_column()
    path: Mapped[str] = mapped_column(String(8))
    credential: Mapped[str | None] = mapped_column(String(MAX_CREDENTIAL_LEN))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


__all__ = ["FeedEvent", "FeedPath"]
