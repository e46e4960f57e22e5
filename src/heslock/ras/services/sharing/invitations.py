"""Invitations: pending shares, seen and accepted by whoever verified the contact.

A share is granted to a contact, not to an account (:mod:`.shares`). It attaches to a
user only when that user, logged in, accepts it *and* holds the invited address as a
*verified* contact of their own account; an unverified contact proves nothing (anyone
may type any address at registration). Until then:

- the granter sees ``pending`` whoever has (or has not) an account with that contact;
- a user sees an invitation only in their own list (:func:`pending_for`), and any other
  invitation id is "not found", so ids cannot be probed for contacts either;
- an invitation lapses after :data:`.shares.INVITATION_TTL`.

Accepting is refused to the owner of what is shared (nobody needs a key to their own
door) and to someone who is already a member of the home (one membership per person).
Declining revokes the share (``declined``). Both are audited under the invitee.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from sqlalchemy import ColumnElement, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.errors import Conflict, NotFound
from heslock.ras.services.feed.sources import share_changed as feed_share_changed
from heslock.ras.services.sharing.shares import (
    INVITATION_TTL,
    ShareDetail,
    detail_of,
    details,
    revoke_one,
)
from heslock.ras.store.models import Contact, Share, ShareScope, User

#: One user's invitation list is bounded (it is not paged: it is the inbox of a person).
MAX_INVITATIONS: Final = 100


async def _verified(session: AsyncSession, principal: Principal) -> list[tuple[str, str]]:
    if principal.kind is not PrincipalKind.USER or principal.id is None:
        return []
    query = select(Contact.kind, Contact.address).where(
        Contact.user_id == principal.id, Contact.verified_at.is_not(None)
    )
    return [(kind, address) for kind, address in (await session.execute(query)).all()]


def _pending(now: datetime) -> list[ColumnElement[bool]]:
    return [
        Share.grantee_id.is_(None),
        Share.revoked_at.is_(None),
        Share.created_at > now - INVITATION_TTL,
    ]


async def pending_for(
    session: AsyncSession, principal: Principal, now: datetime
) -> list[ShareDetail]:
    """The live invitations to the caller's verified contacts, oldest first."""
    contacts = await _verified(session, principal)
    if not contacts:
        return []
    query = (
        select(Share)
        .where(tuple_(Share.invite_kind, Share.invite_address).in_(contacts), *_pending(now))
        .order_by(Share.created_at, Share.id)
        .limit(MAX_INVITATIONS)
    )
    return await details(session, list((await session.execute(query)).scalars()), now)


async def _invitation(
    session: AsyncSession, principal: Principal, share_id: uuid.UUID, now: datetime
) -> Share:
    """The caller's live invitation ``share_id``; NotFound for anything else."""
    contacts = await _verified(session, principal)
    share = await session.get(Share, share_id, with_for_update=True)
    if (
        share is None
        or (share.invite_kind, share.invite_address) not in contacts
        or share.grantee_id is not None
        or share.revoked_at is not None
        or share.created_at + INVITATION_TTL <= now
    ):
        raise NotFound("no such invitation")
    return share


async def accept(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    share_id: uuid.UUID,
    now: datetime,
) -> ShareDetail:
    share = await _invitation(session, principal, share_id, now)
    assert principal.id is not None  # only a user has verified contacts
    if share.owner_id == principal.id:
        raise Conflict("this share is for your own locks")
    if share.scope == ShareScope.HOME.value:
        member = await session.execute(
            select(Share.id).where(
                Share.scope == ShareScope.HOME.value,
                Share.home_id == share.home_id,
                Share.grantee_id == principal.id,
                Share.revoked_at.is_(None),
                or_(Share.not_after.is_(None), Share.not_after > now),
                Share.spent_at.is_(None),
            )
        )
        if member.first() is not None:
            raise Conflict("you are already a member of this home")
    user = await session.get(User, principal.id)
    if user is None or user.status != "active":  # pragma: no cover - authenticated users are
        raise NotFound("no such invitation")
    share.grantee_id = principal.id
    share.accepted_at = now
    share.updated_at = now
    await session.flush()
    await audit.record(
        session, ctx, "share.accept", audit.AuditResult.OK, target=f"share:{share.id}",
        owner=str(share.owner_id), scope=share.scope, contact_kind=share.invite_kind,
    )  # fmt: skip
    await feed_share_changed(session, share, "accepted", ctx.actor)  # user-visible feed
    return await detail_of(session, share, now)


async def decline(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    share_id: uuid.UUID,
    now: datetime,
) -> None:
    share = await _invitation(session, principal, share_id, now)
    await revoke_one(session, ctx, share, principal.id, now, "declined")
