"""A real RAS for the SDK: HTTPS (TLS with its own CA) and the XMPP relay, real accounts.

Unlike the RAS suites' rigs there is no stand-in authenticator: users register, verify
their contacts with the codes the development outbox received (read like a user reads
their phone) and log in with a second factor, all through :mod:`heslock.rac`. Locks are
``heslock.bsld`` simulated locks on a bumble VirtualLink; a real ``heslock.bgw`` gateway
and the client's own :class:`heslock.rac.nearby.NearbyRadio` share that link.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from heslock.bgw import Gateway
from heslock.bgw.config import BleSettings, GatewayConfig, RasSettings, TlsMode
from heslock.ble.transport import LinkSpec
from heslock.ble.virtual import VirtualLink
from heslock.bsld import SimulatedLock
from heslock.bsld.manufacturer import dumps, generate
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import DeviceId
from heslock.protocol.makers import MakerProfile
from heslock.rac import AsyncRasClient, GatewayCredentials, MemoryTokenStore
from heslock.ras.api import create_app
from heslock.ras.bootstrap import InitResult
from heslock.ras.relay import PresenceNotice, ScanNotice
from heslock.ras.server import RasServer
from heslock.ras.services.commands.hosting import RelayHost
from heslock.ras.services.udms.senders import outbox_path
from heslock.ras.settings import Settings, load_settings
from heslock.xmpp import Jid
from tests.integration.ras.conftest import CHEAP_ARGON2, initialise_from_template
from tests.support import Inbox, lock_on_air

PASSWORD = "plum tart on a windy tuesday"
ADMIN_EMAIL = "admin@localhost"
ADVERTISING_INTERVAL_MS = 20.0
TEST_SCRAM_ITERATIONS = 4096
GATEWAY_RADIO = "C0:00:00:00:00:01"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:8]}@example.org"


@dataclass
class System:
    settings: Settings
    server: RasServer
    admin: InitResult
    vlink: VirtualLink = field(default_factory=VirtualLink)
    gateways: list[Gateway] = field(default_factory=list)
    peripherals: list[LockPeripheral] = field(default_factory=list)
    presence: Inbox[PresenceNotice] = field(default_factory=Inbox)
    scans: Inbox[ScanNotice] = field(default_factory=Inbox)

    def __post_init__(self) -> None:
        assert self.server.relay is not None
        self.server.relay.bus.subscribe_presence(self.presence.put)
        self.server.relay.bus.subscribe_scans(self.scans.put)

    @property
    def relay(self) -> RelayHost:
        assert self.server.relay is not None
        return self.server.relay

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ca(self) -> Path:
        return self.settings.tls_ca

    def client(self, **kwargs: Any) -> AsyncRasClient:
        return AsyncRasClient(self.url, ca=self.ca, timeout=30.0, **kwargs)

    def has_route(self, path: str) -> bool:
        """Whether this RAS serves ``path`` (routes other helpers are adding: C1, C2)."""
        return path in self.server.app.openapi()["paths"]

    # ------------------------------------------------------------------ the outbox

    def outbox(self) -> list[dict[str, Any]]:
        path = outbox_path(self.settings)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def code_for(self, to: str, purpose: str) -> str:
        codes = [m["code"] for m in self.outbox() if m["to"] == to and m["purpose"] == purpose]
        assert codes, f"no {purpose} code sent to {to}"
        code: str = codes[-1]
        return code

    # ------------------------------------------------------------------ users

    async def user(self, email: str | None = None) -> AsyncRasClient:
        """A new user, registered, verified and logged in (e-mail code): their client."""
        email = email or new_email()
        ras = self.client(tokens=MemoryTokenStore())
        account = await ras.account.register(email=email, password=PASSWORD)
        for contact in account.contacts:
            await ras.account.verify(contact, self.code_for(contact.address, "verify_contact"))
        await self.login(ras, email)
        return ras

    async def login(self, ras: AsyncRasClient, login: str, password: str = PASSWORD) -> None:
        challenge = await ras.sessions.login(login, password)
        await ras.sessions.send_code(challenge, "email")
        await ras.sessions.second_factor(challenge, self.code_for(login, "login"))

    async def admin_client(self) -> AsyncRasClient:
        ras = self.client()
        await self.login(ras, ADMIN_EMAIL, self.admin.admin_password)
        return ras

    # ------------------------------------------------------------------ parts

    async def add_lock(self, maker: MakerProfile) -> LockPeripheral:
        """A new lock: its factory record imported (by the admin, through the SDK),
        advertising on the link, its registration window open."""
        record = generate(1, maker.name, maker.models[0].name, ble_version=maker.ble_version.value)[
            0
        ]
        async with await self.admin_client() as admin:
            result = await admin.admin.import_devices(dumps([record], "json"), "json")
        assert result.imported == 1, result
        lock = SimulatedLock(record.identity())
        peripheral = await lock_on_air(self.vlink, lock, maker, ADVERTISING_INTERVAL_MS, time.time)
        self.peripherals.append(peripheral)
        return peripheral

    async def start_gateway(self, credentials: GatewayCredentials) -> Gateway:
        """Run a gateway with these credentials; returns once the RAS has seen it online."""
        assert self.server.relay is not None
        config = GatewayConfig(
            RasSettings(
                host="127.0.0.1",
                port=self.server.relay.port,
                tls=TlsMode.STARTTLS,
                ca_file=self.settings.tls_ca,
                jid=Jid.parse(credentials.jid),
                secret=credentials.secret,
                keepalive_s=30.0,
                reconnect_min_s=0.05,
                reconnect_max_s=0.5,
            ),
            BleSettings(
                link=LinkSpec.parse("local"),
                address=GATEWAY_RADIO,
                max_links=10,
                idle_link_timeout_s=30.0,
                scan_interval_s=0.2,
                lost_after_s=1.0,
                report_interval_s=60.0,
            ),
        )
        gateway = Gateway(config, local=self.vlink)
        self.gateways.append(gateway)
        await gateway.start()
        bare = Jid.parse(credentials.jid).bare
        await self.presence.next(lambda p: p.gateway == bare and p.online)
        return gateway

    async def seen_by(self, credentials: GatewayCredentials, device: DeviceId) -> None:
        """Wait until the gateway's scan report lists the lock (commands route by it)."""
        bare = Jid.parse(credentials.jid).bare
        await self.scans.next(
            lambda s: s.gateway == bare and device in {e.lock for e in s.report.locks}
        )

    async def close(self) -> None:
        for gateway in self.gateways:
            await gateway.stop()
        await self.server.stop()
        for peripheral in self.peripherals:
            await peripheral.stop()
        self.vlink.close()
        await asyncio.sleep(0)  # let bumble's call_soon callbacks of the unplug run


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    settings = load_settings(
        {
            "data_dir": tmp_path / "data",
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'ras.db'}",
            "https_port": 0,
            "xmpp_port": 0,
            "xmpp_direct_tls_port": 0,
            "scram_iterations": TEST_SCRAM_ITERATIONS,
            **CHEAP_ARGON2,
        },
        env={},
    )
    admin = await initialise_from_template(settings, ADMIN_EMAIL)
    server = RasServer(settings, create_app(settings), relay=True)
    await server.start()
    rig = System(settings, server, admin)
    try:
        yield rig
    finally:
        await rig.close()
