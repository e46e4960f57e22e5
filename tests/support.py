"""Small helpers shared by the integration suites (kept here, not copied per suite)."""

from __future__ import annotations

import asyncio
import queue
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ble.virtual import VirtualLink
from heslock.bsld import SimulatedLock
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol.makers import MakerProfile
from heslock.ras.services.access import Principal
from heslock.ras.store import create_engine

#: How long a test waits for a notice, an answer or a log line before it fails.
WAIT_S = 10.0
#: The PostgreSQL server of the service-backed tests (its ``test`` database, trust auth).
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

_N = TypeVar("_N")


def auth(token: str) -> dict[str, str]:
    """The Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {token}"}


class TokenTable:
    """Stand-in bearer authentication for suites that do not exercise UDMS logins:
    token -> principal."""

    def __init__(self) -> None:
        self.tokens: dict[str, Principal] = {}

    async def authenticate(self, session: AsyncSession, credential: str) -> Principal | None:
        return self.tokens.get(credential)


class Inbox(Generic[_N]):
    """Notices from one subscription; await the next one that matches."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_N] = asyncio.Queue()

    def put(self, notice: _N) -> None:
        self.queue.put_nowait(notice)

    async def next(self, match: Callable[[_N], bool] = lambda _: True) -> _N:
        async def find() -> _N:
            while True:
                notice = await self.queue.get()
                if match(notice):
                    return notice

        return await asyncio.wait_for(find(), WAIT_S)


async def lock_on_air(
    vlink: VirtualLink,
    lock: SimulatedLock,
    maker: MakerProfile,
    advertising_interval_ms: float,
    clock: Callable[[], float],
) -> LockPeripheral:
    """Put ``lock`` on the virtual link as a BLE peripheral, its registration window open."""
    identity = lock.identity
    device = vlink.create_device(identity.maker, identity.device_id.colon)
    peripheral = LockPeripheral(
        lock,
        maker,
        device,
        idle_disconnect_s=3600.0,
        advertising_interval_ms=advertising_interval_ms,
        clock=clock,
    )
    await peripheral.start()
    peripheral.press(lock.press_registration_button)
    return peripheral


# ---------------------------------------------------------------- dropping test databases
#
# ``DROP DATABASE`` makes PostgreSQL write an immediate checkpoint of the whole cluster
# (every dirty buffer of every database, then fsync): from a few ms on a quiet machine to
# seconds while other tests write. A test does not wait for that: its database is handed
# to one background thread per process (pytest-xdist worker), which drops databases while
# the next tests run; ``pytest_sessionfinish`` (tests/conftest.py) waits for what is left.
# Names are unique (uuid), so no two workers or concurrent runs share a database.


class _Dropper:
    """A thread with its own event loop dropping databases, several at once: drops that
    wait together are served by one checkpoint (PostgreSQL merges the requests)."""

    CONNECTIONS = 6

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="drop-test-databases", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._drop_all())
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.errors.append(exc)

    async def _drop_all(self) -> None:
        admin = create_engine(
            POSTGRES_URL, isolation_level="AUTOCOMMIT", pool_size=self.CONNECTIONS
        )
        names: asyncio.Queue[str | None] = asyncio.Queue()

        async def drop() -> None:
            while (name := await names.get()) is not None:
                async with admin.connect() as conn:
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.CONNECTIONS):
                    group.create_task(drop())
                while (name := await asyncio.to_thread(self.queue.get)) is not None:
                    names.put_nowait(name)
                for _ in range(self.CONNECTIONS):
                    names.put_nowait(None)
        finally:
            await admin.dispose()

    def finish(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.errors:
            raise self.errors[0]


_dropper: _Dropper | None = None
_DROP_AT_END: list[str] = []
_REMOVE_AT_END: list[Path] = []


def drop_database_later(name: str) -> None:
    """Drop PostgreSQL database ``name`` (if it exists) soon, without waiting for it."""
    global _dropper  # noqa: PLW0603 - one dropper per process
    if _dropper is None:
        _dropper = _Dropper()
    _dropper.queue.put(name)


def drop_database_at_end(name: str) -> None:
    """Drop PostgreSQL database ``name`` (a template the session keeps) when it ends."""
    _DROP_AT_END.append(name)


def remove_directory_at_end(path: Path) -> None:
    """Remove ``path`` (a directory made outside ``tmp_path``) when the session ends."""
    _REMOVE_AT_END.append(path)


def cleanup_at_session_end() -> None:
    """Wait for the dropped databases; drop and remove what was kept for the session."""
    global _dropper
    for path in _REMOVE_AT_END:
        shutil.rmtree(path, ignore_errors=True)
    _REMOVE_AT_END.clear()
    if _DROP_AT_END:
        for name in _DROP_AT_END:
            drop_database_later(name)
        _DROP_AT_END.clear()
    if _dropper is not None:
        dropper, _dropper = _dropper, None
        dropper.finish()
