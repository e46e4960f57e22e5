"""``heslock bsld sim``: N simulated locks on one BLE link, with a control socket.

A data directory holds one fleet of one maker::

    DATA_DIR/manufacturer.json   factory records (ids, factory keys): what the RAS imports
    DATA_DIR/manufacturer.csv    the same records as CSV
    DATA_DIR/locks/<ID>.json     one state file per lock (heslock.bsld.persist)
    DATA_DIR/ctl.sock            the control socket while the simulator runs

The first run draws ids and factory keys (heslock.bsld.manufacturer) and writes both
manufacturer files; later runs reload them and each lock's state file. Asking for more
locks than the file holds adds new records; asking for fewer runs the first N.

Control protocol (unix socket, mode 0600, one JSON object per line each way)::

    {"cmd": "status"}                                  -> {"ok": true, "locks": [...]}
    {"cmd": "press", "device": ID, "action": A, "value": V?}
                                                       -> {"ok": true, "lock": {...}}
    errors                                             -> {"ok": false, "error": "..."}

Actions (:data:`ACTIONS`): knob-lock, knob-unlock, door-open, door-close, jam, clear-jam,
tamper, battery (value: percent), replace-battery, factory-reset, registration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from heslock.ble.transport import LinkSpec, Radio, open_radio
from heslock.ble.virtual import VirtualLink
from heslock.bsld import manufacturer
from heslock.bsld.config import LockConfig
from heslock.bsld.lock import SimulatedLock
from heslock.bsld.manufacturer import FactoryRecord
from heslock.bsld.peripheral import DEFAULT_ADVERTISING_INTERVAL_MS, LockPeripheral
from heslock.errors import HeslockError, UsageError
from heslock.protocol import BoltState, DeviceId, InvalidDeviceId, Profile
from heslock.protocol.makers import MakerProfile

logger = logging.getLogger(__name__)

MANUFACTURER_JSON: Final = "manufacturer.json"
MANUFACTURER_CSV: Final = "manufacturer.csv"
CONTROL_SOCKET: Final = "ctl.sock"
#: A control request is one short JSON line; anything longer is refused.
MAX_CONTROL_LINE: Final = 4096
#: How long a control client waits for the simulator's answer.
CONTROL_TIMEOUT_S: Final = 5.0
#: AF_UNIX path limit on Linux (sun_path is 108 bytes including the NUL).
MAX_SOCKET_PATH: Final = 107
#: Simulated fleets are small: the link delivers every advertisement to every radio.
MAX_LOCKS: Final = 200

Action = Callable[[SimulatedLock, float, Any], None]


def _battery(lock: SimulatedLock, now: float, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError("battery needs a percent value 0..100")
    lock.set_battery(value, now)


#: Physical actions a person can take on a lock (``heslock bsld press``).
ACTIONS: Final[dict[str, Action]] = {
    "knob-lock": lambda lock, now, _: lock.turn_knob(BoltState.LOCKED, now),
    "knob-unlock": lambda lock, now, _: lock.turn_knob(BoltState.UNLOCKED, now),
    "door-open": lambda lock, now, _: lock.open_door(now),
    "door-close": lambda lock, now, _: lock.close_door(now),
    "jam": lambda lock, now, _: lock.jam(now),
    "clear-jam": lambda lock, now, _: lock.clear_jam(now),
    "tamper": lambda lock, now, _: lock.tamper(now),
    "battery": _battery,
    "replace-battery": lambda lock, now, _: lock.replace_battery(now),
    "factory-reset": lambda lock, now, _: lock.factory_reset(now),
    "registration": lambda lock, now, _: lock.press_registration_button(now),
}


class SimulatorUnreachable(UsageError):
    """No simulator answers on the data directory's control socket (exit code 5)."""

    exit_code = 5


@dataclass(frozen=True, slots=True)
class SimOptions:
    data_dir: Path
    maker: MakerProfile
    count: int
    profile: Profile
    link: LinkSpec
    config: LockConfig | None = None
    advertising_interval_ms: float = DEFAULT_ADVERTISING_INTERVAL_MS


def load_or_create_records(opts: SimOptions) -> list[FactoryRecord]:
    """The fleet's factory records: read DATA_DIR's manufacturer file, or create it."""
    if not 1 <= opts.count <= MAX_LOCKS:
        raise UsageError(f"--count is 1..{MAX_LOCKS}")
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    path = opts.data_dir / MANUFACTURER_JSON
    records = manufacturer.read_file(path) if path.exists() else []
    for record in records:
        if record.maker != opts.maker.name or record.profile is not opts.profile:
            raise UsageError(
                f"{opts.data_dir} holds {record.maker} locks in the {record.profile.value} "
                f"profile; use another --data-dir for {opts.maker.name}/{opts.profile.value}"
            )
    if len(records) < opts.count:
        records += manufacturer.generate(
            opts.count - len(records),
            opts.maker.name,
            opts.maker.models[0].name,
            profile=opts.profile,
            ble_version=opts.maker.ble_version.value,
            avoid=[r.device_id for r in records],
        )
        manufacturer.write_file(path, records)
        manufacturer.write_file(opts.data_dir / MANUFACTURER_CSV, records)
        logger.info("wrote %d factory records to %s (and .csv)", len(records), path)
    return records[: opts.count]


def lock_summary(peripheral: LockPeripheral, now: float) -> dict[str, Any]:
    status = peripheral.lock.status(now)
    return {
        "device": str(peripheral.lock.identity.device_id),
        "name": peripheral.name,
        "bound": status.bound,
        "bolt": status.bolt.name.lower(),
        "door": status.door.name.lower(),
        "battery": status.battery,
        "registration_open": status.registration_open,
        "locked_out": status.locked_out,
        "key_version": status.key_version,
        "connected": peripheral.central is not None,
        "problem": peripheral.lock.load_problem or peripheral.lock.persist_problem,
    }


class LockSimulator:
    """Runs the fleet of :class:`SimOptions` until :meth:`stop`."""

    def __init__(self, opts: SimOptions, *, local: VirtualLink | None = None) -> None:
        self.opts = opts
        self.local = local
        self.peripherals: dict[DeviceId, LockPeripheral] = {}
        self._radios: list[Radio] = []
        self._server: asyncio.Server | None = None
        self.socket_path = opts.data_dir / CONTROL_SOCKET

    async def start(self) -> None:
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            raise UsageError(f"--data-dir path too long for a unix socket: {self.socket_path}")
        records = load_or_create_records(self.opts)
        state_dir = self.opts.data_dir / "locks"
        state_dir.mkdir(exist_ok=True)
        try:
            for record in records:
                await self._start_lock(record, state_dir)
            await self._start_control()
        except BaseException:
            await self.stop()
            raise

    async def _start_lock(self, record: FactoryRecord, state_dir: Path) -> None:
        identity = record.identity()
        lock = SimulatedLock.load(
            identity, state_dir / f"{identity.device_id}.json", self.opts.config
        )
        radio = await open_radio(
            self.opts.link, identity.device_id.hex, identity.device_id.colon, local=self.local
        )
        self._radios.append(radio)
        peripheral = LockPeripheral(
            lock,
            self.opts.maker,
            radio.device,
            advertising_interval_ms=self.opts.advertising_interval_ms,
        )
        await peripheral.start()
        self.peripherals[identity.device_id] = peripheral

    async def _start_control(self) -> None:
        self.socket_path.unlink(missing_ok=True)  # a stale socket of a killed run
        self._server = await asyncio.start_unix_server(
            self._serve, str(self.socket_path), limit=MAX_CONTROL_LINE
        )
        self.socket_path.chmod(0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            self.socket_path.unlink(missing_ok=True)
        for peripheral in self.peripherals.values():
            await peripheral.stop()
        for radio in self._radios:
            await radio.close()
        self._radios.clear()

    # ------------------------------------------------------------------ control

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = self.handle_control(line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ValueError, ConnectionError) as exc:  # over-long line, client gone
            logger.info("control client dropped: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def handle_control(self, line: bytes) -> dict[str, Any]:
        """Answer one control request (never raises)."""
        try:
            return self._dispatch(json.loads(line))
        except json.JSONDecodeError:
            return {"ok": False, "error": "not JSON"}
        except HeslockError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception:  # a control request must never take the simulator down
            logger.exception("control request failed")
            return {"ok": False, "error": "internal error (see the simulator's log)"}

    def _dispatch(self, request: object) -> dict[str, Any]:
        if not isinstance(request, dict):
            raise UsageError("a request is a JSON object")
        now = time.time()
        cmd = request.get("cmd")
        if cmd == "status":
            return {"ok": True, "locks": [lock_summary(p, now) for p in self.peripherals.values()]}
        if cmd != "press":
            raise UsageError(f"unknown command {cmd!r}: status or press")
        try:
            device = DeviceId.parse(str(request.get("device", "")))
        except InvalidDeviceId as exc:
            raise UsageError(str(exc)) from None
        peripheral = self.peripherals.get(device)
        if peripheral is None:
            raise UsageError(f"no lock {device} in this simulator")
        name = request.get("action")
        action = ACTIONS.get(name) if isinstance(name, str) else None
        if action is None:
            raise UsageError(f"unknown action {name!r}: {', '.join(ACTIONS)}")
        value = request.get("value")
        peripheral.press(lambda t: action(peripheral.lock, t, value))
        return {"ok": True, "lock": lock_summary(peripheral, time.time())}


def control_request(data_dir: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Send one request to a running simulator (blocking client for the CLI)."""
    path = data_dir / CONTROL_SOCKET
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CONTROL_TIMEOUT_S)
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n") and len(data) <= MAX_CONTROL_LINE * 64:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise SimulatorUnreachable(
            f"no simulator running in {data_dir} ({exc.strerror or exc})"
        ) from None
    try:
        reply = json.loads(data)
    except json.JSONDecodeError:
        raise UsageError("the simulator sent an unreadable answer") from None
    if not isinstance(reply, dict):
        raise UsageError("the simulator sent an unreadable answer")
    return reply
