"""The SCS audit helper: what it refuses to store, and bounded details."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.ras.services import audit
from heslock.ras.store import create_sessionmaker
from heslock.ras.store.migrate import upgrade

CTX = audit.AuditContext("user:1", "192.0.2.1", "req-1")


@pytest.mark.parametrize("key", ["password", "Token", "key", "email", "phone", "frame"])
async def test_secret_or_personal_keys_are_refused(engine: AsyncEngine, key: str) -> None:
    await upgrade(engine)
    async with create_sessionmaker(engine)() as session:
        with pytest.raises(ValueError, match="may not carry"):
            await audit.record(session, CTX, "x", audit.AuditResult.OK, **{key: "v"})


async def test_details_are_bounded(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with create_sessionmaker(engine)() as session:
        with pytest.raises(ValueError, match="over 4096"):
            await audit.record(session, CTX, "x", audit.AuditResult.OK, note="n" * 5000)


async def test_record_carries_the_context(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with create_sessionmaker(engine)() as session, session.begin():
        entry = await audit.record(session, CTX, "lock.unbind", audit.AuditResult.OK, "lock:9")
    async with create_sessionmaker(engine)() as session:
        rows = await audit.list_records(session, after_id=0, limit=10)
    assert [(r.id, r.actor, r.action, r.target, r.source_ip, r.details) for r in rows] == [
        (entry.id, "user:1", "lock.unbind", "lock:9", "192.0.2.1", {"request_id": "req-1"})
    ]
