"""Apps, grants, codes, token families and consent tickets, and the app-token authenticator.

Token family state transitions (RFC 9700 4.14.2, as UDMS sessions)::

    code redeemed --------------------------------> family (access + refresh, gen 1)
    refresh presented, not rotated ----------------> old rotated, new pair (parent = old)
    rotated refresh presented again ---------------> every token of the family revoked
    code presented a second time ------------------> the family it started revoked
    grant revoked | app deleted | user deleted ----> every token of the grant refused

Nothing here is cached: :class:`OAuthAuthenticator` reads the token, its grant, its app
and its user on every request, so a revocation refuses the very next call.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.access import Authenticator, Integration, Principal, PrincipalKind
from heslock.ras.services.errors import InvalidInput, NotFound
from heslock.ras.services.oauth import scopes as oauth_scopes
from heslock.ras.services.oauth.secrets import SecretKind, digest, is_secret, new_secret
from heslock.ras.services.udms.keys import Pepper
from heslock.ras.services.udms.rows import rowcount
from heslock.ras.store import utcnow
from heslock.ras.store.models import (
    ClientType,
    OAuthClient,
    OAuthCode,
    OAuthConsentTicket,
    OAuthGrant,
    OAuthToken,
    User,
)
from heslock.ras.store.models.oauth import MAX_REDIRECT_URI_LEN, TokenKind

MAX_REDIRECT_URIS: Final = 10
MAX_APPS_PER_USER: Final = 50


def check_redirect_uri(uri: str) -> str:
    """A redirect URI an app may register (RFC 9700 2.1, 4.1; RFC 8252 7.3).

    Absolute ``https`` with a host, or ``http`` on a loopback host (native apps); no
    fragment, no user info, no wildcard. Compared later by exact string equality.
    """
    if not uri or len(uri) > MAX_REDIRECT_URI_LEN or not uri.isprintable() or " " in uri:
        raise InvalidInput("a redirect URI must be a printable URI of at most 512 characters")
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1].rsplit(":", 1)[0] if parts.netloc else ""
    if parts.fragment or "#" in uri:
        raise InvalidInput("a redirect URI has no fragment")
    if "@" in parts.netloc or "*" in uri:
        raise InvalidInput("a redirect URI has no user info and no wildcard")
    if parts.scheme == "https" and host:
        return uri
    if parts.scheme == "http" and (parts.hostname or "") in {"127.0.0.1", "::1", "localhost"}:
        return uri
    raise InvalidInput("a redirect URI is https (or http on a loopback address)")


def client_secret_digest(pepper: Pepper, client_id: uuid.UUID, secret: str) -> bytes:
    """The stored form of a client secret: HMAC under the pepper, bound to the app's id."""
    return pepper.mac(b"oauth-client-secret", client_id.bytes, secret.encode("ascii", "replace"))


# --------------------------------------------------------------------------- apps


async def create_client(
    session: AsyncSession,
    pepper: Pepper,
    owner_id: uuid.UUID,
    name: str,
    client_type: ClientType,
    redirect_uris: Sequence[str],
    now: datetime,
) -> tuple[OAuthClient, str | None]:
    """Register an app; the secret (confidential apps) is returned here only."""
    uris = [check_redirect_uri(u) for u in redirect_uris]
    if not uris or len(uris) > MAX_REDIRECT_URIS or len(set(uris)) != len(uris):
        raise InvalidInput(f"an app has 1 to {MAX_REDIRECT_URIS} distinct redirect URIs")
    if len(await list_clients(session, owner_id)) >= MAX_APPS_PER_USER:
        raise InvalidInput(f"at most {MAX_APPS_PER_USER} apps per account")
    client = OAuthClient(
        id=uuid.uuid4(),
        owner_id=owner_id,
        name=name,
        client_type=client_type.value,
        redirect_uris=uris,
        created_at=now,
    )
    secret = None
    if client_type is ClientType.CONFIDENTIAL:
        secret = new_secret(SecretKind.CLIENT_SECRET)
        client.secret_hash = client_secret_digest(pepper, client.id, secret)
    session.add(client)
    await session.flush()
    return client, secret


async def list_clients(session: AsyncSession, owner_id: uuid.UUID) -> list[OAuthClient]:
    query = (
        select(OAuthClient)
        .where(OAuthClient.owner_id == owner_id, OAuthClient.revoked_at.is_(None))
        .order_by(OAuthClient.created_at, OAuthClient.id)
    )
    return list((await session.execute(query)).scalars())


async def active_client(session: AsyncSession, client_id: uuid.UUID) -> OAuthClient | None:
    query = select(OAuthClient).where(OAuthClient.id == client_id, OAuthClient.revoked_at.is_(None))
    return (await session.execute(query)).scalar_one_or_none()


async def delete_client(session: AsyncSession, client: OAuthClient, now: datetime) -> None:
    """Retire an app: it authenticates no more, and every grant to it is revoked."""
    client.revoked_at = now
    grants = select(OAuthGrant.id).where(
        OAuthGrant.client_id == client.id, OAuthGrant.revoked_at.is_(None)
    )
    await revoke_grants(session, list((await session.execute(grants)).scalars()), now)


# --------------------------------------------------------------------------- grants


@dataclass(frozen=True)
class GrantView:
    id: uuid.UUID
    client_id: uuid.UUID
    client_name: str
    scopes: list[str]
    lock_ids: list[uuid.UUID]
    home_ids: list[uuid.UUID]
    created_at: datetime


async def create_grant(
    session: AsyncSession,
    user_id: uuid.UUID,
    client_id: uuid.UUID,
    scopes: frozenset[oauth_scopes.Scope],
    lock_ids: Sequence[uuid.UUID],
    home_ids: Sequence[uuid.UUID],
    now: datetime,
) -> OAuthGrant:
    """Record a consent. It replaces the user's earlier grant to the same app (whose
    tokens die with it): one grant per user and app, always the latest decision."""
    earlier = select(OAuthGrant.id).where(
        OAuthGrant.user_id == user_id,
        OAuthGrant.client_id == client_id,
        OAuthGrant.revoked_at.is_(None),
    )
    await revoke_grants(session, list((await session.execute(earlier)).scalars()), now)
    grant = OAuthGrant(
        id=uuid.uuid4(),
        user_id=user_id,
        client_id=client_id,
        scopes=sorted(s.value for s in scopes),
        lock_ids=sorted(str(i) for i in set(lock_ids)),
        home_ids=sorted(str(i) for i in set(home_ids)),
        created_at=now,
    )
    session.add(grant)
    await session.flush()
    return grant


async def list_grants(session: AsyncSession, user_id: uuid.UUID) -> list[GrantView]:
    query = (
        select(OAuthGrant, OAuthClient.name)
        .join(OAuthClient, OAuthGrant.client_id == OAuthClient.id)
        .where(
            OAuthGrant.user_id == user_id,
            OAuthGrant.revoked_at.is_(None),
            OAuthClient.revoked_at.is_(None),
        )
        .order_by(OAuthGrant.created_at, OAuthGrant.id)
    )
    return [
        GrantView(
            g.id,
            g.client_id,
            name,
            list(g.scopes),
            [uuid.UUID(i) for i in g.lock_ids],
            [uuid.UUID(i) for i in g.home_ids],
            g.created_at,
        )
        for g, name in (await session.execute(query)).all()
    ]


async def grant_of_user(
    session: AsyncSession, user_id: uuid.UUID, grant_id: uuid.UUID
) -> OAuthGrant:
    query = select(OAuthGrant).where(
        OAuthGrant.id == grant_id, OAuthGrant.user_id == user_id, OAuthGrant.revoked_at.is_(None)
    )
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise NotFound("no such grant")
    return found


async def active_grant(session: AsyncSession, grant_id: uuid.UUID) -> OAuthGrant | None:
    query = select(OAuthGrant).where(OAuthGrant.id == grant_id, OAuthGrant.revoked_at.is_(None))
    return (await session.execute(query)).scalar_one_or_none()


async def owner_grant(session: AsyncSession, client: OAuthClient) -> OAuthGrant | None:
    """The grant an app's owning account gave the app itself (client credentials)."""
    query = select(OAuthGrant).where(
        OAuthGrant.user_id == client.owner_id,
        OAuthGrant.client_id == client.id,
        OAuthGrant.revoked_at.is_(None),
    )
    return (await session.execute(query)).scalars().first()


async def revoke_grants(
    session: AsyncSession, grant_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    """Revoke grants and every token issued under them, at once."""
    if not grant_ids:
        return
    await session.execute(
        update(OAuthGrant)
        .where(OAuthGrant.id.in_(grant_ids), OAuthGrant.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(OAuthToken)
        .where(OAuthToken.grant_id.in_(grant_ids), OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


# --------------------------------------------------------------------------- codes


async def save_code(
    session: AsyncSession,
    code: str,
    grant: OAuthGrant,
    redirect_uri: str,
    scope: str,
    code_challenge: str,
    now: datetime,
    ttl: timedelta,
) -> OAuthCode:
    row = OAuthCode(
        id=uuid.uuid4(),
        code_hash=digest(code),
        grant_id=grant.id,
        client_id=grant.client_id,
        user_id=grant.user_id,
        redirect_uri=redirect_uri,
        scope=scope,
        code_challenge=code_challenge,
        code_challenge_method="S256",
        created_at=now,
        expires_at=now + min(ttl, timedelta(minutes=10)),
    )
    session.add(row)
    await session.flush()
    return row


async def find_code(session: AsyncSession, code: str) -> OAuthCode | None:
    if not is_secret(code, SecretKind.CODE):
        return None
    query = select(OAuthCode).where(OAuthCode.code_hash == digest(code))
    return (await session.execute(query)).scalar_one_or_none()


async def spend_code(session: AsyncSession, code: OAuthCode, now: datetime) -> bool:
    """Mark ``code`` used; False if it was used already (by this or a concurrent request)."""
    result = await session.execute(
        update(OAuthCode)
        .where(OAuthCode.id == code.id, OAuthCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def revoke_code_family(session: AsyncSession, code_id: uuid.UUID, now: datetime) -> int:
    """A code presented twice: revoke every token its first use produced (RFC 6749 4.1.2)."""
    families = select(OAuthToken.family_id).where(OAuthToken.code_id == code_id)
    result = await session.execute(
        update(OAuthToken)
        .where(OAuthToken.family_id.in_(families), OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Lifetimes:
    access: timedelta
    refresh: timedelta
    code: timedelta
    ticket: timedelta


@dataclass(frozen=True)
class Issued:
    """A token pair as issued (values shown once; only their digests are kept)."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None

    def response(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


async def issue(
    session: AsyncSession,
    grant: OAuthGrant,
    scope: str,
    now: datetime,
    lifetimes: Lifetimes,
    *,
    refresh: bool,
    family_id: uuid.UUID | None = None,
    family_expires_at: datetime | None = None,
    parent_id: uuid.UUID | None = None,
    code_id: uuid.UUID | None = None,
) -> Issued:
    """A new access token (and refresh token) of a family (a new family by default)."""
    family = family_id or uuid.uuid4()
    family_end = family_expires_at or now + lifetimes.refresh
    access = new_secret(SecretKind.ACCESS)
    access_expires = min(now + lifetimes.access, family_end) if refresh else now + lifetimes.access
    common: dict[str, Any] = {
        "grant_id": grant.id,
        "client_id": grant.client_id,
        "user_id": grant.user_id,
        "family_id": family,
        "code_id": code_id,
        "scope": scope,
        "created_at": now,
    }
    session.add(
        OAuthToken(
            kind=TokenKind.ACCESS.value,
            token_hash=digest(access),
            expires_at=access_expires,
            parent_id=parent_id,
            **common,
        )
    )
    refresh_token = None
    if refresh:
        refresh_token = new_secret(SecretKind.REFRESH)
        session.add(
            OAuthToken(
                kind=TokenKind.REFRESH.value,
                token_hash=digest(refresh_token),
                expires_at=family_end,
                parent_id=parent_id,
                **common,
            )
        )
    await session.flush()
    seconds = max(0, int((access_expires - now).total_seconds()))
    return Issued(access, seconds, scope, refresh_token)


async def find_token(session: AsyncSession, text: str) -> OAuthToken | None:
    """The token row of ``text`` (access or refresh), whatever its state."""
    if not (is_secret(text, SecretKind.ACCESS) or is_secret(text, SecretKind.REFRESH)):
        return None
    query = select(OAuthToken).where(OAuthToken.token_hash == digest(text))
    return (
        await session.execute(query.execution_options(populate_existing=True))
    ).scalar_one_or_none()


async def rotate(session: AsyncSession, token: OAuthToken, now: datetime) -> bool:
    """Mark a refresh token rotated; False if it already was (reuse or a race)."""
    result = await session.execute(
        update(OAuthToken)
        .where(OAuthToken.id == token.id, OAuthToken.rotated_at.is_(None))
        .values(rotated_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(OAuthToken)
        .where(OAuthToken.family_id == family_id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


async def token_in_force(
    session: AsyncSession, token: OAuthToken, now: datetime
) -> tuple[OAuthGrant, OAuthClient] | None:
    """The grant and app of a token that is usable right now, else None."""
    if token.revoked_at is not None or token.expires_at <= now:
        return None
    query = (
        select(OAuthGrant, OAuthClient)
        .join(OAuthClient, OAuthGrant.client_id == OAuthClient.id)
        .join(User, OAuthGrant.user_id == User.id)
        .where(
            OAuthGrant.id == token.grant_id,
            OAuthGrant.revoked_at.is_(None),
            OAuthClient.revoked_at.is_(None),
            User.status == "active",
        )
    )
    found = (await session.execute(query)).first()
    return None if found is None else (found[0], found[1])


def integration_of(grant: OAuthGrant, token_scope: str) -> Integration:
    """The app's view of a grant through one token: the token's scopes, never more than
    the grant's (a grant is never widened, but the check costs nothing)."""
    granted = frozenset(grant.scopes)
    wanted = oauth_scopes.parse(token_scope)
    effective = frozenset(s for s in wanted if s.value in granted)
    return Integration(
        client_id=grant.client_id,
        grant_id=grant.id,
        scopes=frozenset(s.value for s in effective),
        permissions=oauth_scopes.permissions_of(effective),
        lock_ids=frozenset(uuid.UUID(i) for i in grant.lock_ids),
        home_ids=frozenset(uuid.UUID(i) for i in grant.home_ids),
    )


class OAuthAuthenticator:
    """Access tokens of apps (``hloa_``) -> the granting user acting through the app;
    anything else goes to ``inner`` (UDMS sessions)."""

    def __init__(self, inner: Authenticator) -> None:
        self.inner = inner

    async def authenticate(self, session: AsyncSession, credential: str) -> Principal | None:
        if not credential.startswith(SecretKind.ACCESS.value + "_"):
            return await self.inner.authenticate(session, credential)
        if not is_secret(credential, SecretKind.ACCESS):
            return None
        token = await find_token(session, credential)
        if token is None or token.kind != TokenKind.ACCESS.value:
            return None
        found = await token_in_force(session, token, utcnow())
        if found is None:
            return None
        grant, _client = found
        user = await session.get(User, grant.user_id)
        if user is None:  # pragma: no cover - joined above
            return None
        return Principal(
            PrincipalKind.USER,
            user.id,
            is_admin=False,  # an app never acts with the RAS's administrator rights
            integration=integration_of(grant, token.scope),
        )


# --------------------------------------------------------------------------- tickets


def request_digest(params: Mapping[str, str | None]) -> bytes:
    """SHA-256 of the authorisation request a consent ticket is bound to."""
    keys = (
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    )
    canonical = json.dumps([params.get(k) for k in keys], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


async def new_ticket(
    session: AsyncSession,
    user_id: uuid.UUID,
    params: Mapping[str, str | None],
    now: datetime,
    ttl: timedelta,
) -> tuple[str, datetime]:
    ticket = new_secret(SecretKind.TICKET)
    expires = now + ttl
    session.add(
        OAuthConsentTicket(
            ticket_hash=digest(ticket),
            user_id=user_id,
            request_digest=request_digest(params),
            created_at=now,
            expires_at=expires,
        )
    )
    await session.flush()
    return ticket, expires


async def open_ticket(
    session: AsyncSession, ticket: str, params: Mapping[str, str | None], now: datetime
) -> OAuthConsentTicket | None:
    """The unused, unexpired ticket for exactly this request, of an active user."""
    if not is_secret(ticket, SecretKind.TICKET):
        return None
    query = (
        select(OAuthConsentTicket)
        .join(User, OAuthConsentTicket.user_id == User.id)
        .where(
            OAuthConsentTicket.ticket_hash == digest(ticket),
            OAuthConsentTicket.used_at.is_(None),
            OAuthConsentTicket.expires_at > now,
            User.status == "active",
        )
        .execution_options(populate_existing=True)
    )
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None or found.request_digest != request_digest(params):
        return None
    return found


async def new_form_token(session: AsyncSession, ticket: OAuthConsentTicket) -> str:
    """A fresh anti-CSRF token for the page about to be rendered (the last one wins)."""
    form = new_secret(SecretKind.FORM)
    ticket.form_hash = digest(form)
    await session.flush()
    return form


async def spend_ticket(session: AsyncSession, ticket: OAuthConsentTicket, now: datetime) -> bool:
    result = await session.execute(
        update(OAuthConsentTicket)
        .where(OAuthConsentTicket.id == ticket.id, OAuthConsentTicket.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def release_account(
    session: AsyncSession, user_id: uuid.UUID, ctx: audit.AuditContext, now: datetime
) -> None:
    """Account deletion (a UDMS deletion hook): the user's grants to apps end, and their
    own apps stop authenticating (every grant to them ends too)."""
    grants = select(OAuthGrant.id).where(
        OAuthGrant.user_id == user_id, OAuthGrant.revoked_at.is_(None)
    )
    await revoke_grants(session, list((await session.execute(grants)).scalars()), now)
    for client in await list_clients(session, user_id):
        await delete_client(session, client, now)
        await audit.record(session, ctx, "app.delete", audit.AuditResult.OK, f"app:{client.id}")
