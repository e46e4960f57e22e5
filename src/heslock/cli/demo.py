"""``heslock demo``: the whole system on one machine (issue 6 fills this in).

Until the RAS, gateway and client exist, it shows what is there so far and exits 0.
"""

from __future__ import annotations

import os
import time

import typer
from rich.console import Console

from heslock.protocol import (
    Accepted,
    Cmd,
    DeviceId,
    FrameAcceptor,
    FrameCodec,
    KeyPartBody,
    KeyType,
    LockKeyNegotiation,
    OpBody,
    OperationOp,
    OperationType,
    Profile,
    RasKeyNegotiation,
    messages,
)


def demo(
    once: bool = typer.Option(False, "--once", help="Run the scripted part and exit."),
) -> None:
    """Run heslock on its embedded defaults (so far: the protocol core, in one process)."""
    del once  # the interactive part comes with the RAS and gateway
    console = Console()
    console.print("[bold]heslock demo[/] — what exists so far: the protocol core.")
    device = DeviceId.parse("F0:11:22:33:44:55")
    factory_key = os.urandom(16)
    now = int(time.time())
    for profile in Profile:
        ras = RasKeyNegotiation.start(device, profile, factory_key, 1, now)
        lock = LockKeyNegotiation.unbound(device, profile, factory_key)
        acceptor = FrameAcceptor.for_key(factory_key, profile)
        for part, wire in zip(
            (KeyType.PART_1, KeyType.PART_2), ras.stage_a_frames(now), strict=True
        ):
            verdict = acceptor.accept(wire, now)
            assert isinstance(verdict, Accepted)
            body = verdict.body
            assert isinstance(body, KeyPartBody)
            answer = lock.on_part(body, part, factory_key, now, registration_open=True)
            acceptor.record(wire, verdict, answer, now)
            phase = ras.receive(answer, now).value
            console.print(f"  {profile.value:6} stage a {part.name}: {wire.hex()} -> {phase}")
        commit = ras.commit_frame(now)
        new = FrameAcceptor.for_key(ras.record.new_key, profile)
        verdict = new.accept(commit, now)
        assert isinstance(verdict, Accepted)
        assert isinstance(verdict.body, OpBody)
        answer = lock.on_commit(verdict.frame, verdict.body, ras.record.new_key, now)
        phase = ras.receive(answer, now).value
        console.print(f"  {profile.value:6} stage b COMMIT: {commit.hex()} -> {phase}")
        unlock = FrameCodec(ras.record.new_key, profile).seal(
            messages.command(
                Cmd.OPERATION, OperationType.BOLT, OperationOp.UNLOCK, 2, now, profile.layout
            )
        )
        console.print(f"  {profile.value:6} unlock frame under the new key: {unlock.hex()}")
    console.print("Next: the lock simulator, RAS, gateway and client (see README.md).")
