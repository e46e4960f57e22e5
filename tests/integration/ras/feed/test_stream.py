"""The stream itself (no HTTP): heartbeats, an id from the future, a lock shared while
the stream is open, a stream's lifetime, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from heslock.ras.services.feed.publish import publish
from heslock.ras.services.feed.query import FeedFilter
from heslock.ras.services.feed.stream import FeedStream
from heslock.ras.store.models import FeedPath
from tests.integration.ras.feed.conftest import WAIT_S
from tests.integration.ras.sharing.conftest import Rig


async def put(rig: Rig, lock_id: object) -> int:
    async with rig.maker() as session, session.begin():
        row = await publish(session, "lock.door", path=FeedPath.SYSTEM, lock_id=lock_id)  # type: ignore[arg-type]
    return row.id


class Reader:
    def __init__(self, chunks: AsyncIterator[str]) -> None:
        self.chunks = chunks

    async def next_event_id(self) -> int:
        async def find() -> int:
            async for chunk in self.chunks:
                if chunk.startswith("id: "):
                    return int(chunk.split("\n", 1)[0][4:])
            raise AssertionError("the stream ended")

        return await asyncio.wait_for(find(), WAIT_S)

    async def next_comment(self) -> str:
        async def find() -> str:
            async for chunk in self.chunks:
                if chunk.startswith(":"):
                    return chunk
            raise AssertionError("the stream ended")

        return await asyncio.wait_for(find(), WAIT_S)


@contextlib.asynccontextmanager
async def opened(stream: FeedStream) -> AsyncIterator[Reader]:
    chunks = stream.events()
    try:
        first = await asyncio.wait_for(anext(chunks), WAIT_S)
        assert first.startswith("retry: ")
        yield Reader(chunks)
    finally:
        await chunks.aclose()


async def test_heartbeat_future_ids_and_a_lock_shared_while_streaming(sharing_rig: Rig) -> None:
    rig = sharing_rig
    lock = await rig.add_lock("olga")
    before = await put(rig, lock)

    # Gus streams from an id far ahead (another server's): he is put at the present.
    stream = FeedStream(
        rig.maker, rig.principal("gus"), FeedFilter(kinds=("lock.*",)), 10**9, heartbeat_s=0.05
    )
    async with opened(stream) as reader:
        assert stream.cursor == before
        assert await reader.next_comment() == ": keepalive\n\n"  # silence: heartbeats
        # Olga's lock is shared with him while his stream is open: its events reach him
        # (a lock the stream has not met is evaluated on its first event; visibility is
        # decided when the stream reads, so an event written just before the share may
        # come too).
        maybe = await put(rig, lock)
        await rig.granted("olga", "gus", lock_ids=[str(lock)])
        after = await put(rig, lock)
        got = [await reader.next_event_id()]
        if got[0] != after:
            got.append(await reader.next_event_id())
        assert got in ([after], [maybe, after])


async def test_a_stream_ends_after_its_lifetime(sharing_rig: Rig) -> None:
    rig = sharing_rig
    ticks = iter(range(10_000))  # the stream's clock: one second per reading

    stream = FeedStream(
        rig.maker,
        rig.principal("olga"),
        FeedFilter(),
        None,
        heartbeat_s=0.2,
        max_age_s=10.0,
        monotonic=lambda: float(next(ticks)),
    )

    async def collect() -> list[str]:
        return [chunk async for chunk in stream.events()]

    chunks = await asyncio.wait_for(collect(), WAIT_S)  # it ends by itself
    assert chunks[0].startswith("retry: ")
    assert ": keepalive\n\n" in chunks  # silence longer than a heartbeat passed
