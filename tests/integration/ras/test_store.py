"""The RAS store on SQLite and PostgreSQL: migrations up and down, append-only audit,
foreign keys, durable SQLite pragmas, and models that match the migration tree."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, delete, inspect, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.errors import UsageError
from heslock.ras.store import Base, create_engine, create_sessionmaker
from heslock.ras.store.migrate import (
    current_revision,
    downgrade,
    head_revision,
    is_at_head,
    upgrade,
)
from heslock.ras.store.models import AuditRecord, Contact, User

EXPECTED_TABLES = {
    "users",
    "contacts",
    "credentials",
    "otp_codes",
    "totp_secrets",
    "sessions",
    "refresh_tokens",
    "devices",
    "locks",
    "registrations",
    "gateways",
    "audit_log",
    "rate_limit_buckets",
}


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_migrations_run_up_and_down(engine: AsyncEngine) -> None:
    assert await current_revision(engine) is None
    await upgrade(engine)
    assert await current_revision(engine) == head_revision()
    assert await is_at_head(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) >= EXPECTED_TABLES
    await downgrade(engine, "base")
    assert await current_revision(engine) is None
    async with engine.connect() as conn:
        assert not (EXPECTED_TABLES & await conn.run_sync(_tables))
    await upgrade(engine)  # and up again: the downgrade left nothing behind (triggers too)
    assert await is_at_head(engine)


async def test_unknown_revision_is_a_usage_error(engine: AsyncEngine) -> None:
    with pytest.raises(UsageError, match="cannot upgrade"):
        await upgrade(engine, "ffff")


def _diff(conn: Connection) -> list[object]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


async def test_models_match_the_migration_tree(engine: AsyncEngine) -> None:
    """A model changed without a migration would show up here as a difference."""
    await upgrade(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def _audit_row(engine: AsyncEngine) -> int:
    async with create_sessionmaker(engine)() as session, session.begin():
        record = AuditRecord(actor="system", action="test.write", result="ok", details={"n": 1})
        session.add(record)
        await session.flush()
        return record.id


async def test_audit_log_is_append_only(engine: AsyncEngine) -> None:
    await upgrade(engine)
    first = await _audit_row(engine)
    second = await _audit_row(engine)
    assert second > first
    for statement in (
        update(AuditRecord).where(AuditRecord.id == first).values(result="forged"),
        delete(AuditRecord).where(AuditRecord.id == first),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(statement)
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text("TRUNCATE audit_log"))
    async with engine.connect() as conn:
        rows = (await conn.execute(select(AuditRecord.id, AuditRecord.result))).all()
    assert [(r.id, r.result) for r in rows] == [(first, "ok"), (second, "ok")]


async def test_foreign_keys_are_enforced(engine: AsyncEngine) -> None:
    await upgrade(engine)
    with pytest.raises(IntegrityError):
        async with create_sessionmaker(engine)() as session, session.begin():
            session.add(Contact(user_id=uuid.uuid4(), kind="email", address="a@example.org"))


async def test_cascade_and_unique_contacts(engine: AsyncEngine) -> None:
    await upgrade(engine)
    maker = create_sessionmaker(engine)
    async with maker() as session, session.begin():
        user = User()
        session.add(user)
        await session.flush()
        session.add(Contact(user_id=user.id, kind="email", address="a@example.org"))
    with pytest.raises(IntegrityError):
        async with maker() as session, session.begin():
            session.add(Contact(user_id=user.id, kind="email", address="a@example.org"))
    async with maker() as session, session.begin():
        await session.execute(delete(User).where(User.id == user.id))
    async with maker() as session:
        assert (await session.execute(select(Contact))).scalars().all() == []


async def test_timestamps_come_back_as_aware_utc(engine: AsyncEngine) -> None:
    await upgrade(engine)
    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    maker = create_sessionmaker(engine)
    async with maker() as session, session.begin():
        user = User(created_at=moment)
        session.add(user)
    async with maker() as session:
        stored = (await session.execute(select(User.created_at))).scalar_one()
    assert stored == moment
    assert stored.tzinfo is not None
    assert stored.utcoffset() == timedelta(0)
    assert stored.astimezone(UTC).hour == 1


async def test_naive_timestamps_are_refused(engine: AsyncEngine) -> None:
    await upgrade(engine)
    with pytest.raises(StatementError, match="naive datetime"):
        async with create_sessionmaker(engine)() as session, session.begin():
            session.add(User(created_at=datetime(2030, 1, 1)))


async def test_sqlite_connections_are_durable(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ras.db'}")
    try:
        async with engine.connect() as conn:
            values = [
                (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("foreign_keys", "journal_mode", "synchronous")
            ]
    finally:
        await engine.dispose()
    assert values == [1, "wal", 2]  # synchronous: 2 = FULL
