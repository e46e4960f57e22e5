"""The RAS frame relay end to end: LocalBus -> RelayEndpoint (XMPP over loopback TLS) ->
real BGWs (slixmpp + bumble) -> SimulatedLock peripherals on a virtual BLE link.

Synchronisation is on bus notices, events and futures, never on sleeps.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine
from typing import Any

import pytest
from bumble.device import Connection, Device

from heslock.bgw import gateway as bgw_gateway
from heslock.bgw.scanner import Scanner
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import BoltState, Cmd, DeviceId, EventType, OperationOp, StatusArgs
from heslock.protocol.advert import DiscoveredLock
from heslock.protocol.makers import ACME, KEYSTONE, LUMEN
from heslock.ras.relay import GatewayLost, GatewayOffline, LockNotInRange
from tests.integration.ras.relay.conftest import FRAME_TIMEOUT_S, WAIT_S, LockKeys, Rig, bare

pytestmark = pytest.mark.timeout(60)

GW1, GW2 = bare("gw1"), bare("gw2")
#: How much weaker the "far" gateway hears every lock (the virtual link reports -50 dBm).
FAR_ATTENUATION_DB = 30


def bolt_of(keys: LockKeys, answer: bytes) -> BoltState:
    frame, body = keys.open(answer)
    assert frame.group == Cmd.OPERATION, frame
    return StatusArgs.from_bytes(body.args).bolt


def first_step_raises(coro: Coroutine[Any, Any, Any], error: type[Exception]) -> Exception:
    """Run ``coro`` to its first suspension: it must raise ``error`` before suspending."""
    try:
        coro.send(None)
    except error as exc:
        return exc
    finally:
        coro.close()
    raise AssertionError(f"{coro} suspended instead of raising {error.__name__}")


async def test_presence_registry_and_offline_fails_at_once(rig: Rig) -> None:
    _, keys = await rig.add_lock(ACME)
    gateway = await rig.start_gateway("gw1")
    info = rig.endpoint.registry.get(GW1)
    assert info is not None
    assert info.online
    assert info.session == f"{GW1}/bgw"
    assert info.online_since is not None
    assert info.offline_since is None
    assert rig.endpoint.is_online(f"{GW1}/bgw")

    await rig.stop_gateway(gateway)
    notice = await rig.presence.next(lambda p: p.gateway == GW1)
    assert (notice.online, notice.session) == (False, f"{GW1}/bgw")
    info = rig.endpoint.registry.get(GW1)
    assert info is not None
    assert not info.online
    assert info.session is None
    assert info.offline_since == notice.at
    assert info.online_since is not None
    assert info.offline_since >= info.online_since
    assert rig.endpoint.gateway_for(keys.device_id) is None  # its view went with it

    # Offline: refused before anything is sent, without waiting for any timer.
    exc = first_step_raises(
        rig.bus.send_frame(GW1, keys.device_id, secrets.token_bytes(20), FRAME_TIMEOUT_S),
        GatewayOffline,
    )
    assert type(exc) is GatewayOffline
    assert isinstance(exc, GatewayOffline)
    assert not exc.may_have_executed


async def test_scan_report_feeds_routing(rig: Rig) -> None:
    (_, a), (_, b) = [await rig.add_lock(m) for m in (ACME, KEYSTONE)]
    await rig.start_gateway("gw1")
    scan = await rig.scans.next(
        lambda s: {e.lock for e in s.report.locks} == {a.device_id, b.device_id}
    )
    assert scan.gateway == GW1
    assert await rig.bus.gateway_for(a.device_id) == GW1
    assert await rig.bus.gateway_for(b.device_id) == GW1
    sighting = rig.endpoint.sighting_for(a.device_id)
    assert sighting is not None
    assert sighting.rssi == -50  # what bumble's virtual controller reports
    assert sighting.reported_at >= scan.received_at  # this report or a later one
    assert sighting.seen_at <= sighting.reported_at
    assert rig.endpoint.routing.locks_of(GW1) == sorted([a.device_id, b.device_id])
    assert await rig.bus.gateway_for(DeviceId.parse("F2:00:00:00:00:01")) is None


class FarScanner(Scanner):
    """The radio of a gateway further away: every advertisement arrives weaker."""

    def _record(self, address: str, found: DiscoveredLock, rssi: int) -> None:
        super()._record(address, found, rssi - FAR_ATTENUATION_DB)


async def test_two_gateways_best_signal_then_failover(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    peripheral, keys = await rig.add_lock(LUMEN)
    lock = keys.device_id
    near_gateway = await rig.start_gateway("gw1")
    near = await rig.seen_by("gw1", lock)
    assert [e.rssi for e in near.report.locks] == [-50]
    assert await rig.bus.gateway_for(lock) == GW1  # the only one so far

    with monkeypatch.context() as patch:  # only gw2's scanner is the far one
        patch.setattr(bgw_gateway, "Scanner", FarScanner)
        await rig.start_gateway("gw2")
    far = await rig.seen_by("gw2", lock)
    assert [e.rssi for e in far.report.locks] == [-50 - FAR_ATTENUATION_DB]
    assert far.received_at > near.received_at
    # gw2 reported last, but both saw the lock within the recency window: the stronger
    # signal wins.
    assert await rig.bus.gateway_for(lock) == GW1
    assert {s.gateway for s in rig.endpoint.routing.sightings(lock)} == {GW1, GW2}

    chosen = await rig.bus.gateway_for(lock)
    assert chosen is not None
    await rig.register(chosen, keys)
    assert peripheral.lock.bound

    await rig.stop_gateway(near_gateway)
    await rig.presence.next(lambda p: p.gateway == GW1 and not p.online)
    assert await rig.bus.gateway_for(lock) == GW2
    answer = await rig.frame(GW2, lock, keys.bolt(OperationOp.UNLOCK))
    assert bolt_of(keys, answer) is BoltState.UNLOCKED
    assert peripheral.lock.status(0).bolt is BoltState.UNLOCKED


async def test_register_unlock_lock_and_event_with_rssi(rig: Rig) -> None:
    peripheral, keys = await rig.add_lock(KEYSTONE)
    await rig.start_gateway("gw1")
    await rig.seen_by("gw1", keys.device_id)
    gateway = await rig.bus.gateway_for(keys.device_id)
    assert gateway == GW1

    await rig.register(gateway, keys)
    assert peripheral.lock.bound
    for op, bolt in (
        (OperationOp.UNLOCK, BoltState.UNLOCKED),
        (OperationOp.LOCK, BoltState.LOCKED),
    ):
        answer = await rig.frame(gateway, keys.device_id, keys.bolt(op))
        assert bolt_of(keys, answer) is bolt
        assert peripheral.lock.status(0).bolt is bolt

    # Someone turns the knob at the door: the lock's own event reaches the subscriber.
    peripheral.press(lambda t: peripheral.lock.turn_knob(BoltState.UNLOCKED, t))
    event = await rig.events.next(
        lambda e: (
            e.lock == keys.device_id
            and EventType(keys.codec().open(e.frame).type) is EventType.MANUAL_OPERATION
        )
    )
    assert event.gateway == GW1
    assert event.rssi == -50
    frame, body = keys.open(event.frame)
    assert frame.group == Cmd.EVENT
    assert body.op == BoltState.UNLOCKED
    assert "frame=<20 bytes>" in repr(event)  # never the frame itself in a log line


async def test_lock_out_of_range(rig: Rig) -> None:
    _, keys = await rig.add_lock(ACME)
    await rig.start_gateway("gw1")
    await rig.seen_by("gw1", keys.device_id)
    stranger = DeviceId.parse("F2:00:00:00:00:01")
    with pytest.raises(LockNotInRange) as caught:
        await rig.frame(GW1, stranger, secrets.token_bytes(20))
    assert not caught.value.may_have_executed
    assert "lock-not-in-range" in str(caught.value)
    assert rig.endpoint.is_online(GW1)  # a refused frame is not a gateway problem


def hold_answer(
    peripheral: LockPeripheral, monkeypatch: pytest.MonkeyPatch
) -> tuple[asyncio.Event, asyncio.Event, asyncio.Event, list[bytes]]:
    """The lock executes the next frame, then holds its answer until ``release``.

    Returns (entered: the answer is held, release, finished: the held write handler
    returned, the held answer).
    """
    entered, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()
    held: list[bytes] = []
    notify = peripheral.service.notify

    async def holding(device: Device, connection: Connection, frame: bytes) -> bool:
        if held:
            return await notify(device, connection, frame)
        held.append(frame)
        entered.set()
        try:
            await release.wait()
            return await notify(device, connection, frame)
        finally:
            finished.set()

    monkeypatch.setattr(peripheral.service, "notify", holding)
    return entered, release, finished, held


async def test_gateway_killed_mid_command_then_retry_does_not_actuate_twice(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    peripheral, keys = await rig.add_lock(ACME)
    gateway = await rig.start_gateway("gw1")
    await rig.seen_by("gw1", keys.device_id)
    await rig.register(GW1, keys)

    entered, release, finished, held = hold_answer(peripheral, monkeypatch)
    unlock = keys.bolt(OperationOp.UNLOCK)
    pending = asyncio.create_task(rig.frame(GW1, keys.device_id, unlock))
    await asyncio.wait_for(entered.wait(), WAIT_S)
    assert peripheral.lock.status(0).bolt is BoltState.UNLOCKED  # executed, answer held

    await rig.stop_gateway(gateway)  # the gateway's client goes away mid-command
    with pytest.raises(GatewayLost) as caught:
        await pending
    assert caught.value.may_have_executed  # the caller must treat the outcome as unknown
    assert isinstance(caught.value, GatewayOffline)  # an HTTP 503 to the caller
    release.set()
    await asyncio.wait_for(finished.wait(), WAIT_S)

    # Someone locks by hand; then the gateway is back and the RAS resends the same bytes.
    peripheral.press(lambda t: peripheral.lock.turn_knob(BoltState.LOCKED, t))
    await rig.start_gateway("gw1")
    await rig.seen_by("gw1", keys.device_id)
    again = await rig.frame(GW1, keys.device_id, unlock)
    assert again == held[0]  # the lock's cached answer to the duplicate
    assert bolt_of(keys, again) is BoltState.UNLOCKED  # the state it answered then
    assert peripheral.lock.status(0).bolt is BoltState.LOCKED  # not unlocked a second time


async def test_endpoint_restart_gateway_reconnects(rig: Rig) -> None:
    peripheral, keys = await rig.add_lock(LUMEN)
    gateway = await rig.start_gateway("gw1")
    await rig.seen_by("gw1", keys.device_id)
    await rig.register(GW1, keys)
    port = rig.endpoint.ports["direct_tls"]

    await rig.endpoint.stop()
    offline = await rig.presence.next(lambda p: p.gateway == GW1)
    assert not offline.online
    assert rig.endpoint.gateway_for(keys.device_id) is None
    first_step_raises(
        rig.bus.send_frame(GW1, keys.device_id, keys.bolt(OperationOp.STATUS), FRAME_TIMEOUT_S),
        GatewayOffline,
    )

    await rig.endpoint.start()
    assert rig.endpoint.ports["direct_tls"] == port  # where the gateway looks for it
    online = await rig.presence.next(lambda p: p.gateway == GW1)
    assert online.online
    await rig.seen_by("gw1", keys.device_id)  # it re-reports what it sees on a new session
    assert gateway.ras.sessions == 2
    assert await rig.bus.gateway_for(keys.device_id) == GW1
    answer = await rig.frame(GW1, keys.device_id, keys.bolt(OperationOp.UNLOCK))
    assert bolt_of(keys, answer) is BoltState.UNLOCKED
    assert peripheral.lock.status(0).bolt is BoltState.UNLOCKED
