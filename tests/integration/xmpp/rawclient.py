"""A second, independent XMPP client for the interoperability tests.

Written from RFC 6120 directly: asyncio streams + the standard ``ssl`` module for TLS,
the stdlib pull parser for XML (not :mod:`heslock.xmpp.stream`), and ``scramp``'s
``ScramClient`` for SCRAM-SHA-256(-PLUS) with ``tls-server-end-point`` channel binding.
It also sends the hostile inputs the attack tests need, which no library client would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from xml.etree.ElementTree import Element, XMLPullParser

from scramp import ScramClient

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    f"xmlns:stream='{NS_STREAMS}' to='{{domain}}' version='1.0'>"
)
TIMEOUT = 10.0


class StreamEnded(Exception):
    """The server closed the stream or the connection."""


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, domain: str):
        self.reader = reader
        self.writer = writer
        self.domain = domain
        self.header: Element | None = None
        self.closed_by_server = False
        self._new_parser()

    def _new_parser(self) -> None:
        self._parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._ready: list[Element] = []

    @classmethod
    async def connect(
        cls, port: int, context: ssl.SSLContext | None, domain: str = "localhost"
    ) -> RawClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname=domain if context else None
            ),
            TIMEOUT,
        )
        return cls(reader, writer, domain)

    def send(self, data: bytes | str) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)

    async def open_stream(self) -> Element:
        """Send a stream header; return the server's <stream:features/>."""
        self._new_parser()
        self.send(HEADER.format(domain=self.domain))
        features = await self.next()
        assert features.tag == f"{{{NS_STREAMS}}}features", features.tag
        return features

    async def next(self) -> Element:
        """The next top-level element from the server."""
        while not self._ready:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            if not data:
                raise StreamEnded("connection closed")
            self._parser.feed(data)
            for event, element in self._parser.read_events():  # type: ignore[misc]  # typeshed's union
                assert isinstance(element, Element)
                if event == "start":
                    self._depth += 1
                    if self._depth == 1:
                        self.header = element
                else:
                    self._depth -= 1
                    if self._depth == 1:
                        self._ready.append(element)
                    elif self._depth == 0:
                        self.closed_by_server = True
        return self._ready.pop(0)

    async def stream_error(self) -> str:
        """Read until a <stream:error/>; return its condition name."""
        while True:
            element = await self.next()
            if element.tag == f"{{{NS_STREAMS}}}error":
                for child in element:
                    name = child.tag.partition("}")[2]
                    if child.tag.startswith(f"{{{NS_STREAM_ERRORS}}}") and name != "text":
                        return name
                return "?"

    async def wait_closed(self) -> None:
        """Read until the server closes the connection (discarding what it sends)."""
        while True:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            if not data:
                return

    async def starttls(self, context: ssl.SSLContext) -> Element:
        features = await self.open_stream()
        assert features.find(f"{{{NS_TLS}}}starttls") is not None
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        proceed = await self.next()
        assert proceed.tag == f"{{{NS_TLS}}}proceed", proceed.tag
        await asyncio.wait_for(self.writer.start_tls(context, server_hostname=self.domain), TIMEOUT)
        return await self.open_stream()

    async def authenticate(
        self, username: str, password: str, mechanism: str = "SCRAM-SHA-256"
    ) -> Element:
        """Run SCRAM; return the final <success/> or <failure/>."""
        binding = None
        if mechanism.endswith("-PLUS"):
            ssl_object = self.writer.get_extra_info("ssl_object")
            binding = ("tls-server-end-point", ssl_object)
        scram = ScramClient([mechanism], username, password, channel_binding=binding)
        first = base64.b64encode(scram.get_client_first().encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{first}</auth>")
        challenge = await self.next()
        if challenge.tag != f"{{{NS_SASL}}}challenge":
            return challenge
        scram.set_server_first(base64.b64decode(challenge.text or "").decode())
        final = base64.b64encode(scram.get_client_final().encode()).decode()
        self.send(f"<response xmlns='{NS_SASL}'>{final}</response>")
        outcome = await self.next()
        if outcome.tag == f"{{{NS_SASL}}}success":
            scram.set_server_final(base64.b64decode(outcome.text or "").decode())
        return outcome

    async def bind(self, resource: str) -> str:
        features = await self.open_stream()
        assert features.find(f"{{{NS_BIND}}}bind") is not None
        self.send(
            f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'>"
            f"<resource>{resource}</resource></bind></iq>"
        )
        result = await self.next()
        assert result.get("type") == "result", result.attrib
        jid = result.findtext(f".//{{{NS_BIND}}}jid")
        assert jid
        return jid

    async def login(
        self,
        context: ssl.SSLContext,
        username: str,
        password: str,
        resource: str = "bgw",
        mechanism: str = "SCRAM-SHA-256",
        starttls: bool = True,
    ) -> str:
        if starttls:
            await self.starttls(context)
        else:
            await self.open_stream()
        outcome = await self.authenticate(username, password, mechanism)
        assert outcome.tag == f"{{{NS_SASL}}}success", outcome.tag
        return await self.bind(resource)

    async def close(self) -> None:
        if not self.writer.is_closing():
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.send("</stream:stream>")
            self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
