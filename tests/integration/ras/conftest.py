"""Database targets for RAS store tests: SQLite in a temp dir, and PostgreSQL.

PostgreSQL runs at 127.0.0.1:5432 (database ``test``); each test gets a uniquely named
schema (pinned as the connection's ``search_path``) that is dropped afterwards, so runs
never see one another's tables. It is mandatory when CI=true (``require_service``).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.ras.bootstrap import InitResult, initialise, sqlite_path
from heslock.ras.settings import Settings
from heslock.ras.store import create_engine
from tests.conftest import require_service
from tests.support import drop_database_at_end, drop_database_later, remove_directory_at_end

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


def _database_name() -> str:
    return f"heslock_test_{uuid.uuid4().hex[:12]}"


def _postgres_url(name: str) -> str:
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + name


#: Empty databases made by _postgres_database that nobody ever connected to (set aside by
#: initialise_from_template): as good as new, so the next _postgres_database takes one.
_UNUSED_EMPTY: list[str] = []
#: Databases made by _postgres_database, while their test runs.
_OURS: set[str] = set()


async def _postgres_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (URL), dropped afterwards (in the background:
    ``tests.support.drop_database_later``)."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = _database_name()
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            spare = _UNUSED_EMPTY.pop() if _UNUSED_EMPTY else None
            if spare is not None:
                await conn.execute(text(f'ALTER DATABASE "{spare}" RENAME TO "{name}"'))
            else:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        _OURS.add(name)
        yield _postgres_url(name)
    finally:
        _OURS.discard(name)
        try:
            # What DROP DATABASE ... WITH (FORCE) did here before the drop moved to the
            # background: end the sessions the test left open and wait (up to 5 s) until
            # they are gone, so their clients see the connection closed while this event
            # loop still runs, as they did then; without the drop's checkpoint.
            async with admin.connect() as conn:
                await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
        finally:
            drop_database_later(name)
            await admin.dispose()


# ---------------------------------------------------------------- initialised RAS, copied
#
# ``heslock ras init`` (bootstrap.initialise) makes a master key, a CA and server
# certificate, and the database migrated to head with a first administrator: 0.2 s on
# SQLite, about a second on PostgreSQL (more on a busy machine), in every RAS fixture.
# initialise_from_template runs the real initialise once per worker and kind of database
# (a template), and gives each test a copy of its files and database: the same state
# initialise leaves, with the same first administrator (InitResult) in every copy.
# initialise itself still runs for real in the `heslock ras init` tests (test_cli.py), in
# the fixtures that call it directly (test_api.py, test_server_socket.py, ...), and once
# per template.


@dataclass(frozen=True)
class _Template:
    data_dir: Path
    result: InitResult
    #: PostgreSQL: the migrated database to copy (CREATE DATABASE ... TEMPLATE).
    database: str | None


_TEMPLATES: dict[tuple[Any, ...], _Template] = {}
_PATH_FIELDS = ("master_key_file", "tls_ca", "tls_ca_key", "tls_cert", "tls_key")


def _layout(settings: Settings) -> tuple[str, ...] | None:
    """Where init's files go, relative to the data directory (None: not all inside it)."""
    paths = [getattr(settings, f) for f in _PATH_FIELDS]
    if settings.is_sqlite:
        paths.append(sqlite_path(settings))
    try:
        return tuple(str(Path(p).relative_to(settings.data_dir)) for p in paths)
    except ValueError:
        return None


def _in(directory: Path, settings: Settings, layout: tuple[str, ...], url: str) -> Settings:
    update: dict[str, Any] = {
        f: directory / rel for f, rel in zip(_PATH_FIELDS, layout[:5], strict=True)
    }
    update |= {"data_dir": directory, "database_url": url}
    return settings.model_copy(update=update)


async def _make_template(
    settings: Settings, admin_login: str, layout: tuple[str, ...]
) -> _Template:
    directory = Path(tempfile.mkdtemp(prefix="heslock-init-template-")) / "data"
    remove_directory_at_end(directory.parent)
    database = None
    if settings.is_sqlite:
        url = f"sqlite+aiosqlite:///{directory / layout[-1]}"
    else:
        database = f"heslock_template_{uuid.uuid4().hex[:12]}"
        drop_database_at_end(database)
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{database}"'))
        finally:
            await admin.dispose()
        url = _postgres_url(database)
    result = await initialise(_in(directory, settings, layout, url), admin_login)
    if database is not None:
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                # Nothing may connect to a template while it is copied (autovacuum neither).
                await conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
        finally:
            await admin.dispose()
    return _Template(directory, result, database)


def _copy_tree(source: Path, destination: Path) -> None:
    """Files and directories of ``source`` into ``destination``, modes kept (0700/0600)."""
    destination.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in sorted(source.rglob("*"), key=lambda p: len(p.parts)):
        target = destination / path.relative_to(source)
        if path.is_dir():
            target.mkdir(exist_ok=True, mode=path.stat().st_mode & 0o777)
        else:
            shutil.copy2(path, target)


async def _copy_database(template: str, url: str) -> bool:
    """Replace the untouched empty database of ``url`` by a copy of ``template``."""
    name = url.rsplit("/", 1)[1]
    if name not in _OURS:
        return False
    aside = _database_name()
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            used = await conn.scalar(
                text(
                    "SELECT coalesce(sum(xact_commit + xact_rollback), 0) "
                    "FROM pg_stat_database WHERE datname = :name"
                ),
                {"name": name},
            )
            await conn.execute(text(f'ALTER DATABASE "{name}" RENAME TO "{aside}"'))
            await conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    finally:
        await admin.dispose()
    if used:
        drop_database_later(aside)
    else:
        _UNUSED_EMPTY.append(aside)
        drop_database_at_end(aside)  # if no test takes it (renamed then: nothing to drop)
    return True


async def initialise_from_template(settings: Settings, admin_login: str) -> InitResult:
    """What ``await initialise(settings, admin_login)`` does, copied from a template.

    For a fresh data directory and the untouched database of the ``database_url``
    fixture (call it before anything connects to that database). Anything else — a
    database of its own, files of init already there, paths outside the data directory —
    runs the real initialise, which also gives its errors.
    """
    layout = _layout(settings)
    fresh = layout is not None and not any((settings.data_dir / rel).exists() for rel in layout)
    if settings.is_sqlite and layout is not None and fresh:
        # The template's database file, or one of its -wal/-shm companions, must not exist.
        db = settings.data_dir / layout[-1]
        fresh = not any(db.with_name(db.name + s).exists() for s in ("-wal", "-shm"))
    if not fresh or layout is None:
        return await initialise(settings, admin_login)
    if not settings.is_sqlite and settings.database_url.rsplit("/", 1)[1] not in _OURS:
        return await initialise(settings, admin_login)
    key = (
        admin_login,
        settings.domain,
        settings.argon2_time_cost,
        settings.argon2_memory_cost,
        settings.argon2_parallelism,
        settings.is_sqlite,
        layout,
    )
    template = _TEMPLATES.get(key)
    if template is None:
        template = _TEMPLATES[key] = await _make_template(settings, admin_login, layout)
    if template.database is not None:
        await _copy_database(template.database, settings.database_url)
    _copy_tree(template.data_dir, settings.data_dir)
    return template.result


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'ras.db'}"
        return
    async for url in _postgres_database():
        yield url
