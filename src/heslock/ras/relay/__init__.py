"""The RAS's frame relay: its XMPP endpoint for BGWs, and the bus the services call.

ISO/IEC 14543-5-104, "Control flow": RAS -> BGW (XMPP over TLS) -> BSLD (BLE) and back.
One module each::

    errors    why a frame did not come back (one class per outcome; ``code`` registry)
    routing   gateway presence, and the lock -> gateway table built from scan reports
    bus       LockBus, the interface services use; notices; LocalBus (single node)
    endpoint  RelayEndpoint: the XmppServer, its listeners, frame requests

The HTTP side depends only on :class:`LockBus` and the errors, so a cluster transport
(NATS request/reply, a subject per gateway) can replace :class:`LocalBus` later.
"""

from heslock.ras.relay.bus import (
    LocalBus,
    LockBus,
    LockEventNotice,
    PresenceNotice,
    ScanNotice,
    Unsubscribe,
)
from heslock.ras.relay.endpoint import RelayEndpoint
from heslock.ras.relay.errors import (
    GatewayFailure,
    GatewayLost,
    GatewayOffline,
    GatewayOverloaded,
    LinkLost,
    LockBusy,
    LockNotInRange,
    LockTimeout,
    RelayError,
    RelayTimeout,
)
from heslock.ras.relay.routing import GatewayInfo, RoutingPolicy, Sighting

__all__ = [
    "GatewayFailure",
    "GatewayInfo",
    "GatewayLost",
    "GatewayOffline",
    "GatewayOverloaded",
    "LinkLost",
    "LocalBus",
    "LockBus",
    "LockBusy",
    "LockEventNotice",
    "LockNotInRange",
    "LockTimeout",
    "PresenceNotice",
    "RelayEndpoint",
    "RelayError",
    "RelayTimeout",
    "RoutingPolicy",
    "ScanNotice",
    "Sighting",
    "Unsubscribe",
]
