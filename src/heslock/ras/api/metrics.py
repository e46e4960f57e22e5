"""Prometheus metrics of one RAS app, in a registry of its own.

A per-app ``CollectorRegistry`` keeps two apps in one process (tests, or HTTP and admin
apps side by side) from colliding. Label values are bounded: the route *template*
(``/v1/locks/{lock_id}``), never the raw path, and ``<unmatched>`` for 404s, so a scan
of random URLs cannot grow the series without limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from heslock.xmpp.server import ServerStats

#: Buckets from 5 ms (a health check) to 10 s (a lock command through a slow gateway).
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE: Final = "<unmatched>"


class XmppCollector:
    """The XMPP endpoint's load, read at scrape time from :attr:`source` (set by the
    server that runs the relay; nothing is exported while it is unset or returns None).
    A reconnect storm shows as ``pending_logins`` at the cap and ``accept_pauses``
    rising (docs/operations.md, "Reconnect storms")."""

    def __init__(self) -> None:
        self.source: Callable[[], ServerStats | None] | None = None

    def collect(self) -> Iterator[Metric]:
        stats = self.source() if self.source is not None else None
        if stats is None:
            return
        for name, text, value in (
            ("connections", "Accepted XMPP connections, negotiating or bound.", stats.connections),
            ("sessions", "Bound XMPP sessions (gateways and people).", stats.sessions),
            ("pending_logins", "XMPP connections negotiating now.", stats.pending_logins),
            ("pending_logins_peak", "Most XMPP logins negotiating at once.",
             stats.pending_logins_peak),
            ("max_pending_logins", "Cap on XMPP logins negotiating at once.",
             stats.max_pending_logins),
        ):  # fmt: skip
            yield GaugeMetricFamily(f"heslock_ras_xmpp_{name}", text, value=value)
        yield CounterMetricFamily(
            "heslock_ras_xmpp_accept_pauses",
            "Times the XMPP endpoint stopped accepting at the cap on negotiating logins.",
            value=stats.accept_pauses,
        )


class RasMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.xmpp = XmppCollector()
        self.registry.register(self.xmpp)
        self.request_latency = Histogram(
            "heslock_ras_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "heslock_ras_http_requests",
            "HTTP requests by route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "heslock_ras_auth_failures",
            "Refused authentication attempts by mechanism and reason.",
            ["mechanism", "reason"],
            registry=self.registry,
        )
        self.lock_commands = Counter(
            "heslock_ras_lock_commands",
            "Commands sent to locks by operation and outcome.",
            ["operation", "result"],
            registry=self.registry,
        )
