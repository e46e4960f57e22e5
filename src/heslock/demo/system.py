"""The demo system: RAS, radio hub, three simulated locks and gateways, as processes.

:class:`DemoSystem` starts what a small deployment runs, each as its own ``heslock``
process on loopback, on the embedded defaults (SQLite, the self-generated CA, the virtual
BLE link through ``heslock bsld hub``)::

    heslock ras init   --data-dir DATA/ras                      (one shot: DB, keys, CA)
    heslock bsld hub   --port 0                                 -> hub:127.0.0.1:PORT
    heslock ras serve  --data-dir DATA/ras --port 0 --xmpp-port 0 --xmpp-direct-tls-port 0
    heslock bsld sim   --profile acme     --data-dir DATA/sim/acme     --link hub:...
    heslock bsld sim   --profile keystone --data-dir DATA/sim/keystone --link hub:...
    heslock bsld sim   --profile lumen    --data-dir DATA/sim/lumen    --link hub:...
    heslock bgw run    --config DATA/bgw/1/gateway.toml              (start_gateway)

Every port is chosen by the child binding port 0 and reported in its ``--ready-file``
(heslock.cli.readyfile), never picked here and handed over (another program could take
it in between). Readiness is the ready file naming the child's PID, with a deadline; a
child that exits first is reported at once with the end of its log
(:mod:`heslock.demo.children`).

The locks' factory records are drawn here, as their makers would
(:func:`heslock.bsld.manufacturer.generate`: random ids, random factory keys), written
into each simulator's directory (``manufacturer.json``, which ``bsld sim`` then uses) and
into ``DATA/factory-records.json``, the file :meth:`DemoSystem.import_devices` hands to
``heslock ras devices import`` as an operator would. Each lock's registration button is
pressed once all are up (``open_registration``): the window stays open 15 minutes.

Data directory (0700)::

    DATA/ras/                 the RAS's own data directory (outbox.jsonl: one-time codes)
    DATA/sim/<maker>/         one simulator: manufacturer.json, locks/, ctl.sock
    DATA/bgw/<n>/             one gateway: gateway.toml, gateway.secret (0600)
    DATA/factory-records.json the three locks' records (holds factory keys: 0600)
    DATA/run/<child>.json     ready files
    DATA/logs/<child>.log     every child's stdout and stderr

:meth:`DemoSystem.stop` (also on a failed start, also when cancelled) stops every child
by PID: gateways first (they would otherwise reconnect to a RAS going away), then the
rest together; SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from heslock.bsld import manufacturer
from heslock.bsld.manufacturer import FactoryRecord
from heslock.bsld.sim import (
    ACTIONS,
    CONTROL_SOCKET,
    MANUFACTURER_JSON,
    MAX_SOCKET_PATH,
    control_request,
)
from heslock.demo.children import (
    STOP_GRACE_S,
    Child,
    DemoError,
    child_environment,
    spawn,
    stop_all,
)
from heslock.protocol import DeviceId, InvalidDeviceId
from heslock.protocol.makers import makers

#: Each start-up phase (a fresh interpreter imports bumble or FastAPI: seconds on a busy
#: 2-core machine; the RAS's first argon2 hash at init).
START_TIMEOUT_S: Final = 60.0
#: One-shot helpers (import, a button press).
STEP_TIMEOUT_S: Final = 30.0
#: Files the demo's own start-up leaves in an otherwise empty data directory.
MARKER: Final = ".heslock-demo"
LOCK_FILE: Final = ".heslock-demo.lock"
FACTORY_RECORDS: Final = "factory-records.json"
#: The gateways' radios: LE random static addresses (top two bits set), one per gateway.
GATEWAY_ADDRESS: Final = "C0:FF:EE:00:00:{:02X}"
#: The radio hub child's name (stopped last).
HUB: Final = "hub"
#: "knob": turn the knob to the other position (what a person at the door does).
KNOB: Final = "knob"


@dataclass(frozen=True)
class DemoLock:
    """One simulated lock of the demo."""

    device_id: str
    maker: str
    model: str
    _: KW_ONLY
    ble_version: str
    #: The simulator's data directory (``heslock bsld press --data-dir``).
    sim_dir: Path


@dataclass(frozen=True)
class DemoGateway:
    """A running ``heslock bgw run`` of the demo (its secret stays in its 0600 file)."""

    jid: str
    config: Path
    address: str
    pid: int


@dataclass
class _Addresses:
    https_url: str = ""
    ca_file: Path = field(default_factory=Path)
    hub: str = ""
    xmpp_host: str = ""
    xmpp_direct_tls_port: int = 0


class DemoSystem:
    """RAS, hub and three simulated locks as processes (module docstring).

    ``env`` adds variables to the children's environment, which otherwise is this
    process's without any ``HESLOCK_*`` setting (heslock.demo.children); tests use it for
    cheaper password hashing. ``timeout_s`` bounds each start-up phase.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        timeout_s: float = START_TIMEOUT_S,
        open_registration: bool = True,
        stop_grace_s: float = STOP_GRACE_S,
    ) -> None:
        self.data_dir = data_dir.absolute()
        self.env = child_environment(env)
        # Third-party apps on this computer (examples/rental_host) get webhooks over plain
        # http on loopback: the demo's RAS allows it (a real RAS wants https).
        self.env.setdefault("HESLOCK_WEBHOOKS_ALLOW_INSECURE_LOOPBACK", "true")
        self.timeout_s = timeout_s
        self.open_registration = open_registration
        self.stop_grace_s = stop_grace_s
        self.locks: list[DemoLock] = []
        self.gateways: list[DemoGateway] = []
        self.admin_login = ""
        self._admin_password = ""
        self._at = _Addresses()
        self._children: list[Child] = []
        self._gateway_children: list[Child] = []
        self._started = False

    # ------------------------------------------------------------------ addresses

    @property
    def https_url(self) -> str:
        """``https://127.0.0.1:PORT``: the RAS API (OpenAPI page at ``/docs``)."""
        return self._at.https_url

    @property
    def ca_file(self) -> Path:
        """The RAS's self-generated CA: what clients and gateways trust."""
        return self._at.ca_file

    @property
    def hub(self) -> str:
        """``hub:127.0.0.1:PORT``: the radio link string of the shared virtual medium."""
        return self._at.hub

    @property
    def xmpp(self) -> tuple[str, int]:
        """Where gateways log in (host, direct-TLS port)."""
        return self._at.xmpp_host, self._at.xmpp_direct_tls_port

    @property
    def ras_data_dir(self) -> Path:
        return self.data_dir / "ras"

    @property
    def factory_records(self) -> Path:
        """The three locks' factory records (heslock-factory-records JSON, 0600)."""
        return self.data_dir / FACTORY_RECORDS

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def admin_password(self) -> str:
        """The first administrator's password ``ras init`` printed (never logged)."""
        return self._admin_password

    @property
    def children(self) -> list[Child]:
        """Every child started so far (running or not): what :meth:`stop` stops."""
        return [*self._children, *self._gateway_children]

    def lock(self, device_id: str) -> DemoLock:
        """The demo lock with this device id (any accepted spelling)."""
        try:
            wanted = str(DeviceId.parse(device_id))
        except InvalidDeviceId as exc:
            raise DemoError(str(exc)) from None
        for lock in self.locks:
            if lock.device_id == wanted:
                return lock
        raise DemoError(f"no demo lock {device_id}")

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> DemoSystem:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start RAS, hub and locks; return once all are ready (stops all on failure)."""
        if self._started:
            raise DemoError("this demo system was already started")
        self._started = True
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self._prepare_directory()
        records = self._write_factory_records()
        init = await self._spawn(
            "ras-init", ["ras", "init", "--data-dir", str(self.ras_data_dir)], stdout_pipe=True
        )
        hub = await self._spawn(HUB, ["bsld", "hub", "--port", "0"], ready=True)
        init_output, hub_ready = await _together(
            init.wait_exit(self.timeout_s), hub.wait_ready(self.timeout_s)
        )
        self._read_init_output(init_output)
        self._at.hub = str(hub_ready["link"])

        any_port = ("--port", "0", "--xmpp-port", "0", "--xmpp-direct-tls-port", "0")
        ras = await self._spawn(
            "ras", ["ras", "serve", "--data-dir", str(self.ras_data_dir), *any_port], ready=True
        )
        sims = [
            await self._spawn(
                f"lock-{lock.maker}",
                [*_sim_args(lock), "--link", self.hub],
                ready=True,
            )
            for lock in self.locks
        ]
        ras_ready, *sims_ready = await _together(
            ras.wait_ready(self.timeout_s), *(sim.wait_ready(self.timeout_s) for sim in sims)
        )
        self._at.https_url = str(ras_ready["https_url"])
        self._at.ca_file = Path(str(ras_ready["ca_file"]))
        self._at.xmpp_host = str(ras_ready["xmpp_host"])
        self._at.xmpp_direct_tls_port = int(ras_ready["xmpp_direct_tls_port"])
        for lock, ready in zip(self.locks, sims_ready, strict=True):
            if ready.get("devices") != [lock.device_id]:
                raise DemoError(
                    f"the {lock.maker} simulator runs {ready.get('devices')}, "
                    f"not the lock {lock.device_id} of {records}"
                )
        if self.open_registration:
            await _together(*(self._control(lock, "registration") for lock in self.locks))

    async def stop(self) -> None:
        """Stop every child; safe to call again, and after a failure.

        In three tiers: gateways (else they retry a RAS that is going away), then the
        RAS and the locks together, then the hub last (a radio whose hub vanished first
        waits out an HCI timeout before it can close).
        """
        hubs = [child for child in self._children if child.name == HUB]
        others = [child for child in self._children if child.name != HUB]
        for tier in (self._gateway_children, others, hubs):
            await stop_all(tier, self.stop_grace_s)

    async def wait_any_exit(self) -> Child:
        """Wait until any running child exits (it should not: the caller reports it)."""
        running = [child for child in self.children if child.running]
        if not running:
            raise DemoError("no part of the demo system is running")
        waits = {asyncio.ensure_future(child.process.wait()): child for child in running}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return waits[next(iter(done))]

    # ------------------------------------------------------------------ operations

    async def import_devices(self) -> str:
        """Import the locks' factory records with ``heslock ras devices import``."""
        output = await self._run_once(
            "devices-import",
            [
                "ras",
                "devices",
                "import",
                str(self.factory_records),
                "--data-dir",
                str(self.ras_data_dir),
            ],
        )
        return output.strip()

    async def latest_code(self, contact: str, *, purpose: str | None = None) -> str:
        """The newest one-time code sent to ``contact`` (read from the dev outbox).

        ``purpose`` narrows it (``verify_contact``, ``login``, ...). Codes are written
        before the request that sends them is answered, so no wait is needed.
        """
        from heslock.ras.services.errors import InvalidInput  # noqa: PLC0415
        from heslock.ras.services.udms.contacts import normalise  # noqa: PLC0415
        from heslock.ras.services.udms.outbox import read_entries  # noqa: PLC0415
        from heslock.ras.services.udms.senders import OUTBOX_NAME  # noqa: PLC0415
        from heslock.ras.store.models import ContactKind  # noqa: PLC0415

        kind = ContactKind.EMAIL if "@" in contact else ContactKind.PHONE
        try:
            address = normalise(kind, contact)
        except InvalidInput as exc:
            raise DemoError(f"{contact!r} is not a contact: {exc}") from None
        path = self.ras_data_dir / OUTBOX_NAME
        entries = await asyncio.to_thread(lambda: list(read_entries(path)))
        codes = [
            str(entry["code"])
            for entry in entries
            if entry.get("to") == address
            and "code" in entry
            and (purpose is None or entry.get("purpose") == purpose)
        ]
        if not codes:
            what = f" for {purpose}" if purpose else ""
            raise DemoError(f"no code{what} sent to {address} in {path}")
        return codes[-1]

    async def start_gateway(self, jid: str, secret: str) -> DemoGateway:
        """Write a gateway config, run ``heslock bgw run``; return once it is online."""
        if not self.https_url:
            raise DemoError("start the demo system before a gateway")
        number = len(self._gateway_children) + 1  # a failed start keeps its number
        directory = self.data_dir / "bgw" / str(number)
        directory.mkdir(mode=0o700)
        secret_file = directory / "gateway.secret"
        _write_private(secret_file, secret.encode() + b"\n")
        address = GATEWAY_ADDRESS.format(number)
        config = directory / "gateway.toml"
        host, port = self.xmpp
        _write_private(
            config,
            _gateway_toml(
                host=host,
                port=port,
                ca_file=self.ca_file,
                jid=jid,
                secret_file=secret_file,
                link=self.hub,
                address=address,
            ).encode(),
        )
        child = await self._spawn(
            f"gateway-{number}", ["bgw", "run", "--config", str(config)], ready=True, gateway=True
        )
        await child.wait_ready(self.timeout_s)
        gateway = DemoGateway(jid=jid, config=config, address=address, pid=child.pid)
        self.gateways.append(gateway)
        return gateway

    async def press(
        self, device_id: str, action: str = KNOB, value: int | None = None
    ) -> dict[str, Any]:
        """A person at the lock: ``heslock bsld press`` (``knob``: turn it over).

        Returns the lock's state after the press (the command's JSON line).
        """
        lock = self.lock(device_id)
        if action == KNOB:
            bolt = (await self.lock_status(lock.device_id))["bolt"]
            action = "knob-lock" if bolt == "unlocked" else "knob-unlock"
        if action not in ACTIONS:
            raise DemoError(f"unknown action {action!r}: {KNOB}, {', '.join(ACTIONS)}")
        args = ["bsld", "press", action, "--data-dir", str(lock.sim_dir)]
        args += ["--device", lock.device_id]
        if value is not None:
            args.append(str(value))
        state = json.loads(await self._run_once("press", args))
        if not isinstance(state, dict):
            raise DemoError(f"heslock bsld press answered {state!r}, not the lock's state")
        return state

    async def lock_status(self, device_id: str) -> dict[str, Any]:
        """The simulated lock's own state (bolt, door, battery, bound ...)."""
        lock = self.lock(device_id)
        reply = await self._request(lock, {"cmd": "status"})
        for entry in reply["locks"]:
            if entry.get("device") == lock.device_id:
                return dict(entry)
        raise DemoError(f"the {lock.maker} simulator does not report {lock.device_id}")

    # ------------------------------------------------------------------ internals

    def _prepare_directory(self) -> None:
        allowed = {MARKER, LOCK_FILE}
        if self.data_dir.exists() and {p.name for p in self.data_dir.iterdir()} - allowed:
            raise DemoError(f"{self.data_dir} is not empty: the demo needs a fresh directory")
        longest = self.data_dir / "sim" / max((m.name for m in makers()), key=len) / CONTROL_SOCKET
        if len(str(longest)) > MAX_SOCKET_PATH:
            raise DemoError(
                f"{self.data_dir} is too long a path for the simulators' unix sockets "
                f"({len(str(longest))} > {MAX_SOCKET_PATH} bytes): choose a shorter --data-dir"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.data_dir / MARKER).touch()
        for sub in ("logs", "run", "sim", "bgw"):
            (self.data_dir / sub).mkdir(mode=0o700)

    def _write_factory_records(self) -> Path:
        """One lock per maker: draw its record, write it where sim and import read it."""
        records: list[FactoryRecord] = []
        for maker in makers():
            model = maker.models[0].name
            ble = maker.ble_version.value
            record = manufacturer.generate(
                1, maker.name, model, ble_version=ble, avoid=[r.device_id for r in records]
            )[0]
            sim_dir = self.data_dir / "sim" / maker.name
            sim_dir.mkdir(mode=0o700)
            manufacturer.write_file(sim_dir / MANUFACTURER_JSON, [record])
            records.append(record)
            self.locks.append(
                DemoLock(str(record.device_id), maker.name, model, ble_version=ble, sim_dir=sim_dir)
            )
        manufacturer.write_file(self.factory_records, records)
        return self.factory_records

    def _read_init_output(self, output: str) -> None:
        """``ras init`` prints the administrator's login and one-time password."""
        for line in output.splitlines():
            key, _, value = line.strip().partition(" ")
            if key == "administrator":
                self.admin_login = value.strip()
            elif key == "password":
                self._admin_password = value.strip()

    async def _spawn(
        self,
        name: str,
        args: list[str],
        *,
        ready: bool = False,
        stdout_pipe: bool = False,
        gateway: bool = False,
    ) -> Child:
        """Start a child and record it for :meth:`stop` even if cancelled meanwhile."""
        ready_file = self.data_dir / "run" / f"{name}.json" if ready else None
        starting = asyncio.ensure_future(
            spawn(
                name,
                args,
                log_dir=self.logs,
                env=self.env,
                ready_file=ready_file,
                stdout_pipe=stdout_pipe,
            )
        )
        bucket = self._gateway_children if gateway else self._children
        try:
            child = await asyncio.shield(starting)
        except asyncio.CancelledError:
            bucket.append(await starting)  # it may have forked: record it, go on cancelling
            raise
        bucket.append(child)
        return child

    async def _run_once(self, name: str, args: list[str]) -> str:
        """A one-shot child (import, press): its stdout once it exited 0."""
        child = await self._spawn(name, args, stdout_pipe=True)
        output = await child.wait_exit(STEP_TIMEOUT_S)
        self._children.remove(child)  # reaped: nothing left to stop
        return output

    async def _control(self, lock: DemoLock, action: str) -> None:
        await self._request(lock, {"cmd": "press", "device": lock.device_id, "action": action})

    async def _request(self, lock: DemoLock, request: dict[str, Any]) -> dict[str, Any]:
        """One request on the simulator's control socket (heslock.bsld.sim)."""
        reply = await asyncio.to_thread(control_request, lock.sim_dir, request)
        if not reply.get("ok"):
            raise DemoError(f"the {lock.maker} simulator refused: {reply.get('error')}")
        return reply


def _sim_args(lock: DemoLock) -> list[str]:
    return ["bsld", "sim", "--profile", lock.maker, "--count", "1", "--data-dir", str(lock.sim_dir)]


def _write_private(path: Path, data: bytes) -> None:
    """A new file, mode 0600 from the start (it may hold a secret or factory keys)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's escaping is a subset TOML accepts)."""
    return json.dumps(value)


def _gateway_toml(
    *,
    host: str,
    port: int,
    ca_file: Path,
    jid: str,
    secret_file: Path,
    link: str,
    address: str,
) -> str:
    """The gateway's config file (heslock.bgw.config), as an installer would write it."""
    return (
        f"# written by heslock demo at {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        "[ras]\n"
        f"host = {_toml_string(host)}\n"
        f"port = {port}\n"
        'tls = "direct"\n'
        f"ca_file = {_toml_string(str(ca_file))}\n"
        f"jid = {_toml_string(jid)}\n"
        f"secret_file = {_toml_string(str(secret_file))}\n"
        "\n[ble]\n"
        f"link = {_toml_string(link)}\n"
        f"address = {_toml_string(address)}\n"
    )


async def _together(*steps: Awaitable[Any]) -> list[Any]:
    """Run ``steps`` concurrently; the first failure cancels the rest and is raised alone."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_awaited(step)) for step in steps]
    except ExceptionGroup as group_error:
        demo_errors = [e for e in group_error.exceptions if isinstance(e, DemoError)]
        raise (demo_errors or group_error.exceptions)[0] from None
    return [task.result() for task in tasks]


async def _awaited(step: Awaitable[Any]) -> Any:
    return await step
