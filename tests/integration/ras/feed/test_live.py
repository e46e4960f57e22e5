"""Live events end to end: a knob turned at a simulated lock reaches an SSE client over
the RAS's real TLS socket; a client that reconnects with Last-Event-ID gets exactly what
it missed; command outcomes carry their attribution; gateways and locks go offline and
come back; another user sees none of it."""

from __future__ import annotations

import contextlib
import time

import pytest
from sqlalchemy import func, select

from heslock.protocol import BoltState
from heslock.protocol.makers import ACME, LUMEN
from heslock.ras.services.feed.monitor import OFFLINE_AFTER_S
from heslock.ras.services.feed.stream import MAX_STREAMS_PER_USER
from heslock.ras.store.models import FeedEvent
from heslock.xmpp import Jid
from heslock.xmpp.lockns import ScanReason
from tests.integration.ras.commands.conftest import Rig, ShiftedClock
from tests.integration.ras.commands.test_commands import bound_lock
from tests.integration.ras.feed.conftest import feed, sse

pytestmark = pytest.mark.timeout(120)

MANUAL = {"kind": "lock.manual_operation"}


async def test_manual_unlock_is_streamed_and_a_resumed_stream_loses_nothing(rig: Rig) -> None:
    peripheral, lock_id, _, _ = await bound_lock(rig, LUMEN)
    lock = peripheral.lock
    ingest = rig.relay.events

    async with sse(rig.client, "a", params=MANUAL) as stream:
        pressed = time.perf_counter()
        peripheral.press(lambda t: lock.turn_knob(BoltState.UNLOCKED, t))
        first = await stream.next()
        latency = time.perf_counter() - pressed
    print(f"\nknob turned -> SSE event at the client: {latency * 1000:.1f} ms")
    assert first.kind == "lock.manual_operation"
    assert first.data["lock_id"] == lock_id
    assert first.data["path"] == "manual"
    assert first.data["actor_id"] is None
    assert first.data["credential"].startswith("gateway:")
    assert first.data["payload"]["detail"] == BoltState.UNLOCKED
    assert first.data["id"] == first.id

    # Disconnected: two more events happen.
    handled = ingest.stored + ingest.refused
    peripheral.press(lambda t: lock.turn_knob(BoltState.LOCKED, t))
    await ingest.wait_handled(handled + 1)
    peripheral.press(lambda t: lock.turn_knob(BoltState.UNLOCKED, t))
    await ingest.wait_handled(handled + 2)

    async with sse(rig.client, "a", last_event_id=first.id, params=MANUAL) as stream:
        missed = [await stream.next(), await stream.next()]
        assert [e.data["payload"]["detail"] for e in missed] == [
            BoltState.LOCKED,
            BoltState.UNLOCKED,
        ]
        assert first.id < missed[0].id < missed[1].id
        # Then live, and nothing twice: the next event is the new one.
        peripheral.press(lambda t: lock.turn_knob(BoltState.LOCKED, t))
        live = await stream.next()
        assert live.id > missed[1].id
        assert live.data["payload"]["detail"] == BoltState.LOCKED

    # The listing agrees, and another user sees none of it (stream or listing).
    listed = await feed(rig.client, "a", **MANUAL)
    assert [e["id"] for e in listed] == [live.id, missed[1].id, missed[0].id, first.id]
    assert await feed(rig.client, "b") == []


async def test_command_outcomes_carry_their_attribution(rig: Rig) -> None:
    _, lock_id, account, _ = await bound_lock(rig, ACME)
    async with sse(rig.client, "a", params={"kind": "command.*"}) as stream:
        response = await rig.command(lock_id, "unlock", "feed-1")
        assert response.status_code == 200, response.text
        event = await stream.next()
    assert event.kind == "command.ok"
    assert event.data["actor_id"] == str(rig.ids["a"])
    assert event.data["path"] == "remote"
    assert event.data["credential"] == "owner"
    payload = event.data["payload"]
    assert payload["command"] == "unlock"
    assert payload["command_id"] == response.json()["command_id"]
    assert payload["gateway"] == Jid.parse(account.jid).bare
    assert payload["bolt"] == "unlocked"

    # A repeated request (same key) answers from the stored row: no second event.
    again = await rig.command(lock_id, "unlock", "feed-1")
    assert again.status_code == 200
    assert [e["id"] for e in await feed(rig.client, "a", kind="command.*")] == [event.id]
    assert await feed(rig.client, "b", kind="command.*") == []


async def test_gateway_goes_offline_and_comes_back(rig: Rig) -> None:
    monitor = rig.relay.connectivity
    account = await rig.create_gateway()
    async with sse(rig.client, "a", params={"kind": "gateway.*"}) as stream:
        gateway = await rig.start_gateway(account)
        online = await stream.next()
        assert online.kind == "gateway.online"
        assert online.data["gateway_id"] == account.id
        assert online.data["path"] == "system"
        assert online.data["payload"]["gateway"] == Jid.parse(account.jid).bare

        await rig.stop_gateway(gateway)
        offline = await stream.next()
        assert offline.kind == "gateway.offline"

        published = monitor.published
        await rig.start_gateway(account)
        again = await stream.next()
        assert again.kind == "gateway.online"
        assert online.id < offline.id < again.id
        await monitor.wait_published(published + 1)
    assert await feed(rig.client, "b") == []
    assert [e["kind"] for e in await feed(rig.client, "a", kind="gateway.*")] == [
        "gateway.online",
        "gateway.offline",
        "gateway.online",
    ]


async def lock_events(rig: Rig, lock_id: str) -> list[str]:
    events = await feed(rig.client, "a", lock_id=lock_id, kind=["lock.online", "lock.offline"])
    return [e["kind"] for e in reversed(events)]


async def test_lock_goes_offline_when_no_gateway_reports_it(rig: Rig) -> None:
    monitor = rig.relay.connectivity
    clock = ShiftedClock()
    monitor.clock = clock
    async with sse(rig.client, "a", params={"kind": ["lock.online", "lock.offline"]}) as stream:
        peripheral, lock_id, account, gateway = await bound_lock(rig, LUMEN)
        # Bound after it was first seen: published online once the gateway reports it bound.
        online = await stream.next()
        assert (online.kind, online.data["lock_id"]) == ("lock.online", lock_id)
        assert online.data["payload"]["gateway"] == Jid.parse(account.jid).bare

        # The gateway still reports it, but its sighting grows old: offline after
        # OFFLINE_AFTER_S (the monitor's clock moves instead of the test waiting).
        clock.advance(OFFLINE_AFTER_S + 1)
        await monitor.check()
        stale = await stream.next()
        assert stale.kind == "lock.offline"
        assert stale.data["lock_id"] == lock_id

        # The next report lists it fresh: online again at once.
        clock.offset = 0.0
        gateway.send_scan_report(ScanReason.PERIODIC)
        back = await stream.next()
        assert back.kind == "lock.online"

        # Its radio goes quiet: the gateway reports it gone, offline without waiting.
        await peripheral.stop()
        gone = await stream.next()
        assert gone.kind == "lock.offline"
        assert gone.data["payload"]["device_id"] == peripheral.lock.identity.device_id.hex
    assert await lock_events(rig, lock_id) == [
        "lock.online",
        "lock.offline",
        "lock.online",
        "lock.offline",
    ]


async def test_a_restarted_ras_repeats_no_connectivity_event(rig: Rig) -> None:
    _, lock_id, account, _ = await bound_lock(rig, ACME)
    monitor = rig.relay.connectivity
    await monitor.wait_published(2)  # gateway online, lock online
    before = await lock_events(rig, lock_id)
    assert before == ["lock.online"]

    await rig.server.stop()
    await rig.start_ras_again()
    bare = Jid.parse(account.jid).bare
    await rig.presence.next(lambda p: p.online and p.gateway == bare)
    await rig.scans.next(lambda s: s.gateway == bare)
    monitor = rig.relay.connectivity
    await monitor.wait_handled(2)  # the presence and the scan report, each checked after
    assert bare in monitor.gateways_online
    assert monitor.locks.online  # the lock is online again in this RAS's memory
    # The feed still says online (and the gateway online): nothing new was written.
    assert await lock_events(rig, lock_id) == ["lock.online"]
    gateway_kinds = [e["kind"] for e in await feed(rig.client, "a", kind="gateway.*")]
    assert gateway_kinds == ["gateway.online"]

    # What the feed calls online but is not online when the catch-up pass runs (gone
    # while no RAS ran) is published offline by it.
    monitor.gateways_online.clear()
    monitor.locks.gateway_gone(bare)
    monitor.locks.changes(monitor.now())
    await monitor.catch_up()
    kinds = [e["kind"] for e in await feed(rig.client, "a")]
    assert sorted(kinds[:2]) == ["gateway.offline", "lock.offline"]


async def test_stream_needs_a_user_and_bounds_concurrent_streams(rig: Rig) -> None:
    response = await rig.client.get("/v1/events/stream")
    assert response.status_code == 401
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(MAX_STREAMS_PER_USER):
            await stack.enter_async_context(sse(rig.client, "a"))
        refused = await rig.client.get("/v1/events/stream", headers={"authorization": "Bearer a"})
        assert refused.status_code == 429
        assert refused.json()["type"].endswith("/rate-limited")
        async with sse(rig.client, "b"):  # another user is not affected
            pass
    async with sse(rig.client, "a"):  # closed streams gave their slots back
        pass
    async with rig.maker()() as session:
        count = (await session.execute(select(func.count()).select_from(FeedEvent))).scalar_one()
    assert count == 0  # opening streams writes nothing
