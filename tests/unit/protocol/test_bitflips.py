"""Every single-bit flip of a valid frame on the wire is refused (issue 2).

For each profile, Hypothesis draws batches of valid frames (commands to the lock and
answers/events/errors from it, each checked to be accepted unflipped), and every bit of
each sealed frame is flipped once; the flipped frame goes through the full acceptance rules
(:meth:`FrameAcceptor.accept`). A batch holds enough frames for at least 10,000 flips, and
the number of accepted flips must be 0.

- Secure profile: all 160 bits (128 ciphertext + 32 tag). Each flip changes the CMAC input
  or the tag, so every flip must be refused with BAD_TAG, deterministically.
- Base profile: 128 bits. A flipped AES block decrypts to an unrelated, effectively uniform
  16-byte block. To be accepted it must pass the check byte (1/256), name a known command
  for the direction (~14 valid (cmd, type) pairs of 65,536, most with 1-4 valid ops of 256),
  have zero reserved bytes (1/65,536) and a timestamp within +/-30 s (61/2^32). That is
  about 1e-14 per flip, so about 1e-10 for 10,000 flips: 0 accepted is expected to hold
  with overwhelming probability, and a failure would point at a real defect (e.g. a
  malleable mode), not bad luck.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heslock.protocol import (
    Accepted,
    Cmd,
    ConfigType,
    Direction,
    EventType,
    Frame,
    FrameAcceptor,
    FrameCodec,
    OpBody,
    Profile,
    QueryType,
    ReasonCode,
    Rejected,
    TimeOp,
)
from heslock.protocol import messages as m
from heslock.protocol.codes import COMMAND_TABLE, KeyType

NOW = 1_700_000_000
MIN_FLIPS = 10_000
DEVICE = bytes.fromhex("F01122334455")

keys = st.binary(min_size=16, max_size=16)
ts = st.integers(NOW - 30, NOW + 30)
args = st.binary(max_size=4)
OP_COMMANDS = [(group, type_, sorted(ops)) for (group, type_), ops in COMMAND_TABLE.items() if ops]


@st.composite
def valid_frames(draw: st.DrawFn, profile: Profile) -> tuple[Frame, Direction]:
    """A frame that the acceptance rules accept in its direction."""
    layout = profile.layout
    seq = draw(st.integers(1, 0xFFFF if profile is Profile.BASE else 0xFFFF_FFFF))
    kind = draw(st.sampled_from(["command", "key_part", "response", "event", "error", "ack"]))
    if kind == "command":
        group, type_, ops = draw(st.sampled_from(OP_COMMANDS))
        op = draw(st.sampled_from(ops))
        return m.command(group, type_, op, seq, draw(ts), layout, draw(args)), Direction.TO_LOCK
    if kind == "key_part":
        part = draw(st.sampled_from([KeyType.PART_1, KeyType.PART_2]))
        body = draw(st.binary(min_size=8, max_size=8))
        return m.key_part(part, draw(st.integers(1, 255)), body, draw(ts)), Direction.TO_LOCK
    if kind == "response":
        group, type_, ops = draw(st.sampled_from(OP_COMMANDS))
        op = draw(st.sampled_from(ops))
        request = m.command(group, type_, op, seq, NOW, layout)
        answer = m.response(request, OpBody(op, seq), draw(ts), layout, draw(args))
        return answer, Direction.FROM_LOCK
    if kind == "event":
        event = m.event(draw(st.sampled_from(EventType)), draw(st.integers(0, 255)), seq,
                        draw(ts), layout, draw(args))  # fmt: skip
        return event, Direction.FROM_LOCK
    if kind == "error":
        err = m.error_response(draw(st.sampled_from(ReasonCode)), draw(ts), layout,
                               m.command(Cmd.CONFIG, ConfigType.SOUND, 1, seq, NOW, layout),
                               1, seq, draw(st.integers(0, 0xFFFF)))  # fmt: skip
        return err, Direction.FROM_LOCK
    part = draw(st.sampled_from([KeyType.PART_1, KeyType.PART_2]))
    return m.key_ack(part, draw(st.integers(1, 255)), DEVICE, draw(ts)), Direction.FROM_LOCK


def flip_all(profile: Profile, key: bytes, batch: list[tuple[Frame, Direction]]) -> Counter[str]:
    codec = FrameCodec(key, profile)
    acceptors = {d: FrameAcceptor(codec, direction=d) for d in Direction}
    outcome: Counter[str] = Counter()
    for frame, direction in batch:
        acc = acceptors[direction]
        wire = codec.seal(frame)
        if frame.cmd == Cmd.TIME and frame.value[0] == TimeOp.SET:
            # A TIME/SET is valid only against the lock's challenge: issue the one it echoes,
            # and keep it issued while its flips are tried.
            acc.issue_time_challenge(int.from_bytes(frame.value[5:9], "big"), NOW)
        assert isinstance(acc.accept(wire, NOW), Accepted), frame  # valid before the flip
        for bit in range(len(wire) * 8):
            flipped = bytearray(wire)
            flipped[bit // 8] ^= 1 << (bit % 8)
            verdict = acc.accept(bytes(flipped), NOW)
            outcome["flips"] += 1
            if isinstance(verdict, Rejected):
                outcome[verdict.reason.name] += 1
            else:
                outcome["accepted"] += 1
    return outcome


SECURE_BATCH = -(-MIN_FLIPS // 160)  # 63 frames x 160 bits = 10,080 flips
BASE_BATCH = -(-MIN_FLIPS // 128)  # 79 frames x 128 bits = 10,112 flips
FLIP_SETTINGS = settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FLIP_SETTINGS
@given(
    key=keys,
    batch=st.lists(valid_frames(Profile.SECURE), min_size=SECURE_BATCH, max_size=SECURE_BATCH),
)
def test_secure_every_bit_flip_refused(key: bytes, batch: list[tuple[Frame, Direction]]) -> None:
    outcome = flip_all(Profile.SECURE, key, batch)
    assert outcome["flips"] >= MIN_FLIPS
    assert outcome["accepted"] == 0
    # Encrypt-then-MAC: every flip, in the ciphertext or in the tag, fails the tag.
    assert outcome[ReasonCode.BAD_TAG.name] == outcome["flips"]


@FLIP_SETTINGS
@given(
    key=keys,
    batch=st.lists(valid_frames(Profile.BASE), min_size=BASE_BATCH, max_size=BASE_BATCH),
)
def test_base_every_bit_flip_refused(key: bytes, batch: list[tuple[Frame, Direction]]) -> None:
    outcome = flip_all(Profile.BASE, key, batch)
    assert outcome["flips"] >= MIN_FLIPS
    assert outcome["accepted"] == 0
    # Most flips die at the check byte (about 255 in 256); the rest at later rules.
    assert outcome[ReasonCode.BAD_CHECK.name] > 0.95 * outcome["flips"]


def test_query_and_config_types_are_in_the_generator() -> None:
    """The generator covers every op-layout command of the table (a guard for the above)."""
    groups = {(g, t) for g, t, _ in OP_COMMANDS}
    assert all((Cmd.QUERY, q) in groups for q in QueryType)
    assert all((Cmd.CONFIG, c) in groups for c in ConfigType)
    assert (Cmd.KEY, KeyType.COMMIT) in groups
