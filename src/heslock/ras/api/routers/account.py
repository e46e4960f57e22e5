"""UDMS account routes: register, verify contacts, profile, password, TOTP, deletion.

Thin adapters over :mod:`heslock.ras.services.udms.accounts`; every decision is there.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep
from heslock.ras.api.routers.udms_common import (
    MAX_LOGIN_INPUT,
    STRICT,
    AnonymousDep,
    Code,
    Password,
    UdmsDep,
    no_store,
    problem_docs,
)
from heslock.ras.services.access import Action, Principal, Resource, ResourceKind, authorize
from heslock.ras.services.udms import accounts
from heslock.ras.store import utcnow

router = APIRouter(prefix="/v1/account", tags=["account (UDMS)"])


class RegisterRequest(BaseModel):
    model_config = STRICT
    email: Annotated[str, Field(max_length=MAX_LOGIN_INPUT)] | None = None
    phone: Annotated[str, Field(max_length=64, examples=["+442079460958"])] | None = None
    password: Password
    display_name: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class ContactOut(BaseModel):
    id: uuid.UUID
    kind: str
    address: str
    verified: bool


class AccountOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    display_name: str | None
    is_admin: bool
    contacts: list[ContactOut]
    totp_active: bool


class VerifyRequest(BaseModel):
    model_config = STRICT
    contact_id: uuid.UUID
    code: Code


class ResendRequest(BaseModel):
    model_config = STRICT
    contact_id: uuid.UUID


class CodeSentOut(BaseModel):
    expires_at: datetime


class PasswordChangeRequest(BaseModel):
    model_config = STRICT
    current_password: Password
    new_password: Password


class PasswordChangedOut(BaseModel):
    sessions_revoked: int


class ReauthRequest(BaseModel):
    model_config = STRICT
    password: Password


class TotpEnrolmentOut(BaseModel):
    otpauth_uri: str
    secret: str


class TotpConfirmRequest(BaseModel):
    model_config = STRICT
    code: Code


def _out(view: accounts.AccountView) -> AccountOut:
    return AccountOut(
        id=view.id,
        created_at=view.created_at,
        display_name=view.display_name,
        is_admin=view.is_admin,
        contacts=[ContactOut(**c.__dict__) for c in view.contacts],
        totp_active=view.totp_active,
    )


def _own(principal: Principal, action: Action) -> None:
    authorize(principal, action, Resource(ResourceKind.ACCOUNT, str(principal.id), principal.id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register: e-mail and/or E.164 phone, and a password; codes are sent to verify",
    responses=problem_docs(409, 429, 503),
)
async def register(
    body: RegisterRequest, session: SessionDep, udms: UdmsDep, ctx: AnonymousDep
) -> AccountOut:
    view = await accounts.register(
        session,
        udms,
        ctx,
        email=body.email,
        phone=body.phone,
        password=body.password,
        display_name=body.display_name,
        now=utcnow(),
    )
    return _out(view)


@router.post(
    "/verify",
    summary="Verify a contact with the code sent to it",
    responses=problem_docs(400, 429),
)
async def verify(
    body: VerifyRequest, session: SessionDep, udms: UdmsDep, ctx: AnonymousDep
) -> ContactOut:
    view = await accounts.verify_contact(session, udms, ctx, body.contact_id, body.code, utcnow())
    return ContactOut(**view.__dict__)


@router.post(
    "/verify/resend",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a new verification code to an unverified contact",
    responses=problem_docs(404, 409, 429, 503),
)
async def resend(
    body: ResendRequest, session: SessionDep, udms: UdmsDep, ctx: AnonymousDep
) -> CodeSentOut:
    expires = await accounts.resend_verification(session, udms, ctx, body.contact_id, utcnow())
    return CodeSentOut(expires_at=expires)


@router.get("", summary="Your account", dependencies=BEARER, responses=problem_docs(401))
async def read(principal: PrincipalDep, session: SessionDep, udms: UdmsDep) -> AccountOut:
    _own(principal, Action.ACCOUNT_READ)
    assert principal.id is not None
    return _out(await accounts.profile(session, udms, principal.id))


@router.post(
    "/password",
    summary="Change your password (revokes your other sessions)",
    dependencies=BEARER,
    responses=problem_docs(401, 429),
)
async def change_password(
    body: PasswordChangeRequest,
    principal: PrincipalDep,
    session: SessionDep,
    udms: UdmsDep,
    ctx: AuditDep,
) -> PasswordChangedOut:
    _own(principal, Action.ACCOUNT_UPDATE)
    revoked = await accounts.change_password(
        session, udms, ctx, principal, body.current_password, body.new_password, utcnow()
    )
    return PasswordChangedOut(sessions_revoked=revoked)


@router.post(
    "/totp",
    status_code=status.HTTP_201_CREATED,
    summary="Start TOTP enrolment (password required); confirm with one code to activate",
    dependencies=BEARER,
    responses=problem_docs(401, 429),
)
async def enrol_totp(
    body: ReauthRequest,
    principal: PrincipalDep,
    session: SessionDep,
    udms: UdmsDep,
    ctx: AuditDep,
    response: Response,
) -> TotpEnrolmentOut:
    _own(principal, Action.ACCOUNT_UPDATE)
    enrolment = await accounts.enrol_totp(session, udms, ctx, principal, body.password, utcnow())
    no_store(response)
    return TotpEnrolmentOut(otpauth_uri=enrolment.uri, secret=enrolment.seed)


@router.post(
    "/totp/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Activate a pending TOTP enrolment with one current code",
    dependencies=BEARER,
    responses=problem_docs(400, 401, 429),
)
async def confirm_totp(
    body: TotpConfirmRequest,
    principal: PrincipalDep,
    session: SessionDep,
    udms: UdmsDep,
    ctx: AuditDep,
) -> None:
    _own(principal, Action.ACCOUNT_UPDATE)
    await accounts.confirm_totp(session, udms, ctx, principal, body.code, utcnow())


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete your account: sessions revoked, personal data removed (password required)",
    dependencies=BEARER,
    responses=problem_docs(401, 409, 429),
)
async def delete(
    body: ReauthRequest,
    principal: PrincipalDep,
    session: SessionDep,
    udms: UdmsDep,
    ctx: AuditDep,
) -> None:
    _own(principal, Action.ACCOUNT_DELETE)
    await accounts.delete_account(session, udms, ctx, principal, body.password, utcnow())
