"""Routing by entity kind over real TLS (heslock.xmpp.server, "Authorisation"): a
person's session and a gateway's never reach each other (IQ, message, presence, by full
or bare JID), domain services answer only the kinds they serve, a person's presence is
not a gateway's liveness, people's sessions are reported to the person listener, and a
person that does not read what it is pushed is cut off instead of buffered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from heslock.xmpp import IqRegistry, Jid, ScramCredentials, ServerConfig, XmppServer
from heslock.xmpp.sasl import EntityKind
from tests.integration.xmpp import slix
from tests.integration.xmpp.conftest import (
    DOMAIN,
    ITERATIONS,
    MemoryStore,
    MessageLog,
    PresenceLog,
    client_context,
    server_context,
)
from tests.integration.xmpp.pki import Pki
from tests.integration.xmpp.rawclient import RawClient

pytestmark = pytest.mark.timeout(60)

NS_GATEWAYS = "urn:heslock:test:gateways"
NS_PEOPLE = "urn:heslock:test:people"
GATEWAY, PERSON = "gw1@localhost/bgw", "alice@localhost/phone"
PASSWORD = "correct horse"


@dataclass
class PersonLog:
    bound: list[tuple[str, str]] = field(default_factory=list)
    gone: list[tuple[str, str]] = field(default_factory=list)

    def person_bound(self, jid: Jid, owner: str) -> None:
        self.bound.append((jid.full, owner))

    def person_gone(self, jid: Jid, owner: str) -> None:
        self.gone.append((jid.full, owner))


@dataclass
class Kinds:
    server: XmppServer
    presence: PresenceLog
    messages: MessageLog
    people: PersonLog

    @property
    def port(self) -> int:
        return self.server.ports["starttls"]


def _answer(_sender: Jid, _iq: Element) -> Element:
    return Element(f"{{{NS_PEOPLE}}}ok")


@pytest.fixture
async def kinds(pki: Pki) -> AsyncIterator[Kinds]:
    store = MemoryStore(
        {
            "gw1": ScramCredentials.from_password(PASSWORD, ITERATIONS),
            "alice": ScramCredentials.from_password(
                PASSWORD, ITERATIONS, kind=EntityKind.PERSON, owner="user-1"
            ),
        }
    )
    registry = IqRegistry()
    registry.register(NS_GATEWAYS, lambda _s, _i: None)  # default: gateways only
    registry.register(NS_PEOPLE, _answer, frozenset({EntityKind.PERSON}))
    presence, messages, people = PresenceLog(), MessageLog(), PersonLog()
    config = ServerConfig(
        domain=DOMAIN,
        ssl_context=server_context(pki),
        starttls_port=0,
        direct_tls_port=None,
        certificate_der=pki.cert_der,
    )
    server = XmppServer(config, store, registry, presence, messages, people)
    await server.start()
    try:
        yield Kinds(server, presence, messages, people)
    finally:
        await server.stop()


class Inbound:
    """Everything a slixmpp client receives that is not an answer to itself."""

    def __init__(self, client: Any) -> None:
        self.iqs: list[Any] = []
        self.messages: list[Any] = []
        self.presences: list[Any] = []
        client.register_handler(
            Callback("any-iq", MatchXPath("{jabber:client}iq"), self._iq)
        )  # fmt: skip
        client.add_event_handler("message", self.messages.append)
        client.add_event_handler("message_error", self.messages.append)
        client.add_event_handler("presence", self.presences.append)

    def _iq(self, iq: Any) -> None:
        if iq["type"] in ("get", "set") and iq["from"] != DOMAIN:
            self.iqs.append(iq)


async def round_trip(client: Any) -> None:
    """Whatever the server sent this client before the ping's answer has arrived."""
    await client.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)


async def refused(client: Any, to: str, condition: str, ns: str = "urn:heslock:lock:1") -> None:
    with pytest.raises(IqError) as caught:
        await client.make_iq_get(queryxmlns=ns, ito=to).send(timeout=10)
    assert caught.value.iq["error"]["condition"] == condition


async def test_people_and_gateways_never_reach_each_other(kinds: Kinds, pki: Pki) -> None:
    gateway = await slix.login(kinds.port, GATEWAY, PASSWORD, pki.ca_pem)
    person = await slix.login(kinds.port, PERSON, PASSWORD, pki.ca_pem)
    at_gateway, at_person = Inbound(gateway), Inbound(person)
    try:
        gateway.send_presence()
        assert await kinds.presence.next() == (GATEWAY, True)
        # A person addresses the gateway: answered as if it were offline.
        for to in (GATEWAY, "gw1@localhost"):
            await refused(person, to, "service-unavailable")
        person.send_message(mto=GATEWAY, mbody="open up")
        person.send_presence(pto=GATEWAY)
        person.send_presence(pto="gw1@localhost", ptype="probe")
        person.send_presence(pto=GATEWAY, ptype="subscribe")
        # ... and the other way round.
        await refused(gateway, PERSON, "service-unavailable")
        gateway.send_message(mto=PERSON, mbody="hello")
        gateway.send_presence(pto=PERSON)
        await round_trip(person)
        await round_trip(gateway)
        await round_trip(person)  # the gateway's stanzas, had they passed, are here now
        assert at_gateway.iqs == []
        assert at_person.iqs == []
        assert [m["type"] for m in at_gateway.messages] == ["error"]  # its own, bounced
        assert at_gateway.messages[0]["error"]["condition"] == "service-unavailable"
        assert [m["type"] for m in at_person.messages] == ["error"]
        assert at_person.messages[0]["error"]["condition"] == "service-unavailable"
        assert not [p for p in at_gateway.presences if p["from"] == PERSON]
        assert not [p for p in at_person.presences if p["from"] == GATEWAY]
    finally:
        await slix.close(person)
        await slix.close(gateway)


async def test_domain_services_answer_only_their_kinds(kinds: Kinds, pki: Pki) -> None:
    gateway = await slix.login(kinds.port, GATEWAY, PASSWORD, pki.ca_pem)
    person = await slix.login(kinds.port, PERSON, PASSWORD, pki.ca_pem)
    at_person = Inbound(person)
    try:
        assert kinds.people.bound == [(PERSON, "user-1")]
        await refused(person, DOMAIN, "forbidden", NS_GATEWAYS)
        await refused(gateway, DOMAIN, "forbidden", NS_PEOPLE)
        answer = await person.make_iq_get(queryxmlns=NS_PEOPLE, ito=DOMAIN).send(timeout=10)
        assert answer.xml.find(f"{{{NS_PEOPLE}}}ok") is not None
        await person.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)  # everyone's

        # A person's messages to the domain (lock events, scan reports) are refused.
        person.send_message(mto=DOMAIN, mbody="forged")
        person.send_presence()  # available: not a gateway coming online
        await round_trip(person)
        assert kinds.messages.messages.empty()
        assert [m["error"]["condition"] for m in at_person.messages] == ["forbidden"]
        gateway.send_message(mto=DOMAIN, mbody="event")
        sender, _ = await asyncio.wait_for(kinds.messages.messages.get(), 10)
        assert sender == GATEWAY
        gateway.send_presence()
        assert await kinds.presence.next() == (GATEWAY, True)  # the first one: the person's
        assert kinds.server.online == {GATEWAY, PERSON}  # available, yet never reported
    finally:
        await slix.close(person)
        await slix.close(gateway)
    assert kinds.people.gone == [(PERSON, "user-1")]
    assert await kinds.presence.next() == (GATEWAY, False)
    assert kinds.presence.events.empty()


async def test_a_person_who_does_not_read_is_cut_off(kinds: Kinds, pki: Pki) -> None:
    client = await RawClient.connect(kinds.port, None)
    try:
        jid = await client.login(client_context(pki.ca_pem), "alice", PASSWORD, resource="slow")
        server = kinds.server
        assert server.push(jid, b"<message type='headline'/>", 1024)
        # The client reads nothing more: the kernel's buffers fill, then ours grows past
        # the bound and the session is dropped (not buffered without limit).
        chunk = b"<message type='headline'>" + b"x" * 65_536 + b"</message>"
        for _ in range(2_000):  # 128 MiB at most; a few MiB fill loopback's buffers
            if not server.push(jid, chunk, 256 * 1024):
                break
        else:
            pytest.fail("the session was never cut off")
        assert not server.is_connected(jid)
        assert kinds.people.gone == [(jid, "user-1")]
        assert not server.push(jid, b"<message/>", 1024)  # gone: nothing queued
    finally:
        client.writer.transport.abort()
