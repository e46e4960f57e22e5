"""Who may manage a home or the shares of a lock: the owner, the RAS's admins, managers.

Two layers, checked in this order:

1. the RAS policy table (:data:`heslock.ras.services.access.POLICY`): the owner of the
   home (of the lock) and, for reading and revoking, the RAS's administrators;
2. the sharing policy: a person whose shares are in force now with ``manage_shares``
   (``manage_settings``) on the home or the lock: a home admin, or an admin share on a
   lock. Their rights are evaluated like a command (validity, schedule, path ``remote``:
   the HTTPS API), so an admin whose share is outside its hours manages nothing then.

A principal with no relation at all gets :class:`NotFound`; one with some relation but
not the right gets :class:`Forbidden` (or :class:`AccessDenied` with the policy's reason).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services.access import (
    Action,
    Principal,
    PrincipalKind,
    Resource,
    ResourceKind,
    authorize,
)
from heslock.ras.services.errors import Forbidden, NotFound
from heslock.ras.services.sharing.errors import AccessDenied
from heslock.ras.services.sharing.policy import (
    ALL_PERMISSIONS,
    Decision,
    Grant,
    Path,
    Permission,
    Reason,
    Role,
    decide,
    permissions_in_force,
)
from heslock.ras.services.sharing.resolver import Access, effective_access, grant_of, zone_of
from heslock.ras.store.models import Home, Lock, Share, ShareScope

#: Management goes through the HTTPS API: the remote path.
MANAGEMENT_PATH = Path.REMOTE


def policy_allows(principal: Principal, action: Action, resource: Resource) -> bool:
    """Whether the RAS policy table alone allows it (owner or administrator)."""
    try:
        authorize(principal, action, resource)
    except (Forbidden, NotFound):
        return False
    return True


@dataclass(frozen=True)
class HomeRights:
    """A principal's standing in one home at one instant."""

    home: Home
    principal: Principal
    now: datetime
    #: The active membership (a ``home``-scope share accepted by the principal), if any.
    membership: Share | None

    @property
    def is_owner(self) -> bool:
        return self.principal.kind is PrincipalKind.USER and self.principal.id == self.home.owner_id

    @property
    def role(self) -> Role | None:
        if self.is_owner:
            return Role.OWNER
        return Role(self.membership.role) if self.membership is not None else None

    @property
    def grants(self) -> tuple[Grant, ...]:
        if self.is_owner:
            return (Grant.owner(),)
        if self.membership is None:
            return ()
        return (grant_of(self.membership, zone_of(self.home)),)

    @property
    def visible(self) -> bool:
        return self.is_owner or self.membership is not None or self.principal.is_admin

    @property
    def permissions(self) -> frozenset[Permission]:
        if self.is_owner:
            return ALL_PERMISSIONS
        return permissions_in_force(self.grants, MANAGEMENT_PATH, self.now)

    def allows(self, action: Action) -> bool:
        resource = Resource(ResourceKind.HOME, str(self.home.id), self.home.owner_id)
        return policy_allows(self.principal, action, resource)

    def require_permission(self, permission: Permission) -> None:
        """``permission`` in force now, by ownership or membership."""
        require_decision(decide(self.grants, permission, MANAGEMENT_PATH, self.now))

    def require(self, action: Action, permission: Permission | None) -> None:
        """The policy row ``action``, or else ``permission`` in force by a membership."""
        if self.allows(action):
            return
        if not self.visible:
            raise NotFound("no such home")
        if permission is None:
            raise Forbidden(f"not allowed to {action.value}")
        self.require_permission(permission)


def require_decision(decision: Decision) -> None:
    """Return if allowed; Forbidden (no such right at all) or AccessDenied (not now)."""
    if decision.allowed:
        return
    if decision.reason in (Reason.NO_GRANT, Reason.PERMISSION):
        raise Forbidden(f"not allowed to {decision.permission.value} here")
    raise AccessDenied(
        f"not allowed to {decision.permission.value} now: {decision.reason.value}",
        reason=decision.reason.value,
    )


async def membership_of(session: AsyncSession, principal: Principal, home: Home) -> Share | None:
    """The principal's accepted, unrevoked membership of ``home`` (made by its owner)."""
    if principal.kind is not PrincipalKind.USER or principal.id is None:
        return None
    query = (
        select(Share)
        .where(
            Share.scope == ShareScope.HOME.value,
            Share.home_id == home.id,
            Share.owner_id == home.owner_id,
            Share.grantee_id == principal.id,
            Share.accepted_at.is_not(None),
            Share.revoked_at.is_(None),
        )
        .order_by(Share.created_at, Share.id)
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def home_rights(
    session: AsyncSession,
    principal: Principal,
    home_id: uuid.UUID,
    now: datetime,
    *,
    for_update: bool = False,
) -> HomeRights:
    """The home and the principal's standing in it; NotFound when it is not visible."""
    home = await session.get(Home, home_id, with_for_update=for_update)
    if home is None:
        raise NotFound("no such home")
    rights = HomeRights(home, principal, now, await membership_of(session, principal, home))
    if not rights.visible:
        raise NotFound("no such home")
    return rights


async def lock_access(
    session: AsyncSession,
    principal: Principal,
    lock_id: uuid.UUID,
    now: datetime,
    *,
    for_update: bool = False,
) -> tuple[Lock, Access]:
    """The lock and the principal's access to it by the API; NotFound when invisible."""
    lock = await session.get(Lock, lock_id, with_for_update=for_update)
    if lock is None:
        raise NotFound("no such lock")
    access = await effective_access(session, principal, lock, now, MANAGEMENT_PATH)
    if not access.visible:
        raise NotFound("no such lock")
    return lock, access


def require_manage_shares(access: Access) -> frozenset[Permission]:
    """What the principal may grant on this lock: everything for the owner, else their
    own permissions in force (with ``manage_shares`` among them), else refused."""
    if any(g.role is Role.OWNER for g in access.grants):
        return ALL_PERMISSIONS
    require_decision(access.decide(Permission.MANAGE_SHARES))
    return access.permissions
