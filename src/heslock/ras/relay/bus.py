"""The lock bus: the one interface between the RAS's services and its gateways' sessions.

ISO/IEC 14543-5-104 routes a remote command RAC -> RAS (HTTPS) -> BGW (XMPP) -> BSLD
(BLE). The HTTP side (commands, events, registration through a gateway) must not care
which RAS node holds the gateway's XMPP session, so it talks to a :class:`LockBus`:

- :meth:`LockBus.send_frame` -- relay one sealed frame to a lock through a named gateway
  and return the lock's sealed answer, or raise a :mod:`heslock.ras.relay.errors` class;
- :meth:`LockBus.gateway_for` -- which online gateway should carry a frame to a lock
  (the rule of :mod:`heslock.ras.relay.routing`);
- :meth:`LockBus.subscribe_events` / :meth:`~LockBus.subscribe_presence` /
  :meth:`~LockBus.subscribe_scans` -- lock events, gateway presence and scan reports, as
  the frozen notices below.

Frames are opaque here: sealed under the lock's key by the RAS's services, relayed as
bytes, never logged.

Implementations. :class:`LocalBus` (single node) calls the in-process
:class:`heslock.ras.relay.endpoint.RelayEndpoint` directly. A cluster transport (NATS
request/reply, one subject per gateway, ARCHITECTURE.md "Storage and scale") fits the
same interface: ``send_frame`` becomes a request on the gateway's subject answered by the
node holding the session (no responder = :class:`~heslock.ras.relay.errors.GatewayOffline`,
an error reply carries ``RelayError.code`` and is rebuilt with
:func:`~heslock.ras.relay.errors.from_code`); notices are published by the holding node
and fed to every node's :class:`~heslock.ras.relay.routing.RoutingTable` and subscribers.
That is why the notices carry only plain values, why ``gateway_for`` is a coroutine and
why subscribers are plain callbacks.

Subscribers are called synchronously on the event loop, in subscription order, and must
not block: a callback that has I/O to do puts the notice on its own queue or task. An
exception in one is logged and does not reach the others or the gateway's session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from heslock.protocol.ids import DeviceId
from heslock.xmpp.lockns import ScanReport

if TYPE_CHECKING:
    from heslock.ras.relay.endpoint import RelayEndpoint

logger = logging.getLogger(__name__)

_N = TypeVar("_N")


@dataclass(frozen=True, slots=True)
class LockEventNotice:
    """A frame a lock notified by itself (not an answer), relayed by ``gateway``."""

    gateway: str  #: bare JID of the BGW that relayed it
    lock: DeviceId
    frame: bytes  #: sealed under the lock's key: decrypt and verify before trusting it
    rssi: int | None  #: dBm at the gateway, when it reported one
    received_at: datetime  #: when the RAS received it (UTC)

    def __repr__(self) -> str:  # the frame stays out of logs and tracebacks
        return (
            f"LockEventNotice(gateway={self.gateway!r}, lock={self.lock.hex}, "
            f"frame=<{len(self.frame)} bytes>, rssi={self.rssi}, received_at={self.received_at})"
        )


@dataclass(frozen=True, slots=True)
class PresenceNotice:
    """A gateway came online or went offline."""

    gateway: str  #: bare JID
    session: str  #: full JID of the session that came or went
    online: bool
    at: datetime  #: UTC


@dataclass(frozen=True, slots=True)
class ScanNotice:
    """A gateway's full scan report (it replaces that gateway's previous one)."""

    gateway: str  #: bare JID
    report: ScanReport
    received_at: datetime  #: UTC


EventCallback = Callable[[LockEventNotice], None]
PresenceCallback = Callable[[PresenceNotice], None]
ScanCallback = Callable[[ScanNotice], None]
#: Returned by every ``subscribe_*``: call it to unsubscribe (idempotent).
Unsubscribe = Callable[[], None]


class LockBus(Protocol):
    """What the RAS's services use to reach locks through gateways (module docstring)."""

    async def send_frame(
        self,
        gateway_jid: str,
        lock_id: DeviceId,
        frame: bytes,
        timeout_s: float,
    ) -> bytes:
        """Relay ``frame`` to ``lock_id`` through ``gateway_jid``; the lock's answer.

        ``gateway_jid`` is the gateway's bare JID (a full JID is reduced to it: one session
        per gateway). ``timeout_s`` (0 < t <= 30) is how long the gateway may work on the
        frame (connect, write, answer); the call returns within ``timeout_s`` plus a small
        transport margin. Raises a :class:`~heslock.ras.relay.errors.RelayError` subclass,
        or :class:`~heslock.errors.UsageError` for a bad argument.
        """
        ...

    async def gateway_for(self, lock_id: DeviceId) -> str | None:
        """The bare JID of the online gateway to use for ``lock_id``, None if none sees it."""
        ...

    def subscribe_events(self, callback: EventCallback) -> Unsubscribe: ...

    def subscribe_presence(self, callback: PresenceCallback) -> Unsubscribe: ...

    def subscribe_scans(self, callback: ScanCallback) -> Unsubscribe: ...


class Subscribers(Generic[_N]):
    """A fan-out of notices to callbacks (module docstring: called in order, isolated)."""

    __slots__ = ("_callbacks", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._callbacks: list[Callable[[_N], None]] = []

    def add(self, callback: Callable[[_N], None]) -> Unsubscribe:
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def publish(self, notice: _N) -> None:
        for callback in list(self._callbacks):
            try:
                callback(notice)
            except Exception:
                logger.exception("a %s subscriber failed", self._name)

    def __len__(self) -> int:
        return len(self._callbacks)


class LocalBus:
    """The single-node :class:`LockBus`: straight to the in-process relay endpoint."""

    def __init__(self, endpoint: RelayEndpoint) -> None:
        self.endpoint = endpoint

    async def send_frame(
        self,
        gateway_jid: str,
        lock_id: DeviceId,
        frame: bytes,
        timeout_s: float,
    ) -> bytes:
        return await self.endpoint.send_frame(gateway_jid, lock_id, frame, timeout_s)

    async def gateway_for(self, lock_id: DeviceId) -> str | None:
        return self.endpoint.gateway_for(lock_id)

    def subscribe_events(self, callback: EventCallback) -> Unsubscribe:
        return self.endpoint.events.add(callback)

    def subscribe_presence(self, callback: PresenceCallback) -> Unsubscribe:
        return self.endpoint.presence.add(callback)

    def subscribe_scans(self, callback: ScanCallback) -> Unsubscribe:
        return self.endpoint.scans.add(callback)


__all__ = [
    "EventCallback",
    "LocalBus",
    "LockBus",
    "LockEventNotice",
    "PresenceCallback",
    "PresenceNotice",
    "ScanCallback",
    "ScanNotice",
    "Subscribers",
    "Unsubscribe",
]
