"""A running RAS (real HTTPS, SQLite or PostgreSQL) with three users, and a relay.

The relay is the test itself: it carries frames between the RAS API and a real
``heslock.bsld.SimulatedLock`` (tests may use any party; the RAS code never imports the
lock). One :class:`Clock` drives the RAS (``app.state.ddms.clock``) and the lock, so
expiry is tested by moving it, never by sleeping.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from heslock.bsld import LockClock, SimulatedLock
from heslock.bsld.manufacturer import FactoryRecord, dumps, generate
from heslock.protocol import Profile
from heslock.ras.api import create_app
from heslock.ras.keystore import Keystore
from heslock.ras.server import RasServer
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.settings import Settings, load_settings
from heslock.ras.store import create_engine, create_sessionmaker
from heslock.ras.store.models import AuditRecord, User
from heslock.ras.tls import client_context
from tests.integration.ras.conftest import CHEAP_ARGON2, initialise_from_template
from tests.support import TokenTable, auth

#: RFC 7677's minimum: the cheapest iteration count the settings accept.
TEST_SCRAM_ITERATIONS = 4096


class Clock:
    """Host time for the RAS and the locks alike; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Disconnects:
    """A GatewaySessionHook that records its calls."""

    calls: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)

    async def gateway_disconnect(self, gateway_id: uuid.UUID, jid: str, reason: str) -> None:
        self.calls.append((gateway_id, jid, reason))


@dataclass
class Ras:
    settings: Settings
    client: httpx.AsyncClient
    engine: AsyncEngine
    keystore: Keystore
    clock: Clock
    ids: dict[str, uuid.UUID]
    tokens: TokenTable
    hook: Disconnects
    apps: list[FastAPI]
    servers: list[RasServer] = field(default_factory=list)
    extra_clients: list[httpx.AsyncClient] = field(default_factory=list)

    def maker(self) -> Any:
        return create_sessionmaker(self.engine)

    async def audit_rows(self) -> list[AuditRecord]:
        async with AsyncSession(self.engine) as session:
            return list((await session.execute(select(AuditRecord))).scalars())

    def app(self) -> FastAPI:
        app = create_app(self.settings, authenticator=self.tokens, keystore=self.keystore)
        app.state.ddms.clock = self.clock
        app.state.ddms.gateway_sessions = self.hook
        self.apps.append(app)
        return app

    async def second_client(self) -> httpx.AsyncClient:
        """Another RAS node (its own app and server) on the same database."""
        server = RasServer(self.settings, self.app())
        await server.start()
        self.servers.append(server)
        client = httpx.AsyncClient(
            base_url=server.url, verify=client_context(self.settings.tls_ca), timeout=10
        )
        self.extra_clients.append(client)
        return client

    # ------------------------------------------------------------- devices

    async def import_records(self, records: list[FactoryRecord]) -> None:
        response = await self.client.post(
            "/v1/admin/devices/import",
            content=dumps(records, "json"),
            headers={**auth("admin"), "content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["imported"] == len(records)

    async def new_lock(self, profile: Profile = Profile.SECURE, **clock: float) -> SimulatedLock:
        record = generate(1, "Lumen", "L1", profile=profile)[0]
        await self.import_records([record])
        lock = SimulatedLock(record.identity(), clock=LockClock(**clock))
        lock.press_registration_button(self.clock())
        return lock

    # ------------------------------------------------------------- the relay

    async def relay(
        self,
        lock: SimulatedLock,
        view: dict[str, Any],
        token: str = "a",
        client: httpx.AsyncClient | None = None,
    ) -> dict[str, Any]:
        """Carry frames until the registration is done (or nothing is left to send)."""
        client = client or self.client
        queue = list(view["frames"])
        while queue:
            wire = base64.b64decode(queue.pop(0))
            answer = lock.handle_frame(wire, self.clock())
            view = await self.answer(view["registration_id"], answer, token, client)
            queue.extend(view["frames"])
        return view

    async def answer(
        self,
        registration_id: str,
        wire: bytes,
        token: str = "a",
        client: httpx.AsyncClient | None = None,
    ) -> dict[str, Any]:
        response = await (client or self.client).post(
            f"/v1/registrations/{registration_id}/answers",
            json={"frame": base64.b64encode(wire).decode()},
            headers=auth(token),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def start(
        self, lock: SimulatedLock, token: str = "a", name: str = "front door", **extra: Any
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/registrations",
            json={"device_id": lock.identity.device_id.colon, "name": name, **extra},
            headers=auth(token),
        )
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        return body

    async def bind(self, lock: SimulatedLock, token: str = "a") -> str:
        done = await self.relay(lock, await self.start(lock, token), token)
        assert done["phase"] == "committed", done
        assert lock.bound
        return str(done["lock_id"])


@pytest.fixture
async def ras(tmp_path: Path, database_url: str) -> AsyncIterator[Ras]:
    settings = load_settings(
        {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "https_port": 0,
            "scram_iterations": TEST_SCRAM_ITERATIONS,
            **CHEAP_ARGON2,
        },
        env={},
    )
    init = await initialise_from_template(settings, "admin@localhost")
    engine = create_engine(settings.database_url)
    ids = {"admin": uuid.UUID(init.admin_id)}
    async with create_sessionmaker(engine)() as session, session.begin():
        for name in ("a", "b"):
            user = User(display_name=f"user {name}")
            session.add(user)
            await session.flush()
            ids[name] = user.id
    tokens = TokenTable()
    tokens.tokens = {
        "admin": Principal(PrincipalKind.USER, ids["admin"], is_admin=True),
        "a": Principal(PrincipalKind.USER, ids["a"]),
        "b": Principal(PrincipalKind.USER, ids["b"]),
    }
    keystore = Keystore.from_files(settings.master_key_file)
    placeholder = httpx.AsyncClient()  # replaced once the first server listens
    rig = Ras(settings, placeholder, engine, keystore, Clock(), ids, tokens, Disconnects(), [])
    server = RasServer(settings, rig.app())
    await server.start()
    rig.servers.append(server)
    try:
        async with httpx.AsyncClient(
            base_url=server.url, verify=client_context(settings.tls_ca), timeout=10
        ) as client:
            rig.client = client
            yield rig
    finally:
        await placeholder.aclose()
        for extra in rig.extra_clients:
            await extra.aclose()
        for srv in rig.servers:
            await srv.stop()
        await engine.dispose()
