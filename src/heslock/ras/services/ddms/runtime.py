"""What DDMS services need from the process that hosts them: a clock and session hooks.

The services never read the time themselves (tests move a clock instead of sleeping) and
never reach into the XMPP server: revoking a gateway or rotating its secret calls a
:class:`GatewaySessionHook`, which the XMPP endpoint implements to drop the gateway's
live session. Until it is installed, :class:`NoGatewaySessions` does nothing;
:class:`RelayGatewaySessions` is the one ``heslock ras serve`` installs next to its
:class:`~heslock.ras.relay.RelayEndpoint`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from heslock.xmpp.errors import StreamErrorCondition
from heslock.xmpp.jid import Jid, JidMalformed

if TYPE_CHECKING:
    from heslock.ras.relay import RelayEndpoint

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class GatewaySessionHook(Protocol):
    """Called after a gateway's credentials stop being valid (the change is committed)."""

    async def gateway_disconnect(self, gateway_id: uuid.UUID, jid: str, reason: str) -> None:
        """Close every live session of ``jid`` (``reason``: ``revoked`` or ``secret-rotated``)."""


class NoGatewaySessions:
    """The default hook: no XMPP endpoint runs in this process, so there is nothing to kill."""

    async def gateway_disconnect(self, gateway_id: uuid.UUID, jid: str, reason: str) -> None:
        return None


#: Why the RAS ends a gateway's stream, by hook reason. RFC 6120 4.9.3.12 ``not-authorized``:
#: the account may no longer hold a session (revoked, or its secret replaced). The BGW
#: then reconnects with back-off and fails SASL until it is given a valid secret.
DISCONNECT_CONDITION: Final = StreamErrorCondition.NOT_AUTHORIZED


class RelayGatewaySessions:
    """Ends a revoked (or re-keyed) gateway's live XMPP session on the RAS's relay.

    The new credentials are already committed when the hook runs, so the gateway cannot
    log in again with the old secret (the SCS credential store reads them on each login).
    """

    def __init__(self, endpoint: RelayEndpoint) -> None:
        self.endpoint = endpoint

    async def gateway_disconnect(self, gateway_id: uuid.UUID, jid: str, reason: str) -> None:
        if not self.endpoint.running:
            return
        try:
            bare = Jid.parse(jid).bare
        except (JidMalformed, ValueError):
            logger.warning("gateway %s: cannot end a session of a malformed JID", gateway_id)
            return
        if self.endpoint.server.disconnect(bare, DISCONNECT_CONDITION, f"gateway {reason}"):
            logger.info("gateway %s: ended its XMPP session (%s)", gateway_id, reason)


@dataclass
class DdmsRuntime:
    """Per-process DDMS collaborators (``app.state.ddms`` in the HTTP app)."""

    clock: Clock = time.time
    gateway_sessions: GatewaySessionHook = field(default_factory=NoGatewaySessions)

    def now(self) -> int:
        """Unix seconds, as frames carry them."""
        return int(self.clock())
