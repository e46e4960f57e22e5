"""Remote control over HTTPS: commands to a lock, and the lock's events.

``POST /v1/locks/{id}/commands`` (``unlock``, ``lock``, ``status``) needs an
``Idempotency-Key`` header: a repeated request with the same key gets the first answer
and never a second actuation (:mod:`heslock.ras.services.commands.service`). Errors are
problem details with the command's ``command_id``, ``state`` and ``reason``: 503
gateway-unavailable, 504 lock-unreachable, 502 gateway-failure, 409 lock-refused (reason:
the lock's ReasonCode name), 403/404 not allowed.

``GET /v1/locks/{id}/events`` lists the lock's verified events, newest first, ``limit``
per page; ``before`` (the smallest id of the previous page) pages further back.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, ConfigDict

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep, StateDep
from heslock.ras.services.access import Action, Resource, ResourceKind, authorize
from heslock.ras.services.commands.events import list_events
from heslock.ras.services.commands.service import CommandService, check_idempotency_key
from heslock.ras.services.errors import NotFound, ServiceError
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


@router.post("/locks/{lock_id}/commands", summary="Operate a lock (unlock, lock, status)")
async def post_command(
    lock_id: uuid.UUID,
    body: CommandRequest,
    request: Request,
    principal: PrincipalDep,
    state: StateDep,
    ctx: AuditDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> CommandView:
    key = check_idempotency_key(idempotency_key)
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


@router.get("/locks/{lock_id}/events", summary="A lock's events, newest first")
async def get_events(
    lock_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE)] = DEFAULT_EVENTS_PAGE,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> list[EventView]:
    lock = await session.get(Lock, lock_id)
    if lock is None:
        raise NotFound("no such lock")
    authorize(
        principal, Action.LOCK_EVENTS_READ, Resource(ResourceKind.LOCK, str(lock.id), lock.owner_id)
    )
    return [EventView.of(e) for e in await list_events(session, lock.id, limit, before)]
