"""Telling an invited person about a share, and throttling who grants (issue 7).

**Throttle.** Every share and home invitation a person creates is charged to their
bucket in ``rate_limit_buckets`` (:func:`charge_grant`): ``share_create_burst`` at once,
then ``share_create_per_hour``; an empty bucket is 429 with ``Retry-After``, before any
row is written. It bounds how many messages one account can make the RAS send to
strangers (spam, SMS pumping).

**Notice.** After a share is made (:func:`notify_invitee`), the invited contact gets one
message through the UDMS senders -- the outbox, SMTP or the SMS gateway, as verification
codes do (:mod:`heslock.ras.services.udms.senders`): who shared (their display name),
what (a home or N locks, by name), and how to accept: sign in (or register) with this
contact, verify it, and accept under *Invitations*. It carries **no secret and no link
with a token**: accepting needs only a verified contact (:mod:`.invitations`), so the
message gives an attacker nothing, and a forged message could not contain anything that
works. Names chosen by people are cut to printable text of bounded length.

Enumeration: the granter's answer does not depend on whether the contact has an account
or received the message. A contact receives at most ``share_invites_per_contact_per_day``
notices (a bucket keyed by a peppered pseudonym of the address, never the address); more
are silently not sent. A delivery failure is logged and audited, not returned: the share
exists either way and the invitee finds it when they sign in.

A person who already holds the contact, **verified**, also gets a ``share.invited`` feed
event addressed to them (live over SSE and XMPP), with the share's id, scope, role and
the granter's id -- nothing they will not see in ``GET /v1/invitations``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.access import Principal
from heslock.ras.services.ddms import throttle
from heslock.ras.services.errors import Forbidden, TooManyRequests
from heslock.ras.services.feed.publish import publish
from heslock.ras.services.sharing import shares
from heslock.ras.services.udms import Udms
from heslock.ras.services.udms.senders import SMS_MAX_CHARS, DeliveryFailed, OutgoingCode, Senders
from heslock.ras.settings import Settings
from heslock.ras.store.models import (
    Contact,
    ContactKind,
    FeedPath,
    Home,
    Lock,
    Share,
    ShareLock,
    User,
)

log = logging.getLogger(__name__)

#: Longest display name or lock/home name quoted in a notice.
MAX_NAME_CHARS: Final = 40
#: Lock names listed in one notice; more are counted ("and 3 more").
MAX_NAMED_LOCKS: Final = 3
PURPOSE: Final = "share_invitation"
FEED_KIND: Final = "share.invited"
SECONDS_PER_DAY: Final = 86_400


def clean_name(text: str | None, fallback: str) -> str:
    """Printable, single-spaced, at most :data:`MAX_NAME_CHARS` (a person typed it)."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text or "").split())
    if not cleaned:
        return fallback
    return cleaned if len(cleaned) <= MAX_NAME_CHARS else cleaned[: MAX_NAME_CHARS - 1] + "…"


def describe(home: str | None, locks: list[str]) -> str:
    """What was shared, in words: ``the home "X"``, ``"A" and "B"``, ``"A", ... and 2 more``."""
    if home is not None:
        return f'the home "{home}"'
    named = [f'"{name}"' for name in locks[:MAX_NAMED_LOCKS]]
    rest = len(locks) - len(named)
    if rest > 0:
        return f"{', '.join(named)} and {rest} more"
    if len(named) > 1:
        return f"{', '.join(named[:-1])} and {named[-1]}"
    return named[0] if named else "a lock"


@dataclass(frozen=True, repr=False)  # the parent's repr: no destination, no text
class InvitationNotice(OutgoingCode):
    """An invitation message; travels through the code senders (``code`` is empty).

    :meth:`sms_text` and :meth:`email` carry the words; ``__repr__`` stays the parent's
    (no destination in a traceback).
    """

    granter: str = ""
    what: str = ""
    expires: str = ""

    def _lines(self) -> list[str]:
        return [
            f"{self.granter} shared {self.what} with you on heslock.",
            f"To accept: sign in or register at https://{self.domain} with this "
            f"{'number' if self.channel == 'sms' else 'address'}, verify it, and accept "
            f"under Invitations before {self.expires}.",
        ]

    def sms_text(self) -> str:
        return " ".join(self._lines())[:SMS_MAX_CHARS]

    def email(self, sender: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = self.destination
        message["Subject"] = f"{self.granter} shared {self.what} with you"[:200]
        message.set_content(
            "\n\n".join(self._lines())
            + "\n\nNo link to click: heslock never sends one. If you do not know this person,"
            " ignore this message.\n"
        )
        return message


async def grant(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    udms: Udms,
    settings: Settings,
    *,
    contact_kind: ContactKind,
    contact: str,
    wanted: shares.Terms,
    now: datetime,
    home_id: uuid.UUID | None = None,
    lock_ids: Sequence[uuid.UUID] = (),
) -> shares.ShareDetail:
    """Throttle, create the share (:func:`.shares.create`), commit, then notify.

    The share is committed before the notice leaves, so no message ever announces a
    share that a failed commit took back; the notice's own records (audit, the contact's
    bucket, the feed event) commit with the request.
    """
    if principal.id is None:
        raise Forbidden("only users grant shares")
    await charge_grant(session, principal.id, settings, ctx, now)
    found = await shares.create(
        session, principal, ctx, contact_kind=contact_kind, contact=contact, wanted=wanted,
        now=now, home_id=home_id, lock_ids=lock_ids,
    )  # fmt: skip
    await session.commit()
    share = found.share
    if share.invite_address is not None:
        await notify_invitee(
            session, udms.senders, udms.bucket_pepper.label(share.invite_address), settings,
            ctx, share, principal.id, share.created_at + shares.INVITATION_TTL, now,
        )  # fmt: skip
    return found


def _grant_policy(settings: Settings) -> throttle.BucketPolicy:
    return throttle.BucketPolicy(
        capacity=float(settings.share_create_burst),
        refill_per_s=settings.share_create_per_hour / 3600,
    )


async def charge_grant(
    session: AsyncSession,
    user_id: uuid.UUID,
    settings: Settings,
    ctx: audit.AuditContext,
    now: datetime,
) -> None:
    """One share or invitation for ``user_id``: TooManyRequests when over the limit."""
    wait = await throttle.take(
        session, f"share-create:{user_id}", _grant_policy(settings), now.timestamp()
    )
    if wait is not None:
        await audit.record_and_commit(
            session, ctx, "share.create", audit.AuditResult.DENIED, target=f"user:{user_id}",
            reason="rate-limited",
        )  # fmt: skip
        raise TooManyRequests("too many shares created; try again later", retry_after=wait)


async def _names(session: AsyncSession, share: Share) -> tuple[str | None, list[str]]:
    if share.scope == "home" and share.home_id is not None:
        home = await session.get(Home, share.home_id)
        return clean_name(home.name if home else None, "a home"), []
    query = (
        select(Lock.name)
        .join(ShareLock, ShareLock.lock_id == Lock.id)
        .where(ShareLock.share_id == share.id)
        .order_by(Lock.name, Lock.id)
    )
    return None, [clean_name(name, "a lock") for name in (await session.execute(query)).scalars()]


async def notify_invitee(
    session: AsyncSession,
    senders: Senders,
    contact_pseudonym: str,
    settings: Settings,
    ctx: audit.AuditContext,
    share: Share,
    granter_id: uuid.UUID,
    expires: datetime,
    now: datetime,
) -> bool:
    """Send the notice and publish the feed event (module docstring); True if sent.

    ``contact_pseudonym`` names the contact's bucket (a peppered MAC of the address).
    """
    if share.invite_kind is None or share.invite_address is None:
        return False
    await _feed_event(session, share, granter_id)
    policy = throttle.BucketPolicy(
        capacity=float(settings.share_invites_per_contact_per_day),
        refill_per_s=settings.share_invites_per_contact_per_day / SECONDS_PER_DAY,
    )
    key = f"share-invite:{share.invite_kind}:{contact_pseudonym}"
    if await throttle.take(session, key, policy, now.timestamp()) is not None:
        log.info("invitation notice for share %s not sent: the contact's daily cap", share.id)
        return False
    granter = await session.get(User, granter_id)
    home, locks = await _names(session, share)
    channel = "sms" if share.invite_kind == ContactKind.PHONE.value else "email"
    notice = InvitationNotice(
        channel=channel,
        destination=share.invite_address,
        code="",
        purpose=PURPOSE,
        domain=settings.domain,
        ttl_s=int((expires - now).total_seconds()),
        at=now,
        granter=clean_name(granter.display_name if granter else None, "Someone"),
        what=describe(home, locks),
        expires=expires.date().isoformat(),
    )
    try:
        await senders.for_channel(channel).send(notice)
    except DeliveryFailed:
        await audit.record(
            session, ctx, "share.invite_notify", audit.AuditResult.FAILED,
            target=f"share:{share.id}", contact_kind=share.invite_kind,
        )  # fmt: skip
        return False
    await audit.record(
        session, ctx, "share.invite_notify", audit.AuditResult.OK,
        target=f"share:{share.id}", contact_kind=share.invite_kind,
    )  # fmt: skip
    return True


async def _feed_event(session: AsyncSession, share: Share, granter_id: uuid.UUID) -> None:
    """``share.invited`` to each person holding the invited contact, verified."""
    query = select(Contact.user_id).where(
        Contact.kind == share.invite_kind,
        Contact.address == share.invite_address,
        Contact.verified_at.is_not(None),
        Contact.user_id != share.owner_id,
    )
    for user_id in dict.fromkeys((await session.execute(query)).scalars()):
        await publish(
            session,
            FEED_KIND,
            path=FeedPath.REMOTE,
            home_id=share.home_id,
            user_id=user_id,
            actor_id=granter_id,
            credential="owner" if granter_id == share.owner_id else "share",
            payload={
                "share_id": str(share.id),
                "scope": share.scope,
                "role": share.role,
                "owner_id": str(share.owner_id),
            },
        )
