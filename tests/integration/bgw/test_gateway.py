"""The BGW end to end: RAS (XMPP over loopback TLS) <-> gateway (slixmpp + bumble) <-> locks.

Three locks of three makers under one gateway; the test is the RAS (tests/integration/bgw/
conftest.py). Synchronisation is on events (presence, messages, futures), never on sleeps.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest
from bumble.device import Connection

from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import (
    BoltState,
    Cmd,
    DeviceId,
    EventType,
    OperationOp,
    StatusArgs,
)
from heslock.protocol.makers import ACME, KEYSTONE, LUMEN, makers
from heslock.xmpp import StanzaError
from heslock.xmpp.lockns import LockCondition, LockEvent, ScanReport
from tests.integration.bgw.conftest import GATEWAY_JID, WAIT_S, Rig, bolt_frame
from tests.integration.ble.air import Ras

pytestmark = pytest.mark.timeout(60)


def bolt_of(ras: Ras, answer: bytes) -> BoltState:
    frame, body = ras.open(answer)
    assert frame.group == Cmd.OPERATION, frame
    return StatusArgs.from_bytes(body.args).bolt


async def test_three_makers_register_operate_events_and_scan(rig: Rig) -> None:
    locks = [await rig.add_lock(maker) for maker in (ACME, KEYSTONE, LUMEN)]
    await rig.start_gateway()
    assert await rig.ras.presence.next() == (GATEWAY_JID, True)

    ids = {ras.device_id for _, ras in locks}
    report = await rig.ras.next_payload(ScanReport, lambda r: {e.lock for e in r.locks} == ids)
    by_id = {entry.lock: entry for entry in report.locks}
    for peripheral, ras in locks:
        assert isinstance(peripheral, LockPeripheral)
        entry = by_id[ras.device_id]
        assert entry.maker == peripheral.maker.name
        assert entry.model == peripheral.maker.models[0].code
        assert entry.ble_version == peripheral.maker.ble_version.value
        assert entry.profile is ras.profile
        assert not entry.bound
        assert entry.registration_open
        assert entry.battery == peripheral.lock.status(0).battery

    for peripheral, ras in locks:
        assert isinstance(peripheral, LockPeripheral)
        await rig.register(ras)
        assert peripheral.lock.bound
        assert (
            bolt_of(ras, await rig.ras.frame(ras.device_id, bolt_frame(ras, OperationOp.UNLOCK)))
            is BoltState.UNLOCKED
        )
        assert peripheral.lock.status(0).bolt is BoltState.UNLOCKED
        assert (
            bolt_of(ras, await rig.ras.frame(ras.device_id, bolt_frame(ras, OperationOp.LOCK)))
            is BoltState.LOCKED
        )
        assert (
            bolt_of(ras, await rig.ras.frame(ras.device_id, bolt_frame(ras, OperationOp.STATUS)))
            is BoltState.LOCKED
        )

    # The bound flags changed: a change report shows all three bound.
    await rig.ras.next_payload(
        ScanReport, lambda r: len(r.locks) == 3 and all(e.bound for e in r.locks)
    )

    # A manual unlock at a lock reaches the RAS as an event message, with RSSI.
    peripheral, ras = locks[1]
    assert isinstance(peripheral, LockPeripheral)
    peripheral.press(lambda t: peripheral.lock.turn_knob(BoltState.UNLOCKED, t))
    event = await rig.ras.next_payload(
        LockEvent,
        lambda e: (
            e.lock == ras.device_id
            and EventType(ras.codec().open(e.frame).type) is EventType.MANUAL_OPERATION
        ),
    )
    assert event.rssi is not None
    frame, body = ras.open(event.frame)
    assert frame.group == Cmd.EVENT
    assert body.op == BoltState.UNLOCKED


def hold_writes(peripheral: LockPeripheral) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the lock's frame handler wait for ``release``; ``entered`` is set on a write."""
    release, entered = asyncio.Event(), asyncio.Event()
    handler = peripheral.service._on_frame  # the lock's firmware entry for frame-in writes

    async def held(connection: Connection, data: bytes) -> None:
        entered.set()
        await release.wait()
        await handler(connection, data)

    peripheral.service._on_frame = held  # test hook
    return release, entered


async def test_ordered_per_lock_parallel_across_locks(rig: Rig) -> None:
    (pa, ra), (_pb, rb) = [await rig.add_lock(m) for m in (ACME, LUMEN)]
    assert isinstance(pa, LockPeripheral)
    await rig.start_gateway()
    await rig.register(ra)
    await rig.register(rb)

    release, entered = hold_writes(pa)
    done: list[str] = []

    async def send(name: str, ras: Ras, wire: bytes) -> bytes:
        answer = await rig.ras.frame(ras.device_id, wire)
        done.append(name)
        return answer

    ops = [OperationOp.UNLOCK, OperationOp.LOCK, OperationOp.UNLOCK, OperationOp.STATUS]
    a_tasks = [
        asyncio.create_task(send(f"a{i}", ra, bolt_frame(ra, op))) for i, op in enumerate(ops)
    ]
    await asyncio.wait_for(entered.wait(), WAIT_S)  # lock A is busy with a0
    # Lock B is served while lock A is held: lanes run in parallel.
    assert (
        bolt_of(rb, await send("b", rb, bolt_frame(rb, OperationOp.UNLOCK))) is BoltState.UNLOCKED
    )
    assert done == ["b"]
    release.set()
    answers = await asyncio.gather(*a_tasks)
    # Lock A answered in the order the RAS sent, each op applied in turn.
    assert done == ["b", "a0", "a1", "a2", "a3"]
    bolts = [bolt_of(ra, answer) for answer in answers]
    assert bolts == [BoltState.UNLOCKED, BoltState.LOCKED, BoltState.UNLOCKED, BoltState.UNLOCKED]


async def test_lock_out_of_range(rig: Rig) -> None:
    peripheral, ras = await rig.add_lock(KEYSTONE)
    assert isinstance(peripheral, LockPeripheral)
    await rig.start_gateway()
    await rig.ras.next_payload(ScanReport, lambda r: [e.lock for e in r.locks] == [ras.device_id])

    stranger = DeviceId.parse("F2:00:00:00:00:01")
    with pytest.raises(StanzaError) as caught:
        await rig.ras.frame(stranger, secrets.token_bytes(20))
    assert (
        LockCondition.from_stanza_condition(caught.value.condition)
        is LockCondition.LOCK_NOT_IN_RANGE
    )

    await rig.air.remove_lock(peripheral)
    await rig.ras.next_payload(ScanReport, lambda r: not r.locks)  # gone from the report
    with pytest.raises(StanzaError) as caught:
        await rig.ras.frame(ras.device_id, secrets.token_bytes(20))
    assert (
        LockCondition.from_stanza_condition(caught.value.condition)
        is LockCondition.LOCK_NOT_IN_RANGE
    )
    assert "not in range" in caught.value.text


async def test_resent_frame_does_not_actuate_twice(rig: Rig) -> None:
    peripheral, ras = await rig.add_lock(ACME)
    assert isinstance(peripheral, LockPeripheral)
    await rig.start_gateway()
    await rig.register(ras)
    unlock = bolt_frame(ras, OperationOp.UNLOCK)
    first = await rig.ras.frame(ras.device_id, unlock)
    assert bolt_of(ras, first) is BoltState.UNLOCKED
    # Someone locks by hand; then the RAS, having lost the answer, resends the same bytes.
    peripheral.press(lambda t: peripheral.lock.turn_knob(BoltState.LOCKED, t))
    again = await rig.ras.frame(ras.device_id, unlock)
    assert again == first  # the lock's cached answer to the duplicate
    assert peripheral.lock.status(0).bolt is BoltState.LOCKED  # not unlocked a second time


async def test_max_links_with_lru_eviction(rig: Rig) -> None:
    locks = [await rig.add_lock(m) for m in makers()]
    gateway = await rig.start_gateway(max_links=2)
    pool = gateway.pool
    assert pool is not None
    a, b, c = (ras.device_id for _, ras in locks)
    for device_id in (a, b, c):
        await rig.ras.frame(device_id, secrets.token_bytes(20))  # any frame gets an answer
        assert len(pool.live) <= 2
    assert pool.live == [b, c]  # a, least recently used and idle, was evicted
    assert pool.evictions == 1
    await rig.ras.frame(a, secrets.token_bytes(20))
    assert pool.live == [c, a]
    assert pool.evictions == 2
    status = gateway.router.status() if gateway.router else None
    assert status is not None
    assert (status.links, status.max_links, status.locks_in_range) == (2, 2, 3)
