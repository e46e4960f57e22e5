"""Fixtures for the XMPP endpoint tests: test PKI, an in-memory SCS store, a live server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from xml.etree.ElementTree import Element

import pytest

from heslock.xmpp import (
    IqRegistry,
    Jid,
    ScramCredentials,
    ServerConfig,
    XmppServer,
)
from tests.integration.xmpp.pki import Pki, make_pki

DOMAIN = "localhost"
#: RFC 7677's minimum; the clients derive the salted password at login.
ITERATIONS = 4096
PASSWORDS = {"gw1": "correct horse 1", "gw2": "correct horse 2", "gw3": "correct horse 3"}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def credentials() -> dict[str, ScramCredentials]:
    return {
        name: ScramCredentials.from_password(password, ITERATIONS)
        for name, password in PASSWORDS.items()
    }


class MemoryStore:
    """A CredentialStore over a dict, counting lookups."""

    def __init__(self, credentials: dict[str, ScramCredentials]) -> None:
        self.credentials = credentials
        self.lookups: list[str] = []

    async def scram_sha256(self, username: str) -> ScramCredentials | None:
        self.lookups.append(username)
        return self.credentials.get(username)


class PresenceLog:
    """A PresenceListener that queues (full JID, available) pairs."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()

    def presence_changed(self, jid: Jid, available: bool) -> None:
        self.events.put_nowait((jid.full, available))

    async def next(self) -> tuple[str, bool]:
        return await asyncio.wait_for(self.events.get(), 10.0)


class MessageLog:
    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[str, Element]] = asyncio.Queue()

    def message_received(self, sender: Jid, message: Element) -> None:
        self.messages.put_nowait((sender.full, message))


def server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pki.cert_pem, pki.key_pem)
    return context


def client_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


class Harness:
    def __init__(
        self, server: XmppServer, store: MemoryStore, presence: PresenceLog, messages: MessageLog
    ) -> None:
        self.server = server
        self.store = store
        self.presence = presence
        self.messages = messages

    @property
    def starttls_port(self) -> int:
        return self.server.ports["starttls"]

    @property
    def direct_port(self) -> int:
        return self.server.ports["direct_tls"]


async def start_server(
    pki: Pki, credentials: dict[str, ScramCredentials], **overrides: object
) -> Harness:
    store = MemoryStore(credentials)
    presence = PresenceLog()
    messages = MessageLog()
    registry = IqRegistry()
    config = ServerConfig(
        domain=DOMAIN,
        ssl_context=server_context(pki),
        starttls_port=0,
        direct_tls_port=0,
        certificate_der=pki.cert_der,
        **overrides,  # type: ignore[arg-type]  # test knobs, checked by the dataclass
    )
    server = XmppServer(config, store, registry, presence, messages)
    await server.start()
    return Harness(server, store, presence, messages)


@pytest.fixture
async def harness(pki: Pki, credentials: dict[str, ScramCredentials]) -> AsyncIterator[Harness]:
    h = await start_server(pki, credentials)
    yield h
    await h.server.stop()
