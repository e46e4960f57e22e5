"""Test rig for the BLE tests: locks and a central on one in-process virtual link.

Everything runs on the real bumble stack (HCI, L2CAP, ATT, GATT, advertising) over
virtual controllers. A small RAS stand-in, built only from the protocol core, registers
locks and seals commands; it reads the lock's answers as the RAS will.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from heslock.ble.central import FrameCentral, FrameLink
from heslock.ble.virtual import VirtualLink
from heslock.bsld import LockConfig, SimulatedLock
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
    ReasonCode,
    decode_body,
    messages,
)
from heslock.protocol.makers import MakerProfile

#: Short advertising interval: connects take one interval on the virtual link.
TEST_ADVERTISING_INTERVAL_MS = 20.0
CENTRAL_ADDRESS = "C0:00:00:00:00:01"


class Clock:
    """Host time for locks and RAS alike; tests move it forward instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Ras:
    """What the RAS knows about one lock, and how it talks to it over a FrameLink."""

    def __init__(
        self, device_id: DeviceId, profile: Profile, factory_key: bytes, clock: Clock
    ) -> None:
        self.clock = clock
        self.device_id = device_id
        self.profile = profile
        self.factory_key = factory_key
        self.key: bytes | None = None
        self.seq = 1  # the COMMIT used counter 1 under a fresh key

    async def register(self, link: FrameLink, version: int = 1) -> None:
        now = int(self.clock())
        neg = RasKeyNegotiation.start(self.device_id, self.profile, self.factory_key, version, now)
        phases = [neg.receive(await link.request(wire), now) for wire in neg.stage_a_frames(now)]
        assert phases[-1] is RasPhase.PROVEN
        assert neg.receive(await link.request(neg.commit_frame(now)), now) is RasPhase.COMMITTED
        self.key, self.seq = neg.record.new_key, 1

    def codec(self, key: bytes | None = None) -> FrameCodec:
        use = key if key is not None else self.key
        assert use is not None, "register first"
        return FrameCodec(use, self.profile)

    def bolt(
        self,
        op: OperationOp,
        *,
        ts: float | None = None,
        seq: int | None = None,
        key: bytes | None = None,
    ) -> bytes:
        if seq is None:
            self.seq += 1
            seq = self.seq
        stamp = int(self.clock() if ts is None else ts)
        frame = messages.command(
            Cmd.OPERATION, OperationType.BOLT, op, seq, stamp, self.profile.layout
        )
        return self.codec(key).seal(frame)

    def open(self, wire: bytes, key: bytes | None = None) -> tuple[Frame, OpBody]:
        frame = self.codec(key).open(wire)
        body = decode_body(frame, Direction.FROM_LOCK, self.profile)
        assert isinstance(body, OpBody)
        return frame, body

    def refusal(self, wire: bytes, key: bytes | None = None) -> ReasonCode | None:
        """The reason of an ERROR answer, None for any other answer."""
        frame, _ = self.open(wire, key)
        return ReasonCode(frame.type) if frame.group == Cmd.ERROR else None


class Air:
    """A virtual link with locks (peripherals) and one central (a gateway's radio)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.vlink = VirtualLink()
        self.clock = Clock()
        self.peripherals: list[LockPeripheral] = []
        self.central: FrameCentral | None = None
        self.links: list[FrameLink] = []

    async def add_lock(
        self,
        maker: MakerProfile,
        profile: Profile = Profile.SECURE,
        *,
        config: LockConfig | None = None,
        persistent: bool = False,
        idle_disconnect_s: float = 3600.0,
        lock: SimulatedLock | None = None,
    ) -> tuple[LockPeripheral, Ras]:
        if lock is None:
            record = generate(
                1,
                maker.name,
                maker.models[0].name,
                profile=profile,
                ble_version=maker.ble_version.value,
            )[0]
            path = self.data_dir / f"{record.device_id}.json" if persistent else None
            lock = SimulatedLock(record.identity(), config, state_path=path)
        identity = lock.identity
        device = self.vlink.create_device(identity.maker, identity.device_id.colon)
        peripheral = LockPeripheral(
            lock,
            maker,
            device,
            idle_disconnect_s=idle_disconnect_s,
            advertising_interval_ms=TEST_ADVERTISING_INTERVAL_MS,
            clock=self.clock,
        )
        await peripheral.start()
        self.peripherals.append(peripheral)
        ras = Ras(identity.device_id, identity.profile, identity.factory_key, self.clock)
        return peripheral, ras

    async def remove_lock(self, peripheral: LockPeripheral) -> None:
        await peripheral.stop()
        self.vlink.remove_device(peripheral.device)
        self.peripherals.remove(peripheral)

    async def start_central(self, address: str = CENTRAL_ADDRESS) -> FrameCentral:
        device = self.vlink.create_device("central", address)
        await device.power_on()
        central = FrameCentral(device, connect_timeout_s=3.0, gatt_timeout_s=3.0)
        if self.central is None:
            self.central = central
        return central

    async def connect(
        self, peripheral: LockPeripheral, central: FrameCentral | None = None
    ) -> FrameLink:
        central = central or self.central or await self.start_central()
        link = await central.connect(peripheral.lock.identity.device_id.colon, peripheral.maker)
        self.links.append(link)
        return link

    async def close(self) -> None:
        for link in self.links:
            await link.close()
        for peripheral in list(self.peripherals):
            await peripheral.stop()
        self.vlink.close()
        await asyncio.sleep(0)  # let bumble's call_soon callbacks of the unplug run


class EventQueue:
    """Collects a link's event notifications; await them with a timeout."""

    def __init__(self, link: FrameLink) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        link.add_listener(self.queue.put_nowait)

    async def next(self, timeout_s: float = 2.0) -> bytes:
        return await asyncio.wait_for(self.queue.get(), timeout_s)
