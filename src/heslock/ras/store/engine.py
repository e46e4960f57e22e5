"""The async engine factory: SQLite with durable pragmas, or PostgreSQL via asyncpg.

SQLite gets, on every new connection (FIELD-NOTES, "Web, storage, crypto"):

- ``foreign_keys=ON``   off by default in SQLite; our cascades and references need it.
- ``journal_mode=WAL``  readers do not block the writer.
- ``synchronous=FULL``  a commit is on disk before it returns: an acknowledged write
  survives a crash or power loss (WAL's default NORMAL may lose the last commits).
- ``busy_timeout``      wait for the writer lock instead of failing at once.

SQLite has one writer at a time, and a connection that finds the write lock taken waits
in SQLite's busy handler, which *sleeps* (1, 2, 5, 10 ... ms) between tries: two
transactions of one process that want to write at the same moment cost the second one
milliseconds of idle sleep, and under load the writers form a convoy of sleepers while
the lock stands free (the end-to-end benchmark's 50-user point, docs/benchmarks.md).
:func:`write_gate` is an in-process queue in front of that lock for the hot write paths
(the command path's transactions, lock event storage): they take it around their
transaction, and the next one starts the moment the previous one commits. On PostgreSQL
(row locks, many writers) it is a no-op. It never replaces the database's own locking:
a writer that does not take it is serialised by SQLite as before.

Inside the gate the statements also run **inline**, on the event loop's thread, instead
of on the connection's aiosqlite worker thread. aiosqlite hands every call (cursor,
execute, fetch, close, commit: three to four per statement) to that thread and back
through the event loop: two thread wake-ups per call, which on a busy machine each wait
for a time slice -- most of a command's time at the RAS went there (docs/benchmarks.md,
e2e-commands). SQLite itself answers these statements in microseconds (WAL: readers
never wait), so the gated path runs them directly -- except the commit, whose fsync
(0.1 ms on a quiet disk, several ms on a busy one) stays on the worker thread so that the
event loop never waits for the disk. The one other call that could block is a write
that finds the write lock held by a connection outside the gate: inline statements run
with ``busy_timeout=0``, and a statement refused with SQLITE_BUSY (it changed nothing)
is run again on the connection's worker thread with the usual busy timeout, exactly as
without the gate. Everything outside the gate (every other query of the RAS, long ones
included) keeps the worker thread. Durability is unchanged: the same connections,
pragmas (``synchronous=FULL``) and commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from typing import Any, Final

from sqlalchemy import Engine, event
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


#: Set inside :func:`write_gate`: this task's statements run inline (module docstring).
_INLINE: ContextVar[bool] = ContextVar("heslock_sqlite_inline", default=False)


class _InlineExecutor:
    """Replaces an ``aiosqlite.Connection``'s ``_execute`` (the one door every call of the
    connection and its cursors goes through): inline under :func:`write_gate`, on the
    worker thread otherwise (module docstring)."""

    __slots__ = ("_busy_ms", "_connection")

    def __init__(self, connection: Any) -> None:
        # A weak reference: the connection holds this object, and a cycle would keep an
        # abandoned connection (and its worker thread) alive until a garbage collection.
        self._connection = weakref.ref(connection)
        self._busy_ms = SQLITE_BUSY_TIMEOUT_MS  #: the connection's busy_timeout now

    async def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        connection = self._connection()
        if connection is None:
            raise ValueError("Connection closed")
        threaded = type(connection)._execute  # aiosqlite's own: via the worker thread
        raw: sqlite3.Connection | None = connection._connection
        if (
            not _INLINE.get()
            or raw is None
            or not connection._running
            or (fn == raw.commit and raw.in_transaction)  # the fsync: the loop goes on
        ):
            if self._busy_ms != SQLITE_BUSY_TIMEOUT_MS:
                return await threaded(connection, self._waiting, raw, fn, args, kwargs)
            return await threaded(connection, fn, *args, **kwargs)
        if self._busy_ms != 0:
            raw.execute("PRAGMA busy_timeout=0")
            self._busy_ms = 0
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:
                raise
        # The write lock is held outside the gate: wait for it as any other writer does.
        return await threaded(connection, self._waiting, raw, fn, args, kwargs)

    def _waiting(
        self, raw: sqlite3.Connection, fn: Callable[..., Any], args: Any, kwargs: Any
    ) -> Any:
        """On the worker thread: restore the busy timeout, then run ``fn``."""
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        self._busy_ms = SQLITE_BUSY_TIMEOUT_MS
        return fn(*args, **kwargs)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()
    connection = getattr(dbapi_connection, "_connection", None)  # the aiosqlite.Connection
    if connection is not None and hasattr(connection, "_execute"):
        connection._execute = _InlineExecutor(connection)


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


#: One write gate per SQLite engine (and event loop: an asyncio lock belongs to one).
_WRITE_GATES: weakref.WeakKeyDictionary[Engine, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def write_gate(
    sessions: async_sessionmaker[AsyncSession] | AsyncEngine,
) -> AbstractAsyncContextManager[Any]:
    """The in-process write queue of ``sessions``' SQLite database (module docstring), or a
    no-op context for any other database.

    Take it *outside* the session's transaction (``async with write_gate(sm), sm() as
    session, session.begin():``) and never await anything but that transaction's own
    statements inside it: it is held until the transaction ends, and the next writer
    waits for it. Not re-entrant. Inside it the statements run inline (module docstring).
    """
    engine = sessions if isinstance(sessions, AsyncEngine) else sessions.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    loop = asyncio.get_running_loop()
    entry = _WRITE_GATES.get(engine.sync_engine)
    if entry is None or entry[0] is not loop:
        entry = (loop, asyncio.Lock())
        _WRITE_GATES[engine.sync_engine] = entry
    return _gated(entry[1])


@contextlib.contextmanager
def inline_reads(sessions: async_sessionmaker[AsyncSession] | AsyncEngine) -> Iterator[None]:
    """Run this task's statements inline (module docstring) without taking the write gate:
    for a few short indexed reads on a hot path (a bearer token's lookup). A write in it
    still never blocks the loop (SQLITE_BUSY goes to the worker thread), but a long read
    would: keep it to point lookups. A no-op for any other database than SQLite."""
    engine = sessions if isinstance(sessions, AsyncEngine) else sessions.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "sqlite":
        yield
        return
    token = _INLINE.set(True)
    try:
        yield
    finally:
        _INLINE.reset(token)


@contextlib.asynccontextmanager
async def _gated(gate: asyncio.Lock) -> AsyncIterator[None]:
    async with gate:
        token = _INLINE.set(True)
        try:
            yield
        finally:
            _INLINE.reset(token)
