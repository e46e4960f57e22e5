"""People's XMPP logins over HTTPS: create (password shown once), list, revoke (issue 7).

``POST /v1/account/xmpp-logins`` gives the caller a JID and a password for any standard
XMPP client (SASL SCRAM-SHA-256, RFC 7677) that then receives their live events
(docs/protocol.md, "Live events over XMPP"). Thin adapters over
:mod:`heslock.ras.services.xmppusers.logins`; every decision is there.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep, StateDep
from heslock.ras.api.routers.udms_common import STRICT, no_store, problem_docs
from heslock.ras.services.xmppusers import logins
from heslock.ras.store import utcnow
from heslock.ras.store.models import XmppLogin
from heslock.ras.store.models.xmpp import MAX_LABEL_LEN

router = APIRouter(prefix="/v1/account", tags=["account (UDMS)"], dependencies=BEARER)


class XmppLoginCreate(BaseModel):
    model_config = STRICT
    label: Annotated[str, Field(min_length=1, max_length=MAX_LABEL_LEN, examples=["phone"])] = (
        "XMPP client"
    )


class XmppServerInfo(BaseModel):
    """Where the client connects: the domain, STARTTLS and direct TLS (XEP-0368) ports
    (``null``: not offered)."""

    domain: str
    starttls_port: int | None
    direct_tls_port: int | None


class XmppLoginView(BaseModel):
    """One login; only SCRAM verifiers are stored, and none of them appears here."""

    id: uuid.UUID
    jid: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


class XmppLoginWithPassword(XmppLoginView):
    """A new login with its password: shown this once, never again."""

    password: str
    server: XmppServerInfo


def _sessions(request: Request) -> logins.LoginSessions:
    sessions: logins.LoginSessions = request.app.state.xmpp_logins
    return sessions


def _view(login: XmppLogin, domain: str) -> XmppLoginView:
    return XmppLoginView(
        id=login.id,
        jid=logins.jid_of(login, domain),
        label=login.label,
        created_at=login.created_at,
        revoked_at=login.revoked_at,
    )


@router.post(
    "/xmpp-logins",
    status_code=status.HTTP_201_CREATED,
    summary="Create an XMPP login for your live events (password shown once)",
    responses=problem_docs(401, 403, 409, 429),
)
async def create_xmpp_login(
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    ctx: AuditDep,
    response: Response,
    body: XmppLoginCreate | None = None,
) -> XmppLoginWithPassword:
    settings = state.settings
    login, password = await logins.create(
        session,
        principal,
        ctx,
        label=(body or XmppLoginCreate()).label,
        iterations=settings.scram_iterations,
        now=utcnow(),
    )
    no_store(response)
    view = _view(login, settings.domain)
    # The relay's bound ports when it runs here (a configured 0 means "any free port").
    bound = _sessions(request).ports
    return XmppLoginWithPassword(
        **view.model_dump(),
        password=password,
        server=XmppServerInfo(
            domain=settings.domain,
            starttls_port=bound.get("starttls") or settings.xmpp_port or None,
            direct_tls_port=bound.get("direct_tls") or settings.xmpp_direct_tls_port or None,
        ),
    )


@router.get(
    "/xmpp-logins",
    summary="Your XMPP logins, live and revoked",
    responses=problem_docs(401, 403),
)
async def list_xmpp_logins(
    principal: PrincipalDep, session: SessionDep, state: StateDep
) -> list[XmppLoginView]:
    domain = state.settings.domain
    return [_view(login, domain) for login in await logins.list_own(session, principal)]


@router.delete(
    "/xmpp-logins/{login_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an XMPP login (its live session is closed)",
    responses=problem_docs(401, 403, 404),
)
async def revoke_xmpp_login(
    login_id: uuid.UUID,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    ctx: AuditDep,
) -> None:
    login = await logins.revoke(session, principal, ctx, login_id, utcnow())
    bare = logins.jid_of(login, state.settings.domain)
    await session.commit()  # durable before the live session is dropped
    _sessions(request).disconnect(bare, "revoked")
