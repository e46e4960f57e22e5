"""UDMS accounts: register, verify contacts, change password, TOTP, delete.

Registration (ISO/IEC 14543-5-104 UDMS: a user registers with a phone number or an
e-mail address) creates the user, its argon2id credential and its contacts, unverified,
and sends each contact a verification code. A contact counts for login only once
verified. An unverified contact does not hold its address forever: after
:data:`UNVERIFIED_HOLD` anyone may register it again (no squatting on other people's
addresses).

Deletion keeps a tombstone ``users`` row with no personal data: its id is what the
append-only audit log refers to (``user:<uuid>``), and with the contacts, credential,
TOTP seed, codes and sessions gone nothing maps that id to a person any more.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.access import Principal
from heslock.ras.services.errors import Conflict, InvalidInput, NotFound
from heslock.ras.services.udms import passwords, throttle
from heslock.ras.services.udms.codes import Channel, Purpose
from heslock.ras.services.udms.contacts import normalise_email, normalise_phone
from heslock.ras.services.udms.errors import CodeRefused
from heslock.ras.services.udms.service import Scope, Udms
from heslock.ras.services.udms.sessions import RevokeReason
from heslock.ras.services.udms.totp import Enrolment
from heslock.ras.store.models import (
    Contact,
    ContactKind,
    LoginChallenge,
    OtpCode,
    PasswordCredential,
    RateLimitBucket,
    TotpSecret,
    User,
    UserSession,
)

#: How long an unverified contact reserves its address (a day to find the code).
UNVERIFIED_HOLD: Final = timedelta(days=1)


@dataclass(frozen=True)
class ContactView:
    id: uuid.UUID
    kind: str
    address: str
    verified: bool


@dataclass(frozen=True)
class AccountView:
    id: uuid.UUID
    created_at: datetime
    display_name: str | None
    is_admin: bool
    contacts: list[ContactView]
    totp_active: bool


def _view(contact: Contact) -> ContactView:
    return ContactView(contact.id, contact.kind, contact.address, contact.verified_at is not None)


def _channel(kind: str) -> Channel:
    return Channel.SMS if kind == ContactKind.PHONE.value else Channel.EMAIL


async def _contacts(session: AsyncSession, user_id: uuid.UUID) -> list[Contact]:
    query = select(Contact).where(Contact.user_id == user_id).order_by(Contact.created_at)
    return list((await session.execute(query)).scalars())


async def profile(session: AsyncSession, udms: Udms, user_id: uuid.UUID) -> AccountView:
    user = await session.get(User, user_id)
    if user is None or user.status == "deleted":
        raise NotFound("no such account")
    contacts = await _contacts(session, user_id)
    return AccountView(
        user.id,
        user.created_at,
        user.display_name,
        user.is_admin,
        [_view(c) for c in contacts],
        await udms.totp.is_active(session, user_id),
    )


async def _claim(session: AsyncSession, kind: ContactKind, address: str, now: datetime) -> None:
    """Refuse an address someone holds; release it if only held by a stale unverified contact."""
    existing = (
        await session.execute(
            select(Contact).where(Contact.kind == kind.value, Contact.address == address)
        )
    ).scalar_one_or_none()
    if existing is None:
        return
    if existing.verified_at is not None or existing.created_at > now - UNVERIFIED_HOLD:
        raise Conflict(f"this {kind.value} is already registered")
    await session.execute(delete(Contact).where(Contact.id == existing.id))


async def register(
    session: AsyncSession,
    udms: Udms,
    context: audit.AuditContext,
    *,
    email: str | None,
    phone: str | None,
    password: str,
    display_name: str | None,
    now: datetime,
) -> AccountView:
    await throttle.charge(
        session, context, udms.limits(Scope.REGISTER, None, context.source_ip), now
    )
    await session.commit()  # the charge sticks even if this registration is refused (409)
    wanted: list[tuple[ContactKind, str]] = []
    if email is not None:
        wanted.append((ContactKind.EMAIL, normalise_email(email)))
    if phone is not None:
        wanted.append((ContactKind.PHONE, normalise_phone(phone)))
    if not wanted:
        raise InvalidInput("an e-mail address or a phone number is required")
    clean = passwords.check(password, [address for _, address in wanted])
    for kind, address in wanted:
        await _claim(session, kind, address, now)
    password_hash = await udms.hasher.hash(clean)
    user = User(id=uuid.uuid4(), display_name=display_name, is_admin=False, created_at=now)
    session.add(user)
    await session.flush()
    session.add(PasswordCredential(user_id=user.id, password_hash=password_hash, changed_at=now))
    contacts = [
        Contact(id=uuid.uuid4(), user_id=user.id, kind=kind.value, address=address, created_at=now)
        for kind, address in wanted
    ]
    session.add_all(contacts)
    await session.flush()
    actor = audit.AuditContext(f"user:{user.id}", context.source_ip, context.request_id)
    await audit.record(
        session,
        actor,
        "account.create",
        audit.AuditResult.OK,
        f"user:{user.id}",
        contacts=[kind.value for kind, _ in wanted],
    )
    for contact in contacts:
        await udms.codes.issue(
            session,
            actor,
            user_id=user.id,
            purpose=Purpose.VERIFY_CONTACT,
            channel=_channel(contact.kind),
            destination=contact.address,
            now=now,
            contact_id=contact.id,
        )
    return AccountView(user.id, now, display_name, False, [_view(c) for c in contacts], False)


async def resend_verification(
    session: AsyncSession,
    udms: Udms,
    context: audit.AuditContext,
    contact_id: uuid.UUID,
    now: datetime,
) -> datetime:
    """Send a fresh code to an unverified contact; returns when it expires."""
    await throttle.charge(session, context, udms.limits(Scope.SEND, None, context.source_ip), now)
    await session.commit()  # the charge sticks even if the contact is unknown (404)
    contact = await session.get(Contact, contact_id)
    if contact is None:
        raise NotFound("no such contact")
    if contact.verified_at is not None:
        raise Conflict("this contact is already verified")
    issued = await udms.codes.issue(
        session,
        context,
        user_id=contact.user_id,
        purpose=Purpose.VERIFY_CONTACT,
        channel=_channel(contact.kind),
        destination=contact.address,
        now=now,
        contact_id=contact.id,
    )
    await audit.record(
        session,
        context,
        "account.code_sent",
        audit.AuditResult.OK,
        f"user:{contact.user_id}",
        contact_id=str(contact.id),
        channel=_channel(contact.kind).value,
    )
    return issued.expires_at


async def verify_contact(
    session: AsyncSession,
    udms: Udms,
    context: audit.AuditContext,
    contact_id: uuid.UUID,
    code: str,
    now: datetime,
) -> ContactView:
    contact = await session.get(Contact, contact_id)
    user_id = contact.user_id if contact is not None else None
    await throttle.charge(
        session, context, udms.limits(Scope.VERIFY, user_id, context.source_ip), now
    )
    code_id = None
    if contact is not None:
        code_id = (
            await session.execute(
                select(OtpCode.id)
                .where(
                    OtpCode.contact_id == contact.id,
                    OtpCode.purpose == Purpose.VERIFY_CONTACT.value,
                    OtpCode.consumed_at.is_(None),
                )
                .order_by(OtpCode.created_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
    if (
        contact is None
        or user_id is None
        or code_id is None
        or not await udms.codes.check(session, code_id, code, now)
    ):
        target = f"user:{user_id}" if user_id else None
        await audit.record_and_commit(
            session,
            context,
            "account.verify_contact",
            audit.AuditResult.DENIED,
            target,
            contact_id=str(contact_id),
        )
        raise CodeRefused("the code is wrong, expired or used up")
    contact.verified_at = now
    await udms.succeeded(session, Scope.VERIFY, user_id, context.source_ip)
    await audit.record(
        session,
        context,
        "account.verify_contact",
        audit.AuditResult.OK,
        f"user:{user_id}",
        contact_id=str(contact.id),
        kind=contact.kind,
    )
    return _view(contact)


async def change_password(
    session: AsyncSession,
    udms: Udms,
    context: audit.AuditContext,
    principal: Principal,
    current: str,
    new: str,
    now: datetime,
) -> int:
    """Set a new password and revoke every other session; returns how many were revoked."""
    assert principal.id is not None
    await udms.verify_password(
        session, context, principal.id, current, now, action="account.password_change"
    )
    contacts = await _contacts(session, principal.id)
    clean = passwords.check(new, [c.address for c in contacts])
    credential = await session.get(PasswordCredential, principal.id)
    assert credential is not None  # verify_password proved it exists
    credential.password_hash = await udms.hasher.hash(clean)
    credential.changed_at = now
    others = [
        s.id
        for s in await udms.sessions.active(session, principal.id, now)
        if s.id != principal.session_id
    ]
    await udms.sessions.revoke(session, others, RevokeReason.PASSWORD_CHANGED, now)
    await audit.record(
        session,
        context,
        "account.password_change",
        audit.AuditResult.OK,
        f"user:{principal.id}",
        sessions_revoked=len(others),
    )
    return len(others)


async def enrol_totp(
    session: AsyncSession,
    udms: Udms,
    context: audit.AuditContext,
    principal: Principal,
    password: str,
    now: datetime,
) -> Enrolment:
    """A new pending TOTP seed (password re-checked: a stolen access token is not enough)."""
    assert principal.id is not None
    await udms.verify_password(
        session, context, principal.id, password, now, action="account.totp_enrol"
    )
    contacts = await _contacts(session, principal.id)
    label = contacts[0].address if contacts else str(principal.id)
    enrolment = await udms.totp.enrol(session, principal.id, label, now)
    await audit.record(
        session, context, "account.totp_enrol", audit.AuditResult.OK, f"user:{principal.id}"
    )
    return enrolment


async def confirm_totp(
    session: AsyncSession,
    udms: Udms,
    context: audit.AuditContext,
    principal: Principal,
    code: str,
    now: datetime,
) -> None:
    assert principal.id is not None
    await throttle.charge(
        session, context, udms.limits(Scope.CODE, principal.id, context.source_ip), now
    )
    if not await udms.totp.verify(session, principal.id, code, now, confirming=True):
        await audit.record_and_commit(
            session,
            context,
            "account.totp_confirm",
            audit.AuditResult.DENIED,
            f"user:{principal.id}",
        )
        raise CodeRefused("the code is wrong, or no TOTP enrolment is pending")
    await udms.succeeded(session, Scope.CODE, principal.id, context.source_ip)
    await audit.record(
        session, context, "account.totp_confirm", audit.AuditResult.OK, f"user:{principal.id}"
    )


async def delete_account(
    session: AsyncSession,
    udms: Udms,
    context: audit.AuditContext,
    principal: Principal,
    password: str,
    now: datetime,
) -> None:
    """Revoke everything the account holds and remove its personal data (see module doc)."""
    user_id = principal.id
    assert user_id is not None
    await udms.verify_password(session, context, user_id, password, now, action="account.delete")
    user = await session.get(User, user_id)
    assert user is not None
    if user.is_admin:
        admins = await session.scalar(
            select(func.count()).select_from(User).where(User.is_admin, User.status == "active")
        )
        if (admins or 0) <= 1:
            raise Conflict("the last administrator cannot delete their account")
    for hook in udms.deletion_hooks:
        await hook(session, user_id, context, now)
    session_ids = list(
        (
            await session.execute(select(UserSession.id).where(UserSession.user_id == user_id))
        ).scalars()
    )
    await udms.sessions.revoke(session, session_ids, RevokeReason.ACCOUNT_DELETED, now)
    # Sessions hold addresses and user agents: remove them with their token families.
    for model in (UserSession, LoginChallenge, OtpCode, TotpSecret, PasswordCredential, Contact):
        await session.execute(delete(model).where(model.user_id == user_id))
    await session.execute(
        delete(RateLimitBucket).where(RateLimitBucket.key.like(f"%:acct:{user_id}"))
    )
    user.status = "deleted"
    user.deleted_at = now
    user.display_name = None
    user.is_admin = False
    await audit.record(
        session,
        context,
        "account.delete",
        audit.AuditResult.OK,
        f"user:{user_id}",
        sessions_revoked=len(session_ids),
    )
