"""DDMS bound locks: read, rename, unbind, transfer and key rotation.

A lock is a device bound to an owner with a lock key only the RAS and the lock know
(ISO/IEC 14543-5-104, "RAS <-> lock" authentication). Decisions:

- **Unbind** destroys the lock key: the envelope is overwritten, then the row deleted
  (with any rotation in flight). The device becomes ``reset_required``: the lock still
  holds the old key and refuses the factory key until its physical factory reset, so a
  new registration (under the factory key) succeeds only after that reset.
- **Transfer** hands the lock to another active user; the old owner loses every right
  at once (authorisation is derived from ``owner_id`` on each request), and so does
  everyone the old owner shared it with (a share applies only while the lock has the
  owner who made it); :func:`~heslock.ras.services.sharing.shares.release_lock` keeps
  the sharing records true in the same transaction (the lock leaves its home, its
  shares are revoked or narrowed). Unbinding does the same before the row goes.
- **Who sees and who changes a lock.** The owner; the RAS's administrators (read and
  unbind, never operate or rename); and the people it is shared with
  (:mod:`heslock.ras.services.sharing`): any accepted, unrevoked share that applies
  makes the lock visible (listed, readable, shown with the caller's role and the
  permissions in force now), and renaming needs ``manage_settings`` in force. Unbind,
  transfer and key rotation stay the owner's (and, for unbind and rotation, the
  administrators'): a grantee gets 403 there, a stranger 404.
- **Rotation** is a registration-like exchange (:mod:`.registration`, kind ``rotate``)
  under the current lock key with the next key version; the lock row takes the new key
  only when the lock's commit answer arrives.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.protocol import next_version
from heslock.ras.keystore import LOCK_KEY, Keystore
from heslock.ras.services import audit
from heslock.ras.services.access import Action, Principal, Resource, ResourceKind, authorize
from heslock.ras.services.ddms.registration import Outcome, RegKind, begin
from heslock.ras.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from heslock.ras.services.sharing import shares
from heslock.ras.services.sharing.policy import LockAction, Path, Permission, Role
from heslock.ras.services.sharing.resolver import Access, effective_access
from heslock.ras.store.models import (
    Device,
    DeviceStatus,
    HomeLock,
    Lock,
    Share,
    ShareLock,
    ShareScope,
    User,
)

log = logging.getLogger(__name__)

#: The lock routes are the HTTPS API: grants are evaluated for the remote path, as the
#: sharing routes do (:data:`heslock.ras.services.sharing.rights.MANAGEMENT_PATH`).
API_PATH: Final = Path.REMOTE
#: The lock row's lock for a change (PostgreSQL ``FOR NO KEY UPDATE``; SQLite ignores it):
#: it serialises with commands (their no-op UPDATE) and other changes, but not with
#: inserts that merely reference the lock (events, feed entries: ``KEY SHARE``), so a
#: transaction that holds the feed's advisory lock and inserts such a row never waits
#: for us while we wait for that advisory lock (a deadlock).
ROW_LOCK: Final = {"key_share": True}
#: How a caller holds a lock (:attr:`SeenLock.relation`).
Relation = Literal["owner", "shared", "administrator", "none"]
#: Strongest first: the role a lock view names when the caller holds several grants.
_ROLE_ORDER: Final = (Role.OWNER, Role.ADMIN, Role.MEMBER, Role.GUEST)


def _resource(lock: Lock) -> Resource:
    return Resource(ResourceKind.LOCK, str(lock.id), lock.owner_id)


@dataclass(frozen=True)
class SeenLock:
    """A lock and how the caller holds it (for the lock views)."""

    lock: Lock
    access: Access

    @property
    def relation(self) -> Relation:
        """``owner``; ``shared`` (a share of someone else's lock); ``administrator`` (a
        RAS administrator who holds no share: sees, does not operate); ``none`` (the
        caller holds nothing: the answer to the transfer that gave the lock away)."""
        if any(g.role is Role.OWNER for g in self.access.grants):
            return "owner"
        if self.access.grants:
            return "shared"
        return "administrator" if self.access.principal.is_admin else "none"

    @property
    def role(self) -> Role | None:
        """The strongest role among the caller's grants (a share may narrow its role's
        permissions: :meth:`permissions` says what is in force)."""
        held = {g.role for g in self.access.grants}
        return next((r for r in _ROLE_ORDER if r in held), None)

    def permissions(self, path: Path) -> frozenset[Permission]:
        """What the caller may do by ``path`` now (validity, schedule, one-time use)."""
        return Access(
            self.access.principal, self.lock.id, path, self.access.now, self.access.grants, True
        ).permissions

    @property
    def sees_state(self) -> bool:
        """The last known bolt, door and battery are status: the owner, the RAS's
        administrators and holders of ``view_status`` (on any path, now) see them."""
        if self.relation != "shared":
            return True
        return any(Permission.VIEW_STATUS in self.permissions(path) for path in Path)


async def load(
    session: AsyncSession,
    principal: Principal,
    lock_id: uuid.UUID,
    action: Action,
    now: datetime,
) -> Lock:
    """The lock, held, if ``principal`` may perform the owner's (or administrators')
    ``action`` on it: 404 to a stranger, 403 to someone it is shared with."""
    lock = await session.get(Lock, lock_id, with_for_update=ROW_LOCK)
    if lock is None:
        raise NotFound("no such lock")
    try:
        authorize(principal, action, _resource(lock))
    except NotFound:
        if (await effective_access(session, principal, lock, now, API_PATH)).visible:
            raise Forbidden(f"only the lock's owner may {action.value}") from None
        raise
    return lock


async def seen(session: AsyncSession, principal: Principal, lock: Lock, now: datetime) -> SeenLock:
    """How ``principal`` holds ``lock`` now (no visibility check: the caller did it)."""
    return SeenLock(lock, await effective_access(session, principal, lock, now, API_PATH))


async def get(
    session: AsyncSession, principal: Principal, lock_id: uuid.UUID, now: datetime
) -> SeenLock:
    """One lock, if the caller owns it, administers the RAS, or holds a share of it."""
    lock = await session.get(Lock, lock_id)
    if lock is None:
        raise NotFound("no such lock")
    access = await effective_access(session, principal, lock, now, API_PATH)
    if not access.visible:
        raise NotFound("no such lock")
    return SeenLock(lock, access)


async def list_visible(
    session: AsyncSession, principal: Principal, now: datetime
) -> list[SeenLock]:
    """The caller's own locks and the locks shared with them, oldest binding first.

    Candidates are read in one query (own locks, targets of the caller's accepted lock
    shares, locks of homes the caller is a member of); each is then checked by the
    resolver, which alone knows whether a share still applies (the lock's owner made it,
    the lock is still in the home it was made in).
    """
    authorize(principal, Action.LOCK_READ, Resource(ResourceKind.LOCK, owner_id=principal.id))
    mine = [
        Share.grantee_id == principal.id,
        Share.accepted_at.is_not(None),
        Share.revoked_at.is_(None),
    ]
    by_lock = (
        select(ShareLock.lock_id)
        .join(Share, Share.id == ShareLock.share_id)
        .where(Share.scope == ShareScope.LOCKS.value, *mine)
    )
    by_home = (
        select(HomeLock.lock_id)
        .join(Share, and_(Share.home_id == HomeLock.home_id, Share.scope == ShareScope.HOME.value))
        .where(*mine)
    )
    query = (
        select(Lock)
        .where(or_(Lock.owner_id == principal.id, Lock.id.in_(by_lock), Lock.id.in_(by_home)))
        .order_by(Lock.bound_at, Lock.id)
    )
    found = []
    for lock in (await session.execute(query)).scalars():
        access = await effective_access(session, principal, lock, now, API_PATH)
        if access.grants:  # an administrator lists their own locks only, as before
            found.append(SeenLock(lock, access))
    return found


async def profile_of(session: AsyncSession, lock: Lock) -> str:
    device = await session.get(Device, lock.device_id)
    return device.profile if device is not None else "unknown"


async def rename(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    lock_id: uuid.UUID,
    name: str,
    now: datetime,
) -> Lock:
    lock = await session.get(Lock, lock_id, with_for_update=ROW_LOCK)
    if lock is None:
        raise NotFound("no such lock")
    # The owner, or a share with manage_settings in force (a home or lock admin).
    (await effective_access(session, principal, lock, now, API_PATH)).require(
        LockAction.MANAGE_SETTINGS
    )
    lock.name = name
    await audit.record(session, ctx, "lock.rename", audit.AuditResult.OK, target=f"lock:{lock.id}")
    return lock


async def unbind(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    lock_id: uuid.UUID,
    now: datetime,
) -> None:
    lock = await load(session, principal, lock_id, Action.LOCK_UNBIND, now)
    # The sharing records first: the lock's home and share rows cascade with its row.
    await shares.release_lock(session, ctx, lock.id, now, "unbound")
    device = await session.get(Device, lock.device_id, with_for_update=True)
    # Overwrite the envelope before the delete, so the key is gone from the row itself.
    lock.lock_key_enc = os.urandom(len(lock.lock_key_enc))
    await session.flush()
    await session.delete(lock)
    if device is not None and device.status == DeviceStatus.BOUND:
        device.status = DeviceStatus.RESET_REQUIRED.value
    await session.flush()
    await audit.record(
        session,
        ctx,
        "lock.unbind",
        audit.AuditResult.OK,
        target=f"lock:{lock.id}",
        device=lock.device_id,
        owner=str(lock.owner_id),
    )
    log.info("DDMS lock %s unbound; device %s needs a factory reset", lock.id, lock.device_id)


async def transfer(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    lock_id: uuid.UUID,
    to_user: uuid.UUID,
    now: datetime,
) -> Lock:
    lock = await load(session, principal, lock_id, Action.LOCK_TRANSFER, now)
    if to_user == lock.owner_id:
        raise InvalidInput("the lock already belongs to that user")
    user = await session.get(User, to_user)
    if user is None or user.status != "active":
        raise InvalidInput("no such active user to transfer the lock to")
    previous = lock.owner_id
    lock.owner_id = to_user
    await audit.record(
        session,
        ctx,
        "lock.transfer",
        audit.AuditResult.OK,
        target=f"lock:{lock.id}",
        previous_owner=str(previous),
        new_owner=str(to_user),
    )
    # Nobody the old owner shared it with keeps it (access already ends: the records too).
    await shares.release_lock(session, ctx, lock.id, now, "transferred")
    return lock


async def start_rotation(
    session: AsyncSession,
    keystore: Keystore,
    principal: Principal,
    ctx: audit.AuditContext,
    lock_id: uuid.UUID,
    now: int,
) -> Outcome:
    """Begin replacing the lock key (stage a under the current key, next version)."""
    lock = await load(
        session, principal, lock_id, Action.LOCK_ROTATE_KEY, datetime.fromtimestamp(now, UTC)
    )
    if principal.id is None:  # pragma: no cover - SYSTEM drives no relay
        raise Conflict("a rotation is driven by a user's relay")
    device = await session.get(Device, lock.device_id, with_for_update=True)
    if device is None:  # pragma: no cover - the foreign key forbids it
        raise NotFound("no such device")
    current = keystore.open(LOCK_KEY, str(lock.id), lock.lock_key_enc)
    return await begin(
        session,
        keystore,
        ctx,
        user_id=principal.id,
        device=device,
        kind=RegKind.ROTATE,
        old_key=current,
        version=next_version(lock.key_version),
        now=now,
        lock=lock,
    )
