"""Registration driven by the RAS through a gateway: ``POST /v1/registrations`` with
``"via": "gateway"`` and ``POST /v1/registrations/{id}/relay``, end to end: HTTPS -> RAS
-> XMPP -> real BGW -> BLE (bumble virtual link) -> SimulatedLock, and back, on SQLite and
PostgreSQL. A gateway stopped mid-negotiation is made deterministic by a bus that holds
one frame until the test lets it go (events, never sleeps)."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from heslock.bgw import Gateway
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import BoltState, DeviceId
from heslock.protocol.makers import ACME, makers
from heslock.ras.keystore import LOCK_KEY
from heslock.ras.relay import LockBus
from heslock.ras.relay.bus import EventCallback, PresenceCallback, ScanCallback, Unsubscribe
from heslock.ras.store.models import AuditRecord, Device, Lock, Registration
from heslock.xmpp import Jid
from tests.integration.ras.commands.conftest import RADIOS, WAIT_S, GatewayAccount, Rig
from tests.support import auth

pytestmark = pytest.mark.timeout(120)

PROBLEMS = "https://heslock.dev/problems/"


class HoldingBus:
    """The rig's real bus, except that the ``hold_at``-th frame waits for :attr:`release`.

    :attr:`held` is set when that frame arrives, so the test acts at a known point of the
    exchange (the frames before it have been answered and committed).
    """

    def __init__(self, inner: LockBus, hold_at: int) -> None:
        self.inner = inner
        self.hold_at = hold_at
        self.sent = 0
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def send_frame(
        self, gateway_jid: str, lock_id: DeviceId, frame: bytes, timeout_s: float
    ) -> bytes:
        self.sent += 1
        if self.sent == self.hold_at:
            self.held.set()
            await asyncio.wait_for(self.release.wait(), WAIT_S)
        return await self.inner.send_frame(gateway_jid, lock_id, frame, timeout_s)

    async def gateway_for(self, lock_id: DeviceId) -> str | None:
        return await self.inner.gateway_for(lock_id)

    def subscribe_events(self, callback: EventCallback) -> Unsubscribe:
        return self.inner.subscribe_events(callback)

    def subscribe_presence(self, callback: PresenceCallback) -> Unsubscribe:
        return self.inner.subscribe_presence(callback)

    def subscribe_scans(self, callback: ScanCallback) -> Unsubscribe:
        return self.inner.subscribe_scans(callback)


def is_bound(peripheral: LockPeripheral) -> bool:
    """A fresh read each time (the lock changes under the test's feet)."""
    return peripheral.lock.bound


def bare(account: GatewayAccount) -> str:
    return Jid.parse(account.jid).bare


async def online_gateway(
    rig: Rig, peripherals: list[LockPeripheral], token: str = "a", radio: str = RADIOS[0]
) -> tuple[GatewayAccount, Gateway]:
    """A gateway of ``token``'s user, online and reporting every lock of ``peripherals``."""
    account = await rig.create_gateway(token, name=f"gateway {radio[-2:]}")
    gateway = await rig.start_gateway(account, radio)
    await sees(rig, account, peripherals)
    return account, gateway


async def sees(rig: Rig, account: GatewayAccount, peripherals: list[LockPeripheral]) -> None:
    """Wait for a report of ``account``'s gateway naming every lock of ``peripherals``
    (a gateway reports all it sees at once, so one report must name them all)."""
    wanted = {p.lock.identity.device_id for p in peripherals}
    await rig.scans.next(
        lambda s: s.gateway == bare(account) and wanted <= {e.lock for e in s.report.locks}
    )


async def restart_gateway(rig: Rig, account: GatewayAccount, peripheral: LockPeripheral) -> None:
    """The same gateway account back online, its fresh report naming the lock."""
    while not rig.scans.queue.empty():  # reports of the earlier session say nothing now
        rig.scans.queue.get_nowait()
    await rig.start_gateway(account)
    await sees(rig, account, [peripheral])


async def via_gateway(
    rig: Rig, peripheral: LockPeripheral, token: str = "a", **extra: Any
) -> httpx.Response:
    return await rig.client.post(
        "/v1/registrations",
        json={
            "device_id": peripheral.lock.identity.device_id.colon,
            "name": "front door",
            "via": "gateway",
            **extra,
        },
        headers=auth(token),
    )


async def relay(rig: Rig, registration_id: str, **body: Any) -> httpx.Response:
    return await rig.client.post(
        f"/v1/registrations/{registration_id}/relay", json=body or None, headers=auth("a")
    )


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEMS + code, body
    return body


async def registration_row(rig: Rig, peripheral: LockPeripheral) -> Registration | None:
    device = peripheral.lock.identity.device_id.hex
    async with rig.maker()() as session:
        query = select(Registration).where(Registration.device_id == device)
        row: Registration | None = (await session.execute(query)).scalar_one_or_none()
        return row


async def relay_audits(rig: Rig, registration_id: str) -> list[AuditRecord]:
    async with rig.maker()() as session:
        query = (
            select(AuditRecord)
            .where(AuditRecord.target == f"registration:{registration_id}")
            .order_by(AuditRecord.id)
        )
        return [r for r in (await session.execute(query)).scalars() if ".relay" in r.action]


async def unlock(rig: Rig, peripheral: LockPeripheral, lock_id: str) -> None:
    """The bound lock obeys the RAS: the registration left both sides with one key."""
    response = await rig.command(lock_id, "unlock", f"unlock-{lock_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["state"], body["bolt"], body["confirmed"]) == ("ok", "unlocked", "answer")
    assert peripheral.lock.status(0).bolt is BoltState.UNLOCKED


async def test_each_maker_registers_with_one_call_and_unlocks(rig: Rig) -> None:
    peripherals = [await rig.add_lock(maker) for maker in makers()]
    assert len({p.lock.identity.maker for p in peripherals}) == 3
    account, _ = await online_gateway(rig, peripherals)

    for peripheral in peripherals:
        response = await via_gateway(rig, peripheral)
        assert response.status_code == 201, response.text
        view = response.json()
        assert (view["phase"], view["done"], view["frames"]) == ("committed", True, [])
        assert view["device_id"] == peripheral.lock.identity.device_id.hex
        assert is_bound(peripheral)
        lock_id = view["lock_id"]
        async with rig.maker()() as session:
            lock = await session.get(Lock, uuid.UUID(lock_id))
            device = await session.get(Device, peripheral.lock.identity.device_id.hex)
        assert lock is not None
        assert device is not None
        assert device.status == "bound"
        assert (lock.name, lock.owner_id, lock.key_version) == ("front door", rig.ids["a"], 1)
        lock_key = rig.server.app.state.ras.keystore.open(LOCK_KEY, lock_id, lock.lock_key_enc)
        assert lock_key == peripheral.lock._negotiation.state.lock_key

        audits = await relay_audits(rig, view["registration_id"])
        assert [(a.action, a.result) for a in audits] == [
            ("register.relay.intent", "ok"),
            ("register.relay", "ok"),
        ]
        end = audits[-1].details
        assert (end["gateway"], end["phase"], end["sent"]) == (bare(account), "committed", 3)
        assert audits[0].actor == audits[1].actor == f"user:{rig.ids['a']}"
        # No key material in the record of the exchange (hex or base64 of the new key).
        for text in (lock_key.hex(), base64.b64encode(lock_key).decode()):
            assert all(text not in str(a.details) for a in audits)

        await unlock(rig, peripheral, lock_id)

    # Registered once: a second start is refused as for any bound device.
    again = await via_gateway(rig, peripherals[0])
    assert problem(again, 409, "device-unavailable")["reason"] == "already-bound"


async def test_named_gateway_carries_the_frames(rig: Rig) -> None:
    peripheral = await rig.add_lock(ACME)
    other, other_gateway = await online_gateway(rig, [peripheral], radio=RADIOS[0])
    named, _ = await online_gateway(rig, [peripheral], radio=RADIOS[1])

    response = await via_gateway(rig, peripheral, gateway_id=named.id)
    assert response.status_code == 201, response.text
    view = response.json()
    assert view["phase"] == "committed"
    audits = await relay_audits(rig, view["registration_id"])
    assert {a.details["gateway"] for a in audits} == {bare(named)}
    # The command goes through the named gateway too (it holds the lock's BLE link, and
    # the lock takes one central at a time): the other one leaves first.
    await rig.stop_gateway(other_gateway)
    await rig.presence.next(lambda p: p.gateway == bare(other) and not p.online)
    await unlock(rig, peripheral, view["lock_id"])

    # /relay on a registration that ended answers as it ended, sending nothing.
    done = await relay(rig, view["registration_id"], gateway_id=named.id)
    assert done.status_code == 200, done.text
    assert (done.json()["phase"], done.json()["lock_id"]) == ("committed", view["lock_id"])
    assert len(await relay_audits(rig, view["registration_id"])) == len(audits)


async def test_another_users_gateway_is_not_found_and_nothing_starts(rig: Rig) -> None:
    peripheral = await rig.add_lock(ACME)
    foreign, _ = await online_gateway(rig, [peripheral], token="b")

    problem(await via_gateway(rig, peripheral, gateway_id=foreign.id), 404, "not-found")
    problem(await via_gateway(rig, peripheral, gateway_id=str(uuid.uuid4())), 404, "not-found")
    invalid = await rig.client.post(
        "/v1/registrations",
        json={
            "device_id": peripheral.lock.identity.device_id.hex,
            "name": "x",
            "gateway_id": foreign.id,
        },
        headers=auth("a"),
    )
    problem(invalid, 422, "validation-failed")  # a gateway goes with "via": "gateway" only
    assert await registration_row(rig, peripheral) is None
    assert not is_bound(peripheral)

    # The owner of that gateway may use it; the other user's attempt left nothing behind.
    mine = await via_gateway(rig, peripheral, token="b", gateway_id=foreign.id)
    assert mine.status_code == 201, mine.text
    assert is_bound(peripheral)


async def test_no_gateway_in_range_changes_nothing(rig: Rig) -> None:
    peripheral = await rig.add_lock(ACME)

    body = problem(await via_gateway(rig, peripheral), 503, "gateway-unavailable")
    assert body["reason"] == "no-gateway"
    assert "registration_id" not in body  # nothing was created
    assert await registration_row(rig, peripheral) is None

    # No relay on the node at all: the same answer, before anything is read or written.
    rig.server.app.state.bus = None
    try:
        body = problem(await via_gateway(rig, peripheral), 503, "gateway-unavailable")
        assert body["reason"] == "no-relay"
    finally:
        rig.server.app.state.bus = rig.bus
    assert await registration_row(rig, peripheral) is None

    # A registration a client started: /relay with no gateway leaves it as it was.
    started = await rig.client.post(
        "/v1/registrations",
        json={"device_id": peripheral.lock.identity.device_id.hex, "name": "front door"},
        headers=auth("a"),
    )
    assert started.status_code == 201, started.text
    rid = started.json()["registration_id"]
    before = await registration_row(rig, peripheral)
    body = problem(await relay(rig, rid), 503, "gateway-unavailable")
    assert (body["registration_id"], body["phase"], body["reason"]) == (
        rid,
        "started",
        "no-gateway",
    )
    after = await registration_row(rig, peripheral)
    assert before is not None
    assert after is not None
    assert (after.phase, after.updated_at, after.commit_counter) == (
        before.phase,
        before.updated_at,
        before.commit_counter,
    )
    assert await relay_audits(rig, rid) == []

    # With a gateway in range the same registration is driven to its end.
    await online_gateway(rig, [peripheral])
    done = await relay(rig, rid)
    assert done.status_code == 200, done.text
    assert done.json()["phase"] == "committed"
    await unlock(rig, peripheral, done.json()["lock_id"])


async def test_gateway_stopped_mid_negotiation_then_resumed(rig: Rig) -> None:
    peripheral = await rig.add_lock(ACME)
    account, gateway = await online_gateway(rig, [peripheral])
    holding = HoldingBus(rig.bus, hold_at=3)  # PART_1, PART_2 pass; the COMMIT waits
    rig.server.app.state.bus = holding
    try:
        first = asyncio.create_task(via_gateway(rig, peripheral))
        await asyncio.wait_for(holding.held.wait(), WAIT_S)

        row = await registration_row(rig, peripheral)
        assert row is not None
        rid = str(row.id)
        assert (row.phase, row.commit_counter) == ("proven", 1)  # stage a is committed

        # One driver at a time: a second drive, and the client routes, are refused.
        problem(await relay(rig, rid), 409, "registration-in-progress")
        answer = await rig.client.post(
            f"/v1/registrations/{rid}/answers",
            json={"frame": base64.b64encode(b"\x00" * 20).decode()},
            headers=auth("a"),
        )
        assert problem(answer, 409, "registration-in-progress")["registration_id"] == rid
        frames = await rig.client.post(f"/v1/registrations/{rid}/frames", headers=auth("a"))
        problem(frames, 409, "registration-in-progress")
        repeat = await rig.client.post(
            "/v1/registrations",
            json={"device_id": peripheral.lock.identity.device_id.hex, "name": "front door"},
            headers=auth("a"),
        )
        problem(repeat, 409, "registration-in-progress")
        row = await registration_row(rig, peripheral)
        assert row is not None
        assert (row.phase, row.commit_counter) == ("proven", 1)  # none of them changed it

        # The gateway goes away while the COMMIT waits to leave.
        await rig.stop_gateway(gateway)
        await rig.presence.next(lambda p: p.gateway == bare(account) and not p.online)
        holding.release.set()
        body = problem(await first, 503, "gateway-unavailable")
    finally:
        rig.server.app.state.bus = rig.bus
    assert (body["registration_id"], body["phase"], body["reason"]) == (
        rid,
        "proven",
        "gateway-offline",
    )
    assert not is_bound(peripheral)

    # No gateway now: the resume refuses and rolls its fresh COMMIT back.
    body = problem(await relay(rig, rid), 503, "gateway-unavailable")
    assert (body["phase"], body["reason"]) == ("proven", "no-gateway")
    row = await registration_row(rig, peripheral)
    assert row is not None
    assert (row.phase, row.commit_counter) == ("proven", 1)

    # The gateway is back: the resume sends a fresh COMMIT (the next counter) and ends.
    await restart_gateway(rig, account, peripheral)
    done = await relay(rig, rid)
    assert done.status_code == 200, done.text
    view = done.json()
    assert (view["registration_id"], view["phase"], view["done"]) == (rid, "committed", True)
    assert is_bound(peripheral)
    async with rig.maker()() as session:
        lock = await session.get(Lock, uuid.UUID(view["lock_id"]))
        retries = (
            await session.execute(
                select(AuditRecord).where(AuditRecord.action == "register.commit_retry")
            )
        ).scalars()
        assert [r.details["counter"] for r in retries] == [2]
    assert lock is not None
    assert lock.next_counter == 3  # COMMITs with counters 1 (never sent) and 2

    audits = await relay_audits(rig, rid)
    assert [
        (a.action, a.result, a.details.get("via"), a.details.get("reason")) for a in audits
    ] == [
        ("register.relay.intent", "ok", "start", None),
        ("register.relay", "failed", None, "gateway-offline"),
        ("register.relay.intent", "ok", "resume", None),
        ("register.relay", "ok", None, None),
    ]
    assert [a.details["phase"] for a in audits] == ["started", "proven", "proven", "committed"]
    await unlock(rig, peripheral, view["lock_id"])


async def test_lock_that_refuses_fails_the_registration(rig: Rig) -> None:
    peripheral = await rig.add_lock(ACME)
    # The long press on an unbound lock: its registration window closes.
    peripheral.press(peripheral.lock.factory_reset)
    await online_gateway(rig, [peripheral])

    body = problem(await via_gateway(rig, peripheral), 409, "lock-refused")
    assert (body["phase"], body["reason"]) == ("failed", "REGISTRATION_CLOSED")
    rid = body["registration_id"]
    got = await rig.client.get(f"/v1/registrations/{rid}", headers=auth("a"))
    assert (got.json()["phase"], got.json()["failure"]) == ("failed", "REGISTRATION_CLOSED")
    assert not is_bound(peripheral)
    row = await registration_row(rig, peripheral)
    assert row is not None
    assert (row.old_key_enc, row.new_key_enc) == (b"", b"")  # a failed exchange keeps no key
    audits = await relay_audits(rig, rid)
    assert [(a.action, a.result) for a in audits][-1] == ("register.relay", "denied")
    assert audits[-1].details["reason"] == "REGISTRATION_CLOSED"
    # /relay answers the same way; nothing is sent again.
    problem(await relay(rig, rid), 409, "lock-refused")
    assert len(await relay_audits(rig, rid)) == len(audits)

    # The button opens the window again: a new registration goes through.
    peripheral.press(peripheral.lock.press_registration_button)
    response = await via_gateway(rig, peripheral)
    assert response.status_code == 201, response.text
    assert response.json()["registration_id"] != rid
    await unlock(rig, peripheral, response.json()["lock_id"])
