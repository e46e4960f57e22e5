"""SCS authorisation: who may do what to which resource, decided in one place.

ISO/IEC 14543-5-104 centralises authorisation at the RAS ("server centralised
authentication"): a lock stores no user keys and obeys any frame the RAS seals, so every
API route and every XMPP request goes through :func:`authorize` before it acts.

The policy is an explicit table ``Action -> roles that may perform it``. A principal's
role towards a resource is derived from the resource alone (its owner) and the
principal's admin flag. What people hold on *locks* through homes and shares (roles,
permissions, paths, validity, schedules) is decided by
:mod:`heslock.ras.services.sharing.resolver`, which every lock route and command path
calls; the ``LOCK_*`` rows here remain the owner/administrator baseline. Decisions:

- A principal with *no* role towards an owned resource gets :class:`NotFound`, so user B
  cannot even learn that user A's lock or gateway exists. A principal who has a role
  but not a sufficient one gets :class:`Forbidden`.
- Administrators manage (read, revoke, unbind) but do not *operate* other people's
  locks: opening a door is the owner's right alone (``LOCK_OPERATE`` lists only OWNER).
- Anything not in the table is refused: a new action without a policy row fails closed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services.errors import Forbidden, NotFound
from heslock.ras.services.sharing.policy import Path, Permission


class PrincipalKind(StrEnum):
    USER = "user"
    GATEWAY = "gateway"
    SYSTEM = "system"  # the RAS itself (CLI maintenance, background jobs)


@dataclass(frozen=True)
class Integration:
    """A third-party app acting for a user with an OAuth 2.0 access token (issue 8).

    ``permissions`` is the token's scope mapped onto sharing permissions: it narrows
    whatever the user holds (:func:`heslock.ras.services.sharing.policy.decide`'s
    ``scope``). ``lock_ids``/``home_ids`` are the locks and homes the user let the app
    reach on the consent page: a lock outside both is hidden from the app (404).
    """

    client_id: uuid.UUID
    grant_id: uuid.UUID
    scopes: frozenset[str]
    permissions: frozenset[Permission]
    lock_ids: frozenset[uuid.UUID] = frozenset()
    home_ids: frozenset[uuid.UUID] = frozenset()

    def reaches(self, lock_id: uuid.UUID, home_id: uuid.UUID | None) -> bool:
        """Whether the user's narrowing lets the app near ``lock_id`` (in ``home_id``)."""
        return lock_id in self.lock_ids or (home_id is not None and home_id in self.home_ids)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    kind: PrincipalKind
    id: uuid.UUID | None
    is_admin: bool = False
    #: The UDMS session a user's access token belongs to (logout, "current session").
    session_id: uuid.UUID | None = None
    #: Set when a third-party app acts for the user (``kind`` stays USER, ``id`` the
    #: user's): the routes an app may call pass :attr:`path` and :attr:`scope` on to
    #: :func:`heslock.ras.services.sharing.resolver.effective_access`.
    integration: Integration | None = None

    @property
    def path(self) -> Path | None:
        """``Path.INTEGRATION`` for an app; None when the route's own path applies."""
        return Path.INTEGRATION if self.integration is not None else None

    @property
    def scope(self) -> frozenset[Permission] | None:
        """The app's permission set (narrows even the owner); None for a person."""
        return self.integration.permissions if self.integration is not None else None

    @property
    def audit_actor(self) -> str:
        """An opaque actor id for the audit log (never a name or a contact)."""
        return f"{self.kind.value}:{self.id}" if self.id is not None else self.kind.value


SYSTEM: Final = Principal(PrincipalKind.SYSTEM, None, is_admin=True)


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"


class ResourceKind(StrEnum):
    LOCK = "lock"
    DEVICE = "device"
    GATEWAY = "gateway"
    SESSION = "session"
    ACCOUNT = "account"
    AUDIT = "audit"
    REGISTRATION = "registration"  # a key negotiation in flight (DDMS)
    HOME = "home"  # a group of locks and gateways with members (sharing, issue 7)
    SHARE = "share"  # one grant to one person (sharing, issue 7)
    APP = "app"  # a third-party app (OAuth 2.0 client) a user registered (issue 8)
    APP_GRANT = "app_grant"  # what a user consented to give an app (issue 8)


@dataclass(frozen=True)
class Resource:
    """What an action applies to. ``owner_id`` None means a collection or system object."""

    kind: ResourceKind
    id: str | None = None
    owner_id: uuid.UUID | None = None

    @property
    def audit_target(self) -> str:
        return f"{self.kind.value}:{self.id}" if self.id is not None else self.kind.value


class Action(StrEnum):
    LOCK_READ = "lock.read"
    LOCK_OPERATE = "lock.operate"
    LOCK_UPDATE = "lock.update"
    LOCK_UNBIND = "lock.unbind"
    LOCK_TRANSFER = "lock.transfer"
    LOCK_ROTATE_KEY = "lock.rotate_key"
    DEVICE_IMPORT = "device.import"
    DEVICE_READ = "device.read"
    DEVICE_REVOKE = "device.revoke"
    GATEWAY_READ = "gateway.read"
    GATEWAY_UPDATE = "gateway.update"
    GATEWAY_REVOKE = "gateway.revoke"
    SESSION_READ = "session.read"
    SESSION_REVOKE = "session.revoke"
    ACCOUNT_READ = "account.read"
    ACCOUNT_UPDATE = "account.update"
    ACCOUNT_DELETE = "account.delete"
    AUDIT_READ = "audit.read"
    # DDMS (issue 4). "On one's own behalf" actions (check a device, start a
    # registration, create a gateway) name the caller as the resource's owner.
    DEVICE_CHECK = "device.check"
    REGISTRATION_CREATE = "registration.create"
    REGISTRATION_READ = "registration.read"
    REGISTRATION_DRIVE = "registration.drive"
    GATEWAY_CREATE = "gateway.create"
    GATEWAY_ROTATE_SECRET = "gateway.rotate_secret"  # noqa: S105 - an action name, not a secret
    # Remote control (issue 5): who turned the knob when is the owner's business only.
    LOCK_EVENTS_READ = "lock.events.read"
    # Grouping and sharing (issue 7). These rows say what the owner and the RAS's
    # administrators may do; home admins and share managers get their rights from
    # shares (heslock.ras.services.sharing.policy), checked after these.
    HOME_CREATE = "home.create"
    HOME_READ = "home.read"
    HOME_UPDATE = "home.update"
    HOME_DELETE = "home.delete"
    HOME_ARRANGE = "home.arrange"  # put the owner's locks and gateways in or out
    SHARE_CREATE = "share.create"
    SHARE_READ = "share.read"
    SHARE_UPDATE = "share.update"
    SHARE_REVOKE = "share.revoke"
    # Third-party access (issue 8): a user's own apps and the grants they gave to apps.
    APP_CREATE = "app.create"
    APP_READ = "app.read"
    APP_DELETE = "app.delete"
    APP_GRANT_READ = "app_grant.read"
    APP_GRANT_REVOKE = "app_grant.revoke"


_OWNER: Final = frozenset({Role.OWNER})
_OWNER_ADMIN: Final = frozenset({Role.OWNER, Role.ADMIN})
_ADMIN: Final = frozenset({Role.ADMIN})

#: The policy: which roles may perform each action. Absent -> refused.
POLICY: Final[dict[Action, frozenset[Role]]] = {
    Action.LOCK_READ: _OWNER_ADMIN,
    Action.LOCK_OPERATE: _OWNER,
    Action.LOCK_UPDATE: _OWNER,
    Action.LOCK_UNBIND: _OWNER_ADMIN,
    Action.LOCK_TRANSFER: _OWNER,
    Action.LOCK_ROTATE_KEY: _OWNER_ADMIN,
    Action.DEVICE_IMPORT: _ADMIN,
    Action.DEVICE_READ: _ADMIN,
    Action.DEVICE_REVOKE: _ADMIN,
    Action.GATEWAY_READ: _OWNER_ADMIN,
    Action.GATEWAY_UPDATE: _OWNER,
    Action.GATEWAY_REVOKE: _OWNER_ADMIN,
    Action.SESSION_READ: _OWNER,
    Action.SESSION_REVOKE: _OWNER_ADMIN,
    Action.ACCOUNT_READ: _OWNER_ADMIN,
    Action.ACCOUNT_UPDATE: _OWNER,
    Action.ACCOUNT_DELETE: _OWNER_ADMIN,
    Action.AUDIT_READ: _ADMIN,
    Action.DEVICE_CHECK: _OWNER,
    Action.REGISTRATION_CREATE: _OWNER,
    Action.REGISTRATION_READ: _OWNER_ADMIN,
    Action.REGISTRATION_DRIVE: _OWNER,
    Action.GATEWAY_CREATE: _OWNER,
    Action.GATEWAY_ROTATE_SECRET: _OWNER,
    Action.LOCK_EVENTS_READ: _OWNER,
    Action.HOME_CREATE: _OWNER,
    Action.HOME_READ: _OWNER_ADMIN,
    Action.HOME_UPDATE: _OWNER,
    Action.HOME_DELETE: _OWNER_ADMIN,
    Action.HOME_ARRANGE: _OWNER,
    Action.SHARE_CREATE: _OWNER,
    Action.SHARE_READ: _OWNER_ADMIN,
    Action.SHARE_UPDATE: _OWNER,
    Action.SHARE_REVOKE: _OWNER_ADMIN,
    Action.APP_CREATE: _OWNER,
    Action.APP_READ: _OWNER_ADMIN,
    Action.APP_DELETE: _OWNER_ADMIN,
    Action.APP_GRANT_READ: _OWNER,
    Action.APP_GRANT_REVOKE: _OWNER_ADMIN,
}


def roles_of(principal: Principal, resource: Resource) -> frozenset[Role]:
    roles: set[Role] = set()
    if principal.is_admin:
        roles.add(Role.ADMIN)
    if (
        principal.kind is PrincipalKind.USER
        and resource.owner_id is not None
        and principal.id == resource.owner_id
    ):
        roles.add(Role.OWNER)
    return frozenset(roles)


def authorize(principal: Principal, action: Action, resource: Resource) -> None:
    """Return if ``principal`` may perform ``action`` on ``resource``; raise otherwise.

    Raises :class:`NotFound` when the principal has no role at all towards an owned
    resource (its existence stays hidden) and :class:`Forbidden` otherwise.
    """
    allowed = POLICY.get(action, frozenset())
    roles = roles_of(principal, resource)
    if roles & allowed:
        return
    if resource.owner_id is not None and not roles:
        raise NotFound(f"no such {resource.kind.value}")
    raise Forbidden(f"not allowed to {action.value}")


class Authenticator(Protocol):
    """Turns a bearer credential into a :class:`Principal` (UDMS provides the real one).

    Returns None for a credential it does not accept; must not raise for bad input.
    """

    async def authenticate(self, session: AsyncSession, credential: str) -> Principal | None:
        """The principal ``credential`` proves, or None."""


class RefuseAll:
    """The authenticator until UDMS installs one: every credential is refused."""

    async def authenticate(self, session: AsyncSession, credential: str) -> Principal | None:
        return None
