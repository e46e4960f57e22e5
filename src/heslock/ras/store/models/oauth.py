"""OAuth 2.0 authorisation server tables (TPSP, issue 8).

- ``oauth_clients``: third-party apps a user registered (public or confidential), with
  their exact redirect URIs and, for confidential ones, a peppered hash of the secret.
- ``oauth_grants``: what a user consented to give one app: scopes and the locks and
  homes it may reach. Revoking a grant kills every token issued under it.
- ``oauth_codes``: authorisation codes (hash only), bound to client, redirect URI and a
  PKCE S256 challenge; single use, at most 10 minutes.
- ``oauth_tokens``: access and refresh tokens (hash only). A *family* is everything
  descended from one code (or one client-credentials issue); rotation links a refresh
  token to its ``parent``; reuse of a rotated one revokes the family.
- ``oauth_consent_tickets``: the one-time tickets that authenticate a user's browser on
  the consent page (docs/security.md, "Third-party access").

No token, code, ticket or secret is stored in the clear: SHA-256 of 256 random bits for
tokens, codes and tickets; HMAC-SHA-256 under a keystore-derived pepper for client
secrets.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from heslock.ras.store.base import Base, UTCDateTime, new_id, utcnow

#: Longest redirect URI accepted (and stored); longer ones are refused on registration.
MAX_REDIRECT_URI_LEN = 512


class ClientType(StrEnum):
    PUBLIC = "public"  # cannot keep a secret (mobile, single-page): PKCE only
    CONFIDENTIAL = "confidential"  # a server: PKCE and a client secret


class TokenKind(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    client_type: Mapped[str] = mapped_column(String(16))
    #: The exact list (compared by simple string equality, RFC 9700 4.1.3).
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAuthGrant(Base):
    __tablename__ = "oauth_grants"
    __table_args__ = (Index("ix_oauth_grants_user_client", "user_id", "client_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    scopes: Mapped[list[str]] = mapped_column(JSON)
    #: The locks and homes the app may reach (the user's narrowing on the consent page).
    lock_ids: Mapped[list[str]] = mapped_column(JSON)
    home_ids: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAuthCode(Base):
    __tablename__ = "oauth_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    grant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("oauth_grants.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(MAX_REDIRECT_URI_LEN))
    scope: Mapped[str] = mapped_column(String(256))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAuthToken(Base):
    __tablename__ = "oauth_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(8))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    grant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("oauth_grants.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    #: The refresh token whose rotation produced this one (None: first of its family).
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("oauth_tokens.id", ondelete="SET NULL")
    )
    #: The code that started the family (a second use of it revokes the family).
    code_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("oauth_codes.id", ondelete="SET NULL"), index=True
    )
    scope: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAuthConsentTicket(Base):
    __tablename__ = "oauth_consent_tickets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    ticket_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    #: SHA-256 of the authorisation request it was issued for (client, redirect URI,
    #: scope, state, PKCE challenge): the ticket approves that request and no other.
    request_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    #: SHA-256 of the anti-CSRF form token of the page last rendered with this ticket.
    form_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
