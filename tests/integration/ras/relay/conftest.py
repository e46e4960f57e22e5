"""The relay test rig: RelayEndpoint over loopback TLS, real BGWs, locks on a virtual link.

Everything is real: the RAS's own TLS helpers (heslock.ras.tls) make the certificates,
the gateways are heslock.bgw (slixmpp + bumble), the locks heslock.bsld SimulatedLocks as
BLE peripherals on one bumble VirtualLink. The test plays the RAS's services: it holds the
lock keys (protocol core only) and talks to locks only through the LockBus. Small helpers
are copied from tests/integration/bgw and tests/integration/ble (not imported), so this
area stands on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives import serialization

from heslock.bgw import Gateway
from heslock.bgw.config import BleSettings, GatewayConfig, RasSettings, TlsMode
from heslock.ble.transport import LinkSpec
from heslock.ble.virtual import VirtualLink
from heslock.bsld import SimulatedLock
from heslock.bsld.manufacturer import generate
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import (
    Cmd,
    DeviceId,
    Direction,
    Frame,
    FrameCodec,
    OpBody,
    OperationOp,
    OperationType,
    Profile,
    RasKeyNegotiation,
    RasPhase,
    decode_body,
    messages,
)
from heslock.protocol.makers import MakerProfile
from heslock.ras.relay import (
    LocalBus,
    LockEventNotice,
    PresenceNotice,
    RelayEndpoint,
    ScanNotice,
)
from heslock.ras.tls import generate_ca, generate_server_cert, server_context
from heslock.xmpp import Jid, ScramCredentials, ServerConfig
from tests.support import Inbox, lock_on_air

DOMAIN = "localhost"
WAIT_S = 10.0
#: The gateway's budget per frame in these tests (the lockns default).
FRAME_TIMEOUT_S = 8.0
#: Short advertising interval: connects take one interval on the virtual link.
ADVERTISING_INTERVAL_MS = 20.0
SECRETS = {"gw1": "gateway secret 1", "gw2": "gateway secret 2"}
RADIOS = {"gw1": "C0:00:00:00:00:01", "gw2": "C0:00:00:00:00:02"}
_N = TypeVar("_N")


def bare(name: str) -> str:
    return f"{name}@{DOMAIN}"


@dataclass(frozen=True)
class Tls:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    directory = tmp_path_factory.mktemp("relay-tls")
    ca_key, ca = generate_ca("relay test CA")
    key, cert = generate_server_cert(ca_key, ca, DOMAIN)
    paths = Tls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pem = serialization.Encoding.PEM
    paths.ca_pem.write_bytes(ca.public_bytes(pem))
    paths.cert_pem.write_bytes(cert.public_bytes(pem))
    paths.key_pem.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class MemoryStore:
    """A CredentialStore over a dict (the DDMS's ScsCredentialStore in production)."""

    def __init__(self) -> None:
        # RFC 7677's minimum iteration count; scramp's make_auth_info
        self.credentials = {
            name: ScramCredentials.from_password(secret, 4096) for name, secret in SECRETS.items()
        }

    async def scram_sha256(self, username: str) -> ScramCredentials | None:
        return self.credentials.get(username)


class Clock:
    """Host time for locks and RAS alike."""

    def __call__(self) -> float:
        return time.time()


class LockKeys:
    """What the RAS's DDMS would know about one lock: its id, profile and keys."""

    def __init__(self, device_id: DeviceId, profile: Profile, factory_key: bytes) -> None:
        self.device_id = device_id
        self.profile = profile
        self.factory_key = factory_key
        self.key: bytes | None = None
        self.seq = 1  # the COMMIT used counter 1 under the fresh key

    def codec(self) -> FrameCodec:
        assert self.key is not None, "register first"
        return FrameCodec(self.key, self.profile)

    def bolt(self, op: OperationOp) -> bytes:
        self.seq += 1
        frame = messages.command(
            Cmd.OPERATION, OperationType.BOLT, op, self.seq, int(time.time()), self.profile.layout
        )
        return self.codec().seal(frame)

    def open(self, wire: bytes) -> tuple[Frame, OpBody]:
        frame = self.codec().open(wire)
        body = decode_body(frame, Direction.FROM_LOCK, self.profile)
        assert isinstance(body, OpBody)
        return frame, body


class Rig:
    """One RelayEndpoint + LocalBus, locks on a virtual link, gateways started on demand."""

    def __init__(self, endpoint: RelayEndpoint, tls: Tls, data_dir: Path) -> None:
        self.endpoint = endpoint
        self.bus = LocalBus(endpoint)
        self.tls = tls
        self.data_dir = data_dir
        self.vlink = VirtualLink()
        self.clock = Clock()
        self.gateways: list[Gateway] = []
        self.peripherals: list[LockPeripheral] = []
        self.presence: Inbox[PresenceNotice] = Inbox()
        self.scans: Inbox[ScanNotice] = Inbox()
        self.events: Inbox[LockEventNotice] = Inbox()
        self.bus.subscribe_presence(self.presence.put)
        self.bus.subscribe_scans(self.scans.put)
        self.bus.subscribe_events(self.events.put)

    def gateway_config(self, name: str) -> GatewayConfig:
        return GatewayConfig(
            RasSettings(
                host="127.0.0.1",
                port=self.endpoint.ports["direct_tls"],
                tls=TlsMode.DIRECT,
                ca_file=self.tls.ca_pem,
                jid=Jid.parse(f"{bare(name)}/bgw"),
                secret=SECRETS[name],
                keepalive_s=30.0,
                reconnect_min_s=0.05,
                reconnect_max_s=0.5,
            ),
            BleSettings(
                link=LinkSpec.parse("local"),
                address=RADIOS[name],
                max_links=10,
                idle_link_timeout_s=30.0,
                scan_interval_s=0.2,
                lost_after_s=1.0,
                report_interval_s=60.0,
            ),
        )

    async def start_gateway(self, name: str) -> Gateway:
        """Start gateway ``name`` and wait until the relay has seen it come online."""
        gateway = Gateway(self.gateway_config(name), local=self.vlink)
        self.gateways.append(gateway)
        await gateway.start()
        await self.presence.next(lambda p: p.gateway == bare(name) and p.online)
        return gateway

    async def stop_gateway(self, gateway: Gateway) -> None:
        await gateway.stop()
        self.gateways.remove(gateway)

    async def add_lock(self, maker: MakerProfile) -> tuple[LockPeripheral, LockKeys]:
        record = generate(1, maker.name, maker.models[0].name, ble_version=maker.ble_version.value)[
            0
        ]
        lock = SimulatedLock(record.identity())
        peripheral = await lock_on_air(self.vlink, lock, maker, ADVERTISING_INTERVAL_MS, self.clock)
        self.peripherals.append(peripheral)
        identity = lock.identity
        return peripheral, LockKeys(identity.device_id, identity.profile, identity.factory_key)

    async def seen_by(self, name: str, lock: DeviceId) -> ScanNotice:
        """The next scan report of gateway ``name`` that lists ``lock``."""
        return await self.scans.next(
            lambda s: s.gateway == bare(name) and lock in {e.lock for e in s.report.locks}
        )

    async def frame(self, gateway: str, lock: DeviceId, wire: bytes) -> bytes:
        return await self.bus.send_frame(gateway, lock, wire, FRAME_TIMEOUT_S)

    async def register(self, gateway: str, keys: LockKeys) -> None:
        """Two-stage key negotiation (stage a: two key parts and the proof; b: commit)."""
        now = int(time.time())
        neg = RasKeyNegotiation.start(keys.device_id, keys.profile, keys.factory_key, 1, now)
        phases = [
            neg.receive(await self.frame(gateway, keys.device_id, wire), now)
            for wire in neg.stage_a_frames(now)
        ]
        assert phases == [RasPhase.PART1_ACKED, RasPhase.PROVEN]
        answer = await self.frame(gateway, keys.device_id, neg.commit_frame(now))
        assert neg.receive(answer, now) is RasPhase.COMMITTED
        keys.key, keys.seq = neg.record.new_key, 1

    async def close(self) -> None:
        for gateway in list(self.gateways):
            await gateway.stop()
        await self.endpoint.stop()
        for peripheral in self.peripherals:
            await peripheral.stop()
        self.vlink.close()
        await asyncio.sleep(0)  # let bumble's call_soon callbacks of the unplug run


@pytest.fixture
async def rig(tls: Tls, tmp_path: Path) -> AsyncIterator[Rig]:
    config = ServerConfig(
        domain=DOMAIN,
        ssl_context=server_context(tls.cert_pem, tls.key_pem),
        starttls_port=None,
        direct_tls_port=0,
    )
    endpoint = RelayEndpoint(config, MemoryStore())
    await endpoint.start()
    setup = Rig(endpoint, tls, tmp_path)
    try:
        yield setup
    finally:
        await setup.close()
