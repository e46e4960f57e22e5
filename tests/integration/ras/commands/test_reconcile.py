"""Reconciliation of unknown commands end to end: a real RAS reads a SimulatedLock's
status and log over XMPP -> BGW -> BLE and settles the command from what the lock says.

Time is a :class:`ShiftedClock` shared by the RAS and the lock: a test moves it instead
of sleeping, and waits on the reconciler's own progress (``wait_for``), never on time.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from heslock.bsld.config import LockConfig
from heslock.bsld.log import LogCode
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import BoltState
from heslock.protocol.makers import ACME, KEYSTONE, LUMEN
from heslock.ras.services.commands import service
from heslock.ras.services.commands.nearby import NEARBY_FRAME_TTL_S
from heslock.ras.services.commands.reconcile import Decision, Reconciler, Verdict
from heslock.ras.store.models import AuditRecord, Command
from heslock.xmpp import Jid
from tests.integration.ras.commands.conftest import WAIT_S, GatewayAccount, Rig, ShiftedClock
from tests.integration.ras.commands.test_commands import hold_answer, problem, rows
from tests.support import auth

pytestmark = pytest.mark.timeout(120)


async def clocked_lock(
    rig: Rig, maker: Any, config: LockConfig | None = None
) -> tuple[ShiftedClock, LockPeripheral, str, GatewayAccount, Any]:
    """A lock bound through a gateway, the RAS and the lock on one shifted clock."""
    clock = ShiftedClock()
    rig.server.app.state.ddms.clock = clock
    peripheral = await rig.add_lock_with(maker, clock, config)
    account = await rig.create_gateway()
    gateway = await rig.start_gateway(account)
    await rig.seen_by(account, peripheral.lock.identity.device_id)
    lock_id = await rig.register(peripheral, Jid.parse(account.jid).bare)
    return clock, peripheral, lock_id, account, gateway


async def decided(
    reconciler: Reconciler, command_id: str, verdict: Verdict, why: str | None = None
) -> Decision:
    """Wait until the reconciler's latest decision for the command is ``verdict``."""
    key = uuid.UUID(command_id)

    def done() -> bool:
        decision = reconciler.decisions.get(key)
        return (
            decision is not None
            and decision.verdict is verdict
            and (why is None or decision.why == why)
        )

    await asyncio.wait_for(reconciler.wait_for(done), WAIT_S)
    return reconciler.decisions[key]


async def lost_after_acting(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, maker: Any, key: str
) -> tuple[ShiftedClock, LockPeripheral, str, GatewayAccount, dict[str, Any]]:
    """An unlock the lock executed, whose answer was lost with the gateway (unknown)."""
    clock, peripheral, lock_id, account, gateway = await clocked_lock(rig, maker)
    entered, release, finished = hold_answer(peripheral, monkeypatch)
    pending = asyncio.create_task(rig.command(lock_id, "unlock", key))
    await asyncio.wait_for(entered.wait(), WAIT_S)
    assert peripheral.lock.status(clock()).bolt is BoltState.UNLOCKED  # executed, answer held
    await rig.stop_gateway(gateway)
    lost = problem(await pending, 503, "gateway-unavailable")
    assert (lost["state"], lost["reason"]) == ("unknown", "gateway-lost")
    release.set()
    await asyncio.wait_for(finished.wait(), WAIT_S)
    return clock, peripheral, lock_id, account, lost


async def reconciled_audits(rig: Rig, lock_id: str) -> list[AuditRecord]:
    _, _, audits = await rows(rig, lock_id)
    return [a for a in audits if a.action == "lock.command.reconciled"]


async def test_a_lost_answer_is_reconciled_from_the_lock_log_when_a_gateway_sees_it(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, peripheral, lock_id, account, lost = await lost_after_acting(
        rig, monkeypatch, ACME, "k-lost"
    )
    _, [command], _ = await rows(rig, lock_id)
    assert command.reconcile_after is not None  # left to the client's retry for a while
    # Someone locks by hand; the client never retries; time passes beyond the grace.
    peripheral.press(lambda t: peripheral.lock.turn_knob(BoltState.LOCKED, t))
    clock.advance(service.RECONCILE_GRACE_S + 1)

    # The gateway comes back: nothing but its presence and scan report starts the pass.
    await rig.start_gateway(account)
    decision = await decided(rig.relay.reconciler, lost["command_id"], Verdict.EXECUTED)
    assert decision.why == "log-entry"

    lock, [command], _ = await rows(rig, lock_id)
    assert (command.state, command.reason, command.attempts) == ("ok", None, 1)
    assert command.answer is not None
    assert command.answer["confirmed"] == "log"
    assert command.finished_at is not None
    assert lock.bolt_state == BoltState.LOCKED  # the state the STATUS read reported
    [audit] = await reconciled_audits(rig, lock_id)
    assert (audit.actor, audit.result) == ("system", "ok")
    assert audit.details["command_id"] == lost["command_id"]
    assert (audit.details["why"], audit.details["confirmed"]) == ("log-entry", "log")
    assert audit.details["path"] == "remote"

    # The client's retry with its key now gets the reconciled answer: nothing is sent,
    # the lock is not unlocked a second time.
    retry = await rig.command(lock_id, "unlock", "k-lost")
    assert retry.status_code == 200, retry.text
    body = retry.json()
    assert (body["state"], body["confirmed"], body["command_id"]) == (
        "ok",
        "log",
        lost["command_id"],
    )
    assert body["bolt"] is None  # the log says it ran, not what the bolt did afterwards
    assert peripheral.lock.status(clock()).bolt is BoltState.LOCKED
    _, [command], _ = await rows(rig, lock_id)
    assert command.attempts == 1


async def test_a_frame_that_never_reached_the_lock_fails_once_the_lock_clock_passed_it(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "RECONCILE_GRACE_S", 0.0)
    clock, peripheral, lock_id, _, _ = await clocked_lock(
        rig, KEYSTONE, LockConfig(timestamp_window_s=10)
    )
    bolt_before = peripheral.lock.status(clock()).bolt
    handle = peripheral.lock.handle_frame
    swallowed: list[bytes] = []

    def swallow_first(wire: bytes, host_time: float) -> bytes:
        if not swallowed:  # the radio garbles it: the lock never sees the command
            swallowed.append(wire)
            return bytes(len(wire))
        return handle(wire, host_time)

    monkeypatch.setattr(peripheral.lock, "handle_frame", swallow_first)
    lost = problem(await rig.command(lock_id, "unlock", "k-void"), 502, "gateway-failure")
    assert (lost["state"], lost["reason"]) == ("unknown", "bad-answer")
    reconciler = rig.relay.reconciler

    # The lock would still accept the frame: nothing is decided, the next try is planned
    # for when the lock's clock has passed the frame's window.
    reconciler.kick()
    first = await decided(reconciler, lost["command_id"], Verdict.UNDECIDED, "window-open")
    assert first.retry_in_s is not None
    assert 1 <= first.retry_in_s <= 11
    _, [command], _ = await rows(rig, lock_id)
    assert (command.state, command.reconciles) == ("unknown", 1)
    assert command.reconcile_after is not None
    assert await reconciled_audits(rig, lock_id) == []

    clock.advance(11)  # the lock (window 10 s) now refuses that frame as STALE, forever
    reconciler.kick()
    await decided(reconciler, lost["command_id"], Verdict.NOT_EXECUTED, "window-passed")
    _, [command], _ = await rows(rig, lock_id)
    assert (command.state, command.reason, command.attempts) == ("failed", "not-executed", 1)
    [audit] = await reconciled_audits(rig, lock_id)
    assert (audit.result, audit.details["why"], audit.details["window_s"]) == (
        "failed",
        "window-passed",
        10,
    )
    assert audit.details["lock_clock"] > audit.details["frame_ts"] + 10

    # The client's retry learns it, and nothing is sent.
    again = problem(await rig.command(lock_id, "unlock", "k-void"), 409, "command-not-executed")
    assert (again["state"], again["reason"], again["confirmed"]) == (
        "failed",
        "not-executed",
        "log",
    )
    assert again["command_id"] == lost["command_id"]
    lock = peripheral.lock
    assert lock.status(clock()).bolt is bolt_before
    assert not any(e.code is LogCode.REMOTE_OPERATION for e in lock.log)
    assert len(swallowed) == 1


async def test_two_passes_never_reconcile_one_command_at_once(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, _, lock_id, account, lost = await lost_after_acting(rig, monkeypatch, LUMEN, "k-twice")
    reconciler = rig.relay.reconciler
    await reconciler.stop()  # only this test's passes from here
    clock.advance(service.RECONCILE_GRACE_S + 1)
    await rig.start_gateway(account)
    await rig.seen_by(account, rig.peripherals[-1].lock.identity.device_id)

    first, second = await asyncio.gather(
        reconciler.reconcile_lock(uuid.UUID(lock_id)),
        reconciler.reconcile_lock(uuid.UUID(lock_id)),
    )
    outcomes = sorted([first, second], key=len)
    assert outcomes[0] == {}  # the other pass held the lease
    assert outcomes[1] == {uuid.UUID(lost["command_id"]): Decision(Verdict.EXECUTED, "log-entry")}
    assert len(await reconciled_audits(rig, lock_id)) == 1
    # Settled: a third pass finds nothing to do.
    assert await reconciler.reconcile_lock(uuid.UUID(lock_id)) == {}


async def test_no_pass_while_a_nearby_frame_of_the_lock_may_still_be_carried(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, peripheral, lock_id, account, lost = await lost_after_acting(
        rig, monkeypatch, ACME, "k-wait"
    )
    reconciler = rig.relay.reconciler
    await reconciler.stop()
    clock.advance(service.RECONCILE_GRACE_S + 1)
    await rig.start_gateway(account)
    await rig.seen_by(account, peripheral.lock.identity.device_id)
    issued = await rig.client.post(
        f"/v1/locks/{lock_id}/frames",
        json={"command": "lock"},
        headers={**auth("a"), "Idempotency-Key": "n-live"},
    )
    assert issued.status_code == 201, issued.text
    lock_before, _, _ = await rows(rig, lock_id)
    # A pass would take dozens of counters: the nearby frame would be refused COUNTER.
    assert await reconciler.reconcile_lock(uuid.UUID(lock_id)) == {}
    lock, _, _ = await rows(rig, lock_id)
    assert lock.next_counter == lock_before.next_counter  # no frame was sent
    clock.advance(NEARBY_FRAME_TTL_S)  # the nearby frame expired
    decisions = await reconciler.reconcile_lock(uuid.UUID(lock_id))
    assert decisions == {uuid.UUID(lost["command_id"]): Decision(Verdict.EXECUTED, "log-entry")}


async def test_a_retry_that_settles_the_command_during_a_pass_wins(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, peripheral, lock_id, account, lost = await lost_after_acting(
        rig, monkeypatch, KEYSTONE, "k-race"
    )
    reconciler = rig.relay.reconciler
    await reconciler.stop()
    clock.advance(service.RECONCILE_GRACE_S + 1)
    await rig.start_gateway(account)
    await rig.seen_by(account, peripheral.lock.identity.device_id)

    # The client retries with its key while the pass is between its reads and its write.
    read_and_decide = reconciler._read_and_decide
    retries: list[Any] = []

    async def racing(*args: Any) -> Any:
        result = await read_and_decide(*args)
        retries.append(await rig.command(lock_id, "unlock", "k-race"))
        return result

    monkeypatch.setattr(reconciler, "_read_and_decide", racing)
    decisions = await reconciler.reconcile_lock(uuid.UUID(lock_id))
    assert decisions[uuid.UUID(lost["command_id"])].verdict is Verdict.EXECUTED
    [retry] = retries
    assert retry.status_code == 200, retry.text
    # the same bytes again, long after the lock's retry period: it says REPLAY
    assert (retry.json()["state"], retry.json()["confirmed"]) == ("ok", "replay")
    _, [command], audits = await rows(rig, lock_id)
    assert (command.state, command.attempts) == ("ok", 2)
    assert command.answer is not None
    assert command.answer["confirmed"] == "replay"
    assert [a for a in audits if a.action == "lock.command.reconciled"] == []  # not written
    # and the stored answer is the retry's, for the next request too
    again = await rig.command(lock_id, "unlock", "k-race")
    assert again.json() == retry.json()


async def test_an_expired_nearby_frame_without_answer_becomes_unknown_then_failed(
    rig: Rig,
) -> None:
    clock, peripheral, lock_id, _, _ = await clocked_lock(
        rig, ACME, LockConfig(timestamp_window_s=5)
    )
    issued = await rig.client.post(
        f"/v1/locks/{lock_id}/frames",
        json={"command": "lock"},
        headers={**auth("a"), "Idempotency-Key": "n-lost"},
    )
    assert issued.status_code == 201, issued.text
    command_id = issued.json()["command_id"]
    clock.advance(21)  # past expires_at, and past the lock's window (5 s)
    rig.relay.reconciler.kick()
    await decided(rig.relay.reconciler, command_id, Verdict.NOT_EXECUTED, "window-passed")

    async with rig.maker()() as session:
        command = await session.get(Command, uuid.UUID(command_id))
        assert command is not None
        assert (command.state, command.reason, command.path) == (
            "failed",
            "not-executed",
            "nearby",
        )
        audits = (
            await session.execute(
                select(AuditRecord)
                .where(AuditRecord.target == f"lock:{lock_id}")
                .order_by(AuditRecord.id)
            )
        ).scalars()
        trail = [
            (a.action, a.result, a.details.get("reason"))
            for a in audits
            if a.details.get("command_id") == command_id
        ]
    assert trail == [
        ("lock.command.intent", "ok", None),
        ("lock.command", "failed", "no-answer"),
        ("lock.command.reconciled", "failed", "not-executed"),
    ]
    expired = await rig.client.post(
        f"/v1/locks/{lock_id}/frames",
        json={"command": "lock"},
        headers={**auth("a"), "Idempotency-Key": "n-lost"},
    )
    body = problem(expired, 409, "frame-expired")
    assert (body["state"], body["reason"]) == ("failed", "not-executed")
    assert not any(e.code is LogCode.REMOTE_OPERATION for e in peripheral.lock.log)
