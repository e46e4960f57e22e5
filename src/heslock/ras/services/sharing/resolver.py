"""Who may do what to a lock right now: ownership, the RAS policy and shares, resolved.

Every command path calls :func:`effective_access` with the lock row it has loaded (and
locked) in its own transaction, then ``access.require(action)``, then, for an allowed
command, :func:`record_use` *in the same transaction, before the frame leaves*::

    access = await effective_access(session, principal, lock, now, Path.REMOTE)
    decision = access.require(LockAction.UNLOCK)        # NotFound / Forbidden / AccessDenied
    await record_use(session, ctx, access, decision, action=LockAction.UNLOCK, command_id=row.id)

A repeated request whose command row exists already (same Idempotency-Key) calls
``access.require_replay(action)`` instead and records no use.

Nothing is cached: the grants are read on each call, so a revocation, an expiry, a
spent one-time key or the end of a schedule window refuses the very next command on
every RAS node. What applies to a lock for a principal:

- **ownership**: the lock's owner holds every permission on every path (an integration
  acting for them is still narrowed by its ``scope``);
- **the RAS policy** (:mod:`heslock.ras.services.access`): an administrator *sees* every
  lock (404 becomes 403) but operates none; no share is implied;
- **shares** granted to the principal and accepted, not revoked, made by the lock's
  current owner (a transfer ends them), that target the lock itself (and, if made in a
  home, only while the lock is still in it) or the home the lock is in. Schedules are
  evaluated in the home's time zone; a scheduled share on a lock in no home fails
  closed (``no-time-zone``).

A principal with none of these gets :class:`NotFound` (the lock's existence stays
hidden, as everywhere in the RAS); one who has some but not the right one gets
:class:`~.errors.AccessDenied` with the policy's ``reason`` (or plain :class:`Forbidden`
for an administrator without a share).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.errors import Forbidden, NotFound
from heslock.ras.services.sharing.errors import AccessDenied
from heslock.ras.services.sharing.policy import (
    Decision,
    Grant,
    LockAction,
    Path,
    Permission,
    Reason,
    Role,
    Validity,
    ValidityKind,
    decide,
    permissions_in_force,
)
from heslock.ras.services.sharing.schedule import Schedule, ScheduleError, zone_named
from heslock.ras.store.models import Home, HomeLock, Lock, Share, ShareLock, ShareScope

#: At most this many shares of one person on one lock are evaluated (they are few; the
#: bound keeps one command's work bounded whatever the table holds).
MAX_GRANTS_PER_LOOKUP: Final = 64


def grant_of(share: Share, zone: ZoneInfo | None) -> Grant:
    """The pure-core view of a share row (already validated on its way in)."""
    return Grant(
        id=share.id,
        role=Role(share.role),
        permissions=frozenset(Permission(p) for p in share.permissions),
        paths=frozenset(Path(p) for p in share.paths),
        validity=Validity(ValidityKind(share.validity), share.not_before, share.not_after),
        schedule=Schedule.from_json(share.schedule) if share.schedule is not None else None,
        zone=zone,
        spent=share.spent_at is not None,
        revoked=share.revoked_at is not None,
    )


def zone_of(home: Home | None) -> ZoneInfo | None:
    """The home's zone; None (scheduled shares fail closed) without a home."""
    if home is None:
        return None
    try:
        return zone_named(home.time_zone)
    except ScheduleError:  # pragma: no cover - validated on the way in
        return None


async def home_of(session: AsyncSession, lock_id: uuid.UUID) -> Home | None:
    """The home a lock is in, if any."""
    query = select(Home).join(HomeLock, HomeLock.home_id == Home.id)
    return (await session.execute(query.where(HomeLock.lock_id == lock_id))).scalar_one_or_none()


def applies_to_lock(lock: Lock, home: Home | None) -> ColumnElement[bool]:
    """SQL condition: a share row that applies to ``lock`` (in ``home``), whoever holds it.

    Made by the lock's current owner, and either targeting the lock (made outside a home,
    or in the home the lock is still in) or sharing that home.
    """
    targets = select(ShareLock.share_id).where(ShareLock.lock_id == lock.id)
    by_lock = and_(Share.scope == ShareScope.LOCKS.value, Share.id.in_(targets))
    if home is None:
        return and_(Share.owner_id == lock.owner_id, by_lock, Share.home_id.is_(None))
    if home.owner_id != lock.owner_id:
        # The lock changed hands while in someone else's home: only its own shares.
        return and_(Share.owner_id == lock.owner_id, by_lock, Share.home_id.is_(None))
    return and_(
        Share.owner_id == lock.owner_id,
        or_(
            and_(by_lock, or_(Share.home_id.is_(None), Share.home_id == home.id)),
            and_(Share.scope == ShareScope.HOME.value, Share.home_id == home.id),
        ),
    )


@dataclass(frozen=True)
class Access:
    """A principal's grants on one lock at one instant, by one path (module docstring)."""

    principal: Principal
    lock_id: uuid.UUID
    path: Path
    now: datetime
    grants: tuple[Grant, ...]
    #: Whether the principal has any role towards the lock (else: 404, not 403).
    visible: bool
    #: An integration's permission set (issue 8); None for a person acting directly.
    scope: frozenset[Permission] | None = None

    def decide(self, action: LockAction | Permission) -> Decision:
        return decide(self.grants, action, self.path, self.now, scope=self.scope)

    def require(self, action: LockAction | Permission) -> Decision:
        """The allowing decision, or NotFound / Forbidden / AccessDenied (module docstring)."""
        decision = self.decide(action)
        if decision.allowed:
            return decision
        if not self.visible:
            raise NotFound("no such lock")
        if decision.reason is Reason.NO_GRANT:
            raise Forbidden(f"not allowed to {decision.permission.value} this lock")
        raise AccessDenied(
            f"not allowed to {decision.permission.value} this lock now: {decision.reason.value}",
            reason=decision.reason.value,
        )

    def require_replay(self, action: LockAction | Permission) -> Decision:
        """:meth:`require` for a repeated request of a command already recorded (same
        Idempotency-Key): a one-time share spent *by that command* must not refuse its
        own retry, so ``spent`` passes here. Everything else (revoked, expired, outside
        the schedule) refuses the replay like a new command. Never :func:`record_use` a
        replay: it is not a new use."""
        decision = self.decide(action)
        if decision.reason is Reason.SPENT:
            return decision
        return self.require(action)

    @property
    def permissions(self) -> frozenset[Permission]:
        """What the principal may do by this path now (for "what may I do")."""
        return permissions_in_force(self.grants, self.path, self.now, scope=self.scope)


async def effective_access(
    session: AsyncSession,
    principal: Principal,
    lock: Lock,
    now: datetime,
    path: Path,
    *,
    scope: frozenset[Permission] | None = None,
) -> Access:
    """Load ``principal``'s grants on ``lock`` (module docstring); decide nothing yet.

    An app acting for a user (``principal.integration``, OAuth 2.0) always goes the
    ``integration`` path whatever route it called, its token's permissions narrow what
    the user holds, and a lock outside what the user let it reach is not there at all.
    """
    grants: list[Grant] = []
    integration = principal.integration
    if integration is not None:
        path = Path.INTEGRATION
        scope = integration.permissions if scope is None else scope & integration.permissions
    is_user = principal.kind is PrincipalKind.USER and principal.id is not None
    home = await home_of(session, lock.id) if is_user else None
    home_id = home.id if home is not None else None
    if integration is not None and not integration.reaches(lock.id, home_id):
        return Access(principal, lock.id, path, now, (), False, scope)
    if is_user and principal.id == lock.owner_id:
        grants.append(Grant.owner())
    if is_user:
        query = (
            select(Share)
            .where(
                Share.grantee_id == principal.id,
                Share.accepted_at.is_not(None),
                Share.revoked_at.is_(None),
                applies_to_lock(lock, home),
            )
            .order_by(Share.created_at, Share.id)
            .limit(MAX_GRANTS_PER_LOOKUP)
        )
        zone = zone_of(home)
        grants += [grant_of(s, zone) for s in (await session.execute(query)).scalars()]
    visible = bool(grants) or principal.is_admin
    return Access(principal, lock.id, path, now, tuple(grants), visible, scope)


async def record_use(
    session: AsyncSession,
    ctx: audit.AuditContext,
    access: Access,
    decision: Decision,
    *,
    action: LockAction | None = None,
    command_id: uuid.UUID | None = None,
) -> None:
    """Count an allowed use of a share (audit ``share.use``); spend a one-time share.

    Call it in the command's own transaction, before its frame leaves. The owner's own
    grant records nothing here (the command's audit records name the actor). A one-time
    share is spent by a conditional update, so of two concurrent unlocks with the same
    one-time key exactly one passes; the other gets :class:`AccessDenied` (``spent``).
    """
    share_id = decision.grant_id
    if not decision.allowed or share_id is None:
        return
    query = update(Share).where(Share.id == share_id, Share.revoked_at.is_(None))
    if decision.spends:
        query = query.where(Share.spent_at.is_(None)).values(spent_at=access.now)
    query = query.values(uses=Share.uses + 1, updated_at=access.now)
    result = await session.execute(query.execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        # Spent (or revoked) by a concurrent request since effective_access read it. The
        # caller's transaction rolls back; its denial audit names the reason.
        raise AccessDenied("this one-time key has been used", reason=Reason.SPENT.value)
    await audit.record(
        session,
        ctx,
        "share.use",
        audit.AuditResult.OK,
        target=f"share:{share_id}",
        lock=str(access.lock_id),
        permission=decision.permission.value,
        path=access.path.value,
        operation=action.value if action is not None else None,
        command_id=str(command_id) if command_id is not None else None,
        spent=decision.spends,
    )
