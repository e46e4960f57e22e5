"""Hostile XML on the XMPP port over real TLS (issue 5): each refused with the RFC 6120
stream error, and the server keeps serving a legitimate client meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from heslock.xmpp import ScramCredentials
from tests.integration.xmpp.conftest import PASSWORDS, Harness, client_context, start_server
from tests.integration.xmpp.pki import Pki
from tests.integration.xmpp.rawclient import NS_STREAMS, RawClient

pytestmark = pytest.mark.timeout(60)

HEADER = (
    f"<stream:stream xmlns='jabber:client' xmlns:stream='{NS_STREAMS}' to='localhost' "
    "version='1.0'>"
)
BILLION_LAUGHS = (
    "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    + "".join(f"<!ENTITY lol{i} '{('&lol' + str(i - 1) + ';') * 10}'>" for i in range(1, 10))
    + "]>"
    + HEADER
    + "<message><body>&lol9;</body></message>"
).replace("&lol0;", "&lol;")
XXE = (
    "<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
    + HEADER
    + "<message><body>&xxe;</body></message>"
)

CASES: dict[str, tuple[str | bytes, str]] = {
    "billion-laughs": (BILLION_LAUGHS, "restricted-xml"),
    "external-entity": (XXE, "restricted-xml"),
    "undeclared-entity": (HEADER + "<message><body>&lol;</body></message>", "restricted-xml"),
    "comment": (HEADER + "<!-- hello -->", "restricted-xml"),
    "processing-instruction": (HEADER + "<?php echo 1; ?>", "restricted-xml"),
    "garbage": (HEADER + "<<<>>>", "not-well-formed"),
    "invalid-utf8": (
        HEADER.encode() + b"<message><body>\xff\xfe</body></message>",
        "unsupported-encoding",
    ),
    "deep-nesting": (HEADER + "<a>" * 5000, "policy-violation"),
    "wrong-stream-namespace": (
        "<stream:stream xmlns:stream='urn:evil' xmlns='jabber:client' to='localhost'"
        " version='1.0'>",
        "invalid-namespace",
    ),
}


@pytest.fixture
async def bystander(harness: Harness, pki: Pki) -> AsyncIterator[RawClient]:
    """A logged-in client that must keep being served during each attack."""
    context = client_context(pki.ca_pem)
    client = await RawClient.connect(harness.direct_port, context)
    await client.login(context, "gw1", PASSWORDS["gw1"], starttls=False)
    yield client
    await client.close()


async def assert_still_served(client: RawClient) -> None:
    client.send("<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    reply = await client.next()
    assert (reply.get("id"), reply.get("type")) == ("alive", "result")


@pytest.mark.parametrize("case", sorted(CASES))
async def test_hostile_stream_is_refused(
    harness: Harness, pki: Pki, bystander: RawClient, case: str
) -> None:
    payload, condition = CASES[case]
    attacker = await RawClient.connect(harness.direct_port, client_context(pki.ca_pem))
    attacker.send(payload)
    assert await attacker.stream_error() == condition
    await attacker.wait_closed()
    await attacker.close()
    await assert_still_served(bystander)


async def test_one_mebibyte_stanza_is_policy_violation(
    harness: Harness, pki: Pki, bystander: RawClient
) -> None:
    context = client_context(pki.ca_pem)
    attacker = await RawClient.connect(harness.direct_port, context)
    await attacker.login(context, "gw2", PASSWORDS["gw2"], starttls=False)
    attacker.send("<message to='gw1@localhost/bgw'><body>" + "A" * (1024 * 1024))
    assert await attacker.stream_error() == "policy-violation"
    await attacker.close()
    await assert_still_served(bystander)  # and the bystander received none of it


async def test_unterminated_stream_times_out(
    pki: Pki, credentials: dict[str, ScramCredentials]
) -> None:
    h = await start_server(pki, credentials, auth_timeout=0.3)
    try:
        attacker = await RawClient.connect(h.direct_port, client_context(pki.ca_pem))
        attacker.send(HEADER + "<iq type='get' id='1'><query xmlns='x'")  # never finished
        assert await attacker.stream_error() == "connection-timeout"
        await attacker.wait_closed()
        await attacker.close()
    finally:
        await h.server.stop()


async def test_bytes_after_starttls_are_discarded(harness: Harness, pki: Pki) -> None:
    """STARTTLS command injection: plaintext pipelined after <starttls/> is never read."""
    client = await RawClient.connect(harness.starttls_port, None)
    await client.open_stream()
    client.send(
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
        "<iq type='get' id='injected' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
    )
    proceed = await client.next()
    assert proceed.tag == "{urn:ietf:params:xml:ns:xmpp-tls}proceed"
    await client.writer.start_tls(client_context(pki.ca_pem), server_hostname="localhost")
    features = await client.open_stream()  # a fresh stream: the injected IQ left no trace
    assert features.find("{urn:ietf:params:xml:ns:xmpp-sasl}mechanisms") is not None
    await client.close()
