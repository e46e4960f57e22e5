"""``python -m bench.lockfarm CONFIG.json``: one BGW and N simulated locks in one process.

The far end of the end-to-end benchmark (bench/suite/e2e_commands.py): a real
:class:`heslock.bgw.Gateway` (slixmpp to the RAS over STARTTLS + SCRAM, bumble central)
and N :class:`heslock.bsld.SimulatedLock` peripherals on one in-process bumble
``VirtualLink``, as a site with one gateway in radio range of every lock. It runs in its
own process so that the RAS and the load generator each have theirs.

CONFIG.json (written by the benchmark; the gateway secret is in a separate 0600 file)::

    {"ras_host": "127.0.0.1", "ras_port": 5222, "ca_file": "...", "jid": "...",
     "secret_file": "...", "records": "factory.json", "radio": "C0:...",
     "advertising_interval_ms": 100, "max_links": 50, "ready_timeout_s": 60}

Control, one JSON object per line (stdout answers stdin, in order):

- printed once ready (the gateway is online at the RAS and its scan table holds every
  lock): ``{"ready": true, "locks": ["<hex id>", ...]}``;
- ``{"op": "stats"}`` -> ``{"handle_us": [...], "ble_us": [...], "lock_us": [...]}``: the
  durations since the previous ``stats``, in microseconds, of each frame request the
  gateway served (IQ payload in -> answer payload out), of each BLE exchange (GATT write
  -> the lock's notification) and of the lock's own work on a frame (open, check, act,
  seal);
- end of input: stop everything cleanly and exit 0.

Timing hooks wrap three methods of this process only (instrumentation of the benchmark's
own gateway, never of the code under test elsewhere); each adds two ``perf_counter_ns``
calls per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from heslock.bgw import Gateway
from heslock.bgw.config import BleSettings, GatewayConfig, RasSettings, TlsMode
from heslock.ble import central
from heslock.ble.transport import LinkSpec
from heslock.ble.virtual import VirtualLink
from heslock.bsld import SimulatedLock
from heslock.bsld.manufacturer import loads
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol.ids import DeviceId
from heslock.protocol.makers import maker_by_name
from heslock.xmpp import Jid

#: How often readiness is checked while waiting for the gateway and its scan table.
READY_POLL_S: Final = 0.05

T = TypeVar("T")


@dataclass
class Timings:
    """Durations in microseconds, collected until the next ``stats`` request."""

    handle_us: list[int] = field(default_factory=list)
    ble_us: list[int] = field(default_factory=list)
    lock_us: list[int] = field(default_factory=list)

    def take(self) -> dict[str, list[int]]:
        taken = {"handle_us": self.handle_us, "ble_us": self.ble_us, "lock_us": self.lock_us}
        self.handle_us, self.ble_us, self.lock_us = [], [], []
        return taken


TIMINGS = Timings()


def _timed_async(
    function: Callable[..., Awaitable[T]], sink: Callable[[], list[int]]
) -> Callable[..., Awaitable[T]]:
    async def timed(*args: Any, **kwargs: Any) -> T:
        start = time.perf_counter_ns()
        try:
            return await function(*args, **kwargs)
        finally:
            sink().append((time.perf_counter_ns() - start) // 1000)

    return timed


def install_timing_hooks(gateway: Gateway) -> None:
    """Time the gateway's frame handler, each BLE exchange and the locks' frame work."""
    gateway.ras.frame_handler = _timed_async(gateway.ras.frame_handler, lambda: TIMINGS.handle_us)
    request = central.FrameLink.request
    central.FrameLink.request = _timed_async(request, lambda: TIMINGS.ble_us)  # type: ignore[method-assign,assignment]
    handle = SimulatedLock.handle_frame

    def timed_handle(self: SimulatedLock, wire: bytes, host_time: float) -> bytes:
        start = time.perf_counter_ns()
        try:
            return handle(self, wire, host_time)
        finally:
            TIMINGS.lock_us.append((time.perf_counter_ns() - start) // 1000)

    SimulatedLock.handle_frame = timed_handle  # type: ignore[method-assign]


def gateway_config(config: dict[str, Any], secret: str, locks: int) -> GatewayConfig:
    return GatewayConfig(
        RasSettings(
            host=config["ras_host"],
            port=int(config["ras_port"]),
            tls=TlsMode.STARTTLS,
            ca_file=Path(config["ca_file"]),
            jid=Jid.parse(config["jid"]),
            secret=secret,
            keepalive_s=60.0,
            reconnect_min_s=0.1,
            reconnect_max_s=1.0,
        ),
        BleSettings(
            link=LinkSpec.parse("local"),
            address=config["radio"],
            max_links=max(1, int(config.get("max_links", locks))),
            idle_link_timeout_s=300.0,
            scan_interval_s=1.0,
            lost_after_s=10.0,
            report_interval_s=60.0,
        ),
    )


async def start_locks(
    vlink: VirtualLink, records: bytes, advertising_interval_ms: float
) -> list[LockPeripheral]:
    peripherals: list[LockPeripheral] = []
    for record in loads(records, "json"):
        maker = maker_by_name(record.maker)
        lock = SimulatedLock(record.identity())
        device = vlink.create_device(record.maker, record.device_id.colon)
        peripheral = LockPeripheral(
            lock, maker, device, advertising_interval_ms=advertising_interval_ms
        )
        peripherals.append(peripheral)
        await peripheral.start()
        peripheral.press(lock.press_registration_button)
    return peripherals


async def wait_ready(gateway: Gateway, locks: set[DeviceId], timeout_s: float) -> None:
    """Until the gateway is online and its scan table holds every lock (or TimeoutError)."""
    await gateway.ras.wait_online(timeout_s)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        assert gateway.scanner is not None
        seen = {s.device_id for s in gateway.scanner.sightings()}
        if locks <= seen:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"the gateway sees {len(seen & locks)} of {len(locks)} locks")
        await asyncio.sleep(READY_POLL_S)


def emit(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


async def serve_control(gateway: Gateway) -> None:
    """Answer control lines from stdin until it closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        request = json.loads(line)
        op = request.get("op")
        if op == "stats":
            emit(TIMINGS.take())
        else:
            emit({"error": f"unknown op {op!r}"})


async def main(config: dict[str, Any], records: bytes, secret: str) -> None:
    vlink = VirtualLink()
    peripherals: list[LockPeripheral] = []
    gateway: Gateway | None = None
    try:
        peripherals = await start_locks(
            vlink, records, float(config.get("advertising_interval_ms", 100.0))
        )
        locks = {p.lock.identity.device_id for p in peripherals}
        gateway = Gateway(gateway_config(config, secret, len(peripherals)), local=vlink)
        install_timing_hooks(gateway)
        await gateway.start()
        await wait_ready(gateway, locks, float(config.get("ready_timeout_s", 60.0)))
        emit({"ready": True, "locks": sorted(d.hex for d in locks)})
        await serve_control(gateway)
    finally:
        if gateway is not None:
            await gateway.stop()
        for peripheral in peripherals:
            await peripheral.stop()
        vlink.close()
        await asyncio.sleep(0)  # bumble's call_soon callbacks of the unplug


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.lockfarm CONFIG.json")
    settings = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    factory = Path(settings["records"]).read_bytes()
    gateway_secret = Path(settings["secret_file"]).read_text(encoding="utf-8").strip()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(settings, factory, gateway_secret))
