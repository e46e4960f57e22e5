"""DDMS devices: the legitimacy check (the standard's 0/1 answer) and device administration.

ISO/IEC 14543-5-104 registration step 2: the RAC found a lock by its BLE advertisement
and asks the RAS whether it is genuine and free to bind. The answer is ``status: 0``
(yes) or ``status: 1`` with a reason (:class:`NotFree`):

    unknown                   no maker imported this id
    revoked                   withdrawn by an administrator or the maker
    already-bound             a user owns it (it has a lock key)
    registration-in-progress  another user's key negotiation for it is live
    registration-expired      the caller's own last registration of it expired or failed:
                              the lock rolled back too; start a new registration (allowed)

A device unbound by its owner (``reset_required``) answers 0 with
``factory_reset_required: true``: a new registration runs under the factory key, which
the lock accepts again only after its physical factory reset.

The check is an oracle for device ids: it is throttled per user (:data:`CHECK_POLICY`)
and every answer is audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.protocol import DeviceId, InvalidDeviceId
from heslock.ras.services import audit
from heslock.ras.services.access import (
    Action,
    Principal,
    Resource,
    ResourceKind,
    authorize,
)
from heslock.ras.services.ddms import throttle
from heslock.ras.services.ddms.registration import RegPhase, is_live
from heslock.ras.services.errors import Conflict, InvalidInput, NotFound, TooManyRequests
from heslock.ras.store.models import Device, DeviceStatus, Registration

log = logging.getLogger(__name__)

#: 30 checks at once, then one every 2 s: a RAC checks the few locks it sees; a scanner
#: needs millions of ids (2^46 unicast, locally administered or not) and gets nowhere.
CHECK_POLICY: Final = throttle.BucketPolicy(capacity=30, refill_per_s=0.5)


class NotFree(StrEnum):
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    ALREADY_BOUND = "already-bound"
    REGISTRATION_IN_PROGRESS = "registration-in-progress"
    REGISTRATION_EXPIRED = "registration-expired"


@dataclass(frozen=True)
class Legitimacy:
    device_id: str
    reason: NotFree | None = None
    factory_reset_required: bool = False
    profile: str | None = None

    @property
    def status(self) -> int:
        """The standard's answer: 0 genuine and free to bind, 1 otherwise."""
        return 0 if self.reason is None else 1

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "device_id": self.device_id}
        if self.reason is not None:
            body["reason"] = self.reason.value
        else:
            body["profile"] = self.profile
            body["factory_reset_required"] = self.factory_reset_required
        return body


def parse_device_id(text: str) -> DeviceId:
    try:
        return DeviceId.parse(text)
    except InvalidDeviceId:
        raise InvalidInput("not a device id: expected 12 hex digits") from None


async def assess(
    session: AsyncSession, device_id: DeviceId, user: Principal, now: int
) -> Legitimacy:
    """The legitimacy of ``device_id`` for ``user`` (no throttling, no audit)."""
    device = await session.get(Device, device_id.hex)
    if device is None:
        return Legitimacy(device_id.hex, NotFree.UNKNOWN)
    if device.status == DeviceStatus.REVOKED:
        return Legitimacy(device_id.hex, NotFree.REVOKED)
    if device.status == DeviceStatus.BOUND:
        return Legitimacy(device_id.hex, NotFree.ALREADY_BOUND)
    reg = (
        await session.execute(select(Registration).where(Registration.device_id == device_id.hex))
    ).scalar_one_or_none()
    if reg is not None and reg.kind == "register":
        live = is_live(reg, now)
        if live and reg.user_id != user.id:
            return Legitimacy(device_id.hex, NotFree.REGISTRATION_IN_PROGRESS)
        if not live and reg.user_id == user.id and reg.phase != RegPhase.COMMITTED:
            return Legitimacy(device_id.hex, NotFree.REGISTRATION_EXPIRED)
    return Legitimacy(
        device_id.hex,
        factory_reset_required=device.status == DeviceStatus.RESET_REQUIRED,
        profile=device.profile,
    )


async def check_legitimacy(
    session: AsyncSession,
    principal: Principal,
    context: audit.AuditContext,
    device_text: str,
    now: float,
) -> Legitimacy:
    """The throttled, audited legitimacy check of a discovered device."""
    authorize(principal, Action.DEVICE_CHECK, Resource(ResourceKind.DEVICE, owner_id=principal.id))
    wait = await throttle.take(
        session, f"ddms.legitimacy:{principal.audit_actor}", CHECK_POLICY, now
    )
    if wait is not None:
        await audit.record_and_commit(
            session, context, "device.check", audit.AuditResult.DENIED, reason="rate-limited"
        )
        raise TooManyRequests("too many legitimacy checks; slow down", retry_after=wait)
    device_id = parse_device_id(device_text)
    answer = await assess(session, device_id, principal, int(now))
    await audit.record(
        session,
        context,
        "device.check",
        audit.AuditResult.OK,
        target=f"device:{device_id.hex}",
        status=answer.status,
        reason=answer.reason.value if answer.reason else None,
    )
    return answer


async def get_device(session: AsyncSession, principal: Principal, device_text: str) -> Device:
    """An administrator's view of a device (the factory key never leaves the row)."""
    device_id = parse_device_id(device_text)
    authorize(principal, Action.DEVICE_READ, Resource(ResourceKind.DEVICE, device_id.hex))
    device = await session.get(Device, device_id.hex)
    if device is None:
        raise NotFound("no such device")
    return device


async def revoke_device(
    session: AsyncSession, principal: Principal, context: audit.AuditContext, device_text: str
) -> Device:
    """Withdraw a device (stolen stock, a recalled batch): no one may register it again.

    A bound device is refused (409): its owner unbinds it first.
    """
    device_id = parse_device_id(device_text)
    authorize(principal, Action.DEVICE_REVOKE, Resource(ResourceKind.DEVICE, device_id.hex))
    device = await session.get(Device, device_id.hex, with_for_update=True)
    if device is None:
        raise NotFound("no such device")
    previous = device.status
    if previous == DeviceStatus.BOUND:
        raise Conflict("the device is bound to a lock: unbind it first")
    device.status = DeviceStatus.REVOKED.value
    await audit.record(
        session,
        context,
        "device.revoke",
        audit.AuditResult.OK,
        target=f"device:{device_id.hex}",
        previous=previous,
    )
    return device
