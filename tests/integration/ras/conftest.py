"""Database targets for RAS store tests: SQLite in a temp dir, and PostgreSQL.

PostgreSQL runs at 127.0.0.1:5432 (database ``test``); each test gets a uniquely named
schema (pinned as the connection's ``search_path``) that is dropped afterwards, so runs
never see one another's tables. It is mandatory when CI=true (``require_service``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.ras.store import create_engine
from tests.conftest import require_service

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@dataclass
class Target:
    """One database to run store tests against."""

    name: str
    url: str
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    def engine(self) -> AsyncEngine:
        return create_engine(self.url, **self.engine_kwargs)


async def _postgres_target() -> AsyncIterator[Target]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    schema = f"heslock_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield Target(
            "postgresql",
            POSTGRES_URL,
            {"connect_args": {"server_settings": {"search_path": schema}}},
        )
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    if request.param == "sqlite":
        yield Target("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'ras.db'}")
        return
    async for pg in _postgres_target():
        yield pg


@pytest.fixture
async def engine(target: Target) -> AsyncIterator[AsyncEngine]:
    eng = target.engine()
    try:
        yield eng
    finally:
        await eng.dispose()


#: Cheap argon2 for tests only (production uses argon2-cffi's defaults, ~0.36 s a hash).
CHEAP_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_cost": 64, "argon2_parallelism": 1}


async def _postgres_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (URL), dropped afterwards."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"heslock_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'ras.db'}"
        return
    async for url in _postgres_database():
        yield url
