"""The RAS's XMPP client-to-server endpoint: listeners, routing, keepalive, shutdown.

Theory of operation
-------------------
:class:`XmppServer` listens on a STARTTLS port (RFC 6120 section 5) and a direct-TLS port
(XEP-0368); each connection is a :class:`heslock.xmpp.session.C2SSession` that negotiates
TLS, SASL SCRAM-SHA-256(-PLUS) against the caller's :class:`CredentialStore` and a resource
(RFC 6120 section 7), then hands every stanza to :meth:`XmppServer.route`:

- a stanza to another connected full JID is forwarded with ``from`` stamped by the server
  (section 8.1.2.1) **if the routing rules below allow it**; to a bare JID, to the
  account's session; an IQ ``get``/``set`` to an offline JID is answered
  ``service-unavailable`` (section 8.3.3.19, RFC 6121 8.5);
- an IQ to the domain (or without ``to``) goes to the handler registered for its payload
  namespace (:class:`IqRegistry`); XEP-0199 ping and the legacy session IQ are built in;
  results and errors to the domain answer :meth:`XmppServer.iq_request`, which is how the
  RAS sends frame requests to gateways;
- presence without ``to`` is the session's availability, reported to the
  :class:`PresenceListener` (which gateways, hence which locks, are up); messages to the
  domain go to the :class:`MessageListener` (lock events from gateways).

One session per account (bare JID): the RAS's gateways each log in once, so a new login
replaces the old session, which gets the ``conflict`` stream error (RFC 6120 7.7.2.2).
A person's XMPP login is one client's credential, so the same rule holds for it.

Authorisation: routing by entity kind
-------------------------------------
Every session carries the :class:`~heslock.xmpp.sasl.EntityKind` of the verifier it
authenticated with. Two kinds share this server: gateways (frames, lock events, scan
reports) and people (their live events, issue 7). The rules, checked on every stanza:

=====================================  ===================================================
stanza                                 rule
=====================================  ===================================================
to another session (IQ, message,       forwarded only gateway -> gateway; anything else
presence), bare or full JID            is answered exactly as if the JID were offline
                                       (IQ/message ``service-unavailable``, presence
                                       dropped): a person learns nothing about gateways
IQ get/set to the domain               the handler's registered kinds only (default:
                                       gateways); others get ``forbidden``. Ping and the
                                       session IQ answer everyone
IQ result/error to the domain          only the session the request went to (full JID)
message to the domain                  gateways only (the :class:`MessageListener`);
                                       a person's gets ``forbidden``
presence without ``to``                the session's availability; the
                                       :class:`PresenceListener` (gateway liveness) hears
                                       gateways only
=====================================  ===================================================

People's sessions are reported to the :class:`PersonListener` as they bind and end;
the RAS pushes their events with :meth:`XmppServer.push`, which drops a session whose
unread output has grown past the caller's bound instead of buffering without limit.

Liveness and idle memory: one timer for the whole server sweeps the bound sessions
:data:`SWEEPS_PER_PING` times per ``ping_interval``. A session silent for one sweep sheds
its XML parser (:meth:`heslock.xmpp.stream.StreamParser.shed`; one stalled mid-stanza is
closed), one silent for a whole ``ping_interval`` gets an XEP-0199 ping, and one still
silent an interval later is closed with ``connection-timeout``. No per-session timer or
task is held once a session is bound (memory per held gateway, issue 9).

Admission control (the reconnect storm)
---------------------------------------
After a RAS restart every gateway reconnects at once. Accepting them all would start a TLS
handshake and a SCRAM exchange on each; one core shares itself between thousands, none
finishes within ``auth_timeout``, every client is timed out and comes back, and nobody ever
binds. So at most ``max_pending_logins`` connections (:class:`ServerConfig`) are
*negotiating* at once: accepted and not yet bound or closed (:class:`PendingLogins`).

At the cap the server stops calling ``accept``: the excess waits in the kernel's listen
backlog (:data:`LISTEN_BACKLOG`), where it costs no CPU, no memory of ours and no timer.
Each listener is a plain non-blocking socket served by an accept task of ours
(``loop.sock_accept`` + ``loop.connect_accepted_socket``, public API on every event loop,
uvloop included); ``asyncio.Server`` cannot pause accepting, and taking its listening fd
out of the selector (``remove_reader``) would depend on the loop's internals. The
authentication timer starts in ``connection_made``, i.e. when the server takes the
connection out of the backlog and starts working on it, never while it waits there. A
slot frees when its session binds or closes; bound sessions are not counted and never
wait. :attr:`XmppServer.stats` exposes the count and its peak.

Latency: asyncio sets TCP_NODELAY on every TCP transport it creates, so small stanzas
leave at once (Nagle off, issue 9). Output is batched: while one input chunk is processed,
sessions only queue what they send; each flushes once at the end (:meth:`batch_end`), one
TLS record and one ``send`` each.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import functools
import inspect
import logging
import os
import secrets
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Protocol
from xml.etree.ElementTree import Element

from heslock.errors import UsageError
from heslock.xmpp.errors import (
    NS_CLIENT,
    IqTimeout,
    RecipientOffline,
    ServerClosed,
    StanzaError,
    StanzaErrorCondition,
    StreamErrorCondition,
)
from heslock.xmpp.jid import Jid, JidMalformed
from heslock.xmpp.limits import MAX_PENDING_LOGINS, PendingLogins, SourceThrottle
from heslock.xmpp.sasl import (
    CHANNEL_BINDING_TYPE,
    MECH_SCRAM,
    MECH_SCRAM_PLUS,
    CredentialStore,
    EntityKind,
    tls_server_end_point,
)
from heslock.xmpp.session import NS_SASL_CB, C2SSession, State
from heslock.xmpp.stream import MAX_STANZA_BYTES, escape_attr, serialize
from heslock.xmpp.tls import check_context

logger = logging.getLogger(__name__)

NS_PING: Final = "urn:xmpp:ping"
NS_SESSION: Final = "urn:ietf:params:xml:ns:xmpp-session"
NS_SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"

#: A connection must bind a resource within this time (TLS + SCRAM + bind take a few round
#: trips; 10 s is generous on a slow link yet frees a half-open slot quickly).
AUTH_TIMEOUT_S: Final = 10.0
#: Keepalive sweep period: silence for one period draws a ping, for two a disconnection.
#: Below common NAT idle timeouts (>= 5 min) so held sessions survive NATs.
PING_INTERVAL_S: Final = 60.0
#: Keepalive sweeps per ping interval: an idle session sheds its parser after one sweep
#: period, so after each keepalive ping its parser lives for at most a quarter interval.
SWEEPS_PER_PING: Final = 4
#: Stanzas per second per session, sustained, and the burst allowed above it: far above a
#: gateway's needs (a frame per lock operation), low enough that one client cannot take
#: the server's core from the others.
STANZA_RATE: Final = 500.0
STANZA_BURST: Final = 1000.0
#: Failed authentications per source address: burst, then one more per 30 s.
AUTH_FAILURE_BURST: Final = 10
AUTH_FAILURE_REFILL_PER_S: Final = 1 / 30
#: How long :meth:`XmppServer.stop` waits for clients to read their ``system-shutdown``.
SHUTDOWN_GRACE_S: Final = 5.0
#: Listen backlog: a reconnect storm of thousands of gateways after a RAS restart must not
#: overflow the kernel's accept queue.
LISTEN_BACKLOG: Final = 4096
#: How long an accept task pauses when the process is out of file descriptors or memory
#: (asyncio's own accept loop does the same), instead of spinning on the error.
ACCEPT_RETRY_S: Final = 1.0
_ACCEPT_RESOURCE_ERRORS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
)

_TAG_IQ = f"{{{NS_CLIENT}}}iq"
_TAG_MESSAGE = f"{{{NS_CLIENT}}}message"
_TAG_PRESENCE = f"{{{NS_CLIENT}}}presence"
_CLIENT_PREFIX_LEN = len(NS_CLIENT) + 2

IqResult = Element | None
#: An IQ handler: (sender, the whole IQ) -> the result's payload (or ``None``), directly or
#: as an awaitable. Raising :class:`StanzaError` answers with that error.
IqHandler = Callable[[Jid, Element], IqResult | Awaitable[IqResult]]
#: Who may call a handler by default: the RAS's handlers are the gateways' (lock events,
#: scan reports, frame results); a handler for people says so when it registers.
GATEWAYS_ONLY: Final = frozenset({EntityKind.GATEWAY})
EVERYONE: Final = frozenset(EntityKind)


class PresenceListener(Protocol):
    """Told when a full JID becomes available or unavailable (RFC 6121 section 4)."""

    def presence_changed(self, jid: Jid, available: bool) -> None:
        """Called synchronously from the event loop; must not block."""
        ...


class MessageListener(Protocol):
    """Receives messages addressed to the server's domain (e.g. lock events)."""

    def message_received(self, sender: Jid, message: Element) -> None:
        """Called synchronously from the event loop; must not block."""
        ...


class PersonListener(Protocol):
    """Told when a person's session binds and when it ends (module docstring)."""

    def person_bound(self, jid: Jid, owner: str) -> None:
        """``jid`` (full) of the account ``owner`` can now receive; must not block."""
        ...

    def person_gone(self, jid: Jid, owner: str) -> None:
        """The session ``jid`` ended; must not block."""
        ...


class IqRegistry:
    """IQ handlers for stanzas addressed to the domain, keyed by payload namespace."""

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[IqHandler, frozenset[EntityKind]]] = {}

    def register(
        self,
        namespace: str,
        handler: IqHandler,
        kinds: frozenset[EntityKind] = GATEWAYS_ONLY,
    ) -> None:
        """Handle IQ ``get``/``set`` whose first child is in ``namespace``, from sessions
        of ``kinds`` only (others are answered ``forbidden``)."""
        if namespace in self._handlers:
            raise UsageError(f"an IQ handler for {namespace} is already registered")
        if not kinds:
            raise UsageError("an IQ handler needs at least one kind of caller")
        self._handlers[namespace] = (handler, frozenset(kinds))

    def get(self, namespace: str) -> IqHandler | None:
        """The handler for ``namespace``, if any."""
        entry = self._handlers.get(namespace)
        return entry[0] if entry is not None else None

    def lookup(self, namespace: str) -> tuple[IqHandler, frozenset[EntityKind]] | None:
        """The handler for ``namespace`` and the kinds of callers it serves."""
        return self._handlers.get(namespace)


def _empty_result(_sender: Jid, _iq: Element) -> None:
    return None


def _may_forward(sender: C2SSession, target: C2SSession) -> bool:
    """Whether a stanza may pass between two sessions (module docstring, "Authorisation")."""
    return sender.kind is EntityKind.GATEWAY and target.kind is EntityKind.GATEWAY


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What the RAS gives the XMPP endpoint (its settings own the values)."""

    domain: str
    ssl_context: ssl.SSLContext
    host: str = "127.0.0.1"
    #: STARTTLS port (5222 by convention); 0 picks a free port, ``None`` disables it.
    starttls_port: int | None = 5222
    #: Direct TLS port (XEP-0368; 5223 by convention); 0 picks a free port, ``None`` disables.
    direct_tls_port: int | None = 5223
    #: DER of the server certificate: enables SCRAM-SHA-256-PLUS (tls-server-end-point).
    certificate_der: bytes | None = None
    auth_timeout: float = AUTH_TIMEOUT_S
    ping_interval: float = PING_INTERVAL_S
    stanza_rate: float = STANZA_RATE
    stanza_burst: float = STANZA_BURST
    auth_failure_burst: int = AUTH_FAILURE_BURST
    auth_failure_refill_per_s: float = AUTH_FAILURE_REFILL_PER_S
    max_stanza_bytes: int = MAX_STANZA_BYTES
    #: Let several worker processes share the ports (issue 9, item 3).
    reuse_port: bool = False
    #: Connections negotiating (TLS, SASL, bind) at once; beyond it the kernel's listen
    #: backlog holds them (module docstring, "Admission control").
    max_pending_logins: int = MAX_PENDING_LOGINS


@dataclass(frozen=True, slots=True)
class ServerStats:
    """A snapshot of the endpoint's load (for metrics and tests)."""

    #: Accepted connections, negotiating or bound.
    connections: int
    #: Bound sessions.
    sessions: int
    #: Connections negotiating now (accepted, not yet bound), at most ``max_pending_logins``.
    pending_logins: int
    #: The most ever negotiating at once since :meth:`XmppServer.start`.
    pending_logins_peak: int
    max_pending_logins: int
    #: How often the cap was reached and accepting stopped (a reconnect storm shows here).
    accept_pauses: int


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (another platform or libc, e.g. musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> None:
    """Give freed heap pages back to the OS (glibc keeps them otherwise); never fails."""
    trim = _malloc_trim()
    if trim is None:
        return
    try:
        trim(0)
    except OSError:  # pragma: no cover - defensive: a foreign call must not stop the sweep
        logger.debug("malloc_trim failed", exc_info=True)


class XmppServer:
    """The C2S endpoint (see the module docstring)."""

    def __init__(
        self,
        config: ServerConfig,
        credentials: CredentialStore,
        iq_handlers: IqRegistry | None = None,
        presence_listener: PresenceListener | None = None,
        message_listener: MessageListener | None = None,
        person_listener: PersonListener | None = None,
    ) -> None:
        check_context(config.ssl_context)
        self.config = config
        self.credentials = credentials
        self.iq_handlers = iq_handlers or IqRegistry()
        for namespace in (NS_PING, NS_SESSION):
            if self.iq_handlers.get(namespace) is None:
                self.iq_handlers.register(namespace, _empty_result, EVERYONE)
        self.presence_listener = presence_listener
        self.message_listener = message_listener
        self.person_listener = person_listener
        self.channel_binding = (
            tls_server_end_point(config.certificate_der) if config.certificate_der else None
        )
        self.mechanisms: tuple[str, ...] = (
            (MECH_SCRAM_PLUS, MECH_SCRAM) if self.channel_binding else (MECH_SCRAM,)
        )
        self.sasl_features = self._sasl_features()
        self.auth_throttle = SourceThrottle(
            config.auth_failure_burst, config.auth_failure_refill_per_s
        )
        self.ports: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[socket.socket] = []
        self._acceptors: list[asyncio.Task[None]] = []
        self._connections: set[C2SSession] = set()
        self._negotiating: PendingLogins[C2SSession] = PendingLogins(config.max_pending_logins)
        self._slot_free = asyncio.Event()
        self._sessions: dict[str, C2SSession] = {}  # full JID -> bound session
        self._accounts: dict[str, C2SSession] = {}  # bare JID -> bound session
        self._pending: dict[str, tuple[asyncio.Future[Element], str]] = {}
        self._iq_prefix = secrets.token_hex(4)
        self._iq_seq = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._dirty: list[C2SSession] = []
        self._batch = 0
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._all_closed: asyncio.Event | None = None
        self._running = False

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the server runs on (set by :meth:`start`)."""
        if self._loop is None:
            raise ServerClosed("the XMPP server is not started")
        return self._loop

    async def start(self) -> None:
        """Bind the listeners; :attr:`ports` then holds the actual port numbers."""
        self._loop = loop = asyncio.get_running_loop()
        config = self.config
        listening: list[tuple[str, socket.socket, bool]] = []
        try:
            for name, port, direct in (
                ("starttls", config.starttls_port, False),
                ("direct_tls", config.direct_tls_port, True),
            ):
                if port is None:
                    continue
                sockets = await _listen(loop, config.host, port, config.reuse_port)
                listening.extend((name, sock, direct) for sock in sockets)
                self.ports[name] = sockets[0].getsockname()[1]
        except BaseException:
            for _, sock, _ in listening:
                sock.close()
            raise
        self._running = True
        for name, sock, direct in listening:
            self._listeners.append(sock)
            self._acceptors.append(
                loop.create_task(self._accept(sock, direct), name=f"xmpp-accept-{name}")
            )
        self._sweep_handle = loop.call_later(config.ping_interval / SWEEPS_PER_PING, self._sweep)
        logger.info("XMPP endpoint for %s listening on %s", config.domain, self.ports)

    async def stop(self, text: str = "server shutting down") -> None:
        """Close every stream with ``system-shutdown`` (RFC 6120 4.9.3.20) and stop."""
        if not self._running:
            return
        self._running = False
        for acceptor in self._acceptors:
            acceptor.cancel()
        await asyncio.gather(*self._acceptors, return_exceptions=True)
        self._acceptors.clear()
        for listener in self._listeners:
            listener.close()  # what still waits in the backlog is refused
        self._listeners.clear()
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_connections(text)
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(ServerClosed("the XMPP server stopped"))
        self._pending.clear()

    async def _close_connections(self, text: str) -> None:
        self._all_closed = asyncio.Event()
        self.batch_begin()
        for session in list(self._connections):
            session.fail(StreamErrorCondition.SYSTEM_SHUTDOWN, text)
        self.batch_end()
        if not self._connections:
            return
        try:
            await asyncio.wait_for(self._all_closed.wait(), SHUTDOWN_GRACE_S)
        except TimeoutError:  # clients that do not read: cut them off
            for session in list(self._connections):
                if session.transport is not None:
                    session.transport.abort()

    @property
    def stats(self) -> ServerStats:
        """The endpoint's load now (connections, sessions, logins negotiating)."""
        negotiating = self._negotiating
        return ServerStats(
            connections=len(self._connections),
            sessions=len(self._sessions),
            pending_logins=len(negotiating),
            pending_logins_peak=negotiating.peak,
            max_pending_logins=negotiating.cap,
            accept_pauses=negotiating.full_count,
        )

    # --- admission (module docstring, "Admission control") -------------------------------

    async def _accept(self, listener: socket.socket, direct: bool) -> None:
        """Accept connections on ``listener`` while fewer than the cap are negotiating."""
        while True:
            try:
                await self._accept_one(listener, direct)
            except Exception:  # a listener that stops accepting is an outage: never end
                logger.exception("accepting an XMPP connection failed")
                await asyncio.sleep(ACCEPT_RETRY_S)

    async def _accept_one(self, listener: socket.socket, direct: bool) -> None:
        loop = self.loop
        await self._wait_for_slot()
        try:
            sock, _ = await loop.sock_accept(listener)
        except OSError as exc:
            if exc.errno in _ACCEPT_RESOURCE_ERRORS:
                logger.warning("cannot accept XMPP connections: %s", exc)
                await asyncio.sleep(ACCEPT_RETRY_S)
            return  # e.g. ECONNABORTED: that client is gone, the next one may not be
        try:
            # The other listener may have taken the last slot while we waited in accept:
            # this connection waits here, unread and with no timer, as in the backlog.
            await self._wait_for_slot()
        except BaseException:
            sock.close()
            raise
        session = C2SSession(self, direct)
        self._negotiating.admit(session)
        try:
            await loop.connect_accepted_socket(functools.partial(_same, session), sock)
        except (OSError, ValueError) as exc:  # the socket died under us: free its slot
            logger.debug("accepted connection lost before it started: %s", exc)
            sock.close()
            self._release(session)

    async def _wait_for_slot(self) -> None:
        negotiating = self._negotiating
        if not negotiating.full:
            return
        negotiating.full_count += 1
        logger.debug("%d logins negotiating: accepting paused", len(negotiating))
        while negotiating.full:
            self._slot_free.clear()
            await self._slot_free.wait()

    def _release(self, session: C2SSession) -> None:
        """``session`` stopped negotiating (bound or closed): maybe accept the next one."""
        if self._negotiating.release(session) and not self._negotiating.full:
            self._slot_free.set()

    # --- what sessions call -----------------------------------------------------------------

    def session_opened(self, session: C2SSession) -> None:
        """A TCP connection was accepted."""
        if not self._running:
            if session.transport is not None:
                session.transport.abort()
            return
        self._connections.add(session)

    def session_closed(self, session: C2SSession) -> None:
        """The connection is gone."""
        self._release(session)
        self.session_finished(session)
        self._connections.discard(session)
        if self._all_closed is not None and not self._connections:
            self._all_closed.set()

    def session_finished(self, session: C2SSession) -> None:
        """The stream ended: unregister the session (idempotent)."""
        jid = session.jid
        if jid is None or self._sessions.get(jid.full) is not session:
            return
        del self._sessions[jid.full]
        if self._accounts.get(jid.bare) is session:
            del self._accounts[jid.bare]
        if session.available:
            session.available = False
            if session.kind is EntityKind.GATEWAY:
                self._notify(jid, available=False)
        if session.kind is EntityKind.PERSON and self.person_listener is not None:
            try:
                self.person_listener.person_gone(jid, session.owner)
            except Exception:
                logger.exception("person listener failed")
        for iq_id, (future, target) in list(self._pending.items()):
            if target == jid.full and not future.done():
                future.set_exception(RecipientOffline(f"{jid.full} went offline"))
                del self._pending[iq_id]

    def bind(self, session: C2SSession) -> None:
        """``session`` bound its resource: register it, replacing the account's old one."""
        jid = session.jid
        assert jid is not None
        old = self._accounts.get(jid.bare)
        if old is not None:
            old.fail(StreamErrorCondition.CONFLICT, "replaced by a new session")
            self.session_finished(old)
        self._sessions[jid.full] = session
        self._accounts[jid.bare] = session
        self._release(session)
        logger.debug("session bound: %s (%s) from %s", jid.full, session.kind.value, session.peer)
        if session.kind is EntityKind.PERSON and self.person_listener is not None:
            try:
                self.person_listener.person_bound(jid, session.owner)
            except Exception:
                logger.exception("person listener failed")

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` as a task the server tracks (and cancels on :meth:`stop`)."""
        task = self.loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def batch_begin(self) -> None:
        """Start coalescing output (nests)."""
        self._batch += 1

    def batch_end(self) -> None:
        """End coalescing; at the outermost level flush every session written to."""
        self._batch -= 1
        if self._batch == 0 and self._dirty:
            dirty, self._dirty = self._dirty, []
            for session in dirty:
                session.flush()

    def mark_dirty(self, session: C2SSession) -> bool:
        """Queue ``session`` for the flush at batch end; False if not batching (flush now)."""
        if self._batch == 0:
            return False
        self._dirty.append(session)
        return True

    # --- routing -----------------------------------------------------------------------------

    def route(self, session: C2SSession, stanza: Element) -> None:
        """Deliver a stanza from a bound session (RFC 6120 sections 8 and 10)."""
        sender = session.jid
        assert sender is not None
        stanza.set("from", sender.full)
        kind = stanza.tag
        to = stanza.get("to")
        if kind == _TAG_IQ:
            self._route_iq(session, sender, stanza, to)
        elif kind == _TAG_MESSAGE:
            self._route_message(session, sender, stanza, to)
        else:
            self._route_presence(session, sender, stanza, to)

    def _target(self, to: str) -> tuple[C2SSession | None, bool]:
        """(session for ``to``, whether ``to`` is this server or an account on it)."""
        session = self._sessions.get(to)
        if session is not None:
            return session, False
        jid = Jid.parse(to)
        if jid.domain != self.config.domain:
            return None, False
        if jid.resource:
            return self._sessions.get(jid.full), False
        if not jid.local:
            return None, True  # the domain itself
        return self._accounts.get(jid.bare), False

    def _route_iq(self, session: C2SSession, sender: Jid, iq: Element, to: str | None) -> None:
        iq_type = iq.get("type")
        if iq_type not in ("get", "set", "result", "error") or not iq.get("id"):
            self._reply_error(session, iq, StanzaErrorCondition.BAD_REQUEST)
            return
        if to is None or to in (self.config.domain, sender.bare):
            self._iq_to_server(session, sender, iq, iq_type)
            return
        try:
            target, to_server = self._target(to)
        except JidMalformed:
            self._reply_error(session, iq, StanzaErrorCondition.JID_MALFORMED)
            return
        if to_server:
            self._iq_to_server(session, sender, iq, iq_type)
        elif (
            target is not None
            and _may_forward(session, target)
            and (iq_type in ("result", "error") or to.find("/") > 0)
        ):
            target.send(serialize(iq))
        else:  # offline, or an IQ to a bare JID we answer for the account (RFC 6121 8.5.1)
            self._reply_error(session, iq, StanzaErrorCondition.SERVICE_UNAVAILABLE)

    def _iq_to_server(self, session: C2SSession, sender: Jid, iq: Element, iq_type: str) -> None:
        if iq_type in ("result", "error"):
            pending = self._pending.get(iq.get("id", ""))
            if pending is not None and pending[1] == sender.full:
                del self._pending[iq.get("id", "")]
                if not pending[0].done():
                    pending[0].set_result(iq)
            return
        payload = iq[0] if len(iq) else None
        namespace = payload.tag[1:].partition("}")[0] if payload is not None else ""
        entry = self.iq_handlers.lookup(namespace)
        if entry is None or len(iq) != 1:
            self._reply_error(session, iq, StanzaErrorCondition.SERVICE_UNAVAILABLE)
            return
        handler, kinds = entry
        if session.kind not in kinds:
            logger.info("IQ %s from %s (%s) refused", namespace, sender.bare, session.kind.value)
            self._reply_error(session, iq, StanzaErrorCondition.FORBIDDEN)
            return
        try:
            result = handler(sender, iq)
        except StanzaError as exc:
            self._reply_error(session, iq, exc.condition, exc.text)
            return
        if inspect.isawaitable(result):
            self.spawn(self._answer_later(session, iq, result), "xmpp-iq-handler")
        else:
            self._reply_result(session, iq, result)

    async def _answer_later(
        self, session: C2SSession, iq: Element, pending: Awaitable[IqResult]
    ) -> None:
        try:
            result = await pending
        except StanzaError as exc:
            self._reply_error(session, iq, exc.condition, exc.text)
            return
        except Exception:
            logger.exception("IQ handler failed")
            self._reply_error(session, iq, StanzaErrorCondition.INTERNAL_SERVER_ERROR)
            return
        if session.state is State.ESTABLISHED:
            self._reply_result(session, iq, result)

    def _reply_result(self, session: C2SSession, iq: Element, payload: IqResult) -> None:
        head = (
            f"<iq type='result' id='{escape_attr(iq.get('id', ''))}'"
            f" from='{escape_attr(iq.get('to') or self.config.domain)}'"
            f" to='{escape_attr(iq.get('from', ''))}'"
        )
        if payload is None:
            session.send(f"{head}/>".encode())
        else:
            session.send(f"{head}>".encode() + serialize(payload) + b"</iq>")

    def _reply_error(
        self,
        session: C2SSession,
        stanza: Element,
        condition: StanzaErrorCondition | None,
        text: str = "",
    ) -> None:
        """Answer ``stanza`` with an error, except errors to errors (RFC 6120 8.3.1)."""
        if stanza.get("type") in ("error", "result"):
            return
        reply = Element(stanza.tag, type="error")
        if stanza.get("id"):
            reply.set("id", stanza.get("id", ""))
        reply.set("from", stanza.get("to") or self.config.domain)
        reply.set("to", stanza.get("from", ""))
        reply.append((condition or StanzaErrorCondition.UNDEFINED_CONDITION).element(text=text))
        session.send(serialize(reply))

    def _route_message(
        self, session: C2SSession, sender: Jid, message: Element, to: str | None
    ) -> None:
        to_server = to is None or to == self.config.domain
        target: C2SSession | None = None
        if not to_server:
            assert to is not None
            try:
                target, to_server = self._target(to)
            except JidMalformed:
                self._reply_error(session, message, StanzaErrorCondition.JID_MALFORMED)
                return
        if to_server:
            if session.kind is not EntityKind.GATEWAY:
                self._reply_error(session, message, StanzaErrorCondition.FORBIDDEN)
            elif self.message_listener is not None:
                self.message_listener.message_received(sender, message)
        elif target is not None and _may_forward(session, target):
            target.send(serialize(message))
        else:  # offline, or not for this sender: the same answer (module docstring)
            self._reply_error(session, message, StanzaErrorCondition.SERVICE_UNAVAILABLE)

    def _route_presence(
        self, session: C2SSession, sender: Jid, presence: Element, to: str | None
    ) -> None:
        presence_type = presence.get("type")
        if to is None or to == self.config.domain:
            gateway = session.kind is EntityKind.GATEWAY
            if presence_type is None and not session.available:
                session.available = True
                if gateway:
                    self._notify(sender, available=True)
            elif presence_type == "unavailable" and session.available:
                session.available = False
                if gateway:
                    self._notify(sender, available=False)
            return
        try:
            target, _ = self._target(to)
        except JidMalformed:
            return
        if target is not None and _may_forward(session, target):
            target.send(serialize(presence))

    def _notify(self, jid: Jid, available: bool) -> None:
        if self.presence_listener is None:
            return
        try:
            self.presence_listener.presence_changed(jid, available)
        except Exception:
            logger.exception("presence listener failed")

    # --- the RAS's API -------------------------------------------------------------------

    @property
    def online(self) -> frozenset[str]:
        """Full JIDs of the sessions that announced availability."""
        return frozenset(full for full, s in self._sessions.items() if s.available)

    def disconnect(self, bare_jid: str, condition: StreamErrorCondition, text: str = "") -> bool:
        """End the session bound to the account ``bare_jid`` with a stream error (e.g. a
        revoked gateway: ``not-authorized``). False if the account has no session."""
        session = self._accounts.get(bare_jid)
        if session is None:
            return False
        session.fail(condition, text)
        return True

    def push(self, full_jid: str, data: bytes, max_unread: int) -> bool:
        """Send ``data`` (whole stanzas) from the server to a bound session.

        The session's unread output (the transport's write buffer) is its queue: if it
        already holds more than ``max_unread`` bytes the peer is not reading, and the
        session is closed with ``policy-violation`` rather than let it grow. False if the
        session is gone or was closed for that.
        """
        session = self._sessions.get(full_jid)
        if session is None or session.state is not State.ESTABLISHED:
            return False
        transport = session.transport
        if transport is None or transport.get_write_buffer_size() > max_unread:
            logger.warning("%s does not read what it is sent: closed", full_jid)
            session.fail(StreamErrorCondition.POLICY_VIOLATION, "not reading: reconnect and resume")
            if session.transport is not None:
                # A peer that does not read would never take the error either: drop the
                # connection and what it holds now, not when (if ever) it drains.
                session.transport.abort()
            return False
        session.send(data)
        return True

    def is_connected(self, full_jid: str) -> bool:
        """Whether ``full_jid`` has a bound session (available or not)."""
        return full_jid in self._sessions

    async def iq_request(
        self,
        to: Jid | str,
        payload: Element,
        timeout: float,  # noqa: ASYNC109 - part of the request: one timer, no task
        iq_type: str = "set",
    ) -> Element:
        """Send an IQ with ``payload`` to a connected full JID and return its result stanza.

        Raises :class:`RecipientOffline` (no session, or it closed before answering),
        :class:`StanzaError` (the peer answered ``type='error'``), :class:`IqTimeout`, or
        :class:`ServerClosed`.
        """
        if not self._running:
            raise ServerClosed("the XMPP server is not running")
        if iq_type not in ("get", "set"):
            raise UsageError("iq_type must be 'get' or 'set'")
        full = str(to)
        session = self._sessions.get(full)
        if session is None:
            raise RecipientOffline(f"{full} is not connected")
        loop = self.loop
        self._iq_seq += 1
        iq_id = f"{self._iq_prefix}{self._iq_seq:x}"
        future: asyncio.Future[Element] = loop.create_future()
        self._pending[iq_id] = (future, full)
        session.send(
            f"<iq type='{iq_type}' id='{iq_id}' to='{escape_attr(full)}'"
            f" from='{escape_attr(self.config.domain)}'>".encode()
            + serialize(payload)
            + b"</iq>"
        )
        timer = loop.call_later(timeout, self._iq_expired, iq_id)
        try:
            response = await future
        finally:
            timer.cancel()
            self._pending.pop(iq_id, None)
        if response.get("type") == "error":
            raise StanzaError.from_stanza(response)
        return response

    def _iq_expired(self, iq_id: str) -> None:
        pending = self._pending.pop(iq_id, None)
        if pending is not None and not pending[0].done():
            pending[0].set_exception(IqTimeout(f"no answer from {pending[1]}"))

    # --- keepalive ------------------------------------------------------------------------------

    def _sweep(self) -> None:
        """XEP-0199 keepalive over all bound sessions (see the module docstring)."""
        period = self.config.ping_interval / SWEEPS_PER_PING
        self._sweep_handle = self.loop.call_later(period, self._sweep)
        domain = escape_attr(self.config.domain)
        shed = 0
        self.batch_begin()
        try:
            for full, session in list(self._sessions.items()):
                idle = session.idle = session.idle + 1
                if idle == 1:
                    if session.shed():
                        shed += 1
                    else:
                        session.fail(StreamErrorCondition.CONNECTION_TIMEOUT, "stalled mid-stanza")
                elif idle == SWEEPS_PER_PING:
                    session.send(
                        f"<iq type='get' id='ka{idle}' from='{domain}' to='{escape_attr(full)}'>"
                        f"<ping xmlns='{NS_PING}'/></iq>".encode()
                    )
                elif idle >= 2 * SWEEPS_PER_PING:
                    session.fail(StreamErrorCondition.CONNECTION_TIMEOUT, "no answer to ping")
        finally:
            self.batch_end()
        if shed:
            # The parsers just dropped were freed into glibc's arenas, which keep them:
            # give the pages back so an idle server's resident memory actually shrinks.
            release_free_memory()

    def _sasl_features(self) -> bytes:
        mechanisms = "".join(f"<mechanism>{m}</mechanism>" for m in self.mechanisms)
        binding = (
            f"<sasl-channel-binding xmlns='{NS_SASL_CB}'>"
            f"<channel-binding type='{CHANNEL_BINDING_TYPE}'/></sasl-channel-binding>"
            if self.channel_binding
            else ""
        )
        return (
            f"<stream:features><mechanisms xmlns='{NS_SASL}'>{mechanisms}</mechanisms>"
            f"{binding}</stream:features>"
        ).encode()


def _same(session: C2SSession) -> C2SSession:
    """The protocol factory of an already-made session (:meth:`XmppServer._accept`)."""
    return session


async def _listen(
    loop: asyncio.AbstractEventLoop, host: str, port: int, reuse_port: bool
) -> list[socket.socket]:
    """Listening sockets for ``host``:``port`` (every address it resolves to), non-blocking,
    with a backlog of :data:`LISTEN_BACKLOG`; served by :meth:`XmppServer._accept`."""
    infos = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if os.name == "posix":  # as asyncio: rebind at once after a restart
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(
                    exc.errno, f"cannot listen on {host} port {port}: {exc.strerror}"
                ) from None
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
