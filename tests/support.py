"""Small helpers shared by the integration suites (kept here, not copied per suite)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ble.virtual import VirtualLink
from heslock.bsld import SimulatedLock
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol.makers import MakerProfile
from heslock.ras.services.access import Principal

#: How long a test waits for a notice, an answer or a log line before it fails.
WAIT_S = 10.0

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
