"""UDMS sessions: short-lived access tokens and rotating refresh-token families.

A login creates a *session*, which is one refresh-token family (RFC 9700, the OAuth 2.0
Security BCP, section 4.14.2):

- The **access token** (``hla_...``) is opaque, stored as SHA-256, and lives
  ``token_access_ttl_s`` (15 min by default). Opaque rather than signed: every request
  already reads the database, and a lookup lets logout, family revocation and account
  deletion take effect at once on every RAS node (a signed token would stay valid until
  it expires, or need a revocation list that is a lookup anyway).
- The **refresh token** (``hlr_...``) is single use. Refreshing returns a new pair and
  marks the old one rotated. Presenting a rotated token again means two parties hold the
  family (a stolen copy): the whole session is revoked, its access tokens deleted, and
  the reuse audited. A race between two honest refreshes counts as reuse too — the
  safe side; the client logs in again.
- A session lives at most ``token_refresh_ttl_s`` from login (an absolute lifetime: a
  stolen family cannot be kept alive forever by refreshing).

Session state transitions::

    (login) -> active --refresh--> active (generation + 1)
    active --logout | revoke | password change | account deletion--> revoked
    active --rotated refresh token presented--> revoked (reason "refresh_reuse")
    active --expires_at passes--> expired (refresh refused)
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.errors import Unauthenticated
from heslock.ras.services.udms.keys import TokenKind, is_token, new_token, token_hash
from heslock.ras.services.udms.rows import rowcount
from heslock.ras.settings import Settings
from heslock.ras.store import utcnow
from heslock.ras.store.models import AccessToken, RefreshToken, User, UserSession

log = logging.getLogger(__name__)

#: Stored User-Agent strings are cut to the column size (they are shown, never parsed).
MAX_USER_AGENT: Final = 200


class RevokeReason:
    LOGOUT = "logout"
    REVOKED = "revoked"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105  (a reason, not a password)
    REFRESH_REUSE = "refresh_reuse"
    ACCOUNT_DELETED = "account_deleted"


@dataclass(frozen=True)
class TokenPair:
    session_id: uuid.UUID
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


class SessionService:
    def __init__(self, settings: Settings) -> None:
        self.access_ttl = timedelta(seconds=settings.token_access_ttl_s)
        self.refresh_ttl = timedelta(seconds=settings.token_refresh_ttl_s)

    async def _pair(
        self, session: AsyncSession, family: UserSession, generation: int, now: datetime
    ) -> TokenPair:
        refresh = new_token(TokenKind.REFRESH)
        access_token = new_token(TokenKind.ACCESS)
        access = AccessToken(
            session_id=family.id,
            token_hash=token_hash(access_token),
            created_at=now,
            expires_at=min(now + self.access_ttl, family.expires_at),
        )
        session.add(access)
        session.add(
            RefreshToken(
                session_id=family.id,
                token_hash=token_hash(refresh),
                generation=generation,
                created_at=now,
                expires_at=family.expires_at,
            )
        )
        await session.flush()
        return TokenPair(family.id, access_token, access.expires_at, refresh, family.expires_at)

    async def open(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        now: datetime,
        *,
        source_ip: str | None,
        user_agent: str | None,
    ) -> TokenPair:
        """A new session (refresh-token family, generation 1) for a completed login."""
        family = UserSession(
            user_id=user_id,
            created_at=now,
            last_used_at=now,
            expires_at=now + self.refresh_ttl,
            source_ip=source_ip,
            user_agent=(user_agent or None) and user_agent[:MAX_USER_AGENT],
        )
        session.add(family)
        await session.flush()
        return await self._pair(session, family, 1, now)

    async def refresh(
        self, session: AsyncSession, context: audit.AuditContext, token: str, now: datetime
    ) -> TokenPair:
        """Rotate: a new pair for a current refresh token; reuse revokes the family."""
        if not is_token(token, TokenKind.REFRESH):
            raise Unauthenticated("the refresh token is not valid")
        found = (
            await session.execute(
                select(RefreshToken, UserSession, User)
                .join(UserSession, RefreshToken.session_id == UserSession.id)
                .join(User, UserSession.user_id == User.id)
                .where(RefreshToken.token_hash == token_hash(token))
            )
        ).first()
        if found is None:
            raise Unauthenticated("the refresh token is not valid")
        current, family, user = found
        target = f"session:{family.id}"
        ctx = audit.AuditContext(f"user:{user.id}", context.source_ip, context.request_id)
        if current.rotated_at is not None:
            reuse_first = family.revoked_at is None
            if reuse_first:
                await self.revoke(session, [family.id], RevokeReason.REFRESH_REUSE, now)
            await audit.record_and_commit(
                session,
                ctx,
                "session.refresh_reuse",
                audit.AuditResult.DENIED,
                target,
                generation=current.generation,
                family_revoked=reuse_first,
            )
            log.warning("refresh token reuse on session %s: family revoked", family.id)
            raise Unauthenticated("the refresh token is not valid")
        if family.revoked_at is not None or family.expires_at <= now or user.status != "active":
            raise Unauthenticated("the refresh token is not valid")
        rotated = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == current.id, RefreshToken.rotated_at.is_(None))
            .values(rotated_at=now)
            .execution_options(synchronize_session=False)
        )
        if rowcount(rotated) != 1:
            await self.revoke(session, [family.id], RevokeReason.REFRESH_REUSE, now)
            await audit.record_and_commit(
                session,
                ctx,
                "session.refresh_reuse",
                audit.AuditResult.DENIED,
                target,
                generation=current.generation,
                family_revoked=True,
            )
            raise Unauthenticated("the refresh token is not valid")
        family.last_used_at = now
        # Housekeeping: access tokens of this family that have expired are dead weight.
        await session.execute(
            delete(AccessToken).where(
                AccessToken.session_id == family.id, AccessToken.expires_at <= now
            )
        )
        pair = await self._pair(session, family, current.generation + 1, now)
        await audit.record(
            session,
            ctx,
            "session.refresh",
            audit.AuditResult.OK,
            target,
            generation=current.generation + 1,
        )
        return pair

    async def revoke(
        self, session: AsyncSession, session_ids: list[uuid.UUID], reason: str, now: datetime
    ) -> None:
        """Revoke sessions: refresh refused from now on, access tokens deleted at once."""
        if not session_ids:
            return
        await session.execute(
            update(UserSession)
            .where(UserSession.id.in_(session_ids), UserSession.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason)
            .execution_options(synchronize_session=False)
        )
        await session.execute(delete(AccessToken).where(AccessToken.session_id.in_(session_ids)))

    async def active(
        self, session: AsyncSession, user_id: uuid.UUID, now: datetime
    ) -> list[UserSession]:
        query = (
            select(UserSession)
            .where(
                UserSession.user_id == user_id,
                UserSession.revoked_at.is_(None),
                UserSession.expires_at > now,
            )
            .order_by(UserSession.created_at)
            .execution_options(populate_existing=True)
        )
        return list((await session.execute(query)).scalars())


class UdmsAuthenticator:
    """The RAS :class:`~heslock.ras.services.access.Authenticator`: access token -> user."""

    async def authenticate(self, session: AsyncSession, credential: str) -> Principal | None:
        if not is_token(credential, TokenKind.ACCESS):
            return None
        now = utcnow()
        found = (
            await session.execute(
                select(User.id, User.is_admin, UserSession.id)
                .select_from(AccessToken)
                .join(UserSession, AccessToken.session_id == UserSession.id)
                .join(User, UserSession.user_id == User.id)
                .where(
                    AccessToken.token_hash == token_hash(credential),
                    AccessToken.expires_at > now,
                    UserSession.revoked_at.is_(None),
                    UserSession.expires_at > now,
                    User.status == "active",
                )
            )
        ).first()
        if found is None:
            return None
        user_id, is_admin, session_id = found
        return Principal(PrincipalKind.USER, user_id, is_admin=is_admin, session_id=session_id)
