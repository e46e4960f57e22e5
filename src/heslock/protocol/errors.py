"""Errors of the pure protocol core (see :mod:`heslock.errors` for the whole tree)."""

from __future__ import annotations

from heslock.errors import LocalError, PeerError, UsageError
from heslock.protocol.codes import ReasonCode


class InvalidDeviceId(UsageError, ValueError):
    """Text or bytes that are not a device id (the message says why)."""


class InvalidKey(UsageError, ValueError):
    """A key that is not 16 bytes (AES-128)."""


class ProtocolError(PeerError):
    """Bytes from a peer break the lock protocol. ``reason`` is the wire reason code."""

    def __init__(self, reason: ReasonCode, message: str = "") -> None:
        self.reason = reason
        super().__init__(message or reason.name.lower().replace("_", " "))


class FrameRejected(ProtocolError):
    """A frame refused by the acceptance rules (docs/protocol.md, "Acceptance")."""


class NegotiationError(LocalError):
    """A key-negotiation step was called in a state that does not allow it."""
