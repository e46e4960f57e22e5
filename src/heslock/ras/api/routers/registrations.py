"""DDMS registrations over HTTPS: the key negotiation as an API a relay drives.

Two relays. A nearby client (``"via": "relay"``, the default: a RAC over BLE) sends every
frame of ``frames`` to the lock, in order, and posts each answer to ``/answers``; each
reply carries the next ``frames`` until ``done``. ``POST .../frames`` hands out the current
phase's frames again (a fresh COMMIT with the next counter once the lock has proved the
key). Frames are base64 (RFC 4648 section 4).

Or the RAS carries the frames itself through a gateway that sees the lock (``"via":
"gateway"``, optionally naming the caller's ``gateway_id``) and answers when the exchange
has ended; ``POST .../relay`` drives (resumes) an existing registration the same way
(:mod:`heslock.ras.services.ddms.relayed`: the answers, the problems, one driver at a
time). While the RAS drives a registration, the client routes answer 409
``registration-in-progress``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from fastapi import APIRouter, Body, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep, StateDep
from heslock.ras.api.routers.devices import RuntimeDep
from heslock.ras.services.access import Principal
from heslock.ras.services.audit import AuditContext
from heslock.ras.services.ddms import registration
from heslock.ras.services.ddms.devices import parse_device_id
from heslock.ras.services.ddms.relayed import DRIVES, RelayedRegistration
from heslock.ras.services.errors import InvalidInput

router = APIRouter(prefix="/v1", tags=["registrations"], dependencies=BEARER)


def check_name(value: str) -> str:
    value = value.strip()
    if not value or not value.isprintable():
        raise ValueError("a name is printable text")
    return value


#: A lock's or gateway's name: 1..64 printable characters, surrounding blanks dropped.
Name = Annotated[
    str, Field(min_length=1, max_length=registration.MAX_LOCK_NAME), AfterValidator(check_name)
]


class RegistrationStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(max_length=17)
    name: Name
    time_sync: bool = False
    via: Literal["relay", "gateway"] = Field(
        "relay",
        description="who carries the frames: a nearby client (relay) or the RAS (gateway)",
    )
    gateway_id: uuid.UUID | None = Field(
        None, description='with "via": "gateway": the caller\'s gateway to use'
    )

    @model_validator(mode="after")
    def _gateway_only_via_gateway(self) -> Self:
        if self.gateway_id is not None and self.via != "gateway":
            raise ValueError('gateway_id goes with "via": "gateway"')
        return self


class RelayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gateway_id: uuid.UUID | None = Field(
        None, description="the caller's gateway to use; else the best one that sees the lock"
    )


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frame: str = Field(min_length=1, max_length=128, description="the lock's answer, base64")


class RegistrationView(BaseModel):
    registration_id: uuid.UUID
    kind: str
    device_id: str
    phase: str
    version: int
    lock_id: uuid.UUID | None
    expires_at: datetime | None
    frames: list[str]
    failure: str | None
    refused: str | None
    done: bool

    @classmethod
    def of(cls, outcome: registration.Outcome) -> RegistrationView:
        return cls.model_validate(outcome.as_json())


def decode_frame(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("frame is not base64") from None


def _relayed(request: Request, state: StateDep, runtime: RuntimeDep) -> RelayedRegistration:
    return RelayedRegistration(
        state.sessionmaker, state.keystore, request.app.state.bus, runtime.clock
    )


async def _not_driven(
    session: AsyncSession,
    principal: Principal,
    ctx: AuditContext,
    registration_id: uuid.UUID,
    now: int,
) -> None:
    """409 ``registration-in-progress`` while the RAS drives this registration: a client's
    frames must not interleave with the gateway's. Authorised first (others get 404)."""
    if registration_id in DRIVES:
        await registration.get_registration(session, principal, ctx, registration_id, now)
        DRIVES.check(registration_id)


async def _end_unit_of_work(session: AsyncSession) -> None:
    """Before the RAS drives a registration: end the request's own transaction (the
    caller's authentication may have opened one), so that none stays open, nor holds a
    pooled connection, while frames are out; each step commits on its own."""
    await session.commit()


@router.post(
    "/registrations",
    status_code=201,
    summary='Start registering a device (the RAS drives it with "via": "gateway")',
)
async def start(
    body: RegistrationStart,
    request: Request,
    response: Response,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> RegistrationView:
    device_id = parse_device_id(body.device_id)
    if body.via == "gateway":
        await _end_unit_of_work(session)
        outcome = await _relayed(request, state, runtime).start(
            principal,
            ctx,
            device_id,
            body.name,
            time_sync=body.time_sync,
            gateway_id=body.gateway_id,
        )
    else:
        outcome = await registration.start_registration(
            session,
            state.keystore,
            principal,
            ctx,
            device_id,
            body.name,
            runtime.now(),
            time_sync=body.time_sync,
        )
        DRIVES.check(outcome.registration_id)  # a repeat while the RAS drives it: 409
    if not outcome.created:
        response.status_code = 200
    return RegistrationView.of(outcome)


@router.post(
    "/registrations/{registration_id}/relay",
    summary="The RAS drives (resumes) a registration through a gateway to its end",
)
async def relay(
    registration_id: uuid.UUID,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
    body: Annotated[RelayRequest | None, Body()] = None,
) -> RegistrationView:
    await _end_unit_of_work(session)
    outcome = await _relayed(request, state, runtime).resume(
        principal,
        ctx,
        registration_id,
        gateway_id=body.gateway_id if body is not None else None,
    )
    return RegistrationView.of(outcome)


@router.get("/registrations/{registration_id}", summary="A registration's state")
async def get(
    registration_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> RegistrationView:
    outcome = await registration.get_registration(
        session, principal, ctx, registration_id, runtime.now()
    )
    return RegistrationView.of(outcome)


@router.post("/registrations/{registration_id}/answers", summary="Hand in the lock's answer")
async def answer(
    registration_id: uuid.UUID,
    body: Answer,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> RegistrationView:
    await _not_driven(session, principal, ctx, registration_id, runtime.now())
    outcome = await registration.submit_answer(
        session,
        state.keystore,
        principal,
        ctx,
        registration_id,
        decode_frame(body.frame),
        runtime.now(),
    )
    return RegistrationView.of(outcome)


@router.post("/registrations/{registration_id}/frames", summary="The current frames again")
async def frames(
    registration_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> RegistrationView:
    await _not_driven(session, principal, ctx, registration_id, runtime.now())
    outcome = await registration.fresh_frames(
        session, state.keystore, principal, ctx, registration_id, runtime.now()
    )
    return RegistrationView.of(outcome)
