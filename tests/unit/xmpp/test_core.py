"""Errors, JIDs, limits, SCRAM (RFC 7677 vector) and the session transition table."""

from __future__ import annotations

import base64
from xml.etree.ElementTree import Element, fromstring

import pytest
from scramp import ScramClient, ScramMechanism

from heslock.xmpp.errors import (
    SaslFailure,
    StanzaError,
    StanzaErrorCondition,
    StanzaErrorType,
    StreamErrorCondition,
)
from heslock.xmpp.jid import Jid, JidMalformed
from heslock.xmpp.limits import SourceThrottle, TokenBucket
from heslock.xmpp.sasl import (
    MECH_SCRAM,
    SaslError,
    ScramCredentials,
    ScramExchange,
    parse_client_first,
)
from heslock.xmpp.session import TRANSITIONS, Input, State
from heslock.xmpp.stream import serialize

# --- errors (RFC 6120 4.9.3, 8.3.3, 6.5) -----------------------------------------------------


def test_condition_registries_are_complete() -> None:
    assert len(StreamErrorCondition) == 25
    assert len(StanzaErrorCondition) == 22
    assert len(SaslFailure) == 11


def test_stream_error_xml() -> None:
    xml = StreamErrorCondition.CONFLICT.to_xml("replaced <by> new")
    root = fromstring(
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
        + xml
        + b"</stream:stream>"
    )
    error = root[0]
    assert error.tag == "{http://etherx.jabber.org/streams}error"
    assert error[0].tag == "{urn:ietf:params:xml:ns:xmpp-streams}conflict"
    assert error[1].text == "replaced <by> new"


def test_stanza_error_round_trip() -> None:
    iq = Element("{jabber:client}iq", type="error", id="1")
    iq.append(StanzaErrorCondition.SERVICE_UNAVAILABLE.element(text="offline"))
    assert b"<error type='cancel'><service-unavailable" in serialize(iq)
    error = StanzaError.from_stanza(iq)
    assert error.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE
    assert error.error_type is StanzaErrorType.CANCEL
    assert error.text == "offline"
    assert StanzaErrorCondition.NOT_AUTHORIZED.default_type is StanzaErrorType.AUTH


def test_stanza_error_without_error_child() -> None:
    assert StanzaError.from_stanza(Element("{jabber:client}iq")).condition is None


def test_sasl_failure_xml() -> None:
    assert SaslFailure.NOT_AUTHORIZED.to_xml() == (
        b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"
    )


# --- JIDs (RFC 7622) ----------------------------------------------------------------------------


def test_jid_parse() -> None:
    jid = Jid.parse("GW1@Example.COM/bgw/x")
    assert (jid.local, jid.domain, jid.resource) == ("gw1", "example.com", "bgw/x")
    assert jid.bare == "gw1@example.com"
    assert str(jid) == "gw1@example.com/bgw/x"
    assert Jid.parse("example.com").bare == "example.com"


@pytest.mark.parametrize("text", ["", "@x", "a@", "a@x/", "a b@x", 'a"@x', "x" * 1024 + "@y"])
def test_jid_malformed(text: str) -> None:
    with pytest.raises(JidMalformed):
        Jid.parse(text)


# --- limits -------------------------------------------------------------------------------------


def test_token_bucket_debt() -> None:
    bucket = TokenBucket(burst=2, now=0.0)
    assert bucket.take(1.0, 2, 0.0) == 0.0
    assert bucket.take(1.0, 2, 0.0) == 0.0
    assert bucket.take(1.0, 2, 0.0) == pytest.approx(1.0)
    assert bucket.take(1.0, 2, 3.0) == 0.0  # refilled (capped at burst)


def test_source_throttle() -> None:
    throttle = SourceThrottle(burst=2, per_second=0.5)
    assert throttle.allowed("10.0.0.1", 0.0)
    throttle.failed("10.0.0.1", 0.0)
    throttle.failed("10.0.0.1", 0.0)
    assert not throttle.allowed("10.0.0.1", 0.0)
    assert throttle.allowed("10.0.0.2", 0.0)
    assert throttle.allowed("10.0.0.1", 2.0)


# --- SCRAM-SHA-256 (RFC 7677 section 3 test vector) ---------------------------------------------

RFC7677 = {
    "client_first": "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "server_first": "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "client_final": "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "server_final": "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}


def test_scram_rfc7677_vector() -> None:
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    credentials = ScramCredentials.from_auth_info(
        ScramMechanism(MECH_SCRAM).make_auth_info("pencil", 4096, salt)
    )
    exchange = ScramExchange(
        MECH_SCRAM, credentials, "user", None, server_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    assert exchange.first(RFC7677["client_first"]) == RFC7677["server_first"]
    assert exchange.final(RFC7677["client_final"]) == RFC7677["server_final"]


def test_scram_unknown_user_fails_like_a_wrong_password() -> None:
    client = ScramClient([MECH_SCRAM], "ghost", "pw")
    exchange = ScramExchange(MECH_SCRAM, None, "ghost", None)
    client.set_server_first(exchange.first(client.get_client_first()))
    with pytest.raises(SaslError) as caught:
        exchange.final(client.get_client_final())
    assert caught.value.condition is SaslFailure.NOT_AUTHORIZED


@pytest.mark.parametrize(
    ("message", "expected"),
    [("n,,n=gw=2C1,r=abc", ("n", "gw,1")), ("y,,n=gw1,r=a", ("y", "gw1")),
     ("p=tls-server-end-point,,n=gw1,r=a", ("p=tls-server-end-point", "gw1"))],
)  # fmt: skip
def test_parse_client_first(message: str, expected: tuple[str, str]) -> None:
    assert parse_client_first(message) == expected


@pytest.mark.parametrize(
    "message", ["", "n,,", "n,a=admin,n=gw1,r=a", "x,,n=gw1,r=a", "n,,n=a=b,r=1"]
)
def test_parse_client_first_malformed(message: str) -> None:
    with pytest.raises(SaslError) as caught:
        parse_client_first(message)
    assert caught.value.condition is SaslFailure.MALFORMED_REQUEST


# --- the session transition table (session.py) -------------------------------------------------


def test_every_open_state_can_close_and_fail() -> None:
    for state in State:
        assert TRANSITIONS[(state, Input.ERROR)] is State.CLOSED
        if state is not State.CLOSED:
            assert TRANSITIONS[(state, Input.CLOSE)] is State.CLOSED


def test_the_only_way_to_established_is_tls_then_sasl_then_bind() -> None:
    """Walk the table: ESTABLISHED is unreachable without TLS_DONE, SASL_OK and BIND."""
    paths = {State.WAIT_HEADER_PLAIN: frozenset[Input](), State.TLS_HANDSHAKE: frozenset[Input]()}
    frontier = list(paths)
    seen: dict[State, set[frozenset[Input]]] = {s: {p} for s, p in paths.items()}
    while frontier:
        state = frontier.pop()
        for (source, event), target in TRANSITIONS.items():
            if source is not state:
                continue
            for path in list(seen[state]):
                new = path | {event}
                if new not in seen.setdefault(target, set()):
                    seen[target].add(new)
                    frontier.append(target)
    for path in seen[State.ESTABLISHED]:
        assert {Input.TLS_DONE, Input.SASL_OK, Input.BIND} <= path
    assert all(Input.STANZA not in p for p in seen[State.WAIT_BIND])
