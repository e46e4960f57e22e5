"""DDMS errors with their own problem types (registered in ``ras/api/problems.py``)."""

from __future__ import annotations

from heslock.ras.services.errors import Conflict, InvalidInput


class ImportRejected(InvalidInput):
    """A manufacturer file had bad records; nothing was imported. ``lines`` says why."""

    code = "import-rejected"


class DeviceUnavailable(Conflict):
    """The device cannot be registered now; ``reason`` is the legitimacy reason."""

    code = "device-unavailable"


class FrameRefused(InvalidInput):
    """A relayed answer is not a frame of this lock for this exchange (nothing changed)."""

    code = "frame-refused"
