"""``heslock lock``: find, add, operate and manage your locks.

::

    heslock lock scan [--link LINK] [--timeout S]
    heslock lock add DEVICE_ID --name NAME (--nearby [--link LINK] | --via GATEWAY)
                     [--time-sync]
    heslock lock list
    heslock lock status LOCK [--cached | --nearby]
    heslock lock unlock|lock LOCK [--nearby] [--key KEY]
    heslock lock events LOCK [--limit N] [--follow [--interval S]]
    heslock lock rename LOCK NAME
    heslock lock remove LOCK [--yes]
    heslock lock transfer LOCK --to USER_ID [--yes]

LOCK is a lock's id, its name (case-insensitive) or its device id. Commands go through
one of your gateways near the lock (the RAS picks it), or with ``--nearby`` over this
computer's own radio (``--link``: the ``heslock bsld hub`` of the simulators, or a real
adapter such as ``usb:0``): the RAS seals the frame, this writes it to the lock and hands
its answer back. ``lock add`` runs the legitimacy check, then the two-stage registration,
its frames carried by this radio (``--nearby``) or by the gateway (``--via``), showing
each stage. ``lock events --follow`` keeps asking for new events until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Final

import typer
from rich.status import Status

from heslock.cli.device import REASONS, RESTARTABLE
from heslock.cli.gateway import resolve_gateway
from heslock.cli.user import (
    CliFailure,
    JsonOpt,
    LinkOpt,
    ProfileOpt,
    User,
    confirm,
    e,
    emit,
    emit_json,
    err,
    failures,
    note,
    out,
    say,
    table,
    user,
    when,
)
from heslock.errors import UsageError
from heslock.rac import (
    AsyncRasClient,
    CommandResult,
    Legitimacy,
    Lock,
    LockEvent,
    RasClient,
)
from heslock.rac.calls import device_arg, uuid_arg
from heslock.rac.errors import (
    EXIT_FORBIDDEN,
    EXIT_UNREACHABLE,
    InvalidArgument,
    RasProblem,
    RasUnreachable,
)
from heslock.rac.nearby import (
    DEFAULT_SCAN_S,
    DiscoveredLock,
    NearbyRadio,
    RegistrationProgress,
    Stage,
    operate_nearby,
    register_nearby,
)

app = typer.Typer(help="Your locks: scan, add, operate, events, manage.", no_args_is_help=True)

#: ``events --follow``: how often to ask (server-sent events arrive in a later issue).
DEFAULT_POLL_S: Final = 2.0
#: One poll asks for this many of the newest events; more new ones are paged back.
FOLLOW_PAGE: Final = 100
DONE: Final = "[green]✓[/]"
FAILED: Final = "[red]✗[/]"

LockArg = Annotated[str, typer.Argument(help="The lock: its id, name or device id.")]
NearbyOpt = Annotated[
    bool, typer.Option("--nearby", help="Over this computer's radio, not a gateway.")
]


# --------------------------------------------------------------------------- resolving


def pick_lock(locks: list[Lock], ref: str) -> Lock:
    """The lock ``ref`` names among yours: by name (case-insensitive) or device id."""
    wanted = ref.strip().casefold()
    try:
        device: str | None = device_arg(ref)
    except InvalidArgument:
        device = None
    matches = [lk for lk in locks if lk.name.casefold() == wanted or lk.device_id == device]
    if not matches:
        raise CliFailure(f"you have no lock {ref!r}: see `heslock lock list`", EXIT_FORBIDDEN)
    if len(matches) > 1:
        ids = ", ".join(str(lk.id) for lk in matches)
        raise UsageError(f"several locks are named {ref!r}: use an id ({ids})")
    return matches[0]


def _as_id(ref: str) -> str | None:
    try:
        return uuid_arg(ref, "lock")
    except InvalidArgument:
        return None


def resolve(ras: RasClient, ref: str) -> Lock:
    lock_id = _as_id(ref)
    return ras.locks.get(lock_id) if lock_id else pick_lock(ras.locks.list(), ref)


async def resolve_async(ras: AsyncRasClient, ref: str) -> Lock:
    lock_id = _as_id(ref)
    return await ras.locks.get(lock_id) if lock_id else pick_lock(await ras.locks.list(), ref)


# --------------------------------------------------------------------------- progress


class Steps:
    """The stages of a long command on stderr: a spinner while one runs (on a terminal),
    then a line with its outcome; plain lines when stderr is not a terminal; nothing with
    ``--json``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._text: str | None = None
        self._status: Status | None = None

    def running(self, text: str) -> None:
        self._close(DONE)
        if not self.enabled:
            return
        self._text = text
        if err.is_terminal:
            self._status = err.status(e(text))
            self._status.start()

    def ok(self, text: str) -> None:
        """A stage that is over (the running one, if any, is over too)."""
        self._close(DONE)
        if self.enabled:
            err.print(f"  {DONE} {e(text)}")

    def done(self, outcome: str) -> None:
        """The running stage is over: its line says how it ended."""
        self._text = None if self._text is None else outcome
        self._close(DONE)

    def failed(self) -> None:
        self._close(FAILED)

    def _close(self, mark: str) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        if self._text is not None:
            err.print(f"  {mark} {e(self._text)}")
            self._text = None

    def registration(self, event: RegistrationProgress) -> None:
        """register_nearby's progress: FIND/CONNECT begin; the rest are stages done."""
        if event.stage in (Stage.FIND, Stage.CONNECT):
            self.running(event.text)
        elif event.stage is Stage.START:
            self.ok("the RAS started the registration")
        elif event.stage is Stage.FRAME:
            self.ok(event.text)


# --------------------------------------------------------------------------- scan


@app.command()
def scan(
    link: LinkOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to listen.")] = DEFAULT_SCAN_S,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Locks advertising near this computer's radio (their advertising data, decoded)."""
    who = user(profile, json_out)
    if not 0 < timeout <= 60:
        raise UsageError("--timeout is 0..60 seconds")

    async def run() -> list[DiscoveredLock]:
        async with NearbyRadio(who.link(link)) as radio:
            return await radio.scan(timeout)

    with failures(who):
        found = asyncio.run(run())

    def show() -> None:
        if not found:
            note("no lock heard: is one powered and near this radio? (--link, --timeout)")
            return
        grid = table(
            "device", "name", "maker", "model", "BLE", "bound", "window", "battery", "rssi"
        )
        for d in found:
            grid.add_row(
                d.device_id, e(d.name or "-"), e(d.maker), e(d.model), d.ble_version,
                "yes" if d.bound else "no", "open" if d.registration_open else "-",
                f"{d.battery}%", str(d.rssi),
            )  # fmt: skip
        out.print(grid)
        note("Next: heslock lock add DEVICE --name NAME --nearby  (or --via GATEWAY)")

    emit(who, found, show)


# --------------------------------------------------------------------------- add


@dataclass(frozen=True)
class _Added:
    lock: Lock
    registration_id: uuid.UUID
    via: str


@app.command()
def add(
    device_id: Annotated[str, typer.Argument(help="The lock's device id (lock scan).")],
    name: Annotated[str, typer.Option("--name", help="Your name for it (1..64 characters).")],
    nearby: NearbyOpt = False,
    via: Annotated[
        str | None,
        typer.Option("--via", help="Have this gateway (id or name) carry the frames."),
    ] = None,
    link: LinkOpt = None,
    time_sync: Annotated[
        bool, typer.Option("--time-sync", help="Set the lock's clock first (a wrong clock).")
    ] = False,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a lock: the legitimacy check, then the two-stage key registration."""
    if nearby == (via is not None):
        raise UsageError("choose how to reach the lock: --nearby or --via GATEWAY")
    who = user(profile, json_out)
    device = device_arg(device_id)
    steps = Steps(not who.json)
    try:
        with failures(who):
            if nearby:
                added = asyncio.run(_add_nearby(who, steps, device, name, link, time_sync))
            else:
                assert via is not None
                added = _add_via(who, steps, device, name, via, time_sync)
    except BaseException:
        steps.failed()
        raise
    lock = added.lock

    def show() -> None:
        say(f"lock {e(lock.name)} added: id {lock.id}")
        note(f"Next: heslock{who.flag} lock unlock {e(lock.name)!r}")

    emit(who, added, show)


def _check(steps: Steps, legitimacy: Legitimacy) -> None:
    if not legitimacy.free and legitimacy.reason != RESTARTABLE:
        reason = legitimacy.reason or "refused"
        why = REASONS.get(reason)
        raise CliFailure(
            f"{legitimacy.device_id} cannot be added ({reason})" + (f": {why}" if why else ""),
            EXIT_FORBIDDEN,
        )
    steps.done(f"{legitimacy.device_id} is genuine and free to bind")
    if legitimacy.factory_reset_required:
        note("its previous owner removed it: the lock must have been factory-reset")


async def _add_nearby(
    who: User, steps: Steps, device: str, name: str, link: str | None, time_sync: bool
) -> _Added:
    async with who.async_client() as ras:
        steps.running("asking the RAS whether the device is genuine and free")
        _check(steps, await ras.devices.legitimacy(device))
        async with NearbyRadio(who.link(link)) as radio:
            reg = await register_nearby(
                ras, radio, device, name, steps.registration, time_sync=time_sync
            )
        assert reg.lock_id is not None
        steps.ok("registered: the lock is yours")
        return _Added(await ras.locks.get(reg.lock_id), reg.registration_id, "nearby")


def _add_via(who: User, steps: Steps, device: str, name: str, via: str, time_sync: bool) -> _Added:
    with who.client() as ras:
        steps.running("asking the RAS whether the device is genuine and free")
        _check(steps, ras.devices.legitimacy(device))
        gateway = resolve_gateway(ras, via)
        steps.running(f"registering through gateway {gateway.name} (the RAS carries the frames)")
        try:
            reg = ras.registrations.start(
                device, name, via="gateway", gateway_id=gateway.id, time_sync=time_sync
            )
        except RasProblem as problem:
            if "registration_id" in problem.extensions:
                steps.failed()
                raise CliFailure(
                    f"{problem} (phase {problem.extensions.get('phase')}): the registration "
                    "is kept; run the same command again to resume it",
                    problem.exit_code,
                ) from None
            raise
        if not reg.committed or reg.lock_id is None:
            raise CliFailure(
                f"the registration ended {reg.phase} ({reg.failure or 'no reason'})", 3
            )
        steps.done(f"registered through gateway {gateway.name}: the lock is yours")
        return _Added(ras.locks.get(reg.lock_id), reg.registration_id, "gateway")


# --------------------------------------------------------------------------- list


@app.command("list")
def list_(profile: ProfileOpt = None, json_out: JsonOpt = False) -> None:
    """Your locks and their last known state."""
    who = user(profile, json_out)
    with failures(who), who.client() as ras:
        locks = ras.locks.list()

    def show() -> None:
        if not locks:
            note("no locks yet: `heslock lock scan`, then `heslock lock add`")
            return
        grid = table("name", "id", "device", "bolt", "door", "battery", "as of")
        for lk in locks:
            grid.add_row(
                e(lk.name), str(lk.id), lk.device_id, lk.bolt or "-", lk.door or "-",
                f"{lk.battery}%" if lk.battery is not None else "-", when(lk.state_at),
            )  # fmt: skip
        out.print(grid)

    emit(who, locks, show)


# --------------------------------------------------------------------------- commands


def _result_line(lock: Lock, result: CommandResult) -> str:
    battery = f", battery {result.battery}%" if result.battery is not None else ""
    return f"{e(lock.name)}: {result.bolt or '?'} (door {result.door or '?'}{battery})"


def _operate(
    command: str, ref: str, nearby: bool, link: str | None, key: str | None, who: User
) -> tuple[Lock, CommandResult]:
    key = key or uuid.uuid4().hex
    with failures(who):
        if nearby:
            return asyncio.run(_operate_nearby(who, command, ref, link, key))
        with who.client() as ras:
            lock = resolve(ras, ref)
            try:
                return lock, ras.locks.command(lock.id, command, idempotency_key=key)
            except RasUnreachable as exc:
                if not exc.maybe_sent:
                    raise
                raise CliFailure(
                    f"{exc}. The {command} may have reached the lock: repeat with --key "
                    f"{key} to get its answer without acting twice",
                    EXIT_UNREACHABLE,
                ) from None


async def _operate_nearby(
    who: User, command: str, ref: str, link: str | None, key: str
) -> tuple[Lock, CommandResult]:
    async with who.async_client() as ras:
        lock = await resolve_async(ras, ref)
        async with NearbyRadio(who.link(link)) as radio:
            result = await operate_nearby(
                ras, radio, lock.id, lock.device_id, command, idempotency_key=key
            )
        return lock, result


KeyOpt = Annotated[
    str | None,
    typer.Option("--key", help="Idempotency key: the same key never acts twice (a retry)."),
]


def _command(command: str) -> Callable[..., None]:
    def run(
        lock: LockArg,
        nearby: NearbyOpt = False,
        link: LinkOpt = None,
        key: KeyOpt = None,
        profile: ProfileOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        who = user(profile, json_out)
        target, result = _operate(command, lock, nearby, link, key, who)
        emit(who, result, lambda: say(_result_line(target, result)))

    run.__doc__ = f"{command.capitalize()} the lock (through a gateway, or --nearby)."
    return run


app.command("unlock")(_command("unlock"))
app.command("lock")(_command("lock"))


@app.command()
def status(
    lock: LockArg,
    cached: Annotated[
        bool, typer.Option("--cached", help="The last known state; do not ask the lock.")
    ] = False,
    nearby: NearbyOpt = False,
    link: LinkOpt = None,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Ask the lock for its state (bolt, door, battery), or show the last known one."""
    who = user(profile, json_out)
    if cached:
        if nearby:
            raise UsageError("--cached asks nobody: leave out --nearby")
        with failures(who), who.client() as ras:
            known = resolve(ras, lock)
        emit(who, known, lambda: _show_cached(known))
        return
    target, result = _operate("status", lock, nearby, link, None, who)
    emit(who, result, lambda: say(_result_line(target, result)))


def _show_cached(lock: Lock) -> None:
    if lock.state_at is None:
        say(f"{e(lock.name)}: no state reported yet")
        return
    battery = f", battery {lock.battery}%" if lock.battery is not None else ""
    say(f"{e(lock.name)}: {lock.bolt} (door {lock.door}{battery}) as of {when(lock.state_at)}")


# --------------------------------------------------------------------------- events


def _event_line(event: LockEvent) -> str:
    state = ", ".join(
        part
        for part in (
            f"bolt {event.bolt}" if event.bolt else "",
            f"door {event.door}" if event.door else "",
            f"battery {event.battery}%" if event.battery is not None else "",
        )
        if part
    )
    return f"{when(event.lock_time)}  {event.kind:<20} {e(state)}"


def new_events(page: list[LockEvent], after: int) -> list[LockEvent]:
    """Events of ``page`` (newest first) newer than id ``after``, oldest first."""
    return sorted((ev for ev in page if ev.id > after), key=lambda ev: ev.id)


@app.command()
def events(
    lock: LockArg,
    limit: Annotated[int, typer.Option(help="How many of the newest events (1..500).")] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")
    ] = False,
    interval: Annotated[
        float, typer.Option(help="With --follow: seconds between two asks.")
    ] = DEFAULT_POLL_S,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The lock's own events (a knob turned, the door opened, a jam ...), oldest first."""
    who = user(profile, json_out)
    if not 0.2 <= interval <= 3600:
        raise UsageError("--interval is 0.2..3600 seconds")
    with failures(who), who.client() as ras:
        target = resolve(ras, lock)
        shown = new_events(ras.locks.events(target.id, limit=limit), 0)
        if not follow:
            emit(who, shown, lambda: _show_events(target, shown))
            return
        try:
            for event in shown:
                _print_event(who, event)
            note(f"following {target.name!r}: Ctrl-C to stop")  # stderr, also with --json
            last = shown[-1].id if shown else 0
            while True:
                time.sleep(interval)  # the poll period itself, not a synchronisation
                for event in _poll(ras, target, last):
                    _print_event(who, event)
                    last = event.id
        except KeyboardInterrupt:
            return  # Ctrl-C is how a person ends --follow: exit 0


def _poll(ras: RasClient, lock: Lock, after: int) -> list[LockEvent]:
    """Every event newer than ``after``, oldest first (pages back if many arrived)."""
    found: list[LockEvent] = []
    before: int | None = None
    while True:
        page = ras.locks.events(lock.id, limit=FOLLOW_PAGE, before=before)
        fresh = new_events(page, after)
        found = fresh + found
        if len(fresh) < len(page) or len(page) < FOLLOW_PAGE or not fresh:
            return found
        before = fresh[0].id


def _print_event(who: User, event: LockEvent) -> None:
    if who.json:
        emit_json(event, lines=True)
    else:
        say(_event_line(event))


def _show_events(lock: Lock, shown: list[LockEvent]) -> None:
    if not shown:
        note(f"{lock.name!r} has reported no events yet")
    for event in shown:
        say(_event_line(event))


# --------------------------------------------------------------------------- manage


@app.command()
def rename(
    lock: LockArg,
    name: Annotated[str, typer.Argument(help="The new name (1..64 characters).")],
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Rename a lock."""
    who = user(profile, json_out)
    with failures(who), who.client() as ras:
        renamed = ras.locks.rename(resolve(ras, lock).id, name)
    emit(who, renamed, lambda: say(f"renamed: {e(renamed.name)}"))


@app.command()
def remove(
    lock: LockArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove (unbind) a lock: its key is destroyed on the server."""
    who = user(profile, json_out)
    with failures(who), who.client() as ras:
        target = resolve(ras, lock)
        confirm(yes, f"Remove {target.name!r} ({target.device_id})? Its key is destroyed.")
        ras.locks.remove(target.id)

    def show() -> None:
        say(f"{e(target.name)} removed")
        note("to add it again (or give it away), factory-reset the lock first (long press)")

    emit(who, {"removed": target.id, "device_id": target.device_id}, show)


@app.command()
def transfer(
    lock: LockArg,
    to: Annotated[
        str, typer.Option("--to", help="The new owner's user id (their `account whoami`).")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Give a lock to another user (it is theirs at once; you lose access)."""
    who = user(profile, json_out)
    new_owner = uuid_arg(to, "user")
    with failures(who), who.client() as ras:
        target = resolve(ras, lock)
        confirm(yes, f"Give {target.name!r} to user {new_owner}? You lose access at once.")
        moved = ras.locks.transfer(target.id, new_owner)
    emit(who, moved, lambda: say(f"{e(moved.name)} now belongs to {moved.owner_id}"))
