"""The routing rule and the gateway registry (heslock.ras.relay.routing), on synthetic data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from heslock.errors import UsageError
from heslock.protocol import DeviceId, Profile
from heslock.ras.relay import routing
from heslock.ras.relay.routing import GatewayRegistry, RoutingPolicy, RoutingTable
from heslock.xmpp import Jid
from heslock.xmpp.lockns import GatewayStatus, ScanEntry, ScanReason, ScanReport

T0 = datetime(2025, 6, 15, 12, 0, 0, tzinfo=UTC)
LOCK = DeviceId.parse("F0:11:22:33:44:55")
OTHER = DeviceId.parse("F0:11:22:33:44:66")
GW1, GW2, GW3 = "gw1@ras.example", "gw2@ras.example", "gw3@ras.example"


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def entry(lock: DeviceId, rssi: int, last_seen: datetime) -> ScanEntry:
    return ScanEntry(
        lock=lock,
        maker="acme",
        model=1,
        ble_version="4.0",
        profile=Profile.SECURE,
        bound=True,
        registration_open=False,
        battery=90,
        rssi=rssi,
        last_seen=last_seen,
    )


def report(*entries: ScanEntry) -> ScanReport:
    return ScanReport(tuple(entries), ScanReason.CHANGE)


def everyone(_gateway: str) -> bool:
    return True


def chosen(table: RoutingTable, now: datetime, online: set[str] | None = None) -> str | None:
    sighting = table.choose(LOCK, everyone if online is None else online.__contains__, now)
    return sighting.gateway if sighting is not None else None


def test_best_rssi_wins_among_recent_sightings() -> None:
    table = RoutingTable()
    table.replace(GW1, report(entry(LOCK, -70, T0)), T0)
    table.replace(GW2, report(entry(LOCK, -55, T0 - s(20))), T0 - s(20))
    table.replace(GW3, report(entry(LOCK, -90, T0 + s(1))), T0 + s(1))
    assert chosen(table, T0 + s(2)) == GW2  # 21 s older than the newest: inside the window


def test_a_sighting_older_than_the_window_loses_despite_better_rssi() -> None:
    table = RoutingTable(RoutingPolicy(max_age_s=150, recency_window_s=60))
    table.replace(GW1, report(entry(LOCK, -40, T0 - s(90))), T0 - s(90))
    table.replace(GW2, report(entry(LOCK, -80, T0)), T0)
    assert chosen(table, T0) == GW2


def test_stale_and_offline_sightings_are_ignored() -> None:
    table = RoutingTable(RoutingPolicy(max_age_s=100, recency_window_s=60))
    table.replace(GW1, report(entry(LOCK, -40, T0)), T0)
    table.replace(GW2, report(entry(LOCK, -60, T0)), T0)
    assert chosen(table, T0 + s(100)) == GW1  # exactly max_age: still fresh
    assert chosen(table, T0 + s(100), online={GW2}) == GW2  # GW1 offline
    assert chosen(table, T0 + s(101)) is None  # both stale
    assert chosen(table, T0, online=set()) is None


def test_ties_go_to_the_more_recent_then_the_smaller_jid() -> None:
    table = RoutingTable()
    table.replace(GW2, report(entry(LOCK, -60, T0)), T0)
    table.replace(GW1, report(entry(LOCK, -60, T0 - s(5))), T0 - s(5))
    assert chosen(table, T0) == GW2
    table.replace(GW1, report(entry(LOCK, -60, T0)), T0)
    assert chosen(table, T0) == GW1


def test_a_report_replaces_the_gateways_view() -> None:
    table = RoutingTable()
    table.replace(GW1, report(entry(LOCK, -50, T0), entry(OTHER, -50, T0)), T0)
    assert table.locks_of(GW1) == sorted([LOCK, OTHER])
    table.replace(GW1, report(entry(OTHER, -52, T0 + s(1))), T0 + s(1))
    assert table.locks_of(GW1) == [OTHER]
    assert table.sightings(LOCK) == []
    assert chosen(table, T0 + s(1)) is None
    table.forget(GW1)
    assert table.locks_of(GW1) == []
    assert table.sightings(OTHER) == []
    table.forget(GW1)  # idempotent


def test_a_gateway_clock_ahead_does_not_make_its_sighting_newer() -> None:
    table = RoutingTable(RoutingPolicy(max_age_s=150, recency_window_s=10))
    table.replace(GW1, report(entry(LOCK, -80, T0 + s(3600))), T0)  # clock an hour ahead
    table.replace(GW2, report(entry(LOCK, -50, T0 - s(5))), T0 - s(5))
    sighting = table.choose(LOCK, everyone, T0)
    assert sighting is not None
    assert table.sightings(LOCK)[0].seen_at == T0  # clamped to the report's arrival
    assert sighting.gateway == GW2  # 5 s older: within the 10 s window, better signal


@pytest.mark.parametrize(
    ("max_age", "window"), [(0.0, 1.0), (-1.0, 1.0), (10.0, -0.5), (float("nan"), 1.0)]
)
def test_policy_refuses_nonsense(max_age: float, window: float) -> None:
    with pytest.raises(UsageError):
        RoutingPolicy(max_age_s=max_age, recency_window_s=window)


def status_of(registry: GatewayRegistry, gateway: str) -> GatewayStatus | None:
    info = registry.get(gateway)
    assert info is not None
    return info.status


def test_registry_tracks_sessions_with_times() -> None:
    registry = GatewayRegistry()
    first = Jid.parse(f"{GW1}/bgw")
    assert registry.available(first, T0)
    assert not registry.available(first, T0 + s(1))  # repeated presence: no change
    assert registry.is_online(GW1)
    assert registry.session_of(GW1) == first.full
    registry.set_status(GW1, GatewayStatus(1, 10, 0, 0, 3), T0 + s(2))
    info = registry.get(GW1)
    assert info is not None
    assert (info.online_since, info.changed_at) == (T0, T0)
    assert info.status is not None
    assert info.status.locks_in_range == 3

    # A new session replaced the old one; the old one's late "unavailable" changes nothing.
    second = Jid.parse(f"{GW1}/other")
    assert registry.available(second, T0 + s(3))
    assert not registry.unavailable(first, T0 + s(4))
    assert registry.session_of(GW1) == second.full
    assert status_of(registry, GW1) is None  # the new session reports afresh

    assert registry.unavailable(second, T0 + s(5))
    assert not registry.unavailable(second, T0 + s(6))
    info = registry.get(GW1)
    assert info is not None
    assert not info.online
    assert info.session is None
    assert (info.offline_since, info.online_since) == (T0 + s(5), T0 + s(3))
    registry.set_status(GW1, GatewayStatus(0, 10, 0, 0, 0), T0 + s(7))  # offline: ignored
    assert status_of(registry, GW1) is None
    assert registry.online() == []
    assert not registry.unavailable(Jid.parse("nobody@ras.example/x"), T0)


def test_registry_forgets_the_oldest_offline_gateways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "MAX_OFFLINE_GATEWAYS", 2)
    registry = GatewayRegistry()
    for i in range(4):
        jid = Jid.parse(f"gw{i}@ras.example/bgw")
        registry.available(jid, T0 + s(i))
        registry.unavailable(jid, T0 + s(10 + i))
    assert sorted(info.jid for info in registry.gateways()) == [
        "gw2@ras.example",
        "gw3@ras.example",
    ]
