"""The feed's pure parts: lock presence from scan reports, the notifier, stream slots,
Last-Event-ID parsing, filters and the SSE framing."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from heslock.errors import UsageError
from heslock.protocol.ids import DeviceId
from heslock.ras.services.errors import TooManyRequests
from heslock.ras.services.feed.monitor import CHECK_EVERY_S, OFFLINE_AFTER_S, LockPresence
from heslock.ras.services.feed.notifier import FeedNotifier
from heslock.ras.services.feed.query import FeedFilter
from heslock.ras.services.feed.stream import StreamSlots, frame, parse_last_event_id
from heslock.ras.store.models import FeedEvent

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
L1, L2 = DeviceId.parse("0000000000A1"), DeviceId.parse("0000000000A2")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_offline_threshold_is_within_two_minutes_with_its_check() -> None:
    assert OFFLINE_AFTER_S + CHECK_EVERY_S <= 120
    assert OFFLINE_AFTER_S > 60  # one periodic report (60 s) may be late or lost


def test_lock_presence_follows_reports_age_and_gateways() -> None:
    presence = LockPresence(offline_after_s=100)
    presence.report("gw1", [(L1, at(0)), (L2, at(0))])
    assert presence.changes(at(1)) == ([(L1, "gw1"), (L2, "gw1")], [])
    assert presence.changes(at(2)) == ([], [])  # no change, nothing twice

    # gw1 reports L2 gone: offline at once; L1 ages out after 100 s unless reported.
    presence.report("gw1", [(L1, at(0))])
    assert presence.changes(at(3)) == ([], [L2])
    assert presence.changes(at(100)) == ([], [])
    assert presence.changes(at(100.5)) == ([], [L1])

    # A second gateway sees L1 fresh: online again, attributed to it; gw2 going away
    # leaves L1 online while gw1's fresher sighting holds.
    presence.report("gw2", [(L1, at(150))])
    assert presence.changes(at(151)) == ([(L1, "gw2")], [])
    presence.report("gw1", [(L1, at(160))])
    presence.gateway_gone("gw2")
    assert presence.changes(at(161)) == ([], [])
    presence.gateway_gone("gw1")
    assert presence.changes(at(162)) == ([], [L1])
    with pytest.raises(ValueError, match="positive"):
        LockPresence(0)


async def test_notifier_wakes_waiters_and_remembers_a_poke_between() -> None:
    notifier = FeedNotifier()
    seen = notifier.generation
    notifier.poke()  # a commit between reading and waiting is not lost
    assert await notifier.wait(seen, 0.01)

    seen = notifier.generation
    # The poke comes from the loop once the waiter is parked (as after_commit would).
    asyncio.get_running_loop().call_soon(notifier.poke)
    assert await notifier.wait(seen, 5.0)
    assert notifier.waiting == 0
    assert not await notifier.wait(notifier.generation, 0.01)  # timeout: False


def test_stream_slots_bound_each_user() -> None:
    slots = StreamSlots(limit=2)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    slots.acquire(alice)
    slots.acquire(alice)
    with pytest.raises(TooManyRequests):
        slots.acquire(alice)
    slots.acquire(bob)
    slots.release(alice)
    slots.acquire(alice)
    assert slots.open(alice) == 2
    slots.release(alice)
    slots.release(alice)
    assert slots.open(alice) == 0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("42", 42),
        (" 7 ", 7),
        ("", None),
        ("-1", None),
        ("abc", None),
        ("\uff11\uff12", None),  # fullwidth digits: isdigit() but not ASCII
        ("9" * 20, None),
    ],
)
def test_last_event_id(header: str | None, expected: int | None) -> None:
    assert parse_last_event_id(header) == expected


def test_filter_validation() -> None:
    with pytest.raises(UsageError, match="time zone"):
        FeedFilter(since=datetime(2026, 1, 1))
    with pytest.raises(UsageError, match="kinds"):
        FeedFilter(kinds=tuple(f"k{i}" for i in range(33)))
    assert FeedFilter().clause() is None
    assert FeedFilter(kinds=("lock.*",)).clause() is not None


def test_sse_frame_is_one_event_with_its_id() -> None:
    row = FeedEvent(
        id=12,
        kind="lock.door",
        lock_id=uuid.uuid4(),
        path="system",
        payload={"note": "two\nlines"},
        created_at=T0,
    )
    text = frame(row)
    lines = text.split("\n")
    assert lines[:2] == ["id: 12", "event: lock.door"]
    assert lines[2].startswith("data: ")
    assert text.endswith("\n\n")
    assert text.count("\n") == 4  # the payload's newline stays escaped in the JSON
    assert json.loads(lines[2][6:])["payload"]["note"] == "two\nlines"
