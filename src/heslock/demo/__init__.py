"""``heslock demo``: the whole system on one machine, as separate processes.

:class:`DemoSystem` (contract C4) starts the RAS, the radio hub and three simulated
locks of three makers, and gateways on request; :mod:`heslock.demo.script` is the guided
run ``heslock demo`` shows on top of it with the client SDK (:mod:`heslock.rac`).
This package is a composition root: it may import several parties.
"""

from __future__ import annotations

from heslock.demo.children import DemoError
from heslock.demo.system import DemoGateway, DemoLock, DemoSystem

__all__ = ["DemoError", "DemoGateway", "DemoLock", "DemoSystem"]
