"""``heslock demo``: what heslock does today, on real parts, in one process.

Three simulated locks of three makers (BLE 4.0, 4.2 and 5.0 profiles) advertise on a
virtual Bluetooth link run by the real bumble stack (HCI, L2CAP, ATT, GATT). A central
radio scans them, registers one through the two-stage key negotiation (the RAS side of it
from ``heslock.protocol``; the RAS server itself arrives with issue 4/5, and then this demo
runs the RAS, a gateway and the client as separate processes — issue 6), unlocks it, and
receives the lock's own event when a person turns the knob.

``--once`` runs the script and exits 0 on success, non-zero on any failure (tests use it).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from heslock.ble.central import FrameCentral, FrameLink
from heslock.ble.virtual import VirtualLink
from heslock.bsld import SimulatedLock
from heslock.bsld.manufacturer import generate
from heslock.bsld.peripheral import LockPeripheral
from heslock.errors import HeslockError
from heslock.protocol import (
    BoltState,
    Cmd,
    Direction,
    EventType,
    FrameCodec,
    OpBody,
    OperationOp,
    OperationType,
    Profile,
    RasKeyNegotiation,
    ReasonCode,
    StatusArgs,
    decode_body,
    messages,
)
from heslock.protocol.makers import makers

#: How long the demo waits for any one radio step before it calls the run failed.
STEP_TIMEOUT_S = 10.0
CENTRAL_ADDRESS = "C0:DE:00:00:00:01"


def demo(
    once: bool = typer.Option(False, "--once", help="Run the script once and exit."),
) -> None:
    """Run heslock on its embedded defaults (today: locks and a central on a virtual link)."""
    # No emoji or markup guessing: ':cd:' in a device address is not a compact disc.
    console = Console(emoji=False, highlight=False)
    with tempfile.TemporaryDirectory(prefix="heslock-demo-") as tmp:
        try:
            asyncio.run(_run(console, Path(tmp), once=once))
        except (HeslockError, TimeoutError) as exc:
            console.print(f"[red]demo failed:[/] {exc}")
            raise typer.Exit(1) from exc
        except KeyboardInterrupt:
            console.print("stopped")


async def _run(console: Console, data_dir: Path, *, once: bool) -> None:
    console.print("[bold]heslock demo[/] — real BLE stack (bumble) on a virtual link\n")
    link = VirtualLink()
    peripherals: list[LockPeripheral] = []
    central: FrameCentral | None = None
    try:
        for maker in makers():
            record = generate(
                1, maker.name, maker.models[0].name, ble_version=maker.ble_version.value
            )[0]
            lock = SimulatedLock(
                record.identity(), state_path=data_dir / f"{record.device_id}.json"
            )
            lock.press_registration_button(time.time())  # the installer's button press
            device = link.create_device(maker.name, record.device_id.colon)
            peripheral = LockPeripheral(lock, maker, device)
            await peripheral.start()
            peripherals.append(peripheral)
        radio = link.create_device("central", CENTRAL_ADDRESS)
        await radio.power_on()
        central = FrameCentral(radio)
        await _scan(console, central, peripherals)
        await _register_and_operate(console, central, peripherals[0])
        if not once:
            console.print("\nPress Ctrl-C to stop.")
            await asyncio.Event().wait()
    finally:
        if central is not None:
            await central.close()
        for peripheral in peripherals:
            await peripheral.stop()
        link.close()


async def _scan(console: Console, central: FrameCentral, peripherals: list[LockPeripheral]) -> None:
    console.print("[bold]1. Discovery[/] (advertising data decoded by the central)")
    for peripheral in peripherals:
        seen = await central.scan_for(STEP_TIMEOUT_S, device_id=peripheral.lock.identity.device_id)
        ad = seen.found.advert
        console.print(
            f"   {seen.found.name}  {ad.device_id.colon}  company 0x{ad.company_id:04X}  "
            f"BLE {ad.ble_version.value}  {ad.profile.value}  bound={ad.bound}  "
            f"battery {ad.battery}%"
        )


async def _register_and_operate(
    console: Console, central: FrameCentral, peripheral: LockPeripheral
) -> None:
    identity = peripheral.lock.identity
    now = int(time.time())
    link = await asyncio.wait_for(
        central.connect(identity.device_id.colon, peripheral.maker), STEP_TIMEOUT_S
    )
    events: asyncio.Queue[bytes] = asyncio.Queue()
    link.add_listener(events.put_nowait)
    console.print(f"\n[bold]2. Registration[/] of {identity.device_id} (MTU {link.mtu})")
    neg = RasKeyNegotiation.start(
        identity.device_id, identity.profile, identity.factory_key, 1, now
    )
    for name, wire in zip(
        ("stage a, key part 1", "stage a, key part 2"), neg.stage_a_frames(now), strict=True
    ):
        phase = neg.receive(await _request(link, wire), now)
        console.print(f"   {name}: {wire.hex()} -> {phase.value}")
    commit = neg.commit_frame(now)
    phase = neg.receive(await _request(link, commit), now)
    console.print(f"   stage b, commit:    {commit.hex()} -> {phase.value}")
    codec, seq = FrameCodec(neg.record.new_key, identity.profile), neg.record.next_counter

    console.print("\n[bold]3. Unlock[/] with a frame under the new lock key")
    unlock = messages.command(
        Cmd.OPERATION,
        OperationType.BOLT,
        OperationOp.UNLOCK,
        seq,
        int(time.time()),
        identity.profile.layout,
    )
    status = _status(codec, identity.profile, await _request(link, codec.seal(unlock)))
    console.print(f"   the lock answers: bolt {status.bolt.name}, door {status.door.name}")
    if status.bolt is not BoltState.UNLOCKED:
        raise HeslockError(f"the lock did not unlock (bolt {status.bolt.name})")
    await _drain(events)  # the REMOTE_OPERATION event of that unlock

    console.print("\n[bold]4. A person turns the knob[/]: the lock's own event arrives")
    peripheral.press(_turn_knob(peripheral.lock, BoltState.LOCKED))
    event = codec.open(await asyncio.wait_for(events.get(), STEP_TIMEOUT_S))
    body = decode_body(event, Direction.FROM_LOCK, identity.profile)
    assert isinstance(body, OpBody)
    kind, bolt = EventType(event.type).name, BoltState(body.op).name
    console.print(f"   event {kind}: bolt {bolt} (the lock's event counter {body.seq})")
    await link.close()


def _turn_knob(lock: SimulatedLock, to: BoltState) -> Callable[[float], None]:
    return lambda host_time: lock.turn_knob(to, host_time)


async def _request(link: FrameLink, wire: bytes) -> bytes:
    return await asyncio.wait_for(link.request(wire), STEP_TIMEOUT_S)


def _status(codec: FrameCodec, profile: Profile, wire: bytes) -> StatusArgs:
    frame = codec.open(wire)
    if frame.group == Cmd.ERROR:
        raise HeslockError(f"the lock refused: {ReasonCode(frame.type).name}")
    body = decode_body(frame, Direction.FROM_LOCK, profile)
    assert isinstance(body, OpBody)
    return StatusArgs.from_bytes(body.args)


async def _drain(queue: asyncio.Queue[bytes]) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(queue.get(), STEP_TIMEOUT_S)
