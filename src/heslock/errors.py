"""The heslock exception tree.

Every exception heslock raises on purpose derives from :class:`HeslockError`. The tree
separates what went wrong *here* (a caller's mistake, bad configuration) from what a
*peer* sent us (bytes, XML, JSON that break the protocol), because the two call for
different handling: a local error is a bug or a usage problem to report, a peer error is
expected traffic to refuse, count and log without a traceback::

    HeslockError
    ├── LocalError            caused on this side: misuse of an API, bad configuration
    │   └── UsageError        a bad argument from a person (CLI flag, config value)
    └── PeerError             caused by the other side of a connection
        └── ProtocolError     bytes that break the wire protocol; carries a ``ReasonCode``
            └── FrameRejected a 16/20-byte lock frame refused by the acceptance rules

Errors that cross the wire carry a code from one registry: lock frames use
``heslock.protocol.codes.ReasonCode`` (docs/protocol.md, "Reason codes").

This module is part of the pure core: it imports nothing outside the standard library.
"""

from __future__ import annotations


class HeslockError(Exception):
    """Root of every exception heslock raises on purpose."""


class LocalError(HeslockError):
    """Something on this side is wrong: an API was misused or configuration is invalid."""


class UsageError(LocalError):
    """A person gave a bad argument (a CLI flag, a configuration value, an id)."""


class PeerError(HeslockError):
    """The other side of a connection sent something we refuse."""
