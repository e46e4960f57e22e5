"""Homes: a named group of one owner's locks and gateways, with members.

Decisions (docs/security.md, "Sharing model"):

- A home has one owner and an IANA time zone, the zone of its locks: schedules of
  shares on them are evaluated in it. Changing it moves every schedule with it.
- A lock (a gateway) is in at most one home, and only its owner's: putting it in a
  home takes it out of the one it was in. Only the owner arranges locks and gateways;
  a home admin (``manage_settings``) may rename the home and change its zone.
- Members are ``home``-scope shares (:mod:`.shares`); they cover every lock of the home,
  also those added later, and stop covering a lock taken out of it.
- Deleting a home (owner, or a RAS administrator) first revokes every share made in it,
  each audited, then removes the home; its locks and gateways stay with their owner.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.access import Action, Principal, Resource, ResourceKind, authorize
from heslock.ras.services.errors import Conflict, InvalidInput, NotFound
from heslock.ras.services.sharing import shares
from heslock.ras.services.sharing.policy import Permission, Role
from heslock.ras.services.sharing.rights import HomeRights, home_rights
from heslock.ras.services.sharing.schedule import ScheduleError, zone_named
from heslock.ras.store.models import Gateway, Home, HomeGateway, HomeLock, Lock, Share, ShareScope

#: How many homes one user may own.
MAX_HOMES_PER_OWNER = 100


@dataclass(frozen=True)
class HomeDetail:
    """A home as its owner or a member sees it."""

    home: Home
    role: Role | None  #: the caller's role (None: a RAS administrator looking)
    permissions: frozenset[Permission]
    lock_ids: list[uuid.UUID]
    gateway_ids: list[uuid.UUID]


def check_zone(name: str) -> str:
    try:
        return zone_named(name).key
    except ScheduleError as exc:
        raise InvalidInput(str(exc)) from None


async def _lock_ids(session: AsyncSession, home_id: uuid.UUID) -> list[uuid.UUID]:
    query = (
        select(HomeLock.lock_id)
        .where(HomeLock.home_id == home_id)
        .order_by(HomeLock.added_at, HomeLock.lock_id)
    )
    return list((await session.execute(query)).scalars())


async def _gateway_ids(session: AsyncSession, home_id: uuid.UUID) -> list[uuid.UUID]:
    query = (
        select(HomeGateway.gateway_id)
        .where(HomeGateway.home_id == home_id)
        .order_by(HomeGateway.added_at, HomeGateway.gateway_id)
    )
    return list((await session.execute(query)).scalars())


async def detail(session: AsyncSession, rights: HomeRights) -> HomeDetail:
    home = rights.home
    return HomeDetail(
        home,
        rights.role,
        rights.permissions,
        await _lock_ids(session, home.id),
        await _gateway_ids(session, home.id),
    )


async def create(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    name: str,
    time_zone: str,
    now: datetime,
) -> HomeDetail:
    authorize(principal, Action.HOME_CREATE, Resource(ResourceKind.HOME, owner_id=principal.id))
    assert principal.id is not None  # HOME_CREATE is an owner's action: a user
    owned = await session.execute(select(Home.id).where(Home.owner_id == principal.id))
    if len(owned.all()) >= MAX_HOMES_PER_OWNER:
        raise Conflict(f"a user owns at most {MAX_HOMES_PER_OWNER} homes")
    home = Home(
        id=uuid.uuid4(),
        owner_id=principal.id,
        name=name,
        time_zone=check_zone(time_zone),
        created_at=now,
        updated_at=now,
    )
    session.add(home)
    await session.flush()
    await audit.record(
        session, ctx, "home.create", audit.AuditResult.OK, target=f"home:{home.id}",
        time_zone=home.time_zone,
    )  # fmt: skip
    return HomeDetail(home, Role.OWNER, frozenset(Permission), [], [])


async def list_visible(
    session: AsyncSession, principal: Principal, now: datetime
) -> list[HomeDetail]:
    """The homes the caller owns, then those they are a member of."""
    owned = select(Home.id).where(Home.owner_id == principal.id)
    member = (
        select(Home.id)
        .join(Share, Share.home_id == Home.id)
        .where(
            Share.scope == ShareScope.HOME.value,
            Share.grantee_id == principal.id,
            Share.owner_id == Home.owner_id,
            Share.accepted_at.is_not(None),
            Share.revoked_at.is_(None),
        )
    )
    query = (
        select(Home.id)
        .where(or_(Home.id.in_(owned), Home.id.in_(member)))
        .order_by(Home.owner_id != principal.id, Home.created_at, Home.id)
        .limit(2 * MAX_HOMES_PER_OWNER)
    )
    ids = list((await session.execute(query)).scalars())
    return [await detail(session, await home_rights(session, principal, h, now)) for h in ids]


async def get(
    session: AsyncSession, principal: Principal, home_id: uuid.UUID, now: datetime
) -> HomeDetail:
    """Any member sees the home it is in; so do its owner and the RAS's administrators."""
    return await detail(session, await home_rights(session, principal, home_id, now))


async def update(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    home_id: uuid.UUID,
    now: datetime,
    *,
    name: str | None = None,
    time_zone: str | None = None,
) -> HomeDetail:
    rights = await home_rights(session, principal, home_id, now, for_update=True)
    rights.require(Action.HOME_UPDATE, Permission.MANAGE_SETTINGS)
    home = rights.home
    changed = []
    if name is not None and name != home.name:
        home.name = name
        changed.append("name")
    if time_zone is not None and check_zone(time_zone) != home.time_zone:
        home.time_zone = check_zone(time_zone)
        changed.append("time_zone")
    if changed:
        home.updated_at = now
        await audit.record(
            session, ctx, "home.update", audit.AuditResult.OK, target=f"home:{home.id}",
            changed=changed, time_zone=home.time_zone,
        )  # fmt: skip
    return await detail(session, rights)


async def delete(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    home_id: uuid.UUID,
    now: datetime,
) -> None:
    rights = await home_rights(session, principal, home_id, now, for_update=True)
    rights.require(Action.HOME_DELETE, None)
    home = rights.home
    revoked = await shares.revoke_made_in_home(
        session, principal, ctx, home.id, now, "home-deleted"
    )
    await session.delete(home)
    await session.flush()
    await audit.record(
        session, ctx, "home.delete", audit.AuditResult.OK, target=f"home:{home.id}",
        shares_revoked=revoked, owner=str(home.owner_id),
    )  # fmt: skip


async def _arrangeable(
    session: AsyncSession, principal: Principal, home_id: uuid.UUID, now: datetime
) -> Home:
    rights = await home_rights(session, principal, home_id, now, for_update=True)
    rights.require(Action.HOME_ARRANGE, None)
    return rights.home


async def _place(
    session: AsyncSession,
    ctx: audit.AuditContext,
    placed: HomeLock | HomeGateway | None,
    new: HomeLock | HomeGateway,
    action: str,
    **what: str,
) -> None:
    """Put a lock or gateway in ``new.home_id``: ``placed`` is where it is now (moved out
    of any other home; nothing happens, nothing is audited, if it is there already)."""
    previous = placed.home_id if placed is not None else None
    if previous == new.home_id:
        return
    if placed is None:
        session.add(new)
    else:
        placed.home_id, placed.added_at = new.home_id, new.added_at
    await session.flush()
    await audit.record(
        session, ctx, action, audit.AuditResult.OK, target=f"home:{new.home_id}",
        previous_home=str(previous) if previous else None, **what,
    )  # fmt: skip


async def _unplace(
    session: AsyncSession,
    ctx: audit.AuditContext,
    placed: HomeLock | HomeGateway,
    action: str,
    **what: str,
) -> None:
    """Take a lock or gateway out of its home (``placed``), audited."""
    home_id = placed.home_id
    await session.delete(placed)
    await session.flush()
    await audit.record(session, ctx, action, audit.AuditResult.OK, target=f"home:{home_id}", **what)


async def add_lock(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    home_id: uuid.UUID,
    lock_id: uuid.UUID,
    now: datetime,
) -> HomeDetail:
    """Put one of the owner's locks in the home (out of any other home it was in)."""
    home = await _arrangeable(session, principal, home_id, now)
    lock = await session.get(Lock, lock_id, with_for_update=True)
    if lock is None or lock.owner_id != home.owner_id:
        raise NotFound("no such lock among the home owner's locks")
    placed = await session.get(HomeLock, lock.id, with_for_update=True)
    new = HomeLock(lock_id=lock.id, home_id=home.id, added_at=now)
    await _place(session, ctx, placed, new, "home.lock_add", lock=str(lock.id))
    return await detail(session, await home_rights(session, principal, home.id, now))


async def remove_lock(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    home_id: uuid.UUID,
    lock_id: uuid.UUID,
    now: datetime,
) -> None:
    """Take a lock out of the home: the home's shares stop covering it at once."""
    home = await _arrangeable(session, principal, home_id, now)
    placed = await session.get(HomeLock, lock_id, with_for_update=True)
    if placed is None or placed.home_id != home.id:
        raise NotFound("no such lock in this home")
    await _unplace(session, ctx, placed, "home.lock_remove", lock=str(lock_id))


async def add_gateway(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    home_id: uuid.UUID,
    gateway_id: uuid.UUID,
    now: datetime,
) -> HomeDetail:
    home = await _arrangeable(session, principal, home_id, now)
    gateway = await session.get(Gateway, gateway_id)
    if gateway is None or gateway.owner_id != home.owner_id or gateway.revoked_at is not None:
        raise NotFound("no such gateway among the home owner's gateways")
    placed = await session.get(HomeGateway, gateway.id, with_for_update=True)
    new = HomeGateway(gateway_id=gateway.id, home_id=home.id, added_at=now)
    await _place(session, ctx, placed, new, "home.gateway_add", gateway=str(gateway.id))
    return await detail(session, await home_rights(session, principal, home.id, now))


async def remove_gateway(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    home_id: uuid.UUID,
    gateway_id: uuid.UUID,
    now: datetime,
) -> None:
    home = await _arrangeable(session, principal, home_id, now)
    placed = await session.get(HomeGateway, gateway_id, with_for_update=True)
    if placed is None or placed.home_id != home.id:
        raise NotFound("no such gateway in this home")
    await _unplace(session, ctx, placed, "home.gateway_remove", gateway=str(gateway_id))
