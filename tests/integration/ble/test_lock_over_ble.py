"""A BSLD on bumble, driven by a bumble central: discovery, registration, operations."""

from __future__ import annotations

import pytest

from heslock.protocol import Cmd, EventType, OperationOp, Profile, StatusArgs
from heslock.protocol.advert import find_lock_advert
from heslock.protocol.makers import KEYSTONE, MakerProfile, makers
from tests.integration.ble.air import Air, EventQueue


@pytest.mark.parametrize("maker", makers(), ids=lambda m: m.name)
async def test_discovery_data(air: Air, maker: MakerProfile) -> None:
    peripheral, _ = await air.add_lock(maker, Profile.BASE)
    central = await air.start_central()
    identity = peripheral.lock.identity
    seen = await central.scan_for(
        3.0, company_ids=frozenset({maker.company_id}), device_id=identity.device_id
    )
    advert = seen.found.advert
    assert seen.address == identity.device_id.colon
    assert advert.company_id == maker.company_id
    assert advert.ble_version is maker.ble_version
    assert advert.profile is Profile.BASE
    assert advert.model_code == maker.models[0].code
    assert not advert.bound
    assert advert.battery == peripheral.lock.status(0).battery
    assert seen.found.name == f"{maker.name_prefix}-{identity.device_id.hex[-6:]}"


@pytest.mark.parametrize("profile", list(Profile), ids=lambda p: p.value)
async def test_register_unlock_and_event(air: Air, profile: Profile) -> None:
    peripheral, ras = await air.add_lock(KEYSTONE, profile)
    peripheral.press(peripheral.lock.press_registration_button)
    link = await air.connect(peripheral)
    events = EventQueue(link)
    await ras.register(link)
    assert peripheral.lock.bound

    answer = await link.request(ras.bolt(OperationOp.UNLOCK))
    frame, body = ras.open(answer)
    assert frame.cmd == Cmd.OPERATION | 0x80
    assert body.op == OperationOp.UNLOCK
    assert StatusArgs.from_bytes(body.args).bolt.name == "UNLOCKED"
    event, _ = ras.open(await events.next())
    assert frame.group == Cmd.OPERATION
    assert event.group == Cmd.EVENT
    assert EventType(event.type) is EventType.REMOTE_OPERATION

    # The advertisement follows the bound flag.
    central = air.central
    assert central is not None
    data = peripheral.device.advertising_data
    assert find_lock_advert(data).advert.bound
