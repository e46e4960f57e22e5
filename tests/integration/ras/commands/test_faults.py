"""Faults end to end through HTTPS: the RAS restarted, a lock gone out of range, two
gateways that see one lock (one of them dies), and three makers' locks through one
gateway from registration to a knob turned at the door.

Everything is real (commands/conftest.py): TLS on loopback, the RAS's own relay, heslock
BGWs (slixmpp + bumble), SimulatedLocks on a bumble VirtualLink, SQLite and PostgreSQL.
Synchronised on bus notices, log records and events with deadlines, never on sleeps.

Not repeated here (covered elsewhere): a gateway killed while a command is out, and the
retry that resends the same bytes (test_commands.py); no gateway at all (503, ibid.);
the lock not answering in time (504, ibid.); the relay endpoint alone restarted and a
lock unknown to the gateway (relay/test_relay.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from heslock.bgw import Gateway
from heslock.bgw import gateway as bgw_gateway
from heslock.bgw.scanner import Scanner
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import BoltState, DeviceId, EventType, OperationOp
from heslock.protocol.advert import DiscoveredLock
from heslock.protocol.makers import ACME, KEYSTONE, LUMEN, MakerProfile, makers
from heslock.ras.store.models import AuditRecord, Command
from heslock.xmpp import Jid
from tests.integration.ras.commands.conftest import (
    RADIOS,
    WAIT_S,
    GatewayAccount,
    LogWaiter,
    Rig,
)
from tests.integration.ras.commands.test_commands import bound_lock, hold_answer, problem, rows
from tests.support import auth

pytestmark = pytest.mark.timeout(120)

#: How much weaker the far gateway hears the lock (the virtual link reports -50 dBm).
FAR_ATTENUATION_DB = 30
#: A gateway that has not noticed yet that a lock went quiet: its scan table keeps the
#: lock far longer than any of these tests runs.
SLOW_TO_NOTICE_S = 120.0


def bare(account: GatewayAccount) -> str:
    return Jid.parse(account.jid).bare


def command_audits(audits: list[AuditRecord]) -> list[tuple[str, str]]:
    return [(a.action, a.result) for a in audits if a.action.startswith("lock.command")]


def agrees(command: Command, audits: list[AuditRecord]) -> dict[str, Any]:
    """The command's intent and outcome records name it and say what its row says;
    returns the outcome's details."""
    mine = [a for a in audits if (a.details or {}).get("command_id") == str(command.id)]
    assert [a.action for a in mine] == ["lock.command.intent", "lock.command"], mine
    intent, outcome = mine
    assert intent.details["seq"] == command.seq
    assert intent.details["command"] == outcome.details["command"] == command.command
    assert outcome.details["state"] == command.state
    assert outcome.details["reason"] == command.reason
    assert outcome.details["gateway"] == command.gateway
    assert intent.at <= outcome.at
    details: dict[str, Any] = outcome.details
    return details


async def start_gateway(rig: Rig, account: GatewayAccount, radio: str, **ble: Any) -> Gateway:
    """Rig.start_gateway with some BLE settings of this test's own."""
    config = rig.gateway_config(account, radio)
    config = dataclasses.replace(config, ble=dataclasses.replace(config.ble, **ble))
    gateway = Gateway(config, local=rig.vlink)
    rig.gateways.append(gateway)
    await gateway.start()
    await rig.presence.next(lambda p: p.gateway == bare(account) and p.online)
    return gateway


def untouched(peripheral: LockPeripheral) -> tuple[Any, ...]:
    """What a frame the lock accepted would change: bolt, log, replay state."""
    snapshot = peripheral.lock.snapshot()
    return (snapshot.mechanism.bolt, list(snapshot.log), snapshot.current_acceptor)


# ---------------------------------------------------------------------- 1. RAS restarted


async def test_ras_restarted_in_flight_command_finishes_gateway_comes_back(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    peripheral, lock_id, account, gateway = await bound_lock(rig, ACME)
    device = peripheral.lock.identity.device_id
    before = await rig.command(lock_id, "unlock", "k-before")
    assert before.status_code == 200, before.text

    # A command is out when the RAS is told to stop: HTTPS stops accepting connections
    # but waits for the request in flight, whose answer still comes through the relay.
    entered, release, finished = hold_answer(peripheral, monkeypatch)
    during = asyncio.create_task(rig.command(lock_id, "lock", "k-during"))
    await asyncio.wait_for(entered.wait(), WAIT_S)
    draining = LogWaiter("Waiting for connections to close")
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(draining)
    try:
        with caplog.at_level(logging.INFO, logger="uvicorn.error"):
            stopping = asyncio.create_task(rig.server.stop())
            await asyncio.wait_for(draining.seen.wait(), WAIT_S)
            assert not stopping.done()
            release.set()
            answer = await asyncio.wait_for(during, WAIT_S)
            await asyncio.wait_for(stopping, WAIT_S * 2)
    finally:
        uvicorn_log.removeHandler(draining)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["state"], answer.json()["bolt"]) == ("ok", "locked")
    await asyncio.wait_for(finished.wait(), WAIT_S)
    offline = await rig.presence.next(lambda p: p.gateway == bare(account))
    assert not offline.online
    assert gateway.ras.sessions == 1

    # A new RAS on the same data directory and ports: the gateway finds it by itself
    # (its reconnect back-off) and tells it again which locks it sees.
    await rig.start_ras_again()
    online = await rig.presence.next(lambda p: p.gateway == bare(account))
    assert online.online
    await rig.scans.next(  # a report on the new session (older ones may still be queued)
        lambda s: s.received_at >= online.at and device in {e.lock for e in s.report.locks}
    )
    assert gateway.ras.sessions == 2
    after = await rig.command(lock_id, "unlock", "k-after")
    assert after.status_code == 200, after.text
    assert after.json()["bolt"] == "unlocked"
    assert peripheral.lock.status(0).bolt is BoltState.UNLOCKED
    # The restarted RAS replays a finished command's answer from the database.
    replayed = await rig.command(lock_id, "lock", "k-during")
    assert replayed.json() == answer.json()

    lock, commands, audits = await rows(rig, lock_id)
    assert {c.idempotency_key: c.state for c in commands} == {
        "k-before": "ok",
        "k-during": "ok",
        "k-after": "ok",
    }
    assert all(c.finished_at is not None and c.attempts == 1 for c in commands)
    for command in commands:
        assert agrees(command, audits)["gateway"] == bare(account)
    assert lock.bolt_state == BoltState.UNLOCKED


# ---------------------------------------------------------------------- 2. out of range


async def test_lock_gone_before_the_gateway_noticed_is_504_and_nothing_actuates(
    rig: Rig,
) -> None:
    peripheral = await rig.add_lock(KEYSTONE)
    device = peripheral.lock.identity.device_id
    account = await rig.create_gateway()
    await start_gateway(rig, account, RADIOS[0], lost_after_s=SLOW_TO_NOTICE_S)
    await rig.seen_by(account, device)
    lock_id = await rig.register(peripheral, bare(account))
    status = await rig.command(lock_id, "status", "k-status")
    assert status.status_code == 200, status.text
    bolt_before = status.json()["bolt"]
    lock_before, _, _ = await rows(rig, lock_id)

    # The lock goes quiet (out of range, battery out): it drops the gateway's link and
    # stops advertising. The gateway still lists it, so the RAS routes the frame there;
    # the gateway cannot connect within its budget.
    await peripheral.stop()
    state = untouched(peripheral)
    assert await rig.bus.gateway_for(device) == bare(account)
    gone = problem(await rig.command(lock_id, "unlock", "k-gone"), 504, "lock-unreachable")
    # The gateway cannot prove the frame never reached the lock: the outcome is unknown
    # (a retry with the same key re-sends the same bytes), never a blind "failed".
    assert (gone["state"], gone["reason"]) == ("unknown", "ble-timeout")
    assert untouched(peripheral) == state
    assert peripheral.lock.status(0).bolt.name.lower() == bolt_before

    lock, commands, audits = await rows(rig, lock_id)
    [command] = [c for c in commands if c.idempotency_key == "k-gone"]
    assert str(command.id) == gone["command_id"]
    assert (command.state, command.reason, command.attempts) == ("unknown", "ble-timeout", 1)
    assert command.finished_at is None  # not final: the key may be retried
    assert command.gateway == bare(account)
    outcome = agrees(command, audits)
    assert outcome["attempt"] == 1
    assert command_audits(audits)[-2:] == [
        ("lock.command.intent", "ok"),
        ("lock.command", "failed"),
    ]
    assert (lock.bolt_state, lock.state_at) == (lock_before.bolt_state, lock_before.state_at)


async def test_lock_gone_and_the_gateway_noticed_is_503_nothing_sent(rig: Rig) -> None:
    peripheral, lock_id, account, gateway = await bound_lock(rig, LUMEN)
    device = peripheral.lock.identity.device_id
    lock_before, _, _ = await rows(rig, lock_id)
    await peripheral.stop()
    stopped_at = datetime.now(UTC)
    state = untouched(peripheral)
    # The gateway's next report no longer lists the lock: no gateway sees it.
    await rig.scans.next(
        lambda s: (
            s.gateway == bare(account)
            and s.received_at > stopped_at
            and device not in {e.lock for e in s.report.locks}
        )
    )
    assert await rig.bus.gateway_for(device) is None
    writes = gateway.router.writes if gateway.router else -1

    gone = problem(await rig.command(lock_id, "unlock", "k-gone"), 503, "gateway-unavailable")
    assert (gone["state"], gone["reason"]) == ("failed", "no-gateway")
    assert gateway.router is not None
    assert gateway.router.writes == writes  # nothing went to the gateway
    assert untouched(peripheral) == state
    # Final: the same key gets the same answer and still sends nothing.
    assert (
        problem(await rig.command(lock_id, "unlock", "k-gone"), 503, "gateway-unavailable") == gone
    )

    lock, [command], audits = await rows(rig, lock_id)
    assert (command.state, command.reason, command.gateway) == ("failed", "no-gateway", None)
    assert command.finished_at is not None
    agrees(command, audits)
    assert command_audits(audits) == [("lock.command.intent", "ok"), ("lock.command", "failed")]
    assert (lock.bolt_state, lock.state_at) == (lock_before.bolt_state, lock_before.state_at)


# ---------------------------------------------------------------------- 3. two gateways


class FarScanner(Scanner):
    """The radio of a gateway further away: every advertisement arrives weaker."""

    def _record(self, address: str, found: DiscoveredLock, rssi: int) -> None:
        super()._record(address, found, rssi - FAR_ATTENUATION_DB)


async def test_two_gateways_best_signal_carries_then_the_other_after_it_dies(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    peripheral = await rig.add_lock(LUMEN)
    device = peripheral.lock.identity.device_id
    near_account = await rig.create_gateway(name="hall")
    far_account = await rig.create_gateway(name="garage")
    near = await rig.start_gateway(near_account, RADIOS[0])
    await rig.seen_by(near_account, device)
    with monkeypatch.context() as patch:  # only this gateway's scanner is the far one
        patch.setattr(bgw_gateway, "Scanner", FarScanner)
        far = await rig.start_gateway(far_account, RADIOS[1])
    far_scan = await rig.seen_by(far_account, device)
    assert [e.rssi for e in far_scan.report.locks] == [-50 - FAR_ATTENUATION_DB]
    # Both saw it within the recency window: the stronger signal wins (routing.py rule 3),
    # although the far gateway reported last.
    sightings = {s.gateway: s.rssi for s in rig.relay.endpoint.routing.sightings(device)}
    assert sightings == {bare(near_account): -50, bare(far_account): -80}
    assert await rig.bus.gateway_for(device) == bare(near_account)
    lock_id = await rig.register(peripheral, bare(near_account))

    assert near.router is not None
    assert far.router is not None
    near_writes = near.router.writes
    first = await rig.command(lock_id, "unlock", "k-near")
    assert first.status_code == 200, first.text
    assert (near.router.writes, far.router.writes) == (near_writes + 1, 0)

    # The preferred gateway dies; the RAS sees its session end and routes to the other.
    await rig.stop_gateway(near)
    await rig.presence.next(lambda p: p.gateway == bare(near_account) and not p.online)
    assert await rig.bus.gateway_for(device) == bare(far_account)
    second = await rig.command(lock_id, "lock", "k-far")
    assert second.status_code == 200, second.text
    assert second.json()["bolt"] == "locked"
    assert far.router.writes == 1
    assert peripheral.lock.status(0).bolt is BoltState.LOCKED

    _, commands, audits = await rows(rig, lock_id)
    used = {c.idempotency_key: agrees(c, audits)["gateway"] for c in commands}
    assert used == {"k-near": bare(near_account), "k-far": bare(far_account)}
    assert {c.idempotency_key: c.gateway for c in commands} == used


# ---------------------------------------------------------------------- 4. three makers


async def register_through_gateway(rig: Rig, peripheral: LockPeripheral) -> str:
    """C1 ``"via": "gateway"``: the RAS carries every registration frame itself, through
    the best online gateway that sees the lock, and answers once the lock is bound."""
    device = peripheral.lock.identity.device_id
    response = await rig.client.post(
        "/v1/registrations",
        json={"device_id": device.colon, "name": f"{peripheral.maker.name} door", "via": "gateway"},
        headers=auth("a"),
    )
    assert response.status_code == 201, response.text
    view = response.json()
    assert (view["phase"], view["done"]) == ("committed", True), view
    assert peripheral.lock.bound
    return str(view["lock_id"])


async def operate_then_turn_the_knob(
    rig: Rig, peripheral: LockPeripheral, account: GatewayAccount
) -> None:
    """Register, unlock, lock, status through the API; then a person at the door."""
    maker: MakerProfile = peripheral.maker
    device = peripheral.lock.identity.device_id
    ingest = rig.relay.events
    handled = ingest.stored + ingest.refused
    lock_id = await register_through_gateway(rig, peripheral)
    view = (await rig.client.get(f"/v1/locks/{lock_id}", headers=auth("a"))).json()
    assert DeviceId.parse(view["device_id"]) == device
    for command, bolt in (("unlock", "unlocked"), ("lock", "locked"), ("status", "locked")):
        response = await rig.command(lock_id, command, f"{maker.name}-{command}")
        assert response.status_code == 200, (maker.name, response.text)
        assert (response.json()["state"], response.json()["bolt"]) == ("ok", bolt)
    assert peripheral.lock.status(0).bolt is BoltState.LOCKED
    # The lock reports each remote operation itself (REMOTE_OPERATION): two events.
    for _ in range(2):
        await rig.events.next(lambda e: e.lock == device)
    await asyncio.wait_for(ingest.wait_handled(handled + 2), WAIT_S)

    # A person turns the knob at the door; the lock's own event reaches the API.
    peripheral.press(lambda t: peripheral.lock.turn_knob(BoltState.UNLOCKED, t))
    notice = await rig.events.next(lambda e: e.lock == device)
    await asyncio.wait_for(ingest.wait_handled(handled + 3), WAIT_S)
    assert ingest.refused == 0
    events = await rig.client.get(f"/v1/locks/{lock_id}/events", headers=auth("a"))
    assert events.status_code == 200, events.text
    feed = events.json()
    assert [(e["kind"], e["detail"]) for e in feed] == [
        (EventType.MANUAL_OPERATION.name.lower(), BoltState.UNLOCKED),
        (EventType.REMOTE_OPERATION.name.lower(), OperationOp.LOCK),
        (EventType.REMOTE_OPERATION.name.lower(), OperationOp.UNLOCK),
    ]
    assert feed[0]["bolt_state"] == BoltState.UNLOCKED
    assert {e["gateway"] for e in feed} == {notice.gateway} == {bare(account)}
    view = (await rig.client.get(f"/v1/locks/{lock_id}", headers=auth("a"))).json()
    assert view["bolt_state"] == BoltState.UNLOCKED

    _, commands, audits = await rows(rig, lock_id)
    assert sorted(c.state for c in commands) == ["ok"] * 3
    for command_row in commands:
        assert agrees(command_row, audits)["gateway"] == bare(account)


async def test_three_makers_through_one_gateway_commands_and_knob_events(rig: Rig) -> None:
    assert {m.name for m in makers()} == {m.name for m in (ACME, KEYSTONE, LUMEN)}
    peripherals = [await rig.add_lock(maker) for maker in (ACME, KEYSTONE, LUMEN)]
    account = await rig.create_gateway()
    await rig.start_gateway(account)
    devices = {p.lock.identity.device_id for p in peripherals}
    await rig.scans.next(lambda s: devices <= {e.lock for e in s.report.locks})
    for peripheral in peripherals:
        await operate_then_turn_the_knob(rig, peripheral, account)
    assert all(p.lock.bound for p in peripherals)
