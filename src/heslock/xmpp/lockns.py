"""heslock's XMPP namespace ``urn:heslock:lock:1``: frames, lock events, scan reports, status.

The RAS and its BGWs speak RFC 6120 XMPP (ARCHITECTURE.md, "XMPP between RAS and
gateways"); this module is the codec of the payloads both sides exchange, over plain
:mod:`xml.etree` elements (the type :mod:`heslock.xmpp.stream` yields and slixmpp wraps).
It is pure: no I/O, no party. Every ``from_element`` validates strictly and raises
:class:`LockNsError` (a :class:`~heslock.errors.PeerError`) with the reason, never anything
else. The gateway relays lock frames as opaque bytes: it never holds a lock key, so a frame
here is only checked for its length (16 bytes, or 20 in the SECURE profile).

Frame request (RAS -> BGW), an IQ ``set`` to the gateway's full JID::

    <iq type='set' id='r1' from='ras.example' to='gw1@ras.example/bgw'>
      <frame xmlns='urn:heslock:lock:1' lock='F01122334455' timeout-ms='8000'>
        q83vEjRWeJCrze8SNFZ4kA==</frame>
    </iq>

``lock`` is the DDMS device id (12 hex digits, any spelling :meth:`DeviceId.parse`
accepts; always written canonical), ``timeout-ms`` how long the BGW may spend on it
(connect, write, answer; optional, default :data:`DEFAULT_TIMEOUT_MS`, at most
:data:`MAX_TIMEOUT_MS`), the text the sealed frame in base64 (RFC 4648 section 4).

The result carries the lock's answer the same way (no ``timeout-ms``)::

    <iq type='result' id='r1' from='gw1@ras.example/bgw' to='ras.example'>
      <frame xmlns='urn:heslock:lock:1' lock='F01122334455'>3q2+7wEjRWeJq83vASNFZw==</frame>
    </iq>

Failures are stanza errors (RFC 6120 section 8.3) with a defined condition and an
application-specific condition in our namespace (section 8.3.2); each application
condition has its own defined condition (:data:`CONDITIONS`), so a receiver that keeps only
the defined condition (``heslock.xmpp.errors.StanzaError``) still knows which it was::

    <iq type='error' id='r1' from='gw1@ras.example/bgw' to='ras.example'>
      <error type='cancel'>
        <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
        <lock-not-in-range xmlns='urn:heslock:lock:1'/>
        <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>F01122334455 not seen</text>
      </error>
    </iq>

    lock-not-in-range   item-not-found         cancel  the BGW does not see the lock
    lock-busy           conflict               wait    too many frames queued for that lock
    ble-timeout         remote-server-timeout  wait    no connection or no answer in time
    link-lost           recipient-unavailable  wait    the BLE link dropped; the frame may
                                                       have been executed: read the state
    gateway-overloaded  resource-constraint    wait    the BGW's queues or links are full

A malformed request is ``bad-request`` (type ``modify``) without an application condition.

Lock event (BGW -> RAS), a message to the domain; ``rssi`` (dBm) is optional::

    <message from='gw1@ras.example/bgw' to='ras.example'>
      <event xmlns='urn:heslock:lock:1' lock='F01122334455' rssi='-61'>
        ASNFZ4mrze/+3LqYdlQyEA==</event>
    </message>

Scan report (BGW -> RAS), a message to the domain, sent periodically and whenever a lock
appears, disappears or changes its bound or registration flag. It lists every lock the BGW
sees (at most :data:`MAX_SCAN_LOCKS`, strongest first; ``truncated='true'`` when there were
more), so the RAS replaces its view of this gateway with it. ``reason`` is ``periodic`` or
``change``; ``last-seen`` is a XEP-0082 UTC date-time::

    <message from='gw1@ras.example/bgw' to='ras.example'>
      <scan xmlns='urn:heslock:lock:1' reason='change'>
        <lock id='F01122334455' maker='acme' model='1' ble='4.0' profile='secure'
              bound='true' registration-open='false' battery='87' rssi='-61'
              last-seen='2025-06-15T12:00:00Z'/>
      </scan>
    </message>

Gateway status (BGW -> RAS): a message to the domain at every report interval, and the
answer to an IQ ``get`` carrying an empty ``<status xmlns='urn:heslock:lock:1'/>``::

    <status xmlns='urn:heslock:lock:1' links='3' max-links='10' queued='1'
            in-flight='2' locks-in-range='7'/>
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final
from xml.etree.ElementTree import Element, SubElement

from heslock.errors import PeerError
from heslock.protocol.errors import InvalidDeviceId
from heslock.protocol.ids import DeviceId
from heslock.protocol.profile import Profile
from heslock.xmpp.errors import (
    NS_CLIENT,
    NS_XMPP_STANZAS,
    StanzaErrorCondition,
    StanzaErrorType,
)

NS_LOCK: Final = "urn:heslock:lock:1"
TAG_FRAME: Final = f"{{{NS_LOCK}}}frame"
TAG_EVENT: Final = f"{{{NS_LOCK}}}event"
TAG_SCAN: Final = f"{{{NS_LOCK}}}scan"
TAG_LOCK: Final = f"{{{NS_LOCK}}}lock"
TAG_STATUS: Final = f"{{{NS_LOCK}}}status"

#: A lock frame is one AES block (BASE) or the block and a 4-byte CMAC tag (SECURE).
FRAME_SIZES: Final = frozenset(p.wire_size for p in Profile)
#: base64 of 20 bytes is 28 characters; anything longer is refused before decoding.
MAX_FRAME_B64: Final = 28
#: The longest a RAS may let a gateway work on one frame: a connect (advertising interval
#: up to 1 s, two attempts), a write and the motor's run fit well inside 30 s, and an
#: HTTP caller waits no longer than that.
MAX_TIMEOUT_MS: Final = 30_000
#: When the request names no timeout.
DEFAULT_TIMEOUT_MS: Final = 10_000
#: Locks in one scan report: 200 entries of ~200 bytes stay far below the 64 KiB stanza
#: limit of the RAS's endpoint (heslock.xmpp.stream.MAX_STANZA_BYTES).
MAX_SCAN_LOCKS: Final = 200
#: RSSI in dBm as HCI reports it (Core Spec Vol 4, Part E, 7.7.65.2: -127..+20).
MIN_RSSI: Final = -127
MAX_RSSI: Final = 20
#: Counters in a status report (links, queue depths): anything larger is nonsense.
MAX_COUNTER: Final = 1_000_000
#: Attribute values we read are short; a longer one is refused before any parsing.
MAX_ATTRIBUTE_CHARS: Final = 64
_INT = re.compile(r"-?[0-9]{1,7}")
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")
_MAKER = re.compile(r"[a-z][a-z0-9_]{0,31}")
_BLE_VERSIONS: Final = frozenset({"4.0", "4.1", "4.2", "5.0", "5.1", "5.2", "5.3", "5.4"})


class LockNsError(PeerError, ValueError):
    """An element of ``urn:heslock:lock:1`` that does not parse (the message says why)."""


class LockCondition(StrEnum):
    """Application-specific error conditions of a frame request (module docstring)."""

    LOCK_NOT_IN_RANGE = "lock-not-in-range"
    LOCK_BUSY = "lock-busy"
    BLE_TIMEOUT = "ble-timeout"
    LINK_LOST = "link-lost"
    GATEWAY_OVERLOADED = "gateway-overloaded"

    @property
    def stanza_condition(self) -> StanzaErrorCondition:
        return CONDITIONS[self][0]

    @property
    def error_type(self) -> StanzaErrorType:
        return CONDITIONS[self][1]

    @classmethod
    def from_stanza_condition(cls, condition: StanzaErrorCondition | None) -> LockCondition | None:
        """The application condition a defined condition stands for (None: none does)."""
        for app, (defined, _) in CONDITIONS.items():
            if defined is condition:
                return app
        return None


#: One defined condition (RFC 6120 8.3.3) and error type per application condition.
CONDITIONS: Final[dict[LockCondition, tuple[StanzaErrorCondition, StanzaErrorType]]] = {
    LockCondition.LOCK_NOT_IN_RANGE: (StanzaErrorCondition.ITEM_NOT_FOUND, StanzaErrorType.CANCEL),
    LockCondition.LOCK_BUSY: (StanzaErrorCondition.CONFLICT, StanzaErrorType.WAIT),
    LockCondition.BLE_TIMEOUT: (
        StanzaErrorCondition.REMOTE_SERVER_TIMEOUT,
        StanzaErrorType.WAIT,
    ),
    LockCondition.LINK_LOST: (StanzaErrorCondition.RECIPIENT_UNAVAILABLE, StanzaErrorType.WAIT),
    LockCondition.GATEWAY_OVERLOADED: (
        StanzaErrorCondition.RESOURCE_CONSTRAINT,
        StanzaErrorType.WAIT,
    ),
}


def error_element(condition: LockCondition, text: str = "") -> Element:
    """The ``<error/>`` child of an IQ error for ``condition`` (module docstring)."""
    # RFC 6120 8.3.2 order: the defined condition, the application condition, the text.
    error = condition.stanza_condition.element(condition.error_type)
    SubElement(error, f"{{{NS_LOCK}}}{condition.value}")
    if text:
        SubElement(error, f"{{{NS_XMPP_STANZAS}}}text").text = text
    return error


def bad_request_element(text: str) -> Element:
    """The ``<error/>`` child for a malformed request (``bad-request``, ``modify``)."""
    return StanzaErrorCondition.BAD_REQUEST.element(text=text)


def parse_error(error: Element) -> LockCondition | None:
    """The application condition of an ``<error/>`` element (or of its parent stanza).

    Falls back to the defined condition's mapping when there is no child in our
    namespace; None when neither names one.
    """
    if error.tag != f"{{{NS_CLIENT}}}error":
        found = error.find(f"{{{NS_CLIENT}}}error")
        if found is None:
            return None
        error = found
    defined: StanzaErrorCondition | None = None
    for child in error:
        ns, _, name = child.tag[1:].partition("}")
        if ns == NS_LOCK:
            try:
                return LockCondition(name)
            except ValueError:
                continue
        if ns == NS_XMPP_STANZAS and name != "text" and defined is None:
            try:
                defined = StanzaErrorCondition(name)
            except ValueError:
                defined = None
    return LockCondition.from_stanza_condition(defined)


# ---------------------------------------------------------------------- field codecs


def _check_tag(element: Element, tag: str) -> None:
    if not isinstance(element, Element):
        raise LockNsError(f"expected an XML element, got {type(element).__name__}")
    if element.tag != tag:
        raise LockNsError(f"expected {tag}, got {element.tag!r}")


def _attr(element: Element, name: str) -> str:
    value = element.get(name)
    if value is None:
        raise LockNsError(f"<{_local(element)}/> needs a {name!r} attribute")
    if len(value) > MAX_ATTRIBUTE_CHARS:
        raise LockNsError(f"attribute {name!r} is longer than {MAX_ATTRIBUTE_CHARS} characters")
    return value


def _local(element: Element) -> str:
    return element.tag.rpartition("}")[2]


def _int(element: Element, name: str, low: int, high: int) -> int:
    text = _attr(element, name)
    if not _INT.fullmatch(text):
        raise LockNsError(f"attribute {name!r} is not a decimal integer: {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise LockNsError(f"attribute {name!r} is {value}, outside {low}..{high}")
    return value


def _bool(element: Element, name: str) -> bool:
    text = _attr(element, name)
    if text not in ("true", "false", "1", "0"):  # xs:boolean
        raise LockNsError(f"attribute {name!r} is not a boolean: {text!r}")
    return text in ("true", "1")


def _device(element: Element, name: str) -> DeviceId:
    try:
        return DeviceId.parse(_attr(element, name))
    except InvalidDeviceId as exc:
        raise LockNsError(f"attribute {name!r}: {exc}") from None


def _no_children(element: Element) -> None:
    if len(element):
        raise LockNsError(f"<{_local(element)}/> has no child elements")


def check_frame(frame: bytes) -> bytes:
    """``frame`` if it is 16 or 20 bytes; :class:`LockNsError` otherwise."""
    if len(frame) not in FRAME_SIZES:
        raise LockNsError(f"a lock frame is 16 or 20 bytes, got {len(frame)}")
    return frame


def encode_frame(frame: bytes) -> str:
    return base64.b64encode(check_frame(frame)).decode("ascii")


def decode_frame(text: str | None) -> bytes:
    """Strict base64 (RFC 4648 section 4, padded, no line breaks) of a 16/20-byte frame."""
    text = (text or "").strip()
    if not text:
        raise LockNsError("the frame is missing")
    if len(text) > MAX_FRAME_B64:
        raise LockNsError(f"the frame is longer than {MAX_FRAME_B64} base64 characters")
    try:
        frame = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise LockNsError("the frame is not valid base64") from None
    if base64.b64encode(frame).decode("ascii") != text:
        raise LockNsError("the frame is not canonical base64")  # non-zero padding bits
    return check_frame(frame)


def format_datetime(moment: datetime) -> str:
    """XEP-0082 date-time in UTC, to the second."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no defined UTC time")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _datetime(element: Element, name: str) -> datetime:
    text = _attr(element, name)
    if not _DATETIME.fullmatch(text):
        raise LockNsError(f"attribute {name!r} is not a UTC date-time (XEP-0082): {text!r}")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise LockNsError(f"attribute {name!r} is not a valid date: {text!r}") from None


# ---------------------------------------------------------------------- payloads


@dataclass(frozen=True, slots=True)
class FrameRequest:
    """RAS -> BGW: write ``frame`` to ``lock`` and return its answer."""

    lock: DeviceId
    frame: bytes
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def __post_init__(self) -> None:
        check_frame(self.frame)
        if not 1 <= self.timeout_ms <= MAX_TIMEOUT_MS:
            raise LockNsError(f"timeout-ms is 1..{MAX_TIMEOUT_MS}")

    def element(self) -> Element:
        element = Element(TAG_FRAME, {"lock": self.lock.hex, "timeout-ms": str(self.timeout_ms)})
        element.text = encode_frame(self.frame)
        return element

    @classmethod
    def from_element(cls, element: Element) -> FrameRequest:
        _check_tag(element, TAG_FRAME)
        _no_children(element)
        timeout = (
            _int(element, "timeout-ms", 1, MAX_TIMEOUT_MS)
            if element.get("timeout-ms") is not None
            else DEFAULT_TIMEOUT_MS
        )
        return cls(_device(element, "lock"), decode_frame(element.text), timeout)


@dataclass(frozen=True, slots=True)
class FrameResult:
    """BGW -> RAS: the lock's answer to a :class:`FrameRequest`."""

    lock: DeviceId
    frame: bytes

    def __post_init__(self) -> None:
        check_frame(self.frame)

    def element(self) -> Element:
        element = Element(TAG_FRAME, lock=self.lock.hex)
        element.text = encode_frame(self.frame)
        return element

    @classmethod
    def from_element(cls, element: Element) -> FrameResult:
        _check_tag(element, TAG_FRAME)
        _no_children(element)
        return cls(_device(element, "lock"), decode_frame(element.text))

    @classmethod
    def from_iq(cls, iq: Element) -> FrameResult:
        """From a whole IQ result stanza (what ``XmppServer.iq_request`` returns)."""
        payload = iq.find(TAG_FRAME)
        if payload is None:
            raise LockNsError("the IQ result carries no <frame/>")
        return cls.from_element(payload)


@dataclass(frozen=True, slots=True)
class LockEvent:
    """BGW -> RAS: a frame the lock notified by itself (not an answer), with its RSSI."""

    lock: DeviceId
    frame: bytes
    rssi: int | None = None

    def __post_init__(self) -> None:
        check_frame(self.frame)
        if self.rssi is not None and not MIN_RSSI <= self.rssi <= MAX_RSSI:
            raise LockNsError(f"rssi is {MIN_RSSI}..{MAX_RSSI} dBm")

    def element(self) -> Element:
        element = Element(TAG_EVENT, lock=self.lock.hex)
        if self.rssi is not None:
            element.set("rssi", str(self.rssi))
        element.text = encode_frame(self.frame)
        return element

    @classmethod
    def from_element(cls, element: Element) -> LockEvent:
        _check_tag(element, TAG_EVENT)
        _no_children(element)
        rssi = (
            _int(element, "rssi", MIN_RSSI, MAX_RSSI) if element.get("rssi") is not None else None
        )
        return cls(_device(element, "lock"), decode_frame(element.text), rssi)


@dataclass(frozen=True, slots=True)
class ScanEntry:
    """One lock in a gateway's range, as its advertisement showed it."""

    lock: DeviceId
    maker: str
    model: int
    ble_version: str
    profile: Profile
    bound: bool
    registration_open: bool
    battery: int
    rssi: int
    last_seen: datetime

    def __post_init__(self) -> None:
        if not _MAKER.fullmatch(self.maker):
            raise LockNsError(f"maker {self.maker!r} is not a maker name")
        if not 0 <= self.model <= 0xFF:
            raise LockNsError("model is a one-byte code")
        if self.ble_version not in _BLE_VERSIONS:
            raise LockNsError(f"unknown BLE version {self.ble_version!r}")
        if not 0 <= self.battery <= 100:
            raise LockNsError("battery is 0..100 %")
        if not MIN_RSSI <= self.rssi <= MAX_RSSI:
            raise LockNsError(f"rssi is {MIN_RSSI}..{MAX_RSSI} dBm")
        if self.last_seen.tzinfo is None:
            raise LockNsError("last-seen needs a time zone")

    def element(self) -> Element:
        return Element(
            TAG_LOCK,
            {
                "id": self.lock.hex,
                "maker": self.maker,
                "model": str(self.model),
                "ble": self.ble_version,
                "profile": self.profile.value,
                "bound": "true" if self.bound else "false",
                "registration-open": "true" if self.registration_open else "false",
                "battery": str(self.battery),
                "rssi": str(self.rssi),
                "last-seen": format_datetime(self.last_seen),
            },
        )

    @classmethod
    def from_element(cls, element: Element) -> ScanEntry:
        _check_tag(element, TAG_LOCK)
        _no_children(element)
        maker = _attr(element, "maker")
        ble = _attr(element, "ble")
        try:
            profile = Profile(_attr(element, "profile"))
        except ValueError:
            raise LockNsError(f"unknown profile {element.get('profile')!r}") from None
        return cls(
            lock=_device(element, "id"),
            maker=maker,
            model=_int(element, "model", 0, 0xFF),
            ble_version=ble,
            profile=profile,
            bound=_bool(element, "bound"),
            registration_open=_bool(element, "registration-open"),
            battery=_int(element, "battery", 0, 100),
            rssi=_int(element, "rssi", MIN_RSSI, MAX_RSSI),
            last_seen=_datetime(element, "last-seen"),
        )


class ScanReason(StrEnum):
    PERIODIC = "periodic"
    CHANGE = "change"


@dataclass(frozen=True, slots=True)
class ScanReport:
    """BGW -> RAS: every lock in range (module docstring)."""

    locks: tuple[ScanEntry, ...]
    reason: ScanReason = ScanReason.PERIODIC
    truncated: bool = False

    def __post_init__(self) -> None:
        if len(self.locks) > MAX_SCAN_LOCKS:
            raise LockNsError(f"a scan report lists at most {MAX_SCAN_LOCKS} locks")
        if len({entry.lock for entry in self.locks}) != len(self.locks):
            raise LockNsError("a lock is listed twice in the scan report")

    @classmethod
    def of(cls, entries: list[ScanEntry], reason: ScanReason) -> ScanReport:
        """The report for ``entries``, cut to the strongest :data:`MAX_SCAN_LOCKS`."""
        ordered = sorted(entries, key=lambda e: (-e.rssi, e.lock.hex))
        return cls(tuple(ordered[:MAX_SCAN_LOCKS]), reason, len(ordered) > MAX_SCAN_LOCKS)

    def element(self) -> Element:
        element = Element(TAG_SCAN, reason=self.reason.value)
        if self.truncated:
            element.set("truncated", "true")
        element.extend(entry.element() for entry in self.locks)
        return element

    @classmethod
    def from_element(cls, element: Element) -> ScanReport:
        _check_tag(element, TAG_SCAN)
        if len(element) > MAX_SCAN_LOCKS:
            raise LockNsError(f"a scan report lists at most {MAX_SCAN_LOCKS} locks")
        try:
            reason = ScanReason(_attr(element, "reason"))
        except ValueError:
            raise LockNsError(f"unknown scan reason {element.get('reason')!r}") from None
        truncated = _bool(element, "truncated") if element.get("truncated") is not None else False
        return cls(tuple(ScanEntry.from_element(child) for child in element), reason, truncated)


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """BGW -> RAS: the gateway's load (module docstring)."""

    links: int
    max_links: int
    queued: int
    in_flight: int
    locks_in_range: int

    def __post_init__(self) -> None:
        for name in ("links", "max_links", "queued", "in_flight", "locks_in_range"):
            if not 0 <= getattr(self, name) <= MAX_COUNTER:
                raise LockNsError(f"{name} is 0..{MAX_COUNTER}")

    def element(self) -> Element:
        return Element(
            TAG_STATUS,
            {
                "links": str(self.links),
                "max-links": str(self.max_links),
                "queued": str(self.queued),
                "in-flight": str(self.in_flight),
                "locks-in-range": str(self.locks_in_range),
            },
        )

    @classmethod
    def from_element(cls, element: Element) -> GatewayStatus:
        _check_tag(element, TAG_STATUS)
        _no_children(element)
        return cls(
            *(
                _int(element, name, 0, MAX_COUNTER)
                for name in ("links", "max-links", "queued", "in-flight", "locks-in-range")
            )
        )


def status_query() -> Element:
    """The payload of an IQ ``get`` asking a gateway for its :class:`GatewayStatus`."""
    return Element(TAG_STATUS)


Payload = FrameRequest | LockEvent | ScanReport | GatewayStatus


def parse_message_payload(message: Element) -> LockEvent | ScanReport | GatewayStatus:
    """The payload of a message a gateway sent to the domain (one child in our namespace)."""
    children = [child for child in message if child.tag.startswith(f"{{{NS_LOCK}}}")]
    if len(children) != 1:
        raise LockNsError(f"expected one {NS_LOCK} element, found {len(children)}")
    child = children[0]
    if child.tag == TAG_EVENT:
        return LockEvent.from_element(child)
    if child.tag == TAG_SCAN:
        return ScanReport.from_element(child)
    if child.tag == TAG_STATUS:
        return GatewayStatus.from_element(child)
    raise LockNsError(f"{child.tag!r} is not a gateway message")
