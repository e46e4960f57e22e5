"""UDMS login: a password, then always a second factor, then a session.

ISO/IEC 14543-5-104 makes the user <-> RAS link the first of its three authentication
levels; heslock makes it two-factor without exception (NIST SP 800-63B AAL2)::

    POST /v1/session                {login, password}      -> challenge (5 min), methods
    POST /v1/session/code           {challenge, channel}   -> a code by SMS or e-mail
    POST /v1/session/second-factor  {challenge, method, code} -> access + refresh token

Login state transitions (anything else is refused)::

    (none)     --right password--------------------> challenged
    challenged --send code (sms|email)-------------> challenged (newest code counts)
    challenged --right code | right TOTP-----------> done (session opened; challenge spent)
    challenged --wrong code, attempts < 5----------> challenged
    challenged --5th wrong code | 5 min pass-------> dead (log in again)

The challenge binds the second step to the first without a session: it is a random
token held by the client, stored hashed, single use. Wrong passwords and codes are
throttled per account and per source address (:mod:`.throttle`). Login identifiers are
verified contacts only; an unknown login costs the same argon2 time as a known one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.errors import InvalidInput, Unauthenticated
from heslock.ras.services.udms import throttle
from heslock.ras.services.udms.codes import Channel, Purpose
from heslock.ras.services.udms.contacts import guess_kind, mask, normalise
from heslock.ras.services.udms.errors import CodeRefused
from heslock.ras.services.udms.keys import TokenKind, is_token, new_token, token_hash
from heslock.ras.services.udms.rows import rowcount
from heslock.ras.services.udms.service import Scope, Udms
from heslock.ras.services.udms.sessions import TokenPair
from heslock.ras.store.models import Contact, ContactKind, LoginChallenge, OtpCode, User

#: Long enough to fetch a code from a phone, short enough to be useless when stolen.
CHALLENGE_TTL: Final = timedelta(minutes=5)
#: Second-factor guesses per challenge (each code also has its own limit).
CHALLENGE_ATTEMPTS: Final = 5


class Method(StrEnum):
    TOTP = "totp"
    SMS = "sms"
    EMAIL = "email"


@dataclass(frozen=True)
class Challenge:
    token: str
    expires_at: datetime
    methods: list[Method]


@dataclass(frozen=True)
class CodeSent:
    channel: Channel
    destination: str  # masked
    expires_at: datetime


async def _methods(session: AsyncSession, udms: Udms, user_id: uuid.UUID) -> list[Method]:
    kinds = set(
        (
            await session.execute(
                select(Contact.kind).where(
                    Contact.user_id == user_id, Contact.verified_at.is_not(None)
                )
            )
        ).scalars()
    )
    methods = [Method.TOTP] if await udms.totp.is_active(session, user_id) else []
    if ContactKind.PHONE.value in kinds:
        methods.append(Method.SMS)
    if ContactKind.EMAIL.value in kinds:
        methods.append(Method.EMAIL)
    return methods


async def _find_user(session: AsyncSession, login: str) -> uuid.UUID | None:
    kind = guess_kind(login)
    try:
        address = normalise(kind, login)
    except InvalidInput:
        return None
    return (
        await session.execute(
            select(User.id)
            .join(Contact, Contact.user_id == User.id)
            .where(
                Contact.kind == kind.value,
                Contact.address == address,
                Contact.verified_at.is_not(None),
                User.status == "active",
            )
        )
    ).scalar_one_or_none()


async def start(
    session: AsyncSession,
    udms: Udms,
    context: audit.AuditContext,
    login: str,
    password: str,
    now: datetime,
) -> Challenge:
    """Check the password; on success a challenge for the second factor."""
    user_id = await _find_user(session, login)
    await udms.verify_password(session, context, user_id, password, now, action="session.password")
    assert user_id is not None
    methods = await _methods(session, udms, user_id)
    token = new_token(TokenKind.CHALLENGE)
    session.add(
        LoginChallenge(
            user_id=user_id,
            token_hash=token_hash(token),
            attempts=0,
            source_ip=context.source_ip,
            created_at=now,
            expires_at=now + CHALLENGE_TTL,
        )
    )
    await audit.record(
        session,
        context,
        "session.password",
        audit.AuditResult.OK,
        f"user:{user_id}",
        methods=[m.value for m in methods],
    )
    return Challenge(token, now + CHALLENGE_TTL, methods)


async def _challenge(session: AsyncSession, token: str, now: datetime) -> LoginChallenge:
    if not is_token(token, TokenKind.CHALLENGE):
        raise Unauthenticated("the login challenge is not valid; log in again")
    row = (
        await session.execute(
            select(LoginChallenge)
            .where(LoginChallenge.token_hash == token_hash(token))
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if (
        row is None
        or row.consumed_at is not None
        or row.expires_at <= now
        or row.attempts >= CHALLENGE_ATTEMPTS
    ):
        raise Unauthenticated("the login challenge is not valid; log in again")
    return row


async def send_code(
    session: AsyncSession,
    udms: Udms,
    context: audit.AuditContext,
    token: str,
    channel: Channel,
    now: datetime,
) -> CodeSent:
    challenge = await _challenge(session, token, now)
    kind = ContactKind.PHONE if channel is Channel.SMS else ContactKind.EMAIL
    contact = (
        await session.execute(
            select(Contact)
            .where(
                Contact.user_id == challenge.user_id,
                Contact.kind == kind.value,
                Contact.verified_at.is_not(None),
            )
            .order_by(Contact.created_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    if contact is None:
        raise InvalidInput(f"the account has no verified {kind.value} for {channel.value} codes")
    issued = await udms.codes.issue(
        session,
        context,
        user_id=challenge.user_id,
        purpose=Purpose.LOGIN,
        channel=channel,
        destination=contact.address,
        now=now,
    )
    challenge.otp_code_id = issued.code_id
    await audit.record(
        session,
        context,
        "session.code_sent",
        audit.AuditResult.OK,
        f"user:{challenge.user_id}",
        channel=channel.value,
    )
    return CodeSent(channel, mask(kind, contact.address), issued.expires_at)


async def finish(
    session: AsyncSession,
    udms: Udms,
    context: audit.AuditContext,
    token: str,
    method: Method,
    code: str,
    now: datetime,
    *,
    user_agent: str | None,
) -> TokenPair:
    """Check the second factor; on success open a session (a new refresh-token family)."""
    challenge = await _challenge(session, token, now)
    user_id = challenge.user_id
    target = f"user:{user_id}"
    await throttle.charge(
        session, context, udms.limits(Scope.CODE, user_id, context.source_ip), now
    )
    await session.commit()  # the charge sticks whatever happens next
    charged = await session.execute(
        update(LoginChallenge)
        .where(
            LoginChallenge.id == challenge.id,
            LoginChallenge.consumed_at.is_(None),
            LoginChallenge.attempts < CHALLENGE_ATTEMPTS,
        )
        .values(attempts=LoginChallenge.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if rowcount(charged) != 1:
        raise Unauthenticated("the login challenge is not valid; log in again")
    if method is Method.TOTP:
        ok = await udms.totp.verify(session, user_id, code, now)
    else:
        ok = challenge.otp_code_id is not None and await _code_matches(
            session, udms, challenge.otp_code_id, method, code, now
        )
    if not ok:
        await audit.record_and_commit(
            session,
            context,
            "session.second_factor",
            audit.AuditResult.DENIED,
            target,
            method=method.value,
        )
        raise CodeRefused("the code is wrong, expired or used up")
    spent = await session.execute(
        update(LoginChallenge)
        .where(LoginChallenge.id == challenge.id, LoginChallenge.consumed_at.is_(None))
        .values(consumed_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(spent) != 1:
        raise Unauthenticated("the login challenge is not valid; log in again")
    await udms.succeeded(session, Scope.CODE, user_id, context.source_ip)
    pair = await udms.sessions.open(
        session, user_id, now, source_ip=context.source_ip, user_agent=user_agent
    )
    actor = audit.AuditContext(f"user:{user_id}", context.source_ip, context.request_id)
    await audit.record(
        session,
        actor,
        "session.create",
        audit.AuditResult.OK,
        f"session:{pair.session_id}",
        method=method.value,
    )
    return pair


async def _code_matches(
    session: AsyncSession,
    udms: Udms,
    code_id: uuid.UUID,
    method: Method,
    code: str,
    now: datetime,
) -> bool:
    channel = await session.scalar(select(OtpCode.channel).where(OtpCode.id == code_id))
    if channel != method.value:
        return False
    return await udms.codes.check(session, code_id, code, now)
