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
  (:class:`~heslock.ras.services.feed.retention.RetentionSweeper`);
- third-party apps' webhooks are delivered from the feed
  (:class:`~heslock.ras.services.webhooks.dispatcher.WebhookDispatcher`), and expired
  OAuth codes, tickets and old tokens are swept
  (:class:`~heslock.ras.services.oauth.sweep.OAuthSweeper`); both stop gracefully
  (an attempt or a batch in progress finishes first).
- people's XMPP logins receive their live events as headline messages, resume with an
  IQ, and lose their session when revoked
  (:class:`~heslock.ras.services.xmppusers.delivery.PersonEvents`, started before the
  endpoint listens, stopped right after the connectivity monitor).
- with ``bus_url`` set (several processes, issue 9) the bus is a
  :class:`~heslock.ras.relay.natsbus.NatsBus` (connected before the endpoint listens,
  closed after it stopped, so its gateways' offline notices reach the others), and the
  connectivity monitor runs in the elected leader only (:mod:`heslock.ras.leader`).

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
from heslock.ras.leader import Leadership
from heslock.ras.relay import LocalBus, RelayEndpoint
from heslock.ras.relay.natsbus import ClusterGatewaySessions, NatsBus
from heslock.ras.services.commands.events import EventIngest
from heslock.ras.services.commands.reconcile import Reconciler
from heslock.ras.services.ddms.runtime import Clock, RelayGatewaySessions
from heslock.ras.services.feed.monitor import ConnectivityMonitor
from heslock.ras.services.feed.retention import RetentionSweeper
from heslock.ras.services.geofence.retention import run_retention as run_location_retention
from heslock.ras.services.oauth.sweep import OAuthSweeper
from heslock.ras.services.scs.credentials import ScsCredentialStore
from heslock.ras.services.webhooks.dispatcher import WebhookDispatcher
from heslock.ras.services.xmppusers.delivery import PersonEvents
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
        reuse_port=settings.reuse_port,  # the workers of `ras serve --workers N` share it
        max_pending_logins=settings.xmpp_max_pending_logins,
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
        # Several processes (issue 9): gateways held by the others are reached over NATS.
        self.bus: LocalBus | NatsBus = (
            NatsBus(self.endpoint, settings.bus_url, prefix=settings.bus_prefix)
            if settings.bus_url
            else LocalBus(self.endpoint)
        )
        self.gateway_sessions: RelayGatewaySessions | ClusterGatewaySessions = RelayGatewaySessions(
            self.endpoint
        )
        if isinstance(self.bus, NatsBus):  # the session may live in another process
            self.gateway_sessions = ClusterGatewaySessions(self.gateway_sessions, self.bus)
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
        # Third-party apps (issue 8): webhook deliveries from the durable feed, and the
        # OAuth housekeeping sweep (expired codes, tickets, old tokens).
        self.webhooks = WebhookDispatcher(sessionmaker, keystore, settings, clock)
        self.oauth_sweep = OAuthSweeper(
            sessionmaker,
            clock,
            every_s=settings.oauth_sweep_every_s,
            token_keep_days=settings.oauth_token_keep_days,
        )
        # People's XMPP logins (issue 7): their live events as headline messages, the
        # resume IQ, and revoked logins' sessions closed (also the app's LoginSessions).
        self.person_events = PersonEvents(self.endpoint, sessionmaker, clock)
        # Once per cluster (issue 9): the connectivity monitor decides "changed" from the
        # last stored feed event, so with a bus it runs in the elected leader only
        # (heslock.ras.leader); the others' tasks are safe in every process
        # (docs/operations.md, "Several workers").
        self.leadership = Leadership(
            sessionmaker.kw["bind"], "connectivity", self.connectivity.start, self.connectivity.stop
        )

    @property
    def port(self) -> int:
        """The bound XMPP (STARTTLS) port."""
        return self.endpoint.ports["starttls"]

    async def start(self) -> None:
        self.events.start()
        self.reconciler.start()
        if isinstance(self.bus, NatsBus):
            self.leadership.start()
        else:
            self.connectivity.start()
        self.retention.start()
        self._start_location_retention()
        self.webhooks.start()
        self.oauth_sweep.start()
        self.person_events.start()
        try:
            if isinstance(self.bus, NatsBus):
                await self.bus.start()  # before the endpoint: its gateways are announced
            await self.endpoint.start()
        except BaseException:
            await self._stop_bus()
            await self.leadership.stop()
            await self.person_events.stop()
            await self.oauth_sweep.stop()
            await self.webhooks.stop()
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
        await self.leadership.stop()
        await self.connectivity.stop()
        await self.person_events.stop()
        await self.retention.stop()
        await self.webhooks.stop()
        await self.oauth_sweep.stop()
        await self._stop_location_retention()
        try:
            await self.reconciler.stop()
        finally:
            try:
                await self.endpoint.stop()
            finally:
                try:
                    await self.events.stop()
                finally:
                    await self._stop_bus()  # after the endpoint: its offline notices go out

    async def _stop_bus(self) -> None:
        if isinstance(self.bus, NatsBus):
            await self.bus.stop()

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
