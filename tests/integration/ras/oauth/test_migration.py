"""Migration 0009 (OAuth 2.0) up and down on SQLite and PostgreSQL, keeping other rows."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.ras.store.migrate import current_revision, downgrade, upgrade

TABLES = {"oauth_clients", "oauth_grants", "oauth_codes", "oauth_tokens", "oauth_consent_tickets"}


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_0009_up_and_down(engine: AsyncEngine) -> None:
    await upgrade(engine, "0008")
    user_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, created_at, is_admin, status) "
                "VALUES (:id, CURRENT_TIMESTAMP, false, 'active')"
            ),
            {"id": user_id.hex if engine.dialect.name == "sqlite" else user_id},
        )
    await upgrade(engine, "0009")
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) >= TABLES
    await downgrade(engine, "0008")
    assert await current_revision(engine) == "0008"
    async with engine.connect() as conn:
        assert not (await conn.run_sync(_tables) & TABLES)
        users = (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one()
    assert users == 1
    await upgrade(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) >= TABLES
