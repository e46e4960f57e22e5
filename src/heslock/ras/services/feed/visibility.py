"""Which feed events a user may see: the sharing policy, resolved per lock.

A user sees the events of a lock when the sharing policy allows them ``view_log`` or
``view_status`` on it **now** (:func:`heslock.ras.services.sharing.resolver.effective_access`,
by any path the share allows): the owner always, a share holder while the share is in
force (validity, schedule, not revoked). Events addressed to a user (``feed_events.user_id``: their
gateways, their share changes) are theirs alone. An administrator sees no other user's
feed (the RAS policy lets them *see* locks, not read their logs).

A third-party app (OAuth 2.0 token with scope ``events:read``, issue 8) sees the events
of the locks its grant reaches (listed, or in a listed home) that the granting user may
view **now** by the ``integration`` path, narrowed by the token's scope
(:func:`effective_access` does both): a revoked share, a narrowed grant or a lost scope
stops them. Of the events addressed to the granting user (``feed_events.user_id``) an
app sees only share changes (``share.*``) whose locks it may all see (or, for a share
of a home, whose home the grant lists): never their gateways' or their own account's
events (:func:`app_sees_addressed`). The webhook dispatcher applies the same rule.

:func:`visible_locks` is what a listing filters by: it runs the policy on every
candidate lock (owned, or named by a share or a shared home the user holds). A stream
asks per lock as events come (:class:`VisibilityCache`) and keeps each answer for
:data:`VISIBILITY_TTL_S`: a revocation stops its events within that time, and a lock
met for the first time (just bound, just shared) is evaluated on its first event.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Final

from sqlalchemy import or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services.access import Integration, Principal, PrincipalKind
from heslock.ras.services.sharing.policy import Path, Permission
from heslock.ras.services.sharing.resolver import effective_access
from heslock.ras.store.models import FeedEvent, HomeLock, Lock, Share, ShareLock, ShareScope

#: A stream re-reads the policy this often (module docstring).
VISIBILITY_TTL_S: Final = 10.0
#: Candidate locks examined per user at most (owned + shared): bounds one evaluation.
MAX_CANDIDATE_LOCKS: Final = 10_000
#: Either permission lets a user follow a lock's events.
VIEWING: Final = (Permission.VIEW_LOG, Permission.VIEW_STATUS)
#: The scope an app's token needs to read any event.
EVENTS_SCOPE: Final = "events:read"


def app_may_read_events(integration: Integration) -> bool:
    """Whether an app's token may read events at all (its scope)."""
    return EVENTS_SCOPE in integration.scopes


#: The addressed kinds an app may see (module docstring).
APP_ADDRESSED_FAMILY: Final = "share."

Visible = Callable[[set[uuid.UUID]], Awaitable[set[uuid.UUID]]]


async def app_sees_addressed(row: FeedEvent, integration: Integration, visible: Visible) -> bool:
    """Whether an app may see ``row``, an event addressed to its granting user."""
    if not row.kind.startswith(APP_ADDRESSED_FAMILY):
        return False
    raw = (row.payload or {}).get("lock_ids") or []
    try:
        locks = {uuid.UUID(str(value)) for value in raw} if isinstance(raw, list) else set()
    except ValueError:
        return False
    if locks:
        return locks <= await visible(locks)
    return row.home_id is not None and row.home_id in integration.home_ids


async def _app_candidates(session: AsyncSession, integration: Integration) -> list[Lock]:
    """The locks an app's grant reaches: listed, or in a listed home."""
    by_home = select(HomeLock.lock_id).where(HomeLock.home_id.in_(list(integration.home_ids)))
    query = (
        select(Lock)
        .where(or_(Lock.id.in_(list(integration.lock_ids)), Lock.id.in_(by_home)))
        .order_by(Lock.id)
        .limit(MAX_CANDIDATE_LOCKS)
    )
    return list((await session.execute(query)).scalars())


async def visible_locks(
    session: AsyncSession, principal: Principal, now: datetime
) -> frozenset[uuid.UUID]:
    """The locks whose feed events ``principal`` may see now (module docstring)."""
    if principal.kind is not PrincipalKind.USER or principal.id is None:
        return frozenset()
    if principal.integration is not None:
        if not app_may_read_events(principal.integration):
            return frozenset()
        found: set[uuid.UUID] = set()
        for row in await _app_candidates(session, principal.integration):
            if await may_view(session, principal, row, now):
                found.add(row.id)
        return frozenset(found)
    user = principal.id
    held = select(Share.id).where(
        Share.grantee_id == user, Share.accepted_at.is_not(None), Share.revoked_at.is_(None)
    )
    by_lock = select(ShareLock.lock_id.label("lock_id")).where(ShareLock.share_id.in_(held))
    homes = select(Share.home_id).where(
        Share.id.in_(held), Share.scope == ShareScope.HOME.value, Share.home_id.is_not(None)
    )
    by_home = select(HomeLock.lock_id.label("lock_id")).where(HomeLock.home_id.in_(homes))
    owned = select(Lock.id.label("lock_id")).where(Lock.owner_id == user)
    candidates = union(owned, by_lock, by_home).subquery()
    query = (
        select(Lock)
        .where(Lock.id.in_(select(candidates.c.lock_id)))
        .order_by(Lock.id)
        .limit(MAX_CANDIDATE_LOCKS)
    )
    seen: set[uuid.UUID] = set()
    for lock in (await session.execute(query)).scalars():
        if await may_view(session, principal, lock, now):
            seen.add(lock.id)
    return frozenset(seen)


async def may_view(session: AsyncSession, principal: Principal, lock: Lock, now: datetime) -> bool:
    """Whether ``principal`` may follow ``lock``'s events now (module docstring)."""
    if principal.integration is not None:
        # An app: the integration path only, narrowed by the token's scope.
        if not app_may_read_events(principal.integration):
            return False
        access = await effective_access(session, principal, lock, now, Path.INTEGRATION)
        return any(access.decide(permission).allowed for permission in VIEWING)
    if principal.kind is PrincipalKind.USER and lock.owner_id == principal.id:
        return True
    access = await effective_access(session, principal, lock, now, Path.REMOTE)
    return any(
        replace(access, path=path).decide(permission).allowed
        for path in Path
        for permission in VIEWING
    )


class VisibilityCache:
    """A stream's verdicts per lock, each kept :data:`VISIBILITY_TTL_S` (module docstring).

    A lock the stream has not met yet (bound, shared or moved into a shared home since
    the stream opened) is evaluated when its first event comes, so no event of it is
    skipped for want of a fresh answer.
    """

    def __init__(self, principal: Principal, ttl_s: float = VISIBILITY_TTL_S) -> None:
        self.principal = principal
        self.ttl_s = ttl_s
        self._verdicts: dict[uuid.UUID, tuple[bool, float]] = {}

    async def visible(
        self,
        session: AsyncSession,
        locks: Iterable[uuid.UUID],
        now: datetime,
        monotonic: float,
    ) -> set[uuid.UUID]:
        """Those of ``locks`` the principal may see (evaluating unknown or stale ones)."""
        wanted = set(locks)
        stale = {
            lock
            for lock in wanted
            if lock not in self._verdicts or monotonic - self._verdicts[lock][1] >= self.ttl_s
        }
        if stale:
            if len(self._verdicts) + len(stale) > MAX_CANDIDATE_LOCKS:
                self._verdicts.clear()  # bounded memory; verdicts are only a cache
            rows = {
                row.id: row
                for row in (await session.execute(select(Lock).where(Lock.id.in_(stale)))).scalars()
            }
            for lock in stale:
                row = rows.get(lock)
                verdict = row is not None and await may_view(session, self.principal, row, now)
                self._verdicts[lock] = (verdict, monotonic)
        return {lock for lock in wanted if self._verdicts[lock][0]}
