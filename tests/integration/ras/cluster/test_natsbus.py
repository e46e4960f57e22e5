"""NatsBus: two RAS processes' relays in one test process, over a real NATS server.

Each "node" has its own RelayEndpoint (loopback TLS, SCRAM) and NatsBus on a subject
prefix of its own test; gateways are plain slixmpp clients scripted by the test (the
relay suite's ScriptedGateway), logged in to one node. What one node's services see of a
gateway held by the other is what these tests check.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from slixmpp import ClientXMPP

from heslock.errors import UsageError
from heslock.protocol import DeviceId, Profile
from heslock.ras.relay import (
    GatewayOffline,
    LockBusy,
    LockEventNotice,
    PresenceNotice,
    RelayEndpoint,
    ScanNotice,
)
from heslock.ras.relay.natsbus import ClusterGatewaySessions, NatsBus, subject_token
from heslock.ras.services.ddms.runtime import RelayGatewaySessions
from heslock.ras.tls import server_context
from heslock.xmpp import ServerConfig
from heslock.xmpp.lockns import (
    LockCondition,
    LockEvent,
    ScanEntry,
    ScanReason,
    ScanReport,
    error_element,
)
from tests.conftest import require_service
from tests.integration.ras.relay.conftest import (
    DOMAIN,
    SECRETS,
    WAIT_S,
    MemoryStore,
    Tls,
    bare,
)
from tests.integration.ras.relay.test_scripted_gateway import ScriptedGateway, close
from tests.support import Inbox

pytestmark = pytest.mark.timeout(60)

NATS_HOST, NATS_PORT = "127.0.0.1", 4222
NATS_URL = f"nats://{NATS_HOST}:{NATS_PORT}"
GW1, GW2 = bare("gw1"), bare("gw2")
LOCK = DeviceId.parse("F0:11:22:33:44:55")


@dataclass
class Node:
    name: str
    endpoint: RelayEndpoint
    bus: NatsBus
    presence: Inbox[PresenceNotice] = field(default_factory=Inbox)
    scans: Inbox[ScanNotice] = field(default_factory=Inbox)
    events: Inbox[LockEventNotice] = field(default_factory=Inbox)

    def __post_init__(self) -> None:
        self.bus.subscribe_presence(self.presence.put)
        self.bus.subscribe_scans(self.scans.put)
        self.bus.subscribe_events(self.events.put)


async def start_node(name: str, tls: Tls, prefix: str, url: str = NATS_URL) -> Node:
    config = ServerConfig(
        domain=DOMAIN,
        ssl_context=server_context(tls.cert_pem, tls.key_pem),
        starttls_port=None,
        direct_tls_port=0,
    )
    endpoint = RelayEndpoint(config, MemoryStore())
    bus = NatsBus(endpoint, url, prefix=prefix, node=name)
    node = Node(name, endpoint, bus)
    await bus.start()
    await endpoint.start()
    return node


async def stop_node(node: Node) -> None:
    try:
        await node.endpoint.stop()
    finally:
        await node.bus.stop()


@pytest.fixture
async def nodes(tls: Tls) -> AsyncIterator[tuple[Node, Node]]:
    require_service("NATS", NATS_HOST, NATS_PORT)
    prefix = f"test.{uuid.uuid4().hex}"  # this test's own subjects on the shared server
    a = await start_node("a", tls, prefix)
    try:
        b = await start_node("b", tls, prefix)
        try:
            yield a, b
        finally:
            await stop_node(b)
    finally:
        await stop_node(a)


async def login(node: Node, name: str, tls: Tls, *, watch: Node | None = None) -> Any:
    """A scripted gateway ``name`` on ``node``; returns once ``watch`` (if given) sees it."""
    client = ClientXMPP(f"{bare(name)}/scripted", SECRETS[name])
    client.enable_direct_tls = True
    client.enable_starttls = False
    client.enable_plaintext = False
    client.ca_certs = tls.ca_pem
    started = asyncio.ensure_future(client.wait_until("session_start", WAIT_S))
    client.connect("127.0.0.1", node.endpoint.ports["direct_tls"])
    await started
    client.send_presence()
    for seen_by in (node, watch) if watch is not None else (node,):
        await seen_by.presence.next(lambda p: p.gateway == bare(name) and p.online)
    return client


@contextlib.asynccontextmanager
async def gateway(node: Node, name: str, tls: Tls, watch: Node) -> AsyncIterator[ScriptedGateway]:
    client = await login(node, name, tls, watch=watch)
    try:
        yield ScriptedGateway(client)
    finally:
        await close(client)


def report(rssi: int) -> ScanReport:
    entry = ScanEntry(
        LOCK, "acme", 1, "4.0", Profile.SECURE, True, False, 80, rssi, datetime.now(UTC)
    )
    return ScanReport((entry,), ScanReason.CHANGE)


def test_subject_tokens_are_safe_and_distinct() -> None:
    tokens = {subject_token(j) for j in ("a.b@x.y", "a_2eb@x.y", "a-b@x.y", "ä@x")}
    assert len(tokens) == 4
    assert all(t.replace("_", "").replace("-", "").isalnum() and t.isascii() for t in tokens)


async def test_a_frame_reaches_the_gateway_another_node_holds(
    nodes: tuple[Node, Node], tls: Tls
) -> None:
    a, b = nodes
    async with gateway(b, "gw1", tls, watch=a) as scripted:
        assert a.bus.holder_of(GW1) == "b"
        frame = secrets.token_bytes(16)
        assert await a.bus.send_frame(GW1, LOCK, frame, 3.0) == frame
        request = scripted.requests.get_nowait()
        assert (request.lock, request.frame, request.timeout_ms) == (LOCK, frame, 3000)
        # the holder itself needs no hop, and says so in no other way than answering
        assert await b.bus.send_frame(GW1, LOCK, frame, 3.0) == frame


async def test_errors_come_back_as_the_same_class(nodes: tuple[Node, Node], tls: Tls) -> None:
    a, b = nodes
    async with gateway(b, "gw1", tls, watch=a) as scripted:
        scripted.script = lambda _r: ("error", error_element(LockCondition.LOCK_BUSY, "full"))
        with pytest.raises(LockBusy) as caught:
            await a.bus.send_frame(GW1, LOCK, bytes(16), 2.0)
        assert not caught.value.may_have_executed
        assert "lock-busy" in caught.value.detail
        with pytest.raises(UsageError):
            await a.bus.send_frame(GW1, LOCK, bytes(16), 0)


async def test_an_offline_gateway_is_gateway_offline(nodes: tuple[Node, Node], tls: Tls) -> None:
    a, b = nodes
    with pytest.raises(GatewayOffline):
        await a.bus.send_frame(GW2, LOCK, bytes(16), 2.0)  # nobody ever held it
    client = await login(b, "gw2", tls, watch=a)
    await close(client)
    await a.presence.next(lambda p: p.gateway == GW2 and not p.online)
    assert a.bus.holder_of(GW2) is None
    with pytest.raises(GatewayOffline) as caught:
        await a.bus.send_frame(GW2, LOCK, bytes(16), 2.0)
    assert not caught.value.may_have_executed


async def test_scans_route_everywhere_and_events_are_delivered_once(
    nodes: tuple[Node, Node], tls: Tls
) -> None:
    a, b = nodes
    async with gateway(b, "gw1", tls, watch=a) as scripted:
        scripted.send_message(LockEvent(LOCK, bytes(16), -61).element())
        event = await b.events.next()
        assert (event.gateway, event.lock, event.rssi) == (GW1, LOCK, -61)
        # the scan report is sent after the event on the same stream: once node a has it,
        # the event would have reached a too, were events fanned out
        scripted.send_message(report(-50).element())
        await a.scans.next(lambda s: s.gateway == GW1)
        assert await a.bus.gateway_for(LOCK) == GW1
        assert a.events.queue.empty()
        assert b.events.queue.empty()  # exactly one on b
        # a subscriber that starts late (a new leader) is told what is online now
        late: Inbox[PresenceNotice | ScanNotice] = Inbox()
        unsubscribe = [a.bus.subscribe_presence(late.put), a.bus.subscribe_scans(late.put)]
        seen = [late.queue.get_nowait(), late.queue.get_nowait()]
        for stop in unsubscribe:
            stop()
        assert {type(n) for n in seen} == {PresenceNotice, ScanNotice}
    await a.presence.next(lambda p: p.gateway == GW1 and not p.online)
    assert await a.bus.gateway_for(LOCK) is None


async def test_a_login_on_another_node_replaces_the_session(
    nodes: tuple[Node, Node], tls: Tls
) -> None:
    a, b = nodes
    first = await login(b, "gw1", tls, watch=a)
    replaced = asyncio.ensure_future(first.wait_until("disconnected", WAIT_S))
    try:
        second = await login(a, "gw1", tls)
        try:
            await replaced  # node b closed its session (stream error conflict)
            await b.presence.next(lambda p: p.online and b.bus.holder_of(GW1) == "a")
            assert b.endpoint.registry.session_of(GW1) is None
            assert a.bus.holder_of(GW1) == "a"
            ScriptedGateway(second)
            # node b reaches it on node a, through the bus
            frame = secrets.token_bytes(16)
            assert await b.bus.send_frame(GW1, LOCK, frame, 3.0) == frame
        finally:
            await close(second)
    finally:
        replaced.cancel()
        await close(first)


async def test_an_unreachable_bus_is_a_clear_error(tls: Tls) -> None:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))  # a port nobody listens on
        port = sock.getsockname()[1]
        config = ServerConfig(
            domain=DOMAIN, ssl_context=server_context(tls.cert_pem, tls.key_pem), direct_tls_port=0
        )
        bus = NatsBus(RelayEndpoint(config, MemoryStore()), f"nats://127.0.0.1:{port}")
        with pytest.raises(UsageError, match="cannot reach the cluster bus"):
            await bus.start()
        with pytest.raises(GatewayOffline, match="bus is unavailable"):
            await bus.send_frame(GW1, LOCK, bytes(16), 1.0)
        await bus.stop()


class Proxy:
    """A TCP relay to the NATS server that the test can cut and restore (an outage)."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(NATS_HOST, NATS_PORT)
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()


async def poll_until(condition: Any, what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 - a poll with a deadline
            await asyncio.sleep(0.02)
    assert condition(), what


async def test_a_bus_outage_fails_fast_and_recovers(tls: Tls) -> None:
    require_service("NATS", NATS_HOST, NATS_PORT)
    prefix = f"test.{uuid.uuid4().hex}"
    proxy = Proxy()
    await proxy.start()
    a = await start_node("a", tls, prefix, url=f"nats://127.0.0.1:{proxy.port}")
    try:
        b = await start_node("b", tls, prefix)
        try:
            async with gateway(b, "gw1", tls, watch=a):
                await proxy.cut()
                await poll_until(lambda: not a.bus.connected, "node a saw the outage")
                with pytest.raises(GatewayOffline, match="bus is unavailable"):
                    await a.bus.send_frame(GW1, LOCK, bytes(16), 2.0)
                await proxy.start()  # the same port: nats-py reconnects by itself
                await poll_until(lambda: a.bus.connected, "node a reconnected")
                frame = secrets.token_bytes(16)

                async def through() -> bytes | None:
                    try:
                        return await a.bus.send_frame(GW1, LOCK, frame, 2.0)
                    except GatewayOffline:
                        return None  # the resubscription may trail the reconnect a moment

                async with asyncio.timeout(WAIT_S):
                    while (answer := await through()) is None:  # noqa: ASYNC110 - as above
                        await asyncio.sleep(0.05)
                assert answer == frame
        finally:
            await stop_node(b)
    finally:
        await stop_node(a)
        await proxy.cut()


async def test_revoking_ends_the_session_on_the_process_holding_it(
    nodes: tuple[Node, Node], tls: Tls
) -> None:
    a, b = nodes
    client = await login(b, "gw1", tls, watch=a)
    try:
        ended = asyncio.ensure_future(client.wait_until("disconnected", WAIT_S))
        hook = ClusterGatewaySessions(RelayGatewaySessions(a.endpoint), a.bus)
        await hook.gateway_disconnect(uuid.uuid4(), f"{GW1}/scripted", "revoked")
        await ended
        await a.presence.next(lambda p: p.gateway == GW1 and not p.online)
    finally:
        await close(client)


async def test_a_process_shutting_down_is_not_its_gateways_going_offline(
    nodes: tuple[Node, Node], tls: Tls
) -> None:
    a, b = nodes
    client = await login(b, "gw1", tls, watch=a)
    try:
        await stop_node(b)  # a worker restarts: its gateway will come back elsewhere
        await poll_until(lambda: a.bus.holder_of(GW1) is None, "node a saw b go")
        assert await a.bus.gateway_for(LOCK) is None
        offline = [p for p in list(a.presence.queue._queue) if not p.online]  # type: ignore[attr-defined]
        assert offline == []  # subscribers (the feed) hear nothing yet ...
        assert GW1 in a.bus._deferred  # ... unless it stays away SHUTDOWN_GRACE_S
        again = await login(a, "gw1", tls)  # ... and it came back: never
        assert GW1 not in a.bus._deferred
        await close(again)
    finally:
        await close(client)
