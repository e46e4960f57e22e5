"""Errors of remote commands, each with the stable ``code`` of its problem type.

Registered in :mod:`heslock.ras.api.problems` (status there, never here). A refusal
carries what the client needs to decide: the command's id and state, and the lock's
reason code or the relay's error code.
"""

from __future__ import annotations

from typing import Final

from heslock.ras.services.errors import Conflict, InvalidInput, ServiceError, Unavailable


class IdempotencyKeyMissing(InvalidInput):
    """A command without an ``Idempotency-Key`` header (or with a malformed one)."""

    code = "idempotency-key-missing"


class IdempotencyKeyReused(InvalidInput):
    """The key was used before for a different command or lock."""

    code = "idempotency-key-reused"


class CommandInProgress(Conflict):
    """The first request with this key is still waiting for the lock."""

    code = "command-in-progress"


class GatewayUnavailable(Unavailable):
    """No online gateway sees the lock, or its session ended (503)."""

    code = "gateway-unavailable"


class LockUnreachable(ServiceError):
    """The gateway could not reach the lock, or no answer came in time (504)."""

    code = "lock-unreachable"


class GatewayBadAnswer(ServiceError):
    """The gateway failed, or what came back is not this lock's answer to this frame (502)."""

    code = "gateway-failure"


class LockRefused(Conflict):
    """The lock answered with an ERROR frame; ``reason`` is its ReasonCode name (409)."""

    code = "lock-refused"


class OutcomeUnknown(Conflict):
    """A re-sent frame could not settle the outcome: read the lock's status and log."""

    code = "command-outcome-unknown"


class NotExecuted(Conflict):
    """Reconciled from the lock's log: the lock never executed the frame and never will
    (its clock is past the frame's window). Send a new command, with a new key (409)."""

    code = "command-not-executed"


class FrameExpired(Conflict):
    """Nearby mode: this key's frame is past its lifetime; ask for a new one (new key)."""

    code = "frame-expired"


class AnswerRefused(InvalidInput):
    """Nearby mode: the posted answer is not this lock's answer to this frame (422).

    The same problem type as a refused registration answer: nothing changes but the audit.
    """

    code = "frame-refused"


#: Every error above by code, to replay a stored answer as the same exception.
BY_CODE: Final[dict[str, type[ServiceError]]] = {
    cls.code: cls
    for cls in (
        IdempotencyKeyMissing,
        IdempotencyKeyReused,
        CommandInProgress,
        GatewayUnavailable,
        LockUnreachable,
        GatewayBadAnswer,
        LockRefused,
        OutcomeUnknown,
        NotExecuted,
        FrameExpired,
    )
}
