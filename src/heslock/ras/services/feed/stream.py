"""The live feed as Server-Sent Events (``GET /v1/events/stream``).

The HTML Living Standard's ``text/event-stream``: each event is ``id: <feed id>``,
``event: <kind>`` and one ``data:`` line of JSON (:func:`.query.view`), then a blank line.
A client that reconnects sends the last id it got as ``Last-Event-ID``; the stream then
sends every event after it the user may see, oldest first, and goes on live -- nothing
lost, nothing twice. Without one the stream starts at the present.

The loop (:meth:`FeedStream.events`)::

    seen = notifier.generation
    scan up to READ_BATCH events after the cursor, send the visible ones, move the cursor
    nothing sent for HEARTBEAT_S: send a ``: keepalive`` comment
    wait for the notifier to move past ``seen`` or the rest of the heartbeat

Reading *after* taking ``seen`` means a commit between the read and the wait still
wakes us. Each read uses its own short database session: a stream holds no connection
while it waits. Heartbeats (every :data:`HEARTBEAT_S`) keep proxies and NATs from closing
an idle connection, and bound how late an event committed by another RAS node is seen
(:mod:`.notifier`).

A stream lives at most ``max_age_s`` (the API gives the access token's lifetime): the
client reconnects with a fresh token and ``Last-Event-ID`` and loses nothing, and a
revoked session or account stops receiving within that time.

Streams per user are bounded (:class:`StreamSlots`, :data:`MAX_STREAMS_PER_USER` per
node): a client that leaks connections cannot hold the server's sockets.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Final

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.ras.services.access import Principal
from heslock.ras.services.errors import TooManyRequests
from heslock.ras.services.feed.notifier import NOTIFIER, FeedNotifier
from heslock.ras.services.feed.query import FeedFilter, high_water, read_after, view
from heslock.ras.services.feed.visibility import VisibilityCache, app_sees_addressed
from heslock.ras.store.models import FeedEvent

logger = logging.getLogger(__name__)

#: Seconds between keepalive comments on an idle stream (proxies commonly cut at 60 s).
HEARTBEAT_S: Final = 15.0
#: Events read per database round trip while catching up.
READ_BATCH: Final = 200
#: Concurrent streams one user may hold on one node (several devices and tabs).
MAX_STREAMS_PER_USER: Final = 8
#: Reconnection delay suggested to clients (the SSE ``retry:`` field), milliseconds.
RETRY_MS: Final = 2000

Clock = Callable[[], float]


def parse_last_event_id(value: str | None) -> int | None:
    """A ``Last-Event-ID`` we issued is a non-negative integer; anything else is ignored
    (the standard lets a client send whatever it last got; a stream then starts live)."""
    if value is None:
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    return int(value)


def frame(row: FeedEvent) -> str:
    """One SSE event (module docstring); JSON never contains a raw newline."""
    data = json.dumps(view(row), separators=(",", ":"), ensure_ascii=False)
    return f"id: {row.id}\nevent: {row.kind}\ndata: {data}\n\n"


class StreamSlots:
    """Counts the open streams per user on this node (module docstring)."""

    def __init__(self, limit: int = MAX_STREAMS_PER_USER) -> None:
        self.limit = limit
        self._open: dict[uuid.UUID, int] = {}

    def acquire(self, user: uuid.UUID) -> None:
        count = self._open.get(user, 0)
        if count >= self.limit:
            raise TooManyRequests(
                f"at most {self.limit} event streams at once; close one first",
                retry_after=int(HEARTBEAT_S),
            )
        self._open[user] = count + 1

    def release(self, user: uuid.UUID) -> None:
        count = self._open.get(user, 0) - 1
        if count > 0:
            self._open[user] = count
        else:
            self._open.pop(user, None)

    def open(self, user: uuid.UUID) -> int:
        return self._open.get(user, 0)


class FeedStream:
    """One client's stream (module docstring). Build it, then iterate :meth:`events`."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        principal: Principal,
        flt: FeedFilter,
        last_event_id: int | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        notifier: FeedNotifier = NOTIFIER,
        heartbeat_s: float = HEARTBEAT_S,
        max_age_s: float | None = None,
        monotonic: Clock = time.monotonic,
    ) -> None:
        if principal.id is None:
            raise ValueError("a feed stream needs a user")
        self.sessionmaker = sessionmaker
        self.principal = principal
        self.user: uuid.UUID = principal.id
        #: Whose addressed events the stream carries: none for an app (:mod:`.visibility`).
        self.addressee: uuid.UUID | None = None if principal.integration else principal.id
        self.flt = flt
        self.cursor = last_event_id
        self.clock = clock
        self.notifier = notifier
        self.heartbeat_s = heartbeat_s
        self.max_age_s = max_age_s
        self.monotonic = monotonic
        self.sent = 0
        self._cache = VisibilityCache(principal)

    async def _read(self) -> tuple[list[FeedEvent], bool]:
        """New visible events after the cursor; True if the scan was full (read on)."""
        async with self.sessionmaker() as session:
            start = self.cursor if self.cursor is not None else await high_water(session)

            async def visible(locks: set[uuid.UUID]) -> set[uuid.UUID]:
                return await self._cache.visible(session, locks, self.clock(), self.monotonic())

            integration = self.principal.integration

            async def addressed(row: FeedEvent) -> bool:
                assert integration is not None
                return await app_sees_addressed(row, integration, visible)

            rows, self.cursor, full = await read_after(
                session,
                self.addressee,
                visible,
                self.flt,
                start,
                READ_BATCH,
                app_user=self.user if integration is not None else None,
                addressed=addressed if integration is not None else None,
            )
            return rows, full

    async def events(self) -> AsyncGenerator[str, None]:
        """The stream's text, chunk by chunk (module docstring); ends when the client goes."""
        with anyio.CancelScope(shield=True):  # as for every read below
            async with self.sessionmaker() as session:
                high = await high_water(session)
        if self.cursor is None or self.cursor > high:
            # Live from now on: fixed before the first byte, so whatever a client causes
            # after it has seen the stream open is after the cursor. An id from the
            # future (another server's, a restored backup) must not hide what comes next.
            self.cursor = high
        yield f"retry: {RETRY_MS}\n\n"
        started = last_sent = self.monotonic()
        while self.max_age_s is None or self.monotonic() - started < self.max_age_s:
            seen = self.notifier.generation
            # A client that leaves cancels the stream; a read is a few milliseconds, so
            # it finishes first and its connection goes back to the pool clean (a
            # cancelled driver call would leave the connection to be torn down).
            with anyio.CancelScope(shield=True):
                rows, more = await self._read()
            for row in rows:
                self.sent += 1
                yield frame(row)
            if rows:
                last_sent = self.monotonic()
            if more:
                continue  # catching up: read on before waiting
            quiet = self.monotonic() - last_sent
            if quiet >= self.heartbeat_s:
                yield ": keepalive\n\n"
                last_sent, quiet = self.monotonic(), 0.0
            await self.notifier.wait(seen, self.heartbeat_s - quiet)
