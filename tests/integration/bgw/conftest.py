"""The BGW test rig: a real XMPP server over loopback TLS, locks on a virtual BLE link.

The test plays the RAS: it holds the lock keys (built with heslock.protocol only), sends
frame IQs with ``XmppServer.iq_request`` and reads the gateway's messages from the
server's message listener. The gateway is the real one (slixmpp, bumble).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar
from xml.etree.ElementTree import Element

import pytest

from heslock.bgw import Gateway
from heslock.bgw.config import BleSettings, GatewayConfig, RasSettings, TlsMode
from heslock.ble.transport import LinkSpec
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import (
    Cmd,
    DeviceId,
    OperationOp,
    OperationType,
    RasKeyNegotiation,
    RasPhase,
    messages,
)
from heslock.protocol.makers import MakerProfile
from heslock.xmpp import IqRegistry, Jid, ScramCredentials, ServerConfig, XmppServer
from heslock.xmpp.lockns import (
    FrameRequest,
    FrameResult,
    LockEvent,
    ScanReport,
    parse_message_payload,
)
from tests.integration.ble.air import Air, Ras
from tests.integration.xmpp.conftest import (
    DOMAIN,
    MemoryStore,
    MessageLog,
    PresenceLog,
    server_context,
)
from tests.integration.xmpp.pki import Pki, make_pki

GATEWAY = "gw1"
GATEWAY_JID = f"{GATEWAY}@{DOMAIN}/bgw"
SECRET = "gateway secret 1"
WAIT_S = 10.0
_T = TypeVar("_T")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("bgw-pki"))


@pytest.fixture(scope="session")
def credentials() -> dict[str, ScramCredentials]:
    # ScramCredentials.from_password is scramp's make_auth_info (SCRAM-SHA-256, 4096 rounds)
    return {GATEWAY: ScramCredentials.from_password(SECRET, 4096)}


class RasSide:
    """The XMPP server and what reached it (presence, messages)."""

    def __init__(self, server: XmppServer, presence: PresenceLog, messages: MessageLog) -> None:
        self.server = server
        self.presence = presence
        self.messages = messages

    @property
    def port(self) -> int:
        return self.server.ports["direct_tls"]

    async def next_payload(
        self, kind: type[_T], match: Callable[[_T], bool] = lambda _: True
    ) -> _T:
        """The next gateway message whose payload is a ``kind`` matching ``match``."""

        async def find() -> _T:
            while True:
                sender, message = await self.messages.messages.get()
                assert sender == GATEWAY_JID
                payload = parse_message_payload(message)
                if isinstance(payload, kind) and match(payload):
                    return payload

        return await asyncio.wait_for(find(), WAIT_S)

    async def frame(self, lock: DeviceId, wire: bytes, timeout_ms: int = 8000) -> bytes:
        """Send one frame IQ to the gateway; the lock's answer."""
        result = await self.server.iq_request(
            Jid.parse(GATEWAY_JID), FrameRequest(lock, wire, timeout_ms).element(), timeout=WAIT_S
        )
        answer = FrameResult.from_iq(result)
        assert answer.lock == lock
        return answer.frame


async def start_ras(
    pki: Pki, credentials: dict[str, ScramCredentials], port: int = 0, starttls_port: int = 0
) -> RasSide:
    presence, log = PresenceLog(), MessageLog()
    config = ServerConfig(
        domain=DOMAIN,
        ssl_context=server_context(pki),
        starttls_port=starttls_port,
        direct_tls_port=port,
        certificate_der=pki.cert_der,
    )
    server = XmppServer(config, MemoryStore(credentials), IqRegistry(), presence, log)
    await server.start()
    return RasSide(server, presence, log)


def gateway_config(
    ca: Path,
    port: int,
    *,
    tls: TlsMode = TlsMode.DIRECT,
    max_links: int = 10,
    lost_after_s: float = 1.0,
) -> GatewayConfig:
    return GatewayConfig(
        RasSettings(
            host="127.0.0.1",
            port=port,
            tls=tls,
            ca_file=ca,
            jid=Jid.parse(GATEWAY_JID),
            secret=SECRET,
            keepalive_s=30.0,
            reconnect_min_s=0.05,
            reconnect_max_s=0.5,
        ),
        BleSettings(
            link=LinkSpec.parse("local"),
            max_links=max_links,
            idle_link_timeout_s=30.0,
            scan_interval_s=0.2,
            lost_after_s=lost_after_s,
            report_interval_s=60.0,
        ),
    )


class Rig:
    """Locks on a virtual link, a RAS stand-in, and one gateway between them."""

    def __init__(self, air: Air, ras: RasSide, pki: Pki) -> None:
        self.air = air
        self.ras = ras
        self.pki = pki
        self.gateway: Gateway | None = None

    async def start_gateway(self, **options: object) -> Gateway:
        config = gateway_config(self.pki.ca_pem, self.ras.port, **options)  # type: ignore[arg-type]  # test knobs
        self.gateway = Gateway(config, local=self.air.vlink)
        await self.gateway.start()
        await self.gateway.ras.wait_online(WAIT_S)
        return self.gateway

    async def add_lock(self, maker: MakerProfile) -> tuple[LockPeripheral, Ras]:
        peripheral, ras = await self.air.add_lock(maker)
        peripheral.press(peripheral.lock.press_registration_button)
        return peripheral, ras

    async def register(self, ras: Ras) -> None:
        """Stage a (two key parts, proof) and stage b (commit), through the gateway."""
        now = int(ras.clock())
        neg = RasKeyNegotiation.start(ras.device_id, ras.profile, ras.factory_key, 1, now)
        phases = [
            neg.receive(await self.ras.frame(ras.device_id, wire), now)
            for wire in neg.stage_a_frames(now)
        ]
        assert phases == [RasPhase.PART1_ACKED, RasPhase.PROVEN]
        answer = await self.ras.frame(ras.device_id, neg.commit_frame(now))
        assert neg.receive(answer, now) is RasPhase.COMMITTED
        ras.key, ras.seq = neg.record.new_key, 1


def bolt_frame(ras: Ras, op: OperationOp) -> bytes:
    ras.seq += 1
    frame = messages.command(
        Cmd.OPERATION, OperationType.BOLT, op, ras.seq, int(ras.clock()), ras.profile.layout
    )
    return ras.codec().seal(frame)


@pytest.fixture
async def rig(
    tmp_path: Path, pki: Pki, credentials: dict[str, ScramCredentials]
) -> AsyncIterator[Rig]:
    air = Air(tmp_path)
    ras = await start_ras(pki, credentials)
    setup = Rig(air, ras, pki)
    try:
        yield setup
    finally:
        if setup.gateway is not None:
            await setup.gateway.stop()
        await setup.ras.server.stop()
        await air.close()


__all__ = ["Element", "LockEvent", "ScanReport"]
