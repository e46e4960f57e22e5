"""Nearby mode end to end: the RAS seals a command frame (HTTPS), a phone -- a bumble
central on the same virtual radio as the lock, no gateway in between -- writes it to the
SimulatedLock over BLE, and the RAS verifies the lock's answer and settles the command.
Plus revision 0005 on existing data, up and down, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.ble.central import FrameCentral
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import BoltState
from heslock.protocol.makers import ACME, KEYSTONE, LUMEN
from heslock.ras.services.commands.nearby import NEARBY_FRAME_TTL_S
from heslock.ras.store.migrate import downgrade, upgrade
from heslock.xmpp import Jid
from tests.integration.ras.commands.conftest import Rig, ShiftedClock
from tests.integration.ras.commands.test_commands import problem, rows
from tests.support import auth

pytestmark = pytest.mark.timeout(120)

PHONE = "C0:00:00:00:00:0A"


class Phone:
    """The client's own radio next to the door."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.device = rig.vlink.create_device("phone", PHONE)
        self.central = FrameCentral(self.device, connect_timeout_s=3.0, gatt_timeout_s=3.0)

    async def __aenter__(self) -> Phone:
        await self.device.power_on()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.central.close()
        self.rig.vlink.remove_device(self.device)

    async def carry(self, peripheral: LockPeripheral, frame: str) -> bytes:
        """Write the RAS's base64 frame to the lock; the lock's answer."""
        identity = peripheral.lock.identity
        link = await self.central.connect(identity.device_id.colon, peripheral.maker)
        return await link.request(base64.b64decode(frame))


async def nearby_lock(
    rig: Rig, maker: Any, clock: ShiftedClock | None = None
) -> tuple[LockPeripheral, str]:
    """A lock bound through a gateway that then went away: only a phone can reach it."""
    if clock is not None:
        rig.server.app.state.ddms.clock = clock
        peripheral = await rig.add_lock_with(maker, clock)
    else:
        peripheral = await rig.add_lock(maker)
    account = await rig.create_gateway()
    gateway = await rig.start_gateway(account)
    await rig.seen_by(account, peripheral.lock.identity.device_id)
    lock_id = await rig.register(peripheral, Jid.parse(account.jid).bare)
    await rig.stop_gateway(gateway)
    await rig.presence.next(lambda p: p.gateway == Jid.parse(account.jid).bare and not p.online)
    return peripheral, lock_id


async def issue(
    rig: Rig, lock_id: str, command: str, key: str | None, token: str = "a"
) -> httpx.Response:
    headers = auth(token)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await rig.client.post(
        f"/v1/locks/{lock_id}/frames", json={"command": command}, headers=headers
    )


async def answer(
    rig: Rig, lock_id: str, command_id: str, frame: bytes | str, token: str = "a"
) -> httpx.Response:
    text = frame if isinstance(frame, str) else base64.b64encode(frame).decode()
    return await rig.client.post(
        f"/v1/locks/{lock_id}/frames/{command_id}/answer",
        json={"frame": text},
        headers=auth(token),
    )


async def test_a_phone_carries_the_frame_and_the_ras_verifies_the_answer(rig: Rig) -> None:
    peripheral, lock_id = await nearby_lock(rig, KEYSTONE)
    lock_before, _, _ = await rows(rig, lock_id)
    issued = await issue(rig, lock_id, "unlock", "n-1")
    assert issued.status_code == 201, issued.text
    view = issued.json()
    assert (view["lock_id"], view["command"]) == (lock_id, "unlock")
    assert view["device_id"] == peripheral.lock.identity.device_id.hex
    expires = datetime.fromisoformat(view["expires_at"])
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=NEARBY_FRAME_TTL_S)
    assert len(base64.b64decode(view["frame"])) == 20  # the secure profile's sealed frame
    # The same key again: the same frame, never a second one.
    again = await issue(rig, lock_id, "unlock", "n-1")
    assert (again.status_code, again.json()) == (201, view)

    async with Phone(rig) as phone:
        reply = await phone.carry(peripheral, view["frame"])
    assert peripheral.lock.status(0).bolt is BoltState.UNLOCKED

    posted = await answer(rig, lock_id, view["command_id"], reply)
    assert posted.status_code == 200, posted.text
    body = posted.json()
    assert (body["state"], body["confirmed"], body["bolt"]) == ("ok", "answer", "unlocked")
    assert (body["command_id"], body["lock_id"], body["command"]) == (
        view["command_id"],
        lock_id,
        "unlock",
    )
    # The same answer again: the same result.
    assert (await answer(rig, lock_id, view["command_id"], reply)).json() == body
    lock_view = (await rig.client.get(f"/v1/locks/{lock_id}", headers=auth("a"))).json()
    assert lock_view["bolt_state"] == BoltState.UNLOCKED

    lock, [command], audits = await rows(rig, lock_id)
    assert (command.path, command.state, command.attempts) == ("nearby", "ok", 1)
    assert command.expires_at is not None
    assert command.frame_ts is not None
    assert lock.next_counter == lock_before.next_counter + 1
    trail = [
        (a.action, a.result, a.details.get("path"))
        for a in audits
        if a.action.startswith("lock.command")
    ]
    assert trail == [("lock.command.intent", "ok", "nearby"), ("lock.command", "ok", "nearby")]


async def test_refusals_and_answers_that_do_not_verify(rig: Rig) -> None:
    peripheral, lock_id = await nearby_lock(rig, LUMEN)
    problem(await issue(rig, lock_id, "unlock", None), 400, "idempotency-key-missing")
    problem(await issue(rig, lock_id, "unlock", "n-x", token="b"), 404, "not-found")
    problem(await issue(rig, lock_id, "unlock", "n-x", token="admin"), 403, "forbidden")
    problem(await issue(rig, str(uuid.uuid4()), "unlock", "n-x"), 404, "not-found")

    unlock = (await issue(rig, lock_id, "unlock", "n-jam")).json()
    status = (await issue(rig, lock_id, "status", "n-status")).json()
    # A key names one request: another command, or a remote command, under it is refused.
    problem(await issue(rig, lock_id, "lock", "n-jam"), 422, "idempotency-key-reused")
    problem(await rig.command(lock_id, "unlock", "n-jam"), 422, "idempotency-key-reused")

    # Bytes that are no answer of this lock to this frame: 422, audited, nothing changes.
    garbage = problem(
        await answer(rig, lock_id, unlock["command_id"], bytes(20)), 422, "frame-refused"
    )
    assert garbage["command_id"] == unlock["command_id"]
    async with Phone(rig) as phone:
        status_reply = await phone.carry(peripheral, status["frame"])
        problem(
            await answer(rig, lock_id, unlock["command_id"], status_reply),
            422,
            "frame-refused",  # the lock's answer, but to the status frame
        )
        not_base64 = await answer(rig, lock_id, unlock["command_id"], "not base64!")
        problem(not_base64, 422, "invalid-input")
        problem(await answer(rig, lock_id, str(uuid.uuid4()), status_reply), 404, "not-found")
        problem(
            await answer(rig, lock_id, unlock["command_id"], status_reply, token="b"),
            404,
            "not-found",
        )
        _, commands, _ = await rows(rig, lock_id)
        assert {c.idempotency_key: c.state for c in commands} == {
            "n-jam": "pending",
            "n-status": "pending",
        }
        status_answer = await answer(rig, lock_id, status["command_id"], status_reply)
        assert status_answer.status_code == 200, status_answer.text
        assert status_answer.json()["bolt"] in {"locked", "unlocked"}

        # The lock refuses: its reason code comes back, and the refusal is final.
        peripheral.press(peripheral.lock.jam)
        refused_reply = await phone.carry(peripheral, unlock["frame"])
    refused = problem(
        await answer(rig, lock_id, unlock["command_id"], refused_reply), 409, "lock-refused"
    )
    assert (refused["reason"], refused["state"]) == ("JAMMED", "refused")
    assert refused == problem(
        await answer(rig, lock_id, unlock["command_id"], refused_reply), 409, "lock-refused"
    )
    _, commands, audits = await rows(rig, lock_id)
    assert {c.idempotency_key: c.state for c in commands} == {"n-jam": "refused", "n-status": "ok"}
    answer_refusals = [a for a in audits if a.action == "lock.command.answer"]
    assert [(a.result, a.details["reason"]) for a in answer_refusals] == [
        ("denied", "bad-answer"),
        ("denied", "bad-answer"),
    ]


async def test_an_answer_posted_after_expiry_still_counts(rig: Rig) -> None:
    clock = ShiftedClock()
    peripheral, lock_id = await nearby_lock(rig, ACME, clock)
    view = (await issue(rig, lock_id, "unlock", "n-late")).json()
    clock.advance(NEARBY_FRAME_TTL_S + 1)
    # No frame for the key any more (and no second one)...
    expired = problem(await issue(rig, lock_id, "unlock", "n-late"), 409, "frame-expired")
    assert (expired["command_id"], expired["state"]) == (view["command_id"], "pending")
    # ... but the lock (window 30 s) still took it, so its answer is the truth.
    async with Phone(rig) as phone:
        reply = await phone.carry(peripheral, view["frame"])
    posted = await answer(rig, lock_id, view["command_id"], reply)
    assert posted.status_code == 200, posted.text
    assert (posted.json()["state"], posted.json()["bolt"]) == ("ok", "unlocked")
    _, [command], _ = await rows(rig, lock_id)
    assert (command.state, command.finished_at is not None) == ("ok", True)


# ------------------------------------------------------------------ revision 0005


async def test_revision_0005_keeps_existing_commands_both_ways(engine: AsyncEngine) -> None:
    await upgrade(engine, "0004")
    now = datetime.now(UTC)
    user, lock, command = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    users = sa.table(
        "users",
        sa.column("id", sa.Uuid()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("is_admin", sa.Boolean()),
        sa.column("status", sa.String()),
    )
    devices = sa.table(
        "devices",
        *(
            sa.column(n, sa.String())
            for n in ("device_id", "maker", "model", "ble_version", "profile", "status")
        ),
        sa.column("factory_key_enc", sa.LargeBinary()),
        sa.column("imported_at", sa.DateTime(timezone=True)),
    )
    locks = sa.table(
        "locks",
        sa.column("id", sa.Uuid()),
        sa.column("device_id", sa.String()),
        sa.column("owner_id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("key_version", sa.Integer()),
        sa.column("lock_key_enc", sa.LargeBinary()),
        sa.column("bound_at", sa.DateTime(timezone=True)),
    )
    commands = sa.table(
        "commands",
        sa.column("id", sa.Uuid()),
        sa.column("lock_id", sa.Uuid()),
        sa.column("user_id", sa.Uuid()),
        *(sa.column(n, sa.String()) for n in ("idempotency_key", "command", "state")),
        *(sa.column(n, sa.Integer()) for n in ("seq", "key_version", "attempts")),
        sa.column("frame", sa.LargeBinary()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(users).values(id=user, created_at=now, is_admin=False, status="active")
        )
        await conn.execute(
            sa.insert(devices).values(
                device_id="F20000000001",
                maker="acme",
                model="m1",
                ble_version="5.0",
                profile="secure",
                status="bound",
                factory_key_enc=b"x",
                imported_at=now,
            )
        )
        await conn.execute(
            sa.insert(locks).values(
                id=lock,
                device_id="F20000000001",
                owner_id=user,
                name="door",
                key_version=1,
                lock_key_enc=b"x",
                bound_at=now,
            )
        )
        await conn.execute(
            sa.insert(commands).values(
                id=command,
                lock_id=lock,
                user_id=user,
                idempotency_key="k",
                command="unlock",
                state="unknown",
                seq=2,
                key_version=1,
                attempts=1,
                frame=bytes(20),
                created_at=now,
            )
        )
    await upgrade(engine, "0005")
    query = sa.text("SELECT path, expires_at, frame_ts, reconcile_after, reconciles FROM commands")
    async with engine.connect() as conn:
        assert list(await conn.execute(query)) == [("remote", None, None, None, 0)]
    await downgrade(engine, "0004")
    async with engine.connect() as conn:
        assert list(await conn.execute(sa.text("SELECT idempotency_key, state FROM commands"))) == [
            ("k", "unknown")
        ]
        with pytest.raises(sa.exc.DBAPIError):
            await conn.execute(sa.text("SELECT path FROM commands"))
    await upgrade(engine)
    async with engine.connect() as conn:
        assert list(await conn.execute(sa.text("SELECT path FROM commands"))) == [("remote",)]
