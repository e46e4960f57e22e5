"""Routing between sessions and to the RAS over real TLS: IQ, message, presence, ping,
iq_request, conflict replacement, keepalive (RFC 6120 sections 7.7, 8, 10; XEP-0199)."""

from __future__ import annotations

import asyncio
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from heslock.xmpp import (
    IqTimeout,
    Jid,
    RecipientOffline,
    ScramCredentials,
    StanzaError,
    StanzaErrorCondition,
)
from tests.integration.xmpp import slix
from tests.integration.xmpp.conftest import (
    PASSWORDS,
    Harness,
    client_context,
    start_server,
)
from tests.integration.xmpp.pki import Pki
from tests.integration.xmpp.rawclient import RawClient

pytestmark = pytest.mark.timeout(60)
NS_TEST = "urn:heslock:test:echo"


def echo_handler(client: Any) -> None:
    """Answer IQs in NS_TEST with the payload's text reversed (proves the round trip)."""

    def handle(iq: Any) -> None:
        query = iq.xml.find(f"{{{NS_TEST}}}query")
        reply = iq.reply(clear=True)
        answer = Element(f"{{{NS_TEST}}}answer")
        answer.text = (query.text or "")[::-1] if query is not None else ""
        reply.xml.append(answer)
        reply.send()

    client.register_handler(
        Callback("echo", MatchXPath(f"{{jabber:client}}iq/{{{NS_TEST}}}query"), handle)
    )


async def test_iq_between_two_slixmpp_clients(harness: Harness, pki: Pki) -> None:
    a = await slix.login(harness.starttls_port, "gw1@localhost/bgw", PASSWORDS["gw1"], pki.ca_pem)
    b = await slix.login(
        harness.direct_port, "gw2@localhost/bgw", PASSWORDS["gw2"], pki.ca_pem, True
    )
    echo_handler(b)
    try:
        iq = a.make_iq_get(queryxmlns=NS_TEST, ito="gw2@localhost/bgw")
        iq.xml.find(f"{{{NS_TEST}}}query").text = "frame"
        result = await iq.send(timeout=10)
        assert result["type"] == "result"
        assert result["from"] == "gw2@localhost/bgw"  # stamped by the server
        assert result.xml.findtext(f"{{{NS_TEST}}}answer") == "emarf"
    finally:
        await slix.close(a)
        await slix.close(b)


async def test_iq_to_offline_jid_is_service_unavailable(harness: Harness, pki: Pki) -> None:
    a = await slix.login(harness.starttls_port, "gw1@localhost/bgw", PASSWORDS["gw1"], pki.ca_pem)
    try:
        with pytest.raises(IqError) as caught:
            await a.make_iq_get(queryxmlns=NS_TEST, ito="gw3@localhost/bgw").send(timeout=10)
        assert caught.value.iq["error"]["condition"] == "service-unavailable"
    finally:
        await slix.close(a)


async def test_ping_the_server(harness: Harness, pki: Pki) -> None:
    a = await slix.login(harness.starttls_port, "gw1@localhost/bgw", PASSWORDS["gw1"], pki.ca_pem)
    try:
        rtt = await a.plugin["xep_0199"].ping("localhost", timeout=10)
        assert rtt >= 0
    finally:
        await slix.close(a)


async def test_unknown_namespace_to_server_is_service_unavailable(
    harness: Harness, pki: Pki
) -> None:
    a = await slix.login(harness.starttls_port, "gw1@localhost/bgw", PASSWORDS["gw1"], pki.ca_pem)
    try:
        with pytest.raises(IqError) as caught:
            await a.make_iq_get(queryxmlns="urn:nobody", ito="localhost").send(timeout=10)
        assert caught.value.iq["error"]["condition"] == "service-unavailable"
    finally:
        await slix.close(a)


async def test_presence_online_and_offline_reach_the_listener(harness: Harness, pki: Pki) -> None:
    a = await slix.login(harness.starttls_port, "gw1@localhost/bgw", PASSWORDS["gw1"], pki.ca_pem)
    try:
        a.send_presence()
        assert await harness.presence.next() == ("gw1@localhost/bgw", True)
        assert harness.server.online == {"gw1@localhost/bgw"}
        a.send_presence(ptype="unavailable")
        assert await harness.presence.next() == ("gw1@localhost/bgw", False)
        a.send_presence()
        assert await harness.presence.next() == ("gw1@localhost/bgw", True)
    finally:
        await slix.close(a)
    assert await harness.presence.next() == ("gw1@localhost/bgw", False)  # disconnection
    assert harness.server.online == frozenset()


async def test_iq_request_from_the_server_to_a_gateway(harness: Harness, pki: Pki) -> None:
    b = await slix.login(
        harness.direct_port, "gw2@localhost/bgw", PASSWORDS["gw2"], pki.ca_pem, True
    )
    echo_handler(b)
    try:
        query = Element(f"{{{NS_TEST}}}query")
        query.text = "abc"
        result = await harness.server.iq_request(Jid.parse("gw2@localhost/bgw"), query, timeout=10)
        assert result.get("type") == "result"
        assert result.findtext(f"{{{NS_TEST}}}answer") == "cba"
    finally:
        await slix.close(b)


async def test_iq_request_errors_are_typed(harness: Harness, pki: Pki) -> None:
    server = harness.server
    with pytest.raises(RecipientOffline):
        await server.iq_request("gw3@localhost/bgw", Element(f"{{{NS_TEST}}}query"), timeout=5)
    client = await RawClient.connect(harness.direct_port, client_context(pki.ca_pem))
    try:
        await client.login(client_context(pki.ca_pem), "gw3", PASSWORDS["gw3"], starttls=False)
        # error answer -> StanzaError with the condition
        request = asyncio.ensure_future(
            server.iq_request("gw3@localhost/bgw", Element(f"{{{NS_TEST}}}query"), timeout=10)
        )
        iq = await client.next()
        assert iq.get("type") == "set"
        assert iq.get("from") == "localhost"
        client.send(
            f"<iq type='error' id='{iq.get('id')}' to='localhost'><error type='cancel'>"
            "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        )
        with pytest.raises(StanzaError) as caught:
            await request
        assert caught.value.condition is StanzaErrorCondition.ITEM_NOT_FOUND
        # no answer -> IqTimeout
        with pytest.raises(IqTimeout):
            await server.iq_request("gw3@localhost/bgw", Element(f"{{{NS_TEST}}}q"), timeout=0.05)
        # the gateway leaves while a request waits -> RecipientOffline at once
        request = asyncio.ensure_future(
            server.iq_request("gw3@localhost/bgw", Element(f"{{{NS_TEST}}}query"), timeout=30)
        )
        await client.next()
        await client.close()
        with pytest.raises(RecipientOffline):
            await request
    finally:
        await client.close()


async def test_answer_from_another_gateway_is_not_accepted(harness: Harness, pki: Pki) -> None:
    """A gateway cannot answer (spoof) an IQ the RAS sent to another gateway."""
    context = client_context(pki.ca_pem)
    target = await RawClient.connect(harness.direct_port, context)
    spoofer = await RawClient.connect(harness.direct_port, context)
    try:
        await target.login(context, "gw1", PASSWORDS["gw1"], starttls=False)
        await spoofer.login(context, "gw2", PASSWORDS["gw2"], starttls=False)
        request = asyncio.ensure_future(
            harness.server.iq_request("gw1@localhost/bgw", Element(f"{{{NS_TEST}}}query"), 10)
        )
        iq = await target.next()
        spoofer.send(f"<iq type='result' id='{iq.get('id')}' to='localhost'/>")
        spoofer.send("<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert (await spoofer.next()).get("id") == "sync"  # the spoof was processed first
        assert not request.done()
        target.send(f"<iq type='result' id='{iq.get('id')}' to='localhost'/>")
        result = await request
        assert result.get("from") == "gw1@localhost/bgw"
    finally:
        await target.close()
        await spoofer.close()


async def test_message_to_domain_reaches_listener_and_between_clients(
    harness: Harness, pki: Pki
) -> None:
    context = client_context(pki.ca_pem)
    a = await RawClient.connect(harness.direct_port, context)
    b = await RawClient.connect(harness.direct_port, context)
    try:
        await a.login(context, "gw1", PASSWORDS["gw1"], starttls=False)
        await b.login(context, "gw2", PASSWORDS["gw2"], starttls=False)
        a.send("<message to='localhost' from='forged@localhost'><body>event</body></message>")
        sender, message = await asyncio.wait_for(harness.messages.messages.get(), 10)
        assert sender == "gw1@localhost/bgw"
        assert message.findtext("{jabber:client}body") == "event"
        a.send("<message to='gw2@localhost'><body>x &amp; y</body></message>")
        received = await b.next()
        assert received.get("from") == "gw1@localhost/bgw"
        assert received.findtext("{jabber:client}body") == "x & y"
    finally:
        await a.close()
        await b.close()


async def test_second_login_replaces_the_first_with_conflict(harness: Harness, pki: Pki) -> None:
    context = client_context(pki.ca_pem)
    first = await RawClient.connect(harness.direct_port, context)
    second = await RawClient.connect(harness.starttls_port, None)
    try:
        await first.login(context, "gw1", PASSWORDS["gw1"], starttls=False)
        first.send("<presence/>")
        assert await harness.presence.next() == ("gw1@localhost/bgw", True)
        await second.login(context, "gw1", PASSWORDS["gw1"])
        assert await first.stream_error() == "conflict"
        assert await harness.presence.next() == ("gw1@localhost/bgw", False)
        second.send("<presence/>")
        assert await harness.presence.next() == ("gw1@localhost/bgw", True)
        second.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert (await second.next()).get("type") == "result"
    finally:
        await first.close()
        await second.close()


async def test_server_pings_idle_sessions_and_drops_silent_ones(
    pki: Pki, credentials: dict[str, ScramCredentials]
) -> None:
    h = await start_server(pki, credentials, ping_interval=0.1)
    context = client_context(pki.ca_pem)
    client = await RawClient.connect(h.direct_port, context)
    try:
        await client.login(context, "gw1", PASSWORDS["gw1"], starttls=False)
        ping = await client.next()
        assert ping.find("{urn:xmpp:ping}ping") is not None
        assert ping.get("type") == "get"
        client.send(f"<iq type='result' id='{ping.get('id')}' to='localhost'/>")
        ping = await client.next()  # still alive: pinged again later
        assert ping.find("{urn:xmpp:ping}ping") is not None
        assert await client.stream_error() == "connection-timeout"  # this one unanswered
    finally:
        await client.close()
        await h.server.stop()


async def test_shutdown_sends_system_shutdown_to_everyone(
    pki: Pki, credentials: dict[str, ScramCredentials]
) -> None:
    h = await start_server(pki, credentials)
    context = client_context(pki.ca_pem)
    raw = await RawClient.connect(h.direct_port, context)
    await raw.login(context, "gw1", PASSWORDS["gw1"], starttls=False)
    b = await slix.login(h.starttls_port, "gw2@localhost/bgw", PASSWORDS["gw2"], pki.ca_pem)
    errors: asyncio.Queue[str] = asyncio.Queue()
    b.add_event_handler("stream_error", lambda e: errors.put_nowait(e["condition"]))
    disconnected = asyncio.ensure_future(b.wait_until("disconnected", 10))
    try:
        await h.server.stop()
        assert await raw.stream_error() == "system-shutdown"
        assert await asyncio.wait_for(errors.get(), 10) == "system-shutdown"
        await disconnected
        with pytest.raises(ConnectionRefusedError):
            await RawClient.connect(h.direct_port, context)
    finally:
        await raw.close()
        await slix.close(b)


async def test_session_stalled_mid_stanza_is_closed(
    pki: Pki, credentials: dict[str, ScramCredentials]
) -> None:
    h = await start_server(pki, credentials, ping_interval=0.2)
    context = client_context(pki.ca_pem)
    client = await RawClient.connect(h.direct_port, context)
    try:
        await client.login(context, "gw1", PASSWORDS["gw1"], starttls=False)
        client.send("<message to='gw2@localhost'><body>half a stan")  # then silence
        assert await client.stream_error() == "connection-timeout"
    finally:
        await client.close()
        await h.server.stop()
