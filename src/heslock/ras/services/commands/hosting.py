"""One RAS node's relay: the XMPP endpoint for BGWs, its bus, and what hangs off it.

``heslock ras serve`` runs a :class:`RelayHost` next to the HTTPS server
(:class:`heslock.ras.server.RasServer`). It builds the
:class:`~heslock.ras.relay.RelayEndpoint` from :class:`~heslock.ras.settings.Settings`:

- the XMPP domain is the RAS's ``domain``; it listens on ``xmpp_host``:``xmpp_port`` with
  STARTTLS (RFC 6120 section 5), under the RAS's own certificate
  (:func:`heslock.ras.tls.server_context`, TLS 1.2+);
- the certificate's DER enables SCRAM-SHA-256-PLUS (RFC 5929 tls-server-end-point);
- gateways authenticate against the SCS's verifiers
  (:class:`~heslock.ras.services.scs.credentials.ScsCredentialStore`);
- revoking a gateway or rotating its secret ends its live session
  (:class:`~heslock.ras.services.ddms.runtime.RelayGatewaySessions`);
- lock events are stored by :class:`~heslock.ras.services.commands.events.EventIngest`;
- commands whose outcome is unknown are settled from the locks' logs by the
  :class:`~heslock.ras.services.commands.reconcile.Reconciler`;
- gateway and lock online/offline become feed events
  (:class:`~heslock.ras.services.feed.monitor.ConnectivityMonitor`, subscribed before the
  endpoint listens, stopped first), and old feed events are swept
  (:class:`~heslock.ras.services.feed.retention.RetentionSweeper`).

Start order: the event ingest and the reconciler subscribe before the endpoint listens
(no event, presence or scan notice is missed). Stop order: the reconciler first (its
passes are cancelled while the endpoint can still answer their frames; nothing half
written: each write is one transaction), then the endpoint, then the event ingest
(after the endpoint closed every stream, so none is half-stored).
"""

from __future__ import annotations

import asyncio
import logging

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.errors import UsageError
from heslock.ras.keystore import Keystore
from heslock.ras.relay import LocalBus, RelayEndpoint
from heslock.ras.services.commands.events import EventIngest
from heslock.ras.services.commands.reconcile import Reconciler
from heslock.ras.services.ddms.runtime import Clock, RelayGatewaySessions
from heslock.ras.services.feed.monitor import ConnectivityMonitor
from heslock.ras.services.feed.retention import RetentionSweeper
from heslock.ras.services.geofence.retention import run_retention as run_location_retention
from heslock.ras.services.scs.credentials import ScsCredentialStore
from heslock.ras.settings import Settings
from heslock.ras.tls import server_context
from heslock.xmpp import ServerConfig

logger = logging.getLogger(__name__)


def certificate_der(settings: Settings) -> bytes:
    """The DER of the RAS's server certificate (first one in ``tls_cert``)."""
    try:
        cert = x509.load_pem_x509_certificate(settings.tls_cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the certificate {settings.tls_cert}: {exc}") from None
    return cert.public_bytes(Encoding.DER)


def server_config(settings: Settings) -> ServerConfig:
    """The XMPP endpoint's configuration from the RAS settings (module docstring)."""
    return ServerConfig(
        domain=settings.domain,
        ssl_context=server_context(settings.tls_cert, settings.tls_key),
        host=settings.xmpp_host,
        starttls_port=settings.xmpp_port,
        direct_tls_port=settings.xmpp_direct_tls_port,
        certificate_der=certificate_der(settings),
    )


class RelayHost:
    """The relay of one RAS node (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        keystore: Keystore,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.endpoint = RelayEndpoint(
            server_config(settings), ScsCredentialStore(sessionmaker, settings.domain)
        )
        self.bus = LocalBus(self.endpoint)
        self.gateway_sessions = RelayGatewaySessions(self.endpoint)
        self.events = EventIngest(self.bus, sessionmaker, keystore, clock)
        self.reconciler = Reconciler(self.bus, sessionmaker, keystore, clock)
        # Live events: gateway and lock online/offline, and the feed's retention sweep.
        self.connectivity = ConnectivityMonitor(self.bus, sessionmaker, clock)
        self.retention = RetentionSweeper(sessionmaker, settings.feed_retention_days, clock)
        # Location history is personal data: kept location_retention_hours, then deleted.
        self.sessionmaker = sessionmaker
        self.clock = clock
        self._location_stop = asyncio.Event()
        self._location_task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound XMPP (STARTTLS) port."""
        return self.endpoint.ports["starttls"]

    async def start(self) -> None:
        self.events.start()
        self.reconciler.start()
        self.connectivity.start()
        self.retention.start()
        self._start_location_retention()
        try:
            await self.endpoint.start()
        except BaseException:
            await self._stop_location_retention()
            await self.retention.stop()
            await self.connectivity.stop()
            await self.reconciler.stop()
            await self.events.stop()
            raise
        logger.info("relay listening for gateways on %s:%d", self.settings.xmpp_host, self.port)

    async def stop(self) -> None:
        # The connectivity monitor first: the endpoint's stop marks every gateway offline,
        # which is the RAS going away, not the gateways (heslock.ras.services.feed.monitor).
        await self.connectivity.stop()
        await self.retention.stop()
        await self._stop_location_retention()
        try:
            await self.reconciler.stop()
        finally:
            try:
                await self.endpoint.stop()
            finally:
                await self.events.stop()

    def _start_location_retention(self) -> None:
        self._location_stop.clear()
        self._location_task = asyncio.create_task(
            run_location_retention(
                self.sessionmaker,
                self.settings.location_retention_hours,
                self.clock,
                self._location_stop,
            ),
            name="heslock-location-retention",
        )

    async def _stop_location_retention(self) -> None:
        task, self._location_task = self._location_task, None
        if task is None:
            return
        self._location_stop.set()
        await task
