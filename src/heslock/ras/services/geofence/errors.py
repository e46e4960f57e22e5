"""Errors of the geofence services, each with the stable ``code`` of its problem type.

Registered in :mod:`heslock.ras.api.problems` (the status lives there). The four
refusals of a remote unlock are 403s: the caller may unlock the lock, but the fence's
opt-in policy does not let it through *from where they are* (or we cannot tell).
"""

from __future__ import annotations

from typing import Final

from heslock.ras.services.errors import Conflict, Forbidden
from heslock.ras.services.geofence.policy import Verdict


class GeofenceRefused(Forbidden):
    """Base of the remote-unlock refusals (``lock_id`` extension)."""


class GeofenceOutside(GeofenceRefused):
    """The latest report is not provably inside the lock's fence."""

    code = "geofence-outside"


class LocationStale(GeofenceRefused):
    """The latest report is too old (or from the future)."""

    code = "location-stale"


class LocationInaccurate(GeofenceRefused):
    """The latest report's accuracy is worse than the fence accepts."""

    code = "location-inaccurate"


class LocationMissing(GeofenceRefused):
    """The caller has sent no location report (kept within the retention time)."""

    code = "location-missing"


class SuggestionNotConfirmable(Conflict):
    """An arrival suggestion that expired or was confirmed already (``reason``)."""

    code = "suggestion-not-confirmable"


#: The refusal raised for each verdict that is not INSIDE.
REFUSALS: Final[dict[Verdict, type[GeofenceRefused]]] = {
    Verdict.OUTSIDE: GeofenceOutside,
    Verdict.STALE: LocationStale,
    Verdict.INACCURATE: LocationInaccurate,
    Verdict.MISSING: LocationMissing,
}
