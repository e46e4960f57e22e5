"""Remote commands: ``unlock``, ``lock`` and ``status`` sent to a lock through a BGW.

ISO/IEC 14543-5-104 "Control flow" (RAC -> RAS -> BGW -> BSLD and back). One command,
in three short transactions so that no database transaction stays open while a frame is
out:

1. **Intent** -- look the Idempotency-Key up, authorise (the caller's grants on the
   lock by this path now -- ownership or a share, see
   :mod:`heslock.ras.services.sharing.resolver`), take the lock's next counter
   (``locks.next_counter`` is incremented), seal the frame under the lock key, write the
   ``commands`` row (``pending``, with the sealed bytes), the audit intent record and
   the share's use (a one-time key is spent here); commit. Only then may the frame
   leave. A refusal rolls all of it back and is audited (``lock.command``, ``denied``,
   with the policy's ``reason``).
2. **Relay** -- pick the gateway (:meth:`LockBus.gateway_for`), send the frame, await the
   lock's answer.
3. **Outcome** -- open and verify the answer under the lock key (it must be this lock's
   answer to *this* frame: same op and sequence), write the command's state, the lock's
   last known state and the audit outcome; commit; answer.

Nearby mode (:mod:`heslock.ras.services.commands.nearby`) is steps 1 and 3 with the
client carrying the frame in between; the reconciler
(:mod:`heslock.ras.services.commands.reconcile`) settles ``unknown`` commands of both
paths from the lock's log. All three share this module's sealing, :func:`verify` and
:func:`apply` (the one place a command's state is written).

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
unknown   reconciled: the lock's log shows it      ok          200, ``confirmed`` =
                                                               ``log``
unknown   reconciled: not in the log, and the      failed      409 command-not-executed
          lock's clock is past the frame's window              (reason ``not-executed``)
========  =======================================  ==========  ======================

A repeated request with a key whose command is ``ok``, ``refused`` or ``failed`` gets the
stored first answer and sends nothing. A ``pending`` command younger than
:data:`PENDING_GRACE_S` is still running (409 command-in-progress); an older one was
abandoned by a crashed node and is treated as ``unknown``. Never is a new frame built for
a key that has one: a lost answer is never followed by a blind second unlock.

Concurrency. Every transaction that writes a command's state (intent, outcome, a nearby
answer, a reconciliation) first takes the **lock row's write lock** (:func:`lock_row`:
an ``UPDATE`` of the row, which PostgreSQL and SQLite both serialise), then reads the
command fresh. So a reconciliation racing a user's retry with the same key sees the
other's committed state, and :func:`apply` never lets a weaker outcome overwrite a
settled one (its table).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select, update
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
from heslock.ras.services.access import Principal
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
from heslock.ras.services.feed.sources import command_outcome as feed_command_outcome
from heslock.ras.services.geofence.service import check_remote_unlock
from heslock.ras.services.sharing.errors import AccessDenied
from heslock.ras.services.sharing.policy import Decision, LockAction, Path
from heslock.ras.services.sharing.resolver import Access, effective_access, record_use
from heslock.ras.store.base import new_id
from heslock.ras.store.engine import write_gate
from heslock.ras.store.models import Command, CommandState, Device, HomeLock, Lock
from heslock.ras.store.models.commands import MAX_IDEMPOTENCY_KEY_LEN, CommandPath

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
#: What each command asks of the caller's grants (:mod:`heslock.ras.services.sharing`).
ACTIONS: Final[dict[str, LockAction]] = {
    "unlock": LockAction.UNLOCK,
    "lock": LockAction.LOCK,
    "status": LockAction.STATUS,
}
#: The sharing path each way of carrying a frame is (a share may allow only some).
PATHS: Final[dict[CommandPath, Path]] = {
    CommandPath.REMOTE: Path.REMOTE,
    CommandPath.NEARBY: Path.NEARBY,
}
#: A command that just became ``unknown`` is left to the client this long before the
#: reconciler reads the lock: a retry with the same key re-sends the same bytes and gets
#: the lock's own answer (with its state), which beats a log entry; the lock serves such a
#: duplicate from its cache for its retry period (10 s by default).
RECONCILE_GRACE_S: Final = 30.0
#: States whose answer is final and replayed to a repeated request.
FINAL: Final = frozenset({CommandState.OK, CommandState.REFUSED, CommandState.FAILED})
#: How the RAS knows an outcome (the answer's ``confirmed``): the lock's answer to the
#: frame, its REPLAY refusal of a re-sent frame, its log (reconciled), or -- a ``status``
#: command only -- a later status read (reconciled; reading changes nothing).
CONFIRMED_ANSWER: Final = "answer"
CONFIRMED_REPLAY: Final = "replay"
CONFIRMED_LOG: Final = "log"
CONFIRMED_STATUS: Final = "status"


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
    confirmed: str | None = None  #: one of the ``CONFIRMED_*`` values


def _now() -> datetime:
    return datetime.now(UTC)


def take_counter(lock: Lock, profile: Profile) -> int:
    """The lock's next counter, and advance it (the caller holds the row: :func:`lock_row`).

    The secure profile's 32-bit counter is never reused under one key (rotate the key);
    the base profile's 16-bit sequence wraps to 1 (0 is never used).
    """
    seq = lock.next_counter
    limit = MAX_SEQ_BASE if profile is Profile.BASE else MAX_COUNTER
    if seq > limit:
        if profile is Profile.SECURE:
            raise Conflict("the lock key's counter is used up: rotate the lock key")
        seq = 1
    lock.next_counter = seq + 1
    return seq


async def lock_row(session: AsyncSession, lock_id: uuid.UUID) -> Lock | None:
    """Take the lock row's write lock, then read it fresh (module docstring, Concurrency).

    A no-op ``UPDATE`` is the portable row lock: PostgreSQL locks the row until the
    transaction ends (as ``FOR UPDATE`` would), and SQLite -- which ignores ``FOR
    UPDATE`` and starts a transaction only at the first write -- takes its database write
    lock there, so nothing read after it can be changed by another writer before commit.
    Not ``SELECT ... FOR UPDATE`` after it: on PostgreSQL that would upgrade the row lock
    to one that conflicts with the KEY SHARE lock of a concurrent insert referencing the
    lock (an event being stored), which then waits for our UPDATE lock: a deadlock.
    """
    await session.execute(
        update(Lock)
        .where(Lock.id == lock_id)
        .values(next_counter=Lock.next_counter)
        .execution_options(synchronize_session=False)
    )
    return await session.get(Lock, lock_id, populate_existing=True)


async def lock_row_profile(
    session: AsyncSession, lock_id: uuid.UUID
) -> tuple[Lock, Profile] | None:
    """:func:`lock_row`, and the lock's frame profile (its device's) in the same read."""
    await session.execute(
        update(Lock)
        .where(Lock.id == lock_id)
        .values(next_counter=Lock.next_counter)
        .execution_options(synchronize_session=False)
    )
    query = (
        select(Lock, Device.profile)
        .join(Device, Device.device_id == Lock.device_id)
        .where(Lock.id == lock_id)
        .execution_options(populate_existing=True)
    )
    found = (await session.execute(query)).first()
    if found is None:
        return None
    lock, profile = found
    return lock, Profile(profile)


async def lock_row_command(
    session: AsyncSession, lock_id: uuid.UUID, command_id: uuid.UUID
) -> tuple[Lock, Command] | None:
    """:func:`lock_row`, and the command read fresh in the same statement (None if
    either is gone). The lock's home link comes along into the session, where the
    outcome's feed event looks it up (:func:`heslock.ras.services.feed.publish.publish`
    asks the identity map first): one statement less per command."""
    await session.execute(
        update(Lock)
        .where(Lock.id == lock_id)
        .values(next_counter=Lock.next_counter)
        .execution_options(synchronize_session=False)
    )
    query = (
        select(Lock, Command, HomeLock)
        .outerjoin(HomeLock, HomeLock.lock_id == Lock.id)
        .where(Lock.id == lock_id, Command.id == command_id, Command.lock_id == Lock.id)
        .execution_options(populate_existing=True)
    )
    found = (await session.execute(query)).first()
    return None if found is None else (found[0], found[1])


def may_replace(current: CommandState, new: CommandState) -> bool:
    """Whether an outcome ``new`` may overwrite a command in state ``current``.

    =================  ==================  ======================================
    current            new                 why
    =================  ==================  ======================================
    pending, unknown   anything            nothing is settled yet
    failed             ok, refused         the lock's verified answer beats a
                                           deduction (a reconciled not-executed)
    failed             failed, unknown     keep: a weaker outcome
    ok, refused        anything            keep: the first verified truth stands
    =================  ==================  ======================================
    """
    if current in (CommandState.PENDING, CommandState.UNKNOWN):
        return True
    if current is CommandState.FAILED:
        return new in (CommandState.OK, CommandState.REFUSED)
    return False


def success_body(row: Command, lock: Lock, settled: Settled, now: datetime) -> dict[str, Any]:
    """The answer of a command that ended ``ok`` (the route's ``CommandView``)."""
    status = settled.status
    return {
        "command_id": str(row.id),
        "lock_id": str(lock.id),
        "command": row.command,
        "state": settled.state.value,
        "confirmed": settled.confirmed,
        "bolt": status.bolt.name.lower() if status else None,
        "door": status.door.name.lower() if status else None,
        "battery": status.battery if status else None,
        "flags": status.flags if status else None,
        "finished_at": now.isoformat(),
    }


def apply(row: Command, lock: Lock, settled: Settled, gateway: str | None, now: datetime) -> bool:
    """Write ``settled`` on ``row`` and the lock's last known state; False if the row keeps
    its state (:func:`may_replace`). The caller holds the lock row (:func:`lock_row`)."""
    if not may_replace(CommandState(row.state), settled.state):
        return False
    row.state, row.reason = settled.state.value, settled.reason
    row.gateway = gateway or row.gateway
    row.reconcile_after = None  # unknown: due for the reconciler (the caller may defer)
    if settled.state is not CommandState.UNKNOWN:
        row.finished_at = now
    if settled.code is None:
        row.answer_code, row.answer = None, success_body(row, lock, settled, now)
    else:
        problem: dict[str, Any] = {
            "detail": settled.detail,
            "command_id": str(row.id),
            "state": settled.state.value,
            "reason": settled.reason,
        }
        if settled.confirmed is not None:
            problem["confirmed"] = settled.confirmed
        row.answer_code, row.answer = settled.code, problem
    if settled.status is not None:
        update_lock_state(lock, settled.status, now)
    return True


def update_lock_state(lock: Lock, status: StatusArgs, at: datetime) -> None:
    """The lock's last known state, unless a newer report is already stored."""
    if lock.state_at is not None and lock.state_at > at:
        return
    lock.bolt_state, lock.door_state = int(status.bolt), int(status.door)
    lock.battery, lock.state_at = status.battery, at


def audit_result(state: CommandState) -> audit.AuditResult:
    return {
        CommandState.OK: audit.AuditResult.OK,
        CommandState.REFUSED: audit.AuditResult.DENIED,
    }.get(state, audit.AuditResult.FAILED)


@dataclass(frozen=True)
class LockTarget:
    """The lock a command is for, authorised and held (its row lock is taken)."""

    lock: Lock
    profile: Profile
    key: bytes

    @property
    def codec(self) -> FrameCodec:
        return FrameCodec(self.key, self.profile)

    def __repr__(self) -> str:  # the key stays out of tracebacks
        return f"LockTarget(lock={self.lock.id}, profile={self.profile.value})"


@dataclass(frozen=True)
class Opened:
    """An intent's lock, held, with what allows the caller to command it.

    ``existing``: the caller's command with this Idempotency-Key, if any (a repeat).
    ``access`` and ``decision``: the grants read under the row lock and the one that
    allows (:func:`~heslock.ras.services.sharing.resolver.record_use` needs both).
    """

    target: LockTarget
    existing: Command | None
    access: Access
    decision: Decision


class IntentRefused(Exception):
    """An access refusal on its way out of the intent's transaction.

    The transaction rolls back (no row, no counter, no spent key), then the refusal is
    audited on a connection of its own -- on SQLite that audit would otherwise wait for
    the write lock the intent holds -- and ``error`` (NotFound, Forbidden or
    AccessDenied) is raised to the caller.
    """

    def __init__(self, error: ServiceError, reason: str) -> None:
        super().__init__(error.detail)
        self.error = error
        self.reason = reason


def refusal_reason(error: ServiceError, decision: Decision) -> str:
    """The audit's ``reason`` for a refusal: the policy's (``permission``, ``spent``...)."""
    return str(error.extensions.get("reason") or decision.reason.value)


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

    def now(self) -> datetime:
        """The RAS clock (the one frames are stamped with) as an aware datetime."""
        return datetime.fromtimestamp(self.clock(), UTC)

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

    # ------------------------------------------------------------------ shared steps

    async def _open(
        self,
        session: AsyncSession,
        principal: Principal,
        lock_id: uuid.UUID,
        command: str,
        path: CommandPath,
        key: str,
        now: datetime,
    ) -> Opened:
        """Hold the lock's row, find the key's command and authorise ``command`` by
        ``path`` at ``now``; the lock's key and profile, and what allowed it.

        Decided once, under the row lock, from fresh reads (nothing is cached, so a
        revocation, an expiry or a schedule's end refuses the very next request, and a
        transfer, a revocation or a concurrent request with the same key that committed
        first wins). A refusal is :class:`IntentRefused`: the transaction rolls back, so
        it held the row only for the reads (the caller audits the refusal afterwards, in
        a write transaction of its own, as before). An earlier version decided twice --
        from plain reads first, then again under the row lock -- which cost seven more
        statements on every command and saved no write on a refusal (its audit record
        is one).
        """
        held = await lock_row_profile(session, lock_id)
        if held is None:
            raise NotFound("no such lock")
        lock, profile = held
        existing = await self._find(session, principal.id, key)
        access, decision = await self._access(
            session, principal, lock, command, path, now, existing
        )
        lock_key = self.keystore.open(LOCK_KEY, str(lock.id), lock.lock_key_enc)
        return Opened(LockTarget(lock, profile, lock_key), existing, access, decision)

    @staticmethod
    async def _access(
        session: AsyncSession,
        principal: Principal,
        lock: Lock,
        command: str,
        path: CommandPath,
        now: datetime,
        existing: Command | None,
    ) -> tuple[Access, Decision]:
        """The caller's access to ``lock`` and the decision allowing ``command``.

        A repeat of the same request (same lock, command and path) is checked as a
        replay: a one-time key that this very command spent does not refuse its own
        retry (anything else does). A key reused for another request is decided as new
        (and then refused as reused).
        """
        access = await effective_access(session, principal, lock, now, PATHS[path])
        action = ACTIONS[command]
        repeat = existing is not None and (existing.lock_id, existing.command, existing.path) == (
            lock.id,
            command,
            path.value,
        )
        try:
            if repeat:
                decision = access.require_replay(action)
            else:
                decision = access.require(action)
                if command == "unlock" and path is CommandPath.REMOTE:
                    # The lock's geofence may allow remote unlocks only from inside it: it
                    # narrows what sharing allowed, never widens it (geofence.service).
                    await check_remote_unlock(session, principal, lock, now)
        except (Forbidden, NotFound) as exc:  # AccessDenied is a Forbidden
            raise IntentRefused(exc, refusal_reason(exc, access.decide(action))) from None
        return access, decision

    @staticmethod
    async def _record_use(
        session: AsyncSession, ctx: audit.AuditContext, opened: Opened, row: Command
    ) -> None:
        """Count the share's use for the new command ``row`` (spend a one-time key), in
        the intent's transaction: a key spent meanwhile by a concurrent request refuses
        this one, and the whole intent rolls back (no frame leaves)."""
        try:
            await record_use(
                session,
                ctx,
                opened.access,
                opened.decision,
                action=ACTIONS[row.command],
                command_id=row.id,
            )
        except AccessDenied as exc:
            raise IntentRefused(exc, refusal_reason(exc, opened.decision)) from None

    @contextlib.asynccontextmanager
    async def _refusals_audited(
        self, ctx: audit.AuditContext, lock_id: uuid.UUID, command: str, path: CommandPath
    ) -> AsyncIterator[None]:
        """Around an intent's transaction: audit an :class:`IntentRefused` after the
        rollback, then raise its error."""
        try:
            yield
        except IntentRefused as refused:
            await self._denied(ctx, lock_id, command, refused.reason, path)
            raise refused.error from None

    @staticmethod
    async def _find(session: AsyncSession, user_id: uuid.UUID | None, key: str) -> Command | None:
        """The caller's command with this key (fresh: it may have been settled meanwhile)."""
        if user_id is None:  # only users hold grants, and keys are per user
            return None
        query = select(Command).where(Command.user_id == user_id, Command.idempotency_key == key)
        query = query.execution_options(populate_existing=True)
        return (await session.execute(query)).scalar_one_or_none()

    @staticmethod
    def _check_same(row: Command, lock: Lock, command: str, path: CommandPath) -> None:
        """A key names one request: the same command, lock and path."""
        if row.command != command or row.lock_id != lock.id or row.path != path.value:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used for another request", command_id=str(row.id)
            )

    async def _new_command(
        self,
        session: AsyncSession,
        ctx: audit.AuditContext,
        user_id: uuid.UUID,
        target: LockTarget,
        key: str,
        command: str,
        path: CommandPath,
        expires_at: datetime | None = None,
    ) -> Command:
        """Take a counter, seal the frame and add the ``pending`` row and its audit intent."""
        lock, profile = target.lock, target.profile
        seq = take_counter(lock, profile)
        stamp = int(self.clock())
        frame = messages.command(
            Cmd.OPERATION, OperationType.BOLT, OPS[command], seq, stamp, profile.layout
        )
        row = Command(
            id=new_id(),  # known now: the row and its audit record go in one flush
            lock_id=lock.id,
            user_id=user_id,
            idempotency_key=key,
            command=command,
            state=CommandState.PENDING.value,
            seq=seq,
            key_version=lock.key_version,
            frame=target.codec.seal(frame),
            frame_ts=stamp,
            attempts=1,
            path=path.value,
            expires_at=expires_at,
        )
        session.add(row)
        audit.stage(  # the row, the counter and the record: one flush, at commit
            session,
            ctx,
            "lock.command.intent",
            audit.AuditResult.OK,
            target=f"lock:{lock.id}",
            command=command,
            command_id=str(row.id),
            seq=seq,
            path=path.value,
        )
        return row

    def _prepared(self, row: Command, target: LockTarget, *, resend: bool) -> _Prepared:
        lock = target.lock
        return _Prepared(
            row.id,
            lock.id,
            DeviceId.parse(lock.device_id),
            row.command,
            OPS[row.command],
            row.seq,
            row.frame,
            target.codec,
            target.profile,
            resend=resend,
            path=row.path,
        )

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
        path = CommandPath.REMOTE
        async with (
            self._refusals_audited(ctx, lock_id, command, path),
            write_gate(self.sessionmaker),
            self.sessionmaker() as session,
            session.begin(),
        ):
            opened = await self._open(session, principal, lock_id, command, path, key, self.now())
            target = opened.target
            if opened.existing is not None:
                return await self._repeat(session, ctx, opened.existing, target, command)
            if self.bus is None:
                raise GatewayUnavailable("no gateway relay runs on this RAS node")
            assert principal.id is not None  # only a user's grants allow a command
            # The row is the caller's (a guest's command is the guest's), not the owner's.
            row = await self._new_command(session, ctx, principal.id, target, key, command, path)
            await self._record_use(session, ctx, opened, row)
            return self._prepared(row, target, resend=False)

    async def _repeat(
        self,
        session: AsyncSession,
        ctx: audit.AuditContext,
        row: Command,
        target: LockTarget,
        command: str,
    ) -> _Prepared | dict[str, Any]:
        lock = target.lock
        self._check_same(row, lock, command, CommandPath.REMOTE)
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
            path=row.path,
        )
        return self._prepared(row, target, resend=True)

    async def _denied(
        self,
        ctx: audit.AuditContext,
        lock_id: uuid.UUID,
        command: str,
        reason: str,
        path: CommandPath,
    ) -> None:
        """Audit a refused command (its own transaction: the intent's rolled back)."""
        async with write_gate(self.sessionmaker), self.sessionmaker() as session:
            await audit.record_and_commit(
                session,
                ctx,
                "lock.command",
                audit.AuditResult.DENIED,
                target=f"lock:{lock_id}",
                command=command,
                reason=reason,
                path=path.value,
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
        """Write the outcome (unless the command was settled meanwhile: :func:`apply`),
        audit it, and answer with the command's stored answer."""
        settled, gateway = result
        async with write_gate(self.sessionmaker), self.sessionmaker() as session, session.begin():
            held = await lock_row_command(session, prep.lock_id, prep.command_id)
            if held is None:
                raise NotFound("the lock was unbound while the command ran")
            lock, row = held
            if apply(row, lock, settled, gateway, _now()):
                if settled.state is CommandState.UNKNOWN:
                    row.reconcile_after = self.now() + timedelta(seconds=RECONCILE_GRACE_S)
                audit.stage(  # written by the outcome's commit, with the row
                    session,
                    ctx,
                    "lock.command",
                    audit_result(settled.state),
                    target=f"lock:{lock.id}",
                    command=row.command,
                    command_id=str(row.id),
                    state=settled.state.value,
                    reason=settled.reason,
                    gateway=gateway,
                    attempt=row.attempts,
                    path=row.path,
                )
                await feed_command_outcome(session, row, lock, gateway)  # user-visible feed
            else:
                logger.info(
                    "command %s was settled %s meanwhile; %s not written",
                    row.id,
                    row.state,
                    settled.state.value,
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
    path: str = CommandPath.REMOTE.value

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
    """Open the lock's answer and check it answers *this* frame (same op and sequence).

    An answer that does not verify proves nothing (state ``unknown``, reason
    ``bad-answer``). A REPLAY refusal of bytes the lock may have seen before (a re-send,
    or any nearby answer: the client may have written the frame twice) means the lock
    accepted them once: ``ok``, confirmed ``replay``.
    """
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
        seen_before = prep.resend or prep.path == CommandPath.NEARBY.value
        if seen_before and reason is ReasonCode.REPLAY:
            # These bytes exist once, made by us: the lock accepted them the first time.
            return Settled(CommandState.OK, None, None, "", confirmed=CONFIRMED_REPLAY)
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
    return Settled(CommandState.OK, None, None, "", status=status, confirmed=CONFIRMED_ANSWER)
