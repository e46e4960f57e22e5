"""The BSLD's brain: a pure state machine over frames, buttons and timers.

Theory of operation
-------------------
:class:`SimulatedLock` is what a lock maker's firmware does, in the sans-I/O style:
bytes in (:meth:`~SimulatedLock.handle_frame`), sealed bytes out, events to listeners,
timers driven by the caller (:meth:`~SimulatedLock.tick` at
:meth:`~SimulatedLock.next_deadline`). It never reads a clock or a socket; every entry
point takes ``host_time`` (Unix seconds of the machine it runs on). The only I/O is the
atomic state-file write of :mod:`heslock.bsld.persist` after each change that matters.

Keys. The lock holds a :class:`~heslock.protocol.FrameAcceptor` per key it knows: the
factory key (always), the lock key (when bound), the pending key (between the proof and
the commit of a key negotiation) and the previous lock key (after a rotation, only to
recognise it). A frame is tried under the key commands must use (lock key, or factory
key when unbound); if it does not authenticate there, under the pending key; if it opens
under the factory or previous key, it is refused with WRONG_KEY.

Answers (docs/protocol.md, "Acceptance" and "Commands")::

    lock state / frame                         answer
    locked out (too many wrong attempts)       ERROR LOCKED_OUT
    not authentic under any key                ERROR BAD_LENGTH/BAD_TAG/BAD_CHECK/
                                               UNKNOWN_COMMAND/BAD_VALUE   (counted)
    authentic under factory/previous key       ERROR WRONG_KEY             (counted)
    retry of an accepted frame (<= retry_s)    the first answer again, nothing executed
    replay / stale / counter                   ERROR REPLAY / STALE / COUNTER
    KEY frame                                  LockKeyNegotiation's ack or its refusal
                                               (REGISTRATION_CLOSED when unbound and the
                                               window is closed)
    any other command while unbound            ERROR NOT_BOUND
    any non-COMMIT frame under a pending key   ERROR KEY_SEQUENCE
    TIME / OPERATION / CONFIG / QUERY          response, or ERROR BAD_VALUE / JAMMED /
                                               PASSAGE_MODE / LOW_BATTERY

Every frame that passed acceptance is recorded with the answer it got (a retry gets the
same answer; a refusal for JAMMED is not re-evaluated by resending the same bytes).
Counted refusals are *consecutive*: any accepted frame resets the count. At
``wrong_attempt_limit`` the lock refuses everything for ``lockout_s`` and raises
WRONG_ATTEMPTS. Errors are sealed under the lock key, or the factory key when unbound.

Events (docs/protocol.md, "EVENT"): MANUAL_OPERATION, DOOR, JAM, TAMPER, LOW_BATTERY,
WRONG_ATTEMPTS, FACTORY_RESET, AUTO_RELOCK and REMOTE_OPERATION are always logged; when
bound they are also sealed under the lock key with the lock's per-key event counter
(base: 16-bit, wraps from 65535 to 1; secure: 32-bit, starts at 1 under each key) and
:class:`~heslock.bsld.status.LockStatus` args, and delivered to every listener *after*
the step that raised them has been executed and persisted. An unbound lock shares no
key with a RAS, so its events stay in the log. A factory reset of a bound lock raises
FACTORY_RESET under the key in force before the reset, then wipes it.

Restarts: state is restored from the state file; the replay cache lived in RAM, so every
acceptor's replay floor is raised to the newest timestamp it accepted (a frame accepted
before the restart is REPLAY after it). The registration window lives in RAM and closes
on any restart; the auto-relock timer and a lockout are kept in flash, except that a
battery swap (a power cut) also drops the relock timer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from heslock.bsld import commands
from heslock.bsld.config import LockConfig, LockIdentity
from heslock.bsld.log import EventLog, LogCode, LogEntry, LogSource, RefusalLimiter
from heslock.bsld.mechanism import BoltInput, LockClock, Mechanism, PhysicalError
from heslock.bsld.persist import (
    LockSnapshot,
    Settings,
    StateFileError,
    StateFileMissing,
    encode,
    quarantine,
    read_state,
    write_atomic,
)
from heslock.bsld.status import LockStatus
from heslock.protocol import (
    NEGOTIATION_TIMEOUT_S,
    Accepted,
    AcceptorState,
    BoltState,
    Cmd,
    Direction,
    DoorState,
    Duplicate,
    EventType,
    FrameAcceptor,
    FrameCodec,
    FrameRejected,
    KeyPartBody,
    KeyType,
    LockKeyNegotiation,
    LockPhase,
    OpBody,
    OperationOp,
    ReasonCode,
    Rejected,
    Verdict,
    decode_body,
)
from heslock.protocol import messages as msg
from heslock.protocol.codes import TimeOp
from heslock.protocol.frame import MAX_COUNTER, MAX_SEQ_BASE, Frame
from heslock.protocol.messages import read_u32
from heslock.protocol.profile import Profile

logger = logging.getLogger(__name__)

EventListener = Callable[[bytes], None]

#: Refusals that mean "not authenticated under this key" (acceptance rules 1-4).
UNAUTHENTIC: Final = frozenset(
    {
        ReasonCode.BAD_LENGTH,
        ReasonCode.BAD_TAG,
        ReasonCode.BAD_CHECK,
        ReasonCode.UNKNOWN_COMMAND,
        ReasonCode.BAD_VALUE,
    }
)
#: Refusals counted towards the lockout: nobody holding the lock key sent these.
COUNTED: Final = UNAUTHENTIC | {ReasonCode.WRONG_KEY}
#: Added to deadlines computed through the lock's clock so that float rounding can
#: never leave a deadline at which the (whole-second) clock has not yet reached it.
CLOCK_READ_SLACK_S: Final = 0.001
#: REGISTRATION_CLOSED log details (log.py).
_CLOSED_EXPIRED, _CLOSED_BOUND, _CLOSED_RESET, _CLOSED_POWER = 0, 1, 2, 3


@dataclass(slots=True)
class _KeySlot:
    key: bytes
    acceptor: FrameAcceptor


class SimulatedLock:
    """One simulated BSLD (see module docstring). Not thread-safe: one caller at a time."""

    def __init__(
        self,
        identity: LockIdentity,
        config: LockConfig | None = None,
        *,
        state_path: Path | None = None,
        clock: LockClock | None = None,
    ) -> None:
        """A fresh, unbound lock as it leaves the factory. To resume a lock from its
        state file use :meth:`load`; a fresh lock overwrites ``state_path`` on its first
        change."""
        self.identity = identity
        self._defaults = replace(config) if config is not None else LockConfig()
        self.config = replace(self._defaults)
        self.state_path = state_path
        self.clock = clock if clock is not None else LockClock()
        #: Why the state file could not be used (None: restored, or never asked to load).
        self.load_problem: str | None = None
        #: The last state-file write error (None: the last write succeeded).
        self.persist_problem: str | None = None
        self.mechanism = Mechanism()
        self.log = EventLog(self.config.log_capacity)
        self._listeners: list[EventListener] = []
        self._negotiation = LockKeyNegotiation.unbound(
            identity.device_id, identity.profile, identity.factory_key
        )
        self._factory = self._slot(identity.factory_key)
        self._current: _KeySlot | None = None
        self._pending: _KeySlot | None = None
        self._previous: FrameCodec | None = None
        self._previous_key: bytes | None = None
        self._event_counter = 0
        self._wrong_attempts = 0
        self._lockout_until: float | None = None
        self._registration_until: float | None = None
        self._relock_at: float | None = None
        self._refusals = RefusalLimiter()
        self._outbox: list[bytes] = []
        self._dirty = False
        self._boot_detail: int | None = 0

    # ------------------------------------------------------------------ construction

    @classmethod
    def load(
        cls,
        identity: LockIdentity,
        path: Path,
        config: LockConfig | None = None,
        *,
        clock: LockClock | None = None,
    ) -> SimulatedLock:
        """Resume the lock whose state file is ``path``. A missing, corrupt or foreign
        file is reported (``load_problem``, a warning) and the lock starts unbound with a
        fresh state; a corrupt file is moved aside, never overwritten. ``clock``, if
        given, supplies the RTC's drift (its offset comes from the file)."""
        lock = cls(identity, config, state_path=path, clock=clock)
        try:
            snap = read_state(path)
            lock._check_owner(snap)
            lock._restore(snap, clock)
        except StateFileMissing as exc:
            lock._fresh_start(f"{exc}; starting unbound (first start)")
        except StateFileError as exc:
            moved = quarantine(path)
            where = f"; moved aside to {moved.name}" if moved is not None else ""
            lock._fresh_start(f"unusable state file: {exc}{where}; starting unbound")
        return lock

    def _fresh_start(self, problem: str) -> None:
        self.load_problem = problem
        self._boot_detail = 1
        self._dirty = True
        logger.warning("lock %s: %s", self.identity.device_id, problem)

    def _check_owner(self, snap: LockSnapshot) -> None:
        ident = self.identity
        if snap.device_id != ident.device_id:
            raise StateFileError(f"the file belongs to device {snap.device_id}")
        if snap.profile is not ident.profile:
            raise StateFileError(f"the file is for the {snap.profile.value} profile")
        if snap.key_state.factory_key != ident.factory_key:
            raise StateFileError("the file's factory key differs from the identity's")

    def _restore(self, snap: LockSnapshot, clock: LockClock | None) -> None:
        """Build everything from ``snap`` first, then assign: all or nothing."""
        ks = snap.key_state
        config = replace(
            self._defaults,
            auto_relock_s=snap.settings.auto_relock_s,
            timestamp_window_s=snap.settings.timestamp_window_s,
            sound=snap.settings.sound,
            passage_mode=snap.settings.passage_mode,
        )
        window = config.timestamp_window_s
        factory = self._slot(ks.factory_key, _rebooted(snap.factory_acceptor), window)
        current = pending = None
        if ks.lock_key is not None and snap.current_acceptor is not None:
            current = self._slot(ks.lock_key, _rebooted(snap.current_acceptor), window)
        if ks.phase is LockPhase.PENDING and snap.pending_acceptor is not None:
            pending = self._slot(ks.pending_key, _rebooted(snap.pending_acceptor), window)
        rtc = replace(snap.clock)
        if clock is not None:
            rtc.drift_ppm = clock.drift_ppm
        self.config = config
        self._negotiation = LockKeyNegotiation(self.identity.device_id, self.identity.profile, ks)
        self._factory, self._current, self._pending = factory, current, pending
        self._set_previous(snap.previous_key)
        self.clock = rtc
        self.mechanism = replace(snap.mechanism)
        self.log = EventLog(config.log_capacity, snap.log)
        self._event_counter = snap.event_counter
        self._wrong_attempts = snap.wrong_attempts
        self._lockout_until = snap.lockout_until
        self._relock_at = snap.relock_at

    def _slot(
        self, key: bytes, state: AcceptorState | None = None, window_s: int | None = None
    ) -> _KeySlot:
        acceptor = FrameAcceptor(
            FrameCodec(key, self.identity.profile),
            Direction.TO_LOCK,
            window_s=window_s if window_s is not None else self.config.timestamp_window_s,
            retry_s=self.config.retry_s,
            cache_size=self.config.replay_cache_size,
            state=state if state is not None else AcceptorState(),
        )
        return _KeySlot(key, acceptor)

    def _set_previous(self, key: bytes | None) -> None:
        self._previous_key = key
        self._previous = FrameCodec(key, self.identity.profile) if key is not None else None

    # ------------------------------------------------------------------ public API

    @property
    def profile(self) -> Profile:
        return self.identity.profile

    @property
    def bound(self) -> bool:
        return self._negotiation.state.bound

    @property
    def key_version(self) -> int:
        return self._negotiation.state.key_version

    def add_event_listener(self, fn: EventListener) -> None:
        """``fn`` gets every sealed EVENT frame (bound locks only; see module docstring)."""
        self._listeners.append(fn)

    def remove_event_listener(self, fn: EventListener) -> None:
        self._listeners.remove(fn)

    def handle_frame(self, wire: bytes, host_time: float) -> bytes:
        """Answer one frame written to the lock. Never raises: every outcome is a sealed
        response or ERROR frame (INTERNAL if the lock itself failed; logged)."""
        try:
            with self._step(host_time):
                return self._handle(bytes(wire), host_time)
        except Exception:  # the lock must answer every frame (issue 3)
            logger.exception("lock %s: internal error on a frame", self.identity.device_id)
            return self._internal_error(host_time)

    def tick(self, host_time: float) -> None:
        """Run every timer that is due (auto-relock, window and lockout ends, expiry)."""
        with self._step(host_time):
            pass

    def next_deadline(self, host_time: float) -> float | None:
        """Host time at which :meth:`tick` has work next (None: nothing pending)."""
        times = [self._lockout_until, self._registration_until, self._relock_at]
        st = self._negotiation.state
        if st.phase is not LockPhase.IDLE:
            expiry = self.clock.host_time_of(st.phase_since + NEGOTIATION_TIMEOUT_S, host_time)
            # the lock's clock is read in whole seconds: be sure it reads the deadline
            times.append(expiry + CLOCK_READ_SLACK_S)
        times.append(self._refusals.deadline())
        pending = [t for t in times if t is not None]
        return min(pending) if pending else None

    def status(self, host_time: float) -> LockStatus:
        """The lock's state as the advertisement and STATUS answers show it. A pure read:
        call :meth:`tick` first for timers that are due."""
        m = self.mechanism
        return LockStatus(
            bound=self.bound,
            bolt=m.bolt,
            door=m.door,
            battery=m.battery,
            passage_mode=self.config.passage_mode,
            registration_open=self._registration_open(host_time),
            locked_out=self._locked_out(host_time),
            key_version=self.key_version,
            tampered=m.tampered,
            low_battery=m.battery < self.config.low_battery_percent,
            lock_time=self.clock.now(host_time),
            profile=self.profile,
            event_counter=self._event_counter,
        )

    def on_disconnect(self) -> None:
        """A central went away. The lock keeps no per-connection state: the replay cache
        and wrong-attempt count are per lock on purpose (reconnecting must not reset them)."""
        logger.debug("lock %s: central disconnected", self.identity.device_id)

    # ------------------------------------------------------------------ physical world

    def turn_knob(self, to: BoltState, host_time: float) -> None:
        """A person turns the thumb-turn or key to ``to`` (LOCKED or UNLOCKED)."""
        if to not in (BoltState.LOCKED, BoltState.UNLOCKED):
            raise PhysicalError("the knob turns to LOCKED or UNLOCKED")
        with self._step(host_time):
            event = BoltInput.KNOB_LOCK if to is BoltState.LOCKED else BoltInput.KNOB_UNLOCK
            if self.mechanism.move(event):
                self._arm_relock(host_time)
                self._raise(EventType.MANUAL_OPERATION, to, host_time, LogSource.LOCK)

    def open_door(self, host_time: float) -> None:
        """The door swings open (refused while the bolt is thrown)."""
        self._door(DoorState.OPEN, host_time)

    def close_door(self, host_time: float) -> None:
        self._door(DoorState.CLOSED, host_time)

    def _door(self, state: DoorState, host_time: float) -> None:
        with self._step(host_time):
            if state is DoorState.OPEN and self.mechanism.bolt is BoltState.LOCKED:
                raise PhysicalError("the bolt is thrown: the door cannot open")
            if self.mechanism.door is state:
                return
            self.mechanism.door = state
            if state is DoorState.CLOSED:
                self._arm_relock(host_time)
            self._raise(EventType.DOOR, state, host_time, LogSource.LOCK)

    def jam(self, host_time: float) -> None:
        """Something blocks the bolt (a warped door, a finger on the thumb-turn)."""
        with self._step(host_time):
            before = self.mechanism.bolt
            self.mechanism.move(BoltInput.JAM)
            self._relock_at = None
            blocked = OperationOp.LOCK if before is BoltState.UNLOCKED else OperationOp.UNLOCK
            self._raise(EventType.JAM, blocked, host_time, LogSource.LOCK)

    def clear_jam(self, host_time: float, to: BoltState = BoltState.UNLOCKED) -> None:
        """A person frees the bolt and leaves it at ``to`` (retracted by default)."""
        if to not in (BoltState.LOCKED, BoltState.UNLOCKED):
            raise PhysicalError("a cleared bolt is LOCKED or UNLOCKED")
        with self._step(host_time):
            clear = BoltInput.CLEAR_LOCKED if to is BoltState.LOCKED else BoltInput.CLEAR_UNLOCKED
            self.mechanism.move(clear)
            self._log(LogCode.JAM_CLEARED, to, LogSource.LOCK, host_time)
            self._arm_relock(host_time)
            self._raise(EventType.MANUAL_OPERATION, to, host_time, LogSource.LOCK)

    def tamper(self, host_time: float) -> None:
        """The housing is opened or the door forced; latched until a factory reset."""
        with self._step(host_time):
            self.mechanism.tampered = True
            self._raise(EventType.TAMPER, 1, host_time, LogSource.LOCK)

    def set_battery(self, percent: int, host_time: float) -> None:
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise PhysicalError("battery percent is 0..100")
        with self._step(host_time):
            m = self.mechanism
            m.battery = percent
            if percent < self.config.low_battery_percent:
                if not m.low_battery_reported:
                    m.low_battery_reported = True
                    self._raise(EventType.LOW_BATTERY, percent, host_time, LogSource.LOCK)
                    return
            else:
                m.low_battery_reported = False
            self._log(LogCode.BATTERY_LEVEL, percent, LogSource.LOCK, host_time)

    def replace_battery(self, host_time: float) -> None:
        """Fresh cells: a power cycle. The RTC restarts from its reset epoch (frames are
        STALE until a TIME/SET), RAM (replay cache, registration window, relock timer)
        is lost; flash (keys, counters, log, lockout) is kept."""
        with self._step(host_time):
            self.mechanism.battery = 100
            self.mechanism.low_battery_reported = False
            self.clock.reset(host_time)
            self._power_cycle(host_time)
            self._log(LogCode.BATTERY_REPLACED, 0, LogSource.LOCK, host_time)

    def factory_reset(self, host_time: float) -> None:
        """The long press: wipe the lock key (the lock is unbound), restore the default
        settings, clear the tamper latch. The log and the factory key's replay state are
        kept (a reset must not let old registration frames back in)."""
        with self._step(host_time):
            was_bound = self.bound
            # Raised (and sealed) under the key in force before the reset; see docstring.
            self._raise(EventType.FACTORY_RESET, int(was_bound), host_time, LogSource.LOCK)
            self._negotiation.factory_reset()
            self._current = self._pending = None
            self._set_previous(None)
            self._event_counter = 0
            self._wrong_attempts = 0
            self._lockout_until = None
            self._relock_at = None
            self._close_registration(_CLOSED_RESET, host_time)
            self.config = replace(self._defaults)
            self._apply_window()
            self.mechanism.tampered = False

    def press_registration_button(self, host_time: float) -> None:
        """Open the registration window (unbound locks only; at most 15 min)."""
        with self._step(host_time):
            if self.bound:
                logger.info("lock %s: bound, registration button ignored", self.identity.device_id)
                self._log(LogCode.REGISTRATION_OPENED, 0, LogSource.LOCK, host_time)
                return
            self._registration_until = host_time + self.config.registration_window_s
            minutes = -(-int(self.config.registration_window_s) // 60)
            self._log(LogCode.REGISTRATION_OPENED, minutes, LogSource.LOCK, host_time)

    # ------------------------------------------------------------------ frames

    def _handle(self, wire: bytes, host_time: float) -> bytes:
        now = self.clock.now(host_time)
        if self._locked_out(host_time):
            self._refused(ReasonCode.LOCKED_OUT, host_time)
            return self._error(ReasonCode.LOCKED_OUT, now)
        slot, verdict = self._route(wire, now)
        if isinstance(verdict, Duplicate):
            return verdict.response
        if isinstance(verdict, Rejected):
            if verdict.reason in COUNTED:
                self._wrong_attempt(host_time)
            self._refused(verdict.reason, host_time)
            frame, body = self._readable(slot, wire, verdict.reason)
            return self._error(verdict.reason, now, frame, body)
        self._wrong_attempts = 0
        answer = self._execute(slot, verdict, host_time)
        slot.acceptor.record(wire, verdict, answer, now)
        self._dirty = True
        return answer

    def _route(self, wire: bytes, now: int) -> tuple[_KeySlot, Verdict]:
        slot = self._current if self._current is not None else self._factory
        verdict = slot.acceptor.accept(wire, now)
        if not (isinstance(verdict, Rejected) and verdict.reason in UNAUTHENTIC):
            return slot, verdict
        if self._pending is not None:
            pending_verdict = self._pending.acceptor.accept(wire, now)
            if not (
                isinstance(pending_verdict, Rejected) and pending_verdict.reason in UNAUTHENTIC
            ):
                return self._pending, pending_verdict
        others = [self._previous]
        if self._current is not None:
            others.append(self._factory.acceptor.codec)
        if any(codec is not None and self._authentic(codec, wire) for codec in others):
            return slot, Rejected(ReasonCode.WRONG_KEY, "under a key the lock no longer accepts")
        return slot, verdict

    def _authentic(self, codec: FrameCodec, wire: bytes) -> bool:
        try:
            decode_body(codec.open(wire), Direction.TO_LOCK, self.profile)
        except FrameRejected:
            return False
        return True

    def _readable(
        self, slot: _KeySlot, wire: bytes, reason: ReasonCode
    ) -> tuple[Frame | None, OpBody | KeyPartBody | None]:
        """The request, when it is authentic (so the error can echo its fields)."""
        if reason in COUNTED:
            return None, None
        try:
            frame = slot.acceptor.open(wire)
            body = decode_body(frame, Direction.TO_LOCK, self.profile)
        except FrameRejected:
            return None, None
        return frame, body if isinstance(body, OpBody | KeyPartBody) else None

    def _execute(self, slot: _KeySlot, accepted: Accepted, host_time: float) -> bytes:
        frame, body = accepted.frame, accepted.body
        now = self.clock.now(host_time)
        if frame.group == Cmd.KEY:
            return self._key_frame(slot, frame, body, host_time)
        assert isinstance(body, OpBody)  # decode_body: every non-key command is op layout
        if slot is self._pending:
            self._refused(ReasonCode.KEY_SEQUENCE, host_time)
            return self._error(ReasonCode.KEY_SEQUENCE, now, frame, body)
        # An unbound lock executes only KEY frames, and TIME frames inside its registration
        # window: a lock whose clock was reset must be set right before it can register.
        time_sync = frame.group == Cmd.TIME and self._registration_open(host_time)
        if not self.bound and not time_sync:
            self._refused(ReasonCode.NOT_BOUND, host_time)
            return self._error(ReasonCode.NOT_BOUND, now, frame, body)
        try:
            args = commands.execute(self, frame, body, host_time)
        except commands.Refusal as exc:
            self._refused(exc.reason, host_time)
            return self._error(exc.reason, self.clock.now(host_time), frame, body)
        if frame.group == Cmd.TIME and body.op == TimeOp.GET:
            # The clock just reported is what a TIME/SET must echo (acceptance rule 6).
            slot.acceptor.issue_time_challenge(read_u32(args), now)
        answer = msg.response(frame, body, self.clock.now(host_time), self.profile.layout, args)
        return self._seal(answer)

    def _key_frame(self, slot: _KeySlot, frame: Frame, body: object, host_time: float) -> bytes:
        neg = self._negotiation
        now = self.clock.now(host_time)
        was_bound, old_key = neg.state.bound, neg.state.lock_key
        try:
            if isinstance(body, KeyPartBody):
                answer = neg.on_part(
                    body,
                    KeyType(frame.type),
                    slot.key,
                    now,
                    registration_open=self._registration_open(host_time),
                )
            else:
                assert isinstance(body, OpBody)
                answer = neg.on_commit(frame, body, slot.key, now)
        except FrameRejected as exc:
            self._refused(exc.reason, host_time)
            echo = body if isinstance(body, OpBody | KeyPartBody) else None
            return self._error(exc.reason, now, frame, echo)
        self._sync_keys(was_bound, old_key, host_time)
        return answer

    def _sync_keys(self, was_bound: bool, old_key: bytes | None, host_time: float) -> None:
        """Make the acceptors follow the negotiation's state after a KEY frame."""
        st = self._negotiation.state
        if st.lock_key is not None and st.lock_key != old_key:
            if self._pending is not None and self._pending.key == st.lock_key:
                self._current = self._pending  # it accepted the COMMIT: keep its memory
            else:
                self._current = self._slot(st.lock_key)
            self._pending = None
            self._set_previous(old_key if was_bound else None)
            self._event_counter = 0
            self._close_registration(_CLOSED_BOUND, host_time)
            code = LogCode.KEY_ROTATED if was_bound else LogCode.BOUND
            self._log(code, st.key_version, LogSource.REMOTE, host_time)
            logger.info(
                "lock %s: %s, key version %d",
                self.identity.device_id,
                "key rotated" if was_bound else "bound",
                st.key_version,
            )
        elif st.phase is LockPhase.PENDING:
            if self._pending is None or self._pending.key != st.pending_key:
                self._pending = self._slot(st.pending_key)
        else:
            self._pending = None

    # ------------------------------------------------------------------ helpers used by commands

    def _seal(self, frame: Frame) -> bytes:
        slot = self._current if self._current is not None else self._factory
        return slot.acceptor.codec.seal(frame)

    def _error(
        self,
        reason: ReasonCode,
        now: int,
        frame: Frame | None = None,
        body: OpBody | KeyPartBody | None = None,
    ) -> bytes:
        op, seq = (body.op, body.seq) if isinstance(body, OpBody) else (0, 0)
        layout = self.profile.layout
        return self._seal(msg.error_response(reason, now, layout, frame, op, seq))

    def _internal_error(self, host_time: float) -> bytes:
        try:
            now = self.clock.now(host_time)
        except (ValueError, OverflowError):  # host_time itself may be what is broken (NaN, inf)
            now = 0
        return self._seal(msg.error_response(ReasonCode.INTERNAL, now, self.profile.layout))

    def _registration_open(self, host_time: float) -> bool:
        until = self._registration_until
        return not self.bound and until is not None and host_time < until

    def _locked_out(self, host_time: float) -> bool:
        return self._lockout_until is not None and host_time < self._lockout_until

    def _status_args(self, host_time: float) -> msg.StatusArgs:
        return self.status(host_time).args()

    def _apply_window(self) -> None:
        for slot in (self._factory, self._current, self._pending):
            if slot is not None:
                slot.acceptor.window_s = self.config.timestamp_window_s

    def _arm_relock(self, host_time: float) -> None:
        """(Re)start the auto-relock timer if the bolt is retracted and relock is on."""
        cfg = self.config
        if (
            self.mechanism.bolt is BoltState.UNLOCKED
            and cfg.auto_relock_s > 0
            and not cfg.passage_mode
        ):
            self._relock_at = host_time + cfg.auto_relock_s
        else:
            self._relock_at = None
        self._dirty = True

    def _log(self, code: LogCode, detail: int, source: LogSource, host_time: float) -> None:
        entry = LogEntry(self.clock.now(host_time), code, min(int(detail), 0xFF), source)
        self.log.append(entry)
        self._dirty = True

    def _raise(self, kind: EventType, detail: int, host_time: float, source: LogSource) -> None:
        """Log an event and, when bound, seal it for the listeners."""
        self._log(LogCode(kind), detail, source, host_time)
        if self._current is None:
            return
        limit = MAX_SEQ_BASE if self.profile is Profile.BASE else MAX_COUNTER
        if self._event_counter >= limit:
            if self.profile is Profile.SECURE:
                logger.warning("lock %s: event counter exhausted; rotate the key", self.identity)
                return
            self._event_counter = 0  # the base profile's 16-bit sequence wraps (0 is skipped)
        self._event_counter += 1
        frame = msg.event(
            kind,
            min(int(detail), 0xFF),
            self._event_counter,
            self.clock.now(host_time),
            self.profile.layout,
            bytes(self._status_args(host_time)),
        )
        self._outbox.append(self._current.acceptor.codec.seal(frame))

    def _refused(self, reason: ReasonCode, host_time: float) -> None:
        log_it, suppressed = self._refusals.admit(host_time)
        if suppressed:
            self._log(LogCode.REFUSALS_SUPPRESSED, suppressed, LogSource.LOCK, host_time)
        if log_it:
            self._log(LogCode.REFUSED, reason, LogSource.REMOTE, host_time)
        logger.info("lock %s: refused a frame: %s", self.identity.device_id, reason.name)

    def _wrong_attempt(self, host_time: float) -> None:
        self._wrong_attempts += 1
        self._dirty = True
        if self._wrong_attempts >= self.config.wrong_attempt_limit:
            self._lockout_until = host_time + self.config.lockout_s
            self._raise(EventType.WRONG_ATTEMPTS, self._wrong_attempts, host_time, LogSource.LOCK)
            logger.warning(
                "lock %s: %d refused frames in a row, locked out for %.0f s",
                self.identity.device_id,
                self._wrong_attempts,
                self.config.lockout_s,
            )

    def _close_registration(self, why: int, host_time: float) -> None:
        if self._registration_until is not None:
            self._registration_until = None
            self._log(LogCode.REGISTRATION_CLOSED, why, LogSource.LOCK, host_time)

    def _power_cycle(self, host_time: float) -> None:
        for slot in (self._factory, self._current, self._pending):
            if slot is not None:
                fresh = self._slot(slot.key, _rebooted(slot.acceptor.state))
                slot.acceptor = fresh.acceptor
        self._close_registration(_CLOSED_POWER, host_time)
        self._relock_at = None

    # ------------------------------------------------------------------ timers and steps

    @contextmanager
    def _step(self, host_time: float) -> Iterator[None]:
        """Every entry point: run due timers, do the work, persist, deliver events."""
        try:
            if self._boot_detail is not None:
                self._log(LogCode.STARTED, self._boot_detail, LogSource.LOCK, host_time)
                self._boot_detail = None
            self._run_timers(host_time)
            yield
        finally:
            self._finish()

    def _run_timers(self, host_time: float) -> None:
        if self._lockout_until is not None and host_time >= self._lockout_until:
            self._lockout_until = None
            self._wrong_attempts = 0
            self._log(LogCode.LOCKOUT_ENDED, 0, LogSource.TIMER, host_time)
        until = self._registration_until
        if until is not None and host_time >= until:
            self._close_registration(_CLOSED_EXPIRED, host_time)
        version = self._negotiation.state.pending_version
        if self._negotiation.expire(self.clock.now(host_time)):
            self._pending = None
            self._log(LogCode.NEGOTIATION_EXPIRED, version, LogSource.TIMER, host_time)
        if self._relock_at is not None and host_time >= self._relock_at:
            self._relock_at = None
            self._auto_relock(host_time)
        suppressed = self._refusals.roll(host_time)
        if suppressed:
            self._log(LogCode.REFUSALS_SUPPRESSED, suppressed, LogSource.LOCK, host_time)

    def _auto_relock(self, host_time: float) -> None:
        m, cfg = self.mechanism, self.config
        if m.bolt is not BoltState.UNLOCKED or cfg.passage_mode or cfg.auto_relock_s == 0:
            return
        if m.door is DoorState.OPEN:
            return  # closing the door re-arms the timer
        if m.battery >= cfg.min_actuation_percent:
            m.move(BoltInput.MOTOR_LOCK)
        # detail = the bolt afterwards: UNLOCKED tells the RAS the relock failed
        self._raise(EventType.AUTO_RELOCK, m.bolt, host_time, LogSource.TIMER)

    def _finish(self) -> None:
        if self._dirty:
            self._save()
        outbox, self._outbox = self._outbox, []
        for wire in outbox:
            for listener in list(self._listeners):
                try:
                    listener(wire)
                except Exception:  # a listener's bug must not stop the lock
                    logger.exception("lock %s: event listener failed", self.identity.device_id)

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> LockSnapshot:
        """Everything the lock keeps in flash (what :mod:`persist` writes)."""
        cfg = self.config
        return LockSnapshot(
            device_id=self.identity.device_id,
            profile=self.profile,
            key_state=self._negotiation.state,
            previous_key=self._previous_key,
            factory_acceptor=replace(self._factory.acceptor.state),
            current_acceptor=replace(self._current.acceptor.state) if self._current else None,
            pending_acceptor=replace(self._pending.acceptor.state) if self._pending else None,
            event_counter=self._event_counter,
            wrong_attempts=self._wrong_attempts,
            lockout_until=self._lockout_until,
            settings=Settings(
                cfg.auto_relock_s, cfg.timestamp_window_s, cfg.sound, cfg.passage_mode
            ),
            clock=replace(self.clock),
            mechanism=replace(self.mechanism),
            relock_at=self._relock_at,
            log=list(self.log),
        )

    def _save(self) -> None:
        self._dirty = False
        if self.state_path is None:
            return
        try:
            write_atomic(self.state_path, encode(self.snapshot()))
        except OSError as exc:
            self.persist_problem = f"cannot write {self.state_path}: {exc.strerror or exc}"
            logger.error("lock %s: %s", self.identity.device_id, self.persist_problem)  # noqa: TRY400 - expected, no traceback
            self._dirty = True  # try again at the next step
        else:
            self.persist_problem = None


def _rebooted(state: AcceptorState) -> AcceptorState:
    """After a restart the replay cache is gone: nothing at or before the newest accepted
    timestamp may be accepted again (acceptance.py: the floor is the durable part)."""
    return replace(state, floor_ts=max(state.floor_ts, state.highest_ts))
