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
from heslock.ras.api.routers import gateways as ddms_gateways
from heslock.ras.api.routers import locks as ddms_locks
from heslock.ras.api.routers import registrations as ddms_registrations
from heslock.ras.api.routers import sessions as udms_sessions
from heslock.ras.keystore import Keystore
from heslock.ras.passwords import PasswordHasher
from heslock.ras.services.access import Authenticator
from heslock.ras.services.ddms import accounts as ddms_accounts
from heslock.ras.services.ddms.runtime import DdmsRuntime
from heslock.ras.services.udms import Udms, UdmsAuthenticator
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
        authenticator=authenticator or UdmsAuthenticator(),
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
    # Account deletion revokes every grant: DDMS releases locks, gateways, registrations.
    app.state.udms.deletion_hooks.append(ddms_accounts.release_account)
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
    return app
