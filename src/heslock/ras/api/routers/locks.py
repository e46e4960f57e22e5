"""DDMS bound locks over HTTPS: list, read, rename, unbind, transfer, key rotation."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep, StateDep
from heslock.ras.api.routers.devices import RuntimeDep
from heslock.ras.api.routers.registrations import Name, RegistrationView
from heslock.ras.services.access import Action
from heslock.ras.services.ddms import locks
from heslock.ras.store.models import Lock

router = APIRouter(prefix="/v1", tags=["locks"], dependencies=BEARER)


class LockView(BaseModel):
    """A bound lock; its key never appears here."""

    id: uuid.UUID
    device_id: str
    owner_id: uuid.UUID
    name: str
    profile: str
    key_version: int
    bolt_state: int | None
    door_state: int | None
    battery: int | None
    state_at: datetime | None
    bound_at: datetime


async def _view(session: AsyncSession, lock: Lock) -> LockView:
    return LockView(
        id=lock.id,
        device_id=lock.device_id,
        owner_id=lock.owner_id,
        name=lock.name,
        profile=await locks.profile_of(session, lock),
        key_version=lock.key_version,
        bolt_state=lock.bolt_state,
        door_state=lock.door_state,
        battery=lock.battery,
        state_at=lock.state_at,
        bound_at=lock.bound_at,
    )


class LockPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name


class Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_user: uuid.UUID


@router.get("/locks", summary="The caller's locks")
async def list_locks(principal: PrincipalDep, session: SessionDep) -> list[LockView]:
    return [await _view(session, lock) for lock in await locks.list_own(session, principal)]


@router.get("/locks/{lock_id}", summary="One lock")
async def get_lock(lock_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> LockView:
    return await _view(session, await locks.load(session, principal, lock_id, Action.LOCK_READ))


@router.patch("/locks/{lock_id}", summary="Rename a lock")
async def patch_lock(
    lock_id: uuid.UUID, body: LockPatch, principal: PrincipalDep, session: SessionDep, ctx: AuditDep
) -> LockView:
    return await _view(session, await locks.rename(session, principal, ctx, lock_id, body.name))


@router.delete("/locks/{lock_id}", status_code=204, summary="Unbind a lock (destroys its key)")
async def delete_lock(
    lock_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, ctx: AuditDep
) -> Response:
    await locks.unbind(session, principal, ctx, lock_id)
    return Response(status_code=204)


@router.post("/locks/{lock_id}/transfer", summary="Give a lock to another user")
async def transfer_lock(
    lock_id: uuid.UUID, body: Transfer, principal: PrincipalDep, session: SessionDep, ctx: AuditDep
) -> LockView:
    lock = await locks.transfer(session, principal, ctx, lock_id, body.to_user)
    return await _view(session, lock)


@router.post("/locks/{lock_id}/rotation", status_code=201, summary="Start a key rotation")
async def rotate_lock_key(
    lock_id: uuid.UUID,
    response: Response,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> RegistrationView:
    outcome = await locks.start_rotation(
        session, state.keystore, principal, ctx, lock_id, runtime.now()
    )
    if not outcome.created:
        response.status_code = 200
    return RegistrationView.of(outcome)
