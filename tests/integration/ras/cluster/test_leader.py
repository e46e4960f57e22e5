"""Leadership: one leader per database among RAS processes (a PostgreSQL advisory lock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heslock.ras.leader import Leadership
from heslock.ras.store import create_engine
from tests.integration.ras.conftest import _postgres_database

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    async for url in _postgres_database():
        yield url


class Role:
    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.leading = False

    def elected(self) -> None:
        self.leading = True
        self.changed.set()

    async def deposed(self) -> None:
        self.leading = False
        self.changed.set()

    async def becomes(self, leading: bool) -> None:
        async with asyncio.timeout(10):
            while self.leading != leading:
                self.changed.clear()
                await self.changed.wait()


async def test_one_leader_and_a_takeover_when_it_stops(database_url: str) -> None:
    engines = [create_engine(database_url), create_engine(database_url)]
    roles = [Role(), Role()]
    first, second = (
        Leadership(e, "test", r.elected, r.deposed, check_every_s=0.05)
        for e, r in zip(engines, roles, strict=True)
    )
    try:
        first.start()
        await roles[0].becomes(True)
        second.start()
        # the second tries twice while the first leads: it stays a follower
        await _tries(second, 2)
        assert not roles[1].leading
        assert first.is_leader
        await first.stop()
        assert not roles[0].leading
        await roles[1].becomes(True)
    finally:
        await first.stop()
        await second.stop()
        for engine in engines:
            await engine.dispose()


async def _tries(leadership: Leadership, count: int) -> None:
    """Until ``leadership`` has tried ``count`` more times to take the lock (a poll)."""
    goal = leadership.attempts + count
    async with asyncio.timeout(5):
        while leadership.attempts < goal:  # noqa: ASYNC110 - a poll with a deadline
            await asyncio.sleep(0.01)


async def test_sqlite_is_one_process_so_it_leads_at_once(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ras.db'}")
    role = Role()
    leadership = Leadership(engine, "test", role.elected, role.deposed)
    try:
        leadership.start()
        assert role.leading
        assert leadership.is_leader
        await leadership.stop()
        assert not role.leading
    finally:
        await engine.dispose()
