"""What the feed forgets when an account is deleted (UDMS account deletion hooks).

The feed is personal data: who unlocked which door when. ``feed_events`` has no foreign
keys (:mod:`.publish` says why), so nothing cascades; the deletion does it explicitly, in
the deletion's own transaction, in two hooks:

- :func:`release_account` runs **first** (before DDMS deletes the person's locks): the
  events addressed to the person, and every event of the locks they own, are deleted;
  events of other people's locks that name them as the actor keep the event but lose
  the name (``actor_id`` NULL), as the owner's history of their own door;
- :func:`forget_pending` runs **last**: the other hooks publish (shares revoked, gateways
  gone) in this same transaction, and those rows are inserted only at its commit, so the
  ones addressed to the person are dropped and the others lose the actor.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.feed.publish import PENDING_KEY
from heslock.ras.store.models import FeedEvent, Lock

log = logging.getLogger(__name__)


async def release_account(
    session: AsyncSession, user_id: uuid.UUID, ctx: audit.AuditContext, now: datetime
) -> None:
    """Deletion hook, first in line (module docstring)."""
    owned = select(Lock.id).where(Lock.owner_id == user_id)
    await session.execute(
        delete(FeedEvent).where(or_(FeedEvent.user_id == user_id, FeedEvent.lock_id.in_(owned)))
    )
    await session.execute(
        update(FeedEvent).where(FeedEvent.actor_id == user_id).values(actor_id=None)
    )
    log.info("feed released a deleted account")


async def forget_pending(
    session: AsyncSession, user_id: uuid.UUID, ctx: audit.AuditContext, now: datetime
) -> None:
    """Deletion hook, last in line: the transaction's own queued rows (module docstring)."""
    pending: list[FeedEvent] = session.sync_session.info.get(PENDING_KEY, [])
    kept = [row for row in pending if row.user_id != user_id]
    for row in kept:
        if row.actor_id == user_id:
            row.actor_id = None
    pending[:] = kept
