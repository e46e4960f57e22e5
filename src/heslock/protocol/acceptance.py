"""Acceptance rules for frames (docs/protocol.md, "Acceptance"), as pure code.

A receiver keeps one :class:`FrameAcceptor` per key it holds. For every frame that arrives
it applies, in this order, and stops at the first refusal:

1. length (16 base / 20 secure)                        -> BAD_LENGTH
2. tag, constant-time (secure profile only)            -> BAD_TAG
3. decrypt, then the XOR check byte                    -> BAD_CHECK
4. known cmd/type for this direction, op and reserved  -> UNKNOWN_COMMAND / BAD_VALUE
5. duplicate of a frame accepted before: within the retry period the first answer is
   given again (:class:`Duplicate`, nothing is executed twice); after it -> REPLAY
6. timestamp within +/- window of the receiver's clock -> STALE, with two exceptions
   that are how a drifted (or reset) clock is ever corrected:
   - TIME/GET is read-only and accepted whatever its timestamp; the lock's answer
     carries its clock, which becomes the acceptor's *time challenge*
     (:meth:`FrameAcceptor.issue_time_challenge`, single use, ``TIME_CHALLENGE_TTL_S``);
   - TIME/SET is accepted whatever its timestamp *only* if its args echo that challenge
     (uint32 BE), and refused (STALE) without it, inside the window or not. A TIME/SET
     held back by a relay therefore never moves the clock: its challenge is spent or
     expired, which defeats "hold a SET and an UNLOCK, deliver both days later".
7. not older than the replay floor (see below)         -> REPLAY
8. secure profile: the 32-bit counter is above the highest accepted, or inside the
   reordering window and not seen (RFC 4303 section 3.4.3 sliding window) -> COUNTER

Memory is bounded like a real lock's: the replay cache holds at most ``cache_size``
accepted frames; when one must be dropped, its timestamp becomes the *replay floor* and
nothing stamped at or before it is accepted again. The floor and the counter window are
the durable state (:class:`AcceptorState`). The cache itself is not: so an acceptor built
from a stored state raises the floor to the newest timestamp it had accepted, and a
restarted receiver cannot be replayed into (at the price of refusing new frames stamped
in that same second, which a sender re-stamps).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from heslock.protocol.codes import (
    COMMAND_TABLE,
    RESPONSE_BIT,
    Cmd,
    EventType,
    ReasonCode,
    TimeOp,
    TimeType,
    is_key_layout,
)
from heslock.protocol.errors import FrameRejected
from heslock.protocol.frame import Frame, KeyAckBody, KeyPartBody, OpBody
from heslock.protocol.profile import FrameCodec, Profile

#: ARCHITECTURE.md: +/- 30 s of the lock's clock by default.
DEFAULT_WINDOW_S: Final = 30
#: A retried write (same bytes) this soon after the first gets the first answer again.
DEFAULT_RETRY_S: Final = 10
#: Accepted frames remembered for duplicate/replay detection (a real lock's RAM budget).
DEFAULT_CACHE_SIZE: Final = 128
#: Counters this far below the highest accepted may still arrive (reordering on relays).
DEFAULT_COUNTER_WINDOW: Final = 32
#: A TIME/SET must echo a TIME/GET answer at most this old (receiver's clock): one
#: relay round trip plus RAS processing, with room for a slow BLE link.
TIME_CHALLENGE_TTL_S: Final = 60


class Direction(Enum):
    TO_LOCK = "to-lock"  #: commands: RESPONSE_BIT must be clear
    FROM_LOCK = "from-lock"  #: responses, events, errors: RESPONSE_BIT must be set


@dataclass(frozen=True, slots=True)
class Accepted:
    """The frame passed every rule. ``body`` is the decoded value."""

    frame: Frame
    body: OpBody | KeyPartBody | KeyAckBody


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A retry of an accepted frame: send ``response`` again, execute nothing."""

    response: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: ReasonCode
    detail: str = ""


Verdict = Accepted | Duplicate | Rejected


@dataclass(slots=True)
class AcceptorState:
    """What must survive a restart (persisted by the lock, or by the RAS per lock)."""

    floor_ts: int = 0  #: nothing stamped at or before this is accepted
    highest_ts: int = (
        0  #: highest timestamp accepted (TIME frames, exempt from the window, excluded)
    )
    counter_high: int = 0  #: highest counter accepted (secure profile)
    counter_bitmap: int = 0  #: bit i set = counter_high - i was accepted


class CounterWindow:
    """RFC 4303 sliding anti-replay window over 32-bit counters."""

    __slots__ = ("size", "state")

    def __init__(self, state: AcceptorState, size: int = DEFAULT_COUNTER_WINDOW) -> None:
        if not 1 <= size <= 64:
            raise ValueError("counter window is 1..64")
        self.state = state
        self.size = size

    def allows(self, counter: int) -> bool:
        high = self.state.counter_high
        if counter == 0:
            return False  # counter 0 is never sent: the first frame under a key is 1
        if counter > high:
            return True
        offset = high - counter
        return offset < self.size and not (self.state.counter_bitmap >> offset) & 1

    def commit(self, counter: int) -> None:
        st = self.state
        if counter > st.counter_high:
            shift = counter - st.counter_high
            st.counter_bitmap = ((st.counter_bitmap << shift) | 1) & ((1 << self.size) - 1)
            st.counter_high = counter
        else:
            st.counter_bitmap |= 1 << (st.counter_high - counter)


@dataclass(slots=True)
class _Seen:
    timestamp: int
    accepted_at: int
    response: bytes | None


@dataclass(slots=True)
class FrameAcceptor:
    """Applies the acceptance rules to frames under one key (see module docstring)."""

    codec: FrameCodec
    direction: Direction = Direction.TO_LOCK
    window_s: int = DEFAULT_WINDOW_S
    retry_s: int = DEFAULT_RETRY_S
    cache_size: int = DEFAULT_CACHE_SIZE
    state: AcceptorState = field(default_factory=AcceptorState)
    counter_window: int = DEFAULT_COUNTER_WINDOW
    _seen: OrderedDict[bytes, _Seen] = field(default_factory=OrderedDict)
    _challenge: tuple[int, int] | None = None  #: (clock value, issued at) of the last TIME/GET

    def __post_init__(self) -> None:
        # The replay cache starts empty, so nothing it would have caught may pass: see
        # the module docstring. A no-op for a fresh state.
        self.state.floor_ts = max(self.state.floor_ts, self.state.highest_ts)

    @classmethod
    def for_key(cls, key: bytes, profile: Profile, **kwargs: object) -> FrameAcceptor:
        return cls(FrameCodec(key, profile), **kwargs)  # type: ignore[arg-type]

    @property
    def profile(self) -> Profile:
        return self.codec.profile

    def open(self, wire: bytes) -> Frame:
        """Rules 1-3. Raises ``FrameRejected``. Used alone to test which key a frame is under."""
        return self.codec.open(wire)

    def accept(self, wire: bytes, now: int) -> Verdict:
        """Apply every rule to ``wire`` at receiver time ``now`` (Unix seconds)."""
        try:
            frame = self.open(wire)
        except FrameRejected as exc:
            return Rejected(exc.reason, str(exc))
        return self.admit(wire, frame, now)

    def admit(self, wire: bytes, frame: Frame, now: int) -> Verdict:
        """Rules 4-8 for a frame that :meth:`open` decoded."""
        try:
            body = decode_body(frame, self.direction, self.profile)
        except FrameRejected as exc:
            return Rejected(exc.reason, str(exc))
        seen = self._seen.get(bytes(wire))
        if seen is not None:
            if seen.response is not None and 0 <= now - seen.accepted_at <= self.retry_s:
                return Duplicate(seen.response)
            return Rejected(ReasonCode.REPLAY, "frame was accepted before")
        st = self.state
        time_op = _time_op(frame)
        if time_op == TimeOp.SET:
            if not self._challenge_matches(body, now):
                return Rejected(
                    ReasonCode.STALE, "TIME/SET must echo the clock of a fresh TIME/GET answer"
                )
        elif time_op != TimeOp.GET and abs(frame.timestamp - now) > self.window_s:
            return Rejected(
                ReasonCode.STALE, f"timestamp {frame.timestamp} outside +/-{self.window_s}s"
            )
        if frame.timestamp <= st.floor_ts:
            return Rejected(ReasonCode.REPLAY, "timestamp at or before the replay floor")
        if self._counted(frame, body) and not self._counter().allows(body.seq):  # type: ignore[union-attr]
            return Rejected(ReasonCode.COUNTER, "counter at or below what was accepted")
        return Accepted(frame, body)

    def record(self, wire: bytes, accepted: Accepted, response: bytes | None, now: int) -> None:
        """Commit an accepted frame (after executing it) with the answer that was sent."""
        frame, body = accepted.frame, accepted.body
        st = self.state
        stamp = frame.timestamp
        time_op = _time_op(frame)
        if time_op is None:
            st.highest_ts = max(st.highest_ts, stamp)
        else:
            # TIME frames are exempt from the window, so their stamps may be far from the
            # receiver's clock: they must never move the replay horizon (highest_ts, and
            # through eviction the floor), or one GET stamped a year ahead would block the
            # lock for a year. A replayed GET is harmless (read-only); a replayed SET has
            # spent its challenge.
            stamp = min(stamp, st.highest_ts)
            if time_op == TimeOp.SET:
                self._challenge = None  # single use
        if self._counted(frame, body):
            self._counter().commit(body.seq)  # type: ignore[union-attr]
        self._seen[bytes(wire)] = _Seen(stamp, now, response)
        self._evict(now)

    def issue_time_challenge(self, clock: int, now: int) -> None:
        """The receiver answered a TIME/GET with ``clock``: a TIME/SET must echo it."""
        self._challenge = (clock, now)

    def _challenge_matches(self, body: object, now: int) -> bool:
        if self._challenge is None or not isinstance(body, OpBody):
            return False
        clock, issued = self._challenge
        fresh = 0 <= now - issued <= TIME_CHALLENGE_TTL_S
        return fresh and int.from_bytes(body.args, "big") == clock

    def _counted(self, frame: Frame, body: object) -> bool:
        """Does the counter window govern this frame? Secure profile, op layout, and
        (from the lock) only events: responses echo the request's counter instead."""
        if self.profile is not Profile.SECURE or not isinstance(body, OpBody):
            return False
        return self.direction is Direction.TO_LOCK or frame.group == Cmd.EVENT

    def _counter(self) -> CounterWindow:
        return CounterWindow(self.state, self.counter_window)

    def _evict(self, now: int) -> None:
        horizon = now - self.window_s - self.retry_s
        while self._seen:
            oldest_wire, oldest = next(iter(self._seen.items()))
            if len(self._seen) <= self.cache_size and oldest.accepted_at >= horizon:
                break
            del self._seen[oldest_wire]
            # Forgetting a frame must not let it back in: raise the floor over it.
            self.state.floor_ts = max(self.state.floor_ts, oldest.timestamp)


_TIME: Final = int(Cmd.TIME)
_CLOCK: Final = int(TimeType.CLOCK)


def _time_op(frame: Frame) -> int | None:
    """The op of a TIME/CLOCK command (either direction), else None."""
    if frame.cmd == _TIME and frame.type == _CLOCK:
        return frame.value[0]
    return None


class _Kind(Enum):
    KEY_PART = "key-part"
    KEY_ACK = "key-ack"
    OP = "op"
    LOCK_ORIGINATED = "lock-originated"


def _dispatch_table() -> dict[tuple[int, int], tuple[_Kind, frozenset[int] | None]]:
    """(cmd byte, type) -> (value layout, allowed op codes or None) for every known frame,
    both directions. Keys are plain ints: IntEnum hashing costs more than the AES itself."""
    table: dict[tuple[int, int], tuple[_Kind, frozenset[int] | None]] = {}
    for (group, type_), ops in COMMAND_TABLE.items():
        key_layout = is_key_layout(group, type_)
        table[int(group), int(type_)] = (_Kind.KEY_PART if key_layout else _Kind.OP, ops)
        answer = (_Kind.KEY_ACK, None) if key_layout else (_Kind.OP, ops)
        table[int(group) | RESPONSE_BIT, int(type_)] = answer
    for kind in EventType:
        table[int(Cmd.EVENT) | RESPONSE_BIT, int(kind)] = (_Kind.LOCK_ORIGINATED, None)
    for reason in ReasonCode:
        table[int(Cmd.ERROR) | RESPONSE_BIT, int(reason)] = (_Kind.LOCK_ORIGINATED, None)
    return table


_DISPATCH: Final = _dispatch_table()
_LAYOUTS: Final = {profile: profile.layout for profile in Profile}


def decode_body(
    frame: Frame, direction: Direction, profile: Profile
) -> OpBody | KeyPartBody | KeyAckBody:
    """Rule 4: is (cmd, type, op) known for this direction? Decode the value."""
    cmd = frame.cmd
    if (direction is Direction.TO_LOCK) == bool(cmd & RESPONSE_BIT):
        raise FrameRejected(ReasonCode.UNKNOWN_COMMAND, "wrong direction for this frame")
    entry = _DISPATCH.get((cmd, frame.type))
    if entry is None:
        raise FrameRejected(
            ReasonCode.UNKNOWN_COMMAND, f"cmd 0x{frame.cmd:02x} type 0x{frame.type:02x}"
        )
    kind, ops = entry
    if kind is _Kind.KEY_PART:
        return KeyPartBody.unpack(frame.value)
    if kind is _Kind.KEY_ACK:
        return KeyAckBody.unpack(frame.value)
    body = OpBody.unpack(frame.value, _LAYOUTS[profile])
    if ops is not None and body.op not in ops:
        raise FrameRejected(
            ReasonCode.UNKNOWN_COMMAND,
            f"cmd 0x{frame.cmd:02x} type 0x{frame.type:02x} op 0x{body.op:02x}",
        )
    return body


__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_COUNTER_WINDOW",
    "DEFAULT_RETRY_S",
    "DEFAULT_WINDOW_S",
    "RESPONSE_BIT",
    "TIME_CHALLENGE_TTL_S",
    "Accepted",
    "AcceptorState",
    "CounterWindow",
    "Direction",
    "Duplicate",
    "FrameAcceptor",
    "Rejected",
    "Verdict",
    "decode_body",
]
