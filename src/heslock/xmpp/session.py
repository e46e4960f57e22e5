"""One client-to-server XMPP session: an ``asyncio.Protocol`` and its state machine.

Theory of operation
-------------------
Each accepted TCP connection gets one :class:`C2SSession`. It is a plain
``asyncio.Protocol`` (no StreamReader/StreamWriter, no task per connection: both cost
memory per held gateway) with ``__slots__``; TLS runs inside it on memory BIOs
(:mod:`heslock.xmpp.tls`), XML goes through the sans-I/O :class:`StreamParser`, and every
top-level element becomes one *input* of the table below. Inputs the table does not list
for the current state are protocol violations: :meth:`C2SSession._refuse` picks the RFC 6120
condition and the stream is closed. The server (:mod:`heslock.xmpp.server`) owns routing,
limits shared between sessions and the listeners.

Session state machine (RFC 6120 sections 4-7; ``[x]`` is what the session sends)::

    state              input        next                notes
    -----------------  -----------  ------------------  --------------------------------------
    WAIT_HEADER_PLAIN  HEADER       WAIT_STARTTLS       [header, features: starttls required]
    WAIT_STARTTLS      STARTTLS     TLS_HANDSHAKE       [proceed]; old parser dropped (5.4.3.3)
    TLS_HANDSHAKE      TLS_DONE     WAIT_HEADER_TLS     direct TLS (XEP-0368) starts here
    WAIT_HEADER_TLS    HEADER       WAIT_AUTH           [header, features: mechanisms]
    WAIT_AUTH          AUTH         SASL_LOOKUP         credential store queried (async)
    WAIT_AUTH          ABORT        WAIT_AUTH           [failure: aborted]
    SASL_LOOKUP        LOOKUP_DONE  SASL_CHALLENGE      [challenge: server-first]
    SASL_LOOKUP        SASL_FAIL    WAIT_AUTH           [failure] (throttled, bounded retries)
    SASL_CHALLENGE     RESPONSE     SASL_VERIFY         proof checked synchronously
    SASL_CHALLENGE     ABORT        WAIT_AUTH           [failure: aborted]
    SASL_VERIFY        SASL_OK      WAIT_HEADER_AUTHED  [success: server-final]; restart (6.4.6)
    SASL_VERIFY        SASL_FAIL    WAIT_AUTH           [failure: not-authorized]
    WAIT_HEADER_AUTHED HEADER       WAIT_BIND           [header, features: bind]
    WAIT_BIND          BIND         ESTABLISHED         [bind result]; auth timer stopped
    ESTABLISHED        STANZA       ESTABLISHED         routed by the server (section 8/10)
    (any open state)   CLOSE        CLOSED              [</stream:stream>] (4.4)
    (any)              ERROR        CLOSED              [stream error, </stream:stream>]

Refusals (inputs missing from the table): ``AUTH`` before TLS gets
``<failure><encryption-required/></failure>`` and the stream error ``policy-violation``
(STARTTLS is mandatory-to-negotiate here, RFC 6120 5.3.1, so SASL never runs in the clear);
a stanza before binding gets ``not-authorized`` (stanzas are processed only once the stream
is authenticated and a resource bound, RFC 6120 sections 6 and 7); anything else out of order gets
``policy-violation``; an unknown top-level element after binding ``unsupported-stanza-type``.
The authentication timer (:data:`heslock.xmpp.server.AUTH_TIMEOUT_S`) ends any session that
has not bound a resource in time with ``connection-timeout``. It starts in
``connection_made``: the server makes the session only when it admits the connection out of
the listen backlog (:mod:`heslock.xmpp.server`, "Admission control"), so time spent queued
there never counts against it.

Writes are coalesced: while the server dispatches one input chunk, everything queued for
any session goes out as one TLS record and one ``send`` per session at the end.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import secrets
import ssl
from enum import IntEnum
from typing import TYPE_CHECKING, Final, cast
from xml.etree.ElementTree import Element

from heslock.xmpp.errors import (
    NS_CLIENT,
    NS_SASL,
    SaslFailure,
    StanzaErrorCondition,
    StreamError,
    StreamErrorCondition,
)
from heslock.xmpp.jid import Jid, JidMalformed, valid_localpart
from heslock.xmpp.limits import TokenBucket
from heslock.xmpp.sasl import (
    MAX_SASL_MESSAGE,
    MECH_SCRAM_PLUS,
    EntityKind,
    SaslError,
    ScramExchange,
    parse_client_first,
)
from heslock.xmpp.stream import (
    STREAM_CLOSE,
    STREAM_CLOSED,
    StreamOpen,
    StreamParser,
    serialize,
    stream_header,
)
from heslock.xmpp.tls import TlsLayer

if TYPE_CHECKING:
    from heslock.xmpp.server import XmppServer

logger = logging.getLogger(__name__)

NS_TLS: Final = "urn:ietf:params:xml:ns:xmpp-tls"
NS_BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SASL_CB: Final = "urn:xmpp:sasl-cb:0"  # XEP-0440: which channel-binding types we offer
#: Failed SASL attempts allowed on one stream before it is closed (RFC 6120 6.4.5 lets the
#: server limit retries); the per-address throttle bounds guessing across streams.
MAX_AUTH_ATTEMPTS: Final = 3
#: A peer whose unread output exceeds this is too slow to keep: it is dropped rather than
#: letting one reader hold unbounded server memory.
MAX_WRITE_BUFFER: Final = 1024 * 1024

_TAG_STARTTLS = f"{{{NS_TLS}}}starttls"
_TAG_AUTH = f"{{{NS_SASL}}}auth"
_TAG_RESPONSE = f"{{{NS_SASL}}}response"
_TAG_ABORT = f"{{{NS_SASL}}}abort"
_TAG_IQ = f"{{{NS_CLIENT}}}iq"
_STANZA_TAGS = frozenset({_TAG_IQ, f"{{{NS_CLIENT}}}message", f"{{{NS_CLIENT}}}presence"})
_TAG_BIND = f"{{{NS_BIND}}}bind"

_PROCEED = f"<proceed xmlns='{NS_TLS}'/>".encode()
_FEATURES_TLS = (
    f"<stream:features><starttls xmlns='{NS_TLS}'><required/></starttls></stream:features>"
).encode()
_FEATURES_BIND = f"<stream:features><bind xmlns='{NS_BIND}'/></stream:features>".encode()


class State(IntEnum):
    """Session states; see the module docstring for the transition table."""

    WAIT_HEADER_PLAIN = 0
    WAIT_STARTTLS = 1
    TLS_HANDSHAKE = 2
    WAIT_HEADER_TLS = 3
    WAIT_AUTH = 4
    SASL_LOOKUP = 5
    SASL_CHALLENGE = 6
    SASL_VERIFY = 7
    WAIT_HEADER_AUTHED = 8
    WAIT_BIND = 9
    ESTABLISHED = 10
    CLOSED = 11


class Input(IntEnum):
    """What can happen to a session: top-level elements and internal outcomes."""

    HEADER = 0
    STARTTLS = 1
    TLS_DONE = 2
    AUTH = 3
    LOOKUP_DONE = 4
    RESPONSE = 5
    ABORT = 6
    SASL_OK = 7
    SASL_FAIL = 8
    BIND = 9
    STANZA = 10
    CLOSE = 11
    ERROR = 12
    OTHER = 13  # a top-level element that is none of the above


S, I = State, Input  # noqa: E741 (short aliases make the table readable)
TRANSITIONS: Final[dict[tuple[State, Input], State]] = {
    (S.WAIT_HEADER_PLAIN, I.HEADER): S.WAIT_STARTTLS,
    (S.WAIT_STARTTLS, I.STARTTLS): S.TLS_HANDSHAKE,
    (S.TLS_HANDSHAKE, I.TLS_DONE): S.WAIT_HEADER_TLS,
    (S.WAIT_HEADER_TLS, I.HEADER): S.WAIT_AUTH,
    (S.WAIT_AUTH, I.AUTH): S.SASL_LOOKUP,
    (S.WAIT_AUTH, I.ABORT): S.WAIT_AUTH,
    (S.SASL_LOOKUP, I.LOOKUP_DONE): S.SASL_CHALLENGE,
    (S.SASL_LOOKUP, I.SASL_FAIL): S.WAIT_AUTH,
    (S.SASL_CHALLENGE, I.RESPONSE): S.SASL_VERIFY,
    (S.SASL_CHALLENGE, I.ABORT): S.WAIT_AUTH,
    (S.SASL_VERIFY, I.SASL_OK): S.WAIT_HEADER_AUTHED,
    (S.SASL_VERIFY, I.SASL_FAIL): S.WAIT_AUTH,
    (S.WAIT_HEADER_AUTHED, I.HEADER): S.WAIT_BIND,
    (S.WAIT_BIND, I.BIND): S.ESTABLISHED,
    (S.ESTABLISHED, I.STANZA): S.ESTABLISHED,
}
_OPEN_STATES = frozenset(State) - {State.CLOSED}
for _state in _OPEN_STATES:
    TRANSITIONS[(_state, I.CLOSE)] = S.CLOSED
for _state in State:
    TRANSITIONS[(_state, I.ERROR)] = S.CLOSED
del S, I, _state

_HEADER_STATES = {State.WAIT_HEADER_PLAIN, State.WAIT_HEADER_TLS, State.WAIT_HEADER_AUTHED}


def _classify(element: Element, state: State) -> Input:
    tag = element.tag
    if tag in _STANZA_TAGS:
        if state is State.WAIT_BIND and tag == _TAG_IQ and element.find(_TAG_BIND) is not None:
            return Input.BIND
        return Input.STANZA
    return {
        _TAG_STARTTLS: Input.STARTTLS,
        _TAG_AUTH: Input.AUTH,
        _TAG_RESPONSE: Input.RESPONSE,
        _TAG_ABORT: Input.ABORT,
    }.get(tag, Input.OTHER)


def _sasl_payload(element: Element) -> str:
    text = (element.text or "").strip()
    if len(text) > MAX_SASL_MESSAGE:
        raise SaslError(SaslFailure.MALFORMED_REQUEST)
    if text in ("", "="):  # "=" is an empty initial response (RFC 6120 6.4.2)
        return ""
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise SaslError(SaslFailure.INCORRECT_ENCODING) from None


class C2SSession(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    __slots__ = (
        "_auth_timer",
        "_bucket",
        "_header_sent",
        "_out",
        "_parser",
        "_sasl",
        "_sasl_attempts",
        "_tls",
        "available",
        "idle",
        "jid",
        "kind",
        "owner",
        "peer",
        "server",
        "state",
        "transport",
    )

    def __init__(self, server: XmppServer, direct_tls: bool) -> None:
        self.server = server
        self.state = State.TLS_HANDSHAKE if direct_tls else State.WAIT_HEADER_PLAIN
        self._tls: TlsLayer | None = TlsLayer(server.config.ssl_context) if direct_tls else None
        self._parser = StreamParser(server.config.max_stanza_bytes)
        self.transport: asyncio.Transport | None = None
        self.jid: Jid | None = None
        #: What authenticated (set with ``jid`` at SASL success; the server routes by it).
        self.kind = EntityKind.GATEWAY
        self.owner = ""
        self.available = False
        self.peer = ""
        self.idle = 0  # keepalive sweeps since the last byte received (server._sweep)
        self._out: list[bytes] | None = None
        self._header_sent = False
        self._sasl: ScramExchange | None = None
        self._sasl_attempts = 0
        self._auth_timer: asyncio.TimerHandle | None = None
        self._bucket: TokenBucket | None = None

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports are not asyncio.Transport
        # subclasses, yet have the same interface.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "?"
        server = self.server
        self._auth_timer = server.loop.call_later(server.config.auth_timeout, self._auth_expired)
        server.session_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = State.CLOSED
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        self.transport = None
        self._sasl = None
        self.server.session_closed(self)

    def eof_received(self) -> bool | None:
        try:
            self._parser.eof()
        except StreamError as exc:
            logger.debug("stream from %s ended mid-stanza: %s", self.peer, exc)
        return None  # let the transport close

    def data_received(self, data: bytes) -> None:
        self.idle = 0
        tls = self._tls
        if tls is not None:
            try:
                data, records, closed = tls.receive(data)
            except ssl.SSLError as exc:
                logger.info("TLS with %s failed: %s", self.peer, exc.reason or exc)
                self._abort()
                return
            if records and self.transport is not None:
                self.transport.write(records)
            if self.state is State.TLS_HANDSHAKE and tls.established:
                self._step(Input.TLS_DONE)
            if closed:
                self._abort()
                return
            if not data:
                return
        if self.state is State.CLOSED:
            return
        server = self.server
        server.batch_begin()
        try:
            self._receive(data)
        finally:
            server.batch_end()

    # --- input --------------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        parser = self._parser
        try:
            events = parser.feed(data)
            for event in events:
                if self.state is State.CLOSED or self._parser is not parser:
                    # a restart (STARTTLS, SASL success) or a close: whatever the old
                    # document still held is dropped, never interpreted (5.4.3.3)
                    break
                if isinstance(event, Element):
                    self._element(event)
                elif event is STREAM_CLOSED:
                    self._step(Input.CLOSE)
                    self._close_stream()
                elif isinstance(event, StreamOpen):
                    self._stream_open(event)
        except StreamError as exc:
            self.fail(exc.condition, exc.text)

    def _step(self, event: Input) -> State:
        """Apply the transition table; a missing entry is a protocol violation."""
        state = self.state
        following = TRANSITIONS.get((state, event))
        if following is None:
            raise self._refuse(state, event)
        self.state = following
        return following

    def _refuse(self, state: State, event: Input) -> StreamError:
        if event is Input.AUTH and state in (State.WAIT_HEADER_PLAIN, State.WAIT_STARTTLS):
            self.send(SaslFailure.ENCRYPTION_REQUIRED.to_xml())
            return StreamError(StreamErrorCondition.POLICY_VIOLATION, "TLS is required before SASL")
        if event in (Input.STANZA, Input.BIND) and state is not State.ESTABLISHED:
            return StreamError(
                StreamErrorCondition.NOT_AUTHORIZED, "stanza before resource binding"
            )
        if event is Input.OTHER and state is State.ESTABLISHED:
            return StreamError(StreamErrorCondition.UNSUPPORTED_STANZA_TYPE)
        return StreamError(
            StreamErrorCondition.POLICY_VIOLATION, f"{event.name} not expected in {state.name}"
        )

    def _stream_open(self, header: StreamOpen) -> None:
        if self.state not in _HEADER_STATES:
            raise self._refuse(self.state, Input.HEADER)
        config = self.server.config
        self.send(stream_header(config.domain, secrets.token_hex(8)))
        self._header_sent = True
        if header.content_ns != NS_CLIENT:
            raise StreamError(StreamErrorCondition.INVALID_NAMESPACE, "content namespace")
        if (header.to or "").lower() != config.domain:
            raise StreamError(StreamErrorCondition.HOST_UNKNOWN)
        if header.version != "1.0":
            raise StreamError(StreamErrorCondition.UNSUPPORTED_VERSION)
        state = self._step(Input.HEADER)
        if state is State.WAIT_STARTTLS:
            self.send(_FEATURES_TLS)
        elif state is State.WAIT_AUTH:
            self.send(self.server.sasl_features)
        else:
            self.send(_FEATURES_BIND)

    def _element(self, element: Element) -> None:
        state = self.state
        if state is State.ESTABLISHED:
            tag = element.tag
            if tag in _STANZA_TAGS:
                self._stanza(element)
                return
        event = _classify(element, state)
        if event is Input.STARTTLS:
            self._starttls()
        elif event is Input.AUTH:
            self._auth(element)
        elif event is Input.RESPONSE:
            self._response(element)
        elif event is Input.ABORT:
            self._step(Input.ABORT)
            self._sasl = None
            self.send(SaslFailure.ABORTED.to_xml())
        elif event is Input.BIND:
            self._bind(element)
        else:
            raise self._refuse(state, event)

    def _stanza(self, element: Element) -> None:
        server = self.server
        config = server.config
        bucket = self._bucket
        if bucket is not None:
            now = server.loop.time()
            delay = bucket.take(config.stanza_rate, config.stanza_burst, now)
            if delay > 0 and self.transport is not None and self.transport.is_reading():
                self.transport.pause_reading()
                server.loop.call_later(delay, self._resume_reading)
        server.route(self, element)

    def shed(self) -> bool:
        """Drop the idle stream's XML parser; False if the peer stalled mid-stanza."""
        return self._parser.shed()

    def _resume_reading(self) -> None:
        if self.transport is not None and self.state is not State.CLOSED:
            self.transport.resume_reading()

    # --- negotiation ----------------------------------------------------------------------

    def _starttls(self) -> None:
        self._step(Input.STARTTLS)
        transport = self.transport
        assert transport is not None
        self.flush()
        transport.write(_PROCEED)  # the last plaintext byte of this connection
        self._tls = TlsLayer(self.server.config.ssl_context)
        self._parser = StreamParser(self.server.config.max_stanza_bytes)
        self._header_sent = False

    def _auth(self, element: Element) -> None:
        server = self.server
        now = server.loop.time()
        self._step(Input.AUTH)
        mechanism = element.get("mechanism", "")
        try:
            client_first, username = self._vet_auth(mechanism, element, now)
        except SaslError as exc:
            self._sasl_failed(exc.condition)
            return
        server.spawn(self._lookup(mechanism, username, client_first), "xmpp-sasl-lookup")

    def _vet_auth(self, mechanism: str, element: Element, now: float) -> tuple[str, str]:
        """(client-first, user name) of an acceptable ``<auth/>``; raises :class:`SaslError`."""
        server = self.server
        if mechanism not in server.mechanisms:
            raise SaslError(SaslFailure.INVALID_MECHANISM)
        if not server.auth_throttle.allowed(self.peer, now):
            raise SaslError(SaslFailure.TEMPORARY_AUTH_FAILURE)
        client_first = _sasl_payload(element)
        flag, username = parse_client_first(client_first)
        if not valid_localpart(username):
            raise SaslError(SaslFailure.NOT_AUTHORIZED)  # cannot be an account of ours
        if flag == "y" and MECH_SCRAM_PLUS in server.mechanisms:
            raise SaslError(SaslFailure.NOT_AUTHORIZED)  # a downgrade (RFC 5802 section 6)
        return client_first, username

    async def _lookup(self, mechanism: str, username: str, client_first: str) -> None:
        server = self.server
        try:
            credentials = await server.credentials.scram_sha256(username)
        except Exception:  # the store failed: not the client's fault, say so (6.5.11)
            logger.exception("credential store failed during SASL")
            if self.state is State.SASL_LOOKUP:
                self._sasl_failed(SaslFailure.TEMPORARY_AUTH_FAILURE, count=False)
            return
        if self.state is not State.SASL_LOOKUP:
            return  # closed (or timed out) while we waited
        binding = server.channel_binding if mechanism == MECH_SCRAM_PLUS else None
        server.batch_begin()
        try:
            exchange = ScramExchange(mechanism, credentials, username, binding)
            challenge = exchange.first(client_first)
            self._step(Input.LOOKUP_DONE)
            self._sasl = exchange
            self.send(
                f"<challenge xmlns='{NS_SASL}'>"
                f"{base64.b64encode(challenge.encode()).decode()}</challenge>".encode()
            )
        except SaslError as exc:
            self._sasl_failed(exc.condition)
        except StreamError as exc:
            self.fail(exc.condition, exc.text)
        finally:
            server.batch_end()

    def _response(self, element: Element) -> None:
        self._step(Input.RESPONSE)
        exchange = self._sasl
        self._sasl = None
        if exchange is None:
            self._sasl_failed(SaslFailure.NOT_AUTHORIZED)
            return
        try:
            server_final = exchange.final(_sasl_payload(element))
        except SaslError as exc:
            self._sasl_failed(exc.condition)
            return
        self._step(Input.SASL_OK)
        self.send(
            f"<success xmlns='{NS_SASL}'>"
            f"{base64.b64encode(server_final.encode()).decode()}</success>".encode()
        )
        self.jid = Jid(exchange.username.lower(), self.server.config.domain)
        self.kind, self.owner = exchange.kind, exchange.owner
        self._parser = StreamParser(self.server.config.max_stanza_bytes)
        self._header_sent = False

    def _sasl_failed(self, condition: SaslFailure, count: bool = True) -> None:
        self._step(Input.SASL_FAIL)
        self._sasl = None
        self.send(condition.to_xml())
        if count:
            self._sasl_attempts += 1
            if condition is not SaslFailure.TEMPORARY_AUTH_FAILURE:
                self.server.auth_throttle.failed(self.peer, self.server.loop.time())
        logger.info("SASL failure for %s: %s", self.peer, condition.value)
        if condition is SaslFailure.TEMPORARY_AUTH_FAILURE and count:
            self.fail(StreamErrorCondition.POLICY_VIOLATION, "too many failed authentications")
        elif self._sasl_attempts >= MAX_AUTH_ATTEMPTS:
            self.fail(StreamErrorCondition.NOT_AUTHORIZED, "too many failed authentications")

    def _bind(self, element: Element) -> None:
        iq_id = element.get("id")
        bind = element.find(_TAG_BIND)
        if element.get("type") != "set" or not iq_id or bind is None or self.jid is None:
            raise StreamError(StreamErrorCondition.POLICY_VIOLATION, "malformed bind request")
        resource = (bind.findtext(f"{{{NS_BIND}}}resource") or "").strip()
        try:
            jid = self.jid.with_resource(resource or secrets.token_hex(6))
        except JidMalformed:
            error = Element(_TAG_IQ, type="error", id=iq_id)
            error.append(StanzaErrorCondition.BAD_REQUEST.element())
            self.send(serialize(error))
            return
        self._step(Input.BIND)
        self.jid = jid
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        config = self.server.config
        self._bucket = TokenBucket(config.stanza_burst, self.server.loop.time())
        result = Element(_TAG_IQ, type="result", id=iq_id)
        bound = Element(_TAG_BIND)
        jid_element = Element(f"{{{NS_BIND}}}jid")
        jid_element.text = jid.full
        bound.append(jid_element)
        result.append(bound)
        self.send(serialize(result))
        self.server.bind(self)

    def _auth_expired(self) -> None:
        self._auth_timer = None
        if self.state is not State.ESTABLISHED and self.state is not State.CLOSED:
            logger.info("authentication timeout for %s", self.peer)
            self.fail(StreamErrorCondition.CONNECTION_TIMEOUT, "authentication timeout")

    # --- output -----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue ``data`` (plaintext XML); it leaves at the end of the current batch."""
        out = self._out
        if out is None:
            self._out = [data]
            if not self.server.mark_dirty(self):
                self.flush()
        else:
            out.append(data)

    def flush(self) -> None:
        """Encrypt and write everything queued."""
        out = self._out
        if out is None:
            return
        self._out = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        tls = self._tls
        if tls is not None:
            if not tls.established:
                return  # nothing of ours may travel before the handshake ends
            data = tls.encrypt(data)
        transport.write(data)
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            logger.warning("dropping %s: %d bytes unread", self.jid or self.peer, MAX_WRITE_BUFFER)
            self._abort()

    def fail(self, condition: StreamErrorCondition, text: str = "") -> None:
        """Close the stream with a stream error (RFC 6120 section 4.9.1.1)."""
        if self.state is State.CLOSED or self.transport is None:
            return
        logger.info("stream error to %s: %s %s", self.jid or self.peer, condition.value, text)
        if not self._header_sent and self.state is not State.TLS_HANDSHAKE:
            # 4.9.1.2: an error before our header still needs a header in front of it
            self.send(stream_header(self.server.config.domain, secrets.token_hex(8)))
            self._header_sent = True
        if self.state is State.TLS_HANDSHAKE:
            self.state = State.CLOSED
            self._abort()
            return
        self.state = State.CLOSED
        self.send(condition.to_xml(text or None) + STREAM_CLOSE)
        self._finish()

    def _close_stream(self) -> None:
        self.send(STREAM_CLOSE)
        self._finish()

    def _finish(self) -> None:
        self.flush()
        transport = self.transport
        if transport is None:
            return
        if self._tls is not None and self._tls.established:
            transport.write(self._tls.close())
        transport.close()
        self.server.session_finished(self)

    def _abort(self) -> None:
        self.state = State.CLOSED
        if self.transport is not None:
            self.transport.abort()
