"""Which feed events a user may see: the sharing policy, resolved per lock.

A user sees the events of a lock when the sharing policy allows them ``view_log`` or
``view_status`` on it **now** (:func:`heslock.ras.services.sharing.resolver.effective_access`,
by any path the share allows): the owner always, a share holder while the share is in
force (validity, schedule, not revoked). Events addressed to a user (``feed_events.user_id``: their
gateways, their share changes) are theirs alone. An administrator sees no other user's
feed (the RAS policy lets them *see* locks, not read their logs).

:func:`visible_locks` is what a listing filters by: it runs the policy on every
candidate lock (owned, or named by a share or a shared home the user holds). A stream
asks per lock as events come (:class:`VisibilityCache`) and keeps each answer for
:data:`VISIBILITY_TTL_S`: a revocation stops its events within that time, and a lock
met for the first time (just bound, just shared) is evaluated on its first event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Final

from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.sharing.policy import Path, Permission
from heslock.ras.services.sharing.resolver import effective_access
from heslock.ras.store.models import HomeLock, Lock, Share, ShareLock, ShareScope

#: A stream re-reads the policy this often (module docstring).
VISIBILITY_TTL_S: Final = 10.0
#: Candidate locks examined per user at most (owned + shared): bounds one evaluation.
MAX_CANDIDATE_LOCKS: Final = 10_000
#: Either permission lets a user follow a lock's events.
VIEWING: Final = (Permission.VIEW_LOG, Permission.VIEW_STATUS)


async def visible_locks(
    session: AsyncSession, principal: Principal, now: datetime
) -> frozenset[uuid.UUID]:
    """The locks whose feed events ``principal`` may see now (module docstring)."""
    if principal.kind is not PrincipalKind.USER or principal.id is None:
        return frozenset()
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
