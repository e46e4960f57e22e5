"""The scripted part of ``heslock demo``: what a lock owner does, told as it happens.

On a running :class:`~heslock.demo.DemoSystem`, with the client SDK (:mod:`heslock.rac`)
as any app would use it:

1. import the three locks' factory records (the maker's file, ``heslock ras devices import``);
2. create an account (e-mail + password), verify the e-mail with the code from the
   development outbox, log in with the password and a second factor (an e-mail code);
3. add a gateway (``POST /v1/gateways``) and start its ``heslock bgw run`` process;
4. discover the locks over the client's own radio and ask the RAS whether each is genuine;
5. register lock 1 *nearby* (the client carries the frames over its own radio), locks 2
   and 3 *through the gateway* (the RAS carries them, C1 ``via="gateway"``);
6. unlock lock 2 remotely and show the lock's own answer (bolt, door, battery);
7. turn lock 2's knob by hand (``heslock bsld press``) and show the event the lock sent.

Every step either succeeds or raises (a :class:`~heslock.demo.DemoError`, or the SDK's
:class:`~heslock.rac.RasError`) with one line saying which step and why. The session's
tokens go to the ``tokens`` store given (the demo profile's), so a second terminal can go
on from where the script stops.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from rich.console import Console

from heslock.demo.children import DemoError
from heslock.demo.system import DemoLock, DemoSystem
from heslock.errors import HeslockError
from heslock.rac import (
    AsyncRasClient,
    CommandResult,
    GatewayCredentials,
    LockEvent,
    RasProblem,
    Registration,
    TokenStore,
)
from heslock.rac.nearby import NearbyRadio, RegistrationProgress, Stage, register_nearby

_T = TypeVar("_T")

EMAIL: Final = "demo@example.org"
DISPLAY_NAME: Final = "Demo user"
GATEWAY_NAME: Final = "Hallway gateway"
#: One name per lock, in the order of DemoSystem.locks (acme, keystone, lumen).
LOCK_NAMES: Final = ("Front door", "Back door", "Garage")
#: How long the client's radio listens for advertisements (locks advertise every 100 ms).
SCAN_S: Final = 3.0
#: A gateway reports a lock it hears at once, but "at once" is another process: the RAS
#: may answer gateway-unavailable / lock-unreachable for a moment after the gateway is up.
GATEWAY_SEES_LOCK_S: Final = 20.0
#: How long the lock's event may take to travel lock -> gateway -> RAS.
EVENT_TIMEOUT_S: Final = 20.0
#: Pause between two looks while waiting for something another process does.
POLL_S: Final = 0.25
#: Problems that mean "the gateway has not reported this lock yet": worth another try.
_NOT_YET: Final = frozenset({"gateway-unavailable", "lock-unreachable"})


@dataclass(frozen=True)
class RegisteredLock:
    lock: DemoLock
    lock_id: str
    name: str
    path: str  #: "nearby" or "gateway"


@dataclass
class ScriptResult:
    """What the script made: the tour names it."""

    email: str
    password: str = field(repr=False)
    gateway: GatewayCredentials | None = None
    registered: list[RegisteredLock] = field(default_factory=list)
    unlocked: CommandResult | None = None
    event: LockEvent | None = None


def new_password() -> str:
    """A fresh password for the demo account (random: the account lives as long as the run).

    The RAS refuses a password that contains the e-mail's local part or "heslock".
    """
    while True:
        password = secrets.token_urlsafe(15)
        if not any(word in password.lower() for word in ("demo", "heslock")):
            return password


async def run_script(
    system: DemoSystem, say: Narrator, tokens: TokenStore, password: str | None = None
) -> ScriptResult:
    """Run steps 1-7 (module docstring) on ``system``; tell them with ``say``.

    A failure is re-raised as a :class:`DemoError` whose one line starts with the step.
    """
    result = ScriptResult(EMAIL, password or new_password())
    try:
        await _script(system, say, tokens, result)
    except DemoError as exc:
        raise DemoError(f"{say.current}: {exc}", exc.details) from exc
    except HeslockError as exc:
        raise DemoError(f"{say.current}: {exc}") from exc
    return result


async def _script(
    system: DemoSystem, say: Narrator, tokens: TokenStore, result: ScriptResult
) -> None:
    say.step("Factory records")
    summary = await system.import_devices()
    say.line(f"heslock ras devices import {system.factory_records.name}: {summary}")

    async with AsyncRasClient(system.https_url, ca=system.ca_file, tokens=tokens) as ras:
        steps = _Steps(system, ras, say, result)
        await steps.account()
        gateway_id = await steps.gateway()
        async with NearbyRadio(link=system.hub) as radio:
            await steps.discover(radio)
            await steps.register_nearby(radio)
        await steps.register_via_gateway(gateway_id)
        await steps.unlock_and_event()


class _Steps:
    """Steps 2-7 of the script, each one a method (module docstring)."""

    def __init__(
        self, system: DemoSystem, ras: AsyncRasClient, say: Narrator, result: ScriptResult
    ) -> None:
        self.system = system
        self.ras = ras
        self.say = say
        self.result = result

    async def account(self) -> None:
        ras, system, result, say = self.ras, self.system, self.result, self.say
        say.step("Account")
        account = await ras.account.register(
            email=result.email, password=result.password, display_name=DISPLAY_NAME
        )
        contact = account.contact(result.email)
        if contact is None:
            raise DemoError(f"the RAS did not keep the contact {result.email}")
        code = await system.latest_code(result.email, purpose="verify_contact")
        await ras.account.verify(contact, code)
        say.line(f"registered {result.email}; verified with code {code} from the outbox")
        challenge = await ras.sessions.login(result.email, result.password)
        await ras.sessions.send_code(challenge, "email")
        code = await system.latest_code(result.email, purpose="login")
        session = await ras.sessions.second_factor(challenge, code, method="email")
        say.line(f"logged in: password, then the e-mail code {code} (session {session.session_id})")

    async def gateway(self) -> str:
        self.say.step("Gateway")
        gateway = await self.ras.gateways.add(GATEWAY_NAME)
        self.result.gateway = gateway
        running = await self.system.start_gateway(gateway.jid, gateway.secret)
        self.say.line(f"added {GATEWAY_NAME!r} as {gateway.jid}")
        self.say.line(f"heslock bgw run (pid {running.pid}) is online at the RAS over XMPP/TLS")
        return str(gateway.id)

    async def discover(self, radio: NearbyRadio) -> None:
        self.say.step("Discovery over this client's own radio")
        found = {d.device_id: d for d in await radio.scan(timeout_s=SCAN_S)}
        for lock in self.system.locks:
            seen = found.get(lock.device_id)
            if seen is None:
                raise DemoError(f"the client's radio did not hear the lock {lock.device_id}")
            legit = await self.ras.devices.legitimacy(lock.device_id)
            self.say.line(
                f"{lock.device_id}  {seen.maker} {seen.model}  BLE {seen.ble_version}  "
                f"bound={seen.bound}  battery {seen.battery}%  rssi {seen.rssi}  "
                f"-> RAS: {'genuine, free to bind' if legit.free else legit.reason}"
            )

    async def register_nearby(self, radio: NearbyRadio) -> None:
        self.say.step("Registration")
        lock, name = self.system.locks[0], LOCK_NAMES[0]
        self.say.line(f"{name} ({lock.maker} {lock.device_id}): nearby, over this client's radio")

        def progress(event: RegistrationProgress) -> None:
            if event.stage is not Stage.DONE:  # the line after says how it ended
                self.say.line(f"  {event.text}")

        reg = await register_nearby(self.ras, radio, lock.device_id, name, progress)
        self.result.registered.append(_registered(lock, reg, name, "nearby"))
        self.say.line(f"  -> {reg.phase}: lock {reg.lock_id}")

    async def register_via_gateway(self, gateway_id: str) -> None:
        for lock, name in zip(self.system.locks[1:], LOCK_NAMES[1:], strict=True):
            reg = await _register_via_gateway(self.ras, lock, name, gateway_id)
            self.result.registered.append(_registered(lock, reg, name, "gateway"))
            self.say.line(
                f"{name} ({lock.maker}): through the gateway, carried by the RAS -> {reg.phase}"
            )

    async def unlock_and_event(self) -> None:
        ras, say, result = self.ras, self.say, self.result
        target = result.registered[1]
        say.step(f"Unlock {target.name!r} remotely (RAS -> gateway -> lock)")
        answer = await ras.locks.command(target.lock_id, "unlock")
        result.unlocked = answer
        say.line(
            f"the lock answers: bolt {answer.bolt}, door {answer.door}, "
            f"battery {answer.battery}% (state {answer.state}, confirmed by {answer.confirmed})"
        )
        if answer.bolt != "unlocked":
            raise DemoError(f"the lock did not unlock (bolt {answer.bolt})")

        say.step(f"A person turns the knob of {target.name!r} (heslock bsld press)")
        await self.system.press(target.lock.device_id, "knob")
        event = await _wait_for(
            lambda: _manual_event(ras, target.lock_id), EVENT_TIMEOUT_S, "the lock's event"
        )
        result.event = event
        say.line(
            f"event {event.kind}: bolt {event.bolt}, door {event.door} "
            f"(the lock's counter {event.counter}, via {event.gateway})"
        )


def _registered(lock: DemoLock, reg: Registration, name: str, path: str) -> RegisteredLock:
    if not reg.committed or reg.lock_id is None:
        reason = reg.failure or reg.refused or reg.phase
        raise DemoError(f"registering {lock.device_id} ({path}) ended without a lock: {reason}")
    return RegisteredLock(lock, str(reg.lock_id), name, path)


async def _register_via_gateway(
    ras: AsyncRasClient, lock: DemoLock, name: str, gateway_id: str
) -> Registration:
    """C1: the RAS carries every frame through the gateway; retried while it cannot yet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GATEWAY_SEES_LOCK_S
    registration_id: str | None = None
    while True:
        try:
            if registration_id is None:
                return await ras.registrations.start(
                    lock.device_id, name, via="gateway", gateway_id=gateway_id
                )
            return await ras.registrations.relay(registration_id, gateway_id)
        except RasProblem as problem:
            if problem.code not in _NOT_YET or loop.time() >= deadline:
                raise
            resumable = problem.extensions.get("registration_id")
            registration_id = str(resumable) if resumable else registration_id
        await asyncio.sleep(POLL_S)


async def _manual_event(ras: AsyncRasClient, lock_id: str) -> LockEvent | None:
    for event in await ras.locks.events(lock_id, limit=10):
        if event.kind == "manual_operation":
            return event
    return None


async def _wait_for(probe: Callable[[], Awaitable[_T | None]], timeout_s: float, what: str) -> _T:
    """Look with ``probe`` until it finds something, or fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (found := await probe()) is None:
        if loop.time() >= deadline:
            raise DemoError(f"{what} did not arrive within {timeout_s:.0f} s")
        await asyncio.sleep(POLL_S)
    return found


class Narrator:
    """Numbered steps and indented lines: the demo's readable story."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.number = 0
        self.title = ""

    @property
    def current(self) -> str:
        """The step being told, for an error message: ``step 3 (Account)``."""
        return f"step {self.number} ({self.title})"

    def step(self, title: str) -> None:
        self.number += 1
        self.title = title
        self.console.print(f"\n[bold]{self.number}. {title}[/]")

    def line(self, text: str) -> None:
        self.console.print(f"   {text}", markup=False)
