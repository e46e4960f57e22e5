"""Once-per-cluster work: a leader among the RAS processes, by a PostgreSQL advisory lock.

Several RAS processes (``heslock ras serve --workers N``, or several nodes) share one
PostgreSQL database. Most of their background work is safe to run in every process
(docs/operations.md, "Several workers" lists each task and why); what is not runs in the
*leader* only. :class:`Leadership` elects it: each process tries
``pg_try_advisory_lock(key)`` on a connection of its own; the one that gets it is the
leader for as long as that connection lives (checked every ``check_every_s``). A leader
that dies or loses its database connection releases the lock with the connection
(PostgreSQL ends the session), and another process takes over at its next try, at most
``check_every_s`` later. Advisory locks are per database, so two RAS deployments on two
databases of one server do not compete.

A SQLite database is one process's (multi-worker serving refuses it): there the process
is the leader at once, without a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

logger = logging.getLogger(__name__)

#: How often a leader checks its connection, and a follower tries to take over.
CHECK_EVERY_S: Final = 5.0


def lock_key(name: str) -> int:
    """The advisory lock's 64-bit key for ``name`` (signed, as PostgreSQL's bigint)."""
    digest = hashlib.sha256(f"heslock.ras.leader:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    """Runs ``on_elected`` when this process becomes the leader, ``on_deposed`` when not."""

    def __init__(
        self,
        engine: AsyncEngine,
        name: str,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], Awaitable[None]],
        *,
        check_every_s: float = CHECK_EVERY_S,
    ) -> None:
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.check_every_s = check_every_s
        self.is_leader = False
        self.attempts = 0  #: tries to take the lock (diagnostics, tests)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def shared(self) -> bool:
        """Whether other processes can share the database (else: always the leader)."""
        return self.engine.dialect.name == "postgresql"

    def start(self) -> None:
        if self._task is not None:
            return
        self._stop.clear()
        if not self.shared:
            self._elected()
            return
        self._task = asyncio.create_task(self._run(), name=f"ras-leader-{self.name}")

    async def stop(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        await self._deposed()

    def _elected(self) -> None:
        if not self.is_leader:
            self.is_leader = True
            logger.info("this process is the leader for %s", self.name)
            self.on_elected()

    async def _deposed(self) -> None:
        if self.is_leader:
            self.is_leader = False
            logger.info("this process is no longer the leader for %s", self.name)
            await self.on_deposed()

    async def _wait(self) -> bool:
        """Wait one interval; True if asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self.check_every_s)
        return self._stop.is_set()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                async with self.engine.connect() as conn:
                    if await self._try(conn):
                        await self._lead(conn)
            except Exception as exc:  # noqa: BLE001 - the database is away: try again
                logger.warning("leader election for %s: %s", self.name, exc)
            await self._deposed()
            if await self._wait():
                return

    async def _try(self, conn: AsyncConnection) -> bool:
        result = await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
        await conn.commit()
        self.attempts += 1
        return bool(result.scalar())

    async def _lead(self, conn: AsyncConnection) -> None:
        try:
            self._elected()
            while not await self._wait():
                await conn.execute(text("SELECT 1"))
                await conn.commit()
        finally:
            await self._deposed()
            try:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                await conn.commit()
            except Exception:  # noqa: BLE001 - a broken connection: drop it, lock and all
                await conn.invalidate()


__all__ = ["CHECK_EVERY_S", "Leadership", "lock_key"]
