"""Migration 0008 (geofence) up and down on SQLite and PostgreSQL, keeping existing rows;
and the store's own guard: a fence belongs to exactly one lock or one home."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.ras.store import create_sessionmaker
from heslock.ras.store.migrate import current_revision, downgrade, upgrade
from heslock.ras.store.models import Device, Geofence, Home, Lock, User

TABLES = {"geofences", "location_reports", "arrival_suggestions"}


def _shape(conn: Connection) -> dict[str, set[str]]:
    inspector = inspect(conn)
    return {
        table: {i["name"] or "" for i in inspector.get_indexes(table)}
        for table in inspector.get_table_names()
    }


async def test_0008_up_and_down(engine: AsyncEngine) -> None:
    await upgrade(engine, "0007")
    user_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, created_at, is_admin, status) "
                "VALUES (:id, CURRENT_TIMESTAMP, false, 'active')"
            ),
            {"id": user_id.hex if engine.dialect.name == "sqlite" else user_id},
        )
    await upgrade(engine, "0008")
    async with engine.connect() as conn:
        shape = await conn.run_sync(_shape)
    assert set(shape) >= TABLES
    assert {"ix_location_reports_user_id_id", "ix_location_reports_received_at"} <= shape[
        "location_reports"
    ]
    assert {
        "ix_arrival_suggestions_user_id_created_at",
        "ix_arrival_suggestions_created_at",
    } <= shape["arrival_suggestions"]
    await downgrade(engine, "0007")
    assert await current_revision(engine) == "0007"
    async with engine.connect() as conn:
        shape = await conn.run_sync(_shape)
        users = (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one()
    assert not TABLES & set(shape)
    assert users == 1
    await upgrade(engine, "0008")
    assert await current_revision(engine) == "0008"


async def test_a_fence_needs_exactly_one_of_lock_and_home(engine: AsyncEngine) -> None:
    await upgrade(engine, "0008")
    maker = create_sessionmaker(engine)
    async with maker() as session, session.begin():
        owner = User(display_name="o")
        session.add(owner)
        await session.flush()
        home = Home(owner_id=owner.id, name="home", time_zone="Europe/Berlin")
        device = Device(
            device_id="00000000000A", maker="Lumen", model="L1", ble_version="5.0",
            profile="secure", factory_key_enc=b"x" * 60, status="bound",
        )  # fmt: skip
        session.add_all([home, device])
        await session.flush()
        lock = Lock(
            device_id=device.device_id, owner_id=owner.id, name="door", key_version=1,
            lock_key_enc=b"x" * 60,
        )  # fmt: skip
        session.add(lock)
    # Real rows on both sides: only the check constraint can refuse these.
    for lock_id, home_id in ((None, None), (lock.id, home.id)):
        async with maker() as session:
            session.add(
                Geofence(
                    lock_id=lock_id, home_id=home_id, latitude=1.0, longitude=2.0, radius_m=100.0
                )
            )
            with pytest.raises(IntegrityError):
                await session.flush()
            await session.rollback()
    async with maker() as session, session.begin():
        session.add(Geofence(lock_id=lock.id, latitude=1.0, longitude=2.0, radius_m=100.0))
        session.add(Geofence(home_id=home.id, latitude=1.0, longitude=2.0, radius_m=100.0))
