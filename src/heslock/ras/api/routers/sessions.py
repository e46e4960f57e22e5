"""UDMS session routes: login (password, then second factor), refresh, logout, sessions.

Thin adapters over :mod:`heslock.ras.services.udms.login` and ``.sessions``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep
from heslock.ras.api.routers.udms_common import (
    MAX_LOGIN_INPUT,
    STRICT,
    AnonymousDep,
    Code,
    Password,
    Token,
    UdmsDep,
    no_store,
    problem_docs,
)
from heslock.ras.services import audit
from heslock.ras.services.access import Action, Resource, ResourceKind, authorize
from heslock.ras.services.errors import NotFound
from heslock.ras.services.udms import login
from heslock.ras.services.udms.codes import Channel
from heslock.ras.services.udms.sessions import RevokeReason, TokenPair
from heslock.ras.store import utcnow
from heslock.ras.store.models import UserSession

router = APIRouter(prefix="/v1", tags=["sessions (UDMS)"])


class LoginRequest(BaseModel):
    model_config = STRICT
    login: Annotated[str, Field(min_length=1, max_length=MAX_LOGIN_INPUT)]
    password: Password


class ChallengeOut(BaseModel):
    challenge: str
    expires_at: datetime
    methods: list[login.Method]


class CodeRequest(BaseModel):
    model_config = STRICT
    challenge: Token
    channel: Channel


class CodeSentOut(BaseModel):
    channel: Channel
    destination: str = Field(description="The contact the code went to, masked")
    expires_at: datetime


class SecondFactorRequest(BaseModel):
    model_config = STRICT
    challenge: Token
    method: login.Method
    code: Code


class RefreshRequest(BaseModel):
    model_config = STRICT
    refresh_token: Token


class TokensOut(BaseModel):
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105  (RFC 6750 token type, not a secret)
    access_token: str
    expires_in: int = Field(description="Seconds the access token stays valid")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds until the session ends")
    session_id: uuid.UUID


class SessionOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    source_ip: str | None
    current: bool


def _tokens(pair: TokenPair, response: Response) -> TokensOut:
    now = utcnow()
    no_store(response)
    return TokensOut(
        access_token=pair.access_token,
        expires_in=max(0, int((pair.access_expires_at - now).total_seconds())),
        refresh_token=pair.refresh_token,
        refresh_expires_in=max(0, int((pair.refresh_expires_at - now).total_seconds())),
        session_id=pair.session_id,
    )


@router.post(
    "/session",
    summary="Log in, step 1: password -> a challenge for the second factor",
    responses=problem_docs(401, 429),
)
async def start_login(
    body: LoginRequest, session: SessionDep, udms: UdmsDep, ctx: AnonymousDep, response: Response
) -> ChallengeOut:
    challenge = await login.start(session, udms, ctx, body.login, body.password, utcnow())
    no_store(response)
    return ChallengeOut(
        challenge=challenge.token, expires_at=challenge.expires_at, methods=challenge.methods
    )


@router.post(
    "/session/code",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Log in, step 2a: send a one-time code by SMS or e-mail",
    responses=problem_docs(401, 429, 503),
)
async def send_login_code(
    body: CodeRequest, session: SessionDep, udms: UdmsDep, ctx: AnonymousDep
) -> CodeSentOut:
    sent = await login.send_code(session, udms, ctx, body.challenge, body.channel, utcnow())
    return CodeSentOut(
        channel=sent.channel, destination=sent.destination, expires_at=sent.expires_at
    )


@router.post(
    "/session/second-factor",
    status_code=status.HTTP_201_CREATED,
    summary="Log in, step 2b: the code (SMS, e-mail or TOTP) -> access and refresh token",
    responses=problem_docs(400, 401, 429),
)
async def second_factor(
    body: SecondFactorRequest,
    request: Request,
    session: SessionDep,
    udms: UdmsDep,
    ctx: AnonymousDep,
    response: Response,
) -> TokensOut:
    pair = await login.finish(
        session,
        udms,
        ctx,
        body.challenge,
        body.method,
        body.code,
        utcnow(),
        user_agent=request.headers.get("user-agent"),
    )
    return _tokens(pair, response)


@router.post(
    "/session/refresh",
    summary="Rotate: a refresh token -> a new pair (reusing an old one ends the session)",
    responses=problem_docs(401),
)
async def refresh(
    body: RefreshRequest, session: SessionDep, udms: UdmsDep, ctx: AnonymousDep, response: Response
) -> TokensOut:
    pair = await udms.sessions.refresh(session, ctx, body.refresh_token, utcnow())
    return _tokens(pair, response)


async def _revoke(
    session: SessionDep, udms: UdmsDep, ctx: AuditDep, session_id: uuid.UUID, reason: str
) -> None:
    await udms.sessions.revoke(session, [session_id], reason, utcnow())
    await audit.record(
        session, ctx, "session.revoke", audit.AuditResult.OK, f"session:{session_id}", reason=reason
    )


@router.delete(
    "/session",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log out: end the session of this access token",
    dependencies=BEARER,
    responses=problem_docs(401),
)
async def logout(
    principal: PrincipalDep, session: SessionDep, udms: UdmsDep, ctx: AuditDep
) -> None:
    if principal.session_id is None:
        raise NotFound("no such session")
    await _revoke(session, udms, ctx, principal.session_id, RevokeReason.LOGOUT)


@router.get(
    "/sessions", summary="Your active sessions", dependencies=BEARER, responses=problem_docs(401)
)
async def list_sessions(
    principal: PrincipalDep, session: SessionDep, udms: UdmsDep
) -> list[SessionOut]:
    authorize(principal, Action.SESSION_READ, Resource(ResourceKind.SESSION, owner_id=principal.id))
    assert principal.id is not None
    return [
        SessionOut(
            id=s.id,
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            expires_at=s.expires_at,
            user_agent=s.user_agent,
            source_ip=s.source_ip,
            current=s.id == principal.session_id,
        )
        for s in await udms.sessions.active(session, principal.id, utcnow())
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one of your sessions",
    dependencies=BEARER,
    responses=problem_docs(401, 404),
)
async def revoke_session(
    session_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    udms: UdmsDep,
    ctx: AuditDep,
) -> None:
    row = await session.get(UserSession, session_id)
    if row is None or row.revoked_at is not None:
        raise NotFound("no such session")
    authorize(
        principal, Action.SESSION_REVOKE, Resource(ResourceKind.SESSION, str(row.id), row.user_id)
    )
    await _revoke(session, udms, ctx, row.id, RevokeReason.REVOKED)
