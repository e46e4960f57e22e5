"""People's XMPP logins over the real stack: a RAS (HTTPS + its XMPP relay, what
``heslock ras serve`` runs) on loopback TLS and SQLite or PostgreSQL, and slixmpp -- a
standard XMPP client -- logging in with the JID and password ``POST
/v1/account/xmpp-logins`` returned (SCRAM-SHA-256 over STARTTLS).

Locks are rows (their keys are random bytes: nothing here opens them); feed events are
published as their sources publish them (:func:`heslock.ras.services.feed.publish.publish`
in a committed transaction), which wakes the relay's delivery exactly as a lock event or
a command outcome does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import httpx
import pytest
from slixmpp import ClientXMPP
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.ras.api import create_app
from heslock.ras.server import RasServer
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.feed.publish import publish
from heslock.ras.services.xmppusers.wire import (
    TAG_EVENT,
    TAG_EVENTS,
    EventItem,
    ResumeRequest,
    ResumeResult,
)
from heslock.ras.settings import Settings, load_settings
from heslock.ras.store.models import (
    Contact,
    ContactKind,
    Device,
    DeviceStatus,
    FeedPath,
    Lock,
    User,
)
from heslock.ras.tls import client_context
from tests.integration.ras.conftest import CHEAP_ARGON2, initialise_from_template
from tests.integration.xmpp import slix
from tests.support import TokenTable, auth

WAIT_S = 10.0
#: RFC 7677's minimum: the cheapest iteration count the settings accept.
TEST_SCRAM_ITERATIONS = 4096
PEOPLE = ("olga", "mia", "sam")


class Client:
    """One slixmpp session: the headline events it got, and how it ended."""

    def __init__(self, xmpp: Any, domain: str) -> None:
        self.xmpp = xmpp
        self.domain = domain
        self.events: asyncio.Queue[EventItem] = asyncio.Queue()
        self.messages: asyncio.Queue[Element] = asyncio.Queue()  # any other message
        self.ended = asyncio.Event()
        xmpp.add_event_handler("disconnected", lambda _event: self.ended.set())
        xmpp.register_handler(
            Callback("heslock-events", MatchXPath(f"{{jabber:client}}message/{TAG_EVENT}"),
                     self._event)
        )  # fmt: skip
        xmpp.add_event_handler("message", lambda msg: self.messages.put_nowait(msg.xml))
        xmpp.add_event_handler("message_error", lambda msg: self.messages.put_nowait(msg.xml))

    def _event(self, message: Any) -> None:
        assert message["type"] == "headline"
        item = EventItem.from_element(message.xml.find(TAG_EVENT))
        assert message["id"] == f"ev-{item.id}"
        self.events.put_nowait(item)

    async def next_event(self) -> EventItem:
        return await asyncio.wait_for(self.events.get(), WAIT_S)

    async def resume(self, after: int, limit: int = 100) -> ResumeResult:
        iq = self.xmpp.make_iq_get(ito=self.domain)
        iq.xml.append(ResumeRequest(after, limit).element())
        result = await iq.send(timeout=WAIT_S)
        return ResumeResult.from_element(result.xml.find(TAG_EVENTS))

    async def resume_all(self, after: int) -> list[EventItem]:
        """Ask until complete, as a reconnecting client does."""
        items: list[EventItem] = []
        while True:
            page = await self.resume(after)
            items.extend(page.events)
            after = page.last
            if page.complete:
                return items

    async def round_trip(self) -> None:
        """An XEP-0199 ping to the server: whatever the server sent this session before
        answering has arrived once this returns (one ordered stream)."""
        await self.xmpp.plugin["xep_0199"].send_ping(self.domain, timeout=WAIT_S)

    async def close(self) -> None:
        await slix.close(self.xmpp)


@dataclass
class Rig:
    settings: Settings
    server: RasServer
    client: httpx.AsyncClient
    tokens: TokenTable
    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    clients: list[Client] = field(default_factory=list)
    devices: int = 0

    @property
    def maker(self) -> async_sessionmaker[AsyncSession]:
        return self.server.app.state.ras.sessionmaker  # type: ignore[no-any-return]

    @property
    def xmpp_port(self) -> int:
        assert self.server.relay is not None
        return self.server.relay.port

    @property
    def domain(self) -> str:
        return self.settings.domain

    async def call(self, method: str, url: str, who: str, expect: int, **kwargs: Any) -> Any:
        response = await self.client.request(method, url, headers=auth(who), **kwargs)
        assert response.status_code == expect, (response.status_code, response.text)
        return response.json() if response.content else None

    async def new_login(self, who: str, label: str = "phone") -> dict[str, Any]:
        body: dict[str, Any] = await self.call(
            "POST", "/v1/account/xmpp-logins", who, 201, json={"label": label}
        )
        return body

    async def connect(self, login: dict[str, Any], resource: str = "phone") -> Client:
        xmpp = await slix.login(
            self.xmpp_port, f"{login['jid']}/{resource}", login["password"], self.settings.tls_ca
        )
        client = Client(xmpp, self.domain)
        self.clients.append(client)
        return client

    async def refused(self, jid: str, password: str) -> None:
        """Log in and expect SASL to fail (``failed_auth``), not a session."""
        xmpp = ClientXMPP(f"{jid}/phone", password)
        xmpp.enable_starttls, xmpp.enable_direct_tls, xmpp.enable_plaintext = True, False, False
        xmpp.ca_certs = self.settings.tls_ca
        failed = asyncio.ensure_future(xmpp.wait_until("failed_auth", WAIT_S))
        started = asyncio.ensure_future(xmpp.wait_until("session_start", WAIT_S))
        xmpp.connect("127.0.0.1", self.xmpp_port)
        try:
            done, _ = await asyncio.wait({failed, started}, return_when=asyncio.FIRST_COMPLETED)
            assert started not in done, "the login was accepted"
            assert failed in done
        finally:
            for waiter in (failed, started):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await waiter
            await slix.close(xmpp)

    async def add_person(self, name: str) -> uuid.UUID:
        async with self.maker() as session, session.begin():
            user = User(display_name=name.title())
            session.add(user)
            await session.flush()
            session.add(
                Contact(
                    user_id=user.id,
                    kind=ContactKind.EMAIL.value,
                    address=f"{name}@example.org",
                    verified_at=datetime.now(UTC),
                )
            )
        self.ids[name] = user.id
        self.tokens.tokens[name] = Principal(PrincipalKind.USER, user.id)
        return user.id

    async def add_lock(self, owner: str, name: str = "front door") -> uuid.UUID:
        self.devices += 1
        device_id = f"{self.devices:012X}"
        async with self.maker() as session, session.begin():
            session.add(
                Device(
                    device_id=device_id, maker="Lumen", model="L1", ble_version="5.0",
                    profile="secure", factory_key_enc=os.urandom(60),
                    status=DeviceStatus.BOUND.value,
                )
            )  # fmt: skip
            await session.flush()
            lock = Lock(
                device_id=device_id, owner_id=self.ids[owner], name=name, key_version=1,
                lock_key_enc=os.urandom(60),
            )  # fmt: skip
            session.add(lock)
        return lock.id

    async def lock_event(self, lock_id: uuid.UUID, detail: int) -> int:
        """A manual operation at the lock, as the event ingest publishes it; its feed id."""
        async with self.maker() as session, session.begin():
            row = await publish(
                session, "lock.manual_operation", path=FeedPath.MANUAL, lock_id=lock_id,
                credential="gateway:test", payload={"detail": detail},
            )  # fmt: skip
        return int(row.id)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        await self.client.aclose()
        await self.server.stop()


@pytest.fixture
async def rig(tmp_path: Path, database_url: str) -> AsyncIterator[Rig]:
    settings = load_settings(
        {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "https_port": 0,
            "xmpp_port": 0,
            "xmpp_direct_tls_port": 0,
            "scram_iterations": TEST_SCRAM_ITERATIONS,
            **CHEAP_ARGON2,
        },
        env={},
    )
    await initialise_from_template(settings, "admin@localhost")
    tokens = TokenTable()
    app = create_app(settings, authenticator=tokens)
    server = RasServer(settings, app, relay=True)
    await server.start()
    client = httpx.AsyncClient(
        base_url=server.url, verify=client_context(settings.tls_ca), timeout=30
    )
    rig = Rig(settings, server, client, tokens)
    try:
        for name in PEOPLE:
            await rig.add_person(name)
        yield rig
    finally:
        await rig.close()
