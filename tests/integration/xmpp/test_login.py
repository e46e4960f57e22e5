"""Stream negotiation over real TLS sockets: STARTTLS, direct TLS, SCRAM, refusals.

RFC 6120 sections 5 (STARTTLS), 6 (SASL), 7 (binding); XEP-0368 (direct TLS);
RFC 7677 / RFC 5929 (SCRAM-SHA-256(-PLUS), tls-server-end-point).
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
from slixmpp import ClientXMPP

from heslock.xmpp import ScramCredentials
from tests.integration.xmpp import slix
from tests.integration.xmpp.conftest import (
    PASSWORDS,
    Harness,
    client_context,
    start_server,
)
from tests.integration.xmpp.pki import Pki
from tests.integration.xmpp.rawclient import NS_SASL, NS_STREAMS, RawClient

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
async def test_slixmpp_logs_in_and_binds(harness: Harness, pki: Pki, direct_tls: bool) -> None:
    port = harness.direct_port if direct_tls else harness.starttls_port
    client = await slix.login(port, "gw1@localhost/bgw", PASSWORDS["gw1"], pki.ca_pem, direct_tls)
    try:
        assert str(client.boundjid) == "gw1@localhost/bgw"
        assert harness.server.is_connected("gw1@localhost/bgw")
        assert harness.store.lookups == ["gw1"]
    finally:
        await slix.close(client)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"])
@pytest.mark.parametrize("starttls", [True, False], ids=["starttls", "direct-tls"])
async def test_independent_client_logs_in_and_exchanges_an_iq(
    harness: Harness, pki: Pki, mechanism: str, starttls: bool
) -> None:
    context = client_context(pki.ca_pem)
    port = harness.starttls_port if starttls else harness.direct_port
    client = await RawClient.connect(port, None if starttls else context)
    try:
        jid = await client.login(
            context, "gw2", PASSWORDS["gw2"], mechanism=mechanism, starttls=starttls
        )
        assert jid == "gw2@localhost/bgw"
        client.send("<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        result = await client.next()
        assert result.get("type") == "result"
        assert result.get("id") == "ping1"
        assert result.get("from") == "localhost"
    finally:
        await client.close()


async def test_features_offer_scram_only_and_channel_binding(harness: Harness, pki: Pki) -> None:
    client = await RawClient.connect(harness.starttls_port, None)
    try:
        features = await client.starttls(client_context(pki.ca_pem))
        mechanisms = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        assert mechanisms == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
        assert "PLAIN" not in mechanisms
        binding = features.find("{urn:xmpp:sasl-cb:0}sasl-channel-binding/*")
        assert binding is not None
        assert binding.get("type") == "tls-server-end-point"
    finally:
        await client.close()


async def test_plain_is_refused_as_invalid_mechanism(harness: Harness, pki: Pki) -> None:
    client = await RawClient.connect(harness.starttls_port, None)
    try:
        await client.starttls(client_context(pki.ca_pem))
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>AGd3MQBwYXNz</auth>")
        failure = await client.next()
        assert failure.tag == f"{{{NS_SASL}}}failure"
        assert failure.find(f"{{{NS_SASL}}}invalid-mechanism") is not None
    finally:
        await client.close()


async def test_sasl_before_tls_is_refused_and_stream_closed(harness: Harness) -> None:
    client = await RawClient.connect(harness.starttls_port, None)
    features = await client.open_stream()
    assert features.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls/{*}required") is not None
    assert features.find(f"{{{NS_SASL}}}mechanisms") is None  # nothing to try in the clear
    client.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>biwsbj1ndzEscj1hYmM=</auth>")
    failure = await client.next()
    assert failure.find(f"{{{NS_SASL}}}encryption-required") is not None
    assert await client.stream_error() == "policy-violation"
    await client.wait_closed()
    assert client.closed_by_server
    assert harness.store.lookups == []  # credentials never touched
    await client.close()


async def test_stanza_before_authentication_is_not_authorized(harness: Harness, pki: Pki) -> None:
    client = await RawClient.connect(harness.starttls_port, None)
    await client.starttls(client_context(pki.ca_pem))
    client.send("<iq type='get' id='x' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert await client.stream_error() == "not-authorized"
    await client.close()


async def test_untrusted_certificate_makes_slixmpp_disconnect(harness: Harness, pki: Pki) -> None:
    client = ClientXMPP("gw1@localhost/bgw", PASSWORDS["gw1"])
    client.enable_direct_tls = True
    client.enable_starttls = False
    client.enable_plaintext = False
    client.ca_certs = pki.other_ca_pem
    failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def on_failure(error: object) -> None:
        if not failed.done():
            failed.set_result(error)

    client.add_event_handler("connection_failed", on_failure)
    client.connect("127.0.0.1", harness.direct_port)
    try:
        error = await asyncio.wait_for(failed, 10)
        assert isinstance(error, ssl.SSLCertVerificationError)
        assert not harness.server.is_connected("gw1@localhost/bgw")
    finally:
        client.cancel_connection_attempt()
        await slix.drain(client)


async def test_untrusted_certificate_refused_by_independent_client(
    harness: Harness, pki: Pki
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await RawClient.connect(harness.direct_port, client_context(pki.other_ca_pem))


async def test_wrong_password_and_unknown_user_fail_alike(harness: Harness, pki: Pki) -> None:
    context = client_context(pki.ca_pem)
    outcomes = []
    for username, password in (("gw1", "wrong"), ("nobody", "wrong")):
        client = await RawClient.connect(harness.direct_port, context)
        await client.open_stream()
        outcome = await client.authenticate(username, password)
        outcomes.append([child.tag for child in outcome])
        assert outcome.tag == f"{{{NS_SASL}}}failure"
        await client.close()
    assert outcomes == [[f"{{{NS_SASL}}}not-authorized"]] * 2


async def test_failed_auth_throttle_per_source(
    pki: Pki, credentials: dict[str, ScramCredentials]
) -> None:
    h = await start_server(pki, credentials, auth_failure_burst=3)
    context = client_context(pki.ca_pem)
    try:
        for _ in range(3):
            client = await RawClient.connect(h.direct_port, context)
            await client.open_stream()
            failure = await client.authenticate("gw1", "guess")
            assert failure.find(f"{{{NS_SASL}}}not-authorized") is not None
            await client.close()
        # the right password no longer helps from this address: the bucket is empty
        client = await RawClient.connect(h.direct_port, context)
        await client.open_stream()
        failure = await client.authenticate("gw1", PASSWORDS["gw1"])
        assert failure.find(f"{{{NS_SASL}}}temporary-auth-failure") is not None
        assert await client.stream_error() == "policy-violation"
        await client.close()
        assert h.store.lookups == ["gw1"] * 3  # the throttled attempt never reached the store
    finally:
        await h.server.stop()


async def test_three_failures_on_one_stream_close_it(harness: Harness, pki: Pki) -> None:
    client = await RawClient.connect(harness.direct_port, client_context(pki.ca_pem))
    await client.open_stream()
    for _ in range(3):
        failure = await client.authenticate("gw1", "guess")
        assert failure.tag == f"{{{NS_SASL}}}failure"
    assert await client.stream_error() == "not-authorized"
    await client.close()


async def test_authentication_timeout(pki: Pki, credentials: dict[str, ScramCredentials]) -> None:
    h = await start_server(pki, credentials, auth_timeout=0.2)
    try:
        client = await RawClient.connect(h.direct_port, client_context(pki.ca_pem))
        await client.open_stream()  # and then nothing: the timer must end it
        assert await client.stream_error() == "connection-timeout"
        await client.wait_closed()
        await client.close()
    finally:
        await h.server.stop()


async def test_wrong_domain_is_host_unknown(harness: Harness, pki: Pki) -> None:
    client = await RawClient.connect(harness.direct_port, client_context(pki.ca_pem))
    client.domain = "example.org"
    client.send(
        f"<stream:stream xmlns='jabber:client' xmlns:stream='{NS_STREAMS}' to='example.org'"
        " version='1.0'>"
    )
    assert await client.stream_error() == "host-unknown"
    assert client.header is not None  # our header came before the error (4.9.1.2)
    await client.close()
