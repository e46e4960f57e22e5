"""Nearby mode: the client carries a command frame to the lock over its own BLE link.

ISO/IEC 14543-5-104 lets a RAC next to the door reach the BSLD directly over BLE, with
no gateway. The RAS still seals the frame (it alone holds the lock key) and verifies the
answer; the client is a relay like a gateway and learns nothing from the bytes. It is
:class:`~heslock.ras.services.commands.service.CommandService` with the relay step
handed to the client:

1. ``POST /v1/locks/{id}/frames`` (Idempotency-Key) -- the intent, exactly as a remote
   command's: authorise (the caller's grants by the ``nearby`` path: the owner, or a
   share that allows it now), take the lock's next counter, seal, write the
   ``commands`` row (``path`` ``nearby``, ``pending``, ``expires_at``), the audit intent
   and the share's use (a one-time key is spent by handing out its frame); answer the
   sealed frame.
2. The client writes it to the lock and reads the lock's answer.
3. ``POST /v1/locks/{id}/frames/{command_id}/answer`` -- the outcome, exactly as a remote
   answer's, for the user the frame was handed to (no grant is checked again: a frame
   handed out before a revocation still gets its outcome recorded):
   :func:`~heslock.ras.services.commands.service.verify` (this lock's answer to this
   frame: same op and sequence under the lock key), then
   :func:`~heslock.ras.services.commands.service.apply` and the audit record.

Lifetime. A frame is handed out (again, for the same key) for :data:`NEARBY_FRAME_TTL_S`
only. The lock bounds it too: it accepts a frame while its clock is within its timestamp
window of the frame's timestamp (30 s by default), so a frame carried in a pocket for
minutes is refused STALE whatever the RAS says. An answer posted *after* ``expires_at``
is still verified and recorded: the lock may have acted, and the truth matters more than
the deadline. A frame whose lifetime passed without an answer becomes ``unknown`` and is
reconciled from the lock's log (:mod:`heslock.ras.services.commands.reconcile`).

=============  ==============================================  =========  ==================
from           event                                           to         answer
=============  ==============================================  =========  ==================
(new)          POST /frames                                    pending    201 the frame
any            POST /frames, same key, before ``expires_at``   (same)     201 the same frame
any            POST /frames, same key, from ``expires_at`` on  (same)     409 frame-expired
pending,       answer verifies: the operation's response       ok         200
unknown,       answer verifies: ERROR REPLAY (the lock         ok         200, ``confirmed``
failed         accepted these bytes before)                               ``replay``
               answer verifies: any other ERROR                refused    409 lock-refused
ok, refused    answer verifies                                 (same)     the stored answer
any            answer does not verify                          (same)     422 frame-refused
pending        ``expires_at`` passed without an answer         unknown    (reconciler)
=============  ==============================================  =========  ==================

A repeated identical answer gets the same result (the stored answer). Never is a second
frame sealed for a key: a new frame needs a new Idempotency-Key.
"""

from __future__ import annotations

import base64
import logging
import uuid
from datetime import timedelta
from typing import Any, Final

from heslock.protocol import Profile
from heslock.ras.keystore import LOCK_KEY
from heslock.ras.services import audit
from heslock.ras.services.access import Principal
from heslock.ras.services.commands.errors import AnswerRefused, FrameExpired, OutcomeUnknown
from heslock.ras.services.commands.service import (
    OPS,
    CommandService,
    LockTarget,
    verify,
)
from heslock.ras.services.errors import NotFound, ServiceError
from heslock.ras.store.models import Command, CommandState, Device, Lock
from heslock.ras.store.models.commands import CommandPath

logger = logging.getLogger(__name__)

#: How long a nearby frame is handed out. The client has the frame in hand and needs a
#: BLE connect (one advertising interval, up to ~2 s), a write and the answer: a few
#: seconds, with room for a person walking up to the door. 20 s is also inside the
#: lock's default +/-30 s timestamp window with 10 s to spare for the lock's clock being
#: ahead of the RAS's: past ``expires_at`` a frame is as good as refused anyway.
NEARBY_FRAME_TTL_S: Final = 20


def frame_view(row: Command, lock: Lock) -> dict[str, Any]:
    """The answer of ``POST /frames``: the sealed frame and what the client needs."""
    assert row.expires_at is not None
    return {
        "command_id": str(row.id),
        "lock_id": str(lock.id),
        "device_id": lock.device_id,
        "command": row.command,
        "frame": base64.b64encode(row.frame).decode("ascii"),
        "expires_at": row.expires_at.isoformat(),
    }


class NearbyCommands(CommandService):
    """Nearby mode (module docstring). One per request; cheap to build."""

    async def issue(
        self,
        principal: Principal,
        ctx: audit.AuditContext,
        lock_id: uuid.UUID,
        command: str,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Seal a frame for ``command`` (or hand out the key's frame again)."""
        if command not in OPS:
            raise ServiceError("unreachable: the router validates the command")
        path, now = CommandPath.NEARBY, self.now()
        async with (
            self._refusals_audited(ctx, lock_id, command, path),
            self.sessionmaker() as session,
            session.begin(),
        ):
            opened = await self._open(
                session, principal, lock_id, command, path, idempotency_key, now
            )
            target, existing = opened.target, opened.existing
            if existing is not None:
                self._check_same(existing, target.lock, command, CommandPath.NEARBY)
                expired = existing.expires_at is None or existing.expires_at <= now
                if expired or existing.key_version != target.lock.key_version:
                    raise FrameExpired(
                        "this key's frame expired: ask for a new frame with a new Idempotency-Key",
                        command_id=str(existing.id),
                        state=existing.state,
                        reason=existing.reason,
                        expires_at=existing.expires_at.isoformat() if existing.expires_at else None,
                    )
                return frame_view(existing, target.lock)
            assert principal.id is not None  # only a user's grants allow a command
            row = await self._new_command(
                session,
                ctx,
                principal.id,
                target,
                idempotency_key,
                command,
                path,
                expires_at=now + timedelta(seconds=NEARBY_FRAME_TTL_S),
            )
            await self._record_use(session, ctx, opened, row)
            return frame_view(row, target.lock)

    async def answer(
        self,
        principal: Principal,
        ctx: audit.AuditContext,
        lock_id: uuid.UUID,
        command_id: uuid.UUID,
        wire: bytes,
    ) -> dict[str, Any]:
        """Verify the lock's answer to a nearby frame and settle the command."""
        async with self.sessionmaker() as session:
            lock = await session.get(Lock, lock_id)
            if lock is None:
                raise NotFound("no such lock")
            # Only whoever was handed the frame answers for it. No grant is checked: the
            # frame left while it was allowed, so what the lock did with it is recorded
            # even if the share was revoked since (the lock's window bounds the frame).
            row = await session.get(Command, command_id)
            if (
                row is None
                or row.lock_id != lock.id
                or row.user_id != principal.id
                or row.path != CommandPath.NEARBY.value
            ):
                raise NotFound("no such nearby command")
            if row.key_version != lock.key_version:
                raise OutcomeUnknown(
                    "the lock key changed since this frame was issued: read the lock's status",
                    command_id=str(row.id),
                    state=row.state,
                )
            device = await session.get(Device, lock.device_id)
            if device is None:
                raise NotFound("no such lock")
            key = self.keystore.open(LOCK_KEY, str(lock.id), lock.lock_key_enc)
            prep = self._prepared(row, LockTarget(lock, Profile(device.profile), key), resend=False)
        settled = verify(prep, wire)
        if settled.reason == "bad-answer":
            async with self.sessionmaker() as session:
                await audit.record_and_commit(
                    session,
                    ctx,
                    "lock.command.answer",
                    audit.AuditResult.DENIED,
                    target=f"lock:{lock_id}",
                    command=prep.command,
                    command_id=str(prep.command_id),
                    reason=settled.reason,
                    path=CommandPath.NEARBY.value,
                )
            logger.info("nearby answer for command %s refused: %s", command_id, settled.detail)
            raise AnswerRefused(settled.detail, command_id=str(prep.command_id))
        assert settled.state is not CommandState.UNKNOWN  # verify: only bad answers are
        return await self._outcome(ctx, prep, (settled, None))
