"""The urn:heslock:lock:1 codec: round trips, the documented examples, malformed input."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, fromstring

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heslock.protocol import DeviceId, Profile
from heslock.xmpp.errors import NS_CLIENT, StanzaError, StanzaErrorCondition
from heslock.xmpp.lockns import (
    MAX_SCAN_LOCKS,
    NS_LOCK,
    TAG_EVENT,
    TAG_FRAME,
    TAG_LOCK,
    TAG_SCAN,
    TAG_STATUS,
    FrameRequest,
    FrameResult,
    GatewayStatus,
    LockCondition,
    LockEvent,
    LockNsError,
    ScanEntry,
    ScanReason,
    ScanReport,
    error_element,
    parse_error,
    parse_message_payload,
)

LOCK = DeviceId.parse("F0:11:22:33:44:55")
FRAME16 = bytes(range(16))
FRAME20 = bytes(range(20))
SEEN = datetime(2025, 6, 15, 12, 0, 0, tzinfo=UTC)


def entry(lock: DeviceId = LOCK, rssi: int = -61) -> ScanEntry:
    return ScanEntry(lock, "acme", 1, "4.0", Profile.SECURE, True, False, 87, rssi, SEEN)


def test_documented_frame_request_parses() -> None:
    element = fromstring(
        "<frame xmlns='urn:heslock:lock:1' lock='F01122334455' timeout-ms='8000'>\n"
        "  q83vEjRWeJCrze8SNFZ4kA==</frame>"
    )
    request = FrameRequest.from_element(element)
    assert request == FrameRequest(LOCK, bytes.fromhex("abcdef1234567890" * 2), 8000)


@pytest.mark.parametrize("frame", [FRAME16, FRAME20])
def test_round_trips(frame: bytes) -> None:
    assert FrameRequest.from_element(FrameRequest(LOCK, frame, 500).element()).frame == frame
    assert FrameResult.from_element(FrameResult(LOCK, frame).element()) == FrameResult(LOCK, frame)
    event = LockEvent(LOCK, frame, -70)
    assert LockEvent.from_element(event.element()) == event
    assert LockEvent.from_element(LockEvent(LOCK, frame).element()).rssi is None
    report = ScanReport((entry(),), ScanReason.CHANGE)
    assert ScanReport.from_element(report.element()) == report
    status = GatewayStatus(3, 10, 1, 2, 7)
    assert GatewayStatus.from_element(status.element()) == status


def test_request_default_timeout_and_message_dispatch() -> None:
    element = Element(TAG_FRAME, lock="f0-11-22-33-44-55")
    element.text = base64.b64encode(FRAME16).decode()
    assert FrameRequest.from_element(element).timeout_ms == 10_000
    message = Element(f"{{{NS_CLIENT}}}message")
    message.append(LockEvent(LOCK, FRAME16, -50).element())
    assert parse_message_payload(message) == LockEvent(LOCK, FRAME16, -50)


@pytest.mark.parametrize(
    ("attrs", "text", "why"),
    [
        ({"lock": "F01122334455"}, base64.b64encode(bytes(15)).decode(), "16 or 20"),
        ({"lock": "F01122334455"}, base64.b64encode(bytes(24)).decode(), "longer"),
        ({"lock": "F01122334455"}, "not base64!", "base64"),
        ({"lock": "F01122334455"}, "AAECAwQFBgcICQoLDA0ODx==", "canonical"),
        ({"lock": "F01122334455"}, "", "missing"),
        ({"lock": "010000000000"}, base64.b64encode(FRAME16).decode(), "multicast"),
        ({}, base64.b64encode(FRAME16).decode(), "lock"),
        (
            {"lock": "F01122334455", "timeout-ms": "0"},
            base64.b64encode(FRAME16).decode(),
            "1..30000",
        ),
        (
            {"lock": "F01122334455", "timeout-ms": "1e3"},
            base64.b64encode(FRAME16).decode(),
            "decimal",
        ),
        (
            {"lock": "F01122334455", "timeout-ms": "99999"},
            base64.b64encode(FRAME16).decode(),
            "outside",
        ),
    ],
)
def test_malformed_frame_requests(attrs: dict[str, str], text: str, why: str) -> None:
    element = Element(TAG_FRAME, attrs)
    element.text = text
    with pytest.raises(LockNsError, match=why):
        FrameRequest.from_element(element)


def test_wrong_tag_children_and_bounds() -> None:
    with pytest.raises(LockNsError, match="expected"):
        FrameRequest.from_element(Element(TAG_EVENT, lock=LOCK.hex))
    element = FrameResult(LOCK, FRAME16).element()
    element.append(Element("x"))
    with pytest.raises(LockNsError, match="no child"):
        FrameResult.from_element(element)
    scan = Element(TAG_SCAN, reason="periodic")
    for _ in range(MAX_SCAN_LOCKS + 1):
        scan.append(entry().element())
    with pytest.raises(LockNsError, match="at most"):
        ScanReport.from_element(scan)
    twice = ScanReport((entry(),)).element()
    twice.append(entry().element())
    with pytest.raises(LockNsError, match="twice"):
        ScanReport.from_element(twice)
    with pytest.raises(LockNsError, match="rssi"):
        LockEvent(LOCK, FRAME16, 50)
    bad_date = entry().element()
    bad_date.set("last-seen", "2025-13-40T00:00:00Z")
    with pytest.raises(LockNsError, match="date"):
        ScanEntry.from_element(bad_date)


def test_scan_report_of_keeps_the_strongest() -> None:
    entries = [
        entry(DeviceId.from_bytes(bytes((0xF0, 0, 0, 0, i >> 8, i & 0xFF))), -(i % 100))
        for i in range(MAX_SCAN_LOCKS + 5)
    ]
    report = ScanReport.of(entries, ScanReason.PERIODIC)
    assert report.truncated
    assert len(report.locks) == MAX_SCAN_LOCKS
    assert min(e.rssi for e in report.locks) >= max(
        e.rssi for e in entries if e not in report.locks
    )


@pytest.mark.parametrize("condition", list(LockCondition))
def test_error_conditions_survive_both_ways(condition: LockCondition) -> None:
    error = error_element(condition, "why")
    assert error.get("type") == condition.error_type.value
    assert parse_error(error) is condition
    # a receiver that keeps only the defined condition still tells them apart
    defined = [c for c in error if c.tag.endswith(condition.stanza_condition.value)]
    assert defined
    assert LockCondition.from_stanza_condition(condition.stanza_condition) is condition
    iq = Element(f"{{{NS_CLIENT}}}iq", type="error")
    iq.append(condition.stanza_condition.element())
    assert parse_error(iq) is condition  # fallback through the defined condition


def test_conditions_are_one_to_one() -> None:
    defined = [c.stanza_condition for c in LockCondition]
    assert len(set(defined)) == len(defined)
    assert LockCondition.from_stanza_condition(StanzaErrorCondition.BAD_REQUEST) is None


# --- property: any element either parses or raises LockNsError ---------------------------

_TAGS = st.sampled_from(
    [TAG_FRAME, TAG_EVENT, TAG_SCAN, TAG_LOCK, TAG_STATUS, f"{{{NS_LOCK}}}x", "frame"]
)
_NAMES = st.sampled_from(
    ["lock", "id", "timeout-ms", "rssi", "maker", "model", "ble", "profile", "bound",
     "registration-open", "battery", "last-seen", "reason", "truncated", "links",
     "max-links", "queued", "in-flight", "locks-in-range"]
)  # fmt: skip
_VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(-300, 2_000_000).map(str),
    st.sampled_from(["true", "false", "F01122334455", "acme", "4.0", "secure", "base", "periodic",
                     "2025-06-15T12:00:00Z", base64.b64encode(FRAME16).decode()]),
)  # fmt: skip


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> Element:
    element = Element(draw(_TAGS), draw(st.dictionaries(_NAMES, _VALUES, max_size=12)))
    element.text = draw(st.one_of(st.none(), _VALUES))
    if depth < 1:
        for child in draw(st.lists(elements(depth + 1), max_size=3)):
            element.append(child)
    return element


@given(elements())
def test_any_element_parses_or_raises_the_codec_error(element: Element) -> None:
    for parse in (
        FrameRequest.from_element,
        FrameResult.from_element,
        LockEvent.from_element,
        ScanReport.from_element,
        ScanEntry.from_element,
        GatewayStatus.from_element,
    ):
        try:
            parsed = parse(element)
        except LockNsError:
            continue
        assert type(parsed).from_element(parsed.element()) == parsed


@pytest.mark.parametrize("condition", list(LockCondition))
def test_stanza_error_keeps_the_application_condition(condition: LockCondition) -> None:
    """What the RAS gets from iq_request: the StanzaError carries our condition element,
    so the exact lock condition survives even where two map to one defined condition."""
    iq = Element("{jabber:client}iq", type="error", id="1")
    iq.append(error_element(condition, "detail"))
    error = StanzaError.from_stanza(iq)
    assert error.condition is condition.stanza_condition
    assert error.application is not None
    assert error.application.tag == f"{{{NS_LOCK}}}{condition.value}"
    assert error.text == "detail"
