"""Benchmark 1, "frame-path": lock frames per second on ONE core, both profiles (issue 2).

Variants, each for the base and the secure profile (``heslock.protocol``):

``cycle``   the figure with the floor: a command frame is built
            (:func:`heslock.protocol.messages.command`), sealed (``FrameCodec.seal``:
            AES-128-CBC, plus the CMAC tag in the secure profile), opened
            (``FrameCodec.open``: length, tag, decrypt, check byte) and checked
            (:func:`heslock.protocol.acceptance.decode_body`: direction, cmd/type/op).
``accept``  the lock's whole acceptance: build, seal, then ``FrameAcceptor.accept`` and
            ``record`` (timestamp window, replay cache, counter window). Every frame has
            its own sequence number / counter and the clock advances one second per 64
            frames, so nothing is a replay and the replay cache (128 frames) evicts as
            on a real lock; every verdict must be ``Accepted``.
``build`` / ``seal`` / ``open`` / ``check``
            the cost split: one stage alone over a pool of prepared inputs.

and three reference points that are not heslock code: ``raw/loop`` (the Python loop and
one function call, the overhead inside every split figure), ``raw/aes-block`` (one
16-byte ``update`` on a long-lived ``cryptography`` AES context, the least any frame can
cost from Python) and ``raw/cmac`` (one CMAC over 16 bytes from a copied context).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Final, TypeVar

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from bench.context import BenchContext, BenchError, Measurement
from bench.registry import Floor, benchmark
from heslock.protocol import (
    Accepted,
    Cmd,
    Direction,
    Frame,
    FrameAcceptor,
    FrameCodec,
    OpBody,
    OperationOp,
    OperationType,
    Profile,
    decode_body,
)
from heslock.protocol.messages import command

#: A fixed, public benchmark key (not a secret: it never protects a lock).
KEY: Final = bytes(range(16))
#: 2023-11-14T22:13:20Z: any fixed time works, the acceptor's clock is simulated.
T0: Final = 1_700_000_000
#: Prepared inputs of the split variants are reused in pools of this size, so the
#: memory a repeat needs does not grow with the machine's speed.
POOL: Final = 4096
#: ``accept``: frames per simulated second. Below DEFAULT_CACHE_SIZE (128) so that the
#: replay floor an eviction raises is always at least a second behind the newest frame.
FRAMES_PER_SECOND: Final = 64
_SHIFT: Final = FRAMES_PER_SECOND.bit_length() - 1
#: Largest sequence number per profile: base is uint16, secure a uint32 counter.
SEQ_LIMIT: Final = {Profile.BASE: 0xFFFF, Profile.SECURE: 0xFFFF_FFFF}

T = TypeVar("T")


@benchmark(
    "frame-path",
    "Lock frames built, sealed (AES-128-CBC, + CMAC tag in the secure profile), opened and "
    "checked per second on one core; `cycle` is the headline, `accept` runs the lock's full "
    "acceptance rules, the rest split the cost.",
    floors=(Floor("base/cycle", "rate", ">=", 100_000, "issue 2"),),
)
def run(ctx: BenchContext) -> list[Measurement]:
    out: list[Measurement] = []
    with ctx.pinned() as cpu:
        for profile in Profile:
            _validate(profile)
        stages: list[tuple[str, Callable[[Profile], Callable[[int], Callable[[], int]]]]] = [
            ("cycle", _cycle),
            ("accept", _accept),
            ("build", _build),
            ("seal", _seal),
            ("open", _open),
            ("check", _check),
        ]
        for stage, factory in stages:
            for profile in Profile:
                params = {"profile": profile.value, "stage": stage, "cpu": cpu}
                out += ctx.measure_rate(
                    f"{profile.value}/{stage}", factory(profile), unit="frame", params=params
                )
        for name, raw in (("loop", _raw_loop), ("aes-block", _raw_aes), ("cmac", _raw_cmac)):
            out += ctx.measure_rate(
                f"raw/{name}", raw, unit="op", params={"stage": name, "cpu": cpu}
            )
    return out


def _frame(profile: Profile, i: int, ts: int = T0) -> Frame:
    seq = i % SEQ_LIMIT[profile] + 1
    return command(Cmd.OPERATION, OperationType.BOLT, OperationOp.UNLOCK, seq, ts, profile.layout)


def _validate(profile: Profile) -> None:
    """Before timing anything: the path under test must round-trip exactly."""
    codec = FrameCodec(KEY, profile)
    for i in (0, 1, 2, SEQ_LIMIT[profile] - 1):
        frame = _frame(profile, i)
        wire = codec.seal(frame)
        if len(wire) != profile.wire_size or codec.open(wire) != frame:
            raise BenchError(f"{profile.value}: frame {i} does not round-trip")
        body = decode_body(codec.open(wire), Direction.TO_LOCK, profile)
        if not isinstance(body, OpBody) or body.seq != i % SEQ_LIMIT[profile] + 1:
            raise BenchError(f"{profile.value}: frame {i} decodes to {body!r}")


def _cycle(profile: Profile) -> Callable[[int], Callable[[], int]]:
    codec = FrameCodec(KEY, profile)
    seal, open_, layout, limit = codec.seal, codec.open, profile.layout, SEQ_LIMIT[profile]
    group, type_, op, to_lock = (
        Cmd.OPERATION,
        OperationType.BOLT,
        OperationOp.UNLOCK,
        Direction.TO_LOCK,
    )

    def factory(n: int) -> Callable[[], int]:
        def timed() -> int:
            ok = 0
            for i in range(n):
                seq = i % limit + 1
                frame = command(group, type_, op, seq, T0, layout)
                body = decode_body(open_(seal(frame)), to_lock, profile)
                ok += body.seq == seq  # type: ignore[union-attr]  # an OpBody for OPERATION
            return ok

        return timed

    return factory


def _accept(profile: Profile) -> Callable[[int], Callable[[], int]]:
    sender = FrameCodec(KEY, profile)  # the RAS side seals with its own codec
    seal, layout, limit = sender.seal, profile.layout, SEQ_LIMIT[profile]
    group, type_, op = Cmd.OPERATION, OperationType.BOLT, OperationOp.UNLOCK

    def factory(n: int) -> Callable[[], int]:
        acceptor = FrameAcceptor(FrameCodec(KEY, profile), Direction.TO_LOCK)
        accept, record = acceptor.accept, acceptor.record

        def timed() -> int:
            ok = 0
            for i in range(n):
                now = T0 + (i >> _SHIFT)
                wire = seal(command(group, type_, op, i % limit + 1, now, layout))
                verdict = accept(wire, now)
                if type(verdict) is Accepted:
                    record(wire, verdict, None, now)
                    ok += 1
            return ok

        return timed

    return factory


def _pooled(items: Sequence[T], n: int, stage: Callable[[T], object]) -> Callable[[], int]:
    """Apply ``stage`` to ``n`` items taken round-robin from ``items``."""
    rounds, rest = divmod(n, len(items))
    head = list(items[:rest])

    def timed() -> int:
        for _ in range(rounds):
            for item in items:
                stage(item)
        for item in head:
            stage(item)
        return n

    return timed


def _pool_frames(profile: Profile) -> list[Frame]:
    return [_frame(profile, i) for i in range(POOL)]


def _build(profile: Profile) -> Callable[[int], Callable[[], int]]:
    layout, limit = profile.layout, SEQ_LIMIT[profile]
    group, type_, op = Cmd.OPERATION, OperationType.BOLT, OperationOp.UNLOCK

    def factory(n: int) -> Callable[[], int]:
        def timed() -> int:
            for i in range(n):
                command(group, type_, op, i % limit + 1, T0, layout)
            return n

        return timed

    return factory


def _seal(profile: Profile) -> Callable[[int], Callable[[], int]]:
    frames = _pool_frames(profile)
    seal = FrameCodec(KEY, profile).seal
    return lambda n: _pooled(frames, n, seal)


def _open(profile: Profile) -> Callable[[int], Callable[[], int]]:
    codec = FrameCodec(KEY, profile)
    wires = [codec.seal(frame) for frame in _pool_frames(profile)]
    return lambda n: _pooled(wires, n, codec.open)


def _check(profile: Profile) -> Callable[[int], Callable[[], int]]:
    frames = _pool_frames(profile)
    check = partial(decode_body, direction=Direction.TO_LOCK, profile=profile)
    return lambda n: _pooled(frames, n, check)


def _noop(item: object) -> object:
    return item


def _raw_loop(n: int) -> Callable[[], int]:
    return _pooled([bytes(16)] * POOL, n, _noop)


def _raw_aes(n: int) -> Callable[[], int]:
    encryptor = Cipher(algorithms.AES(KEY), modes.ECB()).encryptor()  # noqa: S305 - one block, see module doc
    return _pooled([bytes(16)] * POOL, n, encryptor.update)


def _raw_cmac(n: int) -> Callable[[], int]:
    base = CMAC(algorithms.AES(KEY))

    def tag(data: bytes) -> bytes:
        mac = base.copy()
        mac.update(data)
        return mac.finalize()

    return _pooled([bytes(16)] * POOL, n, tag)
