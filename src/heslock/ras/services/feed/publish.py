"""Writing feed events: :func:`publish`, in the caller's transaction.

A feed event belongs to the change it reports: the lock event row, the command's
outcome, the share. So :func:`publish` adds its row to the caller's session and nothing
else; it is committed (and the node's streams woken, :mod:`.notifier`) with the caller's
transaction, or rolled back with it.

Ids in commit order. A stream resumes "after id N", so an id must never become visible
after a larger one did. The row is therefore not inserted when :func:`publish` is
called but at the very end of the transaction (a ``before_commit`` listener): on
PostgreSQL that step takes the feed's advisory lock (:data:`FEED_LOCK`, held until the
commit) and inserts the pending rows, so ids are allocated in commit order. Holding the
lock only from that last step to the commit keeps it deadlock-free: a transaction that
holds it waits for nothing else (the feed table has no foreign keys, so its inserts take
no row locks on locks, homes, gateways or users). SQLite serialises writers anyway.

Kinds (:class:`FeedKind`) are dotted names, stable strings clients may switch on:

=====================  ============================================================
``lock.<event>``       a lock's own verified event (:class:`~heslock.protocol.EventType`
                       name: ``manual_operation``, ``door``, ``jam``, ``tamper``,
                       ``low_battery``, ``wrong_attempts``, ``factory_reset``,
                       ``auto_relock``, ``remote_operation``)
``lock.online``        a gateway reports the lock again / no online gateway
``lock.offline``       has reported it for ``OFFLINE_AFTER_S`` (:mod:`.monitor`)
``command.<state>``    a command's outcome: ``ok``, ``refused``, ``failed``, ``unknown``
``gateway.online``     a gateway's XMPP session came / went (:mod:`.monitor`)
``gateway.offline``
=====================  ============================================================
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from heslock.errors import UsageError
from heslock.ras.services.feed.notifier import mark_published
from heslock.ras.store.models import FeedEvent, FeedPath, HomeLock
from heslock.ras.store.models.feed import MAX_CREDENTIAL_LEN, MAX_KIND_LEN

#: PostgreSQL advisory lock key of the feed ("hesfeed" as an int64): ids in commit order.
FEED_LOCK: Final = int.from_bytes(b"hesfeed\x00", "big") >> 1
#: ``Session.info`` key of the rows :func:`publish` queued for the commit.
PENDING_KEY: Final = "heslock.feed.pending"


class FeedKind(StrEnum):
    """The kinds the RAS publishes besides ``lock.<event>`` (module docstring)."""

    LOCK_ONLINE = "lock.online"
    LOCK_OFFLINE = "lock.offline"
    GATEWAY_ONLINE = "gateway.online"
    GATEWAY_OFFLINE = "gateway.offline"


def lock_event_kind(event_name: str) -> str:
    """``lock.<event>`` for an EventType name: ``MANUAL_OPERATION`` -> ``lock.manual_operation``."""
    return f"lock.{event_name.lower()}"


def command_kind(state: str) -> str:
    return f"command.{state}"


async def publish(
    session: AsyncSession,
    kind: str,
    *,
    path: FeedPath,
    payload: dict[str, Any] | None = None,
    lock_id: uuid.UUID | None = None,
    home_id: uuid.UUID | None = None,
    gateway_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    credential: str | None = None,
    at: datetime | None = None,
) -> FeedEvent:
    """Add one feed event to ``session``'s transaction (module docstring); its row.

    Either ``user_id`` (addressed to that user) or ``lock_id`` (seen by whoever may see
    the lock's events) must be given, else nobody could ever see it. A lock's event
    names the home the lock is in now unless ``home_id`` is given.
    """
    if user_id is None and lock_id is None:
        raise UsageError("a feed event needs a lock or an addressee")
    if not kind or len(kind) > MAX_KIND_LEN:
        raise UsageError(f"a feed event kind is 1..{MAX_KIND_LEN} characters")
    if credential is not None and len(credential) > MAX_CREDENTIAL_LEN:
        raise UsageError(f"a feed credential is at most {MAX_CREDENTIAL_LEN} characters")
    if lock_id is not None and home_id is None:
        home = await session.get(HomeLock, lock_id)
        home_id = home.home_id if home is not None else None
    row = FeedEvent(
        kind=kind,
        lock_id=lock_id,
        home_id=home_id,
        gateway_id=gateway_id,
        user_id=user_id,
        actor_id=actor_id,
        path=path.value,
        credential=credential,
        payload=dict(payload or {}),
    )
    if at is not None:
        row.created_at = at
    session.sync_session.info.setdefault(PENDING_KEY, []).append(row)
    mark_published(session.sync_session)
    return row  # its id is set when the caller's transaction commits


@event.listens_for(Session, "before_commit")
def _insert_pending(session: Session) -> None:
    """The transaction's feed rows, inserted last, under the feed lock (module docstring)."""
    rows: list[FeedEvent] | None = session.info.pop(PENDING_KEY, None)
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FEED_LOCK})
    session.add_all(rows)  # flushed by the commit, right after this listener


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
