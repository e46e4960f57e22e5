"""A lean XMPP client load generator (issue 9): thousands of sessions in one process.

Not slixmpp: each slixmpp client costs tasks, an asyncio SSL transport (256 KiB read
buffer) and a full stanza object model, so a load generator built on it is the
bottleneck long before the server is. Here one session is one ``asyncio.Protocol`` with
``__slots__``, TLS on two ``ssl.MemoryBIO`` (as the RAS does, heslock.xmpp.tls), and one
``pyexpat`` parser that keeps only the element being read. TCP_NODELAY is set on every
socket (asyncio does it for TCP transports; we set it again explicitly).

What a :class:`Client` does, RFC 6120 order:

1. TCP connect; STARTTLS (``<starttls/>``, ``<proceed/>``) or direct TLS (XEP-0368);
2. TLS 1.3 (the context decides; the certificate is verified against the bench CA);
3. SASL SCRAM-SHA-256 with cached keys (bench.load.scram), server signature checked;
4. resource binding, then initial presence (the RAS marks a gateway online on it);
5. then it stays: every IQ ``get``/``set`` addressed to it is answered at once, like a
   gateway with a lock right next to it: a frame request (``urn:heslock:lock:1``) gets a
   result with a frame for the same lock, anything else (XEP-0199 keepalive pings, a peer
   client's ping) an empty result.

:meth:`Client.request` sends an IQ to another JID and returns the round-trip time: the
client-to-client round trips used against Prosody and ejabberd (and the RAS).

:class:`Pool` opens many clients with bounded concurrency and, after the server drops
them (a restart), reconnects each with jittered back-off, as BGWs do.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pyexpat import ParserCreate
from pyexpat import error as ExpatError  # noqa: N812
from typing import Any, Final

from bench.load.scram import MECHANISM, ScramClient, ScramFailure, ScramKeys

NS_STREAM: Final = "http://etherx.jabber.org/streams"
NS_CLIENT: Final = "jabber:client"
NS_TLS: Final = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
NS_PING: Final = "urn:xmpp:ping"
NS_LOCK: Final = "urn:heslock:lock:1"
READ_SIZE: Final = 16 * 1024
#: Reconnection back-off cap (the BGW's reconnect_max_s default).
RECONNECT_CAP_S: Final = 60.0
#: expat joins namespace and local name with this (``ns}local``, like ElementTree's ``{ns}local``).
SEP: Final = "}"


class XmppFailure(Exception):
    """A session could not be established (refused, stream error, bad SCRAM...)."""


@dataclass(slots=True)
class Account:
    """One login: the SASL username (JID localpart), its password and cached keys (a
    login that had to derive them stores them here for the next one)."""

    username: str
    password: str
    keys: ScramKeys | None = None


@dataclass(slots=True)
class Target:
    """Where and how to connect."""

    host: str
    port: int
    domain: str
    ssl_context: ssl.SSLContext
    direct_tls: bool
    resource: str = "bgw"


@dataclass(slots=True)
class Stats:
    """Counters shared by the clients of one load generator."""

    answered: int = 0  #: IQs answered (frames and pings)
    frames: int = 0  #: of which frame requests
    lost: int = 0  #: sessions the server closed
    failures: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


class _Node:
    __slots__ = ("attrs", "children", "name", "text")

    def __init__(self, name: str, attrs: dict[str, str]) -> None:
        self.name = name
        self.attrs = attrs
        self.children: list[_Node] = []
        self.text = ""

    def child(self, name: str) -> _Node | None:
        for node in self.children:
            if node.name == name:
                return node
        return None


def _esc(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


class Client(asyncio.Protocol):
    """One XMPP client session (module docstring)."""

    __slots__ = (
        "_bound",
        "_connected",
        "_in",
        "_out",
        "_parser",
        "_pending",
        "_scram",
        "_seq",
        "_stack",
        "_step",
        "_tls",
        "account",
        "closed",
        "jid",
        "keys",
        "on_lost",
        "stats",
        "target",
        "transport",
    )

    def __init__(
        self,
        account: Account,
        target: Target,
        stats: Stats,
        on_lost: Callable[[Client], None] | None = None,
    ) -> None:
        self.account = account
        self.target = target
        self.stats = stats
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.jid = ""
        self.keys = account.keys  # updated after a login that had to derive them
        self.closed = False
        self._tls: ssl.SSLObject | None = None
        self._in: ssl.MemoryBIO | None = None
        self._out: ssl.MemoryBIO | None = None
        self._parser: Any = None
        self._stack: list[_Node] = []
        self._scram: ScramClient | None = None
        self._step = "connect"
        self._seq = 0
        self._pending: dict[str, tuple[asyncio.Future[float], float]] = {}
        loop = asyncio.get_running_loop()
        self._bound: asyncio.Future[None] = loop.create_future()
        self._connected = False

    # ------------------------------------------------------------------ lifecycle

    async def connect(self, timeout: float) -> None:  # noqa: ASYNC109 - one deadline, no task
        """Connect and log in; returns once the resource is bound and presence sent."""
        loop = asyncio.get_running_loop()
        self._bound = loop.create_future()
        self._step = "connect"
        self.closed = False
        self._reset_parser()
        self._tls = None
        try:
            await asyncio.wait_for(self._open(loop), timeout)
        except (TimeoutError, OSError) as exc:
            self.abort()
            raise XmppFailure(f"{type(exc).__name__}: {exc}") from None

    async def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        target = self.target
        await loop.create_connection(lambda: self, target.host, target.port)
        await self._bound

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._connected = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.target.direct_tls:
            self._start_tls()
        else:
            self._step = "features-tls"
            self._send_header()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        was_closed, self.closed = self.closed, True
        if not self._bound.done():
            self._bound.set_exception(XmppFailure(f"connection lost in step {self._step}"))
            self._bound.exception()  # retrieved: a login that timed out awaits it no more
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(XmppFailure("connection lost"))
        self._pending.clear()
        if not was_closed and self._step == "up":
            self.stats.lost += 1
            if self.on_lost is not None:
                self.on_lost(self)

    def close(self) -> None:
        """End the stream politely (``</stream:stream>``) and close."""
        if self.transport is None:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self._write(b"</stream:stream>")
        self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------ bytes

    def data_received(self, data: bytes) -> None:
        tls = self._tls
        if tls is not None:
            assert self._in is not None
            self._in.write(data)
            if self._step == "tls":
                try:
                    tls.do_handshake()
                except ssl.SSLWantReadError:
                    self._flush_tls()
                    return
                except ssl.SSLError as exc:
                    self._fail(f"TLS: {exc.reason or exc}")
                    return
                self._flush_tls()
                self._step = "features-auth"
                self._reset_parser()
                self._send_header()
            chunks = []
            while True:
                try:
                    chunk = tls.read(READ_SIZE)
                except ssl.SSLWantReadError:
                    break
                except (ssl.SSLZeroReturnError, ssl.SSLError):
                    self.abort()
                    return
                if not chunk:
                    break
                chunks.append(chunk)
            self._flush_tls()  # post-handshake messages (TLS 1.3 tickets) need no answer
            if not chunks:
                return
            data = b"".join(chunks)
        try:
            self._parser.Parse(data, False)
        except ExpatError as exc:
            self._fail(f"XML: {exc}")

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        if self._tls is not None and self._step != "tls":
            self._tls.write(data)
            assert self._out is not None
            transport.write(self._out.read())
        else:
            transport.write(data)

    def _flush_tls(self) -> None:
        assert self._out is not None
        pending = self._out.read()
        if pending and self.transport is not None:
            self.transport.write(pending)

    def _start_tls(self) -> None:
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = self.target.ssl_context.wrap_bio(
            self._in, self._out, server_side=False, server_hostname=self.target.domain
        )
        self._step = "tls"
        with contextlib.suppress(ssl.SSLWantReadError):
            self._tls.do_handshake()
        self._flush_tls()

    def _send_header(self) -> None:
        self._write(
            f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' "
            f"xmlns:stream='{NS_STREAM}' to='{self.target.domain}' version='1.0'>".encode()
        )

    # ------------------------------------------------------------------ XML

    def _reset_parser(self) -> None:
        parser = ParserCreate(namespace_separator=SEP)
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        self._parser = parser
        self._stack = []

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        stack = self._stack
        node = _Node(name, attrs)
        if stack:
            stack[-1].children.append(node)
        stack.append(node)

    def _text(self, text: str) -> None:
        if len(self._stack) > 1:
            self._stack[-1].text += text

    def _end(self, _name: str) -> None:
        stack = self._stack
        node = stack.pop()
        if len(stack) == 1:
            stack[0].children.clear()  # the stream root keeps nothing
            self._element(node)
        elif not stack:  # the server ended the stream: answer and close (no reconnect block)
            self._write(b"</stream:stream>")
            if self.transport is not None:
                self.transport.close()

    def _fail(self, reason: str) -> None:
        self.stats.fail(reason[:60])
        if not self._bound.done():
            self._bound.set_exception(XmppFailure(reason))
            self._bound.exception()
        self.abort()

    def _element(self, node: _Node) -> None:  # noqa: PLR0912, PLR0915 - one state machine
        name = node.name
        step = self._step
        if step == "up":
            if name == NS_CLIENT + SEP + "iq":
                self._iq(node)
            return  # a stream error here ends the stream; the server closes it
        if name == NS_STREAM + SEP + "error":
            reason = node.children[0].name.rpartition(SEP)[2] if node.children else "?"
            self._fail(f"stream error in {step}: {reason}")
        elif step == "features-tls" and name == NS_STREAM + SEP + "features":
            self._step = "proceed"
            self._write(f"<starttls xmlns='{NS_TLS}'/>".encode())
        elif step == "proceed" and name == NS_TLS + SEP + "proceed":
            self._start_tls()
        elif step == "features-auth" and name == NS_STREAM + SEP + "features":
            mechanisms = node.child(NS_SASL + SEP + "mechanisms")
            offered = {m.text.strip() for m in mechanisms.children} if mechanisms else set()
            if MECHANISM not in offered:
                self._fail(f"{MECHANISM} not offered: {sorted(offered)}")
                return
            account = self.account
            self._scram = ScramClient(account.username, account.password, self.keys)
            first = base64.b64encode(self._scram.first().encode()).decode()
            self._step = "challenge"
            self._write(f"<auth xmlns='{NS_SASL}' mechanism='{MECHANISM}'>{first}</auth>".encode())
        elif step == "challenge" and name == NS_SASL + SEP + "challenge":
            assert self._scram is not None
            try:
                final = self._scram.final(base64.b64decode(node.text).decode())
            except (ScramFailure, ValueError) as exc:
                self._fail(f"SCRAM: {exc}")
                return
            self._step = "success"
            self._write(
                f"<response xmlns='{NS_SASL}'>{base64.b64encode(final.encode()).decode()}"
                "</response>".encode()
            )
        elif step == "success" and name == NS_SASL + SEP + "success":
            assert self._scram is not None
            try:
                self._scram.verify(base64.b64decode(node.text).decode())
            except (ScramFailure, ValueError) as exc:
                self._fail(f"SCRAM: {exc}")
                return
            self.keys = self.account.keys = self._scram.keys
            self._scram = None
            self._step = "features-bind"
            self._reset_parser()
            self._send_header()
        elif step == "features-bind" and name == NS_STREAM + SEP + "features":
            self._step = "bind"
            self._write(
                f"<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>"
                f"{_esc(self.target.resource)}</resource></bind></iq>".encode()
            )
        elif step == "bind" and name == NS_CLIENT + SEP + "iq":
            if node.attrs.get("type") != "result":
                self._fail("bind refused")
                return
            bind = node.child(NS_BIND + SEP + "bind")
            jid = bind.child(NS_BIND + SEP + "jid") if bind else None
            self.jid = jid.text.strip() if jid else ""
            self._step = "up"
            self._write(b"<presence/>")
            if not self._bound.done():
                self._bound.set_result(None)
        elif name == NS_SASL + SEP + "failure":
            reason = node.children[0].name.rpartition(SEP)[2] if node.children else "?"
            self._fail(f"SASL failure: {reason}")
        # anything else before binding (stream features we do not use...) is ignored

    # ------------------------------------------------------------------ stanzas

    def _iq(self, node: _Node) -> None:
        attrs = node.attrs
        kind = attrs.get("type")
        iq_id = attrs.get("id", "")
        if kind in ("result", "error"):
            pending = self._pending.pop(iq_id, None)
            if pending is not None and not pending[0].done():
                if kind == "result":
                    pending[0].set_result(time.perf_counter() - pending[1])
                else:
                    pending[0].set_exception(XmppFailure("IQ error"))
            return
        sender = attrs.get("from", self.target.domain)
        head = f"<iq type='result' id='{_esc(iq_id)}' to='{_esc(sender)}'"
        payload = node.children[0] if node.children else None
        if payload is not None and payload.name == NS_LOCK + SEP + "frame":
            lock = _esc(payload.attrs.get("lock", ""))
            answer = (
                f"{head}><frame xmlns='{NS_LOCK}' lock='{lock}'>{payload.text.strip()}</frame></iq>"
            )
            self.stats.frames += 1
        else:
            answer = head + "/>"
        self.stats.answered += 1
        self._write(answer.encode())

    def request(self, to: str) -> asyncio.Future[float]:
        """Ping ``to`` (XEP-0199 IQ); the future is the round-trip time in seconds."""
        self._seq += 1
        iq_id = f"q{self._seq}"
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pending[iq_id] = (future, time.perf_counter())
        self._write(
            f"<iq type='get' id='{iq_id}' to='{_esc(to)}'><ping xmlns='{NS_PING}'/></iq>".encode()
        )
        return future


class Pool:
    """Many clients: bounded-concurrency login, reconnection after a server restart."""

    def __init__(
        self,
        accounts: Sequence[Account],
        target: Target,
        *,
        concurrency: int = 100,
        login_timeout: float = 30.0,
        reconnect: bool = False,
        reconnect_jitter_s: float = 1.0,
    ) -> None:
        self.accounts = accounts
        self.target = target
        self.stats = Stats()
        self.clients: list[Client] = []
        self.concurrency = concurrency
        self.login_timeout = login_timeout
        self.reconnect = reconnect
        self.reconnect_jitter_s = reconnect_jitter_s
        self.up = 0
        self._all_up: asyncio.Event = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self, accounts: Iterable[Account] | None = None, retries: int = 0) -> float:
        """Log every account in (concurrency bounded); seconds taken. Raises on failure
        (after ``retries`` more tries of the failed logins: for warm-up passes only)."""
        semaphore = asyncio.Semaphore(self.concurrency)
        clients = [
            Client(a, self.target, self.stats, self._lost) for a in (accounts or self.accounts)
        ]
        errors: list[str] = []

        async def one(client: Client) -> None:
            for attempt in range(retries + 1):
                async with semaphore:
                    try:
                        await client.connect(self.login_timeout)
                    except XmppFailure as exc:
                        if attempt == retries:
                            errors.append(str(exc))
                        continue
                    self.up += 1
                    return

        started = time.perf_counter()
        await asyncio.gather(*(one(c) for c in clients))
        elapsed = time.perf_counter() - started
        self.clients += clients
        if errors:
            raise XmppFailure(f"{len(errors)} of {len(clients)} logins failed, e.g. {errors[0]}")
        return elapsed

    def _lost(self, client: Client) -> None:
        self.up -= 1
        self._all_up.clear()
        if self.reconnect:
            task = asyncio.get_running_loop().create_task(self._again(client))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _again(self, client: Client) -> None:
        """Reconnect as a BGW does (heslock.bgw.backoff with the BGW's defaults): full
        jitter, uniform(0, min(cap, base * 2**failures)), base 1 s, cap 60 s."""
        failures = 0
        while self.reconnect:
            ceiling = min(RECONNECT_CAP_S, self.reconnect_jitter_s * 2**failures)
            await asyncio.sleep(random.uniform(0.0, ceiling))
            try:
                await client.connect(self.login_timeout)
            except XmppFailure:
                failures = min(failures + 1, 16)
                continue
            self.up += 1
            if self.up >= len(self.clients):
                self._all_up.set()
            return

    async def all_up(self, timeout: float) -> None:  # noqa: ASYNC109
        if self.up >= len(self.clients):
            return
        await asyncio.wait_for(self._all_up.wait(), timeout)

    async def close(self) -> None:
        self.reconnect = False
        for task in list(self._tasks):
            task.cancel()
        for client in self.clients:
            client.close()
        self.clients.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks
