"""The RAS FastAPI application factory.

``create_app(settings)`` wires the foundation every RAS route stands on:

- errors as RFC 9457 problem details (``problems.py``), validation errors included;
- middleware: metrics (outermost, counts every answer), request id, body size limit;
- ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json`` and ``/docs``;
- the per-request unit of work and the authenticated principal (``deps.py``);
- the keystore (the master key is loaded here: a bad key file stops start-up).

UDMS, DDMS and SCS routers are added with ``app.include_router`` next to the ones below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from heslock.ras.api import problems
from heslock.ras.api.deps import AppState
from heslock.ras.api.metrics import RasMetrics
from heslock.ras.api.middleware import (
    BodySizeLimitMiddleware,
    MetricsMiddleware,
    RequestContextMiddleware,
)
from heslock.ras.api.routers import account as udms_account
from heslock.ras.api.routers import audit, health
from heslock.ras.api.routers import commands as remote_commands
from heslock.ras.api.routers import devices as ddms_devices
from heslock.ras.api.routers import feed as feed_routes
from heslock.ras.api.routers import gateways as ddms_gateways
from heslock.ras.api.routers import geofence as geofence_routes
from heslock.ras.api.routers import locks as ddms_locks
from heslock.ras.api.routers import oauth as oauth_routes
from heslock.ras.api.routers import registrations as ddms_registrations
from heslock.ras.api.routers import sessions as udms_sessions
from heslock.ras.api.routers import sharing as sharing_routes
from heslock.ras.api.routers import webhooks as webhook_routes
from heslock.ras.api.routers import xmpp_logins as xmpp_login_routes
from heslock.ras.keystore import Keystore
from heslock.ras.passwords import PasswordHasher
from heslock.ras.services.access import Authenticator
from heslock.ras.services.ddms import accounts as ddms_accounts
from heslock.ras.services.ddms.runtime import DdmsRuntime
from heslock.ras.services.feed import accounts as feed_accounts
from heslock.ras.services.geofence import service as geofence_service
from heslock.ras.services.oauth import store as oauth_store
from heslock.ras.services.sharing import accounts as sharing_accounts
from heslock.ras.services.udms import Udms, UdmsAuthenticator
from heslock.ras.services.xmppusers import logins as xmpp_logins
from heslock.ras.settings import Settings
from heslock.ras.store import create_engine, create_sessionmaker


def _version() -> str:
    try:
        return version("heslock")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def create_app(
    settings: Settings,
    *,
    authenticator: Authenticator | None = None,
    keystore: Keystore | None = None,
) -> FastAPI:
    """Build the app. ``authenticator`` defaults to UDMS access tokens."""
    keystore = keystore or Keystore.from_files(settings.master_key_file)
    engine = create_engine(settings.database_url)
    state = AppState(
        settings=settings,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        keystore=keystore,
        hasher=PasswordHasher.from_settings(settings),
        metrics=RasMetrics(),
        # Apps' access tokens (OAuth 2.0, issue 8) first; everything else as before.
        authenticator=oauth_store.OAuthAuthenticator(authenticator or UdmsAuthenticator()),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="heslock RAS",
        summary="Remote access server of ISO/IEC 14543-5-104 (UDMS, DDMS, SCS)",
        version=_version(),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ras = state
    app.state.udms = Udms(settings, keystore, state.hasher)  # UDMS: accounts, login, sessions
    app.state.ddms = DdmsRuntime()  # DDMS clock and gateway-session hook (tests replace them)
    # The LockBus to the gateways (heslock.ras.relay); set by RasServer(relay=True) or a
    # test. None: remote commands answer 503 (no relay runs in this process).
    app.state.bus = None
    # Closes a revoked XMPP login's live session; RasServer(relay=True) sets the relay's.
    app.state.xmpp_logins = xmpp_logins.NoLoginSessions()
    # Account deletion: first the feed forgets the person's events (before their locks go).
    app.state.udms.deletion_hooks.append(feed_accounts.release_account)
    # Account deletion revokes every grant: DDMS releases locks, gateways, registrations.
    app.state.udms.deletion_hooks.append(ddms_accounts.release_account)
    # ... and sharing revokes the shares it gave and received, and deletes its homes.
    app.state.udms.deletion_hooks.append(sharing_accounts.release_account)
    # ... and geofencing deletes their location reports, suggestions and fences.
    app.state.udms.deletion_hooks.append(geofence_service.release_account)
    # ... and third-party access ends: their grants to apps, and their own apps.
    app.state.udms.deletion_hooks.append(oauth_store.release_account)
    # ... and their XMPP logins are deleted (live sessions close at the relay's sweep).
    app.state.udms.deletion_hooks.append(xmpp_logins.release_account)
    # ... and last, the feed drops what those hooks just published about the person.
    app.state.udms.deletion_hooks.append(feed_accounts.forget_pending)
    problems.install_handlers(app)
    # add_middleware puts each new one outside the previous: innermost first.
    app.add_middleware(BodySizeLimitMiddleware, limit=settings.limits_max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.include_router(health.router)
    app.include_router(audit.router)
    app.include_router(udms_account.router)
    app.include_router(udms_sessions.router)
    for ddms_router in (ddms_devices, ddms_registrations, ddms_locks, ddms_gateways):
        app.include_router(ddms_router.router)
    app.include_router(remote_commands.router)
    app.include_router(sharing_routes.router)  # homes, members, shares, invitations (issue 7)
    app.include_router(feed_routes.router)  # the user-visible event feed, live (issue 7)
    app.include_router(geofence_routes.router)  # fences, location, arrivals (issue 7)
    app.include_router(oauth_routes.router)  # OAuth 2.0 authorisation server (issue 8)
    app.include_router(oauth_routes.apps)  # apps and the grants users gave them (issue 8)
    app.include_router(webhook_routes.router)  # apps' signed webhooks (issue 8)
    app.include_router(xmpp_login_routes.router)  # people's XMPP logins (issue 7)
    return app
