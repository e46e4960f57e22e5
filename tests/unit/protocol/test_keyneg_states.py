"""Key negotiation under any sequence of frames (Hypothesis stateful testing).

A RAS side and a lock side talk through a network that loses, repeats, reorders and
forges frames, while time advances (so both sides expire), the RAS starts over with new
versions or rotates after a commit, and the lock may be factory-reset. Every step must
either advance along the transition tables documented in heslock.protocol.keyneg or
refuse with FrameRejected (lock side) / FrameRejected, NegotiationError, LockRefused
(RAS side). Any other exception fails the test, and so does a transition that is not in
the documented tables (restated here, independently of the module's private tables).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from heslock.protocol import (
    DeviceId,
    Direction,
    FrameCodec,
    FrameRejected,
    KeyPartBody,
    KeyType,
    LockKeyNegotiation,
    LockPhase,
    LockRefused,
    NegotiationError,
    OpBody,
    Profile,
    RasKeyNegotiation,
    RasPhase,
    decode_body,
    next_version,
)
from heslock.protocol import messages as m

DEVICE = DeviceId.parse("F0:11:22:33:44:55")
FACTORY = bytes.fromhex("00112233445566778899aabbccddeeff")
T0 = 1_700_000_000

#: The lock side's table from the keyneg module docstring (before, after) per frame kind.
LOCK_STEPS = {
    KeyType.PART_1: {
        (LockPhase.IDLE, LockPhase.PART1),
        (LockPhase.PART1, LockPhase.PART1),
        (LockPhase.PENDING, LockPhase.PART1),
    },
    KeyType.PART_2: {(LockPhase.PART1, LockPhase.PENDING), (LockPhase.PENDING, LockPhase.PENDING)},
    KeyType.COMMIT: {(LockPhase.PENDING, LockPhase.IDLE), (LockPhase.IDLE, LockPhase.IDLE)},
}
#: The RAS side's table from the same docstring, as (before, after) pairs.
RAS_STEPS = {
    (RasPhase.STARTED, RasPhase.PART1_ACKED),
    (RasPhase.STARTED, RasPhase.PROVEN),
    (RasPhase.PART1_ACKED, RasPhase.PART1_ACKED),
    (RasPhase.PART1_ACKED, RasPhase.PROVEN),
    (RasPhase.PROVEN, RasPhase.PROVEN),
    (RasPhase.PROVEN, RasPhase.COMMITTED),
    (RasPhase.COMMITTED, RasPhase.COMMITTED),
}

keys = st.binary(min_size=16, max_size=16).filter(lambda k: k not in (FACTORY, bytes(16)))


class KeyNegotiationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.to_lock: list[bytes] = []
        self.to_ras: list[bytes] = []
        self.ras_known_key = FACTORY
        self.generated: set[bytes] = set()
        self.profile = Profile.SECURE
        self.lock = LockKeyNegotiation.unbound(DEVICE, self.profile, FACTORY)
        self.ras: RasKeyNegotiation | None = None
        self.registration_open = True
        self.lock_advances = 0
        self.ras_advances = 0

    @initialize(profile=st.sampled_from(Profile), new_key=keys)
    def setup(self, profile: Profile, new_key: bytes) -> None:
        self.profile = profile
        self.lock = LockKeyNegotiation.unbound(DEVICE, profile, FACTORY)
        self.start_ras(1, new_key)

    def start_ras(self, version: int, new_key: bytes) -> None:
        if new_key == self.ras_known_key:
            return
        self.generated.add(new_key)
        self.ras = RasKeyNegotiation.start(
            DEVICE, self.profile, self.ras_known_key, version, self.now, new_key=new_key
        )

    # ------------------------------------------------------------------ RAS actions

    @rule()
    def ras_sends_stage_a(self) -> None:
        assert self.ras is not None
        try:
            self.to_lock.extend(self.ras.stage_a_frames(self.now))
        except NegotiationError:
            assert self.ras.phase in (RasPhase.PROVEN, RasPhase.COMMITTED, RasPhase.EXPIRED)

    @rule()
    def ras_sends_commit(self) -> None:
        assert self.ras is not None
        try:
            self.to_lock.append(self.ras.commit_frame(self.now))
        except NegotiationError:
            assert self.ras.phase in (RasPhase.STARTED, RasPhase.PART1_ACKED, RasPhase.EXPIRED)

    @rule(new_key=keys)
    def ras_starts_over(self, new_key: bytes) -> None:
        """A new registration attempt, or a rotation once the RAS saw a commit."""
        assert self.ras is not None
        if self.ras.phase is RasPhase.COMMITTED:
            self.ras_known_key = self.ras.record.new_key
        self.start_ras(next_version(self.ras.record.version), new_key)

    @rule(index=st.integers(0, 1000), keep=st.booleans())
    @precondition(lambda self: bool(self.to_ras))
    def deliver_to_ras(self, index: int, keep: bool) -> None:
        """Deliver any frame in flight (kept in flight when repeated later)."""
        assert self.ras is not None
        wire = self.to_ras[index % len(self.to_ras)]
        if not keep:
            self.to_ras.remove(wire)
        before = self.ras.check_expiry(self.now)
        try:
            after = self.ras.receive(wire, self.now)
        except (FrameRejected, NegotiationError, LockRefused):
            assert self.ras.phase is before
            return
        assert (before, after) in RAS_STEPS
        self.ras_advances += 1
        if after is RasPhase.COMMITTED and before is RasPhase.PROVEN:
            # A commit answer is produced only by a lock bound to the new key.
            assert self.ras.record.new_key in self.generated

    # ------------------------------------------------------------------ lock actions

    def lock_keys(self) -> list[bytes]:
        st_ = self.lock.state
        found = [st_.current_key]
        if len(st_.pending_key) == 16:
            found.append(st_.pending_key)
        return found

    @rule(index=st.integers(0, 1000), keep=st.booleans(), registration_open=st.booleans())
    @precondition(lambda self: bool(self.to_lock))
    def deliver_to_lock(self, index: int, keep: bool, registration_open: bool) -> None:
        wire = self.to_lock[index % len(self.to_lock)]
        if not keep:
            self.to_lock.remove(wire)
        self.registration_open = registration_open
        self.lock.expire(self.now)
        for key in self.lock_keys():
            try:
                frame = FrameCodec(key, self.profile).open(wire)
                body = decode_body(frame, Direction.TO_LOCK, self.profile)
            except FrameRejected:
                continue
            before = self.lock.state.phase
            try:
                if isinstance(body, KeyPartBody):
                    kind = KeyType(frame.type)
                    answer = self.lock.on_part(
                        body, kind, key, self.now, registration_open=registration_open
                    )
                else:
                    assert isinstance(body, OpBody)
                    kind = KeyType.COMMIT
                    answer = self.lock.on_commit(frame, body, key, self.now)
            except FrameRejected as exc:
                err = m.error_response(exc.reason, self.now, self.profile.layout, frame)
                self.to_ras.append(FrameCodec(self.lock.state.current_key, self.profile).seal(err))
                return
            assert (before, self.lock.state.phase) in LOCK_STEPS[kind]
            self.lock_advances += 1
            self.to_ras.append(answer)
            return

    @rule()
    def factory_reset(self) -> None:
        self.lock.factory_reset()
        self.ras_known_key = FACTORY

    # ------------------------------------------------------------------ the network

    @rule(
        kind=st.sampled_from([KeyType.PART_1, KeyType.PART_2, KeyType.COMMIT]),
        version=st.integers(1, 255),
        key_bytes=st.binary(min_size=8, max_size=8),
        under=st.integers(0, 1000),
        dt=st.integers(-5, 5),
    )
    def forge_key_frame(
        self, kind: KeyType, version: int, key_bytes: bytes, under: int, dt: int
    ) -> None:
        """A well-formed KEY frame under any key in play: factory, generated, pending."""
        candidates = sorted({FACTORY, *self.generated, *self.lock_keys()})
        key = candidates[under % len(candidates)]
        ts = self.now + dt
        if kind is KeyType.COMMIT:
            frame = m.key_commit(version, 1, ts, self.profile.layout)
        else:
            frame = m.key_part(kind, version, key_bytes, ts)
        self.to_lock.append(FrameCodec(key, self.profile).seal(frame))

    @rule(data=st.binary(min_size=0, max_size=24), to_lock=st.booleans())
    def garbage(self, data: bytes, to_lock: bool) -> None:
        (self.to_lock if to_lock else self.to_ras).append(data)

    @rule(dt=st.sampled_from([0, 1, 5, 29, 31, 60, 119, 121, 300]))
    def time_passes(self, dt: int) -> None:
        self.now += dt

    # ------------------------------------------------------------------ invariants

    @invariant()
    def lock_state_is_consistent(self) -> None:
        st_ = self.lock.state
        expected_pending = {LockPhase.IDLE: 0, LockPhase.PART1: 8, LockPhase.PENDING: 16}
        assert len(st_.pending_key) == expected_pending[st_.phase]
        assert (st_.pending_version == 0) == (st_.phase is LockPhase.IDLE)
        assert st_.factory_key == FACTORY
        if st_.bound:
            # Only keys the RAS generated ever become lock keys, never the factory key.
            assert st_.lock_key in self.generated
            assert 1 <= st_.key_version <= 255
        else:
            assert st_.key_version == 0

    @invariant()
    def ras_state_is_consistent(self) -> None:
        if self.ras is not None:
            assert self.ras.record.new_key != self.ras.record.old_key
            assert self.ras.phase in set(RasPhase)


KeyNegotiationMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestKeyNegotiationStates = KeyNegotiationMachine.TestCase


def test_machine_harness_reaches_commit() -> None:
    """The harness itself can complete a registration (so the property is not vacuous)."""
    for profile in Profile:
        machine = KeyNegotiationMachine()
        machine.setup(profile, bytes(range(1, 17)))
        machine.ras_sends_stage_a()
        machine.deliver_to_lock(0, keep=False, registration_open=True)
        machine.deliver_to_lock(0, keep=False, registration_open=True)
        machine.deliver_to_ras(0, keep=False)
        machine.deliver_to_ras(0, keep=False)
        machine.ras_sends_commit()
        machine.deliver_to_lock(0, keep=False, registration_open=True)
        machine.deliver_to_ras(0, keep=False)
        assert machine.ras is not None
        assert machine.ras.phase is RasPhase.COMMITTED
        assert machine.lock.state.lock_key == bytes(range(1, 17))
        assert (machine.lock_advances, machine.ras_advances) == (3, 3)
        machine.lock_state_is_consistent()
        machine.ras_state_is_consistent()
        machine.teardown()
