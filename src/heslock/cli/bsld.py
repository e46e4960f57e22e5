"""``heslock bsld``: the lock simulator (BSLD) and the BLE radio hub.

::

    heslock bsld hub [--host 127.0.0.1] [--port 17000 | --unix PATH] [--ready-file FILE]
    heslock bsld sim --count N --profile MAKER [--secure/--base] --data-dir DIR --link LINK
                     [--ready-file FILE]
    heslock bsld press --data-dir DIR --device ID ACTION [VALUE]
    heslock bsld status --data-dir DIR

LINK is ``local`` (in-process only: locks and nothing else on that link), ``hub:HOST:PORT`` (a
``heslock bsld hub`` on this machine: locks, gateway and client run as separate programs)
or a real HCI transport passed to bumble: ``usb:0``, ``hci-socket:0``,
``serial:/dev/ttyUSB0,1000000`` (documented, untested here: no radio hardware).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from heslock.ble.hub import DEFAULT_HUB_PORT, RadioHub
from heslock.ble.transport import LinkKind, LinkSpec
from heslock.ble.virtual import VirtualLink
from heslock.bsld.peripheral import DEFAULT_ADVERTISING_INTERVAL_MS
from heslock.bsld.sim import ACTIONS, LockSimulator, SimOptions, control_request
from heslock.cli.readyfile import remove_ready_file, write_ready_file
from heslock.errors import UsageError
from heslock.protocol import Profile
from heslock.protocol.makers import maker_by_name, makers

_MAKERS = ", ".join(m.name for m in makers())

ReadyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--ready-file",
        help="Once running, write where (and which locks) here as JSON (removed on stop).",
    ),
]

app = typer.Typer(
    help="The lock simulator (BSLD) on a real BLE stack, and the radio hub.",
    no_args_is_help=True,
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # bumble logs every HCI packet at DEBUG and warns about virtual-controller gaps.
    logging.getLogger("bumble").setLevel(logging.DEBUG if verbose else logging.ERROR)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@app.command()
def hub(
    host: Annotated[str, typer.Option(help="Interface to listen on (keep it loopback).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = DEFAULT_HUB_PORT,
    unix: Annotated[
        Path | None, typer.Option(help="Listen on this unix socket instead of TCP.")
    ] = None,
    ready_file: ReadyFileOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the radio hub: one virtual BLE link shared by locks, gateways and clients."""
    _setup_logging(verbose)

    async def run() -> None:
        radio_hub = RadioHub()
        if unix is not None:
            await radio_hub.start_unix(unix)
            where = f"hub:unix:{unix}"
        else:
            bound = await radio_hub.start_tcp(host, port)
            where = f"hub:{host}:{bound}"
        print(f"ready: --link {where}", flush=True)
        try:
            if ready_file is not None:
                write_ready_file(
                    ready_file,
                    "hub",
                    link=where,
                    host=None if unix is not None else host,
                    port=radio_hub.port,
                    unix=None if unix is None else str(unix),
                )
            await _until_signalled()
        finally:
            if ready_file is not None:
                remove_ready_file(ready_file)
            await radio_hub.close()

    asyncio.run(run())


@app.command()
def sim(
    profile: Annotated[str, typer.Option(help=f"Maker profile: {_MAKERS}.")],
    data_dir: Annotated[Path, typer.Option(help="Manufacturer file, state files, socket.")],
    count: Annotated[int, typer.Option(help="Number of locks.")] = 1,
    secure: Annotated[bool, typer.Option("--secure/--base", help="Frame profile.")] = True,
    link: Annotated[str, typer.Option(help="local | hub:HOST:PORT | usb:0 | hci-socket:0")] = (
        "local"
    ),
    advertising_interval_ms: Annotated[float, typer.Option(help="Advertising interval.")] = (
        DEFAULT_ADVERTISING_INTERVAL_MS
    ),
    ready_file: ReadyFileOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run N simulated locks of one maker until SIGINT/SIGTERM."""
    _setup_logging(verbose)
    spec = LinkSpec.parse(link)
    opts = SimOptions(
        data_dir=data_dir,
        maker=maker_by_name(profile),
        count=count,
        profile=Profile.SECURE if secure else Profile.BASE,
        link=spec,
        advertising_interval_ms=advertising_interval_ms,
    )

    async def run() -> None:
        local = VirtualLink() if spec.kind is LinkKind.LOCAL else None
        simulator = LockSimulator(opts, local=local)
        await simulator.start()
        ids = " ".join(str(d) for d in simulator.peripherals)
        print(f"ready: {len(simulator.peripherals)} {opts.maker.name} locks: {ids}", flush=True)
        try:
            if ready_file is not None:
                write_ready_file(
                    ready_file,
                    "sim",
                    maker=opts.maker.name,
                    profile=opts.profile.value,
                    link=link,
                    data_dir=str(data_dir.absolute()),
                    control_socket=str(simulator.socket_path.absolute()),
                    devices=[str(d) for d in simulator.peripherals],
                )
            await _until_signalled()
        finally:
            if ready_file is not None:
                remove_ready_file(ready_file)
            await simulator.stop()
            if local is not None:
                local.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@app.command()
def press(
    action: Annotated[str, typer.Argument(help="One of: " + ", ".join(ACTIONS))],
    data_dir: Annotated[Path, typer.Option(help="The running simulator's data directory.")],
    device: Annotated[str, typer.Option(help="The lock's device id.")],
    value: Annotated[int | None, typer.Argument(help="battery: the percent")] = None,
) -> None:
    """Press a button of a running simulated lock (knob, door, jam, battery, reset ...)."""
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r}: {', '.join(ACTIONS)}")
    request: dict[str, object] = {"cmd": "press", "device": device, "action": action}
    if value is not None:
        request["value"] = value
    reply = control_request(data_dir, request)
    if not reply.get("ok"):
        raise UsageError(str(reply.get("error", "refused")))
    print(json.dumps(reply["lock"]))


@app.command()
def status(
    data_dir: Annotated[Path, typer.Option(help="The running simulator's data directory.")],
) -> None:
    """Show the state of every lock of a running simulator (one JSON line each)."""
    reply = control_request(data_dir, {"cmd": "status"})
    if not reply.get("ok"):
        raise UsageError(str(reply.get("error", "refused")))
    for lock in reply["locks"]:
        print(json.dumps(lock))
