"""Which gateways are online, and which gateway should carry a frame to a lock.

Two small tables the RAS keeps from what its BGWs tell it over XMPP (ISO/IEC
14543-5-104, "Control flow"; ARCHITECTURE.md, "XMPP between RAS and gateways"). They are
plain data structures, without I/O or XMPP, so the in-process relay and a future cluster
transport (fed by the scan and presence notices of other nodes) use the same rule.

Gateways are named by their **bare JID** (``<gateway-id>@<domain>``): one session per
gateway account (RFC 6120 7.7.2.2, a new login replaces the old one), so the bare JID
names the gateway and :class:`GatewayRegistry` remembers which full JID its current
session has.

:class:`GatewayRegistry` -- presence (RFC 6121 section 4): a gateway is *online* from its
available presence until its session sends unavailable presence or ends (the XMPP server
reports both). It keeps when each change happened and the gateway's last status report.

:class:`RoutingTable` -- the lock-to-gateway table, built from scan reports. A BGW sends
a full report (every lock it sees) periodically and whenever a lock appears, disappears or
changes its flags, so each report **replaces** that gateway's view; a gateway that goes
offline loses its view (it sends a fresh report when it comes back).

The routing rule (:meth:`RoutingTable.choose`), for one lock:

1. Candidates are the sightings of **online** gateways whose sighting is **fresh**: seen
   at most ``max_age_s`` ago. A sighting's time is the lock's ``last-seen`` in the report,
   but never later than the moment the report reached us (a gateway's clock that runs
   ahead must not make its sightings look newer than they can be).
2. Of those, only the sightings within ``recency_window_s`` of the newest one compete: a
   gateway that saw the lock clearly longer ago than another is passed over, while
   differences smaller than the window (the gateways report at different moments) do not
   count.
3. The best RSSI wins; equal RSSI goes to the more recent sighting, then to the smaller
   JID (so the choice is deterministic).

The defaults follow the BGW's report schedule: it reports every 60 s (and on any change),
so a lock that stays in range is re-reported at least that often; one missed periodic
report is tolerated before the sighting counts as stale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from heslock.errors import UsageError
from heslock.protocol.ids import DeviceId
from heslock.xmpp.jid import Jid
from heslock.xmpp.lockns import GatewayStatus, ScanEntry, ScanReport

logger = logging.getLogger(__name__)

#: A sighting older than this is ignored: 2.5 x the BGW's default report interval (60 s),
#: so one lost or late periodic report does not drop a lock that is still in range.
DEFAULT_MAX_AGE_S: Final = 150.0
#: Sightings this close to the newest one count as equally recent: one BGW report
#: interval, the largest gap two gateways that both see the lock can show.
DEFAULT_RECENCY_WINDOW_S: Final = 60.0
#: Offline gateways remembered (for "last seen online" answers); the oldest are forgotten
#: first, so a churn of gateway accounts cannot grow memory without bound.
MAX_OFFLINE_GATEWAYS: Final = 10_000

#: ``is_online(gateway_jid) -> bool``
GatewayPredicate = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """The knobs of the routing rule (module docstring)."""

    max_age_s: float = DEFAULT_MAX_AGE_S
    recency_window_s: float = DEFAULT_RECENCY_WINDOW_S

    def __post_init__(self) -> None:
        if not self.max_age_s > 0:
            raise UsageError("max_age_s must be positive")
        if not self.recency_window_s >= 0:
            raise UsageError("recency_window_s must not be negative")


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """A snapshot of one gateway's presence and last status report."""

    jid: str  #: bare JID
    session: str | None  #: full JID of the current session; None while offline
    online: bool
    changed_at: datetime  #: when ``online`` last changed
    online_since: datetime | None
    offline_since: datetime | None
    status: GatewayStatus | None = None
    status_at: datetime | None = None


@dataclass(slots=True)
class _Gateway:
    jid: str
    session: str | None
    online: bool
    changed_at: datetime
    online_since: datetime | None = None
    offline_since: datetime | None = None
    status: GatewayStatus | None = None
    status_at: datetime | None = None

    def snapshot(self) -> GatewayInfo:
        return GatewayInfo(
            self.jid,
            self.session,
            self.online,
            self.changed_at,
            self.online_since,
            self.offline_since,
            self.status,
            self.status_at,
        )


class GatewayRegistry:
    """Presence of the gateways (module docstring)."""

    def __init__(self) -> None:
        self._gateways: dict[str, _Gateway] = {}

    def available(self, session: Jid, at: datetime) -> bool:
        """``session`` announced availability; True if the gateway's state changed."""
        entry = self._gateways.get(session.bare)
        if entry is not None and entry.online and entry.session == session.full:
            return False
        if entry is None:
            entry = self._gateways[session.bare] = _Gateway(session.bare, None, False, at)
        entry.session = session.full
        entry.online = True
        entry.changed_at = entry.online_since = at
        entry.status = entry.status_at = None  # the new session will report afresh
        return True

    def unavailable(self, session: Jid, at: datetime) -> bool:
        """``session`` went away; True if that took its gateway offline.

        A stale notice for a session already replaced by a newer one changes nothing.
        """
        entry = self._gateways.get(session.bare)
        if entry is None or not entry.online or entry.session != session.full:
            return False
        entry.session = None
        entry.online = False
        entry.changed_at = entry.offline_since = at
        self._prune()
        return True

    def set_status(self, gateway: str, status: GatewayStatus, at: datetime) -> None:
        entry = self._gateways.get(gateway)
        if entry is not None and entry.online:
            entry.status, entry.status_at = status, at

    def is_online(self, gateway: str) -> bool:
        entry = self._gateways.get(gateway)
        return entry is not None and entry.online

    def session_of(self, gateway: str) -> str | None:
        """The full JID of the gateway's current session, None while it is offline."""
        entry = self._gateways.get(gateway)
        return entry.session if entry is not None and entry.online else None

    def get(self, gateway: str) -> GatewayInfo | None:
        entry = self._gateways.get(gateway)
        return entry.snapshot() if entry is not None else None

    def gateways(self) -> list[GatewayInfo]:
        return [entry.snapshot() for entry in self._gateways.values()]

    def online(self) -> list[str]:
        return [jid for jid, entry in self._gateways.items() if entry.online]

    def _prune(self) -> None:
        offline = [e for e in self._gateways.values() if not e.online]
        if len(offline) <= MAX_OFFLINE_GATEWAYS:
            return
        offline.sort(key=lambda e: e.changed_at)
        for entry in offline[: len(offline) - MAX_OFFLINE_GATEWAYS]:
            del self._gateways[entry.jid]


@dataclass(frozen=True, slots=True)
class Sighting:
    """One gateway's view of one lock, from its latest scan report."""

    gateway: str  #: bare JID
    entry: ScanEntry
    seen_at: datetime  #: ``entry.last_seen``, never later than ``reported_at``
    reported_at: datetime  #: when the report reached this RAS

    @property
    def lock(self) -> DeviceId:
        return self.entry.lock

    @property
    def rssi(self) -> int:
        return self.entry.rssi


@dataclass(slots=True)
class _View:
    sightings: dict[DeviceId, Sighting] = field(default_factory=dict)
    truncated: bool = False


class RoutingTable:
    """Locks -> the gateways that see them (module docstring)."""

    def __init__(self, policy: RoutingPolicy | None = None) -> None:
        self.policy = policy or RoutingPolicy()
        self._views: dict[str, _View] = {}
        self._by_lock: dict[DeviceId, set[str]] = {}

    def replace(self, gateway: str, report: ScanReport, received_at: datetime) -> None:
        """``gateway``'s view becomes exactly ``report`` (a BGW always sends all it sees)."""
        self.forget(gateway)
        view = _View(truncated=report.truncated)
        for entry in report.locks:
            seen_at = min(entry.last_seen, received_at)
            view.sightings[entry.lock] = Sighting(gateway, entry, seen_at, received_at)
            self._by_lock.setdefault(entry.lock, set()).add(gateway)
        self._views[gateway] = view
        if report.truncated:
            logger.info("gateway %s sees more locks than its report lists", gateway)

    def forget(self, gateway: str) -> None:
        """Drop ``gateway``'s view (it went offline)."""
        view = self._views.pop(gateway, None)
        if view is None:
            return
        for lock in view.sightings:
            holders = self._by_lock.get(lock)
            if holders is not None:
                holders.discard(gateway)
                if not holders:
                    del self._by_lock[lock]

    def sightings(self, lock: DeviceId) -> list[Sighting]:
        """Every gateway's sighting of ``lock`` (fresh or not), by gateway JID."""
        return [
            self._views[gateway].sightings[lock] for gateway in sorted(self._by_lock.get(lock, ()))
        ]

    def locks_of(self, gateway: str) -> list[DeviceId]:
        view = self._views.get(gateway)
        return sorted(view.sightings) if view is not None else []

    def choose(self, lock: DeviceId, is_online: GatewayPredicate, now: datetime) -> Sighting | None:
        """The sighting whose gateway should carry a frame to ``lock`` (module docstring)."""
        max_age = timedelta(seconds=self.policy.max_age_s)
        fresh = [
            s for s in self.sightings(lock) if is_online(s.gateway) and now - s.seen_at <= max_age
        ]
        if not fresh:
            return None
        newest = max(s.seen_at for s in fresh)
        window = timedelta(seconds=self.policy.recency_window_s)
        recent = [s for s in fresh if newest - s.seen_at <= window]
        recent.sort(key=lambda s: (-s.rssi, newest - s.seen_at, s.gateway))
        return recent[0]


__all__ = [
    "DEFAULT_MAX_AGE_S",
    "DEFAULT_RECENCY_WINDOW_S",
    "GatewayInfo",
    "GatewayRegistry",
    "RoutingPolicy",
    "RoutingTable",
    "Sighting",
]
