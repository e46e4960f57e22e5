"""Locks through the SDK on real parts: the client's own radio scans and registers a lock
(frames carried over BLE by heslock.rac.nearby), a real gateway runs commands, the lock's
own events come back, and the lock is renamed, transferred and removed."""

from __future__ import annotations

import pytest

from heslock.protocol import BoltState
from heslock.protocol.makers import ACME, KEYSTONE, LUMEN
from heslock.rac import RasProblem, RegistrationFailed
from heslock.rac.nearby import (
    NearbyRadio,
    RegistrationProgress,
    Stage,
    operate_nearby,
    register_nearby,
)
from tests.integration.rac.conftest import System

pytestmark = pytest.mark.timeout(90)

CLIENT_RADIO = "C0:00:00:00:00:AA"


async def test_scan_decodes_the_advertising_data(system: System) -> None:
    locks = [await system.add_lock(maker) for maker in (ACME, KEYSTONE, LUMEN)]
    async with NearbyRadio("local", CLIENT_RADIO, local=system.vlink) as radio:
        found = {d.device_id: d for d in await radio.scan(timeout_s=1.0)}
    for peripheral, maker in zip(locks, (ACME, KEYSTONE, LUMEN), strict=True):
        identity = peripheral.lock.identity
        seen = found[identity.device_id.hex]
        assert seen.maker == maker.name
        assert seen.model == maker.models[0].name
        assert seen.ble_version == maker.ble_version.value
        assert seen.bound is False
        assert seen.registration_open is True
        assert 0 <= seen.battery <= 100
        assert seen.name is not None
        assert seen.name.startswith(maker.name_prefix)


async def test_register_nearby_then_commands_events_rename_transfer_remove(
    system: System,
) -> None:
    peripheral = await system.add_lock(KEYSTONE)
    device = peripheral.lock.identity.device_id
    owner = await system.user()
    other = await system.user()
    progress: list[RegistrationProgress] = []
    async with owner, other:
        legit = await owner.devices.legitimacy(device.colon)
        assert legit.free
        assert legit.device_id == device.hex
        async with NearbyRadio("local", CLIENT_RADIO, local=system.vlink) as radio:
            reg = await register_nearby(owner, radio, device.hex, "front door", progress.append)
        assert reg.committed
        assert reg.lock_id is not None
        assert peripheral.lock.bound
        stages = [p.stage for p in progress]
        assert stages[:3] == [Stage.FIND, Stage.CONNECT, Stage.START]
        assert stages[-1] is Stage.DONE
        assert [p.text for p in progress if p.stage is Stage.FRAME] == [
            "stage a: key part 1 of 2",
            "stage a: key part 2 of 2",
            "stage b: commit",
        ]
        [lock] = await owner.locks.list()
        assert (lock.id, lock.name, lock.device_id) == (reg.lock_id, "front door", device.hex)

        # Remote commands through the owner's gateway.
        credentials = await owner.gateways.add("hall")
        assert credentials.secret not in repr(credentials)
        await system.start_gateway(credentials)
        await system.seen_by(credentials, device)
        result = await owner.locks.command(lock.id, "unlock")
        assert (result.state, result.bolt) == ("ok", "unlocked")
        again = await owner.locks.command(lock.id, "lock", idempotency_key="k-1")
        replay = await owner.locks.command(lock.id, "lock", idempotency_key="k-1")
        assert replay.command_id == again.command_id
        assert again.bolt == "locked"
        assert (await owner.locks.get(lock.id)).bolt == "locked"

        # The lock's own event, from a person at the door.
        ingest = system.relay.events
        handled = ingest.stored + ingest.refused
        peripheral.press(lambda t: peripheral.lock.turn_knob(BoltState.UNLOCKED, t))
        await ingest.wait_handled(handled + 1)
        events = await owner.locks.events(lock.id, limit=10)
        assert events[0].kind == "manual_operation"
        assert events[0].bolt == "unlocked"
        older = await owner.locks.events(lock.id, limit=10, before=events[0].id)
        assert all(e.id < events[0].id for e in older)

        renamed = await owner.locks.rename(lock.id, "back door")
        assert renamed.name == "back door"
        with pytest.raises(RasProblem) as not_theirs:
            await other.locks.command(lock.id, "unlock")
        assert not_theirs.value.code == "not-found"

        other_id = (await other.account.get()).id
        moved = await owner.locks.transfer(lock.id, other_id)
        assert moved.owner_id == other_id
        with pytest.raises(RasProblem):
            await owner.locks.get(lock.id)
        await other.locks.remove(lock.id)
        assert await other.locks.list() == []
        after = await other.devices.legitimacy(device)
        assert after.factory_reset_required


async def test_a_registration_the_lock_refuses_is_a_typed_error(system: System) -> None:
    """A lock whose registration window is closed refuses stage a: RegistrationFailed."""
    peripheral = await system.add_lock(ACME)
    device = peripheral.lock.identity.device_id
    peripheral.press(peripheral.lock.factory_reset)  # the window closes
    async with await system.user() as owner:
        async with NearbyRadio("local", CLIENT_RADIO, local=system.vlink) as radio:
            with pytest.raises(RegistrationFailed) as failed:
                await register_nearby(owner, radio, device, "garage")
        assert failed.value.phase == "failed"
        assert failed.value.reason
        assert failed.value.exit_code == 3
        assert await owner.locks.list() == []


async def test_registration_through_a_gateway(system: System) -> None:
    """C1: the RAS carries the frames through the user's gateway itself."""
    if not system.has_route("/v1/registrations/{registration_id}/relay"):
        pytest.skip("C1 (registration via a gateway) is not in this RAS yet")
    peripheral = await system.add_lock(LUMEN)
    device = peripheral.lock.identity.device_id
    async with await system.user() as owner:
        credentials = await owner.gateways.add("porch")
        await system.start_gateway(credentials)
        await system.seen_by(credentials, device)
        reg = await owner.registrations.start(
            device, "porch", via="gateway", gateway_id=credentials.id
        )
        assert reg.committed
        assert reg.done
        assert reg.lock_id is not None
        assert peripheral.lock.bound
        [lock] = await owner.locks.list()
        assert lock.id == reg.lock_id


async def test_nearby_mode_operates_the_lock_over_the_clients_radio(system: System) -> None:
    """C2: the RAS seals the frame, the client writes it, the RAS verifies the answer."""
    if not system.has_route("/v1/locks/{lock_id}/frames"):
        pytest.skip("C2 (nearby mode) is not in this RAS yet")
    peripheral = await system.add_lock(ACME)
    device = peripheral.lock.identity.device_id
    async with await system.user() as owner:
        async with NearbyRadio("local", CLIENT_RADIO, local=system.vlink) as radio:
            reg = await register_nearby(owner, radio, device, "shed")
            assert reg.lock_id is not None
            result = await operate_nearby(owner, radio, reg.lock_id, device, "unlock")
            assert (result.command, result.bolt) == ("unlock", "unlocked")
            status = await operate_nearby(owner, radio, reg.lock_id, None, "status")
            assert status.bolt == "unlocked"
        assert (await owner.locks.get(reg.lock_id)).bolt == "unlocked"
