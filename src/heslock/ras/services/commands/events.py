"""Lock events at the RAS: opened under the lock key, verified, stored, state updated.

ISO/IEC 14543-5-104: a lock notifies what happens at the door (a knob turned, the door
opened, a jam, low battery) with an EVENT frame sealed under its lock key; the BGW relays
it (:class:`~heslock.ras.relay.LockEventNotice`). The RAS trusts nothing the gateway says
about it: it looks the lock up by its device id, opens the frame under that lock's key
and runs it through a :class:`~heslock.protocol.FrameAcceptor` in the FROM_LOCK direction
(timestamp window, replay cache and, secure profile, the event counter window), kept in
memory per lock and key version. An accepted event is stored (``lock_events``) and the
state it carries (StatusArgs) becomes the lock's last known state; anything else is
counted and logged (never the frame).

Bus subscribers must not block (:mod:`heslock.ras.relay.bus`): the callback only queues
the notice; one worker task stores them in arrival order. The queue is bounded
(:data:`MAX_QUEUED_EVENTS`): beyond it an event is dropped and logged; the lock keeps it
in its own log, which the owner can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.protocol import (
    Accepted,
    Cmd,
    Direction,
    EventType,
    FrameAcceptor,
    FrameCodec,
    OpBody,
    Profile,
    StatusArgs,
)
from heslock.protocol.errors import FrameRejected
from heslock.ras.keystore import LOCK_KEY, Keystore, SecretRejected
from heslock.ras.relay import LockBus, LockEventNotice, Unsubscribe
from heslock.ras.services.ddms.runtime import Clock
from heslock.ras.services.feed.publish import lock_event_kind, publish
from heslock.ras.store.engine import write_gate
from heslock.ras.store.models import Device, FeedPath, Lock, LockEventRecord

logger = logging.getLogger(__name__)

#: Events waiting to be stored. A lock sends a handful a minute at most; 10 000 covers a
#: burst from every lock of a large site while the database stalls for a few seconds.
MAX_QUEUED_EVENTS: Final = 10_000
#: Locks whose acceptor (replay cache, counter window) is kept; least recently used first
#: out. A forgotten lock's window restarts: its events are still checked for freshness.
MAX_ACCEPTORS: Final = 10_000


#: Who acted, as far as the event itself says: a knob or key turned by a person at the
#: door (or the lock relocking itself), a frame executed (remote or nearby: the command's
#: own feed event names the person). Everything else is the lock's own observation.
EVENT_PATHS: Final = {
    EventType.MANUAL_OPERATION: FeedPath.MANUAL,
    EventType.REMOTE_OPERATION: FeedPath.REMOTE,
}


def utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def feed_payload(record: LockEventRecord, event_type: EventType) -> dict[str, Any]:
    """What the user-visible feed shows of a stored lock event (no frame, no key)."""
    return {
        "event": event_type.name.lower(),
        "detail": record.detail,
        "lock_event_id": record.id,
        "counter": record.counter,
        "lock_time": record.lock_time.isoformat(),
        "gateway": record.gateway,
        "bolt_state": record.bolt_state,
        "door_state": record.door_state,
        "battery": record.battery,
    }


class EventIngest:
    """Stores the lock events the bus delivers (module docstring)."""

    def __init__(
        self,
        bus: LockBus,
        sessionmaker: async_sessionmaker[AsyncSession],
        keystore: Keystore,
        clock: Clock,
    ) -> None:
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.keystore = keystore
        self.clock = clock
        self.stored = 0  #: events stored since start
        self.refused = 0  #: events dropped: unknown lock, bad frame, replay, full queue
        self._queue: asyncio.Queue[LockEventNotice] = asyncio.Queue(MAX_QUEUED_EVENTS)
        self._acceptors: OrderedDict[tuple[uuid.UUID, int], FrameAcceptor] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Unsubscribe | None = None
        self._progress = asyncio.Condition()

    def start(self) -> None:
        if self._task is not None:
            return
        self._unsubscribe = self.bus.subscribe_events(self._enqueue)
        self._task = asyncio.create_task(self._run(), name="ras-lock-events")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_handled(self, count: int) -> None:
        """Until ``count`` events have been handled (stored or refused) since start."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.stored + self.refused >= count)

    def _enqueue(self, notice: LockEventNotice) -> None:
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            self.refused += 1
            logger.warning("lock event from %s dropped: the queue is full", notice.lock)

    async def _run(self) -> None:
        while True:
            notice = await self._queue.get()
            try:
                stored = await self.handle(notice)
            except Exception:
                stored = False
                logger.exception("lock event from %s could not be stored", notice.lock)
            async with self._progress:
                if stored:
                    self.stored += 1
                else:
                    self.refused += 1
                self._progress.notify_all()

    def _acceptor(self, lock: Lock, key: bytes, profile: Profile) -> FrameAcceptor:
        slot = (lock.id, lock.key_version)
        acceptor = self._acceptors.get(slot)
        if acceptor is None:
            acceptor = FrameAcceptor(FrameCodec(key, profile), direction=Direction.FROM_LOCK)
            self._acceptors[slot] = acceptor
            while len(self._acceptors) > MAX_ACCEPTORS:
                self._acceptors.popitem(last=False)
        self._acceptors.move_to_end(slot)
        return acceptor

    async def handle(self, notice: LockEventNotice) -> bool:
        """Verify and store one event; True if stored."""
        now = int(self.clock())
        async with write_gate(self.sessionmaker), self.sessionmaker() as session, session.begin():
            query = (
                select(Lock, Device.profile)
                .join(Device, Device.device_id == Lock.device_id)
                .where(Lock.device_id == notice.lock.hex)
            )
            found = (await session.execute(query)).first()
            if found is None:
                logger.info("event for %s, which is not a bound lock: dropped", notice.lock)
                return False
            lock, profile = found
            try:
                key = self.keystore.open(LOCK_KEY, str(lock.id), lock.lock_key_enc)
            except SecretRejected:
                logger.exception("lock %s: its key envelope does not open", lock.id)
                return False
            acceptor = self._acceptor(lock, key, Profile(profile))
            verdict = acceptor.accept(notice.frame, now)
            if not isinstance(verdict, Accepted):
                logger.warning(
                    "event for lock %s via %s refused: %s", lock.id, notice.gateway, verdict
                )
                return False
            frame, body = verdict.frame, verdict.body
            if frame.group != Cmd.EVENT or not isinstance(body, OpBody):
                logger.warning("lock %s sent a %s frame as an event: dropped", lock.id, frame.group)
                return False
            try:
                status: StatusArgs | None = StatusArgs.from_bytes(body.args)
            except FrameRejected:
                status = None  # the event stands; it just carries no usable state
            acceptor.record(notice.frame, verdict, None, now)
            event_type = EventType(frame.type)
            record = LockEventRecord(
                lock_id=lock.id,
                kind=event_type.name.lower(),
                detail=body.op,
                counter=body.seq,
                lock_time=utc(frame.timestamp),
                received_at=notice.received_at,
                gateway=notice.gateway,
                bolt_state=int(status.bolt) if status else None,
                door_state=int(status.door) if status else None,
                battery=status.battery if status else None,
            )
            session.add(record)
            if status is not None and (
                lock.state_at is None or lock.state_at <= notice.received_at
            ):
                lock.bolt_state, lock.door_state = int(status.bolt), int(status.door)
                lock.battery, lock.state_at = status.battery, notice.received_at
            await session.flush()  # the record's id, for the feed event
            await publish(
                session,
                lock_event_kind(event_type.name),
                path=EVENT_PATHS.get(event_type, FeedPath.SYSTEM),
                lock_id=lock.id,
                credential=f"gateway:{notice.gateway}",
                payload=feed_payload(record, event_type),
                at=notice.received_at,
            )
        logger.info("lock %s event %s stored", lock.id, EventType(frame.type).name)
        return True


async def list_events(
    session: AsyncSession, lock_id: uuid.UUID, limit: int, before: int | None
) -> list[LockEventRecord]:
    """A lock's events, newest first; ``before``: only ids below it (keyset paging)."""
    query = select(LockEventRecord).where(LockEventRecord.lock_id == lock_id)
    if before is not None:
        query = query.where(LockEventRecord.id < before)
    query = query.order_by(LockEventRecord.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())
