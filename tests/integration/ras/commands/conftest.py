"""The remote-control rig: a real RAS (HTTPS + its XMPP relay), real BGWs, simulated locks.

Everything is real: the RAS is :class:`heslock.ras.server.RasServer` with ``relay=True``
(what ``heslock ras serve`` runs) on loopback TLS and SQLite or PostgreSQL; gateways are
created through ``POST /v1/gateways`` and are ``heslock.bgw`` processes-in-a-task logging
in with the JID and secret the API returned; locks are ``heslock.bsld`` SimulatedLocks as
BLE peripherals on one bumble VirtualLink. Locks are registered through the HTTP API with
their frames carried by the gateway (the LockBus). Helpers are copied from
tests/integration/ras/relay and tests/integration/ras/ddms (not imported).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from heslock.bgw import Gateway
from heslock.bgw.config import BleSettings, GatewayConfig, RasSettings, TlsMode
from heslock.ble.transport import LinkSpec
from heslock.ble.virtual import VirtualLink
from heslock.bsld import SimulatedLock
from heslock.bsld.config import LockConfig
from heslock.bsld.manufacturer import dumps, generate
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import DeviceId
from heslock.protocol.makers import MakerProfile
from heslock.ras.api import create_app
from heslock.ras.relay import LockBus, LockEventNotice, PresenceNotice, ScanNotice
from heslock.ras.server import RasServer
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.commands.hosting import RelayHost
from heslock.ras.settings import Settings, load_settings
from heslock.ras.store import create_engine, create_sessionmaker
from heslock.ras.store.models import User
from heslock.ras.tls import client_context
from heslock.xmpp import Jid
from tests.integration.ras.conftest import CHEAP_ARGON2, initialise_from_template
from tests.support import Inbox, TokenTable, auth, lock_on_air

WAIT_S = 10.0
#: The gateway's budget per frame when the test carries frames itself.
FRAME_TIMEOUT_S = 8.0
#: Short advertising interval: connects take one interval on the virtual link.
ADVERTISING_INTERVAL_MS = 20.0
#: RFC 7677's minimum: the cheapest iteration count the settings accept.
TEST_SCRAM_ITERATIONS = 4096
RADIOS = ("C0:00:00:00:00:01", "C0:00:00:00:00:02")
_N = TypeVar("_N")


class ShiftedClock:
    """Wall time plus an offset that a test moves forward instead of sleeping.

    Given to the RAS (``app.state.ddms.clock``: what frames are stamped with and what the
    reconciler schedules by) and to a lock (:meth:`Rig.add_lock_with`), both see the same
    jump, so the lock keeps accepting the RAS's frames while time "passes".
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class LogWaiter(logging.Handler):
    """Sets an event when a record whose message contains ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@dataclass
class GatewayAccount:
    id: str
    jid: str
    secret: str


@dataclass
class Rig:
    settings: Settings
    server: RasServer
    relay: RelayHost
    client: httpx.AsyncClient
    ids: dict[str, uuid.UUID]
    vlink: VirtualLink = field(default_factory=VirtualLink)
    gateways: list[Gateway] = field(default_factory=list)
    peripherals: list[LockPeripheral] = field(default_factory=list)
    presence: Inbox[PresenceNotice] = field(default_factory=Inbox)
    scans: Inbox[ScanNotice] = field(default_factory=Inbox)
    events: Inbox[LockEventNotice] = field(default_factory=Inbox)

    def __post_init__(self) -> None:
        self.bus.subscribe_presence(self.presence.put)
        self.bus.subscribe_scans(self.scans.put)
        self.bus.subscribe_events(self.events.put)

    @property
    def bus(self) -> LockBus:
        return self.relay.bus

    def maker(self) -> Any:
        return create_sessionmaker(self.server.app.state.ras.engine)

    # ------------------------------------------------------------- gateways

    async def create_gateway(self, token: str = "a", name: str = "hall") -> GatewayAccount:
        response = await self.client.post("/v1/gateways", json={"name": name}, headers=auth(token))
        assert response.status_code == 201, response.text
        body = response.json()
        return GatewayAccount(body["id"], body["jid"], body["secret"])

    def gateway_config(self, account: GatewayAccount, radio: str) -> GatewayConfig:
        return GatewayConfig(
            RasSettings(
                host="127.0.0.1",
                port=self.relay.port,
                tls=TlsMode.STARTTLS,
                ca_file=self.settings.tls_ca,
                jid=Jid.parse(account.jid),
                secret=account.secret,
                keepalive_s=30.0,
                reconnect_min_s=0.05,
                reconnect_max_s=0.5,
            ),
            BleSettings(
                link=LinkSpec.parse("local"),
                address=radio,
                max_links=10,
                idle_link_timeout_s=30.0,
                scan_interval_s=0.2,
                lost_after_s=1.0,
                report_interval_s=60.0,
            ),
        )

    async def start_gateway(self, account: GatewayAccount, radio: str = RADIOS[0]) -> Gateway:
        """Start the BGW and wait until the relay has seen it come online."""
        gateway = Gateway(self.gateway_config(account, radio), local=self.vlink)
        self.gateways.append(gateway)
        await gateway.start()
        bare = Jid.parse(account.jid).bare
        await self.presence.next(lambda p: p.gateway == bare and p.online)
        return gateway

    async def stop_gateway(self, gateway: Gateway) -> None:
        await gateway.stop()
        self.gateways.remove(gateway)

    async def seen_by(self, account: GatewayAccount, lock: DeviceId) -> ScanNotice:
        bare = Jid.parse(account.jid).bare
        return await self.scans.next(
            lambda s: s.gateway == bare and lock in {e.lock for e in s.report.locks}
        )

    # ------------------------------------------------------------- locks

    async def add_lock(self, maker: MakerProfile) -> LockPeripheral:
        """A new lock: imported into the DDMS, advertising, its registration window open."""
        record = generate(1, maker.name, maker.models[0].name, ble_version=maker.ble_version.value)[
            0
        ]
        response = await self.client.post(
            "/v1/admin/devices/import",
            content=dumps([record], "json"),
            headers={**auth("admin"), "content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        lock = SimulatedLock(record.identity())
        peripheral = await lock_on_air(self.vlink, lock, maker, ADVERTISING_INTERVAL_MS, time.time)
        self.peripherals.append(peripheral)
        return peripheral

    async def add_lock_with(
        self, maker: MakerProfile, clock: Callable[[], float], config: LockConfig | None = None
    ) -> LockPeripheral:
        """:meth:`add_lock` with the lock's host clock and configuration chosen."""
        record = generate(1, maker.name, maker.models[0].name, ble_version=maker.ble_version.value)[
            0
        ]
        response = await self.client.post(
            "/v1/admin/devices/import",
            content=dumps([record], "json"),
            headers={**auth("admin"), "content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        lock = SimulatedLock(record.identity(), config)
        peripheral = await lock_on_air(self.vlink, lock, maker, ADVERTISING_INTERVAL_MS, clock)
        self.peripherals.append(peripheral)
        return peripheral

    async def register(self, peripheral: LockPeripheral, gateway_jid: str, token: str = "a") -> str:
        """Bind the lock through the HTTP API, its frames carried by the gateway."""
        device = peripheral.lock.identity.device_id
        response = await self.client.post(
            "/v1/registrations",
            json={"device_id": device.colon, "name": "front door"},
            headers=auth(token),
        )
        assert response.status_code in (200, 201), response.text
        view = response.json()
        queue = list(view["frames"])
        while queue:
            wire = base64.b64decode(queue.pop(0))
            answer = await self.bus.send_frame(gateway_jid, device, wire, FRAME_TIMEOUT_S)
            response = await self.client.post(
                f"/v1/registrations/{view['registration_id']}/answers",
                json={"frame": base64.b64encode(answer).decode()},
                headers=auth(token),
            )
            assert response.status_code == 200, response.text
            view = response.json()
            queue.extend(view["frames"])
        assert view["phase"] == "committed", view
        assert peripheral.lock.bound
        return str(view["lock_id"])

    # ------------------------------------------------------------- the RAS itself

    async def start_ras_again(self) -> None:
        """After ``server.stop()``: a new RasServer on the same data directory, database
        and ports (HTTPS, XMPP STARTTLS and direct TLS), as a restarted ``heslock ras
        serve`` is to its clients and gateways. Both listeners set SO_REUSEADDR, so the
        ports bind again at once. The rig's inboxes subscribe to the new relay's bus
        before it listens, so no presence or scan notice of a reconnecting gateway is
        missed; the HTTP client keeps its base URL (it drops its dead connections).
        """
        if self.server.relay is not None and self.server.relay.endpoint.running:
            raise RuntimeError("stop the RAS first")
        ports = self.relay.endpoint.config  # the numbers the OS gave the first start
        settings = self.settings.model_copy(
            update={
                "https_port": self.client.base_url.port,
                "xmpp_port": ports.starttls_port,
                "xmpp_direct_tls_port": ports.direct_tls_port,
            }
        )
        app = create_app(settings, authenticator=self.server.app.state.ras.authenticator)
        server = RasServer(settings, app, relay=True)
        assert server.relay is not None
        server.relay.bus.subscribe_presence(self.presence.put)
        server.relay.bus.subscribe_scans(self.scans.put)
        server.relay.bus.subscribe_events(self.events.put)
        await server.start()
        self.settings, self.server, self.relay = settings, server, server.relay

    async def command(
        self, lock_id: str, command: str, key: str | None, token: str = "a"
    ) -> httpx.Response:
        headers = auth(token)
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.client.post(
            f"/v1/locks/{lock_id}/commands", json={"command": command}, headers=headers
        )

    async def close(self) -> None:
        for gateway in list(self.gateways):
            await gateway.stop()
        await self.server.stop()
        for peripheral in self.peripherals:
            await peripheral.stop()
        self.vlink.close()
        await asyncio.sleep(0)  # let bumble's call_soon callbacks of the unplug run


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
    init = await initialise_from_template(settings, "admin@localhost")
    engine = create_engine(settings.database_url)
    ids = {"admin": uuid.UUID(init.admin_id)}
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for name in ("a", "b"):
                user = User(display_name=f"user {name}")
                session.add(user)
                await session.flush()
                ids[name] = user.id
    finally:
        await engine.dispose()
    tokens = TokenTable()
    tokens.tokens = {
        "admin": Principal(PrincipalKind.USER, ids["admin"], is_admin=True),
        "a": Principal(PrincipalKind.USER, ids["a"]),
        "b": Principal(PrincipalKind.USER, ids["b"]),
    }
    app = create_app(settings, authenticator=tokens)
    server = RasServer(settings, app, relay=True)
    assert server.relay is not None
    await server.start()
    client = httpx.AsyncClient(
        base_url=server.url, verify=client_context(settings.tls_ca), timeout=30
    )
    rig = Rig(settings, server, server.relay, client, ids)
    try:
        yield rig
    finally:
        await client.aclose()
        await rig.close()
