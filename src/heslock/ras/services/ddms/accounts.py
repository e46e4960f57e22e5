"""What DDMS releases when its owner's account is deleted (UDMS account deletion).

Issue 4: account deletion revokes every grant. A deleted user keeps no lock, no gateway
and no registration in progress, in the same transaction as the deletion itself:

- each bound lock is unbound: its key is overwritten and the row removed, and the device
  needs a factory reset before anyone can register it again (as ``locks.unbind``);
- each gateway is revoked: the SCS credential store stops answering for it, so it can no
  longer log in. A session it holds at that moment is ended by the gateway-session hook
  (:class:`~heslock.ras.services.ddms.runtime.RelayGatewaySessions`);
- each registration that has not finished ends as failed, its keys wiped.

Every release is audited under the deleting user's context.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.ddms.registration import FINAL, RegPhase, wipe_keys
from heslock.ras.store.models import Device, DeviceStatus, Gateway, Lock, Registration

log = logging.getLogger(__name__)


async def release_account(
    session: AsyncSession, user_id: uuid.UUID, ctx: audit.AuditContext, now: datetime
) -> None:
    """A UDMS deletion hook: unbind the user's locks, revoke gateways, end registrations."""
    locks = (await session.execute(select(Lock).where(Lock.owner_id == user_id))).scalars()
    for lock in list(locks):
        device = await session.get(Device, lock.device_id, with_for_update=True)
        lock.lock_key_enc = os.urandom(len(lock.lock_key_enc))
        await session.flush()
        await session.delete(lock)
        if device is not None and device.status == DeviceStatus.BOUND:
            device.status = DeviceStatus.RESET_REQUIRED.value
        await audit.record(
            session, ctx, "lock.unbind", audit.AuditResult.OK,
            target=f"lock:{lock.id}", device=lock.device_id, reason="account-deleted",
        )  # fmt: skip
    gateways = (
        await session.execute(
            select(Gateway).where(Gateway.owner_id == user_id, Gateway.revoked_at.is_(None))
        )
    ).scalars()
    for gateway in list(gateways):
        gateway.revoked_at = now
        await audit.record(
            session, ctx, "gateway.revoke", audit.AuditResult.OK,
            target=f"gateway:{gateway.id}", reason="account-deleted",
        )  # fmt: skip
    pending = (
        await session.execute(select(Registration).where(Registration.user_id == user_id))
    ).scalars()
    for reg in list(pending):
        if RegPhase(reg.phase) in FINAL:
            continue
        reg.phase = RegPhase.FAILED.value
        reg.failure = "ACCOUNT_DELETED"
        reg.updated_at = now
        wipe_keys(reg)
        await audit.record(
            session, ctx, f"{reg.kind}.fail", audit.AuditResult.FAILED,
            target=f"registration:{reg.id}", reason="account-deleted",
        )  # fmt: skip
    await session.flush()
    log.info("DDMS released the grants of a deleted account")
