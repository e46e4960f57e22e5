"""The async engine factory: SQLite with durable pragmas, or PostgreSQL via asyncpg.

SQLite gets, on every new connection (FIELD-NOTES, "Web, storage, crypto"):

- ``foreign_keys=ON``   off by default in SQLite; our cascades and references need it.
- ``journal_mode=WAL``  readers do not block the writer.
- ``synchronous=FULL``  a commit is on disk before it returns: an acknowledged write
  survives a crash or power loss (WAL's default NORMAL may lose the last commits).
- ``busy_timeout``      wait for the writer lock instead of failing at once.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

#: How long a SQLite connection waits for the writer lock (ms) before "database is locked".
SQLITE_BUSY_TIMEOUT_MS: Final = 5_000
SQLITE_PRAGMAS: Final = (
    "PRAGMA foreign_keys=ON",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create the engine for ``url`` (``sqlite+aiosqlite://`` or ``postgresql+asyncpg://``).

    Extra keyword arguments go to :func:`sqlalchemy.ext.asyncio.create_async_engine`
    (tests pass ``connect_args`` to pin a PostgreSQL ``search_path``).
    """
    if url.startswith("sqlite"):
        engine = _create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return _create_async_engine(url, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after the commit that precedes a response.
    return async_sessionmaker(engine, expire_on_commit=False)
