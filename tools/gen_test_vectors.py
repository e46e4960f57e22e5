"""Generate heslock's own protocol test vectors (docs/test-vectors.json).

Every frame of the command table in both profiles (base: the standard's 16-byte
AES-128-CBC frame; secure: + 4-byte AES-CMAC tag under SP 800-108-derived keys), full
key-negotiation exchanges, and invalid frames with the reason code a lock must give.
Everything is fixed (keys, timestamps, sequence numbers/counters), so the output is
byte-for-byte reproducible; tests/unit/protocol/test_vectors.py checks the file against
this script and every vector against heslock.protocol both ways.

Usage::

    python tools/gen_test_vectors.py --output docs/test-vectors.json
    python tools/gen_test_vectors.py --check docs/test-vectors.json   # exit 1 if stale
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from heslock.protocol import (
    RESPONSE_BIT,
    Accepted,
    BoltState,
    Cmd,
    ConfigOp,
    ConfigType,
    DeviceId,
    Direction,
    DoorState,
    EventType,
    Frame,
    FrameAcceptor,
    FrameCodec,
    KeyAckBody,
    KeyPartBody,
    KeyType,
    LockKeyNegotiation,
    OpBody,
    OperationOp,
    OperationType,
    Profile,
    QueryOp,
    QueryType,
    RasKeyNegotiation,
    ReasonCode,
    Rejected,
    StatusArgs,
    StatusFlag,
    TimeOp,
    TimeType,
    Verdict,
    decode_body,
)
from heslock.protocol import messages as m
from heslock.protocol.crypto import (
    KDF_CONTEXT,
    KDF_LABEL_ENC,
    KDF_LABEL_MAC,
    BlockCipher,
    Cmac,
    derive_frame_keys,
)
from heslock.protocol.profile import TAG_SIZE

FORMAT_VERSION: Final = 1
#: A fixed instant (2023-11-14T22:13:20Z) so every timestamp in the file is reproducible.
T0: Final = 1_700_000_000
LOCK_KEY: Final = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
FACTORY_KEY: Final = bytes.fromhex("00112233445566778899aabbccddeeff")
NEW_KEY: Final = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
ROTATED_KEY: Final = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")
DEVICE: Final = DeviceId.parse("F0:11:22:33:44:55")
#: Seconds a stale vector lies outside the default +/-30 s window.
STALE_OFFSET: Final = 31

_GROUP_TYPES: Final[dict[int, type[Any]]] = {
    Cmd.KEY: KeyType,
    Cmd.TIME: TimeType,
    Cmd.OPERATION: OperationType,
    Cmd.CONFIG: ConfigType,
    Cmd.QUERY: QueryType,
    Cmd.EVENT: EventType,
    Cmd.ERROR: ReasonCode,
}


@dataclass(frozen=True, slots=True)
class Spec:
    """One vector before sealing."""

    name: str
    frame: Frame
    direction: Direction
    now: int
    key: bytes = LOCK_KEY
    reason: ReasonCode | None = None
    exchange: str | None = None
    #: TIME/SET only: the clock the lock reported in its TIME/GET answer (the challenge).
    time_challenge: int | None = None


def type_name(cmd: int, type_: int) -> str | None:
    names = _GROUP_TYPES.get(cmd & ~RESPONSE_BIT)
    if names is None or type_ not in names._value2member_map_:
        return None
    return str(names(type_).name)


def describe_body(body: OpBody | KeyPartBody | KeyAckBody) -> dict[str, Any]:
    if isinstance(body, KeyPartBody):
        return {"layout": "key", "version": body.version, "key_bytes": body.key_bytes.hex()}
    if isinstance(body, KeyAckBody):
        return {
            "layout": "key_ack",
            "version": body.version,
            "device_id": body.device_id.hex(),
            "part": body.part,
        }
    return {"layout": "op", "op": body.op, "seq": body.seq, "args": body.args.hex()}


def raw_seal(plaintext: bytes, key: bytes, profile: Profile) -> bytes:
    """Seal any 16-byte plaintext (also one with a wrong check byte)."""
    if profile is Profile.BASE:
        return BlockCipher(key).encrypt(plaintext)
    enc_key, mac_key = derive_frame_keys(key)
    ciphertext = BlockCipher(enc_key).encrypt(plaintext)
    return ciphertext + Cmac(mac_key).tag(ciphertext)[:TAG_SIZE]


def vector(spec: Spec, profile: Profile) -> dict[str, Any]:
    """Seal a spec and confirm with the acceptance rules what the vector claims."""
    wire = FrameCodec(spec.key, profile).seal(spec.frame)
    plaintext = bytes(spec.frame)
    out: dict[str, Any] = {"name": f"{profile.value}/{spec.name}", "profile": profile.value}
    if spec.exchange is not None:
        out["exchange"] = f"{profile.value}/{spec.exchange}"
    out |= {
        "key": spec.key.hex(),
        "direction": spec.direction.value,
        "now": spec.now,
        "fields": describe_fields(spec, profile),
        "plaintext": plaintext.hex(),
        "wire": wire.hex(),
        "valid": spec.reason is None,
    }
    acceptor = FrameAcceptor(FrameCodec(spec.key, profile), direction=spec.direction)
    if spec.time_challenge is not None:
        out["time_challenge"] = spec.time_challenge
        acceptor.issue_time_challenge(spec.time_challenge, spec.now)
    verdict = acceptor.accept(wire, spec.now)
    _confirm(out, verdict, spec.reason)
    return out


def describe_fields(spec: Spec, profile: Profile) -> dict[str, Any]:
    """The frame's fields, with the decoded value unless rule 4 refuses the frame itself."""
    fields: dict[str, Any] = {
        "cmd": spec.frame.cmd,
        "type": spec.frame.type,
        "value": spec.frame.value.hex(),
        "check": spec.frame.check,
        "timestamp": spec.frame.timestamp,
        "response": spec.frame.is_response,
    }
    if spec.frame.group in Cmd._value2member_map_:
        fields["group"] = Cmd(spec.frame.group).name
    name = type_name(spec.frame.cmd, spec.frame.type)
    if name is not None:
        fields["type_name"] = name
    if spec.reason is None or spec.reason not in (ReasonCode.UNKNOWN_COMMAND, ReasonCode.BAD_VALUE):
        fields["body"] = describe_body(decode_body(spec.frame, _direction_of(spec), profile))
    return fields


def _direction_of(spec: Spec) -> Direction:
    """The direction a frame's body is decoded in (its own, even for wrong-direction tests)."""
    return Direction.FROM_LOCK if spec.frame.is_response else Direction.TO_LOCK


def _confirm(out: dict[str, Any], verdict: Verdict, reason: ReasonCode | None) -> None:
    """Refuse to write a vector whose claim the acceptance rules contradict."""
    if reason is None:
        if not isinstance(verdict, Accepted):
            raise SystemExit(f"vector {out['name']} should be accepted: {verdict}")
    else:
        if not (isinstance(verdict, Rejected) and verdict.reason is reason):
            raise SystemExit(f"vector {out['name']} should be refused {reason.name}: {verdict}")
        out["reason"] = reason.name


# --------------------------------------------------------------------------- the specs


def command_specs(profile: Profile) -> Iterator[Spec]:
    """Every command of the table and a typical answer, stamped T0 + i, seq/counter i."""
    layout = profile.layout
    seq = iter(range(1, 1000))
    to_lock, from_lock = Direction.TO_LOCK, Direction.FROM_LOCK

    def cmd(name: str, group: Cmd, type_: int, op: int, args: bytes = b"") -> Spec:
        n = next(seq)
        frame = m.command(group, type_, op, n, T0 + n, layout, args)
        return Spec(name, frame, to_lock, T0 + n)

    def answer(name: str, request: Spec, args: bytes = b"") -> Spec:
        body = decode_body(request.frame, to_lock, profile)
        assert isinstance(body, OpBody)
        frame = m.response(request.frame, body, request.now + 1, layout, args)
        return Spec(name, frame, from_lock, request.now + 1)

    get = cmd("time/get", Cmd.TIME, TimeType.CLOCK, TimeOp.GET)
    yield get
    yield answer("time/get-response", get, m.u32(get.now + 1))
    # TIME/SET echoes the clock of the lock's TIME/GET answer (acceptance rule 6).
    reported = get.now + 1
    time_set = cmd("time/set", Cmd.TIME, TimeType.CLOCK, TimeOp.SET, m.u32(reported))
    yield dataclasses.replace(time_set, time_challenge=reported)
    for op in OperationOp:
        request = cmd(f"operation/{op.name.lower()}", Cmd.OPERATION, OperationType.BOLT, op)
        yield request
        if op is OperationOp.STATUS:
            status = StatusArgs(BoltState.LOCKED, DoorState.CLOSED, 87, StatusFlag.BOUND)
            yield answer("operation/status-response", request, bytes(status))
    settings = {
        ConfigType.AUTO_RELOCK: m.u16(30),
        ConfigType.TIMESTAMP_WINDOW: m.u16(60),
        ConfigType.SOUND: b"\x01",
        ConfigType.PASSAGE_MODE: b"\x01",
    }
    for config, value in settings.items():
        name = config.name.lower().replace("_", "-")
        yield cmd(f"config/{name}/get", Cmd.CONFIG, config, ConfigOp.GET)
        set_request = cmd(f"config/{name}/set", Cmd.CONFIG, config, ConfigOp.SET, value)
        yield set_request
        yield answer(f"config/{name}/set-response", set_request, value)
    query_args = {QueryType.LOG_ENTRY: m.u16(0), QueryType.LOG_TIME: m.u16(3)}
    for query in QueryType:
        name = query.name.lower().replace("_", "-")
        yield cmd(f"query/{name}", Cmd.QUERY, query, QueryOp.READ, query_args.get(query, b""))
    battery = cmd("query/battery-again", Cmd.QUERY, QueryType.BATTERY, QueryOp.READ)
    yield answer("query/battery-response", battery, bytes((87,)) + m.u16(3010) + b"\x00")
    details = {
        EventType.MANUAL_OPERATION: BoltState.UNLOCKED,
        EventType.DOOR: DoorState.OPEN,
        EventType.JAM: OperationOp.LOCK,
        EventType.TAMPER: 1,
        EventType.LOW_BATTERY: 9,
        EventType.WRONG_ATTEMPTS: 5,
        EventType.FACTORY_RESET: 0,
        EventType.AUTO_RELOCK: BoltState.LOCKED,
        EventType.REMOTE_OPERATION: OperationOp.UNLOCK,
    }
    for counter, (kind, detail) in enumerate(details.items(), start=1):
        frame = m.event(kind, int(detail), counter, T0 + 100 + counter, layout)
        name = kind.name.lower().replace("_", "-")
        yield Spec(f"event/{name}", frame, from_lock, T0 + 100 + counter)
    unlock = cmd("operation/unlock-refused", Cmd.OPERATION, OperationType.BOLT, OperationOp.UNLOCK)
    body = decode_body(unlock.frame, to_lock, profile)
    assert isinstance(body, OpBody)
    for reason in (ReasonCode.NOT_BOUND, ReasonCode.BUSY, ReasonCode.JAMMED):
        frame = m.error_response(reason, unlock.now, layout, unlock.frame, body.op, body.seq)
        yield Spec(f"error/{reason.name.lower()}", frame, from_lock, unlock.now)
    for reason in (ReasonCode.BAD_CHECK, ReasonCode.STALE, ReasonCode.REPLAY):
        frame = m.error_response(reason, T0 + 200, layout, detail=0x0001)
        yield Spec(f"error/{reason.name.lower()}", frame, from_lock, T0 + 200)


def invalid_specs(profile: Profile) -> Iterator[Spec]:
    layout = profile.layout
    unlock = m.command(Cmd.OPERATION, OperationType.BOLT, OperationOp.UNLOCK, 500, T0, layout)
    yield Spec(
        "invalid/stale-past", unlock, Direction.TO_LOCK, T0 + STALE_OFFSET, reason=ReasonCode.STALE
    )
    yield Spec(
        "invalid/stale-future",
        unlock,
        Direction.TO_LOCK,
        T0 - STALE_OFFSET,
        reason=ReasonCode.STALE,
    )
    answer = m.response(unlock, OpBody(OperationOp.UNLOCK, 500), T0, layout)
    yield Spec(
        "invalid/wrong-direction-response-to-lock",
        answer,
        Direction.TO_LOCK,
        T0,
        reason=ReasonCode.UNKNOWN_COMMAND,
    )
    yield Spec(
        "invalid/wrong-direction-command-from-lock",
        unlock,
        Direction.FROM_LOCK,
        T0,
        reason=ReasonCode.UNKNOWN_COMMAND,
    )
    unknown = Frame(0x07, 0x01, OpBody(1, 501).pack(layout), T0)
    yield Spec(
        "invalid/unknown-command", unknown, Direction.TO_LOCK, T0, reason=ReasonCode.UNKNOWN_COMMAND
    )
    if profile is Profile.SECURE:
        yield Spec("invalid/counter-zero", m.command(Cmd.OPERATION, 1, 1, 0, T0, layout),
                   Direction.TO_LOCK, T0, reason=ReasonCode.COUNTER)  # fmt: skip


def tampered_vectors(profile: Profile) -> Iterator[dict[str, Any]]:
    """Frames that fail rules 2-3: built from raw plaintext, so they carry no fields."""
    layout = profile.layout
    frame = m.command(Cmd.OPERATION, OperationType.BOLT, OperationOp.LOCK, 600, T0, layout)
    good = FrameCodec(LOCK_KEY, profile).seal(frame)
    plain = bytearray(bytes(frame))
    plain[11] ^= 0x01
    cases: list[tuple[str, bytes, bytes, ReasonCode]] = [
        ("invalid/bad-check", bytes(plain), raw_seal(bytes(plain), LOCK_KEY, profile),
         ReasonCode.BAD_CHECK),
        ("invalid/bad-length", bytes(frame), good[:-1], ReasonCode.BAD_LENGTH),
    ]  # fmt: skip
    if profile is Profile.SECURE:
        bad_tag = good[:-1] + bytes((good[-1] ^ 0x01,))
        cases.append(("invalid/bad-tag", bytes(frame), bad_tag, ReasonCode.BAD_TAG))
    for name, plaintext, wire, reason in cases:
        verdict = FrameAcceptor(FrameCodec(LOCK_KEY, profile)).accept(wire, T0)
        out: dict[str, Any] = {
            "name": f"{profile.value}/{name}",
            "profile": profile.value,
            "key": LOCK_KEY.hex(),
            "direction": Direction.TO_LOCK.value,
            "now": T0,
            "fields": None,
            "plaintext": plaintext.hex(),
            "wire": wire.hex(),
            "valid": False,
        }
        _confirm(out, verdict, reason)
        yield out


def exchange_vectors(profile: Profile) -> Iterator[dict[str, Any]]:
    """Registration under the factory key, then a rotation under the new lock key."""
    lock = LockKeyNegotiation.unbound(DEVICE, profile, FACTORY_KEY)
    steps = [("registration", FACTORY_KEY, NEW_KEY, 1, T0 + 300)]
    steps.append(("rotation", NEW_KEY, ROTATED_KEY, 2, T0 + 400))
    for exchange, old, new, version, start in steps:
        ras = RasKeyNegotiation.start(DEVICE, profile, old, version, start, new_key=new)
        p1, p2 = ras.stage_a_frames(start)
        ack1 = lock.on_part(_part(p1, old, profile), KeyType.PART_1, old, start + 1,
                            registration_open=True)  # fmt: skip
        ras.receive(ack1, start + 1)
        proof = lock.on_part(_part(p2, old, profile), KeyType.PART_2, old, start + 2,
                             registration_open=True)  # fmt: skip
        ras.receive(proof, start + 2)
        commit = ras.commit_frame(start + 3)
        commit_frame = FrameCodec(new, profile).open(commit)
        commit_body = decode_body(commit_frame, Direction.TO_LOCK, profile)
        assert isinstance(commit_body, OpBody)
        commit_ack = lock.on_commit(commit_frame, commit_body, new, start + 4)
        ras.receive(commit_ack, start + 4)
        sequence = [
            ("1-part-1", p1, old, Direction.TO_LOCK, start),
            ("2-part-2", p2, old, Direction.TO_LOCK, start),
            ("3-part-1-ack", ack1, old, Direction.FROM_LOCK, start + 1),
            ("4-proof", proof, new, Direction.FROM_LOCK, start + 2),
            ("5-commit", commit, new, Direction.TO_LOCK, start + 3),
            ("6-commit-ack", commit_ack, new, Direction.FROM_LOCK, start + 4),
        ]
        for step, wire, key, direction, now in sequence:
            frame = FrameCodec(key, profile).open(wire)
            spec = Spec(f"key/{exchange}/{step}", frame, direction, now, key, None, exchange)
            out = vector(spec, profile)
            if out["wire"] != wire.hex():
                raise SystemExit(f"{out['name']}: the exchange and the codec disagree")
            out["new_key"] = new.hex()
            out["device_id"] = DEVICE.hex
            yield out


def _part(wire: bytes, key: bytes, profile: Profile) -> KeyPartBody:
    body = decode_body(FrameCodec(key, profile).open(wire), Direction.TO_LOCK, profile)
    assert isinstance(body, KeyPartBody)
    return body


def build() -> dict[str, Any]:
    enc_key, mac_key = derive_frame_keys(LOCK_KEY)
    vectors: list[dict[str, Any]] = []
    for profile in (Profile.BASE, Profile.SECURE):
        vectors.extend(vector(spec, profile) for spec in command_specs(profile))
        vectors.extend(exchange_vectors(profile))
        vectors.extend(vector(spec, profile) for spec in invalid_specs(profile))
        vectors.extend(tampered_vectors(profile))
    return {
        "description": (
            "heslock lock-protocol test vectors (ISO/IEC 14543-5-104 frames, base and "
            "secure profiles); normative text: docs/protocol.md"
        ),
        "format_version": FORMAT_VERSION,
        "generator": "tools/gen_test_vectors.py",
        "conventions": {
            "hex": "lower-case, no separators",
            "now": "the receiver's clock (Unix seconds) at which the vector is checked",
            "direction": "to-lock: commands; from-lock: responses, events, errors",
            "acceptance": "a fresh receiver (no accepted frames) with window_s=30, "
            "retry_s=10; valid vectors are accepted, invalid ones refused with 'reason'",
            "fields": "null when the plaintext is not a well-formed frame (rules 1-3)",
        },
        "keys": {
            "lock_key": LOCK_KEY.hex(),
            "secure_enc_key": enc_key.hex(),
            "secure_mac_key": mac_key.hex(),
            "kdf": {
                "algorithm": "NIST SP 800-108 counter mode, PRF CMAC-AES-128, r=32, "
                "L as 32 bits, fixed input = label || 0x00 || context || [L]_32",
                "label_enc": KDF_LABEL_ENC.decode(),
                "label_mac": KDF_LABEL_MAC.decode(),
                "context": KDF_CONTEXT.decode(),
            },
            "factory_key": FACTORY_KEY.hex(),
            "registered_key": NEW_KEY.hex(),
            "rotated_key": ROTATED_KEY.hex(),
            "device_id": DEVICE.hex,
        },
        "vectors": vectors,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--output", type=Path, help="write the vectors to this file")
    group.add_argument("--check", type=Path, help="exit 1 unless this file is up to date")
    args = parser.parse_args(argv)
    text = render()
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {len(build()['vectors'])} vectors to {args.output}")
        return 0
    try:
        current = args.check.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"cannot read {args.check}: {exc.strerror}", file=sys.stderr)
        return 1
    if current != text:
        print(f"{args.check} is out of date: run make vectors", file=sys.stderr)
        return 1
    print(f"{args.check} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
