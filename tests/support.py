"""Small helpers shared by the integration suites (kept here, not copied per suite)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

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
