"""The HTTPS listener is an IPPROTO_TCP socket, so asyncio disables Nagle on each connection.

asyncio sets TCP_NODELAY on an accepted connection only when its socket's ``proto`` is
IPPROTO_TCP; ``socket.create_server`` leaves 0, and then every small response waited for
the client's delayed ACK (~40 ms per request on loopback, docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from heslock.ras.api import create_app
from heslock.ras.bootstrap import initialise
from heslock.ras.server import RasServer
from heslock.ras.settings import load_settings
from tests.integration.ras.conftest import CHEAP_ARGON2


async def test_accepted_https_connections_have_nagle_off(tmp_path: Path) -> None:
    settings = load_settings(
        {"data_dir": tmp_path / "data", "https_port": 0, **CHEAP_ARGON2}, env={}
    )
    await initialise(settings, "admin@localhost")
    server = RasServer(settings, create_app(settings))
    await server.start()
    try:
        listener = server._socket
        assert listener is not None
        assert listener.proto == socket.IPPROTO_TCP
        # What asyncio's transport sees: the socket accept() gives it, with the listener's
        # proto, on which it sets TCP_NODELAY (checked the way the kernel reports it).
        probe = socket.socket(listener.family, listener.type, listener.proto)
        probe.bind(("127.0.0.1", 0))
        probe.listen(1)
        with probe, socket.create_connection(probe.getsockname()) as _client:
            accepted, _ = probe.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP
                transport, _proto = await asyncio.get_running_loop().connect_accepted_socket(
                    asyncio.Protocol, accepted.dup()
                )
                try:
                    raw = transport.get_extra_info("socket")
                    assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
                finally:
                    transport.close()
    finally:
        await server.stop()
