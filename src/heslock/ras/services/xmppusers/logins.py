"""People's XMPP logins ("app passwords"): create, list, revoke, look up, forget.

A person who wants their live events in an XMPP client creates a login over HTTPS with
their access token (so the login and its second factor were passed); apps acting for
them (OAuth 2.0 integrations) may not. The RAS draws the password from the CSPRNG
(:data:`PASSWORD_BYTES`: 256 bits, so no guessing and no dictionary), shows it once, and
keeps only the SCRAM-SHA-256 verifiers (RFC 5802 section 3, the iteration count of the
settings), exactly as for gateways (:mod:`heslock.ras.services.ddms.gateways`). The JID is
``p-<20 hex digits>@<domain>``: random, so it names no person, and never a UUID, so it
is never a gateway's (the SCS credential store tells the two apart by shape).

Limits: :data:`MAX_ACTIVE_LOGINS` live logins per person; creation is throttled per
person (:data:`CREATE_POLICY`, 429 with Retry-After). Revocation is immediate for new
logins (the credential store reads the row at each SASL exchange) and closes the live
session after the commit (:class:`LoginSessions`). Creation and revocation are audited;
account deletion deletes the rows (:func:`release_account`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Final, Protocol

from scramp import ScramMechanism
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.ddms import throttle
from heslock.ras.services.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
)
from heslock.ras.store.models import User, XmppLogin
from heslock.ras.store.models.xmpp import MAX_LABEL_LEN
from heslock.xmpp.sasl import EntityKind, ScramCredentials

log = logging.getLogger(__name__)

#: 32 random bytes = 256 bits, 43 URL-safe characters (as a gateway's secret).
PASSWORD_BYTES: Final = 32
#: The localpart's prefix; 10 random bytes after it (80 bits: collisions never happen).
USERNAME_PREFIX: Final = "p-"
USERNAME_BYTES: Final = 10
USERNAME_RE: Final = re.compile(r"p-[0-9a-f]{20}")
#: Live (unrevoked) logins per person: one per device or client is plenty.
MAX_ACTIVE_LOGINS: Final = 20
#: Creations per person: 10 at once, then one every 6 minutes (10 an hour).
CREATE_POLICY: Final = throttle.BucketPolicy(capacity=10, refill_per_s=1 / 360)
MECHANISM: Final = "SCRAM-SHA-256"


class LoginSessions(Protocol):
    """Ends the live XMPP session of a revoked login (the relay's, when one runs here)."""

    def disconnect(self, bare_jid: str, reason: str) -> None:
        """Close ``bare_jid``'s session, if any; must not block."""
        ...

    @property
    def ports(self) -> dict[str, int]:
        """The relay's bound ports here (``starttls``, ``direct_tls``); empty if none."""
        ...


class NoLoginSessions:
    """No relay in this process: nothing to close here (a node that runs one closes the
    session at its next revocation sweep, :mod:`.delivery`)."""

    def disconnect(self, bare_jid: str, reason: str) -> None:
        return None

    @property
    def ports(self) -> dict[str, int]:
        return {}


def is_login_username(name: str) -> bool:
    """Whether ``name`` has the shape of a person's login (never a gateway id)."""
    return USERNAME_RE.fullmatch(name) is not None


def jid_of(login: XmppLogin, domain: str) -> str:
    return f"{login.username}@{domain}"


def _person(principal: Principal) -> uuid.UUID:
    if principal.kind is not PrincipalKind.USER or principal.id is None:
        raise Forbidden("only a person has XMPP logins")
    if principal.integration is not None:
        raise Forbidden("an app cannot manage XMPP logins; the person does it themselves")
    return principal.id


def _clean_label(label: str) -> str:
    text = " ".join(label.split())
    if not text or len(text) > MAX_LABEL_LEN or not text.isprintable():
        raise InvalidInput(f"a label is 1..{MAX_LABEL_LEN} printable characters")
    return text


async def create(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    *,
    label: str,
    iterations: int,
    now: datetime,
) -> tuple[XmppLogin, str]:
    """A new login for the caller; returns it and its password (shown once)."""
    user_id = _person(principal)
    wait = await throttle.take(session, f"xmpp-login:{user_id}", CREATE_POLICY, now.timestamp())
    if wait is not None:
        raise TooManyRequests("too many XMPP logins created; try again later", retry_after=wait)
    active = await session.scalar(
        select(XmppLogin.id)
        .where(XmppLogin.user_id == user_id, XmppLogin.revoked_at.is_(None))
        .offset(MAX_ACTIVE_LOGINS - 1)
        .limit(1)
    )
    if active is not None:
        raise Conflict(f"at most {MAX_ACTIVE_LOGINS} XMPP logins; revoke one first")
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    salt, stored_key, server_key, count = await asyncio.to_thread(
        ScramMechanism(MECHANISM).make_auth_info, password, iteration_count=iterations
    )
    login = XmppLogin(
        user_id=user_id,
        username=USERNAME_PREFIX + secrets.token_hex(USERNAME_BYTES),
        label=_clean_label(label),
        scram_salt=salt,
        scram_stored_key=stored_key,
        scram_server_key=server_key,
        scram_iterations=count,
        created_at=now,
    )
    session.add(login)
    await session.flush()
    await audit.record(
        session, ctx, "xmpp_login.create", audit.AuditResult.OK, target=f"xmpp_login:{login.id}"
    )
    log.info("XMPP login %s created", login.id)
    return login, password


async def list_own(session: AsyncSession, principal: Principal) -> list[XmppLogin]:
    """The caller's logins, live and revoked, oldest first."""
    user_id = _person(principal)
    query = (
        select(XmppLogin)
        .where(XmppLogin.user_id == user_id)
        .order_by(XmppLogin.created_at, XmppLogin.id)
    )
    return list((await session.execute(query)).scalars())


async def revoke(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    login_id: uuid.UUID,
    now: datetime,
) -> XmppLogin:
    """Revoke one of the caller's logins (idempotent). The caller commits, then closes
    the live session (:class:`LoginSessions`)."""
    user_id = _person(principal)
    login = await session.get(XmppLogin, login_id, with_for_update=True)
    if login is None or login.user_id != user_id:
        raise NotFound("no such XMPP login")  # another person's id is not found either
    if login.revoked_at is None:
        login.revoked_at = now
        await session.flush()
        await audit.record(
            session, ctx, "xmpp_login.revoke", audit.AuditResult.OK, target=f"xmpp_login:{login.id}"
        )
    return login


async def credentials(session: AsyncSession, username: str) -> ScramCredentials | None:
    """The verifier of a live login of an active person, or ``None`` (SCS lookup)."""
    if not is_login_username(username):
        return None
    query = (
        select(XmppLogin)
        .join(User, User.id == XmppLogin.user_id)
        .where(
            XmppLogin.username == username,
            XmppLogin.revoked_at.is_(None),
            User.status == "active",
        )
    )
    login = (await session.execute(query)).scalar_one_or_none()
    if login is None:
        return None
    return ScramCredentials(
        login.scram_salt,
        login.scram_stored_key,
        login.scram_server_key,
        login.scram_iterations,
        kind=EntityKind.PERSON,
        owner=str(login.user_id),
    )


async def live_usernames(session: AsyncSession, usernames: Iterable[str]) -> set[str]:
    """Those of ``usernames`` that still name a live login of an active person."""
    wanted = [name for name in set(usernames) if is_login_username(name)]
    if not wanted:
        return set()
    query = (
        select(XmppLogin.username)
        .join(User, User.id == XmppLogin.user_id)
        .where(
            XmppLogin.username.in_(wanted),
            XmppLogin.revoked_at.is_(None),
            User.status == "active",
        )
    )
    return set((await session.execute(query)).scalars())


async def release_account(
    session: AsyncSession, user_id: uuid.UUID, ctx: audit.AuditContext, now: datetime
) -> None:
    """UDMS account-deletion hook: the person's logins are deleted (their sessions close
    at the relay's next revocation sweep, or at once on the node that serves them)."""
    result = await session.execute(
        delete(XmppLogin).where(XmppLogin.user_id == user_id).returning(XmppLogin.id)
    )
    deleted = len(result.all())
    if deleted:
        await audit.record(
            session,
            ctx,
            "xmpp_login.delete",
            audit.AuditResult.OK,
            target=f"user:{user_id}",
            count=deleted,
        )
