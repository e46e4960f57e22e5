"""DDMS bound locks over HTTPS: list, read, rename, unbind, transfer, key rotation.

The owner's locks and the locks shared with the caller are listed and readable; each
view says how the caller holds it (``access``: ``owner``, ``shared`` or
``administrator``), with their ``role`` and the ``permissions`` in force now on each
path. Renaming needs ``manage_settings`` (the owner, a home or lock admin); unbind,
transfer and key rotation stay the owner's (docs/security.md section 7).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep, StateDep
from heslock.ras.api.routers.devices import RuntimeDep
from heslock.ras.api.routers.registrations import Name, RegistrationView
from heslock.ras.services.ddms import locks
from heslock.ras.services.ddms.runtime import DdmsRuntime
from heslock.ras.services.sharing.policy import Path, Permission, Role

router = APIRouter(prefix="/v1", tags=["locks"], dependencies=BEARER)


class LockView(BaseModel):
    """A bound lock; its key never appears here.

    The last known state (``bolt_state``, ``door_state``, ``battery``, ``state_at``) is
    status: None for a share without ``view_status``.
    """

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
    access: locks.Relation = Field(
        description="how the caller holds the lock: their own, shared with them, seen as "
        "a RAS administrator (who operates no lock), or no longer (after a transfer)"
    )
    role: Role | None = Field(description="the caller's strongest role (None: administrator)")
    permissions: dict[Path, list[Permission]] = Field(
        description="what the caller may do now, by path (validity, schedule, one-time use)"
    )


async def _view(session: AsyncSession, seen: locks.SeenLock) -> LockView:
    lock, state = seen.lock, seen.sees_state
    return LockView(
        id=lock.id,
        device_id=lock.device_id,
        owner_id=lock.owner_id,
        name=lock.name,
        profile=await locks.profile_of(session, lock),
        key_version=lock.key_version,
        bolt_state=lock.bolt_state if state else None,
        door_state=lock.door_state if state else None,
        battery=lock.battery if state else None,
        state_at=lock.state_at if state else None,
        bound_at=lock.bound_at,
        access=seen.relation,
        role=seen.role,
        permissions={path: sorted(seen.permissions(path)) for path in Path},
    )


def _now(runtime: DdmsRuntime) -> datetime:
    return datetime.fromtimestamp(runtime.clock(), UTC)


async def _reread(
    session: AsyncSession, principal: PrincipalDep, lock_id: uuid.UUID, runtime: DdmsRuntime
) -> LockView:
    return await _view(session, await locks.get(session, principal, lock_id, _now(runtime)))


class LockPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name


class Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_user: uuid.UUID


@router.get("/locks", summary="The caller's locks and the locks shared with them")
async def list_locks(
    principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> list[LockView]:
    found = await locks.list_visible(session, principal, _now(runtime))
    return [await _view(session, seen) for seen in found]


@router.get("/locks/{lock_id}", summary="One lock (the owner's, shared, or as administrator)")
async def get_lock(
    lock_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> LockView:
    return await _reread(session, principal, lock_id, runtime)


@router.patch("/locks/{lock_id}", summary="Rename a lock (manage_settings)")
async def patch_lock(
    lock_id: uuid.UUID,
    body: LockPatch,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> LockView:
    await locks.rename(session, principal, ctx, lock_id, body.name, _now(runtime))
    return await _reread(session, principal, lock_id, runtime)


@router.delete("/locks/{lock_id}", status_code=204, summary="Unbind a lock (destroys its key)")
async def delete_lock(
    lock_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> Response:
    await locks.unbind(session, principal, ctx, lock_id, _now(runtime))
    return Response(status_code=204)


@router.post("/locks/{lock_id}/transfer", summary="Give a lock to another user")
async def transfer_lock(
    lock_id: uuid.UUID,
    body: Transfer,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> LockView:
    now = _now(runtime)
    lock = await locks.transfer(session, principal, ctx, lock_id, body.to_user, now)
    # The caller no longer holds it: the view says so (``none``, nothing in force).
    return await _view(session, await locks.seen(session, principal, lock, now))


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
