"""The RAS end of the frame relay: the XMPP endpoint the BGWs log in to.

ISO/IEC 14543-5-104 "Control flow": the RAS seals a frame under the lock's key and sends
it to the gateway that sees the lock; the gateway writes it over BLE and returns the
lock's sealed answer. :class:`RelayEndpoint` owns the RAS's
:class:`~heslock.xmpp.server.XmppServer` (RFC 6120 over TLS, SASL SCRAM-SHA-256 against
the SCS's :class:`~heslock.xmpp.sasl.CredentialStore`) and turns what gateways say into
the relay's state, using the ``urn:heslock:lock:1`` codec (:mod:`heslock.xmpp.lockns`):

=====================================  ==================================================
gateway says (XMPP)                    the endpoint
=====================================  ==================================================
available presence / session ends      :class:`~.routing.GatewayRegistry` online/offline
                                       (with times); offline drops its routing view;
                                       a :class:`~.bus.PresenceNotice`
``<scan/>`` message                    replaces the gateway's view in the
                                       :class:`~.routing.RoutingTable`; a ScanNotice
``<event/>`` message                   a :class:`~.bus.LockEventNotice`
``<status/>`` message                  the gateway's load, kept in the registry
anything else addressed to us          refused: counted, logged with the parse error
=====================================  ==================================================

People's XMPP logins (issue 7) share this endpoint: their sessions (kind ``person``,
:class:`~heslock.xmpp.sasl.EntityKind`) never reach a gateway, never reach the table
above (the server refuses their messages to the domain with ``forbidden`` and does not
report their presence), and may call only IQ handlers registered for people. Who
serves them (:mod:`heslock.ras.services.xmppusers.delivery`) sets
:attr:`RelayEndpoint.person_listener` and registers its handler in
:attr:`RelayEndpoint.iq_handlers` before :meth:`start`.

Frame requests (:meth:`RelayEndpoint.send_frame`) are IQ ``set`` with a
:class:`~heslock.xmpp.lockns.FrameRequest` whose ``timeout-ms`` is the caller's budget;
our own IQ timer runs :data:`IQ_MARGIN_S` longer, so the gateway's precise answer
(``ble-timeout``, ``link-lost`` ...) normally arrives before we give up. Failures map to
:mod:`heslock.ras.relay.errors`:

what happened                                       raised
--------------------------------------------------  -----------------------------------------
no online session for the gateway                   GatewayOffline (nothing sent)
the session ended, or the endpoint stopped,         GatewayLost (the lock may have acted)
while the frame was out
no IQ answer within the budget + IQ_MARGIN_S        RelayTimeout (the lock may have acted)
IQ error with a ``urn:heslock:lock:1`` application  LockNotInRange, LockBusy, LockTimeout,
condition, else the defined condition standing      LinkLost, GatewayOverloaded
for one (lockns.CONDITIONS)
IQ error bad-request, service-unavailable or        GatewayFailure (never queued)
feature-not-implemented
any other IQ error, or a result that is not         GatewayFailure (the lock may have acted)
this lock's frame
MAX_IN_FLIGHT_PER_GATEWAY frames already pending    GatewayOverloaded (nothing sent)

Lifecycle. :meth:`start` builds a fresh XmppServer and binds its ports; :meth:`stop`
closes every stream with ``system-shutdown`` (RFC 6120 4.9.3.20), fails pending frames
with GatewayLost and marks every gateway offline. The endpoint can be started again: a
port given as 0 keeps the number it got the first time, so gateways configured with it
reconnect (the BGW retries with back-off). Subscriptions survive a restart.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final
from xml.etree.ElementTree import Element

from heslock.errors import UsageError
from heslock.protocol.errors import InvalidDeviceId
from heslock.protocol.ids import DeviceId
from heslock.ras.relay.bus import (
    LockEventNotice,
    PresenceNotice,
    ScanNotice,
    Subscribers,
)
from heslock.ras.relay.errors import (
    BY_CONDITION,
    GatewayFailure,
    GatewayLost,
    GatewayOffline,
    GatewayOverloaded,
    RelayError,
    RelayTimeout,
)
from heslock.ras.relay.routing import GatewayRegistry, RoutingPolicy, RoutingTable, Sighting
from heslock.xmpp.errors import (
    IqTimeout,
    RecipientOffline,
    ServerClosed,
    StanzaError,
    StanzaErrorCondition,
)
from heslock.xmpp.jid import Jid, JidMalformed
from heslock.xmpp.lockns import (
    MAX_TIMEOUT_MS,
    NS_LOCK,
    FrameRequest,
    FrameResult,
    GatewayStatus,
    LockCondition,
    LockEvent,
    LockNsError,
    ScanReport,
    parse_message_payload,
)
from heslock.xmpp.sasl import CredentialStore
from heslock.xmpp.server import IqRegistry, PersonListener, ServerConfig, XmppServer

logger = logging.getLogger(__name__)

#: Added to the caller's budget for our IQ timer: an XMPP round trip on a slow uplink plus
#: the gateway's scheduling. The gateway enforces the budget itself and answers
#: ``ble-timeout``; this margin lets that precise answer arrive before we give up.
IQ_MARGIN_S: Final = 2.0
#: Largest budget a caller may give a gateway (the namespace's timeout-ms cap, 30 s).
MAX_TIMEOUT_S: Final = MAX_TIMEOUT_MS / 1000
#: Frames this RAS keeps pending on one gateway: the BGW holds at most 256 itself
#: (bgw.router.MAX_PENDING), so more would only be refused there after a round trip.
MAX_IN_FLIGHT_PER_GATEWAY: Final = 256
#: Gateway-supplied error text kept in our exception messages (it is peer input).
MAX_PEER_TEXT: Final = 200

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def bare_jid(gateway_jid: str) -> str:
    """The bare JID naming a gateway; :class:`UsageError` if it is not a gateway's JID."""
    try:
        jid = Jid.parse(gateway_jid)
    except (JidMalformed, TypeError, ValueError) as exc:
        raise UsageError(f"{gateway_jid!r} is not a JID: {exc}") from None
    if not jid.local:
        raise UsageError(f"{gateway_jid!r} names a server, not a gateway")
    return jid.bare


class RelayEndpoint:
    """The RAS's XMPP endpoint for its gateways (module docstring)."""

    def __init__(
        self,
        config: ServerConfig,
        credentials: CredentialStore,
        *,
        policy: RoutingPolicy | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.clock = clock
        #: IQ handlers for stanzas gateways address to the RAS (kept across restarts).
        self.iq_handlers = IqRegistry()
        self.registry = GatewayRegistry()
        self.routing = RoutingTable(policy)
        self.events: Subscribers[LockEventNotice] = Subscribers("lock event")
        self.presence: Subscribers[PresenceNotice] = Subscribers("presence")
        self.scans: Subscribers[ScanNotice] = Subscribers("scan report")
        self.refused_messages = 0
        #: Told when people's sessions bind and end (set before :meth:`start`).
        self.person_listener: PersonListener | None = None
        self._server: XmppServer | None = None
        self._in_flight: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def server(self) -> XmppServer:
        if self._server is None:
            raise UsageError("the relay endpoint is not started")
        return self._server

    @property
    def ports(self) -> dict[str, int]:
        """The bound ports by name (``starttls``, ``direct_tls``)."""
        return dict(self.server.ports)

    async def start(self) -> None:
        """Build the XMPP server and listen (see the module docstring on restarts)."""
        if self._server is not None:
            raise UsageError("the relay endpoint is already running")
        server = XmppServer(
            self.config, self.credentials, self.iq_handlers, self, self, self.person_listener
        )
        await server.start()
        self._server = server
        # Keep the numbers the OS picked, so a restart listens where gateways look.
        self.config = dataclasses.replace(
            self.config,
            starttls_port=server.ports.get("starttls", self.config.starttls_port),
            direct_tls_port=server.ports.get("direct_tls", self.config.direct_tls_port),
        )

    async def stop(self) -> None:
        """Close every gateway's stream, fail pending frames, mark everyone offline."""
        server, self._server = self._server, None
        if server is None:
            return
        try:
            await server.stop()
        finally:
            now = self.clock()
            for gateway in self.registry.online():
                session = self.registry.session_of(gateway)
                if session is not None:
                    self._went_offline(Jid.parse(session), now)
            logger.info("relay endpoint stopped")

    # ------------------------------------------------------------------ XMPP listeners

    def presence_changed(self, jid: Jid, available: bool) -> None:
        """PresenceListener: a gateway session became (un)available or ended."""
        now = self.clock()
        if available:
            if self.registry.available(jid, now):
                logger.info("gateway %s online (%s)", jid.bare, jid.full)
                self.presence.publish(PresenceNotice(jid.bare, jid.full, True, now))
        else:
            self._went_offline(jid, now)

    def _went_offline(self, jid: Jid, now: datetime) -> None:
        if self.registry.unavailable(jid, now):
            self.routing.forget(jid.bare)
            logger.info("gateway %s offline", jid.bare)
            self.presence.publish(PresenceNotice(jid.bare, jid.full, False, now))

    def message_received(self, sender: Jid, message: Element) -> None:
        """MessageListener: an event, scan report or status from a gateway."""
        if message.get("type") == "error":
            return  # an error bounced to us: nothing to answer (RFC 6120 8.3.1)
        try:
            payload = parse_message_payload(message)
        except LockNsError as exc:
            self.refused_messages += 1
            logger.warning("message from %s refused: %s", sender.bare, exc)
            return
        now = self.clock()
        gateway = sender.bare
        if isinstance(payload, LockEvent):
            self.events.publish(
                LockEventNotice(gateway, payload.lock, payload.frame, payload.rssi, now)
            )
        elif isinstance(payload, ScanReport):
            if not self.registry.is_online(gateway):
                # Presence comes first on a BGW session; a report from a session that is
                # not (or no longer) available must not route frames to it.
                logger.info("scan report from %s, which is not online: ignored", gateway)
                return
            self.routing.replace(gateway, payload, now)
            self.scans.publish(ScanNotice(gateway, payload, now))
        elif isinstance(payload, GatewayStatus):
            self.registry.set_status(gateway, payload, now)

    # ------------------------------------------------------------------ routing

    def gateway_for(self, lock_id: DeviceId) -> str | None:
        """The bare JID of the gateway to use for ``lock_id`` (routing module's rule)."""
        sighting = self.sighting_for(lock_id)
        return sighting.gateway if sighting is not None else None

    def sighting_for(self, lock_id: DeviceId) -> Sighting | None:
        """The winning sighting itself (RSSI, times), for diagnostics and audit."""
        return self.routing.choose(lock_id, self.registry.is_online, self.clock())

    def is_online(self, gateway_jid: str) -> bool:
        return self.registry.is_online(bare_jid(gateway_jid))

    # ------------------------------------------------------------------ frames

    async def send_frame(
        self,
        gateway_jid: str,
        lock_id: DeviceId,
        frame: bytes,
        timeout_s: float,
    ) -> bytes:
        """Relay ``frame`` to ``lock_id`` through the gateway; the lock's sealed answer.

        See :meth:`heslock.ras.relay.bus.LockBus.send_frame` and the module docstring.
        """
        request = _request(lock_id, frame, timeout_s)
        gateway = bare_jid(gateway_jid)
        server = self._server
        session = self.registry.session_of(gateway)
        if server is None or session is None or not server.is_connected(session):
            raise GatewayOffline(f"gateway {gateway} is offline")
        pending = self._in_flight.get(gateway, 0)
        if pending >= MAX_IN_FLIGHT_PER_GATEWAY:
            raise GatewayOverloaded(
                f"{pending} frames already pending on {gateway}", may_have_executed=False
            )
        self._in_flight[gateway] = pending + 1
        try:
            # No await between the check above and the send inside iq_request: from here
            # on the frame is on its way, and every failure may follow its execution.
            result = await server.iq_request(
                session, request.element(), timeout=timeout_s + IQ_MARGIN_S
            )
        except RecipientOffline:
            raise GatewayLost(
                f"gateway {gateway} went offline before answering; "
                f"the frame to {lock_id} may have been executed"
            ) from None
        except ServerClosed:
            raise GatewayLost(
                f"the relay endpoint stopped before {gateway} answered; "
                f"the frame to {lock_id} may have been executed"
            ) from None
        except IqTimeout:
            raise RelayTimeout(
                f"no answer from gateway {gateway} within {timeout_s + IQ_MARGIN_S:.1f} s; "
                f"the frame to {lock_id} may have been executed"
            ) from None
        except StanzaError as exc:
            raise stanza_error_to_relay(exc, gateway, lock_id) from None
        finally:
            left = self._in_flight.get(gateway, 1) - 1
            if left > 0:
                self._in_flight[gateway] = left
            else:
                self._in_flight.pop(gateway, None)
        try:
            answer = FrameResult.from_iq(result)
        except LockNsError as exc:
            raise GatewayFailure(
                f"gateway {gateway} answered without a lock frame: {exc}"
            ) from None
        if answer.lock != lock_id:
            raise GatewayFailure(f"gateway {gateway} answered for {answer.lock}, not {lock_id}")
        return answer.frame


def _request(lock_id: DeviceId, frame: bytes, timeout_s: float) -> FrameRequest:
    if not isinstance(lock_id, DeviceId):
        raise UsageError(f"lock_id must be a DeviceId, not {type(lock_id).__name__}")
    if not isinstance(frame, bytes | bytearray):
        raise UsageError(f"frame must be bytes, not {type(frame).__name__}")
    if not (isinstance(timeout_s, int | float) and 0 < timeout_s <= MAX_TIMEOUT_S):
        raise UsageError(f"timeout_s must be in (0, {MAX_TIMEOUT_S:g}], got {timeout_s!r}")
    try:
        return FrameRequest(lock_id, bytes(frame), max(1, math.ceil(timeout_s * 1000)))
    except (LockNsError, InvalidDeviceId) as exc:
        raise UsageError(str(exc)) from None


def stanza_error_to_relay(exc: StanzaError, gateway: str, lock_id: DeviceId) -> RelayError:
    """The relay error for a gateway's IQ error (module docstring, table)."""
    condition: LockCondition | None = None
    application = exc.application
    if application is not None:
        namespace, _, name = application.tag[1:].partition("}")
        if namespace == NS_LOCK:
            try:
                condition = LockCondition(name)
            except ValueError:
                condition = None
    if condition is None:
        condition = LockCondition.from_stanza_condition(exc.condition)
    text = exc.text[:MAX_PEER_TEXT]
    if condition is not None:
        detail = f"gateway {gateway}, lock {lock_id}: {condition.value}"
        return BY_CONDITION[condition](f"{detail} ({text})" if text else detail)
    defined = exc.condition.value if exc.condition is not None else "undefined-condition"
    detail = f"gateway {gateway} refused the frame to {lock_id}: {defined}"
    never_queued = exc.condition in (
        StanzaErrorCondition.BAD_REQUEST,
        StanzaErrorCondition.SERVICE_UNAVAILABLE,
        StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED,
    )
    return GatewayFailure(
        f"{detail} ({text})" if text else detail,
        may_have_executed=None if not never_queued else False,
    )


__all__ = ["IQ_MARGIN_S", "MAX_IN_FLIGHT_PER_GATEWAY", "RelayEndpoint", "bare_jid", "utc_now"]
