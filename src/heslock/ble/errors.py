"""Errors of the BLE plumbing (see :mod:`heslock.errors` for the whole tree)::

HeslockError
├── UsageError
│   └── LinkSpecError      a ``--link`` value that names no link
└── BleError               a BLE operation failed (radio, link, peer)
    ├── BleTimeout         a connect or GATT call did not finish in time
    ├── LinkLost           the connection dropped while an operation waited on it
    └── ServiceNotFound    the peer lacks the maker's frame service or characteristics
"""

from __future__ import annotations

from heslock.errors import HeslockError, UsageError


class LinkSpecError(UsageError, ValueError):
    """A link specification that is not ``local``, ``hub:HOST:PORT`` or an HCI transport."""


class BleError(HeslockError):
    """A BLE operation failed (a radio, a hub or a peer could not be reached)."""

    #: The command line's "unreachable" exit code (heslock.cli): a BLE failure is always
    #: something that could not be reached or did not answer.
    exit_code = 5


class BleTimeout(BleError, TimeoutError):
    """A connect or GATT operation did not complete within its timeout."""


class LinkLost(BleError, ConnectionError):
    """The BLE connection was lost while an operation was waiting on it."""


class ServiceNotFound(BleError, LookupError):
    """The peer does not offer the expected GATT service or characteristic."""
