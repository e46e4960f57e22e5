"""The ``urn:heslock:events:1`` codec: round trips, the literal examples of its docstring
(and docs/protocol.md), and every malformed input refused with EventNsError."""

from __future__ import annotations

import uuid
from xml.etree.ElementTree import Element, fromstring

import pytest

from heslock.ras.services.xmppusers import logins
from heslock.ras.services.xmppusers.wire import (
    MAX_EVENTS,
    NS_EVENTS,
    TAG_EVENT,
    EventItem,
    EventNsError,
    ResumeRequest,
    ResumeResult,
    headline,
)
from heslock.xmpp.stream import serialize

LOCK = uuid.UUID("0b0c0d0e-0000-4000-8000-000000000001")
ITEM = EventItem(
    id=1234,
    kind="lock.manual_operation",
    at="2026-11-24T05:00:00.123456+00:00",
    path="manual",
    lock_id=LOCK,
    credential="gateway:gw@ras.example",
    payload={"detail": 2},
)


def test_an_event_round_trips_and_matches_the_feed_view() -> None:
    assert EventItem.from_element(ITEM.element()) == ITEM
    view = {
        "id": 1234, "kind": "lock.manual_operation", "created_at": ITEM.at,
        "lock_id": str(LOCK), "home_id": None, "gateway_id": None, "actor_id": None,
        "path": "manual", "credential": ITEM.credential, "payload": {"detail": 2},
    }  # fmt: skip
    assert EventItem.from_view(view) == ITEM


def test_the_headline_message_is_what_the_docs_show() -> None:
    wire = serialize(headline(ITEM, "p-0123456789abcdef0123@ras.example/phone", "ras.example"))
    message = fromstring(wire.replace(b"<message ", b"<message xmlns='jabber:client' ", 1))
    assert message.get("type") == "headline"
    assert message.get("id") == "ev-1234"
    assert message.get("from") == "ras.example"
    event = message.find(TAG_EVENT)
    assert event is not None
    assert EventItem.from_element(event) == ITEM
    assert f'xmlns="{NS_EVENTS}"'.encode() in wire or f"xmlns='{NS_EVENTS}'".encode() in wire


def test_documented_resume_request_parses() -> None:
    request = ResumeRequest.from_element(
        fromstring(f"<events xmlns='{NS_EVENTS}' after='1234' max='100'/>")
    )
    assert request == ResumeRequest(1234, 100)
    assert ResumeRequest.from_element(request.element()) == request
    assert ResumeRequest.from_element(fromstring(f"<events xmlns='{NS_EVENTS}' after='0'/>")).max


def test_a_resume_result_round_trips() -> None:
    result = ResumeResult(1000, 1300, False, (ITEM,))
    assert ResumeResult.from_element(result.element()) == result


@pytest.mark.parametrize(
    "xml",
    [
        "<events xmlns='{ns}'/>",  # no after
        "<events xmlns='{ns}' after='-1'/>",
        "<events xmlns='{ns}' after='1e3'/>",
        "<events xmlns='{ns}' after='99999999999999999999'/>",
        "<events xmlns='{ns}' after='1' max='0'/>",
        "<events xmlns='{ns}' after='1' max='" + str(MAX_EVENTS + 1) + "'/>",
        "<events xmlns='{ns}' after='1'><x/></events>",
        "<events xmlns='urn:other' after='1'/>",
        "<events xmlns='{ns}' after='\u0661'/>",  # ARABIC-INDIC DIGIT ONE: not ASCII
    ],
    ids=["no-after", "negative", "float", "too-big", "max-0", "max-over", "child", "ns", "arabic"],
)
def test_malformed_resume_requests_are_refused(xml: str) -> None:
    with pytest.raises(EventNsError):
        ResumeRequest.from_element(fromstring(xml.replace("{ns}", NS_EVENTS)))


def _event(**attrs: str) -> Element:
    base = {"id": "1", "kind": "k", "at": "t", "path": "manual"}
    return Element(TAG_EVENT, {**base, **attrs})


@pytest.mark.parametrize(
    ("attrs", "payload"),
    [
        ({"id": "0"}, None),
        ({"kind": ""}, None),
        ({"lock": "not-a-uuid"}, None),
        ({}, "[1, 2]"),
        ({}, "{broken"),
        ({}, "{}" + " " * 20_000),
    ],
    ids=["id-0", "no-kind", "bad-uuid", "payload-list", "payload-json", "payload-long"],
)
def test_malformed_events_are_refused(attrs: dict[str, str], payload: str | None) -> None:
    element = _event(**attrs)
    if payload is not None:
        Element(f"{{{NS_EVENTS}}}payload")
        child = Element(f"{{{NS_EVENTS}}}payload")
        child.text = payload
        element.append(child)
    with pytest.raises(EventNsError):
        EventItem.from_element(element)


def test_login_names_never_look_like_gateways() -> None:
    assert logins.is_login_username("p-0123456789abcdef0123")
    for name in ("p-0123456789ABCDEF0123", "p-0123", str(uuid.uuid4()), "p-0123456789abcdef01234"):
        assert not logins.is_login_username(name)
