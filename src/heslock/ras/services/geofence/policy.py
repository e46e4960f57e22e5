"""Geofence policy: distance, fences, location reports and the pure decisions on them.

Pure (no I/O, no clock: ``now`` is always passed in). :mod:`.service` loads the rows and
calls these functions; every rule of the feature is here and unit-tested.

**Distance** is the haversine great-circle distance on a sphere of the IUGG mean Earth
radius R1 = 6 371 008.8 m (the mean of the WGS-84 ellipsoid's three semi-axes). Against
the WGS-84 geodesic its relative error is at most :data:`SPHERE_ERROR` (0.57 %: the
meridian near the equator, where one degree is 110 574 m on the ellipsoid and 111 195 m
on the sphere); for a 20 m fence that is 0.1 m, for a 50 km fence at most 285 m. So that
the error can never make a fix count as inside, :func:`classify` inflates the distance by
that bound before comparing. Numerically the haversine form is well-conditioned for
the short distances fences are about (the ``asin`` argument is clamped to [0, 1]).

**A fix is inside** a fence only if the whole disc of its uncertainty is::

    distance * (1 + SPHERE_ERROR) + accuracy_m  <=  radius_m        -> INSIDE
    distance * (1 - SPHERE_ERROR) - accuracy_m  >   radius_m        -> OUTSIDE
    anything in between                                             -> UNCERTAIN

Conservative on purpose: a fix that *might* be outside never opens anything, and a fix
that might be inside is not "outside" either -- an uncertain fix changes no arrival
state, which is also the hysteresis that stops a phone jittering on the fence's edge
from raising a suggestion on every report.

**Refused reports** (checked in this order, the first that applies is the answer):

==========  ==================================================================
missing     no report at all
stale       older than the policy's ``max_age_s`` (default 120 s), or taken more
            than :data:`MAX_FUTURE_SKEW_S` (10 s) after ``now`` (a client clock
            ahead, or a forged time)
inaccurate  ``accuracy_m`` above the fence's limit: ``min(max_accuracy_m, radius/2)``
            (default ``max_accuracy_m`` 100 m). Half the radius because a fix
            whose uncertainty is more than half the fence can be "inside" only
            within a tiny core; refusing it says *why* instead of "outside"
==========  ==================================================================

**Remote unlock** (:func:`remote_unlock_allowed`): when the fence's opt-in
``remote_unlock_inside`` policy is on, the person's latest report must be fresh,
accurate and INSIDE; otherwise the refusal names the reason. With the policy off the
fence has no say. This check *narrows* what the sharing policy already allows: a
location is never a reason to allow anything.

**Arrival** (:func:`arrival`): when the fence's ``arrival`` mode is not ``off`` and a
fresh, accurate report is INSIDE while the person's previous definite presence was
OUTSIDE or unknown (no earlier definite report), the person is *entering*: a suggestion
is raised that expires :data:`SUGGESTION_TTL_S` later -- unless the door was opened by
other means (a manual turn, the door sensor, any command) less than
``suppress_after_open_s`` ago: then the suggestion is suppressed (the misfire users
report: you walk in through the door someone just opened, and the phone asks to unlock
it). State table:

==============  ==============  ===================  ===============================
previous        current         door opened within   result
                                suppression window
==============  ==============  ===================  ===============================
any             refused / OUT   --                   NONE (nothing to suggest)
any             UNCERTAIN       --                   NONE (presence unchanged)
INSIDE          INSIDE          --                   NONE (not entering: staying)
OUTSIDE / none  INSIDE          yes                  SUPPRESSED
OUTSIDE / none  INSIDE          no                   SUGGEST (expires after the TTL)
==============  ==============  ===================  ===============================

Both arrival modes only ever *suggest*: ``suggest`` for a quiet notification,
``auto_unlock`` for a one-tap "unlock now?" prompt on arrival. Neither unlocks: the
person confirms the suggestion (:func:`confirmable`: the same person, within its
validity, once) and the answer tells the client to send the unlock as a normal remote
command, authorised there like any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

#: IUGG mean Earth radius R1 = (2a + b) / 3 of WGS-84, in metres.
EARTH_RADIUS_M: Final = 6_371_008.8
#: Largest relative error of the spherical distance against the WGS-84 geodesic.
SPHERE_ERROR: Final = 0.0057
#: A fence's radius: below 20 m no phone fix is good enough; above 50 km it is no fence.
MIN_RADIUS_M: Final = 20.0
MAX_RADIUS_M: Final = 50_000.0
#: A report's accuracy (the radius of its 68 % disc, as phones report it) is positive and
#: at most this (a coarse cell-tower fix); larger values are nonsense, not "inaccurate".
MAX_REPORTED_ACCURACY_M: Final = 100_000.0
#: Defaults and bounds of a fence's policy knobs.
DEFAULT_MAX_AGE_S: Final = 120
MIN_MAX_AGE_S: Final = 10
MAX_MAX_AGE_S: Final = 900
DEFAULT_MAX_ACCURACY_M: Final = 100.0
MIN_MAX_ACCURACY_M: Final = 5.0
MAX_MAX_ACCURACY_M: Final = 1_000.0
DEFAULT_SUPPRESS_AFTER_OPEN_S: Final = 300
MAX_SUPPRESS_AFTER_OPEN_S: Final = 86_400
#: A report may be stamped this far ahead of the RAS clock (phone clocks drift a little).
MAX_FUTURE_SKEW_S: Final = 10
#: An arrival suggestion may be confirmed for this long after it was raised.
SUGGESTION_TTL_S: Final = 120


class GeofenceError(ValueError):
    """A fence, a policy or a report that breaks the rules of this module."""


class Presence(StrEnum):
    """Where a good fix puts the person relative to the fence (module docstring)."""

    INSIDE = "inside"
    OUTSIDE = "outside"
    UNCERTAIN = "uncertain"


class Verdict(StrEnum):
    """What the policy makes of the latest report, for the remote-unlock check."""

    INSIDE = "inside"
    OUTSIDE = "outside"  #: OUTSIDE or UNCERTAIN: not provably inside
    STALE = "stale"
    INACCURATE = "inaccurate"
    MISSING = "missing"


class ArrivalMode(StrEnum):
    OFF = "off"
    SUGGEST = "suggest"  #: a notification "you are arriving"
    AUTO_UNLOCK = "auto_unlock"  #: a one-tap "unlock now?" prompt; still confirmed


class ArrivalOutcome(StrEnum):
    NONE = "none"
    SUGGEST = "suggest"
    SUPPRESSED = "suppressed"


def _check_coordinates(latitude: float, longitude: float) -> None:
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        raise GeofenceError("latitude and longitude must be finite numbers")
    if not -90.0 <= latitude <= 90.0:
        raise GeofenceError("latitude must be within -90..90 degrees")
    if not -180.0 <= longitude <= 180.0:
        raise GeofenceError("longitude must be within -180..180 degrees")


def _check_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise GeofenceError(f"{what} must carry a time zone")


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres on the mean-radius sphere (module docstring)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, max(0.0, h))))


@dataclass(frozen=True)
class Fence:
    """A circle on the Earth: centre (WGS-84 degrees) and radius in metres."""

    latitude: float
    longitude: float
    radius_m: float

    def __post_init__(self) -> None:
        _check_coordinates(self.latitude, self.longitude)
        if not math.isfinite(self.radius_m) or not (MIN_RADIUS_M <= self.radius_m <= MAX_RADIUS_M):
            raise GeofenceError(f"radius must be within {MIN_RADIUS_M:g}..{MAX_RADIUS_M:g} m")


@dataclass(frozen=True)
class Report:
    """One location fix of a person's device: where, how sure, and when it was taken."""

    latitude: float
    longitude: float
    accuracy_m: float
    taken_at: datetime

    def __post_init__(self) -> None:
        _check_coordinates(self.latitude, self.longitude)
        if not math.isfinite(self.accuracy_m) or not (
            0.0 < self.accuracy_m <= MAX_REPORTED_ACCURACY_M
        ):
            raise GeofenceError(
                f"accuracy must be above 0 and at most {MAX_REPORTED_ACCURACY_M:g} m"
            )
        _check_aware(self.taken_at, "taken_at")


@dataclass(frozen=True)
class Policy:
    """A fence and its opt-in policies (each off unless the owner turns it on)."""

    fence: Fence
    remote_unlock_inside: bool = False
    arrival: ArrivalMode = ArrivalMode.OFF
    suppress_after_open_s: int = DEFAULT_SUPPRESS_AFTER_OPEN_S
    max_age_s: int = DEFAULT_MAX_AGE_S
    max_accuracy_m: float = DEFAULT_MAX_ACCURACY_M

    def __post_init__(self) -> None:
        if not 0 <= self.suppress_after_open_s <= MAX_SUPPRESS_AFTER_OPEN_S:
            raise GeofenceError(
                f"suppress_after_open_s must be within 0..{MAX_SUPPRESS_AFTER_OPEN_S}"
            )
        if not MIN_MAX_AGE_S <= self.max_age_s <= MAX_MAX_AGE_S:
            raise GeofenceError(f"max_age_s must be within {MIN_MAX_AGE_S}..{MAX_MAX_AGE_S}")
        if not math.isfinite(self.max_accuracy_m) or not (
            MIN_MAX_ACCURACY_M <= self.max_accuracy_m <= MAX_MAX_ACCURACY_M
        ):
            raise GeofenceError(
                f"max_accuracy_m must be within {MIN_MAX_ACCURACY_M:g}..{MAX_MAX_ACCURACY_M:g}"
            )

    @property
    def accuracy_limit_m(self) -> float:
        """The worst accuracy accepted: ``min(max_accuracy_m, radius / 2)``."""
        return min(self.max_accuracy_m, self.fence.radius_m / 2)


def presence(fence: Fence, report: Report) -> Presence:
    """Where the fix puts the person, conservatively (module docstring)."""
    distance = haversine_m(fence.latitude, fence.longitude, report.latitude, report.longitude)
    if distance * (1 + SPHERE_ERROR) + report.accuracy_m <= fence.radius_m:
        return Presence.INSIDE
    if distance * (1 - SPHERE_ERROR) - report.accuracy_m > fence.radius_m:
        return Presence.OUTSIDE
    return Presence.UNCERTAIN


def usable(policy: Policy, report: Report | None, now: datetime) -> Verdict | None:
    """None if the report may be used now; else why not (missing, stale, inaccurate)."""
    _check_aware(now, "now")
    if report is None:
        return Verdict.MISSING
    age = now - report.taken_at
    if age > timedelta(seconds=policy.max_age_s) or age < -timedelta(seconds=MAX_FUTURE_SKEW_S):
        return Verdict.STALE
    if report.accuracy_m > policy.accuracy_limit_m:
        return Verdict.INACCURATE
    return None


def classify(policy: Policy, report: Report | None, now: datetime) -> Verdict:
    """The report's verdict: refused (missing/stale/inaccurate), INSIDE or OUTSIDE."""
    refused = usable(policy, report, now)
    if refused is not None:
        return refused
    assert report is not None
    inside = presence(policy.fence, report) is Presence.INSIDE
    return Verdict.INSIDE if inside else Verdict.OUTSIDE


@dataclass(frozen=True)
class UnlockDecision:
    allowed: bool
    #: Why not (a :class:`Verdict` other than INSIDE); None when allowed.
    verdict: Verdict | None = None


def remote_unlock_allowed(policy: Policy, latest: Report | None, now: datetime) -> UnlockDecision:
    """Whether the fence lets a remote unlock through now (module docstring)."""
    if not policy.remote_unlock_inside:
        return UnlockDecision(True)
    verdict = classify(policy, latest, now)
    if verdict is Verdict.INSIDE:
        return UnlockDecision(True)
    return UnlockDecision(False, verdict)


def definite_presence(policy: Policy, report: Report, now: datetime) -> Presence | None:
    """INSIDE or OUTSIDE for a usable report whose fix is definite; else None.

    The arrival state machine's memory: it is fed the person's earlier reports (each
    judged at the time it was received) and keeps the last definite one.
    """
    if usable(policy, report, now) is not None:
        return None
    found = presence(policy.fence, report)
    return None if found is Presence.UNCERTAIN else found


def suppressed(policy: Policy, last_opened_at: datetime | None, now: datetime) -> bool:
    """Whether the door was opened by other means within the suppression window."""
    if last_opened_at is None or policy.suppress_after_open_s == 0:
        return False
    return now - last_opened_at < timedelta(seconds=policy.suppress_after_open_s)


def arrival(
    policy: Policy,
    previous: Presence | None,
    current: Report,
    now: datetime,
    last_opened_at: datetime | None,
) -> ArrivalOutcome:
    """The arrival state machine (module docstring's table).

    ``previous`` is the person's last definite presence before ``current`` (None: none
    known); ``last_opened_at`` the last time the door was opened, by whatever means.
    """
    if policy.arrival is ArrivalMode.OFF:
        return ArrivalOutcome.NONE
    if definite_presence(policy, current, now) is not Presence.INSIDE:
        return ArrivalOutcome.NONE
    if previous is Presence.INSIDE:
        return ArrivalOutcome.NONE
    if suppressed(policy, last_opened_at, now):
        return ArrivalOutcome.SUPPRESSED
    return ArrivalOutcome.SUGGEST


def suggestion_expiry(raised_at: datetime) -> datetime:
    return raised_at + timedelta(seconds=SUGGESTION_TTL_S)


class ConfirmRefusal(StrEnum):
    NOT_YOURS = "not-yours"
    EXPIRED = "expired"
    CONFIRMED = "already-confirmed"


def confirmable(
    expires_at: datetime, confirmed_at: datetime | None, now: datetime
) -> ConfirmRefusal | None:
    """None if a suggestion may be confirmed now; else why not.

    Valid strictly before ``expires_at``, and once: a confirmation is a fresh, explicit
    act of the person, never a standing permission. (Whose it is the service checks.)
    """
    _check_aware(now, "now")
    if confirmed_at is not None:
        return ConfirmRefusal.CONFIRMED
    if now >= expires_at:
        return ConfirmRefusal.EXPIRED
    return None
