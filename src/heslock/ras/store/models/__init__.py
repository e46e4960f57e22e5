"""Every RAS table, grouped by the service of ISO/IEC 14543-5-104 that owns it.

- :mod:`.udms` — user data management: users, contacts, credentials, codes, sessions.
- :mod:`.ddms` — device data management: devices, bound locks, registrations, gateways.
- :mod:`.commands` — remote control: commands sent to locks, events locks sent.
- :mod:`.sharing` — grouping and sharing: homes, their locks and gateways, shares.
- :mod:`.feed` — the user-visible event feed (live events, SSE ids).
- :mod:`.geofence` — geofences, location reports (personal data), arrival suggestions.
- :mod:`.oauth` — third-party apps, their grants, codes and tokens (TPSP, issue 8).
- :mod:`.webhooks` — third-party apps' webhook subscriptions and delivery log (issue 8).
- :mod:`.scs`  — security authentication support: audit log, rate-limit buckets.
- :mod:`.xmpp` — people's XMPP logins (SCRAM verifiers only), for their live events.

Secrets (factory keys, lock keys, TOTP seeds) are stored only as keystore envelopes
(``*_enc`` columns, :mod:`heslock.ras.keystore`); passwords, codes and refresh tokens
only as hashes. Importing this package registers every table on ``Base.metadata``.
"""

from heslock.ras.store.models.commands import Command, CommandState, LockEventRecord
from heslock.ras.store.models.ddms import Device, DeviceStatus, Gateway, Lock, Registration
from heslock.ras.store.models.feed import FeedEvent, FeedPath
from heslock.ras.store.models.geofence import ArrivalSuggestion, Geofence, LocationReport
from heslock.ras.store.models.oauth import (
    ClientType,
    OAuthClient,
    OAuthCode,
    OAuthConsentTicket,
    OAuthGrant,
    OAuthToken,
)
from heslock.ras.store.models.scs import AuditRecord, RateLimitBucket
from heslock.ras.store.models.sharing import (
    Home,
    HomeGateway,
    HomeLock,
    Share,
    ShareLock,
    ShareScope,
)
from heslock.ras.store.models.udms import (
    AccessToken,
    Contact,
    ContactKind,
    LoginChallenge,
    OtpCode,
    PasswordCredential,
    RefreshToken,
    TotpSecret,
    User,
    UserSession,
)
from heslock.ras.store.models.webhooks import (
    WebhookDelivery,
    WebhookState,
    WebhookSubscription,
)
from heslock.ras.store.models.xmpp import XmppLogin

__all__ = [
    "AccessToken",
    "ArrivalSuggestion",
    "AuditRecord",
    "ClientType",
    "Command",
    "CommandState",
    "Contact",
    "ContactKind",
    "Device",
    "DeviceStatus",
    "FeedEvent",
    "FeedPath",
    "Gateway",
    "Geofence",
    "Home",
    "HomeGateway",
    "HomeLock",
    "LocationReport",
    "Lock",
    "LockEventRecord",
    "LoginChallenge",
    "OAuthClient",
    "OAuthCode",
    "OAuthConsentTicket",
    "OAuthGrant",
    "OAuthToken",
    "OtpCode",
    "PasswordCredential",
    "RateLimitBucket",
    "RefreshToken",
    "Registration",
    "Share",
    "ShareLock",
    "ShareScope",
    "TotpSecret",
    "User",
    "UserSession",
    "WebhookDelivery",
    "WebhookState",
    "WebhookSubscription",
    "XmppLogin",
]
