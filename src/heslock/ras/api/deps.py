"""FastAPI dependencies: the per-request unit of work, the caller, the audit context.

The session dependency is the unit of work of one request: it yields an ``AsyncSession``
and commits when the route returns — *before* the response is sent (``scope="function"``),
so anything the route wrote, its audit record included, is durable when the client sees
the answer. An exception rolls everything back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from heslock.ras.api.metrics import RasMetrics
from heslock.ras.keystore import Keystore
from heslock.ras.passwords import PasswordHasher
from heslock.ras.services import audit
from heslock.ras.services.access import Authenticator, Principal
from heslock.ras.services.errors import Unauthenticated
from heslock.ras.services.oauth import gate as oauth_gate
from heslock.ras.settings import Settings
from heslock.ras.store.engine import inline_reads

#: A bearer credential longer than this is not one of ours; refuse before any lookup.
MAX_CREDENTIAL_LEN: Final = 4096


@dataclass
class AppState:
    """Everything a request needs, built once by ``create_app``."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    keystore: Keystore
    hasher: PasswordHasher
    metrics: RasMetrics
    authenticator: Authenticator


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.ras
    return state


StateDep = Annotated[AppState, Depends(app_state)]


async def unit_of_work(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]


def source_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def request_id(request: Request) -> str | None:
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


def anonymous_context(request: Request) -> audit.AuditContext:
    return audit.AuditContext("anonymous", source_ip(request), request_id(request))


async def current_principal(request: Request, state: StateDep, session: SessionDep) -> Principal:
    """The authenticated caller, or 401. A refused credential is counted and audited."""
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if not header:
        raise Unauthenticated("a bearer token is required")
    reason = None
    if scheme.lower() != "bearer" or not credential.strip():
        reason = "malformed"
    elif len(credential) > MAX_CREDENTIAL_LEN:
        reason = "oversized"
    principal = None
    if reason is None:
        with inline_reads(state.sessionmaker):  # point lookups (heslock.ras.store.engine)
            principal = await state.authenticator.authenticate(session, credential.strip())
        reason = None if principal is not None else "invalid"
    if principal is None:
        state.metrics.auth_failures.labels("bearer", reason or "invalid").inc()
        route = getattr(request.scope.get("route"), "path", request.url.path)
        await audit.record_and_commit(
            session,
            anonymous_context(request),
            "auth.bearer",
            audit.AuditResult.DENIED,
            reason=reason,
            route=route,
        )
        raise Unauthenticated("the bearer token is not valid")
    # A third-party app's token (OAuth 2.0, issue 8) reaches only the routes, scopes and
    # locks its grant allows; for anyone else this returns at once.
    await oauth_gate.check(session, request, principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def audit_context(request: Request, principal: PrincipalDep) -> audit.AuditContext:
    return audit.AuditContext(principal.audit_actor, source_ip(request), request_id(request))


AuditDep = Annotated[audit.AuditContext, Depends(audit_context)]


#: Documents the bearer scheme in OpenAPI; authentication itself is ``PrincipalDep``.
#: Routers whose every route needs a token declare ``dependencies=BEARER`` once.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A UDMS access token (hla_...) from POST /v1/session/second-factor.",
)
BEARER: Final = [Security(bearer_scheme)]
