"""Errors of the sharing services, each with the stable ``code`` of its problem type.

Registered in :mod:`heslock.ras.api.problems` (the status lives there).
"""

from __future__ import annotations

from heslock.ras.services.errors import Conflict, Forbidden


class AccessDenied(Forbidden):
    """The caller holds grants on the lock, but none allows this now.

    ``reason`` (an extension member) is a :class:`.policy.Reason` value: ``permission``,
    ``path``, ``scope``, ``not-yet-valid``, ``expired``, ``spent``, ``no-time-zone`` or
    ``outside-schedule``.
    """

    code = "access-denied"


class ShareLimitReached(Conflict):
    """A lock already has the most active shares the RAS allows (``limit`` extension)."""

    code = "share-limit-reached"
