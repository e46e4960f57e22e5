"""Reconciliation of commands whose outcome is unknown: read the lock, never act again.

ISO/IEC 14543-5-104 "Control flow": when a command's answer is lost (a gateway dropped,
a timeout, a nearby client that never came back) the RAS cannot know whether the lock
acted. "A lost answer becomes state unknown, reconciled by reading the lock's state and
log -- never a blind second unlock." The :class:`Reconciler` does that for every
``unknown`` command, remote or nearby, as soon as a gateway sees the lock.

What a pass reads
-----------------
Read-only frames only, each with a fresh counter from ``locks.next_counter`` and sealed
under the lock key (:class:`LockReader`), through the gateway that sees the lock:

====  ===============================  =================================================
 1    OPERATION STATUS                 the lock's state; the answer's timestamp is the
                                       lock's clock
 2    CONFIG GET TIMESTAMP_WINDOW      ``w``: the lock accepts a frame stamped ``ts``
                                       while its clock is within ``ts +/- w``
 3    QUERY LOG_COUNT                  entries held, capacity
 4    QUERY LOG_TIME i, LOG_ENTRY i    i = 0 (newest), 1, ... until the log is read back
                                       past the oldest window of interest
                                       (:func:`scan_complete`), at most
                                       :data:`MAX_LOG_ENTRIES`
 5    LOG_COUNT, LOG_TIME/ENTRY 0      again: the log did not move while it was read
====  ===============================  =================================================

How it decides (:func:`decide`, pure)
-------------------------------------
A lock that executes an UNLOCK or LOCK frame logs REMOTE_OPERATION (source REMOTE,
detail = the op) at its clock's time ``t``, and it accepted the frame only if
``|ts - t| <= w``. Every such entry is the trace of a row of ``commands`` (the RAS
alone holds the key). So the entries of op ``o`` around a command's window must be
shared out among the commands of op ``o`` whose windows hold them: those known to have
executed (``ok``) exactly one each, those ``unknown`` or ``pending`` zero or one, every
entry to one command. If every such assignment gives the command an entry, it
executed; if none can, it has not executed *so far*:

====================================  ==========================  ===========================
the log                               the lock's clock            decision
====================================  ==========================  ===========================
not read back far enough              --                          undecided (log-incomplete)
the command must have an entry        --                          ``ok``, confirmed ``log``
the command cannot have an entry      past ``ts + w``             ``failed``, ``not-executed``
                                                                  (the lock refuses the frame
                                                                  as STALE from now on)
the command cannot have an entry      at or before ``ts + w``     undecided (window-open);
                                                                  next try when it has passed
either is possible (two candidates,   --                          undecided (ambiguous)
one entry)
no assignment at all                  --                          undecided (inconsistent)
====================================  ==========================  ===========================

A ``status`` command changed nothing at the lock: the pass's STATUS read answers it
(``ok``, confirmed ``status``).

When it runs
------------
A command that has just become ``unknown`` is left to the client's retry with the same
key for :data:`~heslock.ras.services.commands.service.RECONCILE_GRACE_S` (the lock's own
answer to the same bytes says more than a log entry); nearby frames that expired without
an answer are due at once. No pass starts while a frame of the lock may still be in use
(a nearby frame before its ``expires_at``, a remote command being relayed): the pass's
counters would push it out of a secure lock's counter window.

The reconciler keeps a watch list of locks with ``unknown`` commands (rebuilt by a sweep
every :data:`SWEEP_INTERVAL_S`, and at once when a gateway comes online). A gateway's
scan report that shows a watched lock starts a pass on it (at most one per
:data:`MIN_PASS_INTERVAL_S` per lock); the sweep starts passes on watched locks a
gateway already sees. At most :data:`MAX_PARALLEL_LOCKS` passes run at once, and a pass
sends at most ``3 + 2 * MAX_LOG_ENTRIES + 3`` frames. An undecided command is retried
with backoff (:data:`RETRY_MIN_S` doubling up to :data:`RETRY_MAX_S`), or, when only
the window has to pass, right after it has. The sweep also turns nearby frames whose
lifetime passed without an answer, and remote commands abandoned by a crashed node,
into ``unknown``.

Concurrency
-----------
A pass first *claims* its commands: ``reconcile_after`` is set to a lease
(:data:`LEASE_S`) by a compare-and-set ``UPDATE`` (``state = unknown`` and due), so two
passes (two RAS nodes, or a sweep and a scan report) never reconcile one command at
once; in one process there is at most one pass per lock. The decisions are written under
the lock row's write lock (:func:`~heslock.ras.services.commands.service.lock_row`),
only on commands still ``unknown``: a user's retry with the same key that settled the
command meanwhile wins, and a retry that comes later gets the reconciled answer.
Reads never change the lock, so a retry racing a pass cannot make its decision false:
an entry in the log stays there, and a lock whose clock is past ``ts + w`` refuses the
frame forever.

Limits (docs/security.md): the lock's clock must be within its window of the RAS's for
the reads to be accepted; a clock set back without a TIME_SET or BATTERY_REPLACED entry
after it, a window changed while a frame was out, or a REMOTE_OPERATION entry not made
by a command of this RAS would mislead the log reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.protocol import (
    Cmd,
    ConfigOp,
    ConfigType,
    DeviceId,
    Direction,
    FrameCodec,
    LogCode,
    LogSource,
    OpBody,
    OperationOp,
    OperationType,
    Profile,
    QueryOp,
    QueryType,
    ReasonCode,
    StatusArgs,
    decode_body,
    messages,
)
from heslock.protocol.errors import FrameRejected
from heslock.protocol.messages import read_u16, read_u32, u16
from heslock.ras.keystore import LOCK_KEY, Keystore, SecretRejected
from heslock.ras.relay import LockBus, PresenceNotice, RelayError, ScanNotice, Unsubscribe
from heslock.ras.services import audit
from heslock.ras.services.commands.errors import NotExecuted, OutcomeUnknown
from heslock.ras.services.commands.service import (
    COMMAND_TIMEOUT_S,
    CONFIRMED_LOG,
    CONFIRMED_STATUS,
    OPS,
    PENDING_GRACE_S,
    Settled,
    apply,
    audit_result,
    lock_row,
    take_counter,
    update_lock_state,
)
from heslock.ras.services.ddms.runtime import Clock
from heslock.ras.services.errors import Conflict
from heslock.ras.services.feed.sources import command_outcome as feed_command_outcome
from heslock.ras.store.models import Command, CommandState, Device, Lock
from heslock.ras.store.models.commands import CommandPath

logger = logging.getLogger(__name__)

#: The periodic sweep (watch list, expired nearby frames, abandoned commands).
SWEEP_INTERVAL_S: Final = 15.0
#: Passes one node runs at once: each holds a gateway's BLE link to a lock for seconds.
MAX_PARALLEL_LOCKS: Final = 4
#: A scan report that shows a watched lock starts a pass on it at most this often.
MIN_PASS_INTERVAL_S: Final = 10.0
#: Commands one pass settles (the oldest first); the rest wait for the next pass.
MAX_TARGETS_PER_PASS: Final = 16
#: Log entries read per pass. Each costs two frames, so a pass sends at most
#: 3 + 2 * 40 + 3 = 86: two thirds of a lock's replay cache (128 frames per window,
#: heslock.protocol.acceptance), so a pass never pushes a user's command out of it.
MAX_LOG_ENTRIES: Final = 40
#: Commands of one op considered together; more and the pass decides nothing.
MAX_CLAIMS: Final = 256
#: The widest timestamp window a lock may be set to (CONFIG TIMESTAMP_WINDOW: 5..300 s).
MAX_WINDOW_S: Final = 300
#: Commands created this long before the oldest target are read as claims: two of the
#: widest windows, and slack for the RAS clock against the database's ``created_at``.
CLAIM_HORIZON_S: Final = 2 * MAX_WINDOW_S + 600
#: How long a claimed command is left to the pass that claimed it (> PASS_DEADLINE_S).
LEASE_S: Final = 180.0
#: A pass that has not finished reading by then is abandoned (undecided).
PASS_DEADLINE_S: Final = 90.0
#: One read frame's budget at the gateway (as a command's).
READ_TIMEOUT_S: Final = COMMAND_TIMEOUT_S
#: Backoff of an undecided command: RETRY_MIN_S, doubling per attempt, up to RETRY_MAX_S.
RETRY_MIN_S: Final = 30.0
RETRY_MAX_S: Final = 3600.0
#: Counters reserved per database round trip: below the secure profile's counter window
#: (32), so a user's command sent meanwhile cannot push an unused one out of it.
COUNTER_BATCH: Final = 8
#: Decisions remembered for :meth:`Reconciler.wait_for` (operations, tests).
MAX_REMEMBERED: Final = 1024
#: Rows the sweep reads per round.
MAX_SWEEP_ROWS: Final = 10_000
#: Log codes after which the entries' times may come from another clock (a set clock, a
#: battery swap): the log cannot be assumed in time order across them.
CLOCK_MOVES: Final = frozenset({int(LogCode.TIME_SET), int(LogCode.BATTERY_REPLACED)})
SYSTEM: Final = audit.AuditContext(actor="system")


# ====================================================================== the decision


class Verdict(StrEnum):
    EXECUTED = "executed"
    NOT_EXECUTED = "not-executed"
    UNDECIDED = "undecided"


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One entry of the lock's log (LOG_TIME and LOG_ENTRY of one index)."""

    time: int  #: the lock's clock when it logged it
    code: int  #: LogCode
    detail: int
    source: int  #: LogSource

    def is_remote_op(self, op: int) -> bool:
        return (
            self.code == LogCode.REMOTE_OPERATION
            and self.source == LogSource.REMOTE
            and self.detail == op
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """A command whose frame may have left a REMOTE_OPERATION entry in the log."""

    command_id: uuid.UUID
    op: int  #: OperationOp
    ts: int  #: the frame's timestamp
    executed: bool  #: True: ``ok`` (exactly one entry); False: ``unknown``/``pending``

    def holds(self, time: int, window_s: int) -> bool:
        return self.ts - window_s <= time <= self.ts + window_s


@dataclass(frozen=True, slots=True)
class LockReading:
    """What a pass read: the lock's clock and window, and its newest log entries."""

    clock: int  #: the STATUS answer's timestamp
    window_s: int
    held: int  #: entries in the log
    capacity: int  #: the log's size (a full log has dropped its oldest entries)
    entries: tuple[LogRecord, ...]  #: newest first: ``entries[i]`` is log index ``i``


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    why: str
    #: Undecided: seconds after which deciding again makes sense (None: back off).
    retry_in_s: float | None = None


def component(target: Claim, claims: Iterable[Claim], window_s: int) -> list[Claim]:
    """``target`` and every claim of its op linked to it by overlapping windows.

    An entry in one of these windows can only come from one of these commands (its
    window holds the entry, so it overlaps), and no other command can take one of
    their entries: the assignment problem of :func:`decide` is closed over this set.
    """
    pool = {c.command_id: c for c in claims if c.op == target.op}
    pool[target.command_id] = target
    found = {target.command_id: target}
    queue = [target]
    while queue:
        current = queue.pop()
        for other in pool.values():
            if other.command_id not in found and abs(other.ts - current.ts) <= 2 * window_s:
                found[other.command_id] = other
                queue.append(other)
    return sorted(found.values(), key=lambda c: (c.ts, str(c.command_id)))


def log_floor(targets: Iterable[Claim], claims: Sequence[Claim], window_s: int) -> int:
    """The lock time the log must be read back to (exclusive) to decide ``targets``."""
    return min(min(c.ts for c in component(t, claims, window_s)) for t in targets) - window_s


def scan_complete(entries: Sequence[LogRecord], held: int, capacity: int, floor: int) -> bool:
    """Has the log been read back far enough that no entry at or after ``floor`` is left?

    Newest first, the lock's clock only goes back in time order unless it was set (a
    TIME_SET) or reset (a BATTERY_REPLACED, then a TIME_SET before the lock accepts a
    RAS frame again); both leave an entry stamped with the *new* clock. So the first
    entry older than ``floor`` ends the reading, unless such an entry came before it
    (the entries after that may carry any time): then only the whole log will do, and
    only if the ring has not dropped entries (``held < capacity``).
    """
    clock_moved = False
    for entry in entries:
        moves = entry.code in CLOCK_MOVES
        if entry.time < floor and not clock_moved and not moves:
            return True
        clock_moved = clock_moved or moves
    return len(entries) >= held and held < capacity


def decide(target: Claim, claims: Sequence[Claim], reading: LockReading) -> Decision:
    """Did ``target``'s frame execute? (Module docstring, "How it decides".)

    ``claims`` are the commands of the lock that may have left an entry (``ok``,
    ``unknown``, ``pending``; not ``failed`` or ``refused``), ``target`` among them or
    not; only those of ``target``'s op count.
    """
    w = reading.window_s
    group = component(target, claims, w)
    if len(group) > MAX_CLAIMS:
        return Decision(Verdict.UNDECIDED, "too-many-claims")
    floor = min(c.ts for c in group) - w
    if not scan_complete(reading.entries, reading.held, reading.capacity, floor):
        return Decision(Verdict.UNDECIDED, "log-incomplete")
    entries = [
        e.time
        for e in reading.entries
        if e.is_remote_op(target.op) and any(c.holds(e.time, w) for c in group)
    ]
    can_have = _assignable(group, entries, w, target, executed=True)
    can_lack = _assignable(group, entries, w, target, executed=False)
    if can_have and not can_lack:
        return Decision(Verdict.EXECUTED, "log-entry")
    if can_lack and not can_have:
        if reading.clock > target.ts + w:
            return Decision(Verdict.NOT_EXECUTED, "window-passed")
        return Decision(Verdict.UNDECIDED, "window-open", float(target.ts + w + 1 - reading.clock))
    if can_have:
        return Decision(Verdict.UNDECIDED, "ambiguous")
    return Decision(Verdict.UNDECIDED, "inconsistent")


def _assignable(
    group: Sequence[Claim], entries: Sequence[int], w: int, target: Claim, *, executed: bool
) -> bool:
    """Can every entry go to one command whose window holds it, with every ``ok`` command
    (and ``target`` if ``executed``) getting exactly one, ``target`` none otherwise?

    Bipartite matching. By the Mendelsohn-Dulmage theorem a matching covering both the
    required commands and all entries exists iff one covers the commands and one covers
    the entries; each is a maximum matching (Kuhn's augmenting paths).
    """
    left = [c for c in group if executed or c.command_id != target.command_id]
    edges = [[j for j, t in enumerate(entries) if c.holds(t, w)] for c in left]
    required = [
        edges[i] for i, c in enumerate(left) if c.executed or c.command_id == target.command_id
    ]
    if _matching(required, len(entries)) < len(required):
        return False
    reverse = [[i for i in range(len(left)) if j in edges[i]] for j in range(len(entries))]
    return _matching(reverse, len(left)) == len(entries)


def _matching(adjacency: Sequence[Sequence[int]], right_size: int) -> int:
    """Size of a maximum matching of the left vertices (rows of ``adjacency``)."""
    owner = [-1] * right_size

    def augment(u: int, seen: set[int]) -> bool:
        for v in adjacency[u]:
            if v in seen:
                continue
            seen.add(v)
            if owner[v] == -1 or augment(owner[v], seen):
                owner[v] = u
                return True
        return False

    return sum(1 for u in range(len(adjacency)) if augment(u, set()))


# ====================================================================== reading the lock


class ReadFailed(Exception):
    """A read did not complete (relay error, refusal, not the answer, the log moved)."""


class LockReader:
    """Sends read-only frames to one lock through one gateway (module docstring)."""

    def __init__(
        self,
        bus: LockBus,
        gateway: str,
        device: DeviceId,
        codec: FrameCodec,
        clock: Clock,
        counters: Callable[[int], Awaitable[list[int]]],
    ) -> None:
        self.bus = bus
        self.gateway = gateway
        self.device = device
        self.codec = codec
        self.clock = clock
        self._counters = counters
        self._pool: list[int] = []
        self.sent = 0  #: frames sent

    def __repr__(self) -> str:  # the codec's key stays out of tracebacks
        return f"LockReader(device={self.device}, gateway={self.gateway!r})"

    async def _seq(self) -> int:
        if not self._pool:
            self._pool = await self._counters(COUNTER_BATCH)
        return self._pool.pop(0)

    async def request(
        self, group: Cmd, type_: int, op: int, args: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one read frame; the answer's timestamp (the lock's clock) and args."""
        profile = self.codec.profile
        seq = await self._seq()
        frame = messages.command(group, type_, op, seq, int(self.clock()), profile.layout, args)
        what = f"{group.name} {type_}"
        self.sent += 1
        try:
            wire = await self.bus.send_frame(
                self.gateway, self.device, self.codec.seal(frame), READ_TIMEOUT_S
            )
        except RelayError as exc:
            raise ReadFailed(f"{what}: {exc.code}") from None
        try:
            answer = self.codec.open(wire)
            body = decode_body(answer, Direction.FROM_LOCK, profile)
        except FrameRejected as exc:
            raise ReadFailed(f"{what}: not this lock's frame ({exc})") from None
        if not isinstance(body, OpBody) or body.seq != seq or body.op != op:
            raise ReadFailed(f"{what}: not the answer to this frame")
        if answer.group == Cmd.ERROR:
            try:
                reason = ReasonCode(answer.type).name
            except ValueError:
                reason = f"0x{answer.type:02x}"
            raise ReadFailed(f"{what}: refused by the lock ({reason})")
        if answer.group != group or answer.type != type_:
            raise ReadFailed(f"{what}: not the answer to this frame")
        return answer.timestamp, body.args

    async def status(self) -> tuple[StatusArgs, int]:
        """The lock's state, and its clock (the answer's timestamp)."""
        stamp, args = await self.request(Cmd.OPERATION, OperationType.BOLT, OperationOp.STATUS)
        try:
            return StatusArgs.from_bytes(args), stamp
        except FrameRejected as exc:
            raise ReadFailed(f"status: {exc}") from None

    async def window(self) -> int:
        _, args = await self.request(Cmd.CONFIG, ConfigType.TIMESTAMP_WINDOW, ConfigOp.GET)
        return read_u16(args)

    async def log_count(self) -> tuple[int, int]:
        _, args = await self.request(Cmd.QUERY, QueryType.LOG_COUNT, QueryOp.READ)
        return read_u16(args), read_u16(args[2:])

    async def log_record(self, index: int) -> LogRecord:
        _, when = await self.request(Cmd.QUERY, QueryType.LOG_TIME, QueryOp.READ, u16(index))
        _, what = await self.request(Cmd.QUERY, QueryType.LOG_ENTRY, QueryOp.READ, u16(index))
        return LogRecord(read_u32(when), what[0], what[1], what[2])

    async def read(self, floor_of: Callable[[int], int]) -> tuple[StatusArgs, LockReading]:
        """Steps 1-5 of the module docstring; ``floor_of(window)`` is the log floor."""
        status, clock = await self.status()
        window = await self.window()
        held, capacity = await self.log_count()
        floor = floor_of(window)
        entries: list[LogRecord] = []
        while len(entries) < min(held, MAX_LOG_ENTRIES) and not scan_complete(
            entries, held, capacity, floor
        ):
            entries.append(await self.log_record(len(entries)))
        again, _ = await self.log_count()
        if again != held or (entries and await self.log_record(0) != entries[0]):
            raise ReadFailed("the lock logged something while its log was read")
        return status, LockReading(clock, window, held, capacity, tuple(entries))


# ====================================================================== the reconciler


@dataclass(frozen=True, slots=True)
class _Target:
    command_id: uuid.UUID
    command: str
    ts: int | None  #: None: the frame's timestamp is unknown (old key, old row)


@dataclass
class _Plan:
    """What one pass needs, read in one short session."""

    lock_id: uuid.UUID
    device: DeviceId
    codec: FrameCodec
    targets: list[_Target]
    claims: list[Claim] = field(default_factory=list)
    #: Ops with a claim of unknown timestamp, or too many claims: their targets wait.
    blocked: dict[int, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"_Plan(lock={self.lock_id}, targets={len(self.targets)})"

    def actuations(self) -> list[Claim]:
        return [
            Claim(t.command_id, OPS[t.command], t.ts, executed=False)
            for t in self.targets
            if t.command != "status" and t.ts is not None and OPS[t.command] not in self.blocked
        ]


@dataclass
class _Watch:
    lock_id: uuid.UUID
    due_at: datetime


def _settled(target: _Target, decision: Decision, status: StatusArgs | None) -> Settled | None:
    """The outcome a decision writes (None: undecided)."""
    if target.command == "status" and status is not None:
        return Settled(CommandState.OK, None, None, "", status=status, confirmed=CONFIRMED_STATUS)
    if decision.verdict is Verdict.EXECUTED:
        return Settled(CommandState.OK, None, None, "", confirmed=CONFIRMED_LOG)
    if decision.verdict is Verdict.NOT_EXECUTED:
        return Settled(
            CommandState.FAILED,
            "not-executed",
            NotExecuted.code,
            "the lock's log shows it did not execute the command, and its clock is past the "
            "frame's window: it never will. Send a new command (with a new key) if needed",
            confirmed=CONFIRMED_LOG,
        )
    return None


def retry_delay(decision: Decision, attempts: int) -> float:
    """Seconds until the next pass on an undecided command (``attempts`` so far, >= 1)."""
    if decision.retry_in_s is not None:
        return min(max(decision.retry_in_s, 1.0), RETRY_MAX_S)
    doubled: float = RETRY_MIN_S * 2.0 ** min(max(attempts - 1, 0), 32)
    return min(doubled, RETRY_MAX_S)


def frame_timestamp(row: Command, lock: Lock, codec: FrameCodec) -> int | None:
    """The command's frame timestamp: stored, or read from the frame under the current
    key (rows older than revision 0005); None if neither is possible."""
    if row.frame_ts is not None:
        return row.frame_ts
    if row.key_version != lock.key_version:
        return None
    try:
        return codec.open(row.frame).timestamp
    except FrameRejected:
        return None


def _now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    """Settles ``unknown`` commands from the locks' logs (module docstring)."""

    def __init__(
        self,
        bus: LockBus,
        sessionmaker: async_sessionmaker[AsyncSession],
        keystore: Keystore,
        clock: Clock,
        *,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
        max_parallel: int = MAX_PARALLEL_LOCKS,
    ) -> None:
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.keystore = keystore
        self.clock = clock
        self.sweep_interval_s = sweep_interval_s
        self.passes = 0  #: passes finished (with or without a decision)
        #: The latest decision per command (bounded; oldest out first).
        self.decisions: OrderedDict[uuid.UUID, Decision] = OrderedDict()
        self._semaphore = asyncio.Semaphore(max_parallel)
        self._watch: dict[str, _Watch] = {}  #: device hex -> lock with unknown commands
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._last_start: dict[uuid.UUID, float] = {}
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: list[Unsubscribe] = []

    def now(self) -> datetime:
        """The RAS clock (the one frames are stamped with)."""
        return datetime.fromtimestamp(self.clock(), UTC)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is not None:
            return
        self._unsubscribe = [
            self.bus.subscribe_scans(self._on_scan),
            self.bus.subscribe_presence(self._on_presence),
        ]
        self._task = asyncio.create_task(self._run(), name="ras-reconciler")

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        tasks = [t for t in (self._task, *self._running.values()) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._running.clear()

    def kick(self) -> None:
        """Sweep now (a gateway came online; or an operator asks)."""
        self._wake.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Until ``predicate()`` holds, checked after every pass (use with a timeout)."""
        async with self._progress:
            await self._progress.wait_for(predicate)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sweep()
            except Exception:
                logger.exception("reconciliation sweep failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.sweep_interval_s):
                    await self._wake.wait()

    # ------------------------------------------------------------------ triggers

    def _on_presence(self, notice: PresenceNotice) -> None:
        if notice.online:
            self.kick()

    def _on_scan(self, notice: ScanNotice) -> None:
        now = self.now()
        loop = asyncio.get_running_loop()
        for entry in notice.report.locks:
            watch = self._watch.get(entry.lock.hex)
            if watch is None or watch.due_at > now:
                continue
            last = self._last_start.get(watch.lock_id)
            if last is not None and loop.time() - last < MIN_PASS_INTERVAL_S:
                continue
            self._schedule(watch.lock_id)

    def _schedule(self, lock_id: uuid.UUID) -> None:
        if lock_id in self._running:
            return
        self._last_start[lock_id] = asyncio.get_running_loop().time()
        task = asyncio.create_task(self._guarded(lock_id), name=f"ras-reconcile-{lock_id}")
        self._running[lock_id] = task

    async def _guarded(self, lock_id: uuid.UUID) -> None:
        try:
            async with self._semaphore:
                await self.reconcile_lock(lock_id)
        except Exception:
            logger.exception("reconciliation of lock %s failed", lock_id)
        finally:
            self._running.pop(lock_id, None)

    # ------------------------------------------------------------------ the sweep

    async def sweep(self) -> None:
        """Expire what has to, rebuild the watch list, start passes on seen locks."""
        now = self.now()
        await self._expire(now)
        self._watch = await self._due()
        watched = {w.lock_id for w in self._watch.values()}
        self._last_start = {k: v for k, v in self._last_start.items() if k in watched}
        for device_hex, watch in list(self._watch.items()):
            if watch.due_at > now or watch.lock_id in self._running:
                continue
            if await self.bus.gateway_for(DeviceId.parse(device_hex)) is not None:
                self._schedule(watch.lock_id)

    async def _due(self) -> dict[str, _Watch]:
        query = (
            select(Command.lock_id, Lock.device_id, Command.reconcile_after)
            .join(Lock, Lock.id == Command.lock_id)
            .where(Command.state == CommandState.UNKNOWN.value)
            .limit(MAX_SWEEP_ROWS)
        )
        watch: dict[str, _Watch] = {}
        async with self.sessionmaker() as session:
            for lock_id, device_hex, after in await session.execute(query):
                due = after if after is not None else datetime.min.replace(tzinfo=UTC)
                known = watch.get(device_hex)
                if known is None or due < known.due_at:
                    watch[device_hex] = _Watch(lock_id, due)
        return watch

    async def _expire(self, now: datetime) -> None:
        """Nearby frames past their lifetime without an answer, and remote commands
        abandoned by a crashed node (``pending`` past PENDING_GRACE_S): ``unknown``."""
        wall = _now()
        abandoned_before = wall - timedelta(seconds=PENDING_GRACE_S)
        query = select(Command.id, Command.lock_id).where(
            Command.state == CommandState.PENDING.value,
            or_(
                (Command.path == CommandPath.NEARBY.value) & (Command.expires_at <= now),
                (Command.path == CommandPath.REMOTE.value)
                & (Command.created_at < abandoned_before),
            ),
        )
        async with self.sessionmaker() as session:
            stale = list(await session.execute(query.limit(MAX_SWEEP_ROWS)))
        for command_id, lock_id in stale:
            async with self.sessionmaker() as session, session.begin():
                lock = await lock_row(session, lock_id)
                row = await session.get(Command, command_id, populate_existing=True)
                if lock is None or row is None or row.state != CommandState.PENDING.value:
                    continue  # answered or settled meanwhile
                if row.path == CommandPath.NEARBY.value:
                    if row.expires_at is None or row.expires_at > now:
                        continue
                    reason, detail = "no-answer", "no answer was posted while the frame was valid"
                else:
                    if row.created_at >= abandoned_before:
                        continue
                    reason, detail = "abandoned", "the RAS node relaying the command stopped"
                settled = Settled(CommandState.UNKNOWN, reason, OutcomeUnknown.code, detail)
                apply(row, lock, settled, None, wall)
                await feed_command_outcome(session, row, lock, None)  # user-visible feed
                await audit.record(
                    session,
                    SYSTEM,
                    "lock.command",
                    audit.AuditResult.FAILED,
                    target=f"lock:{lock.id}",
                    command=row.command,
                    command_id=str(row.id),
                    state=row.state,
                    reason=reason,
                    path=row.path,
                )
            logger.info("command %s: %s, now unknown", command_id, reason)

    # ------------------------------------------------------------------ one pass

    async def reconcile_lock(self, lock_id: uuid.UUID) -> dict[uuid.UUID, Decision]:
        """One pass over the lock's due ``unknown`` commands; the decisions made."""
        async with self.sessionmaker() as session:
            lock = await session.get(Lock, lock_id)
            device_hex = lock.device_id if lock is not None else None
        if device_hex is None:
            return {}
        gateway = await self.bus.gateway_for(DeviceId.parse(device_hex))
        if gateway is None:
            return {}  # the next scan report that shows the lock starts a pass
        now = self.now()
        if await self._frame_in_flight(lock_id, now):
            return {}  # tried again by the next sweep or scan report
        claimed = await self._claim(lock_id, now)
        if not claimed:
            return {}
        decisions: dict[uuid.UUID, Decision] = {}
        status: StatusArgs | None = None
        reading: LockReading | None = None
        plan: _Plan | None = None
        try:
            async with asyncio.timeout(PASS_DEADLINE_S):
                plan = await self._plan(lock_id, claimed)
                status, reading, decisions = await self._read_and_decide(plan, gateway)
        except (ReadFailed, TimeoutError, SecretRejected) as exc:
            why = f"read-failed: {exc}" if str(exc) else "read-failed"
            logger.info("lock %s: reconciliation deferred (%s)", lock_id, why)
            decisions = {cid: Decision(Verdict.UNDECIDED, "read-failed") for cid in claimed}
        targets = plan.targets if plan is not None else [_Target(c, "", None) for c in claimed]
        await self._write(lock_id, targets, decisions, status, reading, gateway, now)
        await self._refresh_watch(lock_id, device_hex)
        async with self._progress:
            self.passes += 1
            for command_id, decision in decisions.items():
                self.decisions[command_id] = decision
                self.decisions.move_to_end(command_id)
            while len(self.decisions) > MAX_REMEMBERED:
                self.decisions.popitem(last=False)
            self._progress.notify_all()
        return decisions

    async def _frame_in_flight(self, lock_id: uuid.UUID, now: datetime) -> bool:
        """Is a command frame of this lock still usable (a nearby frame before its
        ``expires_at``, a remote one being relayed)? A pass then waits: its reads take
        dozens of counters, and a secure-profile lock that accepted them first would
        refuse the frame as COUNTER (its window is 32 counters below the highest)."""
        recent = _now() - timedelta(seconds=PENDING_GRACE_S)
        query = (
            select(Command.id)
            .where(
                Command.lock_id == lock_id,
                Command.state == CommandState.PENDING.value,
                or_(
                    (Command.path == CommandPath.NEARBY.value) & (Command.expires_at > now),
                    (Command.path == CommandPath.REMOTE.value) & (Command.created_at >= recent),
                ),
            )
            .limit(1)
        )
        async with self.sessionmaker() as session:
            return (await session.execute(query)).first() is not None

    async def _claim(self, lock_id: uuid.UUID, now: datetime) -> list[uuid.UUID]:
        """Lease the lock's due unknown commands (compare-and-set: see Concurrency)."""
        due = or_(Command.reconcile_after.is_(None), Command.reconcile_after <= now)
        unknown = Command.state == CommandState.UNKNOWN.value
        query = (
            select(Command.id)
            .where(Command.lock_id == lock_id, unknown, due)
            .order_by(Command.created_at)
            .limit(MAX_TARGETS_PER_PASS)
        )
        claimed: list[uuid.UUID] = []
        async with self.sessionmaker() as session, session.begin():
            for command_id in list((await session.execute(query)).scalars()):
                result = await session.execute(
                    update(Command)
                    .where(Command.id == command_id, unknown, due)
                    .values(reconcile_after=now + timedelta(seconds=LEASE_S))
                    .execution_options(synchronize_session=False)
                )
                if cast(CursorResult[Any], result).rowcount == 1:
                    claimed.append(command_id)
        return claimed

    async def _plan(self, lock_id: uuid.UUID, claimed: list[uuid.UUID]) -> _Plan:
        async with self.sessionmaker() as session:
            lock = await session.get(Lock, lock_id)
            device = await session.get(Device, lock.device_id) if lock is not None else None
            if lock is None or device is None:
                raise ReadFailed("the lock was unbound")
            codec = FrameCodec(
                self.keystore.open(LOCK_KEY, str(lock.id), lock.lock_key_enc),
                Profile(device.profile),
            )
            rows = list(
                (await session.execute(select(Command).where(Command.id.in_(claimed)))).scalars()
            )
            rows.sort(key=lambda r: r.created_at)
            plan = _Plan(
                lock.id,
                DeviceId.parse(lock.device_id),
                codec,
                [_Target(r.id, r.command, frame_timestamp(r, lock, codec)) for r in rows],
            )
            ops = {r.command for r in rows if r.command != "status"}
            if not ops:
                return plan
            horizon = rows[0].created_at - timedelta(seconds=CLAIM_HORIZON_S)
            query = (
                select(Command)
                .where(
                    Command.lock_id == lock.id,
                    Command.command.in_(ops),
                    Command.state.in_(
                        [
                            CommandState.OK.value,
                            CommandState.UNKNOWN.value,
                            CommandState.PENDING.value,
                        ]
                    ),
                    Command.created_at >= horizon,
                )
                .order_by(Command.created_at)
                .limit(MAX_CLAIMS * 2 + 1)
            )
            others = list((await session.execute(query)).scalars())
        if len(others) > MAX_CLAIMS * 2:
            plan.blocked = {OPS[c]: "too-many-claims" for c in ops}
        for row in others:
            op = OPS[row.command]
            ts = frame_timestamp(row, lock, codec)
            if ts is None:
                plan.blocked.setdefault(op, "unknown-timestamp")
                continue
            plan.claims.append(Claim(row.id, op, ts, row.state == CommandState.OK.value))
        return plan

    async def _read_and_decide(
        self, plan: _Plan, gateway: str
    ) -> tuple[StatusArgs, LockReading | None, dict[uuid.UUID, Decision]]:
        reader = LockReader(
            self.bus,
            gateway,
            plan.device,
            plan.codec,
            self.clock,
            lambda n: self._reserve(plan.lock_id, plan.codec.profile, n),
        )
        actuations = plan.actuations()
        reading: LockReading | None = None
        if actuations:
            status, reading = await reader.read(lambda w: log_floor(actuations, plan.claims, w))
        else:
            status, _ = await reader.status()
        decisions: dict[uuid.UUID, Decision] = {}
        for target in plan.targets:
            if target.command == "status":
                decisions[target.command_id] = Decision(Verdict.EXECUTED, "status-read")
                continue
            op = OPS[target.command]
            if target.ts is None:
                decisions[target.command_id] = Decision(Verdict.UNDECIDED, "unknown-timestamp")
            elif op in plan.blocked:
                decisions[target.command_id] = Decision(Verdict.UNDECIDED, plan.blocked[op])
            else:
                assert reading is not None
                claim = Claim(target.command_id, op, target.ts, executed=False)
                decisions[target.command_id] = decide(claim, plan.claims, reading)
        logger.info(
            "lock %s: read %d frames, decided %s",
            plan.lock_id,
            reader.sent,
            {str(k): v.why for k, v in decisions.items()},
        )
        return status, reading, decisions

    async def _reserve(self, lock_id: uuid.UUID, profile: Profile, count: int) -> list[int]:
        """Fresh counters for read frames, taken under the lock row like a command's."""
        async with self.sessionmaker() as session, session.begin():
            lock = await lock_row(session, lock_id)
            if lock is None:
                raise ReadFailed("the lock was unbound")
            try:
                return [take_counter(lock, profile) for _ in range(count)]
            except Conflict as exc:
                raise ReadFailed(str(exc)) from None

    async def _write(
        self,
        lock_id: uuid.UUID,
        targets: list[_Target],
        decisions: dict[uuid.UUID, Decision],
        status: StatusArgs | None,
        reading: LockReading | None,
        gateway: str,
        now: datetime,
    ) -> None:
        """Write decisions on the commands still ``unknown``; back the others off."""
        wall = _now()
        async with self.sessionmaker() as session, session.begin():
            lock = await lock_row(session, lock_id)
            if lock is None:
                return
            if status is not None:
                update_lock_state(lock, status, wall)
            for target in targets:
                decision = decisions[target.command_id]
                row = await session.get(Command, target.command_id, populate_existing=True)
                if row is None or row.state != CommandState.UNKNOWN.value:
                    continue  # settled meanwhile, e.g. by a retry with the same key
                settled = _settled(target, decision, status)
                if settled is None:
                    row.reconciles += 1
                    delay = retry_delay(decision, row.reconciles)
                    row.reconcile_after = now + timedelta(seconds=delay)
                    continue
                apply(row, lock, settled, gateway, wall)
                await feed_command_outcome(session, row, lock, gateway)  # user-visible feed
                await audit.record(
                    session,
                    SYSTEM,
                    "lock.command.reconciled",
                    audit_result(settled.state),
                    target=f"lock:{lock.id}",
                    command=row.command,
                    command_id=str(row.id),
                    state=settled.state.value,
                    reason=settled.reason,
                    confirmed=settled.confirmed,
                    why=decision.why,
                    path=row.path,
                    gateway=gateway,
                    frame_ts=target.ts,
                    lock_clock=reading.clock if reading is not None else None,
                    window_s=reading.window_s if reading is not None else None,
                )
                logger.info(
                    "command %s reconciled: %s (%s)", row.id, settled.state.value, decision.why
                )

    async def _refresh_watch(self, lock_id: uuid.UUID, device_hex: str) -> None:
        query = select(Command.reconcile_after).where(
            Command.lock_id == lock_id, Command.state == CommandState.UNKNOWN.value
        )
        async with self.sessionmaker() as session:
            afters = list((await session.execute(query)).scalars())
        if not afters:
            self._watch.pop(device_hex, None)
            return
        floor = datetime.min.replace(tzinfo=UTC)
        self._watch[device_hex] = _Watch(lock_id, min(a or floor for a in afters))
