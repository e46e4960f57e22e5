"""UDMS tables (ISO/IEC 14543-5-104, user data management service).

Users register with a phone number (E.164) and/or an e-mail address; each contact is
verified by a one-time code. Login takes a password and a second factor (one-time code
or TOTP). Sessions are refresh-token families: rotating a token adds a generation, and
presenting a rotated token revokes the whole family (OAuth 2.0 Security BCP, 4.14).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from heslock.ras.store.base import Base, UTCDateTime, new_id, utcnow

#: RFC 5321 4.5.3.1: 64 + 1 + 255, rounded to the usual 320.
MAX_EMAIL_LEN = 320
#: Room for an IPv6 address in text form (RFC 5952), 39 characters, plus a zone.
MAX_IP_LEN = 45


class ContactKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    display_name: Mapped[str | None] = mapped_column(String(100))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    #: active | disabled (an admin's decision; lockouts live in rate-limit buckets)
    #: | deleted (a tombstone: no personal data left, the id stays for the audit log)
    status: Mapped[str] = mapped_column(String(16), default="active")
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Contact(Base):
    """A phone number (E.164) or e-mail address of a user, verified or not."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("kind", "address"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(MAX_EMAIL_LEN))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PasswordCredential(Base):
    """An argon2id hash (PHC string) of the user's password; never the password."""

    __tablename__ = "credentials"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    password_hash: Mapped[str] = mapped_column(String(256))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OtpCode(Base):
    """A one-time code sent by SMS or e-mail: stored as a hash, single use, short-lived."""

    __tablename__ = "otp_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(16))  # verify_contact | login | ...
    #: The contact this code verifies (purpose verify_contact); None for login codes.
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(8))  # sms | email
    destination: Mapped[str] = mapped_column(String(MAX_EMAIL_LEN))
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TotpSecret(Base):
    """A TOTP seed (RFC 6238), encrypted by the keystore; ``last_step`` stops replays."""

    __tablename__ = "totp_secrets"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_step: Mapped[int | None] = mapped_column(BigInteger)


class UserSession(Base):
    """A login session = one refresh-token family."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(String(32))
    user_agent: Mapped[str | None] = mapped_column(String(200))
    source_ip: Mapped[str | None] = mapped_column(String(MAX_IP_LEN))


class RefreshToken(Base):
    """One generation of a session's refresh token, kept as a SHA-256 hash."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    generation: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AccessToken(Base):
    """A short-lived opaque bearer token of a session, kept as a SHA-256 hash.

    Opaque and looked up (not self-contained and signed) so that logout, a revoked
    refresh-token family or a deleted account end it at once on every RAS node.
    """

    __tablename__ = "access_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginChallenge(Base):
    """The state between a correct password and the second factor (a few minutes).

    The client holds the challenge token (hashed here); ``otp_code_id`` names the
    one-time code last sent for it, ``attempts`` counts second-factor guesses.
    """

    __tablename__ = "login_challenges"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    otp_code_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("otp_codes.id", ondelete="SET NULL")
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    source_ip: Mapped[str | None] = mapped_column(String(MAX_IP_LEN))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
