"""Serving the RAS over HTTPS with uvicorn, in-process.

:class:`RasServer` wraps ``uvicorn.Server`` so a caller (the CLI, a test) can start it,
await the moment it listens (``started``), read the bound port (port 0 works), and stop
it. TLS uses :func:`heslock.ras.tls.server_context` (TLS 1.2+), passed to uvicorn as its
SSL context factory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import Any, Final

import uvicorn
from fastapi import FastAPI

from heslock.errors import UsageError
from heslock.ras.api import create_app
from heslock.ras.settings import Settings
from heslock.ras.tls import server_context

log = logging.getLogger(__name__)

#: Seconds a keep-alive connection may idle: short, so idle clients cannot hoard sockets.
KEEP_ALIVE_S: Final = 10
#: Seconds in-flight requests get to finish on shutdown.
GRACEFUL_SHUTDOWN_S: Final = 10
#: How long start-up may take before we give up (migrated DB, key files: well under this).
STARTUP_TIMEOUT_S: Final = 30


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()


class RasServer:
    """One HTTPS listener for one app."""

    def __init__(self, settings: Settings, app: FastAPI | None = None) -> None:
        self.settings = settings
        self.app = app or create_app(settings)
        context = server_context(settings.tls_cert, settings.tls_key)  # fail fast, clearly

        def ssl_factory(_config: uvicorn.Config, _default: Any) -> ssl.SSLContext:
            return context

        config = uvicorn.Config(
            self.app,
            host=settings.https_host,
            port=settings.https_port,
            ssl_context_factory=ssl_factory,
            log_config=None,  # logging is configured by the entry point
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            lifespan="on",
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("not listening")
        return int(self._socket.getsockname()[1])

    def _bind(self) -> socket.socket:
        """Bind here, not in uvicorn: its bind failure calls sys.exit inside the loop."""
        host, port = self.settings.https_host, self.settings.https_port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._socket = socket.create_server((host, port), family=family)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        return self._socket

    @property
    def url(self) -> str:
        return f"https://{self.settings.https_host}:{self.port}"

    async def serve(self) -> None:
        """Run until stopped (SIGINT/SIGTERM when in the main thread)."""
        try:
            await self._server.serve(sockets=[self._bind()])
        finally:
            self._close_socket()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def start(self) -> None:
        """Start in the background; return once it listens (or raise why it could not)."""
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._bind()]), name="ras-https"
        )
        waiter = asyncio.create_task(self._server.listening.wait(), name="ras-https-started")
        try:
            done, _ = await asyncio.wait(
                {self._task, waiter},
                timeout=STARTUP_TIMEOUT_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
        if self._task in done or not self._server.listening.is_set():
            await self.stop()
            raise RuntimeError("the RAS HTTPS server did not start (see the log)")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        task, self._task = self._task, None
        try:
            await asyncio.wait_for(task, timeout=GRACEFUL_SHUTDOWN_S + 5)
        finally:
            self._close_socket()

    async def wait(self) -> None:
        """Wait until the server stops (a signal, or :meth:`stop`)."""
        if self._task is not None:
            try:
                await self._task
            finally:
                self._task = None
                self._close_socket()
