"""authlib's ``AuthorizationServer`` with our storage, and the Starlette adapter it needs.

authlib keeps the protocol logic (grant dispatch, client authentication, redirect-URI
and scope validation, PKCE, RFC 6749/7009/7662 error bodies); this module supplies what
it leaves to a framework integration (FIELD-NOTES, "authlib"):

- :class:`StarletteRequest`: an ``OAuth2Request`` over an already-read Starlette request
  (query, form, case-insensitive headers) -- authlib reads ``.form`` for PKCE;
- :meth:`RasAuthorizationServer.handle_response`: authlib's ``(status, body, headers)``
  as a Starlette response, with RFC 9207 ``iss`` added to every authorisation redirect;
- storage hooks that reach the async database from authlib's synchronous code. authlib
  runs in a worker thread (:func:`anyio.to_thread.run_sync`); each hook hops back to the
  event loop with :func:`anyio.from_thread.run` and uses the request's own database
  session (one unit of work per request, as everywhere in the RAS). The request's
  :class:`Context` travels in a context variable, which anyio copies into the worker.

Refused by construction: the implicit and password grants are not registered (an
``unsupported_response_type`` / ``unsupported_grant_type`` error), PKCE ``plain`` and
requests without an S256 challenge are refused at the authorisation endpoint.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Final, TypeVar

import anyio.from_thread
from authlib.common.urls import add_params_to_uri  # type: ignore[import-untyped]
from authlib.oauth2 import AuthorizationServer  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Payload,
    OAuth2Request,
    UnauthorizedClientError,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from heslock.ras.services import audit
from heslock.ras.services.oauth import scopes as oauth_scopes
from heslock.ras.services.oauth import store
from heslock.ras.services.oauth.secrets import SecretKind, new_secret, same
from heslock.ras.services.udms.keys import Pepper
from heslock.ras.store.models import ClientType, OAuthClient, OAuthGrant, OAuthToken
from heslock.ras.store.models.oauth import TokenKind

# authlib logs issued tokens at DEBUG ("Issue token %r to %r"): never let that through.
logging.getLogger("authlib").setLevel(logging.INFO)

T = TypeVar("T")

AUTH_METHODS_CONFIDENTIAL: Final = ("client_secret_basic", "client_secret_post")
GRANT_TYPES: Final = ("authorization_code", "refresh_token", "client_credentials")


@dataclass
class Context:
    """What the storage hooks of one request need (module docstring)."""

    session: AsyncSession
    pepper: Pepper
    lifetimes: store.Lifetimes
    issuer: str
    now: datetime
    audit: audit.AuditContext
    #: Set by the consent handler: the grant the code about to be issued belongs to.
    grant: OAuthGrant | None = None
    #: Set by the grant being processed, read by the token generator.
    pending: dict[str, Any] = field(default_factory=dict)

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run an async storage call on the event loop from authlib's worker thread."""
        return anyio.from_thread.run(fn, *args)


_CONTEXT: ContextVar[Context] = ContextVar("oauth_context")


def context() -> Context:
    return _CONTEXT.get()


@dataclass(frozen=True)
class User:
    """The resource owner as authlib sees it."""

    id: uuid.UUID

    def get_user_id(self) -> str:
        return str(self.id)


class AppClient(ClientMixin):  # type: ignore[misc]
    """An app as authlib sees it: a snapshot of its row."""

    def __init__(self, row: OAuthClient, pepper: Pepper) -> None:
        self.id = row.id
        self.owner_id = row.owner_id
        self.client_type = ClientType(row.client_type)
        self.redirect_uris = tuple(row.redirect_uris)
        self._secret_hash = row.secret_hash
        self._pepper = pepper

    @property
    def confidential(self) -> bool:
        return self.client_type is ClientType.CONFIDENTIAL

    def get_client_id(self) -> str:
        return str(self.id)

    def get_default_redirect_uri(self) -> str | None:
        return None  # redirect_uri is always required and compared exactly

    def get_allowed_scope(self, scope: str | None) -> str | None:
        try:
            wanted = oauth_scopes.parse(scope)
        except oauth_scopes.ScopeError:
            return None
        return oauth_scopes.render(wanted) if wanted else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison (RFC 9700 4.1.3): no prefix, case or port leniency.
        return any(redirect_uri == registered for registered in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.confidential or not isinstance(client_secret, str):
            return False
        return same(
            store.client_secret_digest(self._pepper, self.id, client_secret), self._secret_hash
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.confidential:
            return method in AUTH_METHODS_CONFIDENTIAL
        return method == "none" and endpoint in ("token", "revocation")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials":
            return self.confidential
        return grant_type in ("authorization_code", "refresh_token")


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._data: dict[str, str] = {}
        for key, value in items:
            self._data.setdefault(key, value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        values: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in self._items:
            values[key].append(value)
        return values


class StarletteRequest(OAuth2Request):  # type: ignore[misc]
    """An already-read Starlette request for authlib (module docstring).

    ``payload`` is the query (authorisation endpoint) or the form (token endpoints);
    ``headers`` stay Starlette's case-insensitive ones, or HTTP Basic client
    authentication would never find ``Authorization`` (FIELD-NOTES).
    """

    def __init__(
        self,
        method: str,
        url: str,
        headers: Headers,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
        *,
        payload_from_form: bool,
    ) -> None:
        super().__init__(method, url, headers=headers)
        self._query = dict(reversed(query))
        self._form = dict(reversed(form))
        self.payload = _Payload(form if payload_from_form else query)

    @property
    def args(self) -> dict[str, str]:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        return self._form


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only, and required of every client (RFC 9700 2.1.1)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send a code_challenge (S256)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class _Code:
    """An authorisation code row as authlib sees it."""

    def __init__(self, row: Any) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return str(self.row.redirect_uri)

    def get_scope(self) -> str:
        return str(self.row.scope)


class _Token:
    """A token row as authlib's refresh, revocation and introspection see it."""

    def __init__(self, row: OAuthToken, in_force: bool) -> None:
        self.row = row
        self.in_force = in_force

    def check_client(self, client: AppClient) -> bool:
        return bool(self.row.client_id == client.id)

    def get_scope(self) -> str:
        return str(self.row.scope)

    def is_expired(self) -> bool:
        return not self.in_force

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None


def _record(
    ctx: Context, action: str, result: audit.AuditResult, target: str, **details: Any
) -> None:
    ctx.run(_audit, ctx, action, result, target, details)


async def _audit(
    ctx: Context, action: str, result: audit.AuditResult, target: str, details: dict[str, Any]
) -> None:
    await audit.record(ctx.session, ctx.audit, action, result, target, **details)


class AuthorizationCode(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [*AUTH_METHODS_CONFIDENTIAL, "none"]

    def generate_authorization_code(self) -> str:
        return new_secret(SecretKind.CODE)

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        ctx = context()
        assert ctx.grant is not None, "the consent handler records the grant first"
        data = request.payload.data
        ctx.run(
            store.save_code,
            ctx.session,
            code,
            ctx.grant,
            data["redirect_uri"],
            oauth_scopes.render(ctx.grant.scopes),
            data["code_challenge"],
            ctx.now,
            ctx.lifetimes.code,
        )

    def query_authorization_code(self, code: str, client: AppClient) -> _Code | None:
        ctx = context()
        row = ctx.run(store.find_code, ctx.session, code)
        if row is None or row.client_id != client.id:
            return None
        if row.used_at is not None or not ctx.run(store.spend_code, ctx.session, row, ctx.now):
            revoked = ctx.run(store.revoke_code_family, ctx.session, row.id, ctx.now)
            _record(
                ctx,
                "oauth.code_reuse",
                audit.AuditResult.DENIED,
                f"app_grant:{row.grant_id}",
                tokens_revoked=revoked,
            )
            return None
        if row.expires_at <= ctx.now:
            return None
        return _Code(row)

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        """Nothing: the code was spent atomically when it was looked up."""

    def authenticate_user(self, authorization_code: _Code) -> User | None:
        ctx = context()
        grant = ctx.run(store.active_grant, ctx.session, authorization_code.row.grant_id)
        if grant is None:
            return None
        ctx.pending.update(grant=grant, code_id=authorization_code.row.id)
        return User(grant.user_id)


class RefreshToken(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [*AUTH_METHODS_CONFIDENTIAL, "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
        ctx = context()
        row = ctx.run(store.find_token, ctx.session, refresh_token)
        if row is None or row.kind != TokenKind.REFRESH.value:
            return None
        client: AppClient = self.request.client
        if row.client_id != client.id:
            return None
        if row.rotated_at is not None:
            # A rotated refresh token again: two parties hold the family (RFC 9700 4.14.2).
            ctx.run(store.revoke_family, ctx.session, row.family_id, ctx.now)
            _record(
                ctx,
                "oauth.refresh_reuse",
                audit.AuditResult.DENIED,
                f"app_grant:{row.grant_id}",
                family_revoked=True,
            )
            return None
        found = ctx.run(store.token_in_force, ctx.session, row, ctx.now)
        if found is None:
            return None
        ctx.pending.update(grant=found[0], parent=row)
        return _Token(row, True)

    def authenticate_user(self, refresh_token: _Token) -> User:
        return User(refresh_token.row.user_id)

    def issue_token(self, user: User, refresh_token: _Token) -> dict[str, Any]:
        ctx = context()
        row = refresh_token.row
        if not ctx.run(store.rotate, ctx.session, row, ctx.now):
            ctx.run(store.revoke_family, ctx.session, row.family_id, ctx.now)
            raise InvalidGrantError("the refresh token was used already")
        result: dict[str, Any] = super().issue_token(user, refresh_token)
        return result

    def revoke_old_credential(self, refresh_token: _Token) -> None:
        """Nothing more: rotation marked it in :meth:`issue_token`."""


class ClientCredentials(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """An app acting as its owning account, within what that account granted it."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS_CONFIDENTIAL)

    def validate_token_request(self) -> None:
        super().validate_token_request()
        ctx = context()
        client: AppClient = self.request.client
        row = ctx.run(store.active_client, ctx.session, client.id)
        grant = None if row is None else ctx.run(store.owner_grant, ctx.session, row)
        if grant is None:
            raise UnauthorizedClientError("the owning account has not granted this app access")
        try:
            wanted = oauth_scopes.parse(self.request.payload.scope)
        except oauth_scopes.ScopeError:
            raise InvalidScopeError() from None
        granted = frozenset(oauth_scopes.Scope(s) for s in grant.scopes)
        if not wanted <= granted:
            raise InvalidScopeError("the scope exceeds what the owning account granted")
        ctx.pending.update(grant=grant, scope=oauth_scopes.render(wanted or granted))

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(scope=context().pending["scope"], include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


def _query_token(token_string: str) -> _Token | None:
    ctx = context()
    row = ctx.run(store.find_token, ctx.session, token_string)
    if row is None:
        return None
    return _Token(row, ctx.run(store.token_in_force, ctx.session, row, ctx.now) is not None)


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009. Revoking either token of a family revokes the whole family."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [*AUTH_METHODS_CONFIDENTIAL, "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        return _query_token(token_string)

    def revoke_token(self, token: _Token, request: OAuth2Request) -> None:
        ctx = context()
        ctx.run(store.revoke_family, ctx.session, token.row.family_id, ctx.now)


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662, for confidential apps and their own tokens only."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS_CONFIDENTIAL)

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        return _query_token(token_string)

    def check_permission(self, token: _Token, client: AppClient, request: OAuth2Request) -> bool:
        return client.confidential and token.check_client(client)

    def introspect_token(self, token: _Token) -> dict[str, Any]:
        row = token.row
        ctx = context()
        return {
            "active": True,
            "scope": row.scope,
            "client_id": str(row.client_id),
            "sub": str(row.user_id),
            "token_type": "Bearer" if row.kind == TokenKind.ACCESS.value else "refresh_token",
            "exp": int(row.expires_at.timestamp()),
            "iat": int(row.created_at.timestamp()),
            "iss": ctx.issuer,
        }


class RasAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(scopes_supported=sorted(s.value for s in oauth_scopes.ALL_SCOPES))
        self.register_grant(AuthorizationCode, [S256Only(required=True)])
        self.register_grant(RefreshToken)
        self.register_grant(ClientCredentials)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)
        self.register_token_generator("default", self._generate)

    def query_client(self, client_id: str) -> AppClient | None:
        try:
            key = uuid.UUID(client_id)
        except (TypeError, ValueError, AttributeError):
            return None
        ctx = context()
        row = ctx.run(store.active_client, ctx.session, key)
        return None if row is None else AppClient(row, ctx.pepper)

    def _generate(
        self,
        grant_type: str,
        client: AppClient,
        user: User | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        ctx = context()
        pending = ctx.pending
        grant: OAuthGrant = pending["grant"]
        parent: OAuthToken | None = pending.get("parent")
        issued = ctx.run(
            _issue,
            ctx,
            grant,
            scope or "",
            include_refresh_token,
            parent,
            pending.get("code_id"),
        )
        # Who got a token for whom, when (never the token): actor is the app.
        app_ctx = audit.AuditContext(f"app:{client.id}", ctx.audit.source_ip, ctx.audit.request_id)
        ctx.run(
            audit.record,
            ctx.session,
            app_ctx,
            "oauth.token",
            audit.AuditResult.OK,
            f"app_grant:{grant.id}",
        )
        return issued.response()

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing: the generator stored the token's digest when it made it."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal system here; audit records are written by the hooks."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        assert isinstance(request, OAuth2Request)
        return request

    def create_json_request(self, request: Any) -> Any:  # pragma: no cover - unused
        raise NotImplementedError

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        headers = dict(headers or [])
        location = headers.get("Location")
        if location is not None:
            # RFC 9207: every authorisation response names its issuer (mix-up defence).
            headers["Location"] = add_params_to_uri(location, {"iss": context().issuer})
            return Response(status_code=status, headers=headers)
        if isinstance(body, Mapping):
            headers.pop("Content-Type", None)
            return JSONResponse(dict(body), status_code=status, headers=headers)
        return Response(body or b"", status_code=status, headers=headers)


async def _issue(
    ctx: Context,
    grant: OAuthGrant,
    scope: str,
    refresh: bool,
    parent: OAuthToken | None,
    code_id: uuid.UUID | None,
) -> store.Issued:
    return await store.issue(
        ctx.session,
        grant,
        scope,
        ctx.now,
        ctx.lifetimes,
        refresh=refresh,
        family_id=parent.family_id if parent is not None else None,
        family_expires_at=parent.expires_at if parent is not None else None,
        parent_id=parent.id if parent is not None else None,
        code_id=parent.code_id if parent is not None else code_id,
    )


async def run(ctx: Context, fn: Callable[[], T]) -> T:
    """Run ``fn`` (authlib's synchronous work) in a worker thread with ``ctx`` set."""
    token = _CONTEXT.set(ctx)
    try:
        return await anyio.to_thread.run_sync(fn)
    finally:
        _CONTEXT.reset(token)
