"""``heslock ras serve`` as a real process: HTTPS and the XMPP endpoint for gateways,
both up, both closed on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

HESLOCK = str(Path(sys.executable).parent / "heslock")
START_TIMEOUT_S = 30
CHEAP_ENV = {
    "HESLOCK_ARGON2_TIME_COST": "1",
    "HESLOCK_ARGON2_MEMORY_COST": "64",
    "HESLOCK_ARGON2_PARALLELISM": "1",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HESLOCK_")}
    return {**env, **CHEAP_ENV}


async def _read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        chunk = await asyncio.wait_for(reader.read(4096), START_TIMEOUT_S)
        if not chunk:
            break
        seen += chunk
    return seen


async def test_serve_runs_the_relay_next_to_https_and_stops_both(tmp_path: Path) -> None:
    data = tmp_path / "ras"
    init = await asyncio.create_subprocess_exec(
        HESLOCK, "ras", "init", "--data-dir", str(data), env=_env(),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(init.communicate(), 60)
    assert init.returncode == 0, err
    proc = await asyncio.create_subprocess_exec(
        HESLOCK, "ras", "serve", "--data-dir", str(data), "--port", "0", "--xmpp-port", "0",
        "--xmpp-direct-tls-port", "0",
        env=_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        https = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        assert b"listening on https://" in https, https
        xmpp = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        assert b"gateways (XMPP, STARTTLS) on 127.0.0.1:" in xmpp, xmpp
        port = int(xmpp.decode().strip().rsplit(":", 1)[1])
        # An RFC 6120 stream in the clear: the features offer STARTTLS.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
                b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
            )
            await writer.drain()
            features = await _read_until(reader, b"</stream:features>")
            assert b"urn:ietf:params:xml:ns:xmpp-tls" in features
            proc.send_signal(signal.SIGTERM)
            # The relay closes the open stream as RFC 6120 4.9.3.20 says, before exiting.
            closing = await _read_until(reader, b"</stream:stream>")
            assert b"system-shutdown" in closing, closing
        finally:
            writer.close()
        # uvicorn re-raises the SIGTERM it handled once everything has shut down.
        assert await asyncio.wait_for(proc.wait(), START_TIMEOUT_S) == -signal.SIGTERM
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
