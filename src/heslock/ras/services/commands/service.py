"""Remote commands: ``unlock``, ``lock`` and ``status`` sent to a lock through a BGW.

ISO/IEC 14543-5-104 "Control flow" (RAC -> RAS -> BGW -> BSLD and back). One command,
in three short transactions so that no database transaction stays open while a frame is
out:

1. **Intent** -- authorise (``lock.operate``: the owner), look the Idempotency-Key up,
   take the lock's next counter (``locks.next_counter`` is incremented), seal the frame
   under the lock key, write the ``commands`` row (``pending``, with the sealed bytes)
   and the audit intent record; commit. Only then may the frame leave.
2. **Relay** -- pick the gateway (:meth:`LockBus.gateway_for`), send the frame, await the
   lock's answer.
3. **Outcome** -- open and verify the answer under the lock key (it must be this lock's
   answer to *this* frame: same op and sequence), write the command's state, the lock's
   last known state and the audit outcome; commit; answer.

State transitions of a command (``commands.state``):

========  =======================================  ==========  ======================
from      event                                    to          HTTP answer
========  =======================================  ==========  ======================
(new)     intent committed                         pending     --
pending   answer: the operation's response         ok          200
pending   answer: an ERROR frame                   refused     409 lock-refused
pending   no gateway sees the lock / offline,      failed      503 gateway-unavailable
          never sent (may_have_executed false)
pending   lock not in range, gateway refused to    failed      504 lock-unreachable /
          queue it (may_have_executed false)                   503 / 502
pending   error with may_have_executed true        unknown     503 / 504 / 502
          (session lost, timeout, link lost) or
          an answer that does not verify
unknown   retry, same key: THE SAME BYTES re-sent  ok          200 (the lock's cached
          and the lock answers the duplicate                   answer: it acts once)
unknown   retry: the lock says REPLAY (it          ok          200, ``confirmed`` =
          accepted these bytes before)                         ``replay``
unknown   retry: any other ERROR / no way to       unknown     409 outcome-unknown,
          re-send (key rotated since)                          or the relay's error
========  =======================================  ==========  ======================

A repeated request with a key whose command is ``ok``, ``refused`` or ``failed`` gets the
stored first answer and sends nothing. A ``pending`` command younger than
:data:`PENDING_GRACE_S` is still running (409 command-in-progress); an older one was
abandoned by a crashed node and is treated as ``unknown``. Never is a new frame built for
a key that has one: a lost answer is never followed by a blind second unlock.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.protocol import (
    Cmd,
    DeviceId,
    Direction,
    FrameCodec,
    OpBody,
    OperationOp,
    OperationType,
    Profile,
    ReasonCode,
    StatusArgs,
    decode_body,
    messages,
)
from heslock.protocol.errors import FrameRejected
from heslock.protocol.frame import MAX_COUNTER, MAX_SEQ_BASE
from heslock.ras.keystore import LOCK_KEY, Keystore
from heslock.ras.relay import (
    GatewayFailure,
    GatewayOffline,
    GatewayOverloaded,
    LockBus,
    LockBusy,
    RelayError,
)
from heslock.ras.relay.endpoint import IQ_MARGIN_S
from heslock.ras.services import audit
from heslock.ras.services.access import Action, Principal, Resource, ResourceKind, authorize
from heslock.ras.services.commands.errors import (
    BY_CODE,
    CommandInProgress,
    GatewayBadAnswer,
    GatewayUnavailable,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    LockUnreachable,
)
from heslock.ras.services.ddms.runtime import Clock
from heslock.ras.services.errors import Conflict, Forbidden, NotFound, ServiceError
from heslock.ras.store.models import Command, CommandState, Device, Lock
from heslock.ras.store.models.commands import MAX_IDEMPOTENCY_KEY_LEN

logger = logging.getLogger(__name__)

#: The gateway's budget per command: a BLE connect (one advertising interval, up to ~2 s
#: for slow makers), the write and the lock's answer, with room for one reconnect.
COMMAND_TIMEOUT_S: Final = 8.0
#: A ``pending`` command older than this was abandoned (its node died mid-command): the
#: relay's own deadline (budget + IQ margin) plus time to write the outcome.
PENDING_GRACE_S: Final = COMMAND_TIMEOUT_S + IQ_MARGIN_S + 10.0
#: The commands and the bolt op each sends (OperationType.BOLT).
OPS: Final[dict[str, OperationOp]] = {
    "unlock": OperationOp.UNLOCK,
    "lock": OperationOp.LOCK,
    "status": OperationOp.STATUS,
}
#: States whose answer is final and replayed to a repeated request.
FINAL: Final = frozenset({CommandState.OK, CommandState.REFUSED, CommandState.FAILED})


def check_idempotency_key(value: str | None) -> str:
    """The header's value, or :class:`IdempotencyKeyMissing` (printable ASCII, bounded)."""
    if value is None or not value.strip():
        raise IdempotencyKeyMissing("an Idempotency-Key header is required for a command")
    value = value.strip()
    if len(value) > MAX_IDEMPOTENCY_KEY_LEN or not all(33 <= ord(c) < 127 for c in value):
        raise IdempotencyKeyMissing(
            f"the Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters"
        )
    return value


def relay_error_code(exc: RelayError) -> str:
    """The problem code for a relay failure (503: gateway, 504: lock, 502: bad answer)."""
    if isinstance(exc, GatewayOffline | GatewayOverloaded | LockBusy):
        return GatewayUnavailable.code
    if isinstance(exc, GatewayFailure):
        return GatewayBadAnswer.code
    return LockUnreachable.code  # RelayTimeout, LockTimeout, LockNotInRange, LinkLost


@dataclass(frozen=True)
class Settled:
    """How a command ended this time: its state and the answer (problem code or None)."""

    state: CommandState
    reason: str | None
    code: str | None
    detail: str
    status: StatusArgs | None = None
    confirmed: str | None = None  #: ``answer`` or ``replay``


def _now() -> datetime:
    return datetime.now(UTC)


class CommandService:
    """Runs commands (module docstring). One per request; cheap to build."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        keystore: Keystore,
        bus: LockBus | None,
        clock: Clock,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.keystore = keystore
        self.bus = bus
        self.clock = clock

    async def run(
        self,
        principal: Principal,
        ctx: audit.AuditContext,
        lock_id: uuid.UUID,
        command: str,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Run (or replay) one command; its answer body, or a ServiceError with extensions."""
        op = OPS.get(command)
        if op is None:
            raise ServiceError("unreachable: the router validates the command")
        prepared = await self._intent(principal, ctx, lock_id, command, op, idempotency_key)
        if isinstance(prepared, dict):
            return prepared
        settled = await self._relay(prepared)
        return await self._outcome(ctx, prepared, settled)

    # ------------------------------------------------------------------ 1. intent

    async def _intent(
        self,
        principal: Principal,
        ctx: audit.AuditContext,
        lock_id: uuid.UUID,
        command: str,
        op: OperationOp,
        key: str,
    ) -> _Prepared | dict[str, Any]:
        async with self.sessionmaker() as session, session.begin():
            lock = await session.get(Lock, lock_id, with_for_update=True)
            if lock is None:
                raise NotFound("no such lock")
            try:
                authorize(
                    principal,
                    Action.LOCK_OPERATE,
                    Resource(ResourceKind.LOCK, str(lock.id), lock.owner_id),
                )
            except (Forbidden, NotFound):
                await self._denied(ctx, lock.id, command)
                raise
            assert principal.id is not None  # the owner is a user
            device = await session.get(Device, lock.device_id)
            if device is None:
                raise NotFound("no such lock")
            profile = Profile(device.profile)
            lock_key = self.keystore.open(LOCK_KEY, str(lock.id), lock.lock_key_enc)
            query = select(Command).where(
                Command.user_id == principal.id, Command.idempotency_key == key
            )
            existing = (await session.execute(query)).scalar_one_or_none()
            if existing is not None:
                return await self._repeat(session, ctx, existing, lock, command, op, lock_key)
            if self.bus is None:
                raise GatewayUnavailable("no gateway relay runs on this RAS node")
            seq = self._take_counter(lock, profile)
            frame = messages.command(
                Cmd.OPERATION, OperationType.BOLT, op, seq, int(self.clock()), profile.layout
            )
            row = Command(
                lock_id=lock.id,
                user_id=principal.id,
                idempotency_key=key,
                command=command,
                state=CommandState.PENDING.value,
                seq=seq,
                key_version=lock.key_version,
                frame=FrameCodec(lock_key, profile).seal(frame),
                attempts=1,
            )
            session.add(row)
            await session.flush()
            await audit.record(
                session,
                ctx,
                "lock.command.intent",
                audit.AuditResult.OK,
                target=f"lock:{lock.id}",
                command=command,
                command_id=str(row.id),
                seq=seq,
            )
            return _Prepared(
                row.id,
                lock.id,
                DeviceId.parse(lock.device_id),
                command,
                op,
                seq,
                row.frame,
                FrameCodec(lock_key, profile),
                profile,
                resend=False,
            )

    @staticmethod
    def _take_counter(lock: Lock, profile: Profile) -> int:
        seq = lock.next_counter
        limit = MAX_SEQ_BASE if profile is Profile.BASE else MAX_COUNTER
        if seq > limit:
            if profile is Profile.SECURE:
                raise Conflict("the lock key's counter is used up: rotate the lock key")
            seq = 1  # the base profile's 16-bit sequence wraps (0 is never used)
        lock.next_counter = seq + 1
        return seq

    async def _repeat(
        self,
        session: AsyncSession,
        ctx: audit.AuditContext,
        row: Command,
        lock: Lock,
        command: str,
        op: OperationOp,
        lock_key: bytes,
    ) -> _Prepared | dict[str, Any]:
        if row.command != command or row.lock_id != lock.id:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used for another command", command_id=str(row.id)
            )
        state = CommandState(row.state)
        if state in FINAL:
            return replay(row)
        age = _now() - row.created_at
        if state is CommandState.PENDING and age < timedelta(seconds=PENDING_GRACE_S):
            raise CommandInProgress(
                "the first request with this key is still running", command_id=str(row.id)
            )
        if row.key_version != lock.key_version:
            raise BY_CODE["command-outcome-unknown"](
                "the lock key changed since this command was sent: read the lock's status",
                command_id=str(row.id),
                state=CommandState.UNKNOWN.value,
            )
        if self.bus is None:
            raise GatewayUnavailable("no gateway relay runs on this RAS node")
        row.attempts += 1
        await audit.record(
            session,
            ctx,
            "lock.command.resend",
            audit.AuditResult.OK,
            target=f"lock:{lock.id}",
            command=command,
            command_id=str(row.id),
            seq=row.seq,
            attempt=row.attempts,
        )
        device = await session.get(Device, lock.device_id)
        assert device is not None
        profile = Profile(device.profile)
        return _Prepared(
            row.id,
            lock.id,
            DeviceId.parse(lock.device_id),
            command,
            op,
            row.seq,
            row.frame,
            FrameCodec(lock_key, profile),
            profile,
            resend=True,
        )

    async def _denied(self, ctx: audit.AuditContext, lock_id: uuid.UUID, command: str) -> None:
        async with self.sessionmaker() as session:
            await audit.record_and_commit(
                session,
                ctx,
                "lock.command",
                audit.AuditResult.DENIED,
                target=f"lock:{lock_id}",
                command=command,
            )

    # ------------------------------------------------------------------ 2. relay

    async def _relay(self, prep: _Prepared) -> tuple[Settled, str | None]:
        assert self.bus is not None
        gateway = await self.bus.gateway_for(prep.device)
        if gateway is None:
            state = CommandState.UNKNOWN if prep.resend else CommandState.FAILED
            detail = "no online gateway sees the lock"
            return Settled(state, "no-gateway", GatewayUnavailable.code, detail), None
        try:
            answer = await self.bus.send_frame(gateway, prep.device, prep.frame, COMMAND_TIMEOUT_S)
        except RelayError as exc:
            unknown = exc.may_have_executed or prep.resend
            state = CommandState.UNKNOWN if unknown else CommandState.FAILED
            logger.info("command %s via %s: %s", prep.command_id, gateway, exc.code)
            return Settled(state, exc.code, relay_error_code(exc), exc.detail), gateway
        return verify(prep, answer), gateway

    # ------------------------------------------------------------------ 3. outcome

    async def _outcome(
        self, ctx: audit.AuditContext, prep: _Prepared, result: tuple[Settled, str | None]
    ) -> dict[str, Any]:
        settled, gateway = result
        async with self.sessionmaker() as session, session.begin():
            row = await session.get(Command, prep.command_id, with_for_update=True)
            lock = await session.get(Lock, prep.lock_id, with_for_update=True)
            if row is None or lock is None:
                raise NotFound("the lock was unbound while the command ran")
            now = _now()
            row.state, row.reason = settled.state.value, settled.reason
            row.gateway = gateway or row.gateway
            extensions: dict[str, Any] = {
                "command_id": str(row.id),
                "state": settled.state.value,
                "reason": settled.reason,
            }
            if settled.state is not CommandState.UNKNOWN:
                row.finished_at = now
            if settled.code is None:
                body = {
                    "command_id": str(row.id),
                    "lock_id": str(lock.id),
                    "command": row.command,
                    "state": settled.state.value,
                    "confirmed": settled.confirmed,
                    "bolt": settled.status.bolt.name.lower() if settled.status else None,
                    "door": settled.status.door.name.lower() if settled.status else None,
                    "battery": settled.status.battery if settled.status else None,
                    "flags": settled.status.flags if settled.status else None,
                    "finished_at": now.isoformat(),
                }
                row.answer_code, row.answer = None, body
            else:
                row.answer_code = settled.code
                row.answer = {"detail": settled.detail, **extensions}
            if settled.status is not None:
                lock.bolt_state, lock.door_state = (
                    int(settled.status.bolt),
                    int(settled.status.door),
                )
                lock.battery, lock.state_at = settled.status.battery, now
            result_kind = {
                CommandState.OK: audit.AuditResult.OK,
                CommandState.REFUSED: audit.AuditResult.DENIED,
            }.get(settled.state, audit.AuditResult.FAILED)
            await audit.record(
                session,
                ctx,
                "lock.command",
                result_kind,
                target=f"lock:{lock.id}",
                command=row.command,
                command_id=str(row.id),
                state=settled.state.value,
                reason=settled.reason,
                gateway=gateway,
                attempt=row.attempts,
            )
            code, stored = row.answer_code, dict(row.answer or {})
        return answer_of(code, stored)  # after the commit: an error answer is raised


@dataclass(frozen=True)
class _Prepared:
    command_id: uuid.UUID
    lock_id: uuid.UUID
    device: DeviceId
    command: str
    op: OperationOp
    seq: int
    frame: bytes  #: sealed
    codec: FrameCodec
    profile: Profile
    resend: bool

    def __repr__(self) -> str:  # keeps the codec's key and the frame out of tracebacks
        return f"_Prepared(command={self.command_id}, lock={self.lock_id}, seq={self.seq})"


def replay(row: Command) -> dict[str, Any]:
    """The stored answer: returned (success) or raised (a problem), as the first time."""
    return answer_of(row.answer_code, dict(row.answer or {}))


def answer_of(code: str | None, answer: dict[str, Any]) -> dict[str, Any]:
    if code is None:
        return answer
    detail = str(answer.pop("detail", ""))
    raise BY_CODE[code](detail, **answer)


def verify(prep: _Prepared, answer: bytes) -> Settled:
    """Open the lock's answer and check it answers *this* frame (same op and sequence)."""
    bad = CommandState.UNKNOWN  # the lock may have acted; what came back proves nothing
    try:
        frame = prep.codec.open(answer)
        body = decode_body(frame, Direction.FROM_LOCK, prep.profile)
    except FrameRejected as exc:
        return Settled(bad, "bad-answer", GatewayBadAnswer.code, f"not this lock's frame: {exc}")
    if not isinstance(body, OpBody) or body.seq != prep.seq or body.op != prep.op:
        return Settled(bad, "bad-answer", GatewayBadAnswer.code, "not the answer to this command")
    if frame.group == Cmd.ERROR:
        try:
            reason = ReasonCode(frame.type)
        except ValueError:
            return Settled(bad, "bad-answer", GatewayBadAnswer.code, "unknown reason code")
        if prep.resend and reason is ReasonCode.REPLAY:
            # These bytes exist once, made by us: the lock accepted them the first time.
            return Settled(CommandState.OK, None, None, "", confirmed="replay")
        if prep.resend:
            return Settled(
                CommandState.UNKNOWN,
                reason.name,
                "command-outcome-unknown",
                f"the lock refused the re-sent frame ({reason.name}): read its status and log",
            )
        return Settled(
            CommandState.REFUSED, reason.name, "lock-refused", f"the lock refused: {reason.name}"
        )
    if frame.group != Cmd.OPERATION or frame.type != OperationType.BOLT:
        return Settled(bad, "bad-answer", GatewayBadAnswer.code, "not the answer to this command")
    try:
        status = StatusArgs.from_bytes(body.args)
    except FrameRejected as exc:
        return Settled(bad, "bad-answer", GatewayBadAnswer.code, f"bad status: {exc}")
    return Settled(CommandState.OK, None, None, "", status=status, confirmed="answer")
