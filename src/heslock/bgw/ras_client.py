"""The BGW's XMPP session with the RAS, on slixmpp (a third-party client: keeps us honest).

What it does (issue 5, "BGW"):

- **TLS**: direct TLS (XEP-0368) or STARTTLS (RFC 6120 section 5), set explicitly (slixmpp
  otherwise tries direct TLS on a STARTTLS port first; FIELD-NOTES.md). The RAS certificate
  must chain to the configured CA *only* (no system store) and name the JID's domain; a
  certificate that does not verify aborts the gateway with
  :class:`~heslock.bgw.errors.TlsVerificationFailed` -- it is never retried, because
  talking to an impostor RAS would hand it our SCRAM proof and our locks' traffic.
- **SASL**: SCRAM-SHA-256 (RFC 7677) or its channel-bound ``-PLUS``; nothing else, never
  PLAIN.
- **Presence**: available as soon as the session starts (the RAS learns which gateways, and
  so which locks, are online).
- **Keepalive**: an XEP-0199 ping to the domain every ``keepalive_s``; no answer within the
  same time closes the connection, which then reconnects.
- **Reconnect**: slixmpp does not reconnect after the server closes the stream (and its own
  retry schedule has no jitter), so this module owns it: one connection attempt at a time,
  slixmpp's own retry loop cancelled after each, delays from
  :class:`~heslock.bgw.backoff.Backoff` (exponential, full jitter, capped), reset once a
  session started.

Connection states::

    CONNECTING --session_start--> ONLINE --disconnected--> WAITING --delay--> CONNECTING
    CONNECTING --failed / refused / timeout--> WAITING
    CONNECTING --certificate not trusted--> FAILED (run() raises)
    any --stop()--> STOPPED

Frame IQs are handed to ``frame_handler`` in a task each (tracked, cancelled on stop), so
one slow lock never holds up the stream. Messages (events, scan reports, status) sent while
offline wait in a bounded buffer and go out when the next session starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, ClassVar, Final
from xml.etree.ElementTree import Element

from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.stanza import Iq
from slixmpp.xmlstream import ElementBase, register_stanza_plugin
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from heslock.bgw.backoff import Backoff
from heslock.bgw.config import RasSettings, TlsMode
from heslock.bgw.errors import RouteFailure, TlsVerificationFailed
from heslock.xmpp.lockns import NS_LOCK, TAG_FRAME, TAG_STATUS

logger = logging.getLogger(__name__)

#: One attempt: TCP, TLS, SCRAM (4096+ PBKDF2 iterations) and bind, a few round trips.
CONNECT_TIMEOUT_S: Final = 15.0
#: How long stop() waits for the server to close our stream.
DISCONNECT_WAIT_S: Final = 2.0
#: Messages buffered while offline; older ones are dropped first (a lock's log keeps its
#: events, and the next scan report and status supersede the old ones).
MAX_BUFFERED_MESSAGES: Final = 512
#: SASL mechanisms we accept (RFC 7677); slixmpp picks the strongest the server offers.
SASL_MECHANISMS: Final = frozenset({"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"})

FrameHandler = Callable[[Element], Awaitable[Element]]
StatusHandler = Callable[[], Element]


class State(Enum):
    CONNECTING = "connecting"
    ONLINE = "online"
    WAITING = "waiting"
    FAILED = "failed"
    STOPPED = "stopped"


class FrameStanza(ElementBase):
    """``<frame xmlns='urn:heslock:lock:1'/>`` on an IQ (heslock.xmpp.lockns)."""

    name = "frame"
    namespace = NS_LOCK
    plugin_attrib = "heslock_frame"
    interfaces: ClassVar[set[str]] = {"lock", "timeout-ms"}


class StatusStanza(ElementBase):
    """``<status xmlns='urn:heslock:lock:1'/>`` on an IQ (heslock.xmpp.lockns)."""

    name = "status"
    namespace = NS_LOCK
    plugin_attrib = "heslock_status"
    interfaces: ClassVar[set[str]] = set()


register_stanza_plugin(Iq, FrameStanza)
register_stanza_plugin(Iq, StatusStanza)


def tls_context(ca_file: str) -> ssl.SSLContext:
    """Trust only ``ca_file``; TLS 1.2 at least; the host name is checked."""
    context = ssl.create_default_context(cafile=ca_file)  # cafile given: no system store
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class RasClient:
    """The gateway's session with the RAS (module docstring)."""

    def __init__(
        self,
        settings: RasSettings,
        frame_handler: FrameHandler,
        status_handler: StatusHandler,
        on_online: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.frame_handler = frame_handler
        self.status_handler = status_handler
        self.on_online = on_online
        self.domain = settings.jid.domain
        self.state = State.WAITING
        self.backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        self.sessions = 0  #: sessions started so far
        self._buffer: deque[Element] = deque(maxlen=MAX_BUFFERED_MESSAGES)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._online_event = asyncio.Event()
        self._client = self._make_client()

    # ------------------------------------------------------------------ slixmpp setup

    def _make_client(self) -> Any:
        settings = self.settings
        client = ClientXMPP(
            settings.jid.full,
            settings.secret,
            plugin_config={"feature_mechanisms": {"use_mechs": set(SASL_MECHANISMS)}},
        )
        client.register_plugin("xep_0199")
        client.enable_direct_tls = settings.tls is TlsMode.DIRECT
        client.enable_starttls = settings.tls is TlsMode.STARTTLS
        client.enable_plaintext = False
        client.ssl_context = tls_context(str(settings.ca_file))
        client.ca_certs = None  # slixmpp would add it to its context; ours is complete
        client.whitespace_keepalive = False  # we ping (XEP-0199) instead
        client.register_handler(
            Callback("heslock-frame", StanzaPath("iq@type=set/heslock_frame"), self._on_frame_iq)
        )
        client.register_handler(
            Callback("heslock-status", StanzaPath("iq@type=get/heslock_status"), self._on_status)
        )
        return client

    # ------------------------------------------------------------------ public API

    @property
    def online(self) -> bool:
        return self.state is State.ONLINE

    async def wait_online(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._online_event.wait(), timeout_s)

    def send_message(self, payload: Element) -> None:
        """Send ``<message to=domain>payload</message>`` now, or when next online."""
        if self.online:
            self._send(payload)
        else:
            self._buffer.append(payload)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Connect and stay connected until :meth:`stop`; raises TlsVerificationFailed."""
        try:
            while not self._stop.is_set():
                self.state = State.CONNECTING
                if await self._attempt():
                    self.backoff.reset()
                    await self._hold_session()
                if self._stop.is_set():
                    break
                self.state = State.WAITING
                delay = self.backoff.next_delay()
                logger.info("reconnecting to the RAS in %.1f s", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        except TlsVerificationFailed:
            self.state = State.FAILED
            raise
        finally:
            await self._shutdown()
            if self.state is not State.FAILED:
                self.state = State.STOPPED

    # ------------------------------------------------------------------ one connection

    async def _attempt(self) -> bool:
        """One connection attempt; True once the session started."""
        client = self._client
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[str] = loop.create_future()

        def settle(result: str | BaseException) -> None:
            if outcome.done():
                return
            if isinstance(result, BaseException):
                outcome.set_exception(result)
            else:
                outcome.set_result(result)

        def on_failed(error: Any) -> None:
            if isinstance(error, ssl.SSLCertVerificationError):
                settle(self._tls_failure(error))
            else:
                settle(f"connection failed or closed: {error}")

        handlers: list[tuple[str, Callable[[Any], None]]] = [
            ("session_start", lambda _: settle("up")),
            ("connection_failed", on_failed),
            ("ssl_invalid_chain", lambda e: settle(self._tls_failure(e))),
            ("failed_all_auth", lambda _: settle("the RAS refused the gateway's credentials")),
            ("disconnected", on_failed),  # a STARTTLS handshake failure ends up here first
        ]
        for name, handler in handlers:
            client.add_event_handler(name, handler)
        try:
            client.connect(self.settings.host, self.settings.port)
            stop = asyncio.ensure_future(self._stop.wait())
            waiters: set[asyncio.Future[Any]] = {outcome, stop}
            try:
                done, _ = await asyncio.wait(
                    waiters, timeout=CONNECT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stop
            client.cancel_connection_attempt()  # we own the retry schedule
            if outcome not in done:
                outcome.cancel()
                logger.warning("connecting to the RAS timed out or was stopped")
                client.abort()
                return False
            result = outcome.result()  # raises TlsVerificationFailed
            if result != "up":
                logger.warning("RAS connection attempt failed: %s", result)
                client.abort()
                return False
            return True
        finally:
            for name, handler in handlers:
                client.del_event_handler(name, handler)

    def _tls_failure(self, error: Any) -> TlsVerificationFailed:
        reason = getattr(error, "verify_message", None) or str(error)
        return TlsVerificationFailed(
            f"the RAS at {self.settings.host}:{self.settings.port} presented a certificate "
            f"that does not verify against {self.settings.ca_file} for {self.domain}: {reason}"
        )

    async def _hold_session(self) -> None:
        client = self._client
        closed = asyncio.get_running_loop().create_future()

        def on_disconnected(_reason: Any) -> None:
            if not closed.done():
                closed.set_result(None)

        client.add_event_handler("disconnected", on_disconnected)
        if client.transport is None:  # dropped between session_start and here
            on_disconnected(None)
        self.sessions += 1
        self.state = State.ONLINE
        client.send_presence()
        logger.info("online at the RAS as %s", self.settings.jid.full)
        while self._buffer:
            self._send(self._buffer.popleft())
        self._online_event.set()
        try:
            self.on_online()
        except Exception:
            logger.exception("on_online callback failed")
        keepalive = asyncio.create_task(self._keepalive(), name="bgw-xmpp-keepalive")
        stop = asyncio.ensure_future(self._stop.wait())
        waiters: set[asyncio.Future[Any]] = {closed, stop}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._online_event.clear()
            self.state = State.WAITING
            for task in (keepalive, stop):
                task.cancel()
            await asyncio.gather(keepalive, stop, return_exceptions=True)
            client.del_event_handler("disconnected", on_disconnected)
            if not closed.done():
                closed.cancel()
        if not self._stop.is_set():
            logger.warning("the RAS closed the session")

    async def _keepalive(self) -> None:
        period = self.settings.keepalive_s
        while True:
            await asyncio.sleep(period)
            try:
                await self._client.plugin["xep_0199"].ping(self.domain, timeout=period)
            except IqError:
                continue  # an error answer is still an answer: the stream is alive
            except IqTimeout:
                logger.warning("no answer to the keepalive ping: reconnecting")
                self._client.abort()
                return

    async def _shutdown(self) -> None:
        client = self._client
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            if client.transport is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        client.disconnect(wait=DISCONNECT_WAIT_S), DISCONNECT_WAIT_S * 2
                    )
        except Exception:  # a stream the RAS already tore down may not close cleanly
            logger.debug("closing the RAS stream failed", exc_info=True)
        finally:
            # Whatever the close did, slixmpp's own sender task must not outlive us.
            client.cancel_connection_attempt()
            filters = getattr(client, "_run_out_filters", None)
            if filters is not None and not filters.done():
                filters.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await filters

    # ------------------------------------------------------------------ stanzas

    def _send(self, payload: Element) -> None:
        message = self._client.make_message(mto=self.domain, mtype="normal")
        message.xml.append(payload)
        message.send()

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_frame_iq(self, iq: Any) -> None:
        # A slixmpp handler: returns at once; the work runs in a tracked task.
        self._spawn(self._answer_frame(iq), f"bgw-iq-{iq['id']}")

    async def _answer_frame(self, iq: Any) -> None:
        payload = iq.xml.find(TAG_FRAME)
        reply = iq.reply(clear=True)
        try:
            if payload is None:  # StanzaPath matched: cannot happen, but never crash
                payload = Element(TAG_FRAME)  # refused by the codec: bad-request
            reply.xml.append(await self.frame_handler(payload))
        except RouteFailure as failure:
            logger.info("frame request %s failed: %s", iq["id"], failure)
            reply["type"] = "error"
            reply.xml.append(failure.error)
        if self.online:
            reply.send()
        else:
            logger.info("answer to %s dropped: the session it came on is gone", iq["id"])

    def _on_status(self, iq: Any) -> None:
        if iq.xml.find(TAG_STATUS) is None or len(iq.xml.find(TAG_STATUS)):
            return
        reply = iq.reply(clear=True)
        reply.xml.append(self.status_handler())
        reply.send()
