"""The SQLite write gate and inline statements (heslock.ras.store.engine), on a real file.

Inside :func:`write_gate` (and :func:`inline_reads`) statements run on the event loop's
thread; outside, on aiosqlite's worker thread; a gated write that meets the write lock
held by a writer outside the gate still succeeds (it waits on the worker thread), and a
gated transaction is as durable as any other (it is read back by a fresh engine).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.ras.store.engine import create_engine, create_sessionmaker, inline_reads, write_gate


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gate.db'}")

    @event.listens_for(engine.sync_engine, "connect")
    def _thread_function(dbapi_connection: Any, _record: Any) -> None:
        # tid(): the thread that runs the statement calling it.
        dbapi_connection.create_function("tid", 0, threading.get_ident)

    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (x INTEGER NOT NULL)"))
    yield engine
    await engine.dispose()


async def _statement_thread(engine: AsyncEngine) -> int:
    async with create_sessionmaker(engine)() as session:
        return int((await session.execute(text("SELECT tid()"))).scalar_one())


async def test_statements_run_inline_only_inside_the_gate(engine: AsyncEngine) -> None:
    loop_thread = threading.get_ident()
    sessions = create_sessionmaker(engine)
    assert await _statement_thread(engine) != loop_thread
    async with write_gate(sessions):
        assert await _statement_thread(engine) == loop_thread
    with inline_reads(sessions):
        assert await _statement_thread(engine) == loop_thread
    assert await _statement_thread(engine) != loop_thread  # and back to the worker thread


async def test_gated_write_waits_for_a_writer_outside_the_gate(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    sessions = create_sessionmaker(engine)

    async def gated_insert() -> None:
        async with write_gate(sessions), sessions() as session, session.begin():
            await session.execute(text("INSERT INTO t (x) VALUES (2)"))

    async with sessions() as outside:
        await outside.execute(text("INSERT INTO t (x) VALUES (1)"))  # holds the write lock
        gated = asyncio.create_task(gated_insert())
        await outside.commit()  # on the worker thread: the gated task runs meanwhile
    await gated  # no "database is locked": it waited for the lock like any writer
    fresh = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gate.db'}")
    try:
        async with fresh.connect() as connection:
            rows = (await connection.execute(text("SELECT x FROM t ORDER BY x"))).all()
    finally:
        await fresh.dispose()
    assert [r.x for r in rows] == [1, 2]


async def test_gate_serialises_writers_in_order(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    inside = 0
    most = 0

    async def writer(value: int) -> None:
        nonlocal inside, most
        async with write_gate(sessions), sessions() as session, session.begin():
            inside += 1
            most = max(most, inside)
            await session.execute(text("INSERT INTO t (x) VALUES (:x)"), {"x": value})
            inside -= 1

    await asyncio.gather(*(writer(i) for i in range(20)))
    async with sessions() as session:
        values = list((await session.execute(text("SELECT x FROM t ORDER BY rowid"))).scalars())
    assert most == 1
    assert values == list(range(20))  # first come, first served


async def test_gate_is_a_no_op_for_postgresql() -> None:
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        gate = write_gate(engine)
        async with gate, write_gate(engine):  # not a lock: nesting does not wait
            pass
    finally:
        await engine.dispose()
