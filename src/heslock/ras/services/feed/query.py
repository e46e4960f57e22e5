"""Reading the feed: filtered, keyset-paged listings and the live stream's catch-up.

Both read by id, the SSE event id. A listing pages newest first (``before``: the smallest
id of the previous page) or, with ``after``, oldest first from a cursor (what a stream
catching up after ``Last-Event-ID`` reads). :func:`read_after` also returns the highest
id committed when it read (:func:`high_water`), so a stream's cursor moves past events
the user may not see instead of scanning them again at every wake; that is sound because
ids are allocated in commit order (:mod:`heslock.ras.store.models.feed`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.errors import UsageError
from heslock.ras.store.models import FeedEvent

#: Kinds named in one filter at most.
MAX_KIND_FILTERS: Final = 32
#: Rows an app's listing examines per page at most (addressed rows are filtered here).
MAX_APP_SCAN: Final = 5_000

#: For an app (issue 8): which of the events addressed to its user it may see.
Addressed = Callable[[FeedEvent], Awaitable[bool]]


@dataclass(frozen=True)
class FeedFilter:
    """What a client narrows its feed to; every field optional.

    ``kinds``: exact kinds, or a family when it ends in ``.*`` (``lock.*``).
    ``since``/``until``: ``created_at`` bounds, inclusive/exclusive.
    """

    lock_id: uuid.UUID | None = None
    kinds: tuple[str, ...] = field(default=())
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if len(self.kinds) > MAX_KIND_FILTERS:
            raise UsageError(f"at most {MAX_KIND_FILTERS} kinds per filter")
        for stamp in (self.since, self.until):
            if stamp is not None and stamp.tzinfo is None:
                raise UsageError("since/until need a time zone")

    def clause(self) -> ColumnElement[bool] | None:
        parts: list[ColumnElement[bool]] = []
        if self.lock_id is not None:
            parts.append(FeedEvent.lock_id == self.lock_id)
        if self.kinds:
            exact = [k for k in self.kinds if not k.endswith(".*")]
            families = [k[:-1] for k in self.kinds if k.endswith(".*")]
            options: list[ColumnElement[bool]] = []
            if exact:
                options.append(FeedEvent.kind.in_(exact))
            options += [FeedEvent.kind.startswith(f, autoescape=True) for f in families]
            parts.append(or_(*options))
        if self.since is not None:
            parts.append(FeedEvent.created_at >= self.since)
        if self.until is not None:
            parts.append(FeedEvent.created_at < self.until)
        return and_(*parts) if parts else None


def visible_to(user_id: uuid.UUID | None, locks: Collection[uuid.UUID]) -> ColumnElement[bool]:
    """Events addressed to the user, or about a lock they may see (:mod:`.visibility`).

    ``user_id`` None (a third-party app): the locks' events only, nothing addressed.
    """
    by_lock = and_(FeedEvent.user_id.is_(None), FeedEvent.lock_id.in_(list(locks)))
    if user_id is None:
        return by_lock if locks else false()
    addressed = FeedEvent.user_id == user_id
    if not locks:
        return addressed
    return or_(addressed, by_lock)


def _filtered(
    user_id: uuid.UUID | None, locks: Collection[uuid.UUID], flt: FeedFilter
) -> Select[FeedEvent]:
    query = select(FeedEvent).where(visible_to(user_id, locks))
    extra = flt.clause()
    return query.where(extra) if extra is not None else query


async def list_feed(
    session: AsyncSession,
    user_id: uuid.UUID | None,
    locks: Collection[uuid.UUID],
    flt: FeedFilter,
    *,
    limit: int,
    before: int | None = None,
    after: int | None = None,
    app_user: uuid.UUID | None = None,
    addressed: Addressed | None = None,
) -> list[FeedEvent]:
    """One page (module docstring): newest first, or oldest first with ``after``.

    ``app_user`` and ``addressed`` (an app's listing, ``user_id`` None): the rows
    addressed to ``app_user`` are candidates too, kept when ``addressed`` says so.
    """
    if before is not None and after is not None:
        raise UsageError("page with before or after, not both")
    if app_user is not None and addressed is not None:
        return await _list_for_app(
            session, app_user, locks, flt, addressed, limit=limit, before=before, after=after
        )
    query = _filtered(user_id, locks, flt)
    if after is not None:
        query = query.where(FeedEvent.id > after).order_by(FeedEvent.id)
    else:
        if before is not None:
            query = query.where(FeedEvent.id < before)
        query = query.order_by(FeedEvent.id.desc())
    return list((await session.execute(query.limit(limit))).scalars())


async def _list_for_app(
    session: AsyncSession,
    app_user: uuid.UUID,
    locks: Collection[uuid.UUID],
    flt: FeedFilter,
    addressed: Addressed,
    *,
    limit: int,
    before: int | None,
    after: int | None,
) -> list[FeedEvent]:
    """An app's page: its locks' events and the addressed ones ``addressed`` keeps,
    read in chunks until the page is full (at most :data:`MAX_APP_SCAN` rows)."""
    whose = or_(visible_to(None, locks), FeedEvent.user_id == app_user)
    extra = flt.clause()
    base = select(FeedEvent).where(whose)
    if extra is not None:
        base = base.where(extra)
    found: list[FeedEvent] = []
    scanned = 0
    while len(found) < limit and scanned < MAX_APP_SCAN:
        query = base
        if after is not None:
            query = query.where(FeedEvent.id > after).order_by(FeedEvent.id)
        else:
            if before is not None:
                query = query.where(FeedEvent.id < before)
            query = query.order_by(FeedEvent.id.desc())
        rows = list((await session.execute(query.limit(limit))).scalars())
        scanned += len(rows)
        for row in rows:
            if (row.user_id is None or await addressed(row)) and len(found) < limit:
                found.append(row)
        if len(rows) < limit:
            break
        if after is not None:
            after = rows[-1].id
        else:
            before = rows[-1].id
    return found


async def high_water(session: AsyncSession) -> int:
    """The highest feed id committed (0 for an empty feed)."""
    return int((await session.execute(select(func.max(FeedEvent.id)))).scalar_one() or 0)


async def read_after(
    session: AsyncSession,
    user_id: uuid.UUID | None,
    visible: Callable[[set[uuid.UUID]], Awaitable[set[uuid.UUID]]],
    flt: FeedFilter,
    cursor: int,
    limit: int,
    *,
    app_user: uuid.UUID | None = None,
    addressed: Addressed | None = None,
) -> tuple[list[FeedEvent], int, bool]:
    """The user's events after ``cursor``, oldest first, the new cursor, and whether the
    scan was full (more may follow at once).

    Scans at most ``limit`` candidates (addressed to the user, or to a lock; id and lock
    only), asks ``visible`` which of their locks the user may see, then loads those rows.
    The new cursor is the last candidate scanned when the scan is full, else the
    high-water mark read *before* scanning (every id up to it was committed or rolled
    back). ``user_id`` None (an app, a webhook): locks' events, and the rows addressed
    to ``app_user`` that ``addressed`` keeps.
    """
    high = await high_water(session)
    if high <= cursor:
        return [], cursor, False
    addressee = user_id if user_id is not None else app_user
    whose = (
        FeedEvent.user_id.is_(None)
        if addressee is None
        else or_(FeedEvent.user_id == addressee, FeedEvent.user_id.is_(None))
    )
    scan = select(FeedEvent.id, FeedEvent.lock_id, FeedEvent.user_id).where(
        FeedEvent.id > cursor, FeedEvent.id <= high, whose
    )
    extra = flt.clause()
    if extra is not None:
        scan = scan.where(extra)
    candidates = list((await session.execute(scan.order_by(FeedEvent.id).limit(limit))).all())
    locks = {lock for _, lock, owner in candidates if owner is None and lock is not None}
    allowed = await visible(locks) if locks else set()
    ids = [
        event_id
        for event_id, lock, owner in candidates
        if (owner is not None and owner == addressee) or (owner is None and lock in allowed)
    ]
    rows: list[FeedEvent] = []
    if ids:
        query = select(FeedEvent).where(FeedEvent.id.in_(ids)).order_by(FeedEvent.id)
        rows = list((await session.execute(query)).scalars())
    if user_id is None and addressed is not None:
        rows = [row for row in rows if row.user_id is None or await addressed(row)]
    if len(candidates) == limit:
        return rows, candidates[-1][0], True
    return rows, high, False


def view(row: FeedEvent) -> dict[str, Any]:
    """The JSON shape of one event (REST listing and SSE ``data:`` alike)."""
    return {
        "id": row.id,
        "kind": row.kind,
        "created_at": row.created_at.isoformat(),
        "lock_id": str(row.lock_id) if row.lock_id is not None else None,
        "home_id": str(row.home_id) if row.home_id is not None else None,
        "gateway_id": str(row.gateway_id) if row.gateway_id is not None else None,
        "actor_id": str(row.actor_id) if row.actor_id is not None else None,
        "path": row.path,
        "credential": row.credential,
        "payload": dict(row.payload or {}),
    }
