"""The radio hub: one virtual BLE medium shared by several processes on one machine.

bumble removed its link relay (``RemoteLink``), so locks, gateway and client running as
separate programs meet here instead (FIELD-NOTES.md, bumble): the hub process owns one
:class:`~bumble.link.LocalLink` and listens on TCP (``127.0.0.1`` only by default) or on a
unix socket. Every accepted connection is one radio: the hub gives it a FRESH virtual
controller on the link and speaks HCI (H4 framing) over the socket, so the client builds a
normal ``Device.with_hci(...)`` on a ``tcp-client:`` / ``unix:`` transport
(:func:`heslock.ble.transport.open_radio` with ``hub:HOST:PORT``).

Two traps handled here:

- the virtual controller ignores HCI Reset, so a restarted host on a reused controller
  would inherit stale connections: each accepted socket gets a new controller, never a
  reused one;
- nothing emulates the supervision timeout, so when a radio's socket closes the hub tells
  every peer connected to it (LL_TERMINATE_IND, reason "connection timeout"), as a real
  peer would learn when the radio went silent; its advertising stops at once.

The hub trusts its clients (any local process may open a radio): bind it to loopback or a
unix socket with restrictive permissions, never to a public interface.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from pathlib import Path
from typing import Final

from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport.common import StreamPacketSource

from heslock.ble.virtual import unplug

logger = logging.getLogger(__name__)

#: Default TCP port of ``heslock bsld hub``: below the ephemeral range (FIELD-NOTES.md).
DEFAULT_HUB_PORT: Final = 17_000


class _RadioSink:
    """Controller -> host direction: H4 packets onto the socket."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport

    def on_packet(self, packet: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.write(packet)


class _RadioProtocol(StreamPacketSource):
    """One accepted socket = one radio with its own fresh controller."""

    def __init__(self, hub: RadioHub) -> None:
        super().__init__()
        self._hub = hub
        self.controller: Controller | None = None
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport
        self.controller = self._hub.attach(self, _RadioSink(transport))

    def connection_lost(self, exc: Exception | None) -> None:
        self._hub.detach(self)


class RadioHub:
    """Owns the shared LocalLink and one controller per connected radio."""

    def __init__(self) -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]  # untyped in bumble
        self._server: asyncio.Server | None = None
        self._radios: dict[_RadioProtocol, Controller] = {}
        self._numbers = itertools.count(1)
        self.port: int | None = None
        self.path: Path | None = None

    @property
    def radio_count(self) -> int:
        return len(self._radios)

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on TCP; returns the bound port (pass 0 for a free one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _RadioProtocol(self), host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        logger.info("radio hub listening on %s:%d", host, self.port)
        return self.port

    async def start_unix(self, path: Path) -> None:
        """Listen on a unix socket (mode 0600: only this user may open radios)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _RadioProtocol(self), str(path))
        os.chmod(path, 0o600)  # one syscall on a fresh inode, not blocking I/O
        self.path = path
        logger.info("radio hub listening on %s", path)

    def attach(self, radio: _RadioProtocol, sink: _RadioSink) -> Controller:
        controller = Controller(
            f"radio-{next(self._numbers)}", host_source=radio, host_sink=sink, link=self.link
        )
        self._radios[radio] = controller
        logger.info("radio %s attached (%d on the link)", controller.name, len(self._radios))
        return controller

    def detach(self, radio: _RadioProtocol) -> None:
        controller = self._radios.pop(radio, None)
        if controller is None:
            return
        unplug(controller, self.link)
        logger.info("radio %s detached (%d on the link)", controller.name, len(self._radios))

    async def close(self) -> None:
        """Stop listening and drop every radio (their peers get disconnections)."""
        if self._server is not None:
            self._server.close()
            for radio in list(self._radios):
                self.detach(radio)
                if radio.transport is not None:
                    radio.transport.close()
            await self._server.wait_closed()
            self._server = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
