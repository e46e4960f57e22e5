"""DDMS bound locks: read, rename, unbind, transfer and key rotation.

A lock is a device bound to an owner with a lock key only the RAS and the lock know
(ISO/IEC 14543-5-104, "RAS <-> lock" authentication). Decisions:

- **Unbind** destroys the lock key: the envelope is overwritten, then the row deleted
  (with any rotation in flight). The device becomes ``reset_required``: the lock still
  holds the old key and refuses the factory key until its physical factory reset, so a
  new registration (under the factory key) succeeds only after that reset.
- **Transfer** hands the lock to another active user; the old owner loses every right
  at once (authorisation is derived from ``owner_id`` on each request).
- **Rotation** is a registration-like exchange (:mod:`.registration`, kind ``rotate``)
  under the current lock key with the next key version; the lock row takes the new key
  only when the lock's commit answer arrives.
"""

from __future__ import annotations

import logging
import os
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.protocol import next_version
from heslock.ras.keystore import LOCK_KEY, Keystore
from heslock.ras.services import audit
from heslock.ras.services.access import Action, Principal, Resource, ResourceKind, authorize
from heslock.ras.services.ddms.registration import Outcome, RegKind, begin
from heslock.ras.services.errors import Conflict, InvalidInput, NotFound
from heslock.ras.store.models import Device, DeviceStatus, Lock, User

log = logging.getLogger(__name__)


def _resource(lock: Lock) -> Resource:
    return Resource(ResourceKind.LOCK, str(lock.id), lock.owner_id)


async def load(
    session: AsyncSession, principal: Principal, lock_id: uuid.UUID, action: Action
) -> Lock:
    """The lock, if ``principal`` may perform ``action`` on it (else 404/403)."""
    lock = await session.get(Lock, lock_id, with_for_update=action is not Action.LOCK_READ)
    if lock is None:
        raise NotFound("no such lock")
    authorize(principal, action, _resource(lock))
    return lock


async def list_own(session: AsyncSession, principal: Principal) -> list[Lock]:
    authorize(principal, Action.LOCK_READ, Resource(ResourceKind.LOCK, owner_id=principal.id))
    query = select(Lock).where(Lock.owner_id == principal.id).order_by(Lock.bound_at, Lock.id)
    return list((await session.execute(query)).scalars())


async def profile_of(session: AsyncSession, lock: Lock) -> str:
    device = await session.get(Device, lock.device_id)
    return device.profile if device is not None else "unknown"


async def rename(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    lock_id: uuid.UUID,
    name: str,
) -> Lock:
    lock = await load(session, principal, lock_id, Action.LOCK_UPDATE)
    lock.name = name
    await audit.record(session, ctx, "lock.rename", audit.AuditResult.OK, target=f"lock:{lock.id}")
    return lock


async def unbind(
    session: AsyncSession, principal: Principal, ctx: audit.AuditContext, lock_id: uuid.UUID
) -> None:
    lock = await load(session, principal, lock_id, Action.LOCK_UNBIND)
    device = await session.get(Device, lock.device_id, with_for_update=True)
    # Overwrite the envelope before the delete, so the key is gone from the row itself.
    lock.lock_key_enc = os.urandom(len(lock.lock_key_enc))
    await session.flush()
    await session.delete(lock)
    if device is not None and device.status == DeviceStatus.BOUND:
        device.status = DeviceStatus.RESET_REQUIRED.value
    await session.flush()
    await audit.record(
        session,
        ctx,
        "lock.unbind",
        audit.AuditResult.OK,
        target=f"lock:{lock.id}",
        device=lock.device_id,
        owner=str(lock.owner_id),
    )
    log.info("DDMS lock %s unbound; device %s needs a factory reset", lock.id, lock.device_id)


async def transfer(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    lock_id: uuid.UUID,
    to_user: uuid.UUID,
) -> Lock:
    lock = await load(session, principal, lock_id, Action.LOCK_TRANSFER)
    if to_user == lock.owner_id:
        raise InvalidInput("the lock already belongs to that user")
    user = await session.get(User, to_user)
    if user is None or user.status != "active":
        raise InvalidInput("no such active user to transfer the lock to")
    previous = lock.owner_id
    lock.owner_id = to_user
    await audit.record(
        session,
        ctx,
        "lock.transfer",
        audit.AuditResult.OK,
        target=f"lock:{lock.id}",
        previous_owner=str(previous),
        new_owner=str(to_user),
    )
    return lock


async def start_rotation(
    session: AsyncSession,
    keystore: Keystore,
    principal: Principal,
    ctx: audit.AuditContext,
    lock_id: uuid.UUID,
    now: int,
) -> Outcome:
    """Begin replacing the lock key (stage a under the current key, next version)."""
    lock = await load(session, principal, lock_id, Action.LOCK_ROTATE_KEY)
    if principal.id is None:  # pragma: no cover - SYSTEM drives no relay
        raise Conflict("a rotation is driven by a user's relay")
    device = await session.get(Device, lock.device_id, with_for_update=True)
    if device is None:  # pragma: no cover - the foreign key forbids it
        raise NotFound("no such device")
    current = keystore.open(LOCK_KEY, str(lock.id), lock.lock_key_enc)
    return await begin(
        session,
        keystore,
        ctx,
        user_id=principal.id,
        device=device,
        kind=RegKind.ROTATE,
        old_key=current,
        version=next_version(lock.key_version),
        now=now,
        lock=lock,
    )
