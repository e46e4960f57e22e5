"""On the RAS's own relay: a person's XMPP session cannot reach a gateway or play one
(lock events, scan reports, frame results, presence), and a gateway cannot reach a
person or ask for people's events."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from heslock.protocol import DeviceId
from heslock.ras.services.xmppusers.wire import ResumeRequest
from heslock.xmpp.lockns import NS_LOCK, FrameResult, LockEvent, ScanReason, ScanReport
from tests.integration.ras.xmppusers.conftest import WAIT_S, Client, Rig
from tests.integration.xmpp import slix

pytestmark = pytest.mark.timeout(90)

LOCK = DeviceId.parse("F01122334455")


def _message(client: Any, to: str, payload: Element) -> None:
    message = client.make_message(mto=to)
    message.xml.append(payload)
    message.send()


async def test_people_cannot_reach_or_impersonate_gateways(rig: Rig) -> None:
    assert rig.server.relay is not None
    endpoint = rig.server.relay.endpoint
    gw = await rig.call("POST", "/v1/gateways", "olga", 201, json={"name": "hall"})
    full, bare = gw["jid"], gw["jid"].partition("/")[0]  # <gateway-id>@<domain>/bgw
    gateway = await slix.login(rig.xmpp_port, full, gw["secret"], rig.settings.tls_ca)
    got: list[Any] = []
    gateway.register_handler(Callback("all", MatchXPath("{jabber:client}iq"), got.append))
    gateway.add_event_handler("message", got.append)
    gateway.add_event_handler("presence", got.append)
    olga = await rig.connect(await rig.new_login("olga"))
    gateway_client = Client(gateway, rig.domain)
    try:
        gateway.send_presence()
        await gateway_client.round_trip()
        assert endpoint.is_online(bare)

        # The person addresses the gateway: as if it were offline, and it sees nothing.
        for to in (full, bare):
            with pytest.raises(IqError) as caught:
                await olga.xmpp.make_iq_get(queryxmlns=NS_LOCK, ito=to).send(timeout=WAIT_S)
            assert caught.value.condition == "service-unavailable"
        olga.xmpp.send_message(mto=full, mbody="unlock")
        olga.xmpp.send_presence(pto=full, ptype="probe")

        # ... nor can it speak as one: events, scans and frame results to the RAS.
        refused_before = endpoint.refused_messages
        _message(olga.xmpp, rig.domain, LockEvent(LOCK, b"\x00" * 16, -50).element())
        _message(olga.xmpp, rig.domain, ScanReport((), ScanReason.CHANGE).element())
        result = olga.xmpp.make_iq_result(ito=rig.domain, id="r1")
        result.xml.append(FrameResult(LOCK, b"\x00" * 16).element())
        result.send()
        with pytest.raises(IqError) as caught:
            await olga.xmpp.make_iq_get(queryxmlns=NS_LOCK, ito=rig.domain).send(timeout=WAIT_S)
        assert caught.value.condition == "service-unavailable"
        await olga.round_trip()
        errors = []
        while not olga.messages.empty():
            errors.append(olga.messages.get_nowait())
        conditions = [e.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden") for e in errors]
        assert len(errors) == 3
        assert sum(c is not None for c in conditions) == 2
        assert endpoint.refused_messages == refused_before  # never even parsed as a gateway's
        assert not endpoint.is_online(olga.xmpp.boundjid.bare)  # a person is no gateway

        # The gateway cannot reach the person, nor ask for people's events.
        with pytest.raises(IqError) as caught:
            await gateway.make_iq_get(queryxmlns=NS_LOCK, ito=str(olga.xmpp.boundjid)).send(
                timeout=WAIT_S
            )
        assert caught.value.condition == "service-unavailable"
        iq = gateway.make_iq_get(ito=rig.domain)
        iq.xml.append(ResumeRequest(0).element())
        with pytest.raises(IqError) as caught:
            await iq.send(timeout=WAIT_S)
        assert caught.value.condition == "forbidden"
        gateway.send_message(mto=str(olga.xmpp.boundjid), mbody="hi")
        await gateway_client.round_trip()
        await olga.round_trip()
        assert olga.messages.empty()
        assert olga.events.empty()
        # Only the server's own answers to the gateway's attempts came back to it.
        from_people = [s for s in got if str(s["from"]).startswith("p-")]
        assert {s["type"] for s in from_people} == {"error"}
    finally:
        await slix.close(gateway)
