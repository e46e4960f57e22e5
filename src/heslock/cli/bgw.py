"""``heslock bgw``: the Bluetooth gateway (BGW).

::

    heslock bgw run --config FILE [--verbose]

FILE is the TOML file of :mod:`heslock.bgw.config`. The gateway runs until SIGINT/SIGTERM;
a RAS certificate that does not verify against the configured CA ends it with exit code 5
(unreachable) and one line saying so.
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

EXIT_UNREACHABLE = 5

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
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    settings = load_config(config)  # GatewayConfigError is a UsageError: exit 2
    _setup_logging(verbose)

    async def main() -> None:
        gateway = Gateway(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, gateway.ras.stop)
        try:
            await gateway.run()
        except TlsVerificationFailed as exc:
            raise GatewayUnreachable(str(exc)) from None
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)

    asyncio.run(main())
