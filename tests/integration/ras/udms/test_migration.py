"""Migration 0002 (UDMS) up and down on SQLite and PostgreSQL, keeping existing rows."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.ras.store.migrate import current_revision, downgrade, upgrade


def _shape(conn: Connection) -> dict[str, set[str]]:
    inspector = inspect(conn)
    return {
        table: {c["name"] for c in inspector.get_columns(table)}
        for table in ("users", "otp_codes", "access_tokens", "login_challenges")
        if inspector.has_table(table)
    }


async def test_0002_up_and_down(engine: AsyncEngine) -> None:
    await upgrade(engine, "0001")
    user_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, created_at, is_admin, status) "
                "VALUES (:id, CURRENT_TIMESTAMP, false, 'active')"
            ),
            {"id": user_id.hex if engine.dialect.name == "sqlite" else user_id},
        )
    await upgrade(engine, "0002")
    async with engine.connect() as conn:
        shape = await conn.run_sync(_shape)
        users = (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one()
    assert "deleted_at" in shape["users"]
    assert "contact_id" in shape["otp_codes"]
    assert {"token_hash", "session_id", "expires_at"} <= shape["access_tokens"]
    assert {"token_hash", "otp_code_id", "attempts"} <= shape["login_challenges"]
    assert users == 1
    await downgrade(engine, "0001")
    assert await current_revision(engine) == "0001"
    async with engine.connect() as conn:
        shape = await conn.run_sync(_shape)
        users = (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one()
    assert "deleted_at" not in shape["users"]
    assert "contact_id" not in shape["otp_codes"]
    assert "access_tokens" not in shape
    assert "login_challenges" not in shape
    assert users == 1
    await upgrade(engine)
