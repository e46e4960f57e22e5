"""Remote control over HTTPS: commands to a lock, and the lock's events.

``POST /v1/locks/{id}/commands`` (``unlock``, ``lock``, ``status``) needs an
``Idempotency-Key`` header: a repeated request with the same key gets the first answer
and never a second actuation (:mod:`heslock.ras.services.commands.service`). Errors are
problem details with the command's ``command_id``, ``state`` and ``reason``: 503
gateway-unavailable, 504 lock-unreachable, 502 gateway-failure, 409 lock-refused (reason:
the lock's ReasonCode name), 404 (no relation to the lock), 403 ``forbidden`` or
``access-denied`` (a share that does not allow it now; ``reason`` says why). The owner
and the holders of a share in force by that path may command a lock (docs/security.md
section 7); the command is theirs (audited with them as the actor).

``GET /v1/locks/{id}/events`` (the owner, or a share with ``view_log`` in force) lists
the lock's verified events, newest first, ``limit`` per page; ``before`` (the smallest
id of the previous page) pages further back.

Nearby mode (:mod:`heslock.ras.services.commands.nearby`): ``POST /v1/locks/{id}/frames``
(``Idempotency-Key``) answers 201 with a frame sealed for the client to write to the lock
over its own BLE link, usable until ``expires_at``; ``POST
/v1/locks/{id}/frames/{command_id}/answer`` takes the lock's answer (base64), verifies
it like a remote answer and answers like a remote command (``CommandView`` or the same
problems; 422 ``frame-refused`` for bytes that are not this lock's answer).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep, StateDep
from heslock.ras.api.routers.devices import RuntimeDep
from heslock.ras.services.commands.events import list_events
from heslock.ras.services.commands.nearby import NearbyCommands
from heslock.ras.services.commands.service import CommandService, check_idempotency_key
from heslock.ras.services.errors import InvalidInput, NotFound, ServiceError
from heslock.ras.services.sharing.policy import LockAction, Path
from heslock.ras.services.sharing.resolver import effective_access
from heslock.ras.store.engine import inline_reads
from heslock.ras.store.models import Lock, LockEventRecord

router = APIRouter(prefix="/v1", tags=["commands"], dependencies=BEARER)

#: Events per page by default, and at most (bounds one response).
DEFAULT_EVENTS_PAGE: Final = 50
MAX_EVENTS_PAGE: Final = 500


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: Literal["unlock", "lock", "status"]


class CommandView(BaseModel):
    """The lock's answer: its state after the command (``confirmed``: how we know)."""

    command_id: uuid.UUID
    lock_id: uuid.UUID
    command: str
    state: str
    confirmed: str | None
    bolt: str | None
    door: str | None
    battery: int | None
    flags: int | None
    finished_at: datetime


class NearbyFrameView(BaseModel):
    """A frame sealed for the client to write to the lock itself (nearby mode)."""

    command_id: uuid.UUID
    lock_id: uuid.UUID
    device_id: str
    command: str
    frame: str = Field(description="the sealed frame, base64: write it to the lock as is")
    expires_at: datetime


class NearbyAnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frame: str = Field(min_length=1, max_length=128, description="the lock's answer, base64")


def decode_frame(text: str) -> bytes:
    """Strict base64 (RFC 4648 section 4): anything else is a clear 422, not a bad frame."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("frame is not base64") from None


class EventView(BaseModel):
    id: int
    kind: str
    detail: int
    counter: int
    lock_time: datetime
    received_at: datetime
    gateway: str
    bolt_state: int | None
    door_state: int | None
    battery: int | None

    @classmethod
    def of(cls, event: LockEventRecord) -> EventView:
        return cls(
            id=event.id,
            kind=event.kind,
            detail=event.detail,
            counter=event.counter,
            lock_time=event.lock_time,
            received_at=event.received_at,
            gateway=event.gateway,
            bolt_state=event.bolt_state,
            door_state=event.door_state,
            battery=event.battery,
        )


async def end_request_transaction(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """End the request's own transaction (authentication read through it) before the
    command service runs its own short transactions: held across the relay it kept a
    pooled connection per command in flight, and at pool size + overflow concurrent
    commands every connection was held by a request waiting for another one (a deadlock
    until the pool timeout; docs/benchmarks.md). It only read: ending it is no I/O, so it
    runs inline (:func:`heslock.ras.store.engine.inline_reads`)."""
    with inline_reads(sessions):
        await session.commit()
        await session.close()


@router.post("/locks/{lock_id}/commands", summary="Operate a lock (unlock, lock, status)")
async def post_command(
    lock_id: uuid.UUID,
    body: CommandRequest,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    ctx: AuditDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> CommandView:
    key = check_idempotency_key(idempotency_key)
    await end_request_transaction(session, state.sessionmaker)
    service = CommandService(
        state.sessionmaker, state.keystore, request.app.state.bus, request.app.state.ddms.clock
    )
    # /metrics: every command by operation and result (the command's state, or the
    # problem code when it never got one, e.g. not-found or forbidden).
    result = "internal"
    try:
        answer: dict[str, Any] = await service.run(principal, ctx, lock_id, body.command, key)
        result = str(answer.get("state", "ok"))
        return CommandView.model_validate(answer)
    except ServiceError as exc:
        result = str(exc.extensions.get("state") or exc.code)
        raise
    finally:
        state.metrics.lock_commands.labels(body.command, result).inc()


@router.post(
    "/locks/{lock_id}/frames",
    status_code=201,
    summary="Seal a command frame for a client next to the lock (nearby mode)",
)
async def post_nearby_frame(
    lock_id: uuid.UUID,
    body: CommandRequest,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    ctx: AuditDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> NearbyFrameView:
    key = check_idempotency_key(idempotency_key)
    await end_request_transaction(session, state.sessionmaker)
    service = NearbyCommands(state.sessionmaker, state.keystore, None, request.app.state.ddms.clock)
    view = await service.issue(principal, ctx, lock_id, body.command, key)
    return NearbyFrameView.model_validate(view)


@router.post(
    "/locks/{lock_id}/frames/{command_id}/answer",
    summary="The lock's answer to a nearby frame: verified, the command settled",
)
async def post_nearby_answer(
    lock_id: uuid.UUID,
    command_id: uuid.UUID,
    body: NearbyAnswerRequest,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    ctx: AuditDep,
) -> CommandView:
    wire = decode_frame(body.frame)
    await end_request_transaction(session, state.sessionmaker)
    service = NearbyCommands(state.sessionmaker, state.keystore, None, request.app.state.ddms.clock)
    answer = await service.answer(principal, ctx, lock_id, command_id, wire)
    return CommandView.model_validate(answer)


@router.get("/locks/{lock_id}/events", summary="A lock's events, newest first")
async def get_events(
    lock_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE)] = DEFAULT_EVENTS_PAGE,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> list[EventView]:
    lock = await session.get(Lock, lock_id)
    if lock is None:
        raise NotFound("no such lock")
    # Who came and went when: the owner, and shares with view_log in force now.
    now = datetime.fromtimestamp(runtime.clock(), UTC)
    (await effective_access(session, principal, lock, now, Path.REMOTE)).require(LockAction.EVENTS)
    return [EventView.of(e) for e in await list_events(session, lock.id, limit, before)]
