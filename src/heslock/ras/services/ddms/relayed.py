"""DDMS registration driven by the RAS itself, through a gateway that sees the lock.

:mod:`.registration` is the RAS's side of the two-stage key negotiation; someone has to
carry its frames to the lock and the answers back. Usually a nearby client does it (the
RAC over BLE, HTTP ``/answers``). Here the RAS is its own relay: it sends each frame to
the lock through a BGW (:meth:`heslock.ras.relay.LockBus.send_frame`, XMPP then BLE) and
hands every answer to the same functions a client's answer goes to. Nothing of the
negotiation is forked: the keys, phases, idempotency and expiry rules stay in
:mod:`.registration`; this module only loops::

    frames F := start (or fresh frames, to resume)
    while the registration is not done:
        send the next frame of F through the gateway (FRAME_TIMEOUT_S)
        outcome := submit_answer(the lock's answer);  F += outcome.frames

One short transaction per step (start, each answer, a relay failure's audit record): no
transaction is open while a frame is out, and every step is committed before the next
frame leaves, so a drive stopped anywhere (gateway lost, node restarted) is resumed by
``POST /v1/registrations/{id}/relay`` from the phase the database holds. Resuming asks
:func:`.registration.fresh_frames` for the phase's frames: in ``proven`` that is a fresh
COMMIT with the next counter (a lock that committed already answers it again).

How a drive ends (the HTTP answer; relay problems are those of remote commands):

================================  =======================================  ============
event                             registration                             answer
================================  =======================================  ============
the lock answers the COMMIT       committed (the lock row exists)          201 / 200
the lock refuses (ERROR, old key) failed (``failure``: its reason)         409 lock-refused
stage a timed out meanwhile       expired                                  409 device-
                                                                           unavailable
no relay on this node, or no      untouched (a new one is not created;     503 gateway-
online gateway sees the lock      nothing is sent)                         unavailable
gateway offline / lost / busy     stays in its phase, resumable            503 gateway-
                                                                           unavailable
lock not in range, timeout,       stays in its phase, resumable            504 lock-
link lost                                                                  unreachable
gateway failure, or an answer     stays in its phase, resumable            502 gateway-
that is not this lock's frame                                              failure
================================  =======================================  ============

Relay problems carry ``registration_id`` and ``phase`` (the phase committed before the
failure: where a resume starts) and ``reason`` (the relay's error code).

One driver at a time. Two interleaved negotiations of one registration (two drives, or a
drive and a nearby client) would hand the lock frames of two exchanges in any order. A
drive therefore holds a claim on its registration (:data:`DRIVES`) from its first step to
its end, and a second drive -- or a client's ``/answers``, ``/frames`` or repeated start
-- gets 409 ``registration-in-progress`` at once instead of waiting: waiting would hold a
second request for the whole exchange only to find it finished, while the 409 says what
to do (read the registration, resume it later). The claim is per RAS process; a cluster
needs a lease in the database (``registrations``) to extend it across nodes.

Audit (no key, no frame): the steps record what they always record (``register.start``,
``register.answer``, ``register.commit``...); the drive adds ``<kind>.relay.intent``
(gateway, phase, before any frame leaves) and ``<kind>.relay`` with the result, the
gateway, the frames sent and why it stopped, in the same transaction as the last step.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import replace
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.protocol import DeviceId
from heslock.ras.keystore import Keystore
from heslock.ras.relay import LockBus, RelayError
from heslock.ras.services import audit
from heslock.ras.services.access import Principal
from heslock.ras.services.commands.errors import (
    BY_CODE,
    GatewayBadAnswer,
    GatewayUnavailable,
    LockRefused,
)
from heslock.ras.services.commands.service import COMMAND_TIMEOUT_S, relay_error_code
from heslock.ras.services.ddms import registration
from heslock.ras.services.ddms.errors import DeviceUnavailable, FrameRefused
from heslock.ras.services.ddms.registration import Outcome, RegPhase
from heslock.ras.services.ddms.runtime import Clock
from heslock.ras.services.errors import Conflict, NotFound, ServiceError
from heslock.ras.store.models import Gateway

log = logging.getLogger(__name__)

#: The gateway's budget per frame: the same as a remote command's (a BLE connect, the
#: write and the lock's answer, with room for one reconnect).
FRAME_TIMEOUT_S: Final = COMMAND_TIMEOUT_S
#: Steps (a frame sent, or the phase's frames asked again) one drive may take before it
#: gives up. A whole exchange is five frames (TIME GET and SET, PART_1, PART_2, COMMIT);
#: the rest is room for COMMIT retries and fresh frames. A lock or gateway whose answers
#: never move the registration forward must not keep a request (and the lock) busy.
MAX_STEPS: Final = 16


class RegistrationInProgress(Conflict):
    """Another drive (or a client's answer) is working on this registration now (409)."""

    code = "registration-in-progress"


class DriveClaims:
    """The registrations being driven in this process: at most one driver each.

    A set, not a lock: a second driver is refused at once (module docstring). Checking and
    taking happen without an ``await`` in between, so on one event loop they are atomic.
    """

    def __init__(self) -> None:
        self._held: set[uuid.UUID] = set()

    def check(self, registration_id: uuid.UUID) -> None:
        """Raise :class:`RegistrationInProgress` while a drive holds ``registration_id``."""
        if registration_id in self._held:
            raise RegistrationInProgress(
                "the registration is being driven through a gateway right now",
                registration_id=str(registration_id),
            )

    @contextmanager
    def hold(self, registration_id: uuid.UUID) -> Iterator[None]:
        """Claim ``registration_id`` for the ``with`` block (or refuse with 409)."""
        self.check(registration_id)
        self._held.add(registration_id)
        try:
            yield
        finally:
            self._held.discard(registration_id)

    def __contains__(self, registration_id: object) -> bool:
        return registration_id in self._held


#: This process's claims (module docstring, "One driver at a time").
DRIVES: Final = DriveClaims()


def where(outcome: Outcome) -> dict[str, Any]:
    """The problem extensions naming a registration and the phase a resume starts from."""
    return {"registration_id": str(outcome.registration_id), "phase": outcome.phase}


def settle(outcome: Outcome) -> Outcome:
    """A finished registration's answer: itself when committed, else its problem."""
    phase = RegPhase(outcome.phase)
    if phase is RegPhase.FAILED:
        raise LockRefused(
            f"the lock refused the {outcome.kind}: {outcome.failure}",
            reason=outcome.failure,
            **where(outcome),
        )
    if phase is RegPhase.EXPIRED:
        raise DeviceUnavailable(
            "the exchange expired before the lock completed it: start again",
            reason="registration-expired",
            **where(outcome),
        )
    return outcome


def _end_result(outcome: Outcome) -> tuple[audit.AuditResult, str | None]:
    phase = RegPhase(outcome.phase)
    if phase is RegPhase.COMMITTED:
        return audit.AuditResult.OK, None
    if phase is RegPhase.FAILED:
        return audit.AuditResult.DENIED, outcome.failure
    return audit.AuditResult.FAILED, phase.value


class RelayedRegistration:
    """Drives registrations through a gateway (module docstring). One per request."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        keystore: Keystore,
        bus: LockBus | None,
        clock: Clock,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.keystore = keystore
        self.bus = bus
        self.clock = clock

    # ------------------------------------------------------------------ entry points

    async def start(
        self,
        principal: Principal,
        ctx: audit.AuditContext,
        device_id: DeviceId,
        name: str,
        *,
        time_sync: bool = False,
        gateway_id: uuid.UUID | None = None,
    ) -> Outcome:
        """Start registering ``device_id`` and drive it to its end (``created`` as usual).

        A live registration of the device by the caller is continued (as a repeated start
        is). With no gateway to carry the frames nothing is created or changed.
        """
        self._bus(None)  # no relay on this node: refuse before anything is written
        with ExitStack() as claim:
            async with self._unit() as session:
                named = await self._named(session, principal, gateway_id)
                first = await registration.start_registration(
                    session,
                    self.keystore,
                    principal,
                    ctx,
                    device_id,
                    name,
                    self._now(),
                    time_sync=time_sync,
                )
                route = await self._claim(session, ctx, first, named, claim, "start")
            final = await self._run(principal, ctx, first, route)
            return replace(final, created=first.created)  # 201 for a new one, as usual

    async def resume(
        self,
        principal: Principal,
        ctx: audit.AuditContext,
        registration_id: uuid.UUID,
        *,
        gateway_id: uuid.UUID | None = None,
    ) -> Outcome:
        """Drive an existing registration from its current phase to its end.

        A finished one is answered as it ended (nothing is sent). When no gateway can
        carry the frames, the phase's fresh frames are rolled back: nothing changes.
        """
        with ExitStack() as claim:
            async with self._unit() as session:
                named = await self._named(session, principal, gateway_id)
                first = await registration.fresh_frames(
                    session, self.keystore, principal, ctx, registration_id, self._now()
                )
                route = await self._claim(session, ctx, first, named, claim, "resume")
            return await self._run(principal, ctx, first, route)

    async def _claim(
        self,
        session: AsyncSession,
        ctx: audit.AuditContext,
        first: Outcome,
        named: str | None,
        claim: ExitStack,
        how: str,
    ) -> tuple[LockBus, str] | None:
        """Inside the first step's transaction: the bus and gateway to use, the claim on
        the registration (held by ``claim``) and the intent record; None when the
        registration has ended already (nothing to carry). Raising rolls the step back."""
        if first.done:
            return None
        bus = self._bus(None if first.created else first)
        gateway = named or await self._route(bus, first)
        claim.enter_context(DRIVES.hold(first.registration_id))
        await self._intent(session, ctx, first, gateway, how)
        return bus, gateway

    async def _run(
        self,
        principal: Principal,
        ctx: audit.AuditContext,
        first: Outcome,
        route: tuple[LockBus, str] | None,
    ) -> Outcome:
        if route is None:
            return settle(first)
        bus, gateway = route
        return await self._drive(bus, principal, ctx, first, gateway)

    # ------------------------------------------------------------------ the loop

    async def _drive(
        self,
        bus: LockBus,
        principal: Principal,
        ctx: audit.AuditContext,
        first: Outcome,
        gateway: str,
    ) -> Outcome:
        device = DeviceId.parse(first.device_id)
        outcome, queue, sent, steps = first, list(first.frames), 0, 0
        while not outcome.done:
            steps += 1
            if steps > MAX_STEPS:
                raise await self._stopped(
                    ctx,
                    outcome,
                    gateway,
                    sent,
                    GatewayBadAnswer(
                        f"the lock's answers did not complete the exchange in {sent} frames",
                        reason="no-progress",
                        **where(outcome),
                    ),
                )
            if not queue:
                # The last answer asked for nothing (e.g. a refusal under the new key
                # outside ``proven``): ask for the phase's frames again.
                outcome = await self._fresh(principal, ctx, outcome, gateway, sent)
                queue = list(outcome.frames)
                continue
            wire = queue.pop(0)
            try:
                answer = await bus.send_frame(gateway, device, wire, FRAME_TIMEOUT_S)
            except RelayError as exc:
                log.info(
                    "DDMS %s %s via %s: %s",
                    outcome.kind,
                    outcome.registration_id,
                    gateway,
                    exc.code,
                )
                problem = BY_CODE[relay_error_code(exc)](
                    exc.detail, reason=exc.code, **where(outcome)
                )
                raise await self._stopped(ctx, outcome, gateway, sent, problem) from None
            sent += 1
            outcome = await self._answer(principal, ctx, outcome, answer, gateway, sent)
            queue.extend(outcome.frames)
        return settle(outcome)

    async def _answer(
        self,
        principal: Principal,
        ctx: audit.AuditContext,
        current: Outcome,
        answer: bytes,
        gateway: str,
        sent: int,
    ) -> Outcome:
        """One step: the lock's answer into the registration, in its own transaction."""
        try:
            async with self._unit() as session:
                outcome = await registration.submit_answer(
                    session,
                    self.keystore,
                    principal,
                    ctx,
                    current.registration_id,
                    answer,
                    self._now(),
                )
                if outcome.done:
                    await self._end(session, ctx, outcome, gateway, sent)
                return outcome
        except FrameRefused as exc:
            # Not this lock's frame (submit_answer audited it and changed nothing): the
            # gateway delivered something else.
            problem = GatewayBadAnswer(exc.detail, reason="bad-answer", **where(current))
            raise await self._stopped(ctx, current, gateway, sent, problem) from None
        except Conflict as exc:
            if type(exc) is not Conflict:
                raise
            # An answer the negotiation did not expect in its phase: say which registration.
            raise Conflict(exc.detail, **where(current)) from None

    async def _fresh(
        self,
        principal: Principal,
        ctx: audit.AuditContext,
        current: Outcome,
        gateway: str,
        sent: int,
    ) -> Outcome:
        async with self._unit() as session:
            outcome = await registration.fresh_frames(
                session, self.keystore, principal, ctx, current.registration_id, self._now()
            )
            if outcome.done:
                await self._end(session, ctx, outcome, gateway, sent)
            return outcome

    # ------------------------------------------------------------------ gateways

    def _bus(self, current: Outcome | None) -> LockBus:
        if self.bus is None:
            extensions = where(current) if current is not None else {}
            raise GatewayUnavailable(
                "no gateway relay runs on this RAS node", reason="no-relay", **extensions
            )
        return self.bus

    async def _named(
        self, session: AsyncSession, principal: Principal, gateway_id: uuid.UUID | None
    ) -> str | None:
        """The bare JID of the caller's gateway ``gateway_id`` (404 for anyone else's).

        Only its owner may have a registration's frames carried by a named gateway; an
        administrator is no exception (the gateway is not theirs to use).
        """
        if gateway_id is None:
            return None
        gateway = await session.get(Gateway, gateway_id)
        if gateway is None or principal.id is None or gateway.owner_id != principal.id:
            raise NotFound("no such gateway")
        if gateway.revoked_at is not None:
            raise Conflict("the gateway is revoked")
        return gateway.jid

    async def _route(self, bus: LockBus, first: Outcome) -> str:
        """The best online gateway that sees the lock, or 503 (the caller rolls back)."""
        gateway = await bus.gateway_for(DeviceId.parse(first.device_id))
        if gateway is None:
            # A registration this request created is rolled back: it does not exist.
            extensions = {} if first.created else where(first)
            raise GatewayUnavailable(
                "no online gateway sees the lock", reason="no-gateway", **extensions
            )
        return gateway

    # ------------------------------------------------------------------ audit

    async def _intent(
        self,
        session: AsyncSession,
        ctx: audit.AuditContext,
        first: Outcome,
        gateway: str,
        how: str,
    ) -> None:
        await audit.record(
            session,
            ctx,
            f"{first.kind}.relay.intent",
            audit.AuditResult.OK,
            target=f"registration:{first.registration_id}",
            device=first.device_id,
            phase=first.phase,
            gateway=gateway,
            via=how,
        )
        log.info(
            "DDMS %s %s: driven through gateway %s from phase %s",
            first.kind,
            first.registration_id,
            gateway,
            first.phase,
        )

    async def _end(
        self,
        session: AsyncSession,
        ctx: audit.AuditContext,
        outcome: Outcome,
        gateway: str,
        sent: int,
    ) -> None:
        result, reason = _end_result(outcome)
        await self._record_end(session, ctx, outcome, gateway, sent, result, reason)

    async def _stopped(
        self,
        ctx: audit.AuditContext,
        current: Outcome,
        gateway: str,
        sent: int,
        problem: ServiceError,
    ) -> ServiceError:
        """Record why a drive stopped before the registration ended; the problem to raise."""
        async with self._unit() as session:
            await self._record_end(
                session,
                ctx,
                current,
                gateway,
                sent,
                audit.AuditResult.FAILED,
                str(problem.extensions.get("reason") or problem.code),
            )
        return problem

    @staticmethod
    async def _record_end(
        session: AsyncSession,
        ctx: audit.AuditContext,
        outcome: Outcome,
        gateway: str,
        sent: int,
        result: audit.AuditResult,
        reason: str | None,
    ) -> None:
        await audit.record(
            session,
            ctx,
            f"{outcome.kind}.relay",
            result,
            target=f"registration:{outcome.registration_id}",
            device=outcome.device_id,
            phase=outcome.phase,
            gateway=gateway,
            sent=sent,
            reason=reason,
        )

    # ------------------------------------------------------------------ plumbing

    def _now(self) -> int:
        return int(self.clock())

    @asynccontextmanager
    async def _unit(self) -> AsyncIterator[AsyncSession]:
        """One step's transaction: committed when the block ends, rolled back on error."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
