"""RelayEndpoint against a scripted gateway: a plain slixmpp client that answers frame IQs
the way a test tells it (wrongly, late, never, with errors), over loopback TLS.

These are the answers a real BGW does not give on purpose, so the real gateway cannot
produce them; the relay must still turn each into a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from slixmpp import ClientXMPP
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from heslock.protocol import DeviceId
from heslock.ras.relay import (
    GatewayFailure,
    GatewayLost,
    GatewayOverloaded,
    LockBusy,
    RelayTimeout,
)
from heslock.ras.relay import endpoint as endpoint_module
from heslock.xmpp.lockns import (
    TAG_FRAME,
    FrameRequest,
    FrameResult,
    LockCondition,
    LockEvent,
    error_element,
)
from tests.integration.ras.relay.conftest import SECRETS, WAIT_S, Rig, bare

pytestmark = pytest.mark.timeout(60)

GW1 = bare("gw1")
LOCK = DeviceId.parse("F0:11:22:33:44:55")
OTHER = DeviceId.parse("F0:11:22:33:44:66")
#: What a scripted gateway does with a frame request: a reply payload, an <error/>
#: (as ("error", element)), or None to stay silent.
Script = Callable[[FrameRequest], Element | tuple[str, Element] | None]


class ScriptedGateway:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.script: Script = lambda request: FrameResult(request.lock, request.frame).element()
        self.requests: asyncio.Queue[FrameRequest] = asyncio.Queue()
        client.register_handler(Callback("frame", StanzaPath("iq@type=set"), self._on_iq))

    def _on_iq(self, iq: Any) -> None:
        payload = iq.xml.find(TAG_FRAME)
        if payload is None:
            return
        request = FrameRequest.from_element(payload)
        self.requests.put_nowait(request)
        answer = self.script(request)
        if answer is None:
            return
        reply = iq.reply(clear=True)
        if isinstance(answer, tuple):
            reply["type"] = "error"
            answer = answer[1]
        reply.xml.append(answer)
        reply.send()

    def send_message(self, payload: Element) -> None:
        message = self.client.make_message(mto="localhost", mtype="normal")
        message.xml.append(payload)
        message.send()


async def login(rig: Rig, *, frames: bool = True) -> Any:
    client = ClientXMPP(f"{GW1}/scripted", SECRETS["gw1"])
    client.enable_direct_tls = True
    client.enable_starttls = False
    client.enable_plaintext = False
    client.ca_certs = rig.tls.ca_pem
    started = asyncio.ensure_future(client.wait_until("session_start", WAIT_S))
    client.connect("127.0.0.1", rig.endpoint.ports["direct_tls"])
    await started
    client.send_presence()
    await rig.presence.next(lambda p: p.gateway == GW1 and p.online)
    return client


async def close(client: Any) -> None:
    if client.transport is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.disconnect(wait=WAIT_S), WAIT_S)
    client.cancel_connection_attempt()
    task = getattr(client, "_run_out_filters", None)
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def scripted(rig: Rig) -> AsyncIterator[ScriptedGateway]:
    client = await login(rig)
    try:
        yield ScriptedGateway(client)
    finally:
        await close(client)


async def send(rig: Rig, timeout_s: float = 1.0) -> bytes:
    return await rig.bus.send_frame(GW1, LOCK, secrets.token_bytes(20), timeout_s)


async def test_echo_round_trip_carries_the_budget(rig: Rig, scripted: ScriptedGateway) -> None:
    frame = secrets.token_bytes(16)
    assert await rig.bus.send_frame(f"{GW1}/any-resource", LOCK, frame, 2.5) == frame
    request = scripted.requests.get_nowait()
    assert (request.lock, request.frame, request.timeout_ms) == (LOCK, frame, 2500)


async def test_silent_gateway_is_a_relay_timeout(
    rig: Rig, scripted: ScriptedGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoint_module, "IQ_MARGIN_S", 0.05)
    scripted.script = lambda _request: None
    with pytest.raises(RelayTimeout) as caught:
        await send(rig, timeout_s=0.05)
    assert type(caught.value) is RelayTimeout
    assert caught.value.may_have_executed


@pytest.mark.parametrize(
    "answer",
    [
        FrameResult(OTHER, bytes(20)).element(),  # another lock's frame
        Element("{urn:heslock:lock:1}status"),  # not a frame
        Element("{jabber:x:data}x"),  # someone else's payload
    ],
    ids=["other-lock", "status", "foreign"],
)
async def test_an_answer_that_is_not_this_locks_frame(
    rig: Rig, scripted: ScriptedGateway, answer: Element
) -> None:
    scripted.script = lambda _request: answer
    with pytest.raises(GatewayFailure) as caught:
        await send(rig)
    assert caught.value.may_have_executed


async def test_a_third_party_error_answer_is_mapped(rig: Rig, scripted: ScriptedGateway) -> None:
    scripted.script = lambda _request: ("error", error_element(LockCondition.LOCK_BUSY, "full"))
    with pytest.raises(LockBusy) as caught:
        await send(rig)
    assert not caught.value.may_have_executed
    assert "full" in str(caught.value)


async def test_too_many_pending_frames_are_refused_locally(
    rig: Rig, scripted: ScriptedGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoint_module, "MAX_IN_FLIGHT_PER_GATEWAY", 1)
    scripted.script = lambda _request: None  # stay silent
    first = asyncio.create_task(send(rig, timeout_s=5.0))
    await asyncio.wait_for(scripted.requests.get(), WAIT_S)  # the first one is out
    with pytest.raises(GatewayOverloaded) as caught:
        await send(rig)
    assert not caught.value.may_have_executed
    assert scripted.requests.empty()  # the second never left the RAS

    # Stopping the endpoint fails the frame that is out.
    await rig.endpoint.stop()
    with pytest.raises(GatewayLost) as lost:
        await first
    assert lost.value.may_have_executed
    assert not rig.endpoint.is_online(GW1)


async def test_bad_messages_are_refused_and_the_session_goes_on(
    rig: Rig, scripted: ScriptedGateway
) -> None:
    scripted.send_message(Element("{urn:heslock:lock:1}event", lock="not-a-lock"))
    scripted.send_message(Element("{urn:example:other}thing"))
    scripted.send_message(LockEvent(LOCK, bytes(16), -61).element())  # a good one after them
    event = await rig.events.next()
    assert (event.gateway, event.lock, event.frame, event.rssi) == (GW1, LOCK, bytes(16), -61)
    assert rig.endpoint.refused_messages == 2
    assert len(await send(rig)) == 20  # still serving (the echo of our frame)


async def test_a_client_that_serves_no_frames(rig: Rig) -> None:
    client = await login(rig)  # no frame handler registered: slixmpp refuses the IQ
    try:
        with pytest.raises(GatewayFailure) as caught:
            await send(rig)
        assert not caught.value.may_have_executed
    finally:
        await close(client)
