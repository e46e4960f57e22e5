"""RelayEndpoint without a network: arguments, listeners, notices, subscribers."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from xml.etree.ElementTree import Element

import pytest

import heslock.ras.relay
from heslock.errors import UsageError
from heslock.protocol import DeviceId, Profile
from heslock.ras.relay import GatewayOffline, LocalBus, RelayEndpoint
from heslock.ras.relay.bus import LockEventNotice, PresenceNotice, ScanNotice
from heslock.ras.relay.endpoint import bare_jid
from heslock.xmpp import Jid, ScramCredentials, ServerConfig
from heslock.xmpp.errors import NS_CLIENT
from heslock.xmpp.lockns import GatewayStatus, LockEvent, ScanEntry, ScanReason, ScanReport

LOCK = DeviceId.parse("F0:11:22:33:44:55")
GW = "gw1@ras.example"
SESSION = Jid.parse(f"{GW}/bgw")
T0 = datetime(2025, 6, 15, 12, 0, 0, tzinfo=UTC)


class NoCredentials:
    async def scram_sha256(self, username: str) -> ScramCredentials | None:
        return None


class Ticks:
    """A clock that moves one second per reading."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def endpoint() -> RelayEndpoint:
    config = ServerConfig(domain="ras.example", ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    return RelayEndpoint(config, NoCredentials(), clock=Ticks())


def message(payload: Element, **attrs: str) -> Element:
    stanza = Element(f"{{{NS_CLIENT}}}message", attrs)
    stanza.append(payload)
    return stanza


def scan(*locks: DeviceId) -> Element:
    entries = [
        ScanEntry(lock, "acme", 1, "4.0", Profile.SECURE, True, False, 80, -60, T0)
        for lock in locks
    ]
    return message(ScanReport.of(entries, ScanReason.CHANGE).element())


def test_public_api_is_pinned() -> None:
    assert sorted(heslock.ras.relay.__all__) == heslock.ras.relay.__all__
    for name in heslock.ras.relay.__all__:
        assert hasattr(heslock.ras.relay, name)


@pytest.mark.parametrize(
    ("gateway", "lock", "frame", "timeout_s"),
    [
        (GW, LOCK, bytes(20), 0.0),
        (GW, LOCK, bytes(20), 30.001),
        (GW, LOCK, bytes(20), float("nan")),
        (GW, LOCK, bytes(15), 1.0),
        (GW, LOCK, "not bytes", 1.0),
        (GW, "F01122334455", bytes(16), 1.0),
        ("ras.example", LOCK, bytes(16), 1.0),
        ("@@", LOCK, bytes(16), 1.0),
    ],
)
async def test_bad_arguments_are_usage_errors(
    endpoint: RelayEndpoint, gateway: str, lock: object, frame: object, timeout_s: float
) -> None:
    with pytest.raises(UsageError):
        await endpoint.send_frame(gateway, lock, frame, timeout_s)  # type: ignore[arg-type]  # deliberately wrong types


async def test_not_started_means_every_gateway_is_offline(endpoint: RelayEndpoint) -> None:
    with pytest.raises(GatewayOffline) as caught:
        await LocalBus(endpoint).send_frame(GW, LOCK, bytes(20), 30.0)
    assert not caught.value.may_have_executed
    with pytest.raises(UsageError):
        endpoint.server  # noqa: B018 - the property raises


def test_bare_jid() -> None:
    assert bare_jid("GW1@RAS.example/bgw") == "gw1@ras.example"


async def test_presence_scan_status_and_events_become_notices(endpoint: RelayEndpoint) -> None:
    bus = LocalBus(endpoint)
    presence: list[PresenceNotice] = []
    scans: list[ScanNotice] = []
    events: list[LockEventNotice] = []
    bus.subscribe_presence(presence.append)
    bus.subscribe_scans(scans.append)
    stop_events = bus.subscribe_events(events.append)

    endpoint.message_received(SESSION, scan(LOCK))  # before presence: not routed
    assert scans == []
    assert await bus.gateway_for(LOCK) is None

    endpoint.presence_changed(SESSION, True)
    endpoint.presence_changed(SESSION, True)  # repeated: one notice
    assert [(p.gateway, p.session, p.online) for p in presence] == [(GW, SESSION.full, True)]
    endpoint.message_received(SESSION, scan(LOCK))
    assert [s.gateway for s in scans] == [GW]
    assert await bus.gateway_for(LOCK) == GW
    endpoint.message_received(SESSION, message(GatewayStatus(2, 10, 1, 1, 5).element()))
    info = endpoint.registry.get(GW)
    assert info is not None
    assert info.status == GatewayStatus(2, 10, 1, 1, 5)

    endpoint.message_received(SESSION, message(LockEvent(LOCK, bytes(20), -70).element()))
    assert [(e.gateway, e.lock, e.rssi) for e in events] == [(GW, LOCK, -70)]
    stop_events()
    stop_events()  # idempotent
    endpoint.message_received(SESSION, message(LockEvent(LOCK, bytes(20)).element()))
    assert len(events) == 1

    endpoint.presence_changed(SESSION, False)
    assert [p.online for p in presence] == [True, False]
    assert await bus.gateway_for(LOCK) is None
    assert endpoint.routing.locks_of(GW) == []


def test_refused_messages_are_counted_and_never_raise(endpoint: RelayEndpoint) -> None:
    endpoint.presence_changed(SESSION, True)
    endpoint.message_received(SESSION, message(Element("{urn:heslock:lock:1}frame")))
    endpoint.message_received(SESSION, Element(f"{{{NS_CLIENT}}}message"))
    endpoint.message_received(
        SESSION, message(Element("{urn:heslock:lock:1}event"), type="error")
    )  # an error bounce: ignored, not counted
    assert endpoint.refused_messages == 2


def test_a_failing_subscriber_does_not_stop_the_others(
    endpoint: RelayEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[PresenceNotice] = []

    def broken(_notice: PresenceNotice) -> None:
        raise RuntimeError("subscriber bug")

    endpoint.presence.add(broken)
    endpoint.presence.add(seen.append)
    endpoint.presence_changed(SESSION, True)
    assert len(seen) == 1
    assert "presence subscriber failed" in caplog.text
