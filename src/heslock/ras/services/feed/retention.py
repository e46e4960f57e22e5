"""Feed retention: events older than ``feed_retention_days`` are deleted.

:func:`sweep` deletes in batches of :data:`DELETE_BATCH` rows, one short transaction
each, so a large backlog never holds a long write lock (SQLite) or a huge transaction
(PostgreSQL). :class:`RetentionSweeper` runs it every :data:`SWEEP_EVERY_S` on each node
that runs the relay (``heslock ras serve``); several nodes sweeping at once only delete
the same rows. Ids are never reused (:mod:`heslock.ras.store.models.feed`), so a client
resuming from an id whose event was swept simply gets what is left after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.ras.store.models import FeedEvent

logger = logging.getLogger(__name__)

#: Rows deleted per transaction.
DELETE_BATCH: Final = 5_000
#: Seconds between sweeps (retention is counted in days: hourly is plenty).
SWEEP_EVERY_S: Final = 3600.0

Clock = Callable[[], float]


def cutoff(now: datetime, retention_days: int) -> datetime:
    if retention_days < 1:
        raise ValueError("retention is at least one day")
    return now - timedelta(days=retention_days)


async def sweep(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime, retention_days: int
) -> int:
    """Delete every event created before ``now - retention_days``; how many."""
    before = cutoff(now, retention_days)
    total = 0
    while True:
        async with sessionmaker() as session, session.begin():
            batch = (
                select(FeedEvent.id)
                .where(FeedEvent.created_at < before)
                .order_by(FeedEvent.id)
                .limit(DELETE_BATCH)
            )
            ids = list((await session.execute(batch)).scalars())
            if ids:
                await session.execute(
                    delete(FeedEvent)
                    .where(FeedEvent.id.in_(ids))
                    .execution_options(synchronize_session=False)
                )
        total += len(ids)
        if len(ids) < DELETE_BATCH:
            break
    if total:
        logger.info("feed retention: %d events older than %s deleted", total, before.isoformat())
    return total


class RetentionSweeper:
    """Runs :func:`sweep` now and then every ``every_s`` (module docstring)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        retention_days: int,
        clock: Clock,
        every_s: float = SWEEP_EVERY_S,
    ) -> None:
        cutoff(datetime.now(UTC), retention_days)  # validates
        self.sessionmaker = sessionmaker
        self.retention_days = retention_days
        self.clock = clock
        self.every_s = every_s
        self.deleted = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ras-feed-retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> int:
        now = datetime.fromtimestamp(self.clock(), UTC)
        deleted = await sweep(self.sessionmaker, now, self.retention_days)
        self.deleted += deleted
        return deleted

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                logger.exception("feed retention sweep failed; again in %.0f s", self.every_s)
            await asyncio.sleep(self.every_s)
