"""Errors of the RAS frame relay: why a frame did not come back from a lock.

A frame travels RAS -> BGW (XMPP IQ) -> BSLD (BLE) and back (ISO/IEC 14543-5-104,
"Control flow"). Each way it can fail has one class here; the HTTP side maps them to its
answers (gateway offline 503, lock out of range or timed out 504, ...) without knowing
whether the bus underneath is in-process or a cluster transport::

    HeslockError
    ├── LocalError
    │   └── UsageError              a bad argument (timeout, frame length, JID): a bug here
    └── RelayError                  code, may_have_executed
        ├── GatewayOffline          gateway-offline     no session: nothing was sent
        │   └── GatewayLost         gateway-lost        the session ended (or the relay
        │                                               stopped) while the frame was out
        ├── RelayTimeout            relay-timeout       the gateway did not answer in time
        │   └── LockTimeout         ble-timeout         the gateway reached no lock, or the
        │                                               lock did not answer, in time
        ├── LockNotInRange          lock-not-in-range   the gateway does not see the lock
        ├── LockBusy                lock-busy           too many frames queued for the lock
        ├── LinkLost                link-lost           the BLE link dropped during the write
        ├── GatewayOverloaded       gateway-overloaded  the gateway's (or our) queue is full
        └── GatewayFailure          gateway-failure     any other error answer, or an answer
                                                        that is not the lock's frame

The five lock conditions are those of :class:`heslock.xmpp.lockns.LockCondition`
(urn:heslock:lock:1, docs/protocol.md); :data:`BY_CONDITION` maps them. Every class has a
stable ``code`` (:data:`BY_CODE`), so a cluster transport can send the code and rebuild the
same exception on the other node (:func:`from_code`).

``may_have_executed`` is what the caller must know to stay safe: when it is true the
lock may have acted on the frame, so the outcome is *unknown* and is reconciled by
reading the lock's state and log, or by sending the **same bytes** again (the lock answers
a duplicate from its replay cache without acting twice). It is false only where the frame
provably never reached a lock: no session to send it on, the gateway refused to queue it
(lock-busy), or the gateway does not see the lock (lock-not-in-range).
"""

from __future__ import annotations

from typing import ClassVar, Final

from heslock.errors import HeslockError
from heslock.xmpp.lockns import LockCondition


class RelayError(HeslockError):
    """A frame could not be relayed to a lock and back (module docstring)."""

    code: ClassVar[str] = "relay-error"
    #: Default for the class; an instance may say more (see the module docstring).
    may_have_executed_by_default: ClassVar[bool] = True

    def __init__(self, detail: str, *, may_have_executed: bool | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.may_have_executed = (
            self.may_have_executed_by_default if may_have_executed is None else may_have_executed
        )


class GatewayOffline(RelayError):
    """The gateway has no session with this RAS: the frame was not sent."""

    code = "gateway-offline"
    may_have_executed_by_default = False


class GatewayLost(GatewayOffline):
    """The gateway's session ended while the frame was out: the lock may have acted."""

    code = "gateway-lost"
    may_have_executed_by_default = True


class RelayTimeout(RelayError):
    """No answer from the gateway within the request's deadline."""

    code = "relay-timeout"


class LockTimeout(RelayTimeout):
    """The gateway could not connect to the lock, or the lock did not answer, in time."""

    code = "ble-timeout"


class LockNotInRange(RelayError):
    """The gateway does not see the lock (it was never written to)."""

    code = "lock-not-in-range"
    may_have_executed_by_default = False


class LockBusy(RelayError):
    """The gateway holds too many frames for this lock already (it was not queued)."""

    code = "lock-busy"
    may_have_executed_by_default = False


class LinkLost(RelayError):
    """The BLE link dropped during the write: the lock may have executed the frame."""

    code = "link-lost"


class GatewayOverloaded(RelayError):
    """The gateway's queues or BLE links are full (or this RAS's queue to it is)."""

    code = "gateway-overloaded"


class GatewayFailure(RelayError):
    """The gateway answered with an error naming no lock condition, or with a bad frame."""

    code = "gateway-failure"


#: The exception for each application condition of urn:heslock:lock:1.
BY_CONDITION: Final[dict[LockCondition, type[RelayError]]] = {
    LockCondition.LOCK_NOT_IN_RANGE: LockNotInRange,
    LockCondition.LOCK_BUSY: LockBusy,
    LockCondition.BLE_TIMEOUT: LockTimeout,
    LockCondition.LINK_LOST: LinkLost,
    LockCondition.GATEWAY_OVERLOADED: GatewayOverloaded,
}

#: Every relay error by its ``code`` (what a cluster transport carries).
BY_CODE: Final[dict[str, type[RelayError]]] = {
    cls.code: cls
    for cls in (
        RelayError,
        GatewayOffline,
        GatewayLost,
        RelayTimeout,
        LockTimeout,
        LockNotInRange,
        LockBusy,
        LinkLost,
        GatewayOverloaded,
        GatewayFailure,
    )
}


def from_code(code: str, detail: str, *, may_have_executed: bool | None = None) -> RelayError:
    """Rebuild the exception a peer node reported; an unknown code is a plain RelayError.

    An unknown code keeps ``may_have_executed`` true unless told otherwise: a node that
    cannot say what happened cannot promise the lock did nothing.
    """
    cls = BY_CODE.get(code, RelayError)
    return cls(detail, may_have_executed=may_have_executed)


__all__ = [
    "BY_CODE",
    "BY_CONDITION",
    "GatewayFailure",
    "GatewayLost",
    "GatewayOffline",
    "GatewayOverloaded",
    "LinkLost",
    "LockBusy",
    "LockNotInRange",
    "LockTimeout",
    "RelayError",
    "RelayTimeout",
    "from_code",
]
