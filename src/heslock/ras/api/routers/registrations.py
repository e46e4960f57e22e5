"""DDMS registrations over HTTPS: the key negotiation as an API a relay drives.

The relay (a RAC over BLE) sends every frame of ``frames`` to the lock, in order, and
posts each answer to ``/answers``; each reply carries the next ``frames`` until ``done``.
``POST .../frames`` hands out the current phase's frames again (a fresh COMMIT with the
next counter once the lock has proved the key). Frames are base64 (RFC 4648 section 4).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep, StateDep
from heslock.ras.api.routers.devices import RuntimeDep
from heslock.ras.services.ddms import registration
from heslock.ras.services.ddms.devices import parse_device_id
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


@router.post("/registrations", status_code=201, summary="Start registering a device")
async def start(
    body: RegistrationStart,
    response: Response,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> RegistrationView:
    outcome = await registration.start_registration(
        session,
        state.keystore,
        principal,
        ctx,
        parse_device_id(body.device_id),
        body.name,
        runtime.now(),
        time_sync=body.time_sync,
    )
    if not outcome.created:
        response.status_code = 200
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
    outcome = await registration.fresh_frames(
        session, state.keystore, principal, ctx, registration_id, runtime.now()
    )
    return RegistrationView.of(outcome)
