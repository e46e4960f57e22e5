"""The event-stream reader (heslock.rac.sse) and the async client's live feed over a
scripted RAS: resuming after the last id when the RAS ends a stream, never a tight loop."""

from __future__ import annotations

import json
import uuid
from contextlib import aclosing

import httpx
import pytest

from heslock.rac import AsyncRasClient, InvalidArgument, RasBadAnswer, RasProblem, calls
from heslock.rac.sse import EventStreamParser, Message
from heslock.rac.tokens import MemoryTokenStore
from tests.unit.rac.test_client import pair, problem


def _feed(parser: EventStreamParser, text: str) -> list[Message]:
    return [m for line in text.split("\n") if (m := parser.feed(line)) is not None]


def test_messages_comments_and_fields() -> None:
    parser = EventStreamParser()
    messages = _feed(
        parser,
        "retry: 2000\n\n"
        ": keepalive\n\n"
        'id: 7\nevent: share.created\ndata: {"a":1}\n\n'
        "data:first\ndata: second\n\n"
        "id\nevent: x\n\n"  # no data: not dispatched, but the id moves (to "")
        "id: 8\x009\ndata\n\n"  # an id holding NUL is ignored; "data" alone is empty data
        "unknown: field\n",
    )
    assert parser.retry_ms == 2000
    assert messages == [
        Message("share.created", '{"a":1}', "7"),
        Message("message", "first\nsecond", "7"),
        Message("message", "", ""),
    ]
    assert parser.feed("retry: soon") is None
    assert parser.retry_ms == 2000
    assert parser.feed("data: x\r\n") is None
    assert parser.feed("\r\n") == Message("message", "x", "")


def _event(event_id: int) -> str:
    body = {
        "id": event_id, "kind": "share.created", "created_at": "2026-11-24T00:00:00Z",
        "lock_id": None, "home_id": None, "gateway_id": None, "actor_id": None,
        "path": "remote", "credential": "owner", "payload": {"share_id": str(uuid.uuid4())},
    }  # fmt: skip
    return f"id: {event_id}\nevent: share.created\ndata: {json.dumps(body)}\n\n"


async def test_a_stream_the_ras_ends_is_resumed_after_the_last_event() -> None:
    requests: list[httpx.Request] = []
    bodies = [
        "retry: 2000\n\n" + _event(5) + ": keepalive\n\n" + _event(6),
        "retry: 2000\n\n" + _event(9),
        "",  # the RAS closes at once: the client stops rather than loop
    ]

    def ras(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(
            200, content=bodies.pop(0), headers={"content-type": "text/event-stream"}
        )

    store = MemoryTokenStore(pair(1))
    async with (
        AsyncRasClient(
            "https://ras.test", tokens=store, transport=httpx.MockTransport(ras)
        ) as client,
        aclosing(client.events.stream(kind=["share.*"])) as feed,
    ):
        seen = [(await anext(feed)).id for _ in range(3)]
        with pytest.raises(RasBadAnswer, match="without sending anything"):
            await anext(feed)
    assert seen == [5, 6, 9]
    assert [r.headers.get("last-event-id") for r in requests] == [None, "6", "9"]
    assert all(r.headers["accept"] == "text/event-stream" for r in requests)
    assert all(r.url.params.get_list("kind") == ["share.*"] for r in requests)
    assert requests[0].headers["authorization"] == "Bearer hla_1"
    # Keepalives come every 15 s: the read timeout outlasts a few, whatever the client's.
    assert requests[0].extensions["timeout"]["read"] == 45.0


async def test_a_refused_stream_is_the_ras_problem() -> None:
    def ras(request: httpx.Request) -> httpx.Response:
        return problem(429, "too-many-requests", retry_after=15)

    async with AsyncRasClient(
        "https://ras.test", tokens=MemoryTokenStore(pair(1)), transport=httpx.MockTransport(ras)
    ) as client:
        with pytest.raises(RasProblem) as refused:
            async with aclosing(client.events.stream(last_event_id=3)) as feed:
                await anext(feed)
    assert refused.value.status == 429
    assert refused.value.extensions["retry_after"] == 15


def test_the_stream_call_and_its_messages_are_checked() -> None:
    call = calls.events_stream(0, lock_id=None, kind="lock.*")
    assert (call.path, call.stream) == ("/v1/events/stream", True)
    assert dict(call.headers)["Last-Event-ID"] == "0"
    assert call.params == (("kind", "lock.*"),)
    with pytest.raises(InvalidArgument, match="last_event_id is an event id"):
        calls.events_stream(-1, lock_id=None, kind=None)
    with pytest.raises(RasBadAnswer, match="data is not JSON"):
        calls.feed_message("{not json")
    with pytest.raises(RasBadAnswer, match=r"FeedEvent\.kind is missing"):
        calls.feed_message('{"id": 1}')
