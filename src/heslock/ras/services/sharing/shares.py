"""Shares (electronic keys): grant, change, revoke and list; members are home shares.

A share grants one person, invited by a contact (an e-mail address or an E.164 phone
number), a role and permissions on one lock, several locks (all of one owner), or a
whole home (a *membership*), with paths, a validity and an optional schedule
(:mod:`.policy`). Rules (docs/security.md, "Sharing model"):

- **Invitations.** A new share is always ``pending``: the answer is the same whether or
  not someone has that contact, so granting reveals nothing about who has an account.
  It attaches to a person only when a user who has *verified* that contact accepts it
  (:mod:`.invitations`); it lapses unaccepted after :data:`INVITATION_TTL`.
- **Who grants.** The owner, anything. A manager (``manage_shares`` in force on every
  target, from a home admin membership or an admin share) only ``member`` and ``guest``
  shares, with permissions they hold themselves in force at that moment, and may
  change or revoke only such shares. Only the owner makes, changes or revokes admins.
  The RAS's administrators may read and revoke any share (abuse handling), not grant.
- **Revocation** takes effect at the next command (nothing is cached). Revoking a
  membership also revokes the member's other shares made in that home, and pending
  invitations to the same contact there. The grantee may give a share up (renounce).
- **Limits.** At most :data:`MAX_ACTIVE_SHARES_PER_LOCK` active shares (pending
  invitations included) apply to one lock, counting the home's memberships; listings
  page with ``limit`` (up to 200) and an opaque cursor.
- Every grant, change, acceptance, use and revocation is audited with its actor; the
  invited contact never appears in the audit log, only its kind.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.access import Action, Principal, Resource, ResourceKind
from heslock.ras.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from heslock.ras.services.feed.sources import share_changed as feed_share_changed
from heslock.ras.services.sharing.errors import ShareLimitReached
from heslock.ras.services.sharing.paging import Page, after, page_of
from heslock.ras.services.sharing.policy import (
    ALL_PATHS,
    ALL_PERMISSIONS,
    DELEGABLE_ROLES,
    Path,
    Permission,
    PolicyError,
    Role,
    Validity,
    ValidityKind,
    grant_permissions,
)
from heslock.ras.services.sharing.resolver import applies_to_lock, home_of
from heslock.ras.services.sharing.rights import (
    HomeRights,
    home_rights,
    lock_access,
    policy_allows,
    require_manage_shares,
)
from heslock.ras.services.sharing.schedule import Schedule, ScheduleError
from heslock.ras.services.udms.contacts import normalise
from heslock.ras.store.models import (
    ContactKind,
    Home,
    HomeLock,
    Lock,
    Share,
    ShareLock,
    ShareScope,
)

#: An invitation not accepted within this time lapses (and stops counting to limits).
INVITATION_TTL: Final = timedelta(days=14)
#: Active shares that may apply to one lock (the issue asks for at least 200).
MAX_ACTIVE_SHARES_PER_LOCK: Final = 256
#: Locks one share may list (and bounds the audit record that names them).
MAX_LOCKS_PER_SHARE: Final = 32


class ShareStatus(StrEnum):
    PENDING = "pending"  # invited, not accepted yet
    INVITATION_EXPIRED = "invitation-expired"  # never accepted, lapsed
    UPCOMING = "upcoming"  # accepted, not valid yet
    ACTIVE = "active"  # accepted and valid (schedules may still close it for a while)
    EXPIRED = "expired"  # past its until
    SPENT = "spent"  # a one-time share that was used
    REVOKED = "revoked"  # revoked, declined or renounced


def status_of(share: Share, now: datetime) -> ShareStatus:
    if share.revoked_at is not None:
        return ShareStatus.REVOKED
    if share.accepted_at is None:
        if share.created_at + INVITATION_TTL > now:
            return ShareStatus.PENDING
        return ShareStatus.INVITATION_EXPIRED
    if share.spent_at is not None:
        return ShareStatus.SPENT
    if share.not_after is not None and now >= share.not_after:
        return ShareStatus.EXPIRED
    if share.not_before is not None and now < share.not_before:
        return ShareStatus.UPCOMING
    return ShareStatus.ACTIVE


@dataclass(frozen=True)
class Terms:
    """What a share grants, validated (:func:`terms`)."""

    role: Role
    permissions: frozenset[Permission]
    paths: frozenset[Path] = ALL_PATHS
    validity: Validity = field(default_factory=Validity)
    schedule: Schedule | None = None
    label: str | None = None


def terms(
    *,
    role: str,
    permissions: Iterable[str] | None = None,
    paths: Iterable[str] | None = None,
    validity: str = ValidityKind.PERMANENT.value,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    schedule: Any = None,
    label: str | None = None,
) -> Terms:
    """Build and check :class:`Terms` from API values; :class:`InvalidInput` if refused."""
    try:
        parsed_role = Role(role)
        wanted = None if permissions is None else [Permission(p) for p in permissions]
        path_set = ALL_PATHS if paths is None else frozenset(Path(p) for p in paths)
        _some_path(path_set)
        return Terms(
            parsed_role,
            grant_permissions(parsed_role, wanted),
            path_set,
            Validity(ValidityKind(validity), not_before, not_after),
            Schedule.from_json(schedule) if schedule is not None else None,
            label,
        )
    except (PolicyError, ScheduleError) as exc:
        raise InvalidInput(str(exc)) from None
    except ValueError as exc:  # an enum value that does not exist
        raise InvalidInput(f"not a known value: {exc}") from None


def _some_path(paths: frozenset[Path]) -> None:
    if not paths:
        raise PolicyError("a share needs at least one path")


@dataclass(frozen=True)
class LockRef:
    id: uuid.UUID
    name: str


@dataclass(frozen=True)
class ShareDetail:
    """A share with what it covers now (a home share: the home's locks) and its status."""

    share: Share
    status: ShareStatus
    locks: list[LockRef]
    home_name: str | None


# ---------------------------------------------------------------- reading helpers


def _active(now: datetime) -> list[Any]:
    """SQL conditions: a share that still counts (not revoked, spent, over, lapsed)."""
    return [
        Share.revoked_at.is_(None),
        Share.spent_at.is_(None),
        or_(Share.not_after.is_(None), Share.not_after > now),
        or_(Share.accepted_at.is_not(None), Share.created_at > now - INVITATION_TTL),
    ]


async def details(session: AsyncSession, rows: Sequence[Share], now: datetime) -> list[ShareDetail]:
    """Details of many shares in three queries (listings of 200 stay cheap)."""
    ids = [s.id for s in rows]
    home_ids = {s.home_id for s in rows if s.home_id is not None}
    by_share: dict[uuid.UUID, list[LockRef]] = defaultdict(list)
    by_home: dict[uuid.UUID, list[LockRef]] = defaultdict(list)
    names: dict[uuid.UUID, str] = {}
    owners: dict[uuid.UUID, uuid.UUID] = {}
    if ids:
        targets = (
            select(ShareLock.share_id, Lock.id, Lock.name)
            .join(Lock, Lock.id == ShareLock.lock_id)
            .where(ShareLock.share_id.in_(ids))
            .order_by(Lock.name, Lock.id)
        )
        for share_id, lock_id, name in (await session.execute(targets)).all():
            by_share[share_id].append(LockRef(lock_id, name))
    if home_ids:
        for home in (await session.execute(select(Home).where(Home.id.in_(home_ids)))).scalars():
            names[home.id] = home.name
            owners[home.id] = home.owner_id
        in_homes = (
            select(HomeLock.home_id, Lock.id, Lock.name, Lock.owner_id)
            .join(Lock, Lock.id == HomeLock.lock_id)
            .where(HomeLock.home_id.in_(home_ids))
            .order_by(Lock.name, Lock.id)
        )
        for home_id, lock_id, name, owner in (await session.execute(in_homes)).all():
            if owners.get(home_id) == owner:
                by_home[home_id].append(LockRef(lock_id, name))
    found = []
    for share in rows:
        if share.scope == ShareScope.HOME.value and share.home_id is not None:
            locks = by_home[share.home_id]
        else:
            locks = by_share[share.id]
        home_name = names.get(share.home_id) if share.home_id is not None else None
        found.append(ShareDetail(share, status_of(share, now), locks, home_name))
    return found


async def detail_of(session: AsyncSession, share: Share, now: datetime) -> ShareDetail:
    return (await details(session, [share], now))[0]


async def _target_lock_ids(session: AsyncSession, share: Share) -> list[uuid.UUID]:
    if share.scope == ShareScope.HOME.value:
        return []
    query = select(ShareLock.lock_id).where(ShareLock.share_id == share.id)
    return sorted((await session.execute(query)).scalars())


# ------------------------------------------------------------------------ limits


async def _lock_scope_counts(
    session: AsyncSession, lock_ids: Sequence[uuid.UUID], owner_id: uuid.UUID, now: datetime
) -> dict[uuid.UUID, int]:
    if not lock_ids:
        return {}
    query = (
        select(ShareLock.lock_id, func.count())
        .join(Share, Share.id == ShareLock.share_id)
        .where(ShareLock.lock_id.in_(lock_ids), Share.owner_id == owner_id, *_active(now))
        .group_by(ShareLock.lock_id)
    )
    return {lock_id: int(n) for lock_id, n in (await session.execute(query)).all()}


async def _home_scope_count(session: AsyncSession, home: Home, now: datetime) -> int:
    query = (
        select(func.count())
        .select_from(Share)
        .where(
            Share.scope == ShareScope.HOME.value,
            Share.home_id == home.id,
            Share.owner_id == home.owner_id,
            *_active(now),
        )
    )
    return int((await session.execute(query)).scalar_one())


def _over(count: int, lock_id: uuid.UUID | None) -> None:
    if count >= MAX_ACTIVE_SHARES_PER_LOCK:
        raise ShareLimitReached(
            f"a lock has at most {MAX_ACTIVE_SHARES_PER_LOCK} active shares; revoke some first",
            limit=MAX_ACTIVE_SHARES_PER_LOCK,
            lock_id=str(lock_id) if lock_id is not None else None,
        )


async def _check_limits_for_locks(
    session: AsyncSession, locks: Sequence[Lock], now: datetime
) -> None:
    counts = await _lock_scope_counts(session, [lock.id for lock in locks], locks[0].owner_id, now)
    for lock in locks:
        home = await home_of(session, lock.id)
        shared_home = home is not None and home.owner_id == lock.owner_id
        members = await _home_scope_count(session, home, now) if shared_home and home else 0
        _over(counts.get(lock.id, 0) + members, lock.id)


async def _check_limits_for_home(session: AsyncSession, home: Home, now: datetime) -> None:
    query = select(HomeLock.lock_id).where(HomeLock.home_id == home.id)
    lock_ids = list((await session.execute(query)).scalars())
    counts = await _lock_scope_counts(session, lock_ids, home.owner_id, now)
    busiest = max(counts.values(), default=0)
    _over(await _home_scope_count(session, home, now) + busiest, None)


# ------------------------------------------------------------------------ rights


def _delegable(is_owner: bool, wanted: Terms, grantable: frozenset[Permission]) -> None:
    """A manager grants only member and guest shares with permissions they hold."""
    if is_owner:
        return
    if wanted.role not in DELEGABLE_ROLES:
        raise Forbidden("only the owner grants the admin role")
    beyond = wanted.permissions - grantable
    if beyond:
        names = ", ".join(sorted(p.value for p in beyond))
        raise Forbidden(f"cannot grant what one does not hold: {names}")


async def _manager_rights(
    session: AsyncSession, principal: Principal, share: Share, now: datetime
) -> frozenset[Permission]:
    """What ``principal`` may grant on every target of ``share`` (manage_shares needed);
    NotFound when the share's targets are invisible to them."""
    if share.scope == ShareScope.HOME.value:
        if share.home_id is None:  # pragma: no cover - a home share always names its home
            raise NotFound("no such share")
        rights = await home_rights(session, principal, share.home_id, now)
        if rights.is_owner:
            return ALL_PERMISSIONS
        _require_home(rights)
        return rights.permissions
    grantable = ALL_PERMISSIONS
    lock_ids = await _target_lock_ids(session, share)
    if not lock_ids:
        raise NotFound("no such share")
    for lock_id in lock_ids:
        _lock, access = await lock_access(session, principal, lock_id, now)
        grantable &= require_manage_shares(access)
    return grantable


def _require_home(rights: HomeRights) -> None:
    rights.require_permission(Permission.MANAGE_SHARES)


def _share_resource(share: Share) -> Resource:
    return Resource(ResourceKind.SHARE, str(share.id), share.owner_id)


async def _load(session: AsyncSession, share_id: uuid.UUID, *, for_update: bool = False) -> Share:
    share = await session.get(Share, share_id, with_for_update=for_update)
    if share is None:
        raise NotFound("no such share")
    return share


# ------------------------------------------------------------------------ create


async def create(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    *,
    contact_kind: ContactKind,
    contact: str,
    wanted: Terms,
    now: datetime,
    home_id: uuid.UUID | None = None,
    lock_ids: Sequence[uuid.UUID] = (),
) -> ShareDetail:
    """Grant a share to a contact (module docstring); it starts ``pending``."""
    if principal.id is None:
        raise Forbidden("only users grant shares")
    address = normalise(contact_kind, contact)
    if (home_id is None) == (not lock_ids):
        raise InvalidInput("a share is for either a home or a list of locks")
    made_in: uuid.UUID | None
    if home_id is not None:
        rights = await home_rights(session, principal, home_id, now, for_update=True)
        grantable = ALL_PERMISSIONS
        if not rights.is_owner:
            _require_home(rights)
            grantable = rights.permissions
        owner_id, scope, made_in = rights.home.owner_id, ShareScope.HOME, rights.home.id
        _delegable(rights.is_owner, wanted, grantable)
        await _check_limits_for_home(session, rights.home, now)
        locks: list[Lock] = []
    else:
        unique = sorted(set(lock_ids))
        if len(unique) > MAX_LOCKS_PER_SHARE:
            raise InvalidInput(f"a share lists at most {MAX_LOCKS_PER_SHARE} locks")
        grantable = ALL_PERMISSIONS
        locks = []
        for lock_id in unique:  # sorted: concurrent grants lock rows in one order
            lock, access = await lock_access(session, principal, lock_id, now, for_update=True)
            grantable &= require_manage_shares(access)
            locks.append(lock)
        owners = {lock.owner_id for lock in locks}
        if len(owners) != 1:
            raise InvalidInput("the locks of one share must all have the same owner")
        owner_id, scope = locks[0].owner_id, ShareScope.LOCKS
        _delegable(principal.id == owner_id, wanted, grantable)
        homes = [await home_of(session, lock.id) for lock in locks]
        if wanted.schedule is not None and any(h is None for h in homes):
            raise InvalidInput(
                "a schedule is evaluated in the lock's time zone: put the lock in a home first"
            )
        home_set = {h.id for h in homes if h is not None and h.owner_id == owner_id}
        made_in = home_set.pop() if len(home_set) == 1 and all(homes) else None
        await _check_limits_for_locks(session, locks, now)
    share = Share(
        id=uuid.uuid4(),
        owner_id=owner_id,
        scope=scope.value,
        home_id=made_in,
        grantee_id=None,
        invite_kind=contact_kind.value,
        invite_address=address,
        label=wanted.label,
        role=wanted.role.value,
        permissions=sorted(p.value for p in wanted.permissions),
        paths=sorted(p.value for p in wanted.paths),
        validity=wanted.validity.kind.value,
        not_before=wanted.validity.not_before,
        not_after=wanted.validity.not_after,
        schedule=wanted.schedule.to_json() if wanted.schedule is not None else None,
        uses=0,
        created_by=principal.id,
        created_at=now,
        updated_at=now,
    )
    session.add(share)
    await session.flush()
    session.add_all(ShareLock(share_id=share.id, lock_id=lock.id) for lock in locks)
    await session.flush()
    await audit.record(
        session,
        ctx,
        "share.create",
        audit.AuditResult.OK,
        target=f"share:{share.id}",
        owner=str(owner_id),
        scope=scope.value,
        home=str(made_in) if made_in else None,
        locks=[str(lock.id) for lock in locks],
        role=share.role,
        permissions=share.permissions,
        paths=share.paths,
        validity=share.validity,
        scheduled=share.schedule is not None,
        contact_kind=contact_kind.value,
    )
    await feed_share_changed(session, share, "created", ctx.actor)  # user-visible feed
    return await detail_of(session, share, now)


# ------------------------------------------------------------------------ read


async def get(
    session: AsyncSession, principal: Principal, share_id: uuid.UUID, now: datetime
) -> ShareDetail:
    """Visible to its owner, the RAS's admins, its grantee and the managers of its targets."""
    share = await _load(session, share_id)
    if not (
        policy_allows(principal, Action.SHARE_READ, _share_resource(share))
        or (principal.id is not None and share.grantee_id == principal.id)
    ):
        try:
            await _manager_rights(session, principal, share, now)
        except (Forbidden, NotFound):
            raise NotFound("no such share") from None
    return await detail_of(session, share, now)


async def _listing(
    session: AsyncSession,
    query: Select[Share],
    now: datetime,
    limit: int,
    cursor: str | None,
    active_only: bool,
) -> Page[ShareDetail]:
    if active_only:
        query = query.where(*_active(now))
    rows = list((await session.execute(after(query, cursor, limit))).scalars())
    page = page_of(rows, limit)
    return Page(await details(session, page.items, now), page.next_cursor)


async def list_for_lock(
    session: AsyncSession,
    principal: Principal,
    lock_id: uuid.UUID,
    now: datetime,
    *,
    limit: int,
    cursor: str | None,
    active_only: bool = True,
) -> Page[ShareDetail]:
    """Everyone a lock is shared with (its own shares and its home's memberships)."""
    lock, access = await lock_access(session, principal, lock_id, now)
    if not policy_allows(
        principal, Action.SHARE_READ, Resource(ResourceKind.LOCK, str(lock.id), lock.owner_id)
    ):
        require_manage_shares(access)
    home = await home_of(session, lock.id)
    query = select(Share).where(applies_to_lock(lock, home))
    return await _listing(session, query, now, limit, cursor, active_only)


async def list_members(
    session: AsyncSession,
    principal: Principal,
    home_id: uuid.UUID,
    now: datetime,
    *,
    limit: int,
    cursor: str | None,
    active_only: bool = True,
) -> Page[ShareDetail]:
    """A home's memberships (its ``home``-scope shares)."""
    rights = await home_rights(session, principal, home_id, now)
    if not rights.allows(Action.HOME_READ):
        _require_home(rights)
    query = select(Share).where(
        Share.scope == ShareScope.HOME.value,
        Share.home_id == rights.home.id,
        Share.owner_id == rights.home.owner_id,
    )
    return await _listing(session, query, now, limit, cursor, active_only)


async def list_granted(
    session: AsyncSession,
    principal: Principal,
    now: datetime,
    *,
    limit: int,
    cursor: str | None,
    active_only: bool = True,
) -> Page[ShareDetail]:
    """The shares of the caller's own locks and homes."""
    query = select(Share).where(Share.owner_id == principal.id)
    return await _listing(session, query, now, limit, cursor, active_only)


async def list_received(
    session: AsyncSession,
    principal: Principal,
    now: datetime,
    *,
    limit: int,
    cursor: str | None,
    active_only: bool = True,
) -> Page[ShareDetail]:
    """ "My shares": those granted to the caller and accepted."""
    query = select(Share).where(Share.grantee_id == principal.id, Share.accepted_at.is_not(None))
    return await _listing(session, query, now, limit, cursor, active_only)


# ------------------------------------------------------------------------ change


@dataclass(frozen=True)
class Changes:
    """What an update changes; None leaves a field as it is (``clear_*`` empties it)."""

    role: str | None = None
    permissions: list[str] | None = None
    paths: list[str] | None = None
    validity: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    schedule: dict[str, Any] | None = None
    clear_schedule: bool = False
    label: str | None = None
    clear_label: bool = False

    def merged(self, share: Share) -> Terms:
        validity_given = self.validity is not None
        role = self.role or share.role
        permissions = self.permissions
        if permissions is None and self.role is None:
            permissions = list(share.permissions)
        schedule = None if self.clear_schedule else (self.schedule or share.schedule)
        return terms(
            role=role,
            permissions=permissions,
            paths=self.paths if self.paths is not None else share.paths,
            validity=self.validity or share.validity,
            not_before=self.not_before if validity_given else share.not_before,
            not_after=self.not_after if validity_given else share.not_after,
            schedule=schedule,
            label=None if self.clear_label else (self.label or share.label),
        )


async def update(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    share_id: uuid.UUID,
    changes: Changes,
    now: datetime,
) -> ShareDetail:
    """Change a live share's terms (who may: module docstring). The grantee stays."""
    share = await _load(session, share_id, for_update=True)
    is_owner = policy_allows(principal, Action.SHARE_UPDATE, _share_resource(share))
    grantable = ALL_PERMISSIONS
    if not is_owner:
        try:
            grantable = await _manager_rights(session, principal, share, now)
        except NotFound:
            raise NotFound("no such share") from None
        if share.role not in {r.value for r in DELEGABLE_ROLES}:
            raise Forbidden("only the owner changes an admin's share")
    if share.revoked_at is not None or share.spent_at is not None:
        raise Conflict("a revoked or spent share cannot be changed; grant a new one")
    wanted = changes.merged(share)
    _delegable(is_owner, wanted, grantable)
    if wanted.schedule is not None and share.scope == ShareScope.LOCKS.value:
        for lock_id in await _target_lock_ids(session, share):
            if await home_of(session, lock_id) is None:
                raise InvalidInput(
                    "a schedule is evaluated in the lock's time zone: put the lock in a home first"
                )
    before = _terms_record(share)
    share.role = wanted.role.value
    share.permissions = sorted(p.value for p in wanted.permissions)
    share.paths = sorted(p.value for p in wanted.paths)
    share.validity = wanted.validity.kind.value
    share.not_before = wanted.validity.not_before
    share.not_after = wanted.validity.not_after
    share.schedule = wanted.schedule.to_json() if wanted.schedule is not None else None
    share.label = wanted.label
    after_ = _terms_record(share)
    changed = sorted(k for k in after_ if after_[k] != before[k])
    if changed:
        share.updated_at = now
        await session.flush()
        await audit.record(
            session, ctx, "share.update", audit.AuditResult.OK, target=f"share:{share.id}",
            changed=changed, role=share.role, permissions=share.permissions, paths=share.paths,
            validity=share.validity,
        )  # fmt: skip
        await feed_share_changed(session, share, "updated", ctx.actor)  # user-visible feed
    return await detail_of(session, share, now)


def _terms_record(share: Share) -> dict[str, Any]:
    return {
        "role": share.role,
        "permissions": sorted(share.permissions),
        "paths": sorted(share.paths),
        "validity": share.validity,
        "not_before": share.not_before,
        "not_after": share.not_after,
        "schedule": share.schedule,
        "label": share.label,
    }


# ------------------------------------------------------------------------ revoke


async def revoke_one(
    session: AsyncSession,
    ctx: audit.AuditContext,
    share: Share,
    by: uuid.UUID | None,
    now: datetime,
    reason: str,
    **details: Any,
) -> None:
    share.revoked_at = now
    share.revoked_by = by
    share.revoke_reason = reason
    share.updated_at = now
    await session.flush()
    await audit.record(
        session, ctx, "share.revoke", audit.AuditResult.OK, target=f"share:{share.id}",
        reason=reason, grantee=str(share.grantee_id) if share.grantee_id else None,
        scope=share.scope, **details,
    )  # fmt: skip
    await feed_share_changed(session, share, "revoked", ctx.actor)  # user-visible feed


async def _cascade(
    session: AsyncSession,
    ctx: audit.AuditContext,
    membership: Share,
    by: uuid.UUID | None,
    now: datetime,
) -> int:
    """Revoke what came with a membership: the member's other shares made in that home
    and the pending invitations to the same contact there."""
    same_person = []
    if membership.grantee_id is not None:
        same_person.append(Share.grantee_id == membership.grantee_id)
    if membership.invite_address is not None:
        same_person.append(
            and_(
                Share.grantee_id.is_(None),
                Share.invite_kind == membership.invite_kind,
                Share.invite_address == membership.invite_address,
            )
        )
    if not same_person:  # pragma: no cover - a share has a grantee or a contact
        return 0
    query = (
        select(Share)
        .where(
            Share.home_id == membership.home_id,
            Share.id != membership.id,
            Share.revoked_at.is_(None),
            or_(*same_person),
        )
        .order_by(Share.created_at, Share.id)
        .with_for_update()
    )
    found = list((await session.execute(query)).scalars())
    for share in found:
        await revoke_one(
            session, ctx, share, by, now, "membership-revoked", cascade_of=str(membership.id)
        )
    return len(found)


async def revoke(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    share_id: uuid.UUID,
    now: datetime,
) -> ShareDetail:
    """Revoke a share (idempotent: a revoked share is returned as it is)."""
    share = await _load(session, share_id, for_update=True)
    if principal.id is not None and share.grantee_id == principal.id:
        reason = "renounced"
    elif policy_allows(principal, Action.SHARE_REVOKE, _share_resource(share)):
        reason = "revoked"
    else:
        try:
            await _manager_rights(session, principal, share, now)
        except NotFound:
            raise NotFound("no such share") from None
        if share.role not in {r.value for r in DELEGABLE_ROLES}:
            raise Forbidden("only the owner revokes an admin's share")
        reason = "revoked"
    if share.revoked_at is not None:
        return await detail_of(session, share, now)
    await revoke_one(session, ctx, share, principal.id, now, reason)
    if share.scope == ShareScope.HOME.value:
        await _cascade(session, ctx, share, principal.id, now)
    return await detail_of(session, share, now)


async def revoke_made_in_home(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    home_id: uuid.UUID,
    now: datetime,
    reason: str,
) -> int:
    """Revoke every live share made in a home (the home is being deleted)."""
    query = (
        select(Share)
        .where(Share.home_id == home_id, Share.revoked_at.is_(None))
        .order_by(Share.created_at, Share.id)
        .with_for_update()
    )
    found = list((await session.execute(query)).scalars())
    for share in found:
        await revoke_one(session, ctx, share, principal.id, now, reason)
    return len(found)


async def revoke_all_of(
    session: AsyncSession,
    ctx: audit.AuditContext,
    condition: Any,
    now: datetime,
    reason: str,
) -> int:
    """Revoke every live share matching ``condition`` (account deletion)."""
    query = (
        select(Share)
        .where(condition, Share.revoked_at.is_(None))
        .order_by(Share.created_at, Share.id)
        .with_for_update()
    )
    found = list((await session.execute(query)).scalars())
    for share in found:
        await revoke_one(session, ctx, share, None, now, reason)
    return len(found)


async def release_lock(
    session: AsyncSession,
    ctx: audit.AuditContext,
    lock_id: uuid.UUID,
    now: datetime,
    reason: str,
) -> int:
    """End what sharing holds on a lock that changes hands or is unbound (DDMS calls it in
    the transfer's or unbind's transaction).

    Access is already refused without it (a share applies only while the lock has the
    owner who made it, and an unbound lock's rows cascade away); this keeps the records
    true: the lock leaves its home, each share of it alone is revoked, and a share of
    several locks loses this one. Audited; returns how many shares were touched.
    """
    placed = await session.get(HomeLock, lock_id, with_for_update=True)
    if placed is not None:
        await session.delete(placed)
        await session.flush()
        await audit.record(
            session, ctx, "home.lock_remove", audit.AuditResult.OK,
            target=f"home:{placed.home_id}", lock=str(lock_id), reason=reason,
        )  # fmt: skip
    query = (
        select(Share)
        .join(ShareLock, ShareLock.share_id == Share.id)
        .where(ShareLock.lock_id == lock_id, Share.revoked_at.is_(None))
        .order_by(Share.created_at, Share.id)
        .with_for_update()
    )
    found = list((await session.execute(query)).scalars())
    for share in found:
        if len(await _target_lock_ids(session, share)) == 1:
            await revoke_one(session, ctx, share, None, now, reason, lock=str(lock_id))
            continue
        link = await session.get(ShareLock, (share.id, lock_id))
        if link is not None:
            await session.delete(link)
        share.updated_at = now
        await session.flush()
        await audit.record(
            session, ctx, "share.update", audit.AuditResult.OK, target=f"share:{share.id}",
            changed=["locks"], lock_removed=str(lock_id), reason=reason,
        )  # fmt: skip
    return len(found)
