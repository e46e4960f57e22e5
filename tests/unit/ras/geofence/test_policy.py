"""The pure geofence core: distance, fences, reports, verdicts, arrival and confirmation."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heslock.ras.services.geofence.policy import (
    DEFAULT_MAX_AGE_S,
    EARTH_RADIUS_M,
    MAX_FUTURE_SKEW_S,
    SPHERE_ERROR,
    SUGGESTION_TTL_S,
    ArrivalMode,
    ArrivalOutcome,
    ConfirmRefusal,
    Fence,
    GeofenceError,
    Policy,
    Presence,
    Report,
    Verdict,
    arrival,
    classify,
    confirmable,
    definite_presence,
    haversine_m,
    presence,
    remote_unlock_allowed,
    suggestion_expiry,
    suppressed,
)

NOW = datetime(2026, 6, 3, 10, 0, tzinfo=UTC)
CENTRE = (52.52, 13.405)  # Berlin
FENCE = Fence(*CENTRE, radius_m=100.0)
SECOND = timedelta(seconds=1)


def north(metres: float, lat: float = CENTRE[0], lon: float = CENTRE[1]) -> tuple[float, float]:
    """The point ``metres`` due north: along a meridian the sphere's distance is exact."""
    return lat + math.degrees(metres / EARTH_RADIUS_M), lon


def fix(metres: float, accuracy: float = 10.0, age_s: float = 5.0) -> Report:
    return Report(*north(metres), accuracy_m=accuracy, taken_at=NOW - age_s * SECOND)


def policy(**kwargs: object) -> Policy:
    return Policy(FENCE, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ distance


def test_distance_along_a_meridian_and_the_equator_is_r_times_the_angle() -> None:
    one_degree = EARTH_RADIUS_M * math.pi / 180  # 111 195.08 m
    assert haversine_m(0, 0, 1, 0) == pytest.approx(one_degree, rel=1e-12)
    assert haversine_m(0, 0, 0, 1) == pytest.approx(one_degree, rel=1e-12)
    assert haversine_m(0, 179.5, 0, -179.5) == pytest.approx(one_degree, rel=1e-9)  # antimeridian
    assert haversine_m(0, 0, 0, 180) == pytest.approx(math.pi * EARTH_RADIUS_M, rel=1e-12)
    assert haversine_m(90, 0, -90, 0) == pytest.approx(math.pi * EARTH_RADIUS_M, rel=1e-12)
    assert haversine_m(*CENTRE, *CENTRE) == 0.0


@pytest.mark.parametrize(
    ("lat1", "lon1", "lat2", "lon2", "geodesic_m"),
    [
        # WGS-84 geodesics (a = 6378137 m, f = 1/298.257223563) by Vincenty's inverse
        # formula, to 0.1 m. One degree of meridian and of the equator:
        (0.0, 0.0, 1.0, 0.0, 110_574.4),  # meridian at the equator: the worst case
        (89.0, 0.0, 90.0, 0.0, 111_693.9),  # meridian at the pole
        (0.0, 0.0, 0.0, 1.0, 111_319.5),  # the equator
        # Paris Notre-Dame -> London Trafalgar Square.
        (48.853, 2.3499, 51.508, -0.128, 344_249.3),
    ],
)
def test_the_sphere_is_within_the_documented_error_of_wgs84(
    lat1: float, lon1: float, lat2: float, lon2: float, geodesic_m: float
) -> None:
    error = abs(haversine_m(lat1, lon1, lat2, lon2) - geodesic_m) / geodesic_m
    assert error <= SPHERE_ERROR


def test_the_documented_error_bound_is_tight() -> None:
    """The equatorial meridian nearly reaches the bound: it is not a loose guess."""
    error = (haversine_m(0.0, 0.0, 1.0, 0.0) - 110_574.4) / 110_574.4
    assert SPHERE_ERROR - 0.0002 < error <= SPHERE_ERROR


@settings(max_examples=200, deadline=None)
@given(st.floats(-90, 90), st.floats(-180, 180), st.floats(-90, 90), st.floats(-180, 180))
def test_distance_is_a_symmetric_bounded_non_negative_metric(
    lat1: float, lon1: float, lat2: float, lon2: float
) -> None:
    d = haversine_m(lat1, lon1, lat2, lon2)
    assert 0.0 <= d <= math.pi * EARTH_RADIUS_M + 1e-6
    assert d == pytest.approx(haversine_m(lat2, lon2, lat1, lon1), abs=1e-6)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("lat", "lon", "radius"),
    [
        (91.0, 0.0, 100.0),
        (-90.5, 0.0, 100.0),
        (0.0, 180.1, 100.0),
        (math.nan, 0.0, 100.0),
        (0.0, math.inf, 100.0),
        (0.0, 0.0, 19.9),
        (0.0, 0.0, 50_000.1),
        (0.0, 0.0, math.nan),
    ],
)
def test_a_bad_fence_is_refused(lat: float, lon: float, radius: float) -> None:
    with pytest.raises(GeofenceError):
        Fence(lat, lon, radius)


def test_fence_bounds_are_inclusive() -> None:
    assert Fence(90.0, -180.0, 20.0).radius_m == 20.0
    assert Fence(-90.0, 180.0, 50_000.0).radius_m == 50_000.0


@pytest.mark.parametrize("accuracy", [0.0, -1.0, math.nan, 100_001.0])
def test_a_bad_report_is_refused(accuracy: float) -> None:
    with pytest.raises(GeofenceError):
        Report(0.0, 0.0, accuracy, NOW)


def test_a_naive_report_time_is_refused() -> None:
    with pytest.raises(GeofenceError, match="time zone"):
        Report(0.0, 0.0, 5.0, NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"suppress_after_open_s": -1},
        {"suppress_after_open_s": 86_401},
        {"max_age_s": 9},
        {"max_age_s": 901},
        {"max_accuracy_m": 4.0},
        {"max_accuracy_m": math.inf},
    ],
)
def test_bad_policy_knobs_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(GeofenceError):
        Policy(FENCE, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ inside / outside / edge


def test_inside_means_the_whole_uncertainty_disc_is_inside() -> None:
    # radius 100, accuracy 10: inside iff d * (1 + e) + 10 <= 100, i.e. d <= 89.49 m.
    limit = 90.0 / (1 + SPHERE_ERROR)
    assert presence(FENCE, fix(0.0)) is Presence.INSIDE
    assert presence(FENCE, fix(limit - 0.05)) is Presence.INSIDE
    assert presence(FENCE, fix(limit + 0.05)) is Presence.UNCERTAIN
    assert presence(FENCE, fix(99.0)) is Presence.UNCERTAIN  # the centre of the fix is inside
    assert presence(FENCE, fix(100.0, accuracy=0.01)) is Presence.UNCERTAIN  # on the edge


def test_outside_means_the_whole_disc_is_outside() -> None:
    limit = 110.0 / (1 - SPHERE_ERROR)  # d * (1 - e) - 10 > 100
    assert presence(FENCE, fix(limit + 0.05)) is Presence.OUTSIDE
    assert presence(FENCE, fix(limit - 0.05)) is Presence.UNCERTAIN
    assert presence(FENCE, fix(5_000.0)) is Presence.OUTSIDE


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0.0, 60_000.0),
    st.floats(0.5, 60.0),
    st.floats(20.0, 50_000.0),
    st.floats(-80.0, 80.0),
)
def test_a_fix_that_might_be_outside_is_never_inside(
    distance: float, accuracy: float, radius: float, lat: float
) -> None:
    fence = Fence(lat, 10.0, radius)
    report = Report(*north(distance, lat, 10.0), accuracy_m=accuracy, taken_at=NOW)
    found = presence(fence, report)
    if found is Presence.INSIDE:
        assert distance + accuracy <= radius  # the true distance, with its whole disc
    if found is Presence.OUTSIDE:
        assert distance - accuracy > radius


# ------------------------------------------------------------------ verdicts


def test_verdicts_missing_stale_future_inaccurate_inside_outside() -> None:
    p = policy()
    assert classify(p, None, NOW) is Verdict.MISSING
    assert classify(p, fix(0.0, age_s=DEFAULT_MAX_AGE_S + 1), NOW) is Verdict.STALE
    assert classify(p, fix(0.0, age_s=DEFAULT_MAX_AGE_S), NOW) is Verdict.INSIDE  # the limit
    assert classify(p, fix(0.0, age_s=-MAX_FUTURE_SKEW_S), NOW) is Verdict.INSIDE
    assert classify(p, fix(0.0, age_s=-MAX_FUTURE_SKEW_S - 1), NOW) is Verdict.STALE
    assert classify(p, fix(0.0, accuracy=50.0), NOW) is Verdict.INSIDE  # = radius / 2
    assert classify(p, fix(0.0, accuracy=50.1), NOW) is Verdict.INACCURATE
    assert classify(p, fix(95.0), NOW) is Verdict.OUTSIDE  # uncertain is not inside
    assert classify(p, fix(500.0), NOW) is Verdict.OUTSIDE


def test_stale_is_checked_before_inaccurate() -> None:
    assert classify(policy(), fix(0.0, accuracy=80.0, age_s=600), NOW) is Verdict.STALE


def test_the_accuracy_limit_is_the_smaller_of_the_knob_and_half_the_radius() -> None:
    big = Policy(Fence(*CENTRE, 5_000.0))
    assert big.accuracy_limit_m == 100.0
    assert Policy(Fence(*CENTRE, 5_000.0), max_accuracy_m=300.0).accuracy_limit_m == 300.0
    assert Policy(Fence(*CENTRE, 20.0)).accuracy_limit_m == 10.0
    report = Report(*CENTRE, accuracy_m=150.0, taken_at=NOW)
    assert classify(big, report, NOW) is Verdict.INACCURATE


def test_a_custom_max_age_applies() -> None:
    assert classify(policy(max_age_s=30), fix(0.0, age_s=31), NOW) is Verdict.STALE
    assert classify(policy(max_age_s=30), fix(0.0, age_s=30), NOW) is Verdict.INSIDE


def test_remote_unlock_needs_the_policy_and_a_good_inside_fix() -> None:
    off = policy()
    assert remote_unlock_allowed(off, None, NOW).allowed  # the fence has no say
    on = policy(remote_unlock_inside=True)
    assert remote_unlock_allowed(on, fix(0.0), NOW).allowed
    for report, verdict in (
        (None, Verdict.MISSING),
        (fix(0.0, age_s=300), Verdict.STALE),
        (fix(0.0, accuracy=70.0), Verdict.INACCURATE),
        (fix(95.0), Verdict.OUTSIDE),
        (fix(2_000.0), Verdict.OUTSIDE),
    ):
        decision = remote_unlock_allowed(on, report, NOW)
        assert (decision.allowed, decision.verdict) == (False, verdict)


# ------------------------------------------------------------------ arrival


def test_definite_presence_ignores_refused_and_uncertain_fixes() -> None:
    p = policy()
    assert definite_presence(p, fix(0.0), NOW) is Presence.INSIDE
    assert definite_presence(p, fix(1_000.0), NOW) is Presence.OUTSIDE
    assert definite_presence(p, fix(95.0), NOW) is None
    assert definite_presence(p, fix(0.0, age_s=600), NOW) is None
    assert definite_presence(p, fix(0.0, accuracy=60.0), NOW) is None


@pytest.mark.parametrize(
    ("previous", "current", "opened_s_ago", "expected"),
    [
        (Presence.OUTSIDE, 0.0, None, ArrivalOutcome.SUGGEST),  # entering
        (None, 0.0, None, ArrivalOutcome.SUGGEST),  # entering, nothing known before
        (Presence.INSIDE, 0.0, None, ArrivalOutcome.NONE),  # staying
        (Presence.INSIDE, 1_000.0, None, ArrivalOutcome.NONE),  # leaving
        (Presence.OUTSIDE, 1_000.0, None, ArrivalOutcome.NONE),  # still away
        (Presence.OUTSIDE, 95.0, None, ArrivalOutcome.NONE),  # on the edge: no change
        (Presence.OUTSIDE, 0.0, 60.0, ArrivalOutcome.SUPPRESSED),  # just opened by hand
        (Presence.OUTSIDE, 0.0, 299.0, ArrivalOutcome.SUPPRESSED),
        (Presence.OUTSIDE, 0.0, 300.0, ArrivalOutcome.SUGGEST),  # the window has passed
        (Presence.INSIDE, 0.0, 60.0, ArrivalOutcome.NONE),
    ],
)
def test_the_arrival_state_table(
    previous: Presence | None, current: float, opened_s_ago: float | None, expected: ArrivalOutcome
) -> None:
    p = policy(arrival=ArrivalMode.SUGGEST, suppress_after_open_s=300)
    opened = NOW - opened_s_ago * SECOND if opened_s_ago is not None else None
    assert arrival(p, previous, fix(current), NOW, opened) is expected


def test_arrival_needs_a_usable_fix_and_the_opt_in() -> None:
    on = policy(arrival=ArrivalMode.AUTO_UNLOCK)
    assert arrival(on, None, fix(0.0, age_s=600), NOW, None) is ArrivalOutcome.NONE
    assert arrival(on, None, fix(0.0, accuracy=60.0), NOW, None) is ArrivalOutcome.NONE
    assert arrival(on, None, fix(0.0), NOW, None) is ArrivalOutcome.SUGGEST
    assert arrival(policy(), None, fix(0.0), NOW, None) is ArrivalOutcome.NONE  # off


def test_suppression_window_is_configurable_and_zero_turns_it_off() -> None:
    opened = NOW - 10 * SECOND
    assert suppressed(policy(suppress_after_open_s=11), opened, NOW)
    assert not suppressed(policy(suppress_after_open_s=10), opened, NOW)
    assert not suppressed(policy(suppress_after_open_s=0), NOW, NOW)
    assert not suppressed(policy(), None, NOW)


def test_a_walk_home_raises_one_suggestion() -> None:
    """Away, approaching (uncertain at the edge), inside, inside: one suggestion only."""
    p = policy(arrival=ArrivalMode.SUGGEST)
    walk = [fix(800.0), fix(300.0), fix(95.0), fix(20.0), fix(5.0), fix(95.0), fix(10.0)]
    seen: list[Presence] = []
    outcomes = []
    for report in walk:
        previous = seen[-1] if seen else None
        outcomes.append(arrival(p, previous, report, NOW, None))
        found = definite_presence(p, report, NOW)
        if found is not None:
            seen.append(found)
    assert outcomes.count(ArrivalOutcome.SUGGEST) == 1
    assert outcomes[3] is ArrivalOutcome.SUGGEST


# ------------------------------------------------------------------ confirmation


def test_a_suggestion_is_confirmable_once_and_only_before_it_expires() -> None:
    expires = suggestion_expiry(NOW)
    assert expires == NOW + SUGGESTION_TTL_S * SECOND
    assert confirmable(expires, None, NOW) is None
    assert confirmable(expires, None, expires - SECOND) is None
    assert confirmable(expires, None, expires) is ConfirmRefusal.EXPIRED
    assert confirmable(expires, None, expires + SECOND) is ConfirmRefusal.EXPIRED
    assert confirmable(expires, NOW, NOW + SECOND) is ConfirmRefusal.CONFIRMED
