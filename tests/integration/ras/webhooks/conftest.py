"""Webhooks over the real stack: a RAS over HTTPS with its relay's background tasks (the
dispatcher among them), real OAuth apps (code + PKCE through the consent page, from the
OAuth rig), and a receiver: a real HTTP server on a loopback socket that records what it
gets and answers what the test scripts.

Short retry delays come from the RAS settings (``webhooks_retry_*``);
``webhooks_allow_insecure_loopback`` lets the RAS post to ``http://127.0.0.1``.

The receiver's verifier is written here from docs/api.md, "Webhooks", on purpose: it
does not import the RAS's signing code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from heslock.ras.api import create_app
from heslock.ras.server import RasServer
from heslock.ras.services.feed.publish import publish
from heslock.ras.store import create_engine, create_sessionmaker
from heslock.ras.store.models import FeedPath
from heslock.ras.tls import client_context
from tests.integration.ras.conftest import initialise_from_template
from tests.integration.ras.oauth.conftest import App, OAuthRig, Person
from tests.integration.ras.udms.conftest import ADMIN_EMAIL, Ras, make_settings

WAIT_S = 15.0
#: Fast retries: 3 attempts per event, two events given up in a row disable.
FAST = {
    "xmpp_port": 0,
    "xmpp_direct_tls_port": 0,
    "webhooks_allow_insecure_loopback": True,
    "webhooks_retry_base_s": 0.05,
    "webhooks_retry_max_s": 0.2,
    "webhooks_max_attempts": 3,
    "webhooks_disable_after_events": 2,
    "webhooks_poll_s": 0.2,
    "webhooks_timeout_s": 5.0,
}


# ----------------------------------------------------------------- the documented verifier


def verify(secret: str, headers: httpx.Headers | dict[str, str], body: bytes) -> int:
    """How many ``v1`` signatures of the delivery verify under ``secret`` (docs/api.md)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    good = 0
    for part in headers["webhook-signature"].split(" "):
        version, _, value = part.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            good += 1
    return good


# ----------------------------------------------------------------- the receiver


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


@dataclass
class Receiver:
    """An HTTP/1.1 server on 127.0.0.1 (asyncio streams): records every POST and answers
    the next scripted status (then ``default``)."""

    port: int = 0
    default: int = 200
    script: list[int] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = self.script.pop(0) if self.script else self.default
            async with self._changed:  # recorded before the sender can know the answer
                self.got.append(Received(headers, body, status))
                self._changed.notify_all()
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def wait_for(self, predicate: Callable[[list[Received]], bool]) -> list[Received]:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self.got)), WAIT_S)
        return list(self.got)


async def free_port() -> int:
    """A loopback port nothing listens on (connection refused) until a test binds it."""
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


# ----------------------------------------------------------------- the rig


@dataclass
class HookRig(OAuthRig):
    receivers: list[Receiver] = field(default_factory=list)

    @property
    def server(self) -> RasServer:
        return self.ras.server

    async def receiver(self, **kwargs: Any) -> Receiver:
        found = Receiver(**kwargs)
        await found.start()
        self.receivers.append(found)
        return found

    async def app_token(
        self, user: Person, lock_ids: list[uuid.UUID], scope: str = "events:read locks:read"
    ) -> tuple[App, str]:
        app = await self.register_app(user)
        tokens = await self.tokens(user, app, scope=scope, lock_ids=lock_ids)
        return app, str(tokens["access_token"])

    async def subscribe(
        self, token: str, url: str, events: list[str] | None = None
    ) -> dict[str, Any]:
        answer = await self.api(
            "POST", "/v1/webhooks", token, json={"url": url, "events": events or ["*"]}
        )
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def lock_event(self, lock_id: uuid.UUID, kind: str = "lock.manual_operation") -> int:
        """A lock's event as the event ingest publishes it (the feed row's id)."""
        async with create_sessionmaker(self.ras.engine)() as session:
            async with session.begin():
                row = await publish(
                    session,
                    kind,
                    path=FeedPath.MANUAL,
                    lock_id=lock_id,
                    credential="gateway:gw@test",
                    payload={"seq": 1},
                )
            return int(row.id)

    async def deliveries(self, token: str, webhook_id: str) -> list[dict[str, Any]]:
        answer = await self.api("GET", f"/v1/webhooks/{webhook_id}/deliveries", token)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found


@pytest.fixture
async def hooks(tmp_path: Path, database_url: str) -> AsyncIterator[HookRig]:
    settings = make_settings(tmp_path, database_url, **FAST)
    admin = await initialise_from_template(settings, ADMIN_EMAIL)
    server = RasServer(settings, create_app(settings), relay=True)
    await server.start()
    engine = create_engine(settings.database_url)
    rig: HookRig | None = None
    try:
        async with httpx.AsyncClient(
            base_url=server.url, verify=client_context(settings.tls_ca), timeout=10
        ) as client:
            rig = HookRig(Ras(settings, client, engine, admin, server))
            yield rig
    finally:
        await server.stop()
        for receiver in rig.receivers if rig is not None else []:
            await receiver.stop()
        await engine.dispose()
