"""A real RAS over TLS with a lock that really unlocks, and the rental host example app.

The RAS is the remote-control rig of tests/integration/ras/commands (RasServer with its
XMPP relay on loopback TLS, SQLite, a real BGW in a task, a SimulatedLock on a bumble
virtual link, registered through the API), with the stand-in bearer table for the
people's own sessions (host, guest, admin) and the real OAuth 2.0 server for the app. The
guest has a verified e-mail address, so they can accept an invitation.

The app (examples/rental_host) runs in-process under uvicorn on a loopback port, plain
http: the RAS sends the browser back to it and delivers webhooks to it
(``webhooks_allow_insecure_loopback``).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from examples.rental_host.app import Config, RentalHost, create_app

from heslock.protocol.makers import KEYSTONE
from heslock.rac.models import Tokens
from heslock.rac.profile import Profile, ProfileFile, ProfileSet
from heslock.ras.api import create_app as create_ras_app
from heslock.ras.bootstrap import initialise
from heslock.ras.server import RasServer
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.settings import Settings, load_settings
from heslock.ras.store import create_engine, create_sessionmaker
from heslock.ras.store.models import Contact, ContactKind, User
from heslock.ras.tls import client_context
from heslock.xmpp import Jid
from tests.integration.ras.commands.conftest import TEST_SCRAM_ITERATIONS, Rig
from tests.integration.ras.conftest import CHEAP_ARGON2
from tests.support import WAIT_S, TokenTable, auth

GUEST_EMAIL = "guest@example.org"


@dataclass
class World:
    rig: Rig
    lock_id: str
    app_url: str
    app: httpx.AsyncClient  # the host's browser, on the rental app
    host: RentalHost  # the app's own state (to read what it stored)


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll a condition until a deadline (no sleep stands in for synchronisation)."""
    deadline = time.monotonic() + WAIT_S
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _people(settings: Settings) -> dict[str, uuid.UUID]:
    init = await initialise(settings, "admin@localhost")
    ids = {"admin": uuid.UUID(init.admin_id)}
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for name, email in (("host", "host@example.org"), ("guest", GUEST_EMAIL)):
                user = User(display_name=name.title())
                session.add(user)
                await session.flush()
                session.add(
                    Contact(
                        user_id=user.id,
                        kind=ContactKind.EMAIL.value,
                        address=email,
                        verified_at=datetime.now(UTC),
                    )
                )
                ids[name] = user.id
    finally:
        await engine.dispose()
    return ids


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'ras.db'}",
        "https_port": 0,
        "xmpp_port": 0,
        "xmpp_direct_tls_port": 0,
        "scram_iterations": TEST_SCRAM_ITERATIONS,
        **CHEAP_ARGON2,
        # webhooks to the app's plain-http loopback URL (a real RAS wants https)
        "webhooks_allow_insecure_loopback": True,
        "webhooks_retry_base_s": 0.2,
    }
    settings = load_settings(values, env={})
    ids = await _people(settings)
    tokens = TokenTable()
    tokens.tokens = {
        name: Principal(PrincipalKind.USER, ids[name], is_admin=name == "admin") for name in ids
    }
    server = RasServer(settings, create_ras_app(settings, authenticator=tokens), relay=True)
    assert server.relay is not None
    await server.start()
    client = httpx.AsyncClient(
        base_url=server.url, verify=client_context(settings.tls_ca), timeout=30
    )
    rig = Rig(settings, server, server.relay, client, ids)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    app_task: asyncio.Task[None] | None = None
    try:
        # the lock: on the air, seen by the host's gateway, registered through it
        peripheral = await rig.add_lock(KEYSTONE)
        account = await rig.create_gateway("host")
        await rig.start_gateway(account)
        await rig.seen_by(account, peripheral.lock.identity.device_id)
        lock_id = await rig.register(peripheral, Jid.parse(account.jid).bare, token="host")

        # the app's port first: its redirect URI is registered with the RAS
        listener.bind(("127.0.0.1", 0))
        app_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        registered = await client.post(
            "/v1/apps",
            json={
                "name": "Rental host",
                "type": "confidential",
                "redirect_uris": [f"{app_url}/callback"],
            },
            headers=auth("host"),
        )
        assert registered.status_code == 201, registered.text
        config = Config(
            ras_url=server.url,
            client_id=registered.json()["client_id"],
            client_secret=registered.json()["client_secret"],
            public_url=app_url,
            db_path=str(tmp_path / "rental_host.db"),
            ca_file=settings.tls_ca,
        )
        app = create_app(config)
        web = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        app_task = asyncio.create_task(web.serve(sockets=[listener]))

        async def started() -> bool:
            assert app_task is not None
            if app_task.done():
                app_task.result()  # raises what stopped it
            return web.started

        await until(started, "the rental app to listen")
        async with httpx.AsyncClient(base_url=app_url, timeout=30) as browser:
            yield World(rig, lock_id, app_url, browser, app.state.host)
        web.should_exit = True
        await app_task
    finally:
        if app_task is not None and not app_task.done():
            app_task.cancel()
        listener.close()
        await client.aclose()
        # The webhook dispatcher before the RAS: RasServer.stop() stops the relay host (and
        # with it the dispatcher) only after the app's lifespan disposed the engine, and a
        # delivery settled in between opens a connection nobody closes (told to the lead).
        await rig.relay.webhooks.stop()
        await rig.close()


@pytest.fixture
def profiles(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """heslock profiles "host" and "guest" (their sessions: the stand-in bearer tokens),
    for examples/rental_host/user_app.py, the people's own heslock app."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    far = datetime.now(UTC) + timedelta(days=1)
    server = world.rig.server.url

    def add(found: ProfileSet) -> ProfileSet:
        for name in ("host", "guest"):
            tokens = Tokens(name, "unused", uuid.uuid4(), far, far)
            found = found.put(Profile(name, server, world.rig.settings.tls_ca, tokens=tokens))
        return found

    ProfileFile().update(add)
