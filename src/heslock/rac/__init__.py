"""The remote access client (RAC) SDK: what a lock owner's app needs.

- :class:`AsyncRasClient` / :class:`RasClient`: the RAS HTTPS API, typed, with the
  session's tokens kept in a :class:`TokenStore` and refreshed when they expire;
- :mod:`heslock.rac.nearby`: the client's own BLE radio (scan for locks, carry
  registration and nearby-mode frames);
- :mod:`heslock.rac.profile`: the command line's profile file (server, CA, radio, tokens).

The RAC is a party: it shares only ``heslock.protocol``, ``heslock.errors`` and the
plumbing (``heslock.ble``) with the others, never their code (tests/unit/test_boundaries.py).
Example (docs/api.md, "Client SDK")::

    async with AsyncRasClient("https://ras.example:8443", ca=Path("ca.pem")) as ras:
        challenge = await ras.sessions.login("alice@example.org", password)
        await ras.sessions.send_code(challenge, "email")
        await ras.sessions.second_factor(challenge, input("code: "))
        for lock in await ras.locks.list():
            print(lock.name, lock.bolt)
"""

from __future__ import annotations

from heslock.rac.client import AsyncRasClient, RasClient
from heslock.rac.errors import (
    InvalidArgument,
    NotLoggedIn,
    RasBadAnswer,
    RasError,
    RasProblem,
    RasUnreachable,
    RegistrationFailed,
)
from heslock.rac.models import (
    Account,
    ArrivalConfirmation,
    ArrivalSuggestion,
    CommandResult,
    Contact,
    DateRange,
    FeedEvent,
    Gateway,
    GatewayCredentials,
    Geofence,
    Home,
    Invitation,
    Legitimacy,
    LocationAccepted,
    Lock,
    LockEvent,
    LockRef,
    LoginChallenge,
    NearbyFrame,
    Registration,
    Schedule,
    Session,
    Share,
    SharePage,
    Tokens,
    Validity,
    Window,
)
from heslock.rac.tokens import MemoryTokenStore, SharedTokenStore, TokenStore

__all__ = [
    "Account",
    "ArrivalConfirmation",
    "ArrivalSuggestion",
    "AsyncRasClient",
    "CommandResult",
    "Contact",
    "DateRange",
    "FeedEvent",
    "Gateway",
    "GatewayCredentials",
    "Geofence",
    "Home",
    "InvalidArgument",
    "Invitation",
    "Legitimacy",
    "LocationAccepted",
    "Lock",
    "LockEvent",
    "LockRef",
    "LoginChallenge",
    "MemoryTokenStore",
    "NearbyFrame",
    "NotLoggedIn",
    "RasBadAnswer",
    "RasClient",
    "RasError",
    "RasProblem",
    "RasUnreachable",
    "Registration",
    "RegistrationFailed",
    "Schedule",
    "Session",
    "Share",
    "SharePage",
    "SharedTokenStore",
    "TokenStore",
    "Tokens",
    "Validity",
    "Window",
]
