"""A RAS stand-in for the lock tests, built only from the protocol core (the RAS side).

It registers a :class:`SimulatedLock` with :class:`RasKeyNegotiation`, seals commands
with :class:`FrameCodec` and :mod:`heslock.protocol.messages`, and reads the lock's
answers the way the RAS will: under the key it knows, in the FROM_LOCK direction.
"""

from __future__ import annotations

import secrets

from heslock.bsld import LockIdentity, SimulatedLock
from heslock.protocol import (
    Cmd,
    DeviceId,
    Direction,
    Frame,
    FrameCodec,
    OpBody,
    Profile,
    RasKeyNegotiation,
    RasPhase,
    ReasonCode,
    StatusArgs,
    decode_body,
    messages,
    next_version,
)

#: A fixed host time for the tests (June 2025); the lock's clock starts in sync with it.
T0 = 1_750_000_000.0


def make_identity(
    profile: Profile = Profile.SECURE, device: str = "F2:11:22:33:44:55"
) -> LockIdentity:
    return LockIdentity(
        DeviceId.parse(device), "Acme", "A1", profile, secrets.token_bytes(16), (1, 2, 3, 4)
    )


class Ras:
    """What the RAS knows about one lock: its key and the next sequence/counter."""

    def __init__(self, lock: SimulatedLock) -> None:
        self.lock = lock
        self.identity = lock.identity
        self.key: bytes | None = None
        self.version = 0
        self.seq = 1  # the commit used counter 1 under a fresh key

    @property
    def profile(self) -> Profile:
        return self.identity.profile

    def negotiate(self, now: float) -> RasKeyNegotiation:
        """Stage a and b against the lock; returns the finished negotiation."""
        old = self.key if self.key is not None else self.identity.factory_key
        version = next_version(self.version)
        neg = RasKeyNegotiation.start(self.identity.device_id, self.profile, old, version, int(now))
        phases = [
            neg.receive(self.lock.handle_frame(wire, now), int(now))
            for wire in neg.stage_a_frames(int(now))
        ]
        assert phases == [RasPhase.PART1_ACKED, RasPhase.PROVEN]
        answer = self.lock.handle_frame(neg.commit_frame(int(now)), now)
        assert neg.receive(answer, int(now)) is RasPhase.COMMITTED
        self.key, self.version, self.seq = neg.record.new_key, version, 1
        return neg

    def codec(self, key: bytes | None = None) -> FrameCodec:
        use = key if key is not None else self.key
        assert use is not None
        return FrameCodec(use, self.profile)

    def command(
        self,
        group: Cmd,
        type_: int,
        op: int,
        ts: float,
        args: bytes = b"",
        *,
        key: bytes | None = None,
        seq: int | None = None,
    ) -> bytes:
        """A sealed command; the sequence/counter goes up by one per frame."""
        if seq is None:
            self.seq += 1
            seq = self.seq & 0xFFFF if self.profile is Profile.BASE else self.seq
        frame = messages.command(group, type_, op, seq, int(ts), self.profile.layout, args)
        return self.codec(key).seal(frame)

    def open(self, wire: bytes, key: bytes | None = None) -> tuple[Frame, OpBody]:
        frame = self.codec(key).open(wire)
        body = decode_body(frame, Direction.FROM_LOCK, self.profile)
        assert isinstance(body, OpBody)
        return frame, body

    def reason(self, wire: bytes, key: bytes | None = None) -> ReasonCode | None:
        """The reason of an ERROR answer, None for any other answer."""
        frame, _ = self.open(wire, key)
        return ReasonCode(frame.type) if frame.group == Cmd.ERROR else None

    def status(self, wire: bytes) -> StatusArgs:
        frame, body = self.open(wire)
        assert frame.group != Cmd.ERROR, ReasonCode(frame.type).name
        return StatusArgs.from_bytes(body.args)
