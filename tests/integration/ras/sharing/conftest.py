"""A real RAS app (ASGI, no sockets) on SQLite or PostgreSQL, with people and locks.

The app is the production one (``create_app``) with the stand-in bearer table of
``tests.support`` in place of UDMS logins, and one :class:`Clock` for ``now``: schedules
and validity are tested by setting the clock, never by sleeping. Locks and gateways are
inserted as rows (their keys are random bytes: sharing never opens them); people get
*verified* e-mail contacts so that they can accept invitations.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from heslock.ras.api import create_app
from heslock.ras.keystore import Keystore
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.settings import load_settings
from heslock.ras.store import create_engine, create_sessionmaker
from heslock.ras.store.models import (
    AuditRecord,
    Contact,
    ContactKind,
    Device,
    DeviceStatus,
    Gateway,
    Lock,
    User,
)
from tests.integration.ras.conftest import CHEAP_ARGON2, initialise_from_template
from tests.support import TokenTable, auth

#: The people of these tests: owner, home admin, member, guest, stranger, RAS admin.
PEOPLE = ("olga", "ada", "mia", "gus", "sam", "root")


class Clock:
    """The RAS's clock (``app.state.ddms.clock``), set by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


@dataclass
class Rig:
    app: FastAPI
    client: httpx.AsyncClient
    engine: AsyncEngine
    clock: Clock
    tokens: TokenTable
    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    devices: int = 0

    @property
    def maker(self) -> async_sessionmaker[AsyncSession]:
        return create_sessionmaker(self.engine)

    def principal(self, name: str) -> Principal:
        return self.tokens.tokens[name]

    @staticmethod
    def email(name: str) -> str:
        return f"{name}@example.org"

    async def add_person(
        self, name: str, *, admin: bool = False, verified: bool = True
    ) -> uuid.UUID:
        async with self.maker() as session, session.begin():
            user = User(display_name=name.title(), is_admin=admin)
            session.add(user)
            await session.flush()
            session.add(
                Contact(
                    user_id=user.id,
                    kind=ContactKind.EMAIL.value,
                    address=self.email(name),
                    verified_at=datetime.now(UTC) if verified else None,
                )
            )
        self.ids[name] = user.id
        self.tokens.tokens[name] = Principal(PrincipalKind.USER, user.id, is_admin=admin)
        return user.id

    async def add_lock(self, owner: str, name: str = "front door") -> uuid.UUID:
        self.devices += 1
        device_id = f"{self.devices:012X}"
        async with self.maker() as session, session.begin():
            session.add(
                Device(
                    device_id=device_id,
                    maker="Lumen",
                    model="L1",
                    ble_version="5.0",
                    profile="secure",
                    factory_key_enc=os.urandom(60),
                    status=DeviceStatus.BOUND.value,
                )
            )
            await session.flush()
            lock = Lock(
                device_id=device_id,
                owner_id=self.ids[owner],
                name=name,
                key_version=1,
                lock_key_enc=os.urandom(60),
            )
            session.add(lock)
        return lock.id

    async def add_gateway(self, owner: str) -> uuid.UUID:
        gateway_id = uuid.uuid4()
        async with self.maker() as session, session.begin():
            session.add(
                Gateway(
                    id=gateway_id,
                    owner_id=self.ids[owner],
                    name="hall",
                    jid=f"{gateway_id}@ras.test",
                    scram_salt=os.urandom(16),
                    scram_stored_key=os.urandom(32),
                    scram_server_key=os.urandom(32),
                    scram_iterations=4096,
                )
            )
        return gateway_id

    # ------------------------------------------------------------------ API helpers

    async def call(self, method: str, url: str, who: str, expect: int, **kwargs: Any) -> Any:
        response = await self.client.request(method, url, headers=auth(who), **kwargs)
        assert response.status_code == expect, (response.status_code, response.text)
        return response.json() if response.content else None

    async def home(self, owner: str = "olga", zone: str = "Europe/Berlin") -> str:
        body = await self.call(
            "POST", "/v1/homes", owner, 201, json={"name": "home", "time_zone": zone}
        )
        return str(body["id"])

    async def share(
        self,
        who: str,
        to: str,
        expect: int = 201,
        *,
        contact: dict[str, str] | None = None,
        **body: Any,
    ) -> Any:
        """POST /v1/shares from ``who`` to person ``to`` (or to ``contact``)."""
        body["invitee"] = contact or {"email": self.email(to)}
        return await self.call("POST", "/v1/shares", who, expect, json=body)

    async def member(
        self, home: str, to: str, expect: int = 201, *, who: str = "olga", **body: Any
    ) -> Any:
        """POST /v1/homes/{home}/members from ``who`` inviting person ``to``."""
        body["invitee"] = {"email": self.email(to)}
        return await self.call("POST", f"/v1/homes/{home}/members", who, expect, json=body)

    async def accept(self, who: str, share_id: str, expect: int = 200) -> Any:
        return await self.call("POST", f"/v1/invitations/{share_id}/accept", who, expect)

    async def granted(self, who: str, invitee: str, **body: Any) -> str:
        """Share and accept at once; the share id."""
        share_id = str((await self.share(who, invitee, **body))["id"])
        await self.accept(invitee, share_id)
        return share_id

    async def audit(self, action: str) -> list[AuditRecord]:
        async with AsyncSession(self.engine) as session:
            query = select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
            return list((await session.execute(query)).scalars())


@pytest.fixture
async def rig(tmp_path: Path, database_url: str) -> AsyncIterator[Rig]:
    settings = load_settings(
        {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "https_port": 0,
            **CHEAP_ARGON2,
        },
        env={},
    )
    await initialise_from_template(settings, "root@localhost")
    tokens = TokenTable()
    app = create_app(
        settings, authenticator=tokens, keystore=Keystore.from_files(settings.master_key_file)
    )
    clock = Clock(datetime(2026, 6, 3, 10, 0, tzinfo=UTC))  # a Wednesday, noon in Berlin
    app.state.ddms.clock = clock
    engine = create_engine(settings.database_url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://ras.test") as client:
        rig = Rig(app, client, engine, clock, tokens)
        try:
            for name in PEOPLE:
                await rig.add_person(name, admin=name == "root")
            yield rig
        finally:
            await engine.dispose()
            await app.state.ras.engine.dispose()
