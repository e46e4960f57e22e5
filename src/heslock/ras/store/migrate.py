"""Programmatic Alembic: upgrade, downgrade and inspect the RAS schema.

One migration tree (``migrations/``, shipped inside the package) serves SQLite and
PostgreSQL: batch mode for SQLite's limited ALTER TABLE, and the naming convention of
``Base.metadata`` so every constraint can be found again. The functions share the
caller's async engine (Alembic's "connection sharing" recipe): the whole upgrade runs in
one transaction on the given connection, so a failed migration leaves nothing behind
on PostgreSQL (transactional DDL) and as little as SQLite allows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.errors import UsageError

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
#: The version table stays Alembic's default, on both databases.
VERSION_TABLE: Final = "alembic_version"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` without an ini file; ``connection`` is used by env.py."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the tree always has a head
        raise RuntimeError("the RAS migration tree has no head")
    return head


def _run(connection: Connection, action: str, revision: str) -> None:
    config = alembic_config(connection)
    try:
        if action == "upgrade":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)
    except CommandError as exc:
        raise UsageError(f"cannot {action} the database to {revision!r}: {exc}") from None


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate up to ``revision`` (default: the newest)."""
    async with engine.begin() as conn:
        await conn.run_sync(_run, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Migrate down to ``revision`` (``base`` removes every table)."""
    async with engine.begin() as conn:
        await conn.run_sync(_run, "downgrade", revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def is_at_head(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()


def _is_ancestor(candidate: str, of: str) -> bool:
    script = ScriptDirectory.from_config(alembic_config())
    return any(rev.revision == candidate for rev in script.walk_revisions(base="base", head=of))


async def migrate_to(engine: AsyncEngine, revision: str = "head") -> tuple[str | None, str | None]:
    """Move the schema to ``revision``, up or down as needed; returns (before, after)."""
    before = await current_revision(engine)
    target = head_revision() if revision == "head" else revision
    if target == before or (target == "base" and before is None):
        return before, before
    try:
        going_down = target == "base" or (before is not None and _is_ancestor(target, before))
    except CommandError as exc:
        raise UsageError(f"unknown revision {revision!r}: {exc}") from None
    if going_down:
        await downgrade(engine, target)
    else:
        await upgrade(engine, target)
    return before, await current_revision(engine)
