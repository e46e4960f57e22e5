"""What DDMS services need from the process that hosts them: a clock and session hooks.

The services never read the time themselves (tests move a clock instead of sleeping) and
never reach into the XMPP server: revoking a gateway or rotating its secret calls a
:class:`GatewaySessionHook`, which the XMPP endpoint implements to drop the gateway's
live session. Until it is installed, :class:`NoGatewaySessions` does nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

Clock = Callable[[], float]


class GatewaySessionHook(Protocol):
    """Called after a gateway's credentials stop being valid (the change is committed)."""

    async def gateway_disconnect(self, gateway_id: uuid.UUID, jid: str, reason: str) -> None:
        """Close every live session of ``jid`` (``reason``: ``revoked`` or ``secret-rotated``)."""


class NoGatewaySessions:
    """The default hook: no XMPP endpoint runs in this process, so there is nothing to kill."""

    async def gateway_disconnect(self, gateway_id: uuid.UUID, jid: str, reason: str) -> None:
        return None


@dataclass
class DdmsRuntime:
    """Per-process DDMS collaborators (``app.state.ddms`` in the HTTP app)."""

    clock: Clock = time.time
    gateway_sessions: GatewaySessionHook = field(default_factory=NoGatewaySessions)

    def now(self) -> int:
        """Unix seconds, as frames carry them."""
        return int(self.clock())
