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
- lock events are stored by :class:`~heslock.ras.services.commands.events.EventIngest`.

Start order: the event ingest subscribes before the endpoint listens (no event is
missed), and stops after the endpoint closed every stream (none is half-stored).
"""

from __future__ import annotations

import logging

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.errors import UsageError
from heslock.ras.keystore import Keystore
from heslock.ras.relay import LocalBus, RelayEndpoint
from heslock.ras.services.commands.events import EventIngest
from heslock.ras.services.ddms.runtime import Clock, RelayGatewaySessions
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

    @property
    def port(self) -> int:
        """The bound XMPP (STARTTLS) port."""
        return self.endpoint.ports["starttls"]

    async def start(self) -> None:
        self.events.start()
        try:
            await self.endpoint.start()
        except BaseException:
            await self.events.stop()
            raise
        logger.info("relay listening for gateways on %s:%d", self.settings.xmpp_host, self.port)

    async def stop(self) -> None:
        try:
            await self.endpoint.stop()
        finally:
            await self.events.stop()
