"""Sharing policy: permissions, roles, validity, paths and the pure access decision.

Pure (no I/O, no clock): :func:`decide` takes the grants a principal holds on one lock,
what they want to do, by which path and when, and answers allow or deny with a reason.
The RAS's resolver (:mod:`.resolver`) loads the grants and calls it on every command, so
a revocation, an expiry or the end of a schedule window takes effect on the next one.

**Permissions** are fine-grained; a grant holds a set of them:

=================  ===================================================================
operate            unlock (and lock: *operate implies lock*: whoever may open a door
                   may close it again; the reverse does not hold)
lock               lock only. ``{lock}`` is "lock but never unlock", for people and
                   for integrations alike
view_status        ask the lock for its state (the ``status`` command)
view_log           read the lock's event log (who came and went when)
manage_shares      grant, change and revoke other people's shares on the lock
                   (never more than one holds oneself, never the admin role)
manage_settings    change the lock's and the home's settings (name, time zone)
=================  ===================================================================

**Roles** per home and per lock; a role is both the default permission set of a grant
and its ceiling (a grant may narrow its role's set, never widen it):

=========  =======  ====  ===========  ========  =============  ===============
role       operate  lock  view_status  view_log  manage_shares  manage_settings
=========  =======  ====  ===========  ========  =============  ===============
owner      yes      yes   yes          yes       yes            yes
admin      yes      yes   yes          yes       yes            yes
member     yes      yes   yes          yes       --             --
guest      yes      yes   yes          --        --             --
=========  =======  ====  ===========  ========  =============  ===============

The owner is the lock's (or home's) owner and is never granted; the other roles come
with shares. What only the owner may do whatever the grants say (delete a home, move
locks between homes, make admins, transfer or unbind a lock) is in
:mod:`heslock.ras.services.access` and :mod:`.homes`.

**Paths** a command arrives by: ``remote`` (through a gateway), ``nearby`` (a sealed
frame the client writes to the lock itself) and ``integration`` (a third-party service
acting for the user, issue 8). A grant lists the paths it may be used on (all three by
default). An integration's own permission set (``scope``) narrows whatever the user
holds, the owner included.

**Validity**: ``permanent``; ``from_until`` (``[not_before, not_after)``); ``one_time``
(optionally bounded too), spent by its first actuation (``operate`` or ``lock``): it
then grants nothing, not even ``view_status``.

A grant is checked in this order, and a refusal names the furthest check any grant
reached (so the reason is the most useful one: "outside schedule" rather than "no
permission" when one grant nearly fits):

``revoked`` -> ``permission`` -> ``path`` -> ``not-yet-valid`` / ``expired`` -> ``spent``
-> ``no-time-zone`` -> ``outside-schedule``.

Among several grants that allow, the owner's is used, then any that is not one-time (a
one-time key is never spent when another grant suffices), then the lowest id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from heslock.ras.services.sharing.schedule import Schedule


class PolicyError(ValueError):
    """A grant that breaks the rules of this module (the message says which)."""


class Permission(StrEnum):
    OPERATE = "operate"
    LOCK = "lock"
    VIEW_STATUS = "view_status"
    VIEW_LOG = "view_log"
    MANAGE_SHARES = "manage_shares"
    MANAGE_SETTINGS = "manage_settings"


ALL_PERMISSIONS: Final = frozenset(Permission)
#: What a permission brings with it. Only one implication: operate -> lock.
IMPLIES: Final[dict[Permission, frozenset[Permission]]] = {
    Permission.OPERATE: frozenset({Permission.LOCK}),
}
#: Permissions whose use moves the bolt: they spend a one-time grant.
ACTUATING: Final = frozenset({Permission.OPERATE, Permission.LOCK})


def closure(permissions: Iterable[Permission]) -> frozenset[Permission]:
    """``permissions`` with everything they imply."""
    found = set(permissions)
    for permission in list(found):
        found |= IMPLIES.get(permission, frozenset())
    return frozenset(found)


class Role(StrEnum):
    """Sharing roles (not :class:`heslock.ras.services.access.Role`, the RAS's own)."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    GUEST = "guest"


#: Role -> its default permissions, which are also its ceiling (module docstring).
ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.OWNER: ALL_PERMISSIONS,
    Role.ADMIN: ALL_PERMISSIONS,
    Role.MEMBER: frozenset(
        {Permission.OPERATE, Permission.LOCK, Permission.VIEW_STATUS, Permission.VIEW_LOG}
    ),
    Role.GUEST: frozenset({Permission.OPERATE, Permission.LOCK, Permission.VIEW_STATUS}),
}
#: Roles a share can carry; ownership is never granted.
GRANTABLE_ROLES: Final = (Role.ADMIN, Role.MEMBER, Role.GUEST)
#: Roles a non-owner with ``manage_shares`` may grant (admins are made by the owner).
DELEGABLE_ROLES: Final = frozenset({Role.MEMBER, Role.GUEST})


def grant_permissions(role: Role, requested: Iterable[Permission] | None) -> frozenset[Permission]:
    """The permission set a share of ``role`` stores: the role's defaults when
    ``requested`` is None, else ``requested`` with its implications, which must be
    non-empty and within the role's ceiling (:class:`PolicyError` otherwise)."""
    if role not in GRANTABLE_ROLES:
        raise PolicyError(f"the {role.value} role cannot be granted")
    ceiling = ROLE_PERMISSIONS[role]
    if requested is None:
        return ceiling
    wanted = closure(requested)
    if not wanted:
        raise PolicyError("a share needs at least one permission")
    beyond = wanted - ceiling
    if beyond:
        names = ", ".join(sorted(p.value for p in beyond))
        raise PolicyError(f"the {role.value} role does not allow {names}")
    return wanted


class Path(StrEnum):
    REMOTE = "remote"
    NEARBY = "nearby"
    INTEGRATION = "integration"


ALL_PATHS: Final = frozenset(Path)


class LockAction(StrEnum):
    """What a command path asks to do to a lock, and the permission it needs."""

    UNLOCK = "unlock"
    LOCK = "lock"
    STATUS = "status"
    EVENTS = "events"
    MANAGE_SHARES = "manage_shares"
    MANAGE_SETTINGS = "manage_settings"


REQUIRED: Final[dict[LockAction, Permission]] = {
    LockAction.UNLOCK: Permission.OPERATE,
    LockAction.LOCK: Permission.LOCK,
    LockAction.STATUS: Permission.VIEW_STATUS,
    LockAction.EVENTS: Permission.VIEW_LOG,
    LockAction.MANAGE_SHARES: Permission.MANAGE_SHARES,
    LockAction.MANAGE_SETTINGS: Permission.MANAGE_SETTINGS,
}


class ValidityKind(StrEnum):
    PERMANENT = "permanent"
    FROM_UNTIL = "from_until"
    ONE_TIME = "one_time"


class Reason(StrEnum):
    """Why :func:`decide` allowed or refused (stable strings: clients may show them)."""

    OWNER = "owner"  # allowed: the lock's owner
    SHARE = "share"  # allowed: a share in force
    SCOPE = "scope"  # the integration's own permissions exclude it
    NO_GRANT = "no-grant"
    REVOKED = "revoked"
    PERMISSION = "permission"
    PATH = "path"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"
    SPENT = "spent"
    NO_TIME_ZONE = "no-time-zone"
    OUTSIDE_SCHEDULE = "outside-schedule"


#: The order in which a grant is checked; a refusal reports the furthest one reached.
_CHECK_ORDER: Final = (
    Reason.NO_GRANT,
    Reason.REVOKED,
    Reason.PERMISSION,
    Reason.PATH,
    Reason.NOT_YET_VALID,
    Reason.EXPIRED,
    Reason.SPENT,
    Reason.NO_TIME_ZONE,
    Reason.OUTSIDE_SCHEDULE,
)
_RANK: Final = {reason: rank for rank, reason in enumerate(_CHECK_ORDER)}


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise PolicyError(f"{name} must be an aware datetime")


@dataclass(frozen=True)
class Validity:
    """When a grant is valid at all (schedules narrow it further)."""

    kind: ValidityKind = ValidityKind.PERMANENT
    not_before: datetime | None = None
    not_after: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("not_before", "not_after"):
            value = getattr(self, name)
            if value is not None:
                _aware(value, name)
        bounded = self.not_before is not None or self.not_after is not None
        if self.kind is ValidityKind.PERMANENT and bounded:
            raise PolicyError("a permanent share has no from or until")
        if self.kind is ValidityKind.FROM_UNTIL and (
            self.not_before is None or self.not_after is None
        ):
            raise PolicyError("a from-until share needs both from and until")
        if (
            self.not_before is not None
            and self.not_after is not None
            and self.not_after <= self.not_before
        ):
            raise PolicyError("until must be after from")

    def check(self, now: datetime) -> Reason | None:
        """None while valid at ``now``; else why not (``[not_before, not_after)``)."""
        if self.not_before is not None and now < self.not_before:
            return Reason.NOT_YET_VALID
        if self.not_after is not None and now >= self.not_after:
            return Reason.EXPIRED
        return None


PERMANENT: Final = Validity()


@dataclass(frozen=True)
class Grant:
    """One thing that gives a principal rights on one lock: ownership or a share.

    ``zone`` is the lock's time zone, needed only when there is a ``schedule`` (a
    scheduled grant on a lock without a zone fails closed: ``no-time-zone``).
    """

    id: uuid.UUID | None
    role: Role
    permissions: frozenset[Permission]
    paths: frozenset[Path] = ALL_PATHS
    validity: Validity = PERMANENT
    schedule: Schedule | None = None
    zone: ZoneInfo | None = None
    spent: bool = False
    revoked: bool = False

    @classmethod
    def owner(cls) -> Grant:
        return cls(None, Role.OWNER, ALL_PERMISSIONS)

    @property
    def one_time(self) -> bool:
        return self.validity.kind is ValidityKind.ONE_TIME

    def check(self, permission: Permission, path: Path, now: datetime) -> Reason:
        """``OWNER``/``SHARE`` if this grant allows ``permission`` by ``path`` at ``now``,
        else the first check it fails (module docstring)."""
        if self.revoked:
            return Reason.REVOKED
        if permission not in closure(self.permissions):
            return Reason.PERMISSION
        if path not in self.paths:
            return Reason.PATH
        invalid = self.validity.check(now)
        if invalid is not None:
            return invalid
        if self.spent:
            return Reason.SPENT
        if self.schedule is not None:
            if self.zone is None:
                return Reason.NO_TIME_ZONE
            if not self.schedule.is_open(now, self.zone):
                return Reason.OUTSIDE_SCHEDULE
        return Reason.OWNER if self.role is Role.OWNER else Reason.SHARE


@dataclass(frozen=True)
class Decision:
    """The answer of :func:`decide`. ``spends``: allowing uses up a one-time grant
    (the caller must record the use, see :func:`.resolver.record_use`)."""

    allowed: bool
    reason: Reason
    permission: Permission
    path: Path
    grant: Grant | None = field(default=None, compare=False)
    spends: bool = False

    @property
    def grant_id(self) -> uuid.UUID | None:
        return self.grant.id if self.grant is not None else None


def _preference(grant: Grant) -> tuple[bool, bool, str]:
    return (grant.role is not Role.OWNER, grant.one_time, str(grant.id))


def required_permission(action: LockAction | Permission) -> Permission:
    return action if isinstance(action, Permission) else REQUIRED[action]


def decide(
    grants: Iterable[Grant],
    action: LockAction | Permission,
    path: Path,
    now: datetime,
    *,
    scope: Iterable[Permission] | None = None,
) -> Decision:
    """Allow or refuse ``action`` by ``path`` at ``now`` given ``grants`` (module docstring).

    ``scope`` is the permission set of an integration acting for the principal; None
    for a person acting directly.
    """
    _aware(now, "now")
    permission = required_permission(action)
    if scope is not None and permission not in closure(scope):
        return Decision(False, Reason.SCOPE, permission, path)
    worst = Reason.NO_GRANT
    for grant in sorted(grants, key=_preference):
        reason = grant.check(permission, path, now)
        if reason in (Reason.OWNER, Reason.SHARE):
            spends = grant.one_time and permission in ACTUATING
            return Decision(True, reason, permission, path, grant, spends)
        if _RANK[reason] > _RANK[worst]:
            worst = reason
    return Decision(False, worst, permission, path)


def permissions_in_force(
    grants: Iterable[Grant],
    path: Path,
    now: datetime,
    *,
    scope: Iterable[Permission] | None = None,
) -> frozenset[Permission]:
    """Every permission some grant allows by ``path`` at ``now`` (for "what may I do")."""
    grants = tuple(grants)
    return frozenset(p for p in Permission if decide(grants, p, path, now, scope=scope).allowed)
