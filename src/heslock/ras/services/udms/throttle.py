"""Throttling and lockout of guessable things, in the database (SCS ``rate_limit_buckets``).

Every guess at a password or a one-time code, and every code sent, is charged to
buckets — per account, per source address, per destination — *before* the guess is
checked, in one atomic upsert. So concurrent guesses cannot slip past the count, and
because the count lives in the shared database it holds across every RAS node.

A bucket is a fixed window counter: ``tokens`` holds the attempts used in the window
that began at ``updated_at``. Past :attr:`Limit.attempts` the bucket is blocked until
``blocked_until`` and every attempt is answered 429 with ``Retry-After``. A success
clears an account's bucket (the user proved the secret); an address's bucket is only
refunded the one attempt, so a valid account cannot launder failed guesses.

The upsert is ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (SQLite >= 3.35 and
PostgreSQL both have it): PostgreSQL locks the row, SQLite serialises writers.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, case, delete, literal, null, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.errors import TooManyRequests
from heslock.ras.store import UTCDateTime
from heslock.ras.store.models import RateLimitBucket

log = logging.getLogger(__name__)

#: Retry-After is never shorter than this (a 0 would invite an immediate retry storm).
MIN_RETRY_AFTER_S: Final = 1


@dataclass(frozen=True)
class Limit:
    """``attempts`` per ``window``; then blocked for ``lockout`` (None: until the window ends)."""

    attempts: int
    window: timedelta
    lockout: timedelta | None = None


@dataclass(frozen=True)
class Verdict:
    used: int
    blocked_until: datetime | None
    started: bool  # this attempt started the lockout


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(RateLimitBucket)


async def _upsert(session: AsyncSession, key: str, limit: Limit, now: datetime) -> Verdict:
    bucket = RateLimitBucket.__table__.c
    at = literal(now, UTCDateTime())
    stale = and_(
        bucket.updated_at < now - limit.window,
        or_(bucket.blocked_until.is_(None), bucket.blocked_until <= now),
    )
    statement = _insert(session).values(key=key, tokens=1.0, updated_at=now, blocked_until=None)
    statement = statement.on_conflict_do_update(
        index_elements=[bucket.key],
        set_={
            "tokens": case((stale, 1.0), else_=bucket.tokens + 1),
            "updated_at": case((stale, at), else_=bucket.updated_at),
            "blocked_until": case((stale, null()), else_=bucket.blocked_until),
        },
    ).returning(bucket.tokens, bucket.updated_at, bucket.blocked_until)
    row = (await session.execute(statement)).one()
    used, window_start, blocked = int(row[0]), row[1], row[2]
    if blocked is not None and blocked > now:
        return Verdict(used, blocked, started=False)
    if used > limit.attempts:  # over the limit, and not (or no longer) blocked: block now
        blocked = now + limit.lockout if limit.lockout else window_start + limit.window
        await session.execute(
            update(RateLimitBucket).where(RateLimitBucket.key == key).values(blocked_until=blocked)
        )
        return Verdict(used, blocked, started=True)
    return Verdict(used, None, started=False)


async def charge(
    session: AsyncSession,
    context: audit.AuditContext,
    limits: dict[str, Limit],
    now: datetime,
) -> None:
    """Charge one attempt to each bucket; 429 (committed first) if any is blocked.

    The charge is committed before the refusal is raised: the request's unit of work
    rolls back on the error, and the count must stick. A lockout that starts now is
    audited once.
    """
    refused: list[tuple[str, datetime, bool]] = []
    for key, limit in limits.items():
        verdict = await _upsert(session, key, limit, now)
        if verdict.blocked_until is not None:
            refused.append((key, verdict.blocked_until, verdict.started))
    if not refused:
        return
    for key, until, starting in refused:
        if starting:
            await audit.record(
                session,
                context,
                "throttle.lockout",
                audit.AuditResult.DENIED,
                bucket=key,
                until=until.isoformat(),
            )
    await session.commit()
    until = max(when for _, when, _ in refused)
    retry = max(MIN_RETRY_AFTER_S, math.ceil((until - now).total_seconds()))
    log.info("throttled: %d bucket(s) blocked, retry after %d s", len(refused), retry)
    raise TooManyRequests("too many attempts; try again later", retry_after=retry)


async def clear(session: AsyncSession, *keys: str) -> None:
    """Forget ``keys`` (an account proved its secret)."""
    await session.execute(delete(RateLimitBucket).where(RateLimitBucket.key.in_(keys)))


async def refund(session: AsyncSession, key: str) -> None:
    """Give one attempt back to ``key`` (a success from an address)."""
    await session.execute(
        update(RateLimitBucket)
        .where(RateLimitBucket.key == key, RateLimitBucket.tokens > 0)
        .values(tokens=RateLimitBucket.tokens - 1)
    )
