"""DDMS registration: the two-stage key negotiation, RAS side, driven by a relay.

ISO/IEC 14543-5-104 clause 8 a/b, as :mod:`heslock.protocol.keyneg` implements it. The
RAS holds both keys; a *relay* (the RAC over BLE, or a BGW over XMPP) carries opaque
frames between the RAS and the lock and learns nothing. This module keeps the RAS's
side of one exchange in the ``registrations`` table (keys sealed by the keystore and
bound to the row), so any RAS node can continue what another began.

The relay's loop (HTTP: ``/v1/registrations``; the XMPP side calls the same functions)::

    start      -> frames F                 send each frame of F to the lock, in order,
    answer(a)  -> next frames F'           and hand every answer back; stop when done

    phase       frames handed out                 answer expected
    time-get    TIME/GET under the old key        its response (the lock's clock)
    time-set    TIME/SET echoing that clock       its response      -> started
    started     KEY/PART_1, KEY/PART_2            part-1 ack (old key), proof (new key)
    part1-acked -                                 proof
    proven      KEY/COMMIT (next counter)         commit answer (new key) -> committed
    committed   -  (the lock row exists)          -
    expired     -  (stage a timed out)            -
    failed      -  (the lock refused under the old key: it rolled back) -

TIME sync (optional, ``time_sync=True``) comes first for a lock whose clock is wrong:
acceptance rule 6 takes a TIME/GET whatever its timestamp and a TIME/SET only if it
echoes the clock of that GET's answer. Its frames are op-layout commands under the
factory key, so they use (and advance) ``devices.factory_counter``.

Rules (keyneg's docstring says why):

- Idempotent. Starting again while a registration of the same device by the same user
  is live returns that registration (fresh frames for its phase). An answer identical
  to the last one accepted returns the same result (``last_answer_sha256``). ``fresh
  frames`` re-issues the current phase's frames; in ``proven`` that is a new COMMIT with
  the next counter, which a lock that already committed answers again.
- Expiring. The TIME and stage-a phases expire ``NEGOTIATION_TIMEOUT_S`` after they
  began; ``proven`` never expires (a COMMIT may have reached the lock).
- An ERROR answer under the *old* key means the lock refused or rolled back: the
  registration fails (``failure`` = the reason) and may be started again. An ERROR under
  the *new* key (after a commit: REPLAY of a stale retry, STALE) changes nothing; the
  answer says ``refused`` and carries a fresh COMMIT.
- A frame that opens under neither key is refused (422 ``frame-refused``), audited, and
  changes nothing.
- Completed, expired or failed registrations keep no key: the envelopes are wiped.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, NoReturn

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.protocol import (
    NEGOTIATION_TIMEOUT_S,
    RESPONSE_BIT,
    Cmd,
    DeviceId,
    Direction,
    FrameCodec,
    FrameRejected,
    LockRefused,
    NegotiationError,
    OpBody,
    Profile,
    RasKeyNegotiation,
    RasNegotiationRecord,
    RasPhase,
    ReasonCode,
    TimeOp,
    TimeType,
    decode_body,
)
from heslock.protocol import messages as msg
from heslock.protocol.frame import MAX_COUNTER, MAX_SEQ_BASE
from heslock.ras.keystore import (
    FACTORY_KEY,
    LOCK_KEY,
    REGISTRATION_NEW_KEY,
    REGISTRATION_OLD_KEY,
    Keystore,
)
from heslock.ras.services import audit
from heslock.ras.services.access import Action, Principal, Resource, ResourceKind, authorize
from heslock.ras.services.ddms.errors import DeviceUnavailable, FrameRefused
from heslock.ras.services.errors import Conflict, NotFound
from heslock.ras.store.base import new_id
from heslock.ras.store.models import Device, DeviceStatus, Lock, Registration

log = logging.getLogger(__name__)

#: Registrations start every key at this version (the lock forgot any earlier key at
#: its factory reset); rotations use ``next_version`` of the current one.
FIRST_VERSION: Final = 1
#: Longest lock name (the column's size).
MAX_LOCK_NAME: Final = 64
#: A relayed answer is one frame: 16 (base) or 20 (secure) bytes; anything longer is junk.
MAX_ANSWER_BYTES: Final = 64


class RegPhase(StrEnum):
    TIME_GET = "time-get"
    TIME_SET = "time-set"
    STARTED = RasPhase.STARTED.value
    PART1_ACKED = RasPhase.PART1_ACKED.value
    PROVEN = RasPhase.PROVEN.value
    COMMITTED = RasPhase.COMMITTED.value
    EXPIRED = RasPhase.EXPIRED.value
    FAILED = "failed"


class RegKind(StrEnum):
    REGISTER = "register"
    ROTATE = "rotate"


#: Phases that expire at ``expires_at``.
EXPIRING: Final = frozenset(
    {RegPhase.TIME_GET, RegPhase.TIME_SET, RegPhase.STARTED, RegPhase.PART1_ACKED}
)
FINAL: Final = frozenset({RegPhase.COMMITTED, RegPhase.EXPIRED, RegPhase.FAILED})


def is_live(reg: Registration, now: int) -> bool:
    """True while the exchange can still complete."""
    phase = RegPhase(reg.phase)
    if phase in FINAL:
        return False
    return phase not in EXPIRING or now < int(reg.expires_at.timestamp())


@dataclass(frozen=True)
class Outcome:
    """What the relay is told after each step (no key; frames are ciphertext)."""

    registration_id: uuid.UUID
    kind: str
    device_id: str
    phase: str
    version: int
    lock_id: uuid.UUID | None
    expires_at: datetime | None
    frames: tuple[bytes, ...] = ()
    failure: str | None = None
    refused: str | None = None
    created: bool = field(default=False, compare=False)

    @property
    def done(self) -> bool:
        return self.phase in FINAL

    def as_json(self) -> dict[str, Any]:
        return {
            "registration_id": str(self.registration_id),
            "kind": self.kind,
            "device_id": self.device_id,
            "phase": self.phase,
            "version": self.version,
            "lock_id": str(self.lock_id) if self.lock_id else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "frames": [base64.b64encode(f).decode() for f in self.frames],
            "failure": self.failure,
            "refused": self.refused,
            "done": self.done,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            uuid.UUID(data["registration_id"]),
            data["kind"],
            data["device_id"],
            data["phase"],
            data["version"],
            uuid.UUID(data["lock_id"]) if data["lock_id"] else None,
            datetime.fromisoformat(data["expires_at"]) if data["expires_at"] else None,
            tuple(base64.b64decode(f) for f in data["frames"]),
            data["failure"],
            data["refused"],
        )


def _at(now: int) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def outcome(reg: Registration, frames: tuple[bytes, ...] = (), **extra: Any) -> Outcome:
    phase = RegPhase(reg.phase)
    return Outcome(
        reg.id,
        reg.kind,
        reg.device_id,
        phase.value,
        reg.version,
        reg.lock_id,
        reg.expires_at if phase in EXPIRING else None,
        frames,
        reg.failure,
        **extra,
    )


# ------------------------------------------------------------------ keys and records


def _keys(keystore: Keystore, reg: Registration) -> tuple[bytes, bytes]:
    rid = str(reg.id)
    return (
        keystore.open(REGISTRATION_OLD_KEY, rid, reg.old_key_enc),
        keystore.open(REGISTRATION_NEW_KEY, rid, reg.new_key_enc),
    )


def _negotiation(keystore: Keystore, reg: Registration) -> RasKeyNegotiation:
    old, new = _keys(keystore, reg)
    return RasKeyNegotiation(
        RasNegotiationRecord(
            reg.device_id,
            Profile(reg.profile),
            old,
            new,
            reg.version,
            RasPhase(reg.phase),
            int(reg.started_at.timestamp()),
            int(reg.expires_at.timestamp()),
            reg.commit_counter,
        )
    )


def _store(reg: Registration, neg: RasKeyNegotiation, now: int) -> None:
    reg.phase = RegPhase(neg.phase.value).value
    reg.commit_counter = neg.record.commit_counter
    reg.updated_at = _at(now)


def wipe_keys(reg: Registration) -> None:
    """A finished exchange keeps no key (the lock row holds the one that matters)."""
    reg.old_key_enc = b""
    reg.new_key_enc = b""


def _target(reg: Registration) -> str:
    return f"registration:{reg.id}"


async def _audit(
    session: AsyncSession,
    ctx: audit.AuditContext,
    action: str,
    reg: Registration,
    result: audit.AuditResult = audit.AuditResult.OK,
    **details: Any,
) -> None:
    await audit.record(
        session,
        ctx,
        action,
        result,
        target=_target(reg),
        device=reg.device_id,
        kind=reg.kind,
        phase=reg.phase,
        **details,
    )


# ------------------------------------------------------------------ TIME sync


def _next_factory_counter(device: Device) -> int:
    limit = MAX_SEQ_BASE if device.profile == Profile.BASE.value else MAX_COUNTER
    device.factory_counter = device.factory_counter % limit + 1
    return device.factory_counter


def _time_frame(
    old_key: bytes, profile: Profile, op: TimeOp, seq: int, now: int, clock: int
) -> bytes:
    args = msg.u32(clock) if op is TimeOp.SET else b""
    frame = msg.command(Cmd.TIME, TimeType.CLOCK, op, seq, now, profile.layout, args)
    return FrameCodec(old_key, profile).seal(frame)


async def _device(session: AsyncSession, device_id: str) -> Device:
    device = await session.get(Device, device_id, with_for_update=True)
    if device is None:  # pragma: no cover - registrations cascade with their device
        raise NotFound("no such device")
    return device


# ------------------------------------------------------------------ start


async def _existing(session: AsyncSession, device_id: str) -> Registration | None:
    query = select(Registration).where(Registration.device_id == device_id).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def begin(
    session: AsyncSession,
    keystore: Keystore,
    ctx: audit.AuditContext,
    *,
    user_id: uuid.UUID,
    device: Device,
    kind: RegKind,
    old_key: bytes,
    version: int,
    now: int,
    lock: Lock | None = None,
    name: str | None = None,
    time_sync: bool = False,
) -> Outcome:
    """Create a registration (or rotation) row and return its first frames.

    A live exchange of the same kind by the same user is returned instead (idempotent);
    a live one by anyone else is refused; a finished one is replaced.
    """
    existing = await _existing(session, device.device_id)
    if existing is not None:
        if is_live(existing, now):
            if existing.user_id == user_id and existing.kind == kind:
                return await fresh_frames_for(session, keystore, ctx, existing, now)
            raise DeviceUnavailable(
                "another registration of this device is in progress",
                reason="registration-in-progress",
            )
        await session.delete(existing)
        await session.flush()
    profile = Profile(device.profile)
    neg = RasKeyNegotiation.start(DeviceId(device.device_id), profile, old_key, version, now)
    reg_id = new_id()
    rid = str(reg_id)
    reg = Registration(
        id=reg_id,
        device_id=device.device_id,
        user_id=user_id,
        kind=kind.value,
        lock_name=name,
        lock_id=lock.id if lock is not None else None,
        phase=RegPhase.STARTED.value,
        version=version,
        profile=profile.value,
        old_key_enc=keystore.seal(REGISTRATION_OLD_KEY, rid, old_key),
        new_key_enc=keystore.seal(REGISTRATION_NEW_KEY, rid, neg.record.new_key),
        started_at=_at(now),
        expires_at=_at(now + NEGOTIATION_TIMEOUT_S),
        updated_at=_at(now),
        commit_counter=0,
    )
    if time_sync:
        reg.phase = RegPhase.TIME_GET.value
        reg.time_seq = _next_factory_counter(device)
        frames: tuple[bytes, ...] = (
            _time_frame(old_key, profile, TimeOp.GET, reg.time_seq, now, 0),
        )
    else:
        frames = neg.stage_a_frames(now)
    session.add(reg)
    await session.flush()
    await _audit(session, ctx, f"{kind.value}.start", reg, version=version, time_sync=time_sync)
    log.info("DDMS %s %s of device %s started", kind.value, reg.id, device.device_id)
    return outcome(reg, frames, created=True)


async def start_registration(
    session: AsyncSession,
    keystore: Keystore,
    principal: Principal,
    ctx: audit.AuditContext,
    device_id: DeviceId,
    name: str,
    now: int,
    *,
    time_sync: bool = False,
) -> Outcome:
    """Start binding ``device_id`` to the caller under the name ``name``."""
    authorize(
        principal,
        Action.REGISTRATION_CREATE,
        Resource(ResourceKind.REGISTRATION, owner_id=principal.id),
    )
    assert principal.id is not None  # owner role implies a user id
    device = await session.get(Device, device_id.hex, with_for_update=True)
    if device is None:
        raise NotFound("no such device")
    if device.status == DeviceStatus.REVOKED:
        raise DeviceUnavailable("the device was revoked", reason="revoked")
    if device.status == DeviceStatus.BOUND:
        raise DeviceUnavailable("the device is bound", reason="already-bound")
    factory_key = keystore.open(FACTORY_KEY, device.device_id, device.factory_key_enc)
    return await begin(
        session,
        keystore,
        ctx,
        user_id=principal.id,
        device=device,
        kind=RegKind.REGISTER,
        old_key=factory_key,
        version=FIRST_VERSION,
        now=now,
        name=name,
        time_sync=time_sync,
    )


# ------------------------------------------------------------------ reading and frames


async def _load(
    session: AsyncSession, principal: Principal, reg_id: uuid.UUID, action: Action
) -> Registration:
    reg = await session.get(Registration, reg_id, with_for_update=True)
    if reg is None:
        raise NotFound("no such registration")
    authorize(principal, action, Resource(ResourceKind.REGISTRATION, str(reg.id), reg.user_id))
    return reg


async def _expire_if_due(
    session: AsyncSession, ctx: audit.AuditContext, reg: Registration, now: int
) -> bool:
    if RegPhase(reg.phase) in EXPIRING and now >= int(reg.expires_at.timestamp()):
        reg.phase = RegPhase.EXPIRED.value
        reg.updated_at = _at(now)
        wipe_keys(reg)
        await _audit(session, ctx, f"{reg.kind}.expire", reg)
        log.info("DDMS registration %s expired", reg.id)
        return True
    return False


async def get_registration(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    reg_id: uuid.UUID,
    now: int,
) -> Outcome:
    reg = await _load(session, principal, reg_id, Action.REGISTRATION_READ)
    await _expire_if_due(session, ctx, reg, now)
    return outcome(reg)


async def fresh_frames_for(
    session: AsyncSession,
    keystore: Keystore,
    ctx: audit.AuditContext,
    reg: Registration,
    now: int,
) -> Outcome:
    """The frames of the current phase again, stamped ``now`` (see module docstring)."""
    if await _expire_if_due(session, ctx, reg, now):
        return outcome(reg)
    phase = RegPhase(reg.phase)
    if phase in FINAL:
        return outcome(reg)
    if phase in (RegPhase.TIME_GET, RegPhase.TIME_SET):
        # A lost TIME/SET answer may mean the SET ran (its challenge is spent): ask again.
        device = await _device(session, reg.device_id)
        old, _ = _keys(keystore, reg)
        reg.phase = RegPhase.TIME_GET.value
        reg.time_seq = _next_factory_counter(device)
        reg.updated_at = _at(now)
        profile = Profile(reg.profile)
        return outcome(reg, (_time_frame(old, profile, TimeOp.GET, reg.time_seq, now, 0),))
    neg = _negotiation(keystore, reg)
    if phase is RegPhase.PROVEN:
        frames: tuple[bytes, ...] = (neg.commit_frame(now),)
        _store(reg, neg, now)
        await _audit(session, ctx, f"{reg.kind}.commit_retry", reg, counter=reg.commit_counter)
    else:
        frames = neg.stage_a_frames(now)
    return outcome(reg, frames)


async def fresh_frames(
    session: AsyncSession,
    keystore: Keystore,
    principal: Principal,
    ctx: audit.AuditContext,
    reg_id: uuid.UUID,
    now: int,
) -> Outcome:
    reg = await _load(session, principal, reg_id, Action.REGISTRATION_DRIVE)
    return await fresh_frames_for(session, keystore, ctx, reg, now)


# ------------------------------------------------------------------ answers


async def submit_answer(
    session: AsyncSession,
    keystore: Keystore,
    principal: Principal,
    ctx: audit.AuditContext,
    reg_id: uuid.UUID,
    wire: bytes,
    now: int,
) -> Outcome:
    """Verify one answer the relay got from the lock and advance (module docstring)."""
    reg = await _load(session, principal, reg_id, Action.REGISTRATION_DRIVE)
    digest = hashlib.sha256(wire).digest()
    if reg.last_answer_sha256 == digest and reg.last_result is not None:
        return Outcome.from_json(reg.last_result)
    if await _expire_if_due(session, ctx, reg, now) or RegPhase(reg.phase) in FINAL:
        return outcome(reg)
    if len(wire) > MAX_ANSWER_BYTES:
        await _refuse(session, ctx, reg, "oversized")
    if RegPhase(reg.phase) in (RegPhase.TIME_GET, RegPhase.TIME_SET):
        result = await _time_answer(session, keystore, ctx, reg, wire, now)
    else:
        result = await _key_answer(session, keystore, ctx, reg, wire, now)
    reg.last_answer_sha256 = digest
    reg.last_result = result.as_json()
    reg.updated_at = _at(now)
    await session.flush()
    return result


async def _refuse(
    session: AsyncSession, ctx: audit.AuditContext, reg: Registration, why: str
) -> NoReturn:
    """Audit (committed now) and refuse an answer that is not this lock's. Called before
    anything of the registration changed, so the commit carries only the audit record."""
    await audit.record_and_commit(
        session,
        ctx,
        f"{reg.kind}.answer",
        audit.AuditResult.DENIED,
        target=_target(reg),
        why=why,
    )
    raise FrameRefused(f"the answer is not a frame of this lock for this exchange ({why})")


async def _fail(
    session: AsyncSession, ctx: audit.AuditContext, reg: Registration, reason: ReasonCode, now: int
) -> Outcome:
    reg.phase = RegPhase.FAILED.value
    reg.failure = reason.name
    reg.updated_at = _at(now)
    wipe_keys(reg)
    await _audit(
        session, ctx, f"{reg.kind}.fail", reg, audit.AuditResult.FAILED, lock_reason=reason.name
    )
    log.info("DDMS registration %s failed: the lock refused (%s)", reg.id, reason.name)
    return outcome(reg)


async def _time_answer(
    session: AsyncSession,
    keystore: Keystore,
    ctx: audit.AuditContext,
    reg: Registration,
    wire: bytes,
    now: int,
) -> Outcome:
    profile = Profile(reg.profile)
    old, _ = _keys(keystore, reg)
    try:
        frame = FrameCodec(old, profile).open(wire)
        body = decode_body(frame, Direction.FROM_LOCK, profile)
    except FrameRejected as exc:
        await _refuse(session, ctx, reg, exc.reason.name)
    if frame.group == Cmd.ERROR:
        return await _fail(session, ctx, reg, ReasonCode(frame.type), now)
    expected = TimeOp.GET if reg.phase == RegPhase.TIME_GET else TimeOp.SET
    if not (
        frame.cmd == Cmd.TIME | RESPONSE_BIT
        and frame.type == TimeType.CLOCK
        and isinstance(body, OpBody)
        and body.op == expected
        and body.seq == reg.time_seq
    ):
        await _refuse(session, ctx, reg, "not the expected TIME answer")
    device = await _device(session, reg.device_id)
    if expected is TimeOp.GET:
        clock = msg.read_u32(body.args)
        reg.phase = RegPhase.TIME_SET.value
        reg.time_seq = _next_factory_counter(device)
        return outcome(reg, (_time_frame(old, profile, TimeOp.SET, reg.time_seq, now, clock),))
    # The lock's clock now reads (about) ours: stage a starts, and its timeout with it.
    reg.phase = RegPhase.STARTED.value
    reg.time_seq = None
    reg.started_at = _at(now)
    reg.expires_at = _at(now + NEGOTIATION_TIMEOUT_S)
    await _audit(session, ctx, f"{reg.kind}.time_sync", reg)
    return outcome(reg, _negotiation(keystore, reg).stage_a_frames(now))


def _error_under_new_key(new_key: bytes, profile: Profile, wire: bytes) -> ReasonCode | None:
    try:
        frame = FrameCodec(new_key, profile).open(wire)
    except FrameRejected:
        return None
    return ReasonCode(frame.type) if frame.group == Cmd.ERROR else None


async def _key_answer(
    session: AsyncSession,
    keystore: Keystore,
    ctx: audit.AuditContext,
    reg: Registration,
    wire: bytes,
    now: int,
) -> Outcome:
    neg = _negotiation(keystore, reg)
    refused = _error_under_new_key(neg.record.new_key, neg.record.profile, wire)
    if refused is not None:
        # The lock holds the new key (it committed) and refused a stale retry: nothing
        # is lost; hand out a fresh COMMIT with the next counter.
        frames: tuple[bytes, ...] = ()
        if neg.phase is RasPhase.PROVEN:
            frames = (neg.commit_frame(now),)
            _store(reg, neg, now)
        await _audit(session, ctx, f"{reg.kind}.answer", reg, refused=refused.name)
        return outcome(reg, frames, refused=refused.name)
    try:
        phase = neg.receive(wire, now)
    except LockRefused as exc:
        return await _fail(session, ctx, reg, exc.reason, now)
    except FrameRejected as exc:
        await _refuse(session, ctx, reg, exc.reason.name)
    except NegotiationError as exc:
        raise Conflict(f"unexpected answer in phase {reg.phase}: {exc}") from None
    if phase is RasPhase.COMMITTED:
        _store(reg, neg, now)
        await _complete(session, keystore, ctx, reg, neg)
        return outcome(reg)
    frames = (neg.commit_frame(now),) if phase is RasPhase.PROVEN else ()
    _store(reg, neg, now)
    await _audit(session, ctx, f"{reg.kind}.answer", reg)
    return outcome(reg, frames)


async def _complete(
    session: AsyncSession,
    keystore: Keystore,
    ctx: audit.AuditContext,
    reg: Registration,
    neg: RasKeyNegotiation,
) -> None:
    """Stage b done: bind the lock (registration) or replace its key (rotation)."""
    record = neg.record
    device = await _device(session, reg.device_id)
    if reg.kind == RegKind.ROTATE:
        lock = await session.get(Lock, reg.lock_id, with_for_update=True)
        if lock is None:  # pragma: no cover - a rotation cascades with its lock
            raise NotFound("the lock was unbound during the rotation")
        lock.lock_key_enc = keystore.seal(LOCK_KEY, str(lock.id), record.new_key)
        lock.key_version = record.version
        lock.next_counter = record.next_counter
    else:
        lock_id = new_id()
        lock = Lock(
            id=lock_id,
            device_id=device.device_id,
            owner_id=reg.user_id,
            name=reg.lock_name or device.device_id,
            key_version=record.version,
            lock_key_enc=keystore.seal(LOCK_KEY, str(lock_id), record.new_key),
            next_counter=record.next_counter,
        )
        session.add(lock)
        device.status = DeviceStatus.BOUND.value
        await session.flush()
        reg.lock_id = lock.id
    wipe_keys(reg)
    await _audit(session, ctx, f"{reg.kind}.commit", reg, lock=str(lock.id), version=record.version)
    log.info(
        "DDMS %s %s committed: lock %s, key version %d", reg.kind, reg.id, lock.id, record.version
    )
