"""Migration 0006 (sharing) up and down on SQLite and PostgreSQL, keeping existing rows;
and the store's refusal of JSON the pure core would refuse."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.ras.store import create_sessionmaker
from heslock.ras.store.migrate import current_revision, downgrade, head_revision, upgrade
from heslock.ras.store.models import Share, User

TABLES = {"homes", "home_locks", "home_gateways", "shares", "share_locks"}


def _shape(conn: Connection) -> dict[str, set[str]]:
    inspector = inspect(conn)
    return {
        table: {i["name"] or "" for i in inspector.get_indexes(table)}
        for table in inspector.get_table_names()
    }


async def test_0006_up_and_down(engine: AsyncEngine) -> None:
    await upgrade(engine, "0005")
    user_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, created_at, is_admin, status) "
                "VALUES (:id, CURRENT_TIMESTAMP, false, 'active')"
            ),
            {"id": user_id.hex if engine.dialect.name == "sqlite" else user_id},
        )
    await upgrade(engine, "0006")
    async with engine.connect() as conn:
        shape = await conn.run_sync(_shape)
    assert set(shape) >= TABLES
    assert {
        "ix_shares_owner_id_created_at",
        "ix_shares_grantee_id_created_at",
        "ix_shares_home_id_created_at",
        "ix_shares_invite_kind_invite_address",
    } <= shape["shares"]
    assert "ix_share_locks_lock_id_share_id" in shape["share_locks"]
    await downgrade(engine, "0005")
    assert await current_revision(engine) == "0005"
    async with engine.connect() as conn:
        shape = await conn.run_sync(_shape)
        users = (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one()
    assert not TABLES & set(shape)
    assert users == 1
    await upgrade(engine)
    assert await current_revision(engine) == head_revision()


async def test_the_store_refuses_bad_share_json(engine: AsyncEngine) -> None:
    await upgrade(engine)
    maker = create_sessionmaker(engine)
    async with maker() as session, session.begin():
        owner = User(display_name="o")
        session.add(owner)
    for field, value in (
        ("permissions", ["operate", "fly"]),
        ("permissions", []),
        ("paths", ["remote", "remote"]),
        ("schedule", {"windows": [{"days": ["mon"], "start": "8", "end": "9"}]}),
    ):
        values = {
            "owner_id": owner.id,
            "scope": "locks",
            "role": "guest",
            "permissions": ["lock"],
            "paths": ["remote"],
            "validity": "permanent",
            field: value,
        }
        async with maker() as session:
            session.add(Share(**values))
            with pytest.raises(StatementError):
                await session.flush()
            await session.rollback()
    # And a good one is stored in canonical form.
    async with maker() as session, session.begin():
        good = Share(
            owner_id=owner.id, scope="locks", role="guest", permissions=["operate", "lock"],
            paths=["nearby", "remote"], validity="permanent",
            schedule={"windows": [{"days": ["fri", "mon"], "start": "08:00", "end": "09:00"}]},
        )  # fmt: skip
        session.add(good)
    async with maker() as session:
        stored = await session.get(Share, good.id)
        assert stored is not None
        assert stored.permissions == ["lock", "operate"]
        assert stored.schedule == {
            "windows": [{"days": ["mon", "fri"], "start": "08:00", "end": "09:00"}],
            "date_ranges": [],
        }
