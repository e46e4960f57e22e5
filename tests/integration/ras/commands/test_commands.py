"""Step 2: POST /v1/locks/{id}/commands end to end: HTTPS -> RAS -> XMPP -> real BGW ->
BLE (bumble virtual link) -> SimulatedLock, and back. Synchronised on bus notices and
events, never on sleeps."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from bumble.device import Connection, Device
from sqlalchemy import select

from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import BoltState
from heslock.protocol.makers import ACME, KEYSTONE, LUMEN
from heslock.ras.services.commands import service
from heslock.ras.store.models import AuditRecord, Command, Lock
from heslock.xmpp import Jid
from tests.integration.ras.commands.conftest import WAIT_S, GatewayAccount, Rig
from tests.support import auth

pytestmark = pytest.mark.timeout(90)

PROBLEMS = "https://heslock.dev/problems/"


async def bound_lock(
    rig: Rig, maker: Any = ACME
) -> tuple[LockPeripheral, str, GatewayAccount, Any]:
    peripheral = await rig.add_lock(maker)
    account = await rig.create_gateway()
    gateway = await rig.start_gateway(account)
    await rig.seen_by(account, peripheral.lock.identity.device_id)
    lock_id = await rig.register(peripheral, Jid.parse(account.jid).bare)
    return peripheral, lock_id, account, gateway


async def rows(rig: Rig, lock_id: str) -> tuple[Lock, list[Command], list[AuditRecord]]:
    async with rig.maker()() as session:
        lock = await session.get(Lock, uuid.UUID(lock_id))
        assert lock is not None
        commands = list(
            (await session.execute(select(Command).where(Command.lock_id == lock.id))).scalars()
        )
        audits = list(
            (
                await session.execute(
                    select(AuditRecord)
                    .where(AuditRecord.target == f"lock:{lock_id}")
                    .order_by(AuditRecord.id)
                )
            ).scalars()
        )
        return lock, commands, audits


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEMS + code, body
    return body


async def test_unlock_lock_status_and_idempotent_replay(rig: Rig) -> None:
    peripheral, lock_id, _, _ = await bound_lock(rig, KEYSTONE)
    lock_before, _, _ = await rows(rig, lock_id)

    first = await rig.command(lock_id, "unlock", "k-unlock")
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["state"], body["bolt"], body["confirmed"]) == ("ok", "unlocked", "answer")
    assert body["lock_id"] == lock_id
    assert 0 <= body["battery"] <= 100
    assert peripheral.lock.status(0).bolt is BoltState.UNLOCKED
    view = (await rig.client.get(f"/v1/locks/{lock_id}", headers=auth("a"))).json()
    assert view["bolt_state"] == BoltState.UNLOCKED
    assert view["state_at"] is not None

    # Someone locks by hand; the same request again gets the first answer, and the lock
    # is not unlocked a second time (no frame is sent at all).
    peripheral.press(lambda t: peripheral.lock.turn_knob(BoltState.LOCKED, t))
    again = await rig.command(lock_id, "unlock", "k-unlock")
    assert again.status_code == 200
    assert again.json() == body
    assert peripheral.lock.status(0).bolt is BoltState.LOCKED

    # The key names one request: another command under it is refused.
    problem(await rig.command(lock_id, "lock", "k-unlock"), 422, "idempotency-key-reused")

    locked = await rig.command(lock_id, "lock", "k-lock")
    assert locked.status_code == 200, locked.text
    assert locked.json()["bolt"] == "locked"
    status = await rig.command(lock_id, "status", "k-status")
    assert status.status_code == 200, status.text
    assert status.json()["bolt"] == "locked"
    assert status.json()["door"] in {"closed", "open", "unknown"}

    lock, commands, audits = await rows(rig, lock_id)
    assert sorted(c.seq for c in commands) == [
        lock_before.next_counter,
        lock_before.next_counter + 1,
        lock_before.next_counter + 2,
    ]
    assert lock.next_counter == lock_before.next_counter + 3  # the replay took none
    assert all(c.state == "ok" and c.attempts == 1 for c in commands)
    assert all(c.finished_at is not None and len(c.frame) == 20 for c in commands)
    actions = [(a.action, a.result) for a in audits if a.action.startswith("lock.command")]
    assert (
        actions
        == [
            ("lock.command.intent", "ok"),
            ("lock.command", "ok"),
        ]
        * 3
    )
    # the intent is written before the outcome, for the same command
    for intent, outcome in zip(actions[::2], actions[1::2], strict=True):
        assert intent[0] == "lock.command.intent"
        assert outcome[0] == "lock.command"
    details = [a.details for a in audits if a.action.startswith("lock.command")]
    assert details[0]["command_id"] == details[1]["command_id"] == body["command_id"]
    # /metrics counts every request: the replay and the reused key included.
    metrics = (await rig.client.get("/metrics")).text
    assert 'heslock_ras_lock_commands_total{operation="unlock",result="ok"} 2.0' in metrics
    assert 'heslock_ras_lock_commands_total{operation="lock",result="ok"} 1.0' in metrics
    assert 'heslock_ras_lock_commands_total{operation="status",result="ok"} 1.0' in metrics
    reused = 'heslock_ras_lock_commands_total{operation="lock",result="idempotency-key-reused"}'
    assert f"{reused} 1.0" in metrics
    # The XMPP endpoint's load: the gateway's session is bound, no login is negotiating.
    gauges = dict(
        line.rsplit(" ", 1) for line in metrics.splitlines() if line.startswith("heslock_ras_xmpp_")
    )
    assert float(gauges["heslock_ras_xmpp_sessions"]) >= 1
    assert float(gauges["heslock_ras_xmpp_pending_logins"]) == 0
    max_pending = float(rig.settings.xmpp_max_pending_logins)
    assert float(gauges["heslock_ras_xmpp_max_pending_logins"]) == max_pending
    assert "heslock_ras_xmpp_accept_pauses_total" in gauges


async def test_refusals_are_distinct(rig: Rig) -> None:
    peripheral, lock_id, account, gateway = await bound_lock(rig, LUMEN)

    missing = problem(await rig.command(lock_id, "unlock", None), 400, "idempotency-key-missing")
    assert "Idempotency-Key" in missing["detail"]
    problem(await rig.command(lock_id, "unlock", "x" * 256), 400, "idempotency-key-missing")
    problem(await rig.command(lock_id, "unlock", "k1", token="b"), 404, "not-found")
    problem(await rig.command(lock_id, "unlock", "k1", token="admin"), 403, "forbidden")
    problem(await rig.command(str(uuid.uuid4()), "unlock", "k1"), 404, "not-found")
    bad = await rig.client.post(
        f"/v1/locks/{lock_id}/commands",
        json={"command": "open-sesame"},
        headers={**auth("a"), "Idempotency-Key": "k1"},
    )
    assert bad.status_code == 422

    # The lock refuses: its reason code comes back in the problem.
    peripheral.press(peripheral.lock.jam)
    refused = problem(await rig.command(lock_id, "unlock", "k-jam"), 409, "lock-refused")
    assert (refused["reason"], refused["state"]) == ("JAMMED", "refused")
    assert refused == problem(await rig.command(lock_id, "unlock", "k-jam"), 409, "lock-refused")

    # No gateway: 503, nothing sent, the answer is final for this key.
    await rig.stop_gateway(gateway)
    await rig.presence.next(lambda p: p.gateway == Jid.parse(account.jid).bare)
    offline = problem(await rig.command(lock_id, "status", "k-off"), 503, "gateway-unavailable")
    assert (offline["state"], offline["reason"]) == ("failed", "no-gateway")
    await rig.start_gateway(account)
    await rig.seen_by(account, peripheral.lock.identity.device_id)
    assert offline == problem(
        await rig.command(lock_id, "status", "k-off"), 503, "gateway-unavailable"
    )
    _, commands, audits = await rows(rig, lock_id)
    states = {c.idempotency_key: (c.state, c.reason, c.attempts) for c in commands}
    assert states == {"k-jam": ("refused", "JAMMED", 1), "k-off": ("failed", "no-gateway", 1)}
    denied = [a for a in audits if a.action == "lock.command" and a.result == "denied"]
    assert len(denied) == 3  # user b, the admin, and the lock's own refusal


def hold_answer(
    peripheral: LockPeripheral, monkeypatch: pytest.MonkeyPatch
) -> tuple[asyncio.Event, asyncio.Event, asyncio.Event]:
    """The lock executes the next frame, then holds its answer until ``release``."""
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
    return entered, release, finished


async def test_gateway_killed_mid_command_retry_resends_the_same_frame(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    peripheral, lock_id, account, gateway = await bound_lock(rig, ACME)
    entered, release, finished = hold_answer(peripheral, monkeypatch)
    pending = asyncio.create_task(rig.command(lock_id, "unlock", "k-killed"))
    await asyncio.wait_for(entered.wait(), WAIT_S)
    assert peripheral.lock.status(0).bolt is BoltState.UNLOCKED  # executed, answer held
    # The client's impatient second request does not send anything while the first runs.
    busy = problem(await rig.command(lock_id, "unlock", "k-killed"), 409, "command-in-progress")
    assert busy["command_id"]

    await rig.stop_gateway(gateway)  # the gateway goes away mid-command
    lost = problem(await pending, 503, "gateway-unavailable")
    assert (lost["state"], lost["reason"]) == ("unknown", "gateway-lost")
    release.set()
    await asyncio.wait_for(finished.wait(), WAIT_S)
    _, [command], _ = await rows(rig, lock_id)
    assert (command.state, command.attempts, command.finished_at) == ("unknown", 1, None)
    sent = command.frame

    # Someone locks by hand; the gateway comes back; the client retries with its key.
    peripheral.press(lambda t: peripheral.lock.turn_knob(BoltState.LOCKED, t))
    await rig.start_gateway(account)
    await rig.seen_by(account, peripheral.lock.identity.device_id)
    retry = await rig.command(lock_id, "unlock", "k-killed")
    assert retry.status_code == 200, retry.text
    assert (retry.json()["state"], retry.json()["bolt"]) == ("ok", "unlocked")  # cached answer
    assert retry.json()["command_id"] == lost["command_id"] == busy["command_id"]
    assert peripheral.lock.status(0).bolt is BoltState.LOCKED  # not unlocked a second time

    lock, [command], audits = await rows(rig, lock_id)
    assert command.frame == sent  # the very same bytes were re-sent
    assert (command.state, command.attempts) == ("ok", 2)
    assert lock.bolt_state == BoltState.UNLOCKED  # what the lock answered (then)
    actions = [(a.action, a.result) for a in audits if a.action.startswith("lock.command")]
    assert actions == [
        ("lock.command.intent", "ok"),
        ("lock.command", "failed"),
        ("lock.command.resend", "ok"),
        ("lock.command", "ok"),
    ]


async def test_lock_not_answering_is_a_timeout_then_the_retry_settles_it(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    peripheral, lock_id, _, _ = await bound_lock(rig, KEYSTONE)
    entered, release, finished = hold_answer(peripheral, monkeypatch)
    monkeypatch.setattr(service, "COMMAND_TIMEOUT_S", 0.5)  # the gateway's BLE budget
    timeout = problem(await rig.command(lock_id, "lock", "k-slow"), 504, "lock-unreachable")
    assert timeout["state"] == "unknown"
    assert timeout["reason"] in {"ble-timeout", "relay-timeout", "link-lost"}
    assert entered.is_set()
    release.set()
    await asyncio.wait_for(finished.wait(), WAIT_S)
    monkeypatch.setattr(service, "COMMAND_TIMEOUT_S", 8.0)
    retry = await rig.command(lock_id, "lock", "k-slow")
    assert retry.status_code == 200, retry.text
    assert retry.json()["bolt"] == "locked"
    _, [command], _ = await rows(rig, lock_id)
    assert (command.state, command.attempts) == ("ok", 2)
