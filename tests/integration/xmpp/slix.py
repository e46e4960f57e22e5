"""slixmpp (the BGW's library) as a test client of the XMPP endpoint.

FIELD-NOTES: set ``enable_direct_tls``/``enable_starttls`` explicitly; it never reconnects
by itself; disconnect it cleanly so no asyncio task is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from slixmpp import ClientXMPP

TIMEOUT = 10.0


async def login(
    port: int,
    jid: str,
    password: str,
    ca: Path,
    direct_tls: bool = False,
    plugins: tuple[str, ...] = ("xep_0199",),
) -> Any:
    """A slixmpp client logged in and bound (``session_start`` seen)."""
    client = ClientXMPP(jid, password)
    for plugin in plugins:
        client.register_plugin(plugin)
    client.enable_direct_tls = direct_tls
    client.enable_starttls = not direct_tls
    client.enable_plaintext = False
    client.ca_certs = ca
    started = asyncio.ensure_future(client.wait_until("session_start", TIMEOUT))
    client.connect("127.0.0.1", port)
    try:
        await started
    except BaseException:
        await close(client)
        raise
    return client


async def close(client: Any) -> None:
    """Disconnect cleanly and wait until slixmpp's own tasks are done."""
    if client.transport is not None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(client.disconnect(wait=TIMEOUT), TIMEOUT)
    client.cancel_connection_attempt()
    await drain(client)


async def drain(client: Any) -> None:
    """Finish slixmpp's own background task (its outgoing filter loop)."""
    for name in ("_run_out_filters",):
        task = getattr(client, name, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
