"""Third-party access (OAuth 2.0, issue 8): the authorisation server's endpoints, the
consent page, and the developer routes (apps a user registered, grants a user gave).

Protocol decisions are authlib's (:mod:`heslock.ras.services.oauth.server`); storage is
:mod:`heslock.ras.services.oauth.store`. This module reads requests, renders the consent
page and maps answers. How the consent page authenticates the user (a one-time consent
ticket the user's signed-in app obtains with its bearer token) is in docs/security.md,
"Third-party access (OAuth 2.0)".
"""

from __future__ import annotations

import base64
import binascii
import html
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode

from authlib.oauth2 import OAuth2Error  # type: ignore[import-untyped]
from fastapi import APIRouter, Request, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers

from heslock.ras.api.deps import (
    BEARER,
    AuditDep,
    PrincipalDep,
    SessionDep,
    StateDep,
    anonymous_context,
    source_ip,
)
from heslock.ras.api.problems import problem_response
from heslock.ras.services import audit
from heslock.ras.services.access import (
    Action,
    Principal,
    PrincipalKind,
    Resource,
    ResourceKind,
    authorize,
)
from heslock.ras.services.ddms import locks as ddms_locks
from heslock.ras.services.errors import InvalidInput, NotFound, TooManyRequests
from heslock.ras.services.oauth import scopes as oauth_scopes
from heslock.ras.services.oauth import server as oauth_server
from heslock.ras.services.oauth import store
from heslock.ras.services.oauth.secrets import client_secret_pepper, digest, same
from heslock.ras.services.sharing import homes as sharing_homes
from heslock.ras.services.udms import throttle
from heslock.ras.store import utcnow
from heslock.ras.store.models import ClientType, OAuthClient

router = APIRouter(tags=["third-party access (OAuth 2.0)"])

SERVER: Final = oauth_server.RasAuthorizationServer()
#: A form or query with more fields than this is not an OAuth request.
MAX_FIELDS: Final = 64
#: The OAuth parameters of an authorisation request (the rest of the query is ignored).
AUTHORIZE_PARAMS: Final = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)
#: The consent page loads nothing, runs nothing, posts only to us, and is never framed.
PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}

T = TypeVar("T")


def _issuer(state: Any, request: Request) -> str:
    configured: str | None = state.settings.oauth_issuer
    return (configured or str(request.base_url)).rstrip("/")


def _lifetimes(state: Any) -> store.Lifetimes:
    s = state.settings
    return store.Lifetimes(
        access=timedelta(seconds=s.oauth_access_ttl_s),
        refresh=timedelta(seconds=s.oauth_refresh_ttl_s),
        code=timedelta(seconds=s.oauth_code_ttl_s),
        ticket=timedelta(seconds=s.oauth_ticket_ttl_s),
    )


def _context(
    state: Any, request: Request, session: Any, ctx: audit.AuditContext, now: datetime
) -> oauth_server.Context:
    return oauth_server.Context(
        session=session,
        pepper=client_secret_pepper(state.keystore),
        lifetimes=_lifetimes(state),
        issuer=_issuer(state, request),
        now=now,
        audit=ctx,
    )


async def _form(request: Request) -> list[tuple[str, str]]:
    """An ``application/x-www-form-urlencoded`` body (RFC 6749 3.2), else 400."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidInput("the body must be application/x-www-form-urlencoded")
    try:
        text = (await request.body()).decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the form is malformed") from None


def _query(request: Request) -> list[tuple[str, str]]:
    items = request.query_params.multi_items()
    if len(items) > MAX_FIELDS:
        raise InvalidInput("too many query parameters")
    return items


def _oauth_request(
    request: Request, query: list[tuple[str, str]], form: list[tuple[str, str]], from_form: bool
) -> oauth_server.StarletteRequest:
    return oauth_server.StarletteRequest(
        request.method,
        str(request.url),
        Headers(scope=request.scope),
        query,
        form,
        payload_from_form=from_form,
    )


def _params(query: list[tuple[str, str]]) -> dict[str, str | None]:
    first: dict[str, str] = {}
    for key, value in query:
        first.setdefault(key, value)
    return {k: first.get(k) for k in AUTHORIZE_PARAMS}


async def _in_thread(ctx: oauth_server.Context, fn: Callable[[], T]) -> T:
    return await oauth_server.run(ctx, fn)


# --------------------------------------------------------------------------- metadata


@router.get(
    "/.well-known/oauth-authorization-server",
    summary="Authorisation server metadata (RFC 8414)",
)
async def metadata(state: StateDep, request: Request) -> dict[str, Any]:
    issuer = _issuer(state, request)
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "scopes_supported": sorted(s.value for s in oauth_scopes.ALL_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(oauth_server.GRANT_TYPES),
        "token_endpoint_auth_methods_supported": [
            *oauth_server.AUTH_METHODS_CONFIDENTIAL,
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            *oauth_server.AUTH_METHODS_CONFIDENTIAL,
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": list(
            oauth_server.AUTH_METHODS_CONFIDENTIAL
        ),
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }


# --------------------------------------------------------------------------- consent


class TicketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: The query string of the authorisation URL the app sent the user to.
    query: Annotated[str, Field(min_length=1, max_length=4096)]


class TicketOut(BaseModel):
    consent_url: str
    expires_at: datetime


@router.post(
    "/oauth/authorize/ticket",
    status_code=201,
    summary="A one-time consent ticket: opens the consent page for the signed-in user",
    dependencies=BEARER,
)
async def consent_ticket(
    body: TicketRequest,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    request: Request,
    response: Response,
    ctx: AuditDep,
) -> TicketOut:
    if principal.kind is not PrincipalKind.USER or principal.id is None:
        raise NotFound("no such user")
    try:
        query = parse_qsl(body.query.lstrip("?"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise InvalidInput("the query is malformed") from None
    now = utcnow()
    ticket, expires = await store.new_ticket(
        session, principal.id, _params(query), now, _lifetimes(state).ticket
    )
    await audit.record(session, ctx, "oauth.consent_ticket", audit.AuditResult.OK)
    response.headers.update(NO_STORE)
    signed = urlencode([*query, ("consent_ticket", ticket)])
    return TicketOut(
        consent_url=f"{_issuer(state, request)}/oauth/authorize?{signed}", expires_at=expires
    )


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:36em;margin:2em auto}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(text, status_code=status_code, headers=PAGE_HEADERS)


def _error_page(message: str, status_code: int = 400) -> HTMLResponse:
    return _page("Request refused", f"<p>{html.escape(message)}</p>", status_code)


async def _validate(
    ctx: oauth_server.Context, oauth_request: oauth_server.StarletteRequest, user: uuid.UUID | None
) -> tuple[Any, Response | None]:
    """authlib validates the authorisation request: (grant, None) or (None, the answer:
    a redirect to the app if the redirect URI was verified, else an error page)."""

    def validate() -> Any:
        return SERVER.get_consent_grant(
            oauth_request, end_user=oauth_server.User(user) if user else None
        )

    try:
        return await _in_thread(ctx, validate), None
    except OAuth2Error as error:
        failed = error
    if failed.redirect_uri:
        # The redirect URI is verified: the error goes back to the app (RFC 6749 4.1.2.1).
        answer = await _in_thread(ctx, lambda: SERVER.handle_error_response(oauth_request, failed))
        return None, answer
    # Never redirect to an unverified URI (open redirector): an error page instead.
    return None, _error_page(failed.description or failed.error)


async def _choices(
    session: Any, user_id: uuid.UUID, now: datetime
) -> tuple[list[tuple[uuid.UUID, str]], list[tuple[uuid.UUID, str]]]:
    """The locks and homes the user may hand to the app (what they can see themselves)."""
    principal = Principal(PrincipalKind.USER, user_id)
    seen = await ddms_locks.list_visible(session, principal, now)
    homes = await sharing_homes.list_visible(session, principal, now)
    return (
        [(s.lock.id, s.lock.name) for s in seen],
        [(h.home.id, h.home.name) for h in homes],
    )


def _checkboxes(name: str, items: list[tuple[str, str]]) -> str:
    rows = "".join(
        f'<li><label><input type=checkbox name={name} value="{html.escape(value)}" checked> '
        f"{html.escape(label)}</label></li>"
        for value, label in items
    )
    return f"<ul>{rows}</ul>" if rows else "<p>(none)</p>"


@router.get("/oauth/authorize", summary="The consent page (HTML)", response_class=HTMLResponse)
async def authorize_page(request: Request, state: StateDep, session: SessionDep) -> Response:
    now = utcnow()
    query = _query(request)
    params = _params(query)
    ctx = _context(state, request, session, anonymous_context(request), now)
    oauth_request = _oauth_request(request, query, [], from_form=False)
    grant, answer = await _validate(ctx, oauth_request, None)
    if answer is not None:
        return answer
    ticket_text = dict(query).get("consent_ticket", "")
    ticket = await store.open_ticket(session, ticket_text, params, now)
    if ticket is None:
        return _error_page(
            "Open this request from your heslock app: it signs you in for this one "
            "approval with a consent ticket.",
            401,
        )
    client: oauth_server.AppClient = grant.request.client
    client_row = await session.get(OAuthClient, client.id)
    assert client_row is not None
    form_token = await store.new_form_token(session, ticket)
    locks, homes = await _choices(session, ticket.user_id, now)
    wanted = oauth_scopes.parse(grant.request.scope)
    action = "/oauth/authorize?" + urlencode([(k, v) for k, v in query if k != "consent_ticket"])
    scope_items = [(s.value, f"{oauth_scopes.DESCRIPTIONS[s]} ({s.value})") for s in sorted(wanted)]
    body = (
        f"<p><strong>{html.escape(client_row.name)}</strong> asks for access to your locks. "
        f"It will send you back to <code>{html.escape(params['redirect_uri'] or '')}</code>.</p>"
        f'<form method=post action="{html.escape(action)}">'
        f'<input type=hidden name=consent_ticket value="{html.escape(ticket_text)}">'
        f'<input type=hidden name=form_token value="{html.escape(form_token)}">'
        "<h2>It may</h2>"
        + _checkboxes("scope", scope_items)
        + "<h2>On these locks</h2>"
        + _checkboxes("lock_id", [(str(i), n) for i, n in locks])
        + "<h2>And on every lock in these homes</h2>"
        + _checkboxes("home_id", [(str(i), n) for i, n in homes])
        + "<p><button name=decision value=approve>Allow</button> "
        "<button name=decision value=deny>Deny</button></p></form>"
    )
    return _page(f"Allow {client_row.name}?", body)


@router.post("/oauth/authorize", summary="Approve or deny a consent (form post)")
async def authorize_decision(request: Request, state: StateDep, session: SessionDep) -> Response:
    now = utcnow()
    query = _query(request)
    form = await _form(request)
    fields: dict[str, list[str]] = {}
    for key, value in form:
        fields.setdefault(key, []).append(value)
    params = _params(query)

    def one(name: str) -> str:
        values = fields.get(name, [])
        return values[0] if len(values) == 1 else ""

    ticket = await store.open_ticket(session, one("consent_ticket"), params, now)
    if ticket is None or not same(digest(one("form_token")), ticket.form_hash):
        return _error_page("This consent page expired or was not ours. Start again.", 403)
    if not await store.spend_ticket(session, ticket, now):
        return _error_page("This consent was already answered.", 409)
    user_id = ticket.user_id
    actx = audit.AuditContext(f"user:{user_id}", request.client.host if request.client else None)
    ctx = _context(state, request, session, actx, now)
    oauth_request = _oauth_request(request, query, [], from_form=False)
    grant, answer = await _validate(ctx, oauth_request, user_id)
    if answer is not None:
        return answer
    client: oauth_server.AppClient = grant.request.client
    wanted = oauth_scopes.parse(grant.request.scope)
    chosen = frozenset(s for s in wanted if s.value in fields.get("scope", []))
    approve = one("decision") == "approve" and bool(chosen)
    if approve:
        locks, homes = await _choices(session, user_id, now)
        lock_ids = [i for i, _ in locks if str(i) in fields.get("lock_id", [])]
        home_ids = [i for i, _ in homes if str(i) in fields.get("home_id", [])]
        ctx.grant = await store.create_grant(
            session, user_id, client.id, chosen, lock_ids, home_ids, now
        )
        target = f"app_grant:{ctx.grant.id}"
    else:
        target = f"app:{client.id}"
    await audit.record(
        session,
        actx,
        "oauth.consent",
        audit.AuditResult.OK if approve else audit.AuditResult.DENIED,
        target,
        app=str(client.id),
        scopes=oauth_scopes.render(chosen) if approve else None,
    )
    user = oauth_server.User(user_id) if approve else None
    return await _in_thread(
        ctx,
        lambda: SERVER.create_authorization_response(oauth_request, grant_user=user, grant=grant),
    )


# --------------------------------------------------------------------------- token endpoints


async def _token_endpoint(
    request: Request, state: Any, session: Any, run: Callable[[Any], Response]
) -> Response:
    now = utcnow()
    form = await _form(request)
    ctx = _context(state, request, session, anonymous_context(request), now)
    oauth_request = _oauth_request(request, _query(request), form, from_form=True)
    answer = await _in_thread(ctx, lambda: run(oauth_request))
    answer.headers.update(NO_STORE)
    return answer


def _client_key(request: Request, form: list[tuple[str, str]]) -> str:
    """The client id a token request names (Basic auth or form), for its bucket; any
    value that is not one of our ids shares one bucket (``unknown``)."""
    claimed: str | None = None
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            claimed = unquote(decoded.partition(":")[0])
        except (binascii.Error, UnicodeDecodeError, ValueError):
            claimed = None
    if claimed is None:
        claimed = next((v for k, v in form if k == "client_id"), None)
    try:
        return str(uuid.UUID(claimed)) if claimed and len(claimed) <= 64 else "unknown"
    except ValueError:
        return "unknown"


def _token_limits(settings: Any, client: str, address: str | None) -> dict[str, throttle.Limit]:
    """Buckets of one token request: per client id and per source address."""
    window = timedelta(seconds=settings.oauth_token_window_s)
    limits = {
        f"oauth:token:client:{client}": throttle.Limit(settings.oauth_token_client_attempts, window)
    }
    if address:
        limits[f"oauth:token:ip:{address}"] = throttle.Limit(
            settings.oauth_token_address_attempts, window
        )
    return limits


@router.post(
    "/oauth/token",
    summary="Token endpoint (code + PKCE, refresh, client credentials)",
    responses={429: {"description": "Throttled (per client id and address); see Retry-After"}},
)
async def token(request: Request, state: StateDep, session: SessionDep) -> Response:
    # Throttled per client id and per source address (rate_limit_buckets, every node);
    # a failed client authentication (401 invalid_client) costs more attempts.
    now = utcnow()
    limits = _token_limits(
        state.settings, _client_key(request, await _form(request)), source_ip(request)
    )
    ctx = anonymous_context(request)
    try:
        await throttle.charge(session, ctx, limits, now)
    except TooManyRequests as exc:  # a problem document, never cached like any answer here
        retry = int(exc.extensions.get("retry_after", 1))
        return problem_response(
            exc.code,
            exc.detail,
            instance=request.url.path,
            headers={**NO_STORE, "Retry-After": str(retry)},
            retry_after=retry,
        )
    answer = await _token_endpoint(request, state, session, SERVER.create_token_response)
    if answer.status_code == status.HTTP_401_UNAUTHORIZED:
        try:
            for _ in range(state.settings.oauth_token_failure_weight - 1):
                await throttle.charge(session, ctx, limits, now)
        except TooManyRequests:
            pass  # the bucket is blocked now: the next request gets the 429
    return answer


@router.post("/oauth/revoke", summary="Token revocation (RFC 7009)")
async def revoke(request: Request, state: StateDep, session: SessionDep) -> Response:
    return await _token_endpoint(
        request, state, session, lambda r: SERVER.create_endpoint_response("revocation", r)
    )


@router.post("/oauth/introspect", summary="Token introspection (RFC 7662), confidential apps")
async def introspect(request: Request, state: StateDep, session: SessionDep) -> Response:
    return await _token_endpoint(
        request, state, session, lambda r: SERVER.create_endpoint_response("introspection", r)
    )


# --------------------------------------------------------------------------- developer side

Name = Annotated[str, Field(min_length=1, max_length=100)]


class AppCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    type: Literal["public", "confidential"]
    redirect_uris: Annotated[list[str], Field(min_length=1, max_length=store.MAX_REDIRECT_URIS)]


class AppOut(BaseModel):
    id: uuid.UUID
    client_id: str
    name: str
    type: str
    redirect_uris: list[str]
    created_at: datetime
    #: Shown once, when a confidential app is registered; never again.
    client_secret: str | None = None


class GrantOut(BaseModel):
    id: uuid.UUID
    app_id: uuid.UUID
    app_name: str
    scopes: list[str]
    lock_ids: list[uuid.UUID]
    home_ids: list[uuid.UUID]
    created_at: datetime


def _app_out(row: OAuthClient, secret: str | None = None) -> AppOut:
    return AppOut(
        id=row.id,
        client_id=str(row.id),
        name=row.name,
        type=row.client_type,
        redirect_uris=list(row.redirect_uris),
        created_at=row.created_at,
        client_secret=secret,
    )


def _own(principal: Principal, action: Action, kind: ResourceKind, id_: str | None) -> None:
    authorize(principal, action, Resource(kind, id_, principal.id))


apps = APIRouter(prefix="/v1", tags=["third-party access (OAuth 2.0)"], dependencies=BEARER)


@apps.post("/apps", status_code=201, summary="Register an app (the secret is shown once)")
async def create_app(
    body: AppCreate,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    ctx: AuditDep,
    response: Response,
) -> AppOut:
    _own(principal, Action.APP_CREATE, ResourceKind.APP, None)
    assert principal.id is not None
    row, secret = await store.create_client(
        session,
        client_secret_pepper(state.keystore),
        principal.id,
        body.name,
        ClientType(body.type),
        body.redirect_uris,
        utcnow(),
    )
    await audit.record(session, ctx, "app.create", audit.AuditResult.OK, f"app:{row.id}")
    response.headers.update(NO_STORE)
    return _app_out(row, secret)


@apps.get("/apps", summary="The apps the caller registered")
async def list_apps(principal: PrincipalDep, session: SessionDep) -> list[AppOut]:
    _own(principal, Action.APP_READ, ResourceKind.APP, None)
    assert principal.id is not None
    return [_app_out(row) for row in await store.list_clients(session, principal.id)]


@apps.delete("/apps/{app_id}", status_code=204, summary="Delete an app (revokes its grants)")
async def delete_app(
    app_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, ctx: AuditDep
) -> Response:
    row = await store.active_client(session, app_id)
    if row is None:
        raise NotFound("no such app")
    authorize(principal, Action.APP_DELETE, Resource(ResourceKind.APP, str(row.id), row.owner_id))
    await store.delete_client(session, row, utcnow())
    await audit.record(session, ctx, "app.delete", audit.AuditResult.OK, f"app:{row.id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@apps.get("/grants", summary="The grants the caller gave to apps")
async def list_grants(principal: PrincipalDep, session: SessionDep) -> list[GrantOut]:
    _own(principal, Action.APP_GRANT_READ, ResourceKind.APP_GRANT, None)
    assert principal.id is not None
    return [
        GrantOut(
            id=g.id,
            app_id=g.client_id,
            app_name=g.client_name,
            scopes=g.scopes,
            lock_ids=g.lock_ids,
            home_ids=g.home_ids,
            created_at=g.created_at,
        )
        for g in await store.list_grants(session, principal.id)
    ]


@apps.delete("/grants/{grant_id}", status_code=204, summary="Revoke a grant (its tokens die)")
async def revoke_grant(
    grant_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, ctx: AuditDep
) -> Response:
    assert principal.id is not None
    _own(principal, Action.APP_GRANT_REVOKE, ResourceKind.APP_GRANT, str(grant_id))
    grant = await store.grant_of_user(session, principal.id, grant_id)
    await store.revoke_grants(session, [grant.id], utcnow())
    await audit.record(
        session, ctx, "app_grant.revoke", audit.AuditResult.OK, f"app_grant:{grant.id}"
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


__all__ = ["SERVER", "apps", "router"]
