"""Gateway and lock online/offline, as feed events (issue 7: "within 2 minutes").

**Gateways** follow their XMPP presence (:class:`~heslock.ras.relay.PresenceNotice`): a
clean stop ends the session at once; a silent loss (power, network) is found by the XMPP
server's keepalive (:mod:`heslock.xmpp.server`: a session silent for a ping interval of
60 s is pinged and closed one interval later), at most 120 s after the last traffic.

**Locks** follow the gateways' scan reports (:class:`~heslock.ras.relay.ScanNotice`). A
lock is *online* while some online gateway's latest report lists it with a sighting at
most :data:`OFFLINE_AFTER_S` old (its ``last-seen``, never later than the report's
arrival), and goes *offline* when none does: at once when its gateway reports it gone
(the BGW reports a change within ``lost_after_s`` + ``scan_interval_s``, 12 s by
default) or goes offline, at the latest :data:`OFFLINE_AFTER_S` + :data:`CHECK_EVERY_S`
after it was last heard when its gateway silently stops reporting. It is online again
with the first report that lists it.

:data:`OFFLINE_AFTER_S` comes from the BGW's report schedule: a periodic report every
:data:`~heslock.bgw.config.DEFAULT_REPORT_INTERVAL_S` (60 s) refreshes every sighting,
so a lock in range is never older than that; one lost periodic report is tolerated (a
sighting may reach 2 x 60 s minus delivery jitter), and 110 s + a 5 s check stays within
the 2 minutes asked. (The RAS does not import the BGW: the figure is repeated here.)

Transitions are written as ``lock.online``/``lock.offline`` and
``gateway.online``/``gateway.offline`` (:mod:`.publish`), only when they differ from the
last such event stored for that lock or gateway: a RAS restart, after which every
gateway reconnects and reports, publishes nothing new. What changed while no RAS ran is
caught up by one pass :data:`OFFLINE_AFTER_S` after start (:meth:`ConnectivityMonitor.
catch_up`): whatever the feed last called online and is not online now is published
offline. The RAS's own shutdown publishes nothing (the monitor stops before the relay
endpoint marks everyone offline). Only bound locks have events; an unbound device is
tracked but not published; once bound (the lock's row may commit a moment after the
report that shows it bound) it is published online at the next check that finds its row.

Bus callbacks only queue (:mod:`heslock.ras.relay.bus`); one task handles the queue, the
periodic check and the writes, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from heslock.protocol.ids import DeviceId
from heslock.ras.relay import LockBus, PresenceNotice, ScanNotice, Unsubscribe
from heslock.ras.services.feed.publish import FeedKind, publish
from heslock.ras.store.models import FeedEvent, FeedPath, Gateway, Lock

logger = logging.getLogger(__name__)

#: The BGW's default periodic report interval (heslock.bgw.config), seconds.
GATEWAY_REPORT_INTERVAL_S: Final = 60.0
#: A sighting older than this no longer keeps a lock online (module docstring).
OFFLINE_AFTER_S: Final = 2 * GATEWAY_REPORT_INTERVAL_S - 10.0
#: How often sightings are checked for age.
CHECK_EVERY_S: Final = 5.0
#: Notices waiting to be handled; beyond it one is dropped and logged (the next periodic
#: report or presence change repairs the state).
MAX_QUEUED_NOTICES: Final = 10_000

#: An online lock without a row yet is looked up again after 1, 2, 4 ... s, at most once
#: per report interval (a neighbour's lock bound on another RAS never gets one).
UNBOUND_RETRY_MIN_S: Final = 1.0
UNBOUND_RETRY_MAX_S: Final = GATEWAY_REPORT_INTERVAL_S

LOCK_KINDS: Final = (FeedKind.LOCK_ONLINE.value, FeedKind.LOCK_OFFLINE.value)
GATEWAY_KINDS: Final = (FeedKind.GATEWAY_ONLINE.value, FeedKind.GATEWAY_OFFLINE.value)

Clock = Callable[[], float]


class LockPresence:
    """Which locks are online, from the online gateways' latest reports (pure, no I/O)."""

    def __init__(self, offline_after_s: float = OFFLINE_AFTER_S) -> None:
        if not offline_after_s > 0:
            raise ValueError("offline_after_s must be positive")
        self.max_age = timedelta(seconds=offline_after_s)
        #: gateway -> lock -> (seen at, when reported)
        self._views: dict[str, dict[DeviceId, datetime]] = {}
        self.online: dict[DeviceId, str] = {}  #: lock -> the gateway that last showed it

    def report(self, gateway: str, sightings: Iterable[tuple[DeviceId, datetime]]) -> None:
        self._views[gateway] = dict(sightings)

    def gateway_gone(self, gateway: str) -> None:
        self._views.pop(gateway, None)

    def fresh(self, lock: DeviceId, now: datetime) -> str | None:
        """A gateway with a fresh sighting of ``lock`` (the most recent), or None."""
        best: tuple[datetime, str] | None = None
        for gateway, view in self._views.items():
            seen = view.get(lock)
            if seen is not None and now - seen <= self.max_age and (best is None or seen > best[0]):
                best = (seen, gateway)
        return best[1] if best is not None else None

    def changes(self, now: datetime) -> tuple[list[tuple[DeviceId, str]], list[DeviceId]]:
        """Locks that came online (with their gateway) and went offline since last asked."""
        came: list[tuple[DeviceId, str]] = []
        candidates = {lock for view in self._views.values() for lock in view}
        for lock in sorted(candidates - set(self.online)):
            gateway = self.fresh(lock, now)
            if gateway is not None:
                self.online[lock] = gateway
                came.append((lock, gateway))
        went = [lock for lock in sorted(self.online) if self.fresh(lock, now) is None]
        for lock in went:
            del self.online[lock]
        return came, went


class ConnectivityMonitor:
    """Publishes gateway and lock online/offline (module docstring)."""

    def __init__(
        self,
        bus: LockBus,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        offline_after_s: float = OFFLINE_AFTER_S,
        check_every_s: float = CHECK_EVERY_S,
    ) -> None:
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.offline_after_s = offline_after_s
        self.check_every_s = check_every_s
        self.locks = LockPresence(offline_after_s)
        self.gateways_online: set[str] = set()
        self.published = 0  #: feed events written since start
        self.handled = 0  #: notices handled (and checked after) since start
        self._queue: asyncio.Queue[PresenceNotice | ScanNotice] = asyncio.Queue(MAX_QUEUED_NOTICES)
        self._unsubscribe: list[Unsubscribe] = []
        self._task: asyncio.Task[None] | None = None
        self._started_at: float | None = None
        self._caught_up = False
        #: Online but not bound when it came online: published once it is bound.
        #: lock -> (next retry, its delay): its row may be committed after the report
        #: that showed it bound, so it is looked up again with a doubling delay.
        self._unbound: dict[DeviceId, tuple[float, float]] = {}
        self._progress = asyncio.Condition()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def start(self) -> None:
        if self._task is not None:
            return
        self._unsubscribe = [
            self.bus.subscribe_presence(self._enqueue),
            self.bus.subscribe_scans(self._enqueue),
        ]
        self._started_at = self.clock()
        self._task = asyncio.create_task(self._run(), name="ras-feed-connectivity")

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_published(self, count: int) -> None:
        """Until ``count`` feed events have been written since start (for tests)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.published >= count)

    async def wait_handled(self, count: int) -> None:
        """Until ``count`` notices have been handled since start (for tests)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.handled >= count)

    def _enqueue(self, notice: PresenceNotice | ScanNotice) -> None:
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            logger.warning("connectivity notice from %s dropped: the queue is full", notice.gateway)

    async def _run(self) -> None:
        while True:
            try:
                notice = await asyncio.wait_for(self._queue.get(), self.check_every_s)
            except TimeoutError:
                notice = None
            try:
                if notice is not None:
                    await self.handle(notice)
                await self.check()
            except Exception:
                logger.exception("connectivity events could not be written")
            if notice is not None:
                async with self._progress:
                    self.handled += 1
                    self._progress.notify_all()

    async def handle(self, notice: PresenceNotice | ScanNotice) -> None:
        """Apply one notice; a gateway's presence change is published at once."""
        if isinstance(notice, ScanNotice):
            if notice.gateway not in self.gateways_online:
                self.gateways_online.add(notice.gateway)  # presence came before we started
            self.locks.report(
                notice.gateway,
                ((e.lock, min(e.last_seen, notice.received_at)) for e in notice.report.locks),
            )
            # A lock registered since it came online: its advertisement's bound flag flips
            # and the gateway reports the change; look it up again from the next check.
            for entry in notice.report.locks:
                if entry.bound and entry.lock in self._unbound:
                    self._unbound[entry.lock] = (self.clock(), UNBOUND_RETRY_MIN_S)
            return
        if notice.online:
            self.gateways_online.add(notice.gateway)
        else:
            self.gateways_online.discard(notice.gateway)
            self.locks.gateway_gone(notice.gateway)
        kind = FeedKind.GATEWAY_ONLINE if notice.online else FeedKind.GATEWAY_OFFLINE
        await self._gateway_event(notice.gateway, kind, notice.at)

    async def check(self) -> None:
        """Publish the locks that came online or went offline; the catch-up pass once due."""
        now = self.now()
        came, went = self.locks.changes(now)
        for lock, gateway in came:
            await self._lock_event(lock, FeedKind.LOCK_ONLINE, now, gateway)
        for lock in went:
            await self._lock_event(lock, FeedKind.LOCK_OFFLINE, now, None)
        moment = self.clock()
        for lock, (due_at, _) in list(self._unbound.items()):
            seen_by = self.locks.online.get(lock)
            if seen_by is not None and due_at <= moment:
                await self._lock_event(lock, FeedKind.LOCK_ONLINE, now, seen_by)
        started = self._started_at
        due = started is not None and self.clock() - started >= self.offline_after_s
        if due and not self._caught_up:
            self._caught_up = True
            await self.catch_up()

    async def catch_up(self) -> None:
        """Offline whatever the feed last called online and is not online now."""
        now, written = self.now(), 0
        async with self.sessionmaker() as session, session.begin():
            for lock in await _last_online(session, FeedEvent.lock_id, LOCK_KINDS):
                row = await session.get(Lock, lock)
                if row is not None and DeviceId.parse(row.device_id) not in self.locks.online:
                    await self._publish_lock(session, row, FeedKind.LOCK_OFFLINE, now, None)
                    written += 1
            for gateway_id in await _last_online(session, FeedEvent.gateway_id, GATEWAY_KINDS):
                gateway = await session.get(Gateway, gateway_id)
                if gateway is not None and gateway.jid not in self.gateways_online:
                    await self._publish_gateway(session, gateway, FeedKind.GATEWAY_OFFLINE, now)
                    written += 1
        await self._count(written)

    # ------------------------------------------------------------------ writes

    async def _lock_event(
        self, lock: DeviceId, kind: FeedKind, at: datetime, gateway: str | None
    ) -> None:
        async with self.sessionmaker() as session, session.begin():
            query = select(Lock).where(Lock.device_id == lock.hex)
            row = (await session.execute(query)).scalar_one_or_none()
            if row is None:  # not a bound lock: nobody's feed (until it is: check())
                if kind is FeedKind.LOCK_ONLINE:
                    delay = self._unbound.get(lock, (0.0, UNBOUND_RETRY_MIN_S / 2))[1] * 2
                    delay = min(delay, UNBOUND_RETRY_MAX_S)
                    self._unbound[lock] = (self.clock() + delay, delay)
                else:
                    self._unbound.pop(lock, None)
                return
            self._unbound.pop(lock, None)
            if await _last_kind(session, FeedEvent.lock_id == row.id, LOCK_KINDS) == kind:
                return
            await self._publish_lock(session, row, kind, at, gateway)
        await self._count(1)

    async def _publish_lock(
        self, session: AsyncSession, row: Lock, kind: FeedKind, at: datetime, gateway: str | None
    ) -> None:
        payload: dict[str, object] = {"device_id": row.device_id, "name": row.name}
        if gateway is not None:
            payload["gateway"] = gateway
        await publish(
            session, kind.value, path=FeedPath.SYSTEM, lock_id=row.id, payload=payload, at=at
        )

    async def _gateway_event(self, jid: str, kind: FeedKind, at: datetime) -> None:
        async with self.sessionmaker() as session, session.begin():
            query = select(Gateway).where(Gateway.jid == jid)
            gateway = (await session.execute(query)).scalar_one_or_none()
            if gateway is None:
                return
            if await _last_kind(session, FeedEvent.gateway_id == gateway.id, GATEWAY_KINDS) == kind:
                return
            await self._publish_gateway(session, gateway, kind, at)
        await self._count(1)

    async def _publish_gateway(
        self, session: AsyncSession, gateway: Gateway, kind: FeedKind, at: datetime
    ) -> None:
        await publish(
            session,
            kind.value,
            path=FeedPath.SYSTEM,
            gateway_id=gateway.id,
            user_id=gateway.owner_id,
            credential=f"gateway:{gateway.jid}",
            payload={"gateway": gateway.jid, "name": gateway.name},
            at=at,
        )

    async def _count(self, written: int) -> None:
        """After the commit: tests waiting on :meth:`wait_published` then read it."""
        if written:
            async with self._progress:
                self.published += written
                self._progress.notify_all()


async def _last_kind(
    session: AsyncSession, where: ColumnElement[bool], kinds: tuple[str, ...]
) -> str | None:
    """The kind of the latest connectivity event matching ``where``, if any."""
    query = (
        select(FeedEvent.kind)
        .where(where, FeedEvent.kind.in_(kinds))
        .order_by(FeedEvent.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def _last_online(
    session: AsyncSession, column: InstrumentedAttribute[uuid.UUID | None], kinds: tuple[str, ...]
) -> list[uuid.UUID]:
    """The locks or gateways (``column``) whose latest event of ``kinds`` is ``kinds[0]``."""
    latest = (
        select(func.max(FeedEvent.id))
        .where(FeedEvent.kind.in_(kinds), column.is_not(None))
        .group_by(column)
    )
    query = select(column).where(FeedEvent.id.in_(latest), FeedEvent.kind == kinds[0])
    return [ref for ref in (await session.execute(query)).scalars() if ref is not None]
