"""Two-stage key negotiation (ISO/IEC 14543-5-104 clause 8 a/b), both sides, as state machines.

Theory of operation
-------------------
The RAS and the lock share the lock's *factory key* (imported from the maker into the
DDMS). Registration replaces it with a fresh *lock key* that only the RAS and the lock
ever know; relays (a phone, a gateway) carry opaque frames and learn nothing.

Stage a. The RAS draws a fresh key K' and a version v, and sends two frames under the
current key K (factory key, or the lock key when rotating)::

    RAS -> lock   KEY/PART_1  [v, K'[0:8]]            under K
    lock -> RAS   KEY/PART_1 ack [v, device id, 1]     under K
    RAS -> lock   KEY/PART_2  [v, K'[8:16]]           under K
    lock -> RAS   KEY/PART_2 ack [v, device id, 2]     under K'   <- proof of possession

The proof is a frame only a holder of K' can produce: it decrypts under K' (and, in the
secure profile, carries a valid tag) and names the device and the version.

Stage b. The RAS records the binding, then::

    RAS -> lock   KEY/COMMIT [op 1, counter 1, args v] under K'
    lock -> RAS   KEY/COMMIT response                  under K'

From the commit on, the lock refuses K; a factory key is accepted again only after a
physical factory reset (and only inside a registration window). Rotation is the same
exchange under the current lock key.

Every step is idempotent: a repeated frame gets the same answer, a repeated PART_1 with a
new version starts over, an unfinished exchange expires after ``NEGOTIATION_TIMEOUT_S``
and rolls back to the old key, and a COMMIT repeated after it succeeded is answered
again under the new key.

Lock side transitions (``LockPhase`` x incoming frame; anything absent -> KEY_SEQUENCE)::

    IDLE     + PART_1(v)             -> PART1     ack under K
    PART1    + PART_1(v')            -> PART1     (same v: same ack; new v: start over)
    PART1    + PART_2(v)             -> PENDING   ack under K'
    PENDING  + PART_2(v, same bytes) -> PENDING   same ack
    PENDING  + PART_1(v')            -> PART1     start over
    PENDING  + COMMIT(v) under K'    -> IDLE      bound to K'
    IDLE     + COMMIT(v) under K     -> IDLE      (bound, v current: ack again)
    PART1/PENDING + timeout          -> IDLE      K' forgotten

RAS side transitions (``RasPhase`` x verified lock frame)::

    STARTED      + PART_1 ack -> PART1_ACKED
    STARTED      + proof      -> PROVEN       (the part-1 ack may be lost)
    PART1_ACKED  + PART_1 ack -> PART1_ACKED
    PART1_ACKED  + proof      -> PROVEN
    PROVEN       + proof      -> PROVEN
    PROVEN       + commit ack -> COMMITTED
    COMMITTED    + commit ack -> COMMITTED
    STARTED/PART1_ACKED + timeout -> EXPIRED

PROVEN never expires. Once the lock has proved the new key, a COMMIT may have reached it
even if its answer did not, so the RAS must never drop the new key on its own: it retries
the commit (each retry with the next counter, so a lock that already committed accepts it
as fresh and answers again) until the answer arrives (COMMITTED), or until the lock
answers under the *old* key (``LockRefused``): it rolled back after its own timeout, and
the caller starts over. The acks carry no freshness of their own to check: each is bound
to this exchange by its content (version and device id, and the proof and commit answer
by the fresh key), which is why a lock whose clock is wrong can still be registered.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from enum import Enum
from typing import Final

from heslock.protocol.acceptance import Direction, decode_body
from heslock.protocol.codes import RESPONSE_BIT, Cmd, KeyType, ReasonCode
from heslock.protocol.crypto import KEY_SIZE, check_key
from heslock.protocol.errors import FrameRejected, NegotiationError, ProtocolError
from heslock.protocol.frame import Frame, KeyAckBody, KeyPartBody, OpBody
from heslock.protocol.ids import DeviceId
from heslock.protocol.messages import COMMIT_OP, key_ack, key_commit, key_part, response
from heslock.protocol.profile import FrameCodec, Profile

#: An unfinished negotiation is rolled back after this long (both sides).
NEGOTIATION_TIMEOUT_S: Final = 120
#: The first counter used under a fresh key (the COMMIT); 0 is never sent.
FIRST_COUNTER: Final = 1


def next_version(current: int) -> int:
    """Key versions run 1..255 and wrap, never 0."""
    return current % 255 + 1


# --------------------------------------------------------------------------- lock side


class LockPhase(Enum):
    IDLE = "idle"
    PART1 = "part1"
    PENDING = "pending"


class LockKeyEvent(Enum):
    PART_1 = "part1"
    PART_2 = "part2"
    COMMIT = "commit"
    TIMEOUT = "timeout"


_LOCK_TABLE: Final[dict[tuple[LockPhase, LockKeyEvent], LockPhase]] = {
    (LockPhase.IDLE, LockKeyEvent.PART_1): LockPhase.PART1,
    (LockPhase.PART1, LockKeyEvent.PART_1): LockPhase.PART1,
    (LockPhase.PART1, LockKeyEvent.PART_2): LockPhase.PENDING,
    (LockPhase.PENDING, LockKeyEvent.PART_2): LockPhase.PENDING,
    (LockPhase.PENDING, LockKeyEvent.PART_1): LockPhase.PART1,
    (LockPhase.PENDING, LockKeyEvent.COMMIT): LockPhase.IDLE,
    (LockPhase.IDLE, LockKeyEvent.COMMIT): LockPhase.IDLE,
    (LockPhase.PART1, LockKeyEvent.TIMEOUT): LockPhase.IDLE,
    (LockPhase.PENDING, LockKeyEvent.TIMEOUT): LockPhase.IDLE,
}


@dataclass(frozen=True, slots=True)
class LockKeyState:
    """The lock's durable key state. ``lock_key is None`` means unbound."""

    factory_key: bytes
    lock_key: bytes | None = None
    key_version: int = 0
    phase: LockPhase = LockPhase.IDLE
    pending_version: int = 0
    pending_key: bytes = b""  #: 8 bytes in PART1, 16 in PENDING
    phase_since: int = 0

    @property
    def bound(self) -> bool:
        return self.lock_key is not None

    @property
    def current_key(self) -> bytes:
        """The key commands must be under: the lock key, or the factory key when unbound."""
        return self.lock_key if self.lock_key is not None else self.factory_key


class LockKeyNegotiation:
    """The lock's side. Feed it *accepted* KEY frames with the key they arrived under."""

    def __init__(self, device_id: DeviceId, profile: Profile, state: LockKeyState) -> None:
        self.device_id = device_id
        self.profile = profile
        self.state = state

    @classmethod
    def unbound(
        cls, device_id: DeviceId, profile: Profile, factory_key: bytes
    ) -> LockKeyNegotiation:
        return cls(device_id, profile, LockKeyState(check_key(factory_key)))

    def _move(self, event: LockKeyEvent) -> LockPhase:
        target = _LOCK_TABLE.get((self.state.phase, event))
        if target is None:
            raise FrameRejected(
                ReasonCode.KEY_SEQUENCE,
                f"{event.value} not allowed in phase {self.state.phase.value}",
            )
        return target

    def expire(self, now: int) -> bool:
        """Roll back an unfinished exchange older than the timeout. True if it did."""
        st = self.state
        if st.phase is LockPhase.IDLE or now - st.phase_since < NEGOTIATION_TIMEOUT_S:
            return False
        self._move(LockKeyEvent.TIMEOUT)
        self.state = replace(st, phase=LockPhase.IDLE, pending_version=0, pending_key=b"")
        return True

    def factory_reset(self) -> None:
        """The physical long press: forget the lock key and any exchange."""
        self.state = LockKeyState(self.state.factory_key)

    def on_part(
        self,
        body: KeyPartBody,
        part: KeyType,
        under_key: bytes,
        now: int,
        *,
        registration_open: bool,
    ) -> bytes:
        """Handle KEY/PART_n accepted under ``under_key``; return the sealed ack."""
        st = self.state
        self.expire(now)
        st = self.state
        if under_key != st.current_key:
            raise FrameRejected(ReasonCode.WRONG_KEY, "key parts must come under the current key")
        if not st.bound and not registration_open:
            raise FrameRejected(ReasonCode.REGISTRATION_CLOSED)
        if part is KeyType.PART_1:
            restart = not (
                st.phase is LockPhase.PART1
                and st.pending_version == body.version
                and st.pending_key == body.key_bytes
            )
            self._move(LockKeyEvent.PART_1)
            self.state = replace(
                st,
                phase=LockPhase.PART1,
                pending_version=body.version,
                pending_key=body.key_bytes,
                phase_since=now if restart else st.phase_since,
            )
            ack = key_ack(KeyType.PART_1, body.version, bytes(self.device_id), now)
            return FrameCodec(under_key, self.profile).seal(ack)
        # PART_2
        target = self._move(LockKeyEvent.PART_2)
        if body.version != st.pending_version:
            raise FrameRejected(ReasonCode.KEY_SEQUENCE, "part 2 version differs from part 1")
        if target is LockPhase.PENDING and st.phase is LockPhase.PENDING:
            if st.pending_key[8:] != body.key_bytes:
                raise FrameRejected(ReasonCode.KEY_SEQUENCE, "a different part 2 for this version")
            new_key = st.pending_key
        else:
            new_key = st.pending_key + body.key_bytes
            if new_key in (st.factory_key, st.lock_key) or new_key == bytes(KEY_SIZE):
                raise FrameRejected(ReasonCode.BAD_VALUE, "the new key must be fresh")
            self.state = replace(st, phase=LockPhase.PENDING, pending_key=new_key)
        ack = key_ack(KeyType.PART_2, body.version, bytes(self.device_id), now)
        return FrameCodec(new_key, self.profile).seal(ack)

    def on_commit(self, frame: Frame, body: OpBody, under_key: bytes, now: int) -> bytes:
        """Handle KEY/COMMIT accepted under ``under_key``; return the sealed response."""
        self.expire(now)
        st = self.state
        version = body.args[0]
        self._move(LockKeyEvent.COMMIT)
        if st.phase is LockPhase.PENDING:
            if under_key != st.pending_key or version != st.pending_version:
                raise FrameRejected(ReasonCode.KEY_SEQUENCE, "commit must match the pending key")
            self.state = LockKeyState(st.factory_key, st.pending_key, version)
        elif not (st.bound and under_key == st.lock_key and version == st.key_version):
            raise FrameRejected(ReasonCode.KEY_SEQUENCE, "nothing to commit")
        answer = response(frame, body, now, self.profile.layout, bytes((version,)))
        return FrameCodec(under_key, self.profile).seal(answer)


# --------------------------------------------------------------------------- RAS side


class RasPhase(Enum):
    STARTED = "started"
    PART1_ACKED = "part1-acked"
    PROVEN = "proven"
    COMMITTED = "committed"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self in (RasPhase.COMMITTED, RasPhase.EXPIRED)


class RasKeyEvent(Enum):
    PART1_ACK = "part1-ack"
    PROOF = "proof"
    COMMIT_ACK = "commit-ack"


_RAS_TABLE: Final[dict[tuple[RasPhase, RasKeyEvent], RasPhase]] = {
    (RasPhase.STARTED, RasKeyEvent.PART1_ACK): RasPhase.PART1_ACKED,
    (RasPhase.STARTED, RasKeyEvent.PROOF): RasPhase.PROVEN,
    (RasPhase.PART1_ACKED, RasKeyEvent.PART1_ACK): RasPhase.PART1_ACKED,
    (RasPhase.PART1_ACKED, RasKeyEvent.PROOF): RasPhase.PROVEN,
    (RasPhase.PROVEN, RasKeyEvent.PROOF): RasPhase.PROVEN,
    (RasPhase.PROVEN, RasKeyEvent.COMMIT_ACK): RasPhase.COMMITTED,
    (RasPhase.COMMITTED, RasKeyEvent.COMMIT_ACK): RasPhase.COMMITTED,
}


class LockRefused(ProtocolError):
    """The lock answered a negotiation frame with an ERROR frame (``reason``)."""


@dataclass(frozen=True, slots=True)
class RasNegotiationRecord:
    """Everything the RAS keeps about one negotiation (its store encrypts the keys)."""

    device_id: str
    profile: Profile
    old_key: bytes
    new_key: bytes
    version: int
    phase: RasPhase
    started_at: int
    expires_at: int
    commit_counter: int = 0  #: counter of the last COMMIT sent (0: none yet)

    @property
    def next_counter(self) -> int:
        """The first counter free for commands under the new key after the commit."""
        return max(self.commit_counter, FIRST_COUNTER) + 1


class RasKeyNegotiation:
    """The RAS's side: builds the frames and verifies the lock's answers."""

    def __init__(self, record: RasNegotiationRecord) -> None:
        self.record = record
        self._old = FrameCodec(record.old_key, record.profile)
        self._new = FrameCodec(record.new_key, record.profile)

    @classmethod
    def start(
        cls,
        device_id: DeviceId,
        profile: Profile,
        old_key: bytes,
        version: int,
        now: int,
        *,
        new_key: bytes | None = None,
        timeout_s: int = NEGOTIATION_TIMEOUT_S,
    ) -> RasKeyNegotiation:
        """Begin a registration (old key = factory key) or a rotation (old = lock key)."""
        key = check_key(new_key) if new_key is not None else os.urandom(KEY_SIZE)
        if key == check_key(old_key):
            raise NegotiationError("the new key must differ from the old one")
        if not 1 <= version <= 255:
            raise NegotiationError("key version is 1..255")
        return cls(
            RasNegotiationRecord(
                str(device_id),
                profile,
                old_key,
                key,
                version,
                RasPhase.STARTED,
                now,
                now + timeout_s,
            )
        )

    @property
    def phase(self) -> RasPhase:
        return self.record.phase

    def check_expiry(self, now: int) -> RasPhase:
        """Expire an exchange that never got the lock's proof (see the module docstring)."""
        stage_a = self.phase in (RasPhase.STARTED, RasPhase.PART1_ACKED)
        if stage_a and now >= self.record.expires_at:
            self.record = replace(self.record, phase=RasPhase.EXPIRED)
        return self.phase

    def _require_live(self, now: int) -> None:
        if self.check_expiry(now) is RasPhase.EXPIRED:
            raise NegotiationError("the negotiation expired; start again")

    def stage_a_frames(self, now: int) -> tuple[bytes, bytes]:
        """The two key-part frames, sealed under the old key, stamped ``now``."""
        self._require_live(now)
        if self.phase.final or self.phase is RasPhase.PROVEN:
            raise NegotiationError(f"stage a is over (phase {self.phase.value})")
        r = self.record
        p1 = key_part(KeyType.PART_1, r.version, r.new_key[:8], now)
        p2 = key_part(KeyType.PART_2, r.version, r.new_key[8:], now)
        return self._old.seal(p1), self._old.seal(p2)

    def commit_frame(self, now: int) -> bytes:
        """Stage b: a COMMIT frame under the new key. Each call uses the next counter
        (1 first), so a retry is never refused as a replay by a lock that committed."""
        self._require_live(now)
        if self.phase not in (RasPhase.PROVEN, RasPhase.COMMITTED):
            raise NegotiationError("commit needs the lock's proof first")
        counter = self.record.commit_counter + 1
        self.record = replace(self.record, commit_counter=counter)
        frame = key_commit(self.record.version, counter, now, self.record.profile.layout)
        return self._new.seal(frame)

    def receive(self, wire: bytes, now: int) -> RasPhase:
        """Verify one answer from the lock and advance. Unreadable -> ``FrameRejected``;
        an ERROR frame -> ``LockRefused``; out of order -> ``NegotiationError``."""
        self._require_live(now)
        frame, body, under_new = self._open(wire)
        if frame.group == Cmd.ERROR:
            raise LockRefused(
                ReasonCode(frame.type), f"lock refused: {ReasonCode(frame.type).name}"
            )
        event = self._classify(frame, body, under_new)
        target = _RAS_TABLE.get((self.phase, event))
        if target is None:
            raise NegotiationError(f"{event.value} not expected in phase {self.phase.value}")
        self.record = replace(self.record, phase=target)
        return target

    def _open(self, wire: bytes) -> tuple[Frame, object, bool]:
        """Open under the new key, else the old one.

        A frame is read under the first key it fully decodes under (rules 1-4). In the base
        profile a frame sealed under one key passes the 8-bit check under the other about
        once in 256, so a rule-4 failure alone does not decide the key: the other key is
        tried too. If no key decodes it, a frame that *opened* under a key but broke rule 4
        is refused with that rule-4 reason (the most specific one), else with the new key's.
        """
        opened: FrameRejected | None = None
        unreadable: FrameRejected | None = None
        for codec, under_new in ((self._new, True), (self._old, False)):
            try:
                frame = codec.open(wire)
            except FrameRejected as exc:
                unreadable = unreadable or exc
                continue
            try:
                body = decode_body(frame, Direction.FROM_LOCK, self.record.profile)
            except FrameRejected as exc:
                opened = opened or exc
                continue
            return frame, body, under_new
        failure = opened or unreadable
        assert failure is not None
        raise failure

    def _classify(self, frame: Frame, body: object, under_new: bool) -> RasKeyEvent:
        r = self.record
        if frame.cmd != Cmd.KEY | RESPONSE_BIT:
            raise FrameRejected(ReasonCode.UNKNOWN_COMMAND, "not a key-management answer")
        if isinstance(body, KeyAckBody):
            if body.version != r.version or body.device_id != bytes(DeviceId(r.device_id)):
                raise FrameRejected(ReasonCode.BAD_VALUE, "ack names another device or version")
            if body.part != frame.type:
                raise FrameRejected(ReasonCode.BAD_VALUE, "ack part does not match its type")
            if frame.type == KeyType.PART_1 and not under_new:
                return RasKeyEvent.PART1_ACK
            if frame.type == KeyType.PART_2 and under_new:
                return RasKeyEvent.PROOF
            raise FrameRejected(ReasonCode.WRONG_KEY, "ack under the wrong key")
        if (
            isinstance(body, OpBody)
            and frame.type == KeyType.COMMIT
            and under_new
            and body.op == COMMIT_OP
            and FIRST_COUNTER <= body.seq <= r.commit_counter
            and body.args[0] == r.version
        ):
            return RasKeyEvent.COMMIT_ACK
        raise FrameRejected(ReasonCode.BAD_VALUE, "not a valid commit answer")
