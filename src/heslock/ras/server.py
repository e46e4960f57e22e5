"""Serving the RAS over HTTPS with uvicorn, in-process.

:class:`RasServer` wraps ``uvicorn.Server`` so a caller (the CLI, a test) can start it,
await the moment it listens (``started``), read the bound port (port 0 works), and stop
it. TLS uses :func:`heslock.ras.tls.server_context` (TLS 1.2+), passed to uvicorn as its
SSL context factory.

With ``relay=True`` (``heslock ras serve``) the server also runs the RAS's XMPP endpoint
for gateways (:class:`heslock.ras.services.commands.hosting.RelayHost`): it starts before
HTTPS listens and stops after HTTPS has finished its in-flight requests; the app gets its
bus (``app.state.bus``) and the gateway-session hook that ends a revoked gateway's session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Final

import uvicorn
from fastapi import FastAPI

from heslock.errors import UsageError
from heslock.ras.api import create_app
from heslock.ras.services.commands.hosting import RelayHost
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
        #: Run once HTTPS has shut down: uvicorn re-raises a captured SIGTERM/SIGINT right
        #: after ``shutdown`` returns, so anything to close cleanly must close in here.
        self.after_shutdown: Callable[[], Awaitable[None]] | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets)
        finally:
            if self.after_shutdown is not None:
                await self.after_shutdown()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()


class RasServer:
    """One HTTPS listener for one app."""

    def __init__(
        self, settings: Settings, app: FastAPI | None = None, *, relay: bool = False
    ) -> None:
        self.settings = settings
        self.app = app or create_app(settings)
        self.relay: RelayHost | None = None
        if relay:
            state = self.app.state.ras
            runtime = self.app.state.ddms
            # Read the runtime's clock at each call: tests replace it after start-up.
            self.relay = RelayHost(
                settings,
                state.sessionmaker,
                state.keystore,
                lambda: runtime.clock(),  # noqa: PLW0108
            )
            self.app.state.bus = self.relay.bus
            runtime.gateway_sessions = self.relay.gateway_sessions
            # A revoked XMPP login's live session is closed here (issue 7).
            self.app.state.xmpp_logins = self.relay.person_events
            endpoint = self.relay.endpoint
            state.metrics.xmpp.source = lambda: endpoint.server.stats if endpoint.running else None
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
            # X-Forwarded-For decides the source address that audit records and the
            # per-address throttles use: honour it only from proxies named in settings
            # (uvicorn's default would trust any local process).
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=list(settings.trusted_proxies) or None,
        )
        self._server = _Server(config)
        if self.relay is not None:
            self._server.after_shutdown = self._stop_relay
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
            # reuse_port: the workers of `ras serve --workers N` share the port (issue 9).
            sock = socket.create_server(
                (host, port), family=family, reuse_port=self.settings.reuse_port
            )
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        # create_server leaves proto 0, and asyncio sets TCP_NODELAY only on accepted
        # sockets whose proto is IPPROTO_TCP: without this every response waited for the
        # client's delayed ACK (Nagle), ~40 ms on loopback (docs/benchmarks.md).
        self._socket = socket.socket(
            sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach()
        )
        return self._socket

    @property
    def url(self) -> str:
        return f"https://{self.settings.https_host}:{self.port}"

    async def serve(self) -> None:
        """Run until stopped (SIGINT/SIGTERM when in the main thread)."""
        if self.relay is not None:
            await self.relay.start()
        try:
            await self._server.serve(sockets=[self._bind()])
        finally:
            self._close_socket()
            await self._stop_relay()

    async def _stop_relay(self) -> None:
        if self.relay is not None and self.relay.endpoint.running:
            await self.relay.stop()
            # uvicorn's lifespan disposed the engine before this runs (after_shutdown), and
            # the relay's background tasks (webhook dispatcher, sweeps, event ingest) may
            # have opened connections since: close those too, or they leak past shutdown.
            await self.app.state.ras.engine.dispose()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def start(self) -> None:
        """Start in the background; return once it listens (or raise why it could not)."""
        if self.relay is not None:
            await self.relay.start()
        try:
            self._task = asyncio.create_task(
                self._server.serve(sockets=[self._bind()]), name="ras-https"
            )
        except BaseException:
            await self._stop_relay()
            raise
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
            await self._stop_relay()
            return
        self._server.should_exit = True
        task, self._task = self._task, None
        try:
            await asyncio.wait_for(task, timeout=GRACEFUL_SHUTDOWN_S + 5)
        finally:
            self._close_socket()
            await self._stop_relay()

    async def wait(self) -> None:
        """Wait until the server stops (a signal, or :meth:`stop`)."""
        if self._task is not None:
            try:
                await self._task
            finally:
                self._task = None
                self._close_socket()
                await self._stop_relay()
