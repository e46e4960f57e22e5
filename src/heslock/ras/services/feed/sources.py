"""Feed events built from other services' rows: one call at each source.

Each function takes the caller's session and rows, and publishes in the caller's
transaction (:func:`.publish.publish`), so the services that own those rows need one
additive line each.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services.feed.publish import command_kind, publish
from heslock.ras.store.models import Command, FeedPath, Lock, Share, ShareLock

#: ``commands.path`` -> the feed's path (a command row is remote or nearby).
_PATHS = {FeedPath.REMOTE.value: FeedPath.REMOTE, FeedPath.NEARBY.value: FeedPath.NEARBY}


def command_credential(row: Command, lock: Lock) -> str:
    """``owner`` when the lock's owner sent it, else ``share``: which share it was is
    recorded by the ``share.use`` audit record of the command (the command row does not
    keep it)."""
    return "owner" if row.user_id == lock.owner_id else "share"


async def command_outcome(
    session: AsyncSession, row: Command, lock: Lock, gateway: str | None
) -> None:
    """A command's outcome (``command.<state>``), attributed to the person who sent it."""
    answer = row.answer or {}
    await publish(
        session,
        command_kind(row.state),
        path=_PATHS.get(row.path, FeedPath.REMOTE),
        lock_id=lock.id,
        actor_id=row.user_id,
        credential=command_credential(row, lock),
        payload={
            "command": row.command,
            "command_id": str(row.id),
            "state": row.state,
            "reason": row.reason,
            "gateway": gateway,
            "attempts": row.attempts,
            "bolt": answer.get("bolt"),
            "door": answer.get("door"),
            "battery": answer.get("battery"),
        },
    )


def actor_of(audit_actor: str) -> uuid.UUID | None:
    """The user id in an audit actor (``user:<uuid>``); None for anyone else."""
    kind, _, ident = audit_actor.partition(":")
    if kind != "user":
        return None
    try:
        return uuid.UUID(ident)
    except ValueError:
        return None


async def share_changed(session: AsyncSession, share: Share, change: str, audit_actor: str) -> None:
    """``share.<change>`` (``created``, ``updated``, ``accepted``, ``revoked``) to the
    share's owner and its grantee (a pending invitation has none yet), each as their own
    event."""
    actor = actor_of(audit_actor)
    query = select(ShareLock.lock_id).where(ShareLock.share_id == share.id)
    query = query.order_by(ShareLock.lock_id)
    locks = [str(lock) for lock in (await session.execute(query)).scalars()]
    payload = {
        "share_id": str(share.id),
        "change": change,
        "scope": share.scope,
        "lock_ids": locks,
        "role": share.role,
        "permissions": list(share.permissions),
        "owner_id": str(share.owner_id),
        "grantee_id": str(share.grantee_id) if share.grantee_id is not None else None,
        "revoke_reason": share.revoke_reason,
    }
    credential = "owner" if actor == share.owner_id else "share" if actor is not None else None
    for user in dict.fromkeys(u for u in (share.owner_id, share.grantee_id) if u is not None):
        await publish(
            session,
            f"share.{change}",
            path=FeedPath.REMOTE,
            home_id=share.home_id,
            user_id=user,
            actor_id=actor,
            credential=credential,
            payload=payload,
        )
