"""``heslock bgw``: the Bluetooth gateway (BGW).

::

    heslock bgw run --config FILE [--ready-file FILE] [--verbose]

FILE is the TOML file of :mod:`heslock.bgw.config`. The gateway runs until SIGINT/SIGTERM;
a RAS certificate that does not verify against the configured CA ends it with exit code 5
(unreachable) and one line saying so. ``--ready-file`` is written once the gateway is first
online at the RAS (heslock.cli.readyfile): a supervisor's "the gateway is up".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from heslock.bgw import Gateway, TlsVerificationFailed, load_config
from heslock.cli.readyfile import ReadyFileError, remove_ready_file, write_ready_file

EXIT_UNREACHABLE = 5
#: How long one wait for the first session lasts before waiting again (no deadline: the
#: gateway keeps retrying the RAS on its own schedule; this only bounds each wait_for).
_ONLINE_WAIT_S = 3600.0

app = typer.Typer(help="The Bluetooth gateway (BGW): BLE locks <-> RAS over XMPP.")


class GatewayUnreachable(TlsVerificationFailed):
    exit_code = EXIT_UNREACHABLE


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("bumble").setLevel(logging.DEBUG if verbose else logging.ERROR)
    logging.getLogger("slixmpp").setLevel(logging.DEBUG if verbose else logging.WARNING)


@app.callback()
def _group() -> None:
    """The Bluetooth gateway (BGW)."""


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="The gateway's TOML file.")],
    ready_file: Annotated[
        Path | None,
        typer.Option(
            "--ready-file",
            help="Once first online at the RAS, write the gateway's JID here as JSON.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    settings = load_config(config)  # GatewayConfigError is a UsageError: exit 2
    _setup_logging(verbose)

    async def announce(gateway: Gateway, path: Path) -> None:
        while True:
            try:
                await gateway.ras.wait_online(_ONLINE_WAIT_S)
                break
            except TimeoutError:
                continue
        try:
            write_ready_file(
                path,
                "bgw",
                jid=settings.ras.jid.full,
                ras=f"{settings.ras.host}:{settings.ras.port}",
                link=str(settings.ble.link),
                online=True,
            )
        except ReadyFileError:
            gateway.ras.stop()  # a supervisor would wait for it forever: stop, exit 2
            raise

    async def main() -> None:
        gateway = Gateway(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, gateway.ras.stop)
        announcer = None
        if ready_file is not None:
            announcer = asyncio.create_task(announce(gateway, ready_file), name="bgw-ready")
        try:
            await gateway.run()
        except TlsVerificationFailed as exc:
            raise GatewayUnreachable(str(exc)) from None
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
            if announcer is not None and ready_file is not None:
                announcer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await announcer  # re-raises a ReadyFileError
                remove_ready_file(ready_file)

    asyncio.run(main())
