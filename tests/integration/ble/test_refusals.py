"""The lock's refusals, lockout, factory reset and restart, all through BLE frames."""

from __future__ import annotations

import asyncio
import os

import pytest

from heslock.ble.central import FrameLink
from heslock.bsld import LockConfig, SimulatedLock
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import (
    Cmd,
    EventType,
    LockRefused,
    OperationOp,
    Profile,
    RasKeyNegotiation,
    ReasonCode,
    StatusArgs,
)
from heslock.protocol.makers import ACME, KEYSTONE, LUMEN
from tests.integration.ble.air import Air, EventQueue, Ras


async def _bound(
    air: Air,
    profile: Profile = Profile.SECURE,
    *,
    config: LockConfig | None = None,
    persistent: bool = False,
) -> tuple[LockPeripheral, Ras, FrameLink]:
    peripheral, ras = await air.add_lock(KEYSTONE, profile, config=config, persistent=persistent)
    peripheral.press(peripheral.lock.press_registration_button)
    link = await air.connect(peripheral)
    await ras.register(link)
    return peripheral, ras, link


async def test_retry_gets_the_first_answer_without_a_second_actuation(air: Air) -> None:
    _, ras, link = await _bound(air)
    events = EventQueue(link)
    unlock = ras.bolt(OperationOp.UNLOCK)
    first = await link.request(unlock)
    again = await link.request(unlock)
    assert again == first
    frame, _ = ras.open(await events.next())
    assert EventType(frame.type) is EventType.REMOTE_OPERATION
    assert events.queue.empty()  # one actuation, one event


async def test_replay_after_the_retry_period_is_refused(air: Air) -> None:
    peripheral, ras, link = await _bound(air)
    unlock = ras.bolt(OperationOp.UNLOCK)
    assert ras.refusal(await link.request(unlock)) is None
    air.clock.advance(peripheral.lock.config.retry_s + 1)
    assert ras.refusal(await link.request(unlock)) is ReasonCode.REPLAY


async def test_wrong_keys_are_refused(air: Air) -> None:
    peripheral, ras, link = await _bound(air)
    stranger = ras.bolt(OperationOp.UNLOCK, key=os.urandom(16))
    assert ras.refusal(await link.request(stranger)) is ReasonCode.BAD_TAG
    old_factory = ras.bolt(OperationOp.UNLOCK, key=ras.factory_key)
    assert ras.refusal(await link.request(old_factory)) is ReasonCode.WRONG_KEY
    assert peripheral.lock.status(air.clock()).bolt.name == "LOCKED"


async def test_base_profile_wrong_key_fails_the_check_byte(air: Air) -> None:
    _, ras, link = await _bound(air, Profile.BASE)
    stranger = ras.bolt(OperationOp.UNLOCK, key=os.urandom(16))
    assert ras.refusal(await link.request(stranger)) is ReasonCode.BAD_CHECK


async def test_stale_timestamp_is_refused(air: Air) -> None:
    _, ras, link = await _bound(air)
    stale = ras.bolt(OperationOp.UNLOCK, ts=air.clock() - 100)
    assert ras.refusal(await link.request(stale)) is ReasonCode.STALE


async def test_counter_regression_is_refused(air: Air) -> None:
    _, ras, link = await _bound(air, Profile.SECURE)
    assert ras.refusal(await link.request(ras.bolt(OperationOp.UNLOCK, seq=100))) is None
    behind = ras.bolt(OperationOp.LOCK, seq=50)
    assert ras.refusal(await link.request(behind)) is ReasonCode.COUNTER


async def test_lockout_after_repeated_garbage_and_its_end(air: Air) -> None:
    config = LockConfig(wrong_attempt_limit=3, lockout_s=60.0)
    peripheral, ras, link = await _bound(air, config=config)
    events = EventQueue(link)
    for _ in range(3):
        await link.request(os.urandom(20))
    frame, body = ras.open(await events.next())
    assert EventType(frame.type) is EventType.WRONG_ATTEMPTS
    assert body.op == 3
    assert ras.refusal(await link.request(ras.bolt(OperationOp.UNLOCK))) is ReasonCode.LOCKED_OUT
    assert peripheral.lock.status(air.clock()).locked_out

    air.clock.advance(61)
    peripheral.poke()
    assert ras.refusal(await link.request(ras.bolt(OperationOp.UNLOCK))) is None


async def test_factory_reset_then_registration_only_inside_a_window(air: Air) -> None:
    peripheral, ras, link = await _bound(air)
    events = EventQueue(link)
    central = air.central
    assert central is not None

    peripheral.press(peripheral.lock.factory_reset)
    frame, _ = ras.open(await events.next())  # sealed under the key in force before
    assert EventType(frame.type) is EventType.FACTORY_RESET
    assert not peripheral.lock.status(air.clock()).bound
    seen = await central.scan_for(
        3.0,
        device_id=peripheral.lock.identity.device_id,
        until=lambda r: not r.found.advert.bound,
    )
    assert not seen.found.advert.registration_open

    # The old lock key is gone: its frames no longer open (the error is under the factory key).
    answer = await link.request(ras.bolt(OperationOp.UNLOCK))
    assert ras.refusal(answer, key=ras.factory_key) is ReasonCode.BAD_TAG

    with pytest.raises(LockRefused) as refused:
        await ras.register(link, version=2)
    assert refused.value.reason is ReasonCode.REGISTRATION_CLOSED

    peripheral.press(peripheral.lock.press_registration_button)
    await ras.register(link, version=2)
    assert peripheral.lock.bound
    assert ras.refusal(await link.request(ras.bolt(OperationOp.UNLOCK))) is None

    # A window that expired closes the factory key again.
    peripheral.press(peripheral.lock.factory_reset)
    peripheral.press(peripheral.lock.press_registration_button)
    air.clock.advance(peripheral.lock.config.registration_window_s + 1)
    peripheral.poke()
    with pytest.raises(LockRefused) as late:
        await ras.register(link, version=3)
    assert late.value.reason is ReasonCode.REGISTRATION_CLOSED


async def test_state_survives_a_restart_of_the_peripheral(air: Air) -> None:
    peripheral, ras, link = await _bound(air, persistent=True)
    unlock = ras.bolt(OperationOp.UNLOCK)
    assert ras.refusal(await link.request(unlock)) is None
    identity, path = peripheral.lock.identity, peripheral.lock.state_path
    assert path is not None

    await air.remove_lock(peripheral)
    await link.wait_disconnected(3.0)

    restored = SimulatedLock.load(identity, path)
    assert restored.load_problem is None
    assert restored.bound
    peripheral2, _ = await air.add_lock(KEYSTONE, lock=restored)
    link2 = await air.connect(peripheral2)
    assert ras.refusal(await link2.request(unlock)) is ReasonCode.REPLAY
    # The replay floor after a restart is the newest accepted timestamp: a restart takes
    # a moment on a real lock, and new frames carry a later second.
    air.clock.advance(1)
    answer = await link2.request(ras.bolt(OperationOp.LOCK))
    frame, body = ras.open(answer)
    assert frame.group == Cmd.OPERATION
    assert StatusArgs.from_bytes(body.args).bolt.name == "LOCKED"


async def test_three_makers_side_by_side_under_one_central(air: Air) -> None:
    rigs = [
        await air.add_lock(ACME, Profile.BASE),
        await air.add_lock(KEYSTONE, Profile.SECURE),
        await air.add_lock(LUMEN, Profile.SECURE),
    ]
    links = []
    for peripheral, _ in rigs:
        peripheral.press(peripheral.lock.press_registration_button)
        links.append(await air.connect(peripheral))
    assert [link.mtu for link in links] == [23, 185, 247]

    await asyncio.gather(*(ras.register(link) for (_, ras), link in zip(rigs, links, strict=True)))
    answers = await asyncio.gather(
        *(
            link.request(ras.bolt(OperationOp.UNLOCK))
            for (_, ras), link in zip(rigs, links, strict=True)
        )
    )
    for (peripheral, ras), answer in zip(rigs, answers, strict=True):
        assert ras.refusal(answer) is None
        assert peripheral.lock.status(air.clock()).bolt.name == "UNLOCKED"


async def test_negotiation_frames_are_opaque_to_the_link(air: Air) -> None:
    """The relay never needs the key: the RAS side alone verifies the answers."""
    peripheral, ras = await air.add_lock(LUMEN, Profile.BASE)
    peripheral.press(peripheral.lock.press_registration_button)
    link = await air.connect(peripheral)
    now = int(air.clock())
    neg = RasKeyNegotiation.start(ras.device_id, ras.profile, ras.factory_key, 1, now)
    part1, _ = neg.stage_a_frames(now)
    answer = await link.request(part1)
    assert len(answer) == Profile.BASE.wire_size
    assert neg.receive(answer, now).value == "part1-acked"
