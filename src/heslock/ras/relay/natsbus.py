"""The cluster :class:`~heslock.ras.relay.bus.LockBus`: RAS workers and nodes over NATS.

Several RAS processes (the workers of one node, ``heslock ras serve --workers N``, or
several nodes) each hold some gateways' XMPP sessions in their own
:class:`~heslock.ras.relay.endpoint.RelayEndpoint`. A :class:`NatsBus` lets the services
of any of them reach any gateway, as :mod:`heslock.ras.relay.bus` sketches
(ARCHITECTURE.md "Storage and scale"; the wire format is in docs/protocol.md, "Cluster
bus (NATS)"):

- **Frames.** :meth:`NatsBus.send_frame` to a gateway held *here* goes straight to the
  local endpoint (no NATS hop). Otherwise it is a NATS request on the gateway's subject
  ``<prefix>.gw.<token>`` (:func:`subject_token` escapes the bare JID), answered by the
  process holding the session, with a deadline of the caller's budget +
  :data:`~heslock.ras.relay.endpoint.IQ_MARGIN_S` + :data:`BUS_MARGIN_S`. No responder is
  :class:`~.errors.GatewayOffline` (nothing was sent); an error reply carries the
  :class:`~.errors.RelayError` ``code`` and is rebuilt with :func:`~.errors.from_code`;
  no reply in time is :class:`~.errors.RelayTimeout` (the frame may have been executed).
  A bus that is down gives GatewayOffline at once ("the cluster bus is unavailable"),
  never a hang; nats-py reconnects by itself and the bus resynchronises (below).
- **Serving.** The process whose endpoint holds a gateway's *available* session
  subscribes to its subject (queue group ``holder``: one responder per request even in
  the instant two processes both think they hold it) and unsubscribes when the session
  ends or is replaced.
- **Presence and scans** are published by the holding process on ``<prefix>.presence``
  and ``<prefix>.scan`` and fed to every process's cluster-wide
  :class:`~.routing.GatewayRegistry` and :class:`~.routing.RoutingTable` (so
  :meth:`gateway_for` answers for every gateway) and to its subscribers.
- **Lock events are not fanned out**: they reach only the subscribers of the process
  whose endpoint received them. One session per gateway in the whole cluster (below)
  means each event is ingested exactly once, with no NATS hop, even while the bus is
  down; the event ingest's per-lock replay cache stays with the gateway that relays the
  lock's events.
- **One session per gateway, cluster-wide** (RFC 6120 7.7.2.2: a new login replaces the
  old one). Each XMPP server enforces it for its own sessions; across processes, the
  session with the later ``(online since, full JID)`` wins everywhere: a process whose
  local session loses closes it with the stream error ``conflict``, and ignores the
  loser's notices (the order is the same on every process, so exactly one survives).
- **Resynchronisation.** On start and after every reconnect a process publishes
  ``<prefix>.sync``; every process answers by publishing again the presence and latest
  scan report of each gateway it holds (idempotent: the registry ignores what it knows).
  A process that dies without saying goodbye leaves its gateways "online" elsewhere until
  a request finds no responder (then they are marked offline here) or they log in again
  to another process (the BGW reconnects within seconds).

Frames are never logged; a notice's ``__repr__`` hides them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final, Protocol

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from heslock.errors import UsageError
from heslock.protocol.errors import InvalidDeviceId
from heslock.protocol.ids import DeviceId
from heslock.protocol.profile import Profile
from heslock.ras.relay.bus import (
    EventCallback,
    LockEventNotice,
    PresenceCallback,
    PresenceNotice,
    ScanCallback,
    ScanNotice,
    Subscribers,
    Unsubscribe,
)
from heslock.ras.relay.endpoint import IQ_MARGIN_S, MAX_TIMEOUT_S, RelayEndpoint, bare_jid
from heslock.ras.relay.errors import (
    GatewayFailure,
    GatewayLost,
    GatewayOffline,
    RelayError,
    RelayTimeout,
    from_code,
)
from heslock.ras.relay.routing import GatewayRegistry, RoutingTable
from heslock.xmpp.errors import StreamErrorCondition
from heslock.xmpp.jid import Jid, JidMalformed
from heslock.xmpp.lockns import LockNsError, ScanEntry, ScanReason, ScanReport

logger = logging.getLogger(__name__)

#: Added to budget + IQ_MARGIN_S for a request on the bus: two NATS hops on a LAN.
BUS_MARGIN_S: Final = 1.0
#: How long the first connection to NATS may take before start() gives up.
CONNECT_TIMEOUT_S: Final = 10.0
#: A gateway whose process shut down is told "offline" to subscribers only if it has not
#: come back (to another process) within this: a worker's restart is not the gateway
#: going away (a BGW reconnects within seconds), as a single RAS's restart is not.
SHUTDOWN_GRACE_S: Final = 30.0
#: Wire format version of the JSON notices (docs/protocol.md).
WIRE_VERSION: Final = 1
#: Queue group of the gateway subjects: one responder per request.
HOLDER_QUEUE: Final = "holder"
#: Headers of frame requests and replies (docs/protocol.md, "Cluster bus (NATS)").
H_LOCK: Final = "Heslock-Lock"
H_TIMEOUT_MS: Final = "Heslock-Timeout-Ms"
H_STATUS: Final = "Heslock-Status"
H_ERROR: Final = "Heslock-Error"
H_MAY_HAVE_EXECUTED: Final = "Heslock-May-Have-Executed"
#: Longest error detail carried in a reply.
MAX_DETAIL: Final = 500

_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$")
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")


def subject_token(bare: str) -> str:
    """One NATS subject token for a bare JID: ``[A-Za-z0-9-]`` kept, any other UTF-8 byte
    (``.``, ``@``, ``_`` ...) as ``_xx`` (hex). Injective, so no two gateways share one."""
    return "".join(chr(b) if b in _SAFE else f"_{b:02x}" for b in bare.encode())


def check_prefix(prefix: str) -> str:
    """A subject prefix: dot-separated tokens of ``[A-Za-z0-9_-]`` (no wildcards)."""
    if not _PREFIX.match(prefix):
        raise UsageError(f"{prefix!r} is not a NATS subject prefix (tokens of A-Z a-z 0-9 _ -)")
    return prefix


def _key(at: datetime, session: str, node: str) -> tuple[datetime, str, str]:
    """The conflict order of two sessions of one gateway: the later one wins.

    A BGW logs in with the same full JID every time, so the node is part of the key: the
    "same" session re-bound on another process is another session.
    """
    return (at, session, node)


def redact_url(url: str) -> str:
    """``url`` without user info: ``nats://user:pw@host:4222`` -> ``nats://***@host:4222``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***" if "@" in url else url
    userinfo, at, host = rest.rpartition("@")
    return f"{scheme}://***@{host}" if at and userinfo else url


class NatsBus:
    """The :class:`~heslock.ras.relay.bus.LockBus` of one process of a cluster."""

    def __init__(
        self,
        endpoint: RelayEndpoint,
        url: str,
        *,
        prefix: str = "heslock.ras",
        node: str | None = None,
        connect: Callable[..., Awaitable[Client]] = nats.connect,
    ) -> None:
        self.endpoint = endpoint
        self.url = url
        #: What logs and errors name: the URL without its user info (a NATS URL may carry
        #: a user and password or a token: ``nats://user:secret@host:4222``).
        self.shown_url = redact_url(url)
        self.prefix = check_prefix(prefix)
        #: This process's name on the bus (notices carry it; its own are ignored).
        self.node = node or uuid.uuid4().hex
        self.registry = GatewayRegistry()
        self.routing = RoutingTable(endpoint.routing.policy)
        self.events: Subscribers[LockEventNotice] = Subscribers("lock event")
        self.presence: Subscribers[PresenceNotice] = Subscribers("presence")
        self.scans: Subscribers[ScanNotice] = Subscribers("scan report")
        self._connect = connect
        self._nc: Client | None = None
        self._holders: dict[str, str] = {}  #: gateway -> node holding its session
        self._local_scans: dict[str, ScanNotice] = {}
        self._scans: dict[str, ScanNotice] = {}  #: latest report of each online gateway
        self._served: dict[str, Subscription] = {}
        self._subs: list[Subscription] = []
        self._outbox: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._outbox_task: asyncio.Task[None] | None = None
        self._answers: set[asyncio.Task[None]] = set()
        self._deferred: dict[str, asyncio.TimerHandle] = {}
        self._local: list[Unsubscribe] = []
        self._listen_locally()

    def _listen_locally(self) -> None:
        """Local notices, from now on (the endpoint is not listening yet)."""
        if not self._local:
            self._local = [
                self.endpoint.presence.add(self._local_presence),
                self.endpoint.scans.add(self._local_scan),
                self.endpoint.events.add(self.events.publish),
            ]

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def subject(self, gateway: str) -> str:
        return f"{self.prefix}.gw.{subject_token(gateway)}"

    async def start(self) -> None:
        """Connect to NATS (bounded), listen to the cluster's notices, resynchronise."""
        if self._nc is not None:
            raise UsageError("the cluster bus is already started")
        self._listen_locally()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                nc = await self._connect(
                    self.url,
                    name=f"heslock-ras-{self.node}",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    connect_timeout=2,
                    ping_interval=10,
                    max_outstanding_pings=2,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise UsageError(
                f"cannot reach the cluster bus {self.shown_url}: {exc or 'timeout'}"
            ) from None
        self._nc = nc
        self._subs = [
            await nc.subscribe(f"{self.prefix}.presence", cb=self._remote_presence),
            await nc.subscribe(f"{self.prefix}.scan", cb=self._remote_scan),
            await nc.subscribe(f"{self.prefix}.sync", cb=self._remote_sync),
            await nc.subscribe(f"{self.prefix}.disconnect", cb=self._remote_disconnect),
        ]
        self._outbox_task = asyncio.create_task(self._drain_outbox(), name="ras-bus-outbox")
        for gateway in self.endpoint.registry.online():
            self._queue(self._serving, gateway)
        self._resync()
        await nc.flush(timeout=int(CONNECT_TIMEOUT_S))
        logger.info("cluster bus connected to %s as %s", self.shown_url, self.node)

    async def stop(self) -> None:
        """Publish what is still queued (offline notices), then leave the bus.

        Call it after the endpoint has stopped, so its "offline" notices reach the others.
        """
        for unsubscribe in self._local:
            unsubscribe()
        self._local = []
        task, self._outbox_task = self._outbox_task, None
        if task is not None:
            self._outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=5)
        for handle in self._deferred.values():
            handle.cancel()
        self._deferred.clear()
        for answer in list(self._answers):
            answer.cancel()
        for answer in list(self._answers):
            with contextlib.suppress(asyncio.CancelledError):
                await answer
        nc, self._nc = self._nc, None
        self._served.clear()
        self._subs = []
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), timeout=5)

    async def _disconnected(self) -> None:
        if self._nc is None:
            return  # our own stop()
        logger.warning("cluster bus %s: disconnected; frames to other workers fail", self.shown_url)

    async def _reconnected(self) -> None:
        logger.info("cluster bus %s: reconnected; resynchronising", self.shown_url)
        self._resync()

    async def _error(self, exc: Exception) -> None:
        logger.warning("cluster bus %s: %s", self.shown_url, exc)

    # ------------------------------------------------------------------ LockBus

    async def send_frame(
        self,
        gateway_jid: str,
        lock_id: DeviceId,
        frame: bytes,
        timeout_s: float,
    ) -> bytes:
        """See :meth:`heslock.ras.relay.bus.LockBus.send_frame` and the module docstring."""
        gateway = bare_jid(gateway_jid)
        if self.endpoint.registry.session_of(gateway) is not None:
            return await self.endpoint.send_frame(gateway, lock_id, frame, timeout_s)
        _check(lock_id, frame, timeout_s)
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise GatewayOffline(
                f"gateway {gateway} is not held here and the cluster bus is unavailable"
            )
        headers = {H_LOCK: lock_id.hex, H_TIMEOUT_MS: str(max(1, math.ceil(timeout_s * 1000)))}
        try:
            reply = await nc.request(
                self.subject(gateway),
                bytes(frame),
                timeout=timeout_s + IQ_MARGIN_S + BUS_MARGIN_S,
                headers=headers,
            )
        except nats.errors.NoRespondersError:
            self._holder_gone(gateway)
            raise GatewayOffline(f"gateway {gateway} is offline") from None
        except (nats.errors.TimeoutError, TimeoutError):
            raise RelayTimeout(
                f"no answer from gateway {gateway} through the cluster bus within "
                f"{timeout_s + IQ_MARGIN_S + BUS_MARGIN_S:.1f} s; "
                f"the frame to {lock_id} may have been executed"
            ) from None
        except nats.errors.Error as exc:
            raise GatewayLost(
                f"the cluster bus failed while the frame to {lock_id} was out "
                f"({type(exc).__name__}); it may have been executed"
            ) from None
        return _answer(reply, gateway, lock_id)

    async def gateway_for(self, lock_id: DeviceId) -> str | None:
        sighting = self.routing.choose(lock_id, self.registry.is_online, self.endpoint.clock())
        return sighting.gateway if sighting is not None else None

    def subscribe_events(self, callback: EventCallback) -> Unsubscribe:
        """Lock events relayed by gateways held by *this* process (module docstring)."""
        return self.events.add(callback)

    def subscribe_presence(self, callback: PresenceCallback) -> Unsubscribe:
        """Presence of every gateway of the cluster.

        Unlike :class:`~heslock.ras.relay.bus.LocalBus`, a new subscriber is first told
        of every gateway online now (a process that becomes the leader late must not
        believe them offline); subscribers act on changes, so this is harmless to them.
        """
        for info in self.registry.gateways():
            if info.online and info.session is not None and info.online_since is not None:
                _safely(callback, PresenceNotice(info.jid, info.session, True, info.online_since))
        return self.presence.add(callback)

    def subscribe_scans(self, callback: ScanCallback) -> Unsubscribe:
        """Scan reports of every gateway of the cluster (the latest ones first, as above)."""
        for notice in list(self._scans.values()):
            _safely(callback, notice)
        return self.scans.add(callback)

    def holder_of(self, gateway: str) -> str | None:
        """The node holding ``gateway``'s session, as far as this process knows."""
        return self._holders.get(gateway) if self.registry.is_online(gateway) else None

    # ------------------------------------------------------------------ local notices

    def _local_presence(self, notice: PresenceNotice) -> None:
        gateway = notice.gateway
        if notice.online:
            current = self.registry.get(gateway)
            holder = self._holders.get(gateway, "")
            if (
                current is not None
                and current.online
                and holder != self.node
                and current.online_since is not None
                and _key(current.online_since, current.session or "", holder)
                > _key(notice.at, notice.session, self.node)
            ):
                # A newer session of this gateway lives on another process: ours loses.
                self._close_local(gateway, notice.session)
                return
        self._apply(notice, self.node)
        if not notice.online:
            self._local_scans.pop(gateway, None)
        self._queue(self._serving, gateway)
        # Offline while the endpoint stops: this process is going away, not the gateway.
        shutdown = not notice.online and not self.endpoint.running
        self._queue(self._publish_presence, notice, shutdown)

    def _local_scan(self, notice: ScanNotice) -> None:
        if self._holders.get(notice.gateway) != self.node:
            return  # a session that lost the cluster-wide conflict
        self._local_scans[notice.gateway] = notice
        self._apply_scan(notice)
        self._queue(self._publish_scan, notice)

    # ------------------------------------------------------------------ remote notices

    async def _remote_presence(self, msg: Msg) -> None:
        data = _json(msg)
        if data is None or data.get("node") == self.node:
            return
        try:
            notice = PresenceNotice(
                bare_jid(str(data["gateway"])),
                Jid.parse(str(data["session"])).full,
                bool(data["online"]),
                datetime.fromisoformat(str(data["at"])),
            )
        except (KeyError, ValueError, TypeError, UsageError, JidMalformed) as exc:
            logger.warning("cluster bus: a presence notice refused: %s", exc)
            return
        origin = str(data["node"])
        if notice.at.tzinfo is None:
            logger.warning("cluster bus: a presence notice without a time zone refused")
            return
        if notice.online:
            local = self.endpoint.registry.get(notice.gateway)
            if (
                local is not None
                and local.online
                and local.session is not None
                and local.online_since is not None
            ):
                ours = _key(local.online_since, local.session, self.node)
                if ours > _key(notice.at, notice.session, origin):
                    # Ours is newer: the other process closes its session when it hears
                    # of ours; say it again in case it started after we announced.
                    self._announce(notice.gateway)
                    return
                self._close_local(notice.gateway, local.session)
        self._apply(notice, origin, quiet=data.get("shutdown") is True)
        self._queue(self._serving, notice.gateway)

    async def _remote_scan(self, msg: Msg) -> None:
        data = _json(msg)
        if data is None or data.get("node") == self.node:
            return
        try:
            gateway = bare_jid(str(data["gateway"]))
            report = report_from_json(data["report"])
            notice = ScanNotice(gateway, report, datetime.fromisoformat(str(data["received_at"])))
        except (KeyError, ValueError, TypeError, UsageError, LockNsError, InvalidDeviceId) as exc:
            logger.warning("cluster bus: a scan notice refused: %s", exc)
            return
        if self.registry.is_online(gateway) and self._holders.get(gateway) == data["node"]:
            self._apply_scan(notice)

    async def _remote_sync(self, msg: Msg) -> None:
        data = _json(msg)
        if data is None or data.get("node") == self.node:
            return
        for gateway in self.endpoint.registry.online():
            self._announce(gateway)

    async def _remote_disconnect(self, msg: Msg) -> None:
        data = _json(msg)
        if data is None or data.get("node") == self.node or not self.endpoint.running:
            return
        try:
            gateway = bare_jid(str(data["gateway"]))
            reason = str(data["reason"])[:64]
        except (KeyError, UsageError) as exc:
            logger.warning("cluster bus: a disconnect notice refused: %s", exc)
            return
        if self.endpoint.server.disconnect(
            gateway, StreamErrorCondition.NOT_AUTHORIZED, f"gateway {reason}"
        ):
            logger.info(
                "gateway %s: ended its XMPP session (%s, asked by another process)", gateway, reason
            )

    async def end_sessions(self, gateway: str, reason: str) -> None:
        """Ask every other process to end ``gateway``'s session (revoked, re-keyed)."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            logger.error(
                "gateway %s %s: the cluster bus is unavailable, so a session it may hold on "
                "another process stays open until that process checks its credentials again",
                gateway,
                reason,
            )
            return
        document = {"node": self.node, "gateway": gateway, "reason": reason}
        await self._publish(f"{self.prefix}.disconnect", document)
        await nc.flush(timeout=2)

    # ------------------------------------------------------------------ state

    def _apply(self, notice: PresenceNotice, origin: str, *, quiet: bool = False) -> None:
        """Presence into the cluster's tables, and to subscribers if it changed.

        ``quiet``: an offline because the holding process shut down; subscribers hear of
        it only if the gateway is still offline :data:`SHUTDOWN_GRACE_S` later.
        """
        session = Jid.parse(notice.session)
        holder = self._holders.get(notice.gateway)
        if notice.online:
            if holder != origin and self.registry.session_of(notice.gateway) == notice.session:
                # The same full JID bound again on another process (a BGW reconnecting):
                # a new session, so forget the old one first.
                self.registry.unavailable(session, notice.at)
                self.routing.forget(notice.gateway)
                self._scans.pop(notice.gateway, None)
            if self.registry.available(session, notice.at):
                self._holders[notice.gateway] = origin
                deferred = self._deferred.pop(notice.gateway, None)
                if deferred is not None:
                    deferred.cancel()
                self.presence.publish(notice)
        elif holder == origin and self.registry.unavailable(session, notice.at):
            self._holders.pop(notice.gateway, None)
            self._scans.pop(notice.gateway, None)
            self.routing.forget(notice.gateway)
            if quiet:
                self._defer_offline(notice)
            else:
                self.presence.publish(notice)

    def _defer_offline(self, notice: PresenceNotice) -> None:
        def publish() -> None:
            self._deferred.pop(notice.gateway, None)
            if not self.registry.is_online(notice.gateway):
                self.presence.publish(notice)

        previous = self._deferred.pop(notice.gateway, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._deferred[notice.gateway] = loop.call_later(SHUTDOWN_GRACE_S, publish)

    def _apply_scan(self, notice: ScanNotice) -> None:
        self.routing.replace(notice.gateway, notice.report, notice.received_at)
        self._scans[notice.gateway] = notice
        self.scans.publish(notice)

    def _holder_gone(self, gateway: str) -> None:
        """No process answers for ``gateway``: its holder died without saying goodbye."""
        session = self.registry.session_of(gateway)
        if session is None or self._holders.get(gateway) == self.node:
            return
        logger.info("gateway %s: no process of the cluster holds it any more", gateway)
        notice = PresenceNotice(gateway, session, False, self.endpoint.clock())
        # Quiet, as a shutdown: a bus blip is no reason for a gateway.offline in the feed.
        self._apply(notice, self._holders.get(gateway, ""), quiet=True)

    def _close_local(self, gateway: str, session: str) -> None:
        def close() -> None:
            if self.endpoint.registry.session_of(gateway) != session or not self.endpoint.running:
                return
            logger.info("gateway %s: replaced by a session on another process", gateway)
            self.endpoint.server.disconnect(
                gateway, StreamErrorCondition.CONFLICT, "replaced by a new session"
            )

        # Not from inside the XMPP server's presence handling: on the next loop turn.
        asyncio.get_running_loop().call_soon(close)

    # ------------------------------------------------------------------ outbox

    def _queue(self, action: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``action(*args)`` in order with the other bus writes (one task)."""
        if self._outbox_task is None:
            return  # not started, or stopped: state is resent by the sync at start
        self._outbox.put_nowait(functools.partial(action, *args))

    def _announce(self, gateway: str) -> None:
        info = self.endpoint.registry.get(gateway)
        if info is None or not info.online or info.session is None or info.online_since is None:
            return
        if self._holders.get(gateway) != self.node:
            return
        notice = PresenceNotice(gateway, info.session, True, info.online_since)
        self._queue(self._publish_presence, notice)
        scan = self._local_scans.get(gateway)
        if scan is not None:
            self._queue(self._publish_scan, scan)

    def _resync(self) -> None:
        for gateway in self.endpoint.registry.online():
            self._announce(gateway)
        self._queue(self._publish, f"{self.prefix}.sync", {"node": self.node})

    async def _drain_outbox(self) -> None:
        while True:
            action = await self._outbox.get()
            if action is None:
                return
            try:
                await action()
            except Exception as exc:  # noqa: BLE001 - logged; the resync makes it good
                # Publishing while disconnected buffers in nats-py; anything else is lost
                # and made good by the resync after the reconnect.
                logger.warning("cluster bus: %s", exc)

    async def _publish(self, subject: str, document: dict[str, Any]) -> None:
        nc = self._nc
        if nc is None:
            return
        body = {"v": WIRE_VERSION, **document}
        await nc.publish(subject, json.dumps(body, separators=(",", ":")).encode())

    async def _publish_presence(self, notice: PresenceNotice, shutdown: bool = False) -> None:
        document: dict[str, Any] = {
            "node": self.node,
            "gateway": notice.gateway,
            "session": notice.session,
            "online": notice.online,
            "at": notice.at.isoformat(),
        }
        if shutdown:
            document["shutdown"] = True
        await self._publish(f"{self.prefix}.presence", document)

    async def _publish_scan(self, notice: ScanNotice) -> None:
        await self._publish(
            f"{self.prefix}.scan",
            {
                "node": self.node,
                "gateway": notice.gateway,
                "received_at": notice.received_at.isoformat(),
                "report": report_to_json(notice.report),
            },
        )

    async def _serving(self, gateway: str) -> None:
        """Serve ``gateway``'s subject exactly while its session is held here."""
        nc = self._nc
        if nc is None:
            return
        held = self.endpoint.registry.session_of(gateway) is not None and (
            self._holders.get(gateway) == self.node
        )
        sub = self._served.get(gateway)
        if held and sub is None:

            async def handler(msg: Msg, gateway: str = gateway) -> None:
                self._spawn_answer(gateway, msg)

            self._served[gateway] = await nc.subscribe(
                self.subject(gateway), queue=HOLDER_QUEUE, cb=handler
            )
        elif not held and sub is not None:
            del self._served[gateway]
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    # ------------------------------------------------------------------ serving

    def _spawn_answer(self, gateway: str, msg: Msg) -> None:
        task = asyncio.create_task(self._answer_request(gateway, msg), name="ras-bus-frame")
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answer_request(self, gateway: str, msg: Msg) -> None:
        headers = msg.headers or {}
        try:
            try:
                lock = DeviceId.parse(headers[H_LOCK])
                timeout_s = int(headers[H_TIMEOUT_MS]) / 1000
            except (KeyError, ValueError, InvalidDeviceId):
                raise GatewayFailure(
                    "a malformed frame request on the cluster bus", may_have_executed=False
                ) from None
            try:
                answer = await self.endpoint.send_frame(gateway, lock, msg.data, timeout_s)
            except UsageError as exc:
                raise GatewayFailure(str(exc), may_have_executed=False) from None
        except RelayError as exc:
            reply_headers = {
                H_STATUS: "error",
                H_ERROR: exc.code,
                H_MAY_HAVE_EXECUTED: "1" if exc.may_have_executed else "0",
            }
            body = exc.detail[:MAX_DETAIL].encode()
        else:
            reply_headers, body = {H_STATUS: "ok"}, answer
        nc = self._nc
        if nc is None or not msg.reply:
            return
        with contextlib.suppress(nats.errors.Error):
            await nc.publish(msg.reply, body, headers=reply_headers)


class _SessionHook(Protocol):
    async def gateway_disconnect(self, gateway_id: uuid.UUID, jid: str, reason: str) -> None: ...


class ClusterGatewaySessions:
    """The DDMS's gateway-session hook for a cluster: a revoked or re-keyed gateway's
    session is ended here (``local``) and on every other process (:meth:`NatsBus.
    end_sessions`), wherever it lives."""

    def __init__(self, local: _SessionHook, bus: NatsBus) -> None:
        self.local = local
        self.bus = bus

    async def gateway_disconnect(self, gateway_id: uuid.UUID, jid: str, reason: str) -> None:
        await self.local.gateway_disconnect(gateway_id, jid, reason)
        try:
            gateway = bare_jid(jid)
        except UsageError:
            return
        try:
            await self.bus.end_sessions(gateway, reason)
        except (nats.errors.Error, OSError) as exc:
            logger.warning(
                "gateway %s: could not ask the cluster to end its session: %s", gateway_id, exc
            )


def _safely(callback: Callable[[Any], None], notice: object) -> None:
    try:
        callback(notice)
    except Exception:
        logger.exception("a cluster bus subscriber failed")


def _check(lock_id: DeviceId, frame: bytes, timeout_s: float) -> None:
    """The checks of RelayEndpoint.send_frame, before anything goes on the bus."""
    if not isinstance(lock_id, DeviceId):
        raise UsageError(f"lock_id must be a DeviceId, not {type(lock_id).__name__}")
    if not isinstance(frame, bytes | bytearray):
        raise UsageError(f"frame must be bytes, not {type(frame).__name__}")
    if not (isinstance(timeout_s, int | float) and 0 < timeout_s <= MAX_TIMEOUT_S):
        raise UsageError(f"timeout_s must be in (0, {MAX_TIMEOUT_S:g}], got {timeout_s!r}")


def _answer(reply: Msg, gateway: str, lock_id: DeviceId) -> bytes:
    headers = reply.headers or {}
    status = headers.get(H_STATUS)
    if status == "ok":
        return bytes(reply.data)
    if status == "error":
        detail = reply.data[:MAX_DETAIL].decode("utf-8", "replace")
        flag = headers.get(H_MAY_HAVE_EXECUTED)
        return_error = from_code(
            headers.get(H_ERROR, ""),
            detail or f"gateway {gateway}, lock {lock_id}: failed",
            may_have_executed=None if flag not in ("0", "1") else flag == "1",
        )
        raise return_error
    raise GatewayFailure(
        f"a malformed answer from the process holding {gateway}; "
        f"the frame to {lock_id} may have been executed"
    )


def report_to_json(report: ScanReport) -> dict[str, Any]:
    """A scan report as the bus carries it (docs/protocol.md)."""
    return {
        "reason": report.reason.value,
        "truncated": report.truncated,
        "locks": [
            {
                "lock": e.lock.hex,
                "maker": e.maker,
                "model": e.model,
                "ble_version": e.ble_version,
                "profile": e.profile.value,
                "bound": e.bound,
                "registration_open": e.registration_open,
                "battery": e.battery,
                "rssi": e.rssi,
                "last_seen": e.last_seen.isoformat(),
            }
            for e in report.locks
        ],
    }


def report_from_json(data: Any) -> ScanReport:
    """The inverse of :func:`report_to_json`; ValueError/TypeError/KeyError/LockNsError."""
    if not isinstance(data, dict) or not isinstance(data.get("locks"), list):
        raise TypeError("a scan report is an object with a list of locks")
    entries = tuple(
        ScanEntry(
            DeviceId.parse(str(e["lock"])),
            str(e["maker"]),
            int(e["model"]),
            str(e["ble_version"]),
            Profile(e["profile"]),
            bool(e["bound"]),
            bool(e["registration_open"]),
            int(e["battery"]),
            int(e["rssi"]),
            datetime.fromisoformat(str(e["last_seen"])),
        )
        for e in data["locks"]
    )
    return ScanReport(entries, ScanReason(data["reason"]), bool(data["truncated"]))


def _json(msg: Msg) -> dict[str, Any] | None:
    try:
        data = json.loads(msg.data)
    except (ValueError, UnicodeDecodeError):
        logger.warning("cluster bus: a notice on %s is not JSON", msg.subject)
        return None
    if not isinstance(data, dict) or data.get("v") != WIRE_VERSION:
        logger.warning("cluster bus: a notice on %s of an unknown version", msg.subject)
        return None
    return data


__all__ = ["BUS_MARGIN_S", "ClusterGatewaySessions", "NatsBus", "check_prefix", "subject_token"]
