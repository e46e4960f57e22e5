"""Weekly schedules in IANA zones: parsing, and the DST rule at its boundaries.

The rule (heslock.ras.services.sharing.schedule): an occurrence opens when the lock's
clock *first* reads START (or jumps past it) and closes when it first reads END. Each
boundary test names the transition it sits on, from the zone data itself.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from heslock.ras.services.sharing.schedule import (
    ALL_DAYS,
    MAX_WINDOWS,
    DateRange,
    Schedule,
    ScheduleError,
    Weekday,
    WeeklyWindow,
    canonical,
    first_instant,
    zone_named,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
SANTIAGO = ZoneInfo("America/Santiago")
TOKYO = ZoneInfo("Asia/Tokyo")
SECOND = timedelta(seconds=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def window(days: str, start: str, end: str) -> WeeklyWindow:
    return WeeklyWindow.from_json({"days": days.split(","), "start": start, "end": end}, "test")


def schedule(*windows: WeeklyWindow, ranges: tuple[DateRange, ...] = ()) -> Schedule:
    return Schedule(tuple(windows), ranges)


def open_at(s: Schedule, zone: ZoneInfo, *instants: datetime) -> list[bool]:
    return [s.is_open(at, zone) for at in instants]


# --------------------------------------------------------------------- the zone data


def test_the_transitions_these_tests_rely_on() -> None:
    """If a tzdata update moved these, the boundary tests below would test nothing."""
    assert utc(2026, 3, 29, 0, 59, 59).astimezone(BERLIN).hour == 1
    assert utc(2026, 3, 29, 1, 0, 0).astimezone(BERLIN).hour == 3
    assert utc(2026, 10, 25, 0, 30).astimezone(BERLIN).utcoffset() == timedelta(hours=2)
    assert utc(2026, 10, 25, 1, 30).astimezone(BERLIN).utcoffset() == timedelta(hours=1)
    assert utc(2026, 3, 8, 7, 0).astimezone(NEW_YORK).hour == 3
    assert utc(2026, 11, 1, 6, 0).astimezone(NEW_YORK).hour == 1
    lh_spring = utc(2026, 10, 3, 15, 30).astimezone(LORD_HOWE)
    assert (lh_spring.hour, lh_spring.minute) == (2, 30)
    assert (utc(2026, 10, 3, 15, 29, 59).astimezone(LORD_HOWE).minute) == 59
    assert utc(2026, 4, 4, 15, 0).astimezone(LORD_HOWE).utcoffset() == timedelta(hours=10.5)
    assert utc(2026, 4, 4, 14, 59).astimezone(LORD_HOWE).utcoffset() == timedelta(hours=11)
    assert utc(2026, 9, 6, 4, 0).astimezone(SANTIAGO).hour == 1  # no midnight that day


# ------------------------------------------------------------------ first_instant


def test_first_instant_of_an_ordinary_time() -> None:
    assert first_instant(date(2026, 7, 1), time(8, 0), BERLIN) == utc(2026, 7, 1, 6, 0)


def test_first_instant_of_a_skipped_time_is_the_jump() -> None:
    assert first_instant(date(2026, 3, 29), time(2, 30), BERLIN) == utc(2026, 3, 29, 1, 0)
    assert first_instant(date(2026, 3, 29), time(2, 0), BERLIN) == utc(2026, 3, 29, 1, 0)
    assert first_instant(date(2026, 3, 29), time(3, 0), BERLIN) == utc(2026, 3, 29, 1, 0)
    assert first_instant(date(2026, 10, 4), time(2, 15), LORD_HOWE) == utc(2026, 10, 3, 15, 30)
    assert first_instant(date(2026, 9, 6), time(0, 0), SANTIAGO) == utc(2026, 9, 6, 4, 0)


def test_first_instant_of_a_repeated_time_is_its_first_reading() -> None:
    assert first_instant(date(2026, 10, 25), time(2, 30), BERLIN) == utc(2026, 10, 25, 0, 30)
    assert first_instant(date(2026, 11, 1), time(1, 30), NEW_YORK) == utc(2026, 11, 1, 5, 30)
    assert first_instant(date(2026, 4, 5), time(1, 45), LORD_HOWE) == utc(2026, 4, 4, 14, 45)


# ------------------------------------------------------------- ordinary behaviour


def test_a_weekday_window_in_a_zone_without_dst() -> None:
    s = schedule(window("mon,tue,wed,thu,fri", "09:00", "17:00"))
    # 2026-06-05 is a Friday; Tokyo is UTC+9 all year.
    friday_9 = utc(2026, 6, 5, 0, 0)
    assert open_at(s, TOKYO, friday_9 - SECOND, friday_9) == [False, True]
    friday_17 = utc(2026, 6, 5, 8, 0)
    assert open_at(s, TOKYO, friday_17 - SECOND, friday_17) == [True, False]
    assert not s.is_open(utc(2026, 6, 6, 3, 0), TOKYO)  # Saturday noon
    # The same local hours on a European DST date: Tokyo does not care.
    assert s.is_open(utc(2026, 3, 30, 0, 0), TOKYO)  # Monday 09:00 JST


def test_a_window_across_midnight_belongs_to_the_day_it_opens() -> None:
    s = schedule(window("fri", "22:00", "06:00"))
    fri_22 = utc(2026, 6, 5, 20, 0)  # Berlin is UTC+2 in June
    sat_06 = utc(2026, 6, 6, 4, 0)
    assert open_at(s, BERLIN, fri_22 - SECOND, fri_22, sat_06 - SECOND, sat_06) == [
        False,
        True,
        True,
        False,
    ]
    # Saturday night is not Friday night.
    assert not s.is_open(utc(2026, 6, 6, 21, 0), BERLIN)
    # Thursday 23:00 (the night before) neither.
    assert not s.is_open(utc(2026, 6, 4, 21, 0), BERLIN)


def test_equal_start_and_end_is_a_whole_day() -> None:
    s = schedule(window("sat", "00:00", "00:00"))
    sat = utc(2026, 6, 5, 22, 0)  # Saturday 00:00 in Berlin
    sun = utc(2026, 6, 6, 22, 0)
    assert open_at(s, BERLIN, sat - SECOND, sat, sun - SECOND, sun) == [False, True, True, False]


def test_date_ranges_select_occurrences_by_their_opening_day() -> None:
    night = window("mon,tue,wed,thu,fri,sat,sun", "22:00", "02:00")
    s = schedule(night, ranges=(DateRange(date(2026, 12, 24), date(2026, 12, 26)),))
    # Opens on the range's last day, runs past midnight into the 27th.
    assert s.is_open(utc(2026, 12, 27, 0, 30), BERLIN)  # 01:30 CET on the 27th
    assert not s.is_open(utc(2026, 12, 27, 21, 30), BERLIN)  # the 27th's own night
    assert not s.is_open(utc(2026, 12, 23, 21, 30), BERLIN)  # the night before the range
    # 00:30 on the 24th belongs to the occurrence that opened on the 23rd: not selected,
    # although the 24th itself is in the range.
    assert not s.is_open(utc(2026, 12, 23, 23, 30), BERLIN)
    assert s.is_open(utc(2026, 12, 24, 23, 30), BERLIN)  # 00:30 on the 25th


def test_only_date_ranges_means_all_day_on_those_dates() -> None:
    s = Schedule((), (DateRange(date(2026, 8, 1), date(2026, 8, 2)),))
    assert open_at(
        s,
        BERLIN,
        utc(2026, 7, 31, 21, 59, 59),
        utc(2026, 7, 31, 22, 0),
        utc(2026, 8, 2, 21, 59, 59),
        utc(2026, 8, 2, 22, 0),
    ) == [False, True, True, False]


# ------------------------------------------------------------ spring forward (gaps)


def test_berlin_spring_forward_start_inside_the_gap_opens_at_the_jump() -> None:
    s = schedule(window("sun", "02:30", "04:00"))  # 2026-03-29: 02:00 CET -> 03:00 CEST
    jump = utc(2026, 3, 29, 1, 0)
    closes = utc(2026, 3, 29, 2, 0)  # 04:00 CEST
    assert open_at(s, BERLIN, jump - SECOND, jump, closes - SECOND, closes) == [
        False,
        True,
        True,
        False,
    ]


def test_berlin_spring_forward_window_entirely_in_the_gap_does_not_open() -> None:
    s = schedule(window("sun", "02:00", "02:30"))
    day = [utc(2026, 3, 29, 0, 0) + timedelta(minutes=m) for m in range(0, 24 * 60, 1)]
    assert not any(s.is_open(at, BERLIN) for at in day)
    # A week later the window is back: 02:00-02:30 CEST is 00:00-00:30 UTC.
    assert open_at(s, BERLIN, utc(2026, 4, 5, 0, 0), utc(2026, 4, 5, 0, 30)) == [True, False]


def test_berlin_spring_forward_end_inside_the_gap_closes_at_the_jump() -> None:
    s = schedule(window("sun", "01:00", "02:30"))
    opens = utc(2026, 3, 29, 0, 0)  # 01:00 CET
    jump = utc(2026, 3, 29, 1, 0)
    assert open_at(s, BERLIN, opens - SECOND, opens, jump - SECOND, jump) == [
        False,
        True,
        True,
        False,
    ]


def test_new_york_spring_forward_night_window_is_an_hour_shorter() -> None:
    s = schedule(window("sat", "22:00", "06:00"))  # 2026-03-08 02:00 EST -> 03:00 EDT
    opens, closes = s.windows[0].occurrence(date(2026, 3, 7), NEW_YORK)
    assert opens == utc(2026, 3, 8, 3, 0)  # 22:00 EST
    assert closes == utc(2026, 3, 8, 10, 0)  # 06:00 EDT
    assert closes - opens == timedelta(hours=7)
    assert open_at(s, NEW_YORK, closes - SECOND, closes) == [True, False]


def test_new_york_spring_forward_start_in_gap() -> None:
    s = schedule(window("sun", "01:30", "02:30"))
    assert s.windows[0].occurrence(date(2026, 3, 8), NEW_YORK) == (
        utc(2026, 3, 8, 6, 30),  # 01:30 EST
        utc(2026, 3, 8, 7, 0),  # the jump: 02:30 never happens
    )


def test_lord_howe_half_hour_spring_forward() -> None:
    """2026-10-04: 02:00 (+10:30) -> 02:30 (+11:00), at 15:30 UTC the day before."""
    inside = schedule(window("sun", "02:00", "02:30"))
    assert not any(
        inside.is_open(utc(2026, 10, 3, 14, 0) + timedelta(minutes=m), LORD_HOWE)
        for m in range(0, 180)
    )
    straddling = schedule(window("sun", "02:15", "03:00"))
    jump = utc(2026, 10, 3, 15, 30)
    closes = utc(2026, 10, 3, 16, 0)  # 03:00 +11
    assert open_at(straddling, LORD_HOWE, jump - SECOND, jump, closes - SECOND, closes) == [
        False,
        True,
        True,
        False,
    ]


def test_santiago_day_without_midnight() -> None:
    """2026-09-06 starts at 01:00 (-03): a 00:00 start opens when the day begins."""
    sunday = schedule(window("sun", "00:00", "00:00"))
    begins = utc(2026, 9, 6, 4, 0)
    assert open_at(sunday, SANTIAGO, begins - SECOND, begins) == [False, True]
    saturday = schedule(window("sat", "00:00", "00:00"))
    assert open_at(saturday, SANTIAGO, begins - SECOND, begins) == [True, False]
    # Saturday has its 24 hours; Sunday, which lost its first hour, has 23.
    opens, closes = saturday.windows[0].occurrence(date(2026, 9, 5), SANTIAGO)
    assert closes - opens == timedelta(hours=24)
    opens, closes = sunday.windows[0].occurrence(date(2026, 9, 6), SANTIAGO)
    assert closes - opens == timedelta(hours=23)


# ----------------------------------------------------------------- fall back (folds)


def test_berlin_fall_back_window_in_the_repeated_hour_opens_once() -> None:
    s = schedule(window("sun", "02:00", "02:30"))  # 2026-10-25 03:00 CEST -> 02:00 CET
    first = utc(2026, 10, 25, 0, 0)  # 02:00 CEST
    second = utc(2026, 10, 25, 1, 0)  # 02:00 CET, the repeat
    assert open_at(s, BERLIN, first - SECOND, first, first + timedelta(minutes=29)) == [
        False,
        True,
        True,
    ]
    assert open_at(
        s, BERLIN, first + timedelta(minutes=30), second, second + timedelta(minutes=15)
    ) == [
        False,
        False,
        False,
    ]


def test_berlin_fall_back_an_occurrence_never_reopens() -> None:
    s = schedule(window("sun", "01:00", "02:30"))
    closes = utc(2026, 10, 25, 0, 30)  # the first 02:30 (CEST)
    assert open_at(s, BERLIN, closes - SECOND, closes) == [True, False]
    # The clock reads 02:00-02:30 again an hour later: still closed.
    assert not any(
        s.is_open(utc(2026, 10, 25, 1, 0) + timedelta(minutes=m), BERLIN) for m in range(30)
    )


def test_berlin_fall_back_window_across_the_repeat_lasts_an_hour_longer() -> None:
    s = schedule(window("sun", "01:00", "04:00"))
    opens, closes = s.windows[0].occurrence(date(2026, 10, 25), BERLIN)
    assert (opens, closes) == (utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0))
    assert closes - opens == timedelta(hours=4)


def test_new_york_fall_back_repeated_hour() -> None:
    s = schedule(window("sun", "01:30", "01:45"))  # 2026-11-01 02:00 EDT -> 01:00 EST
    assert open_at(s, NEW_YORK, utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 5, 44)) == [True, True]
    assert open_at(s, NEW_YORK, utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 6, 44)) == [False, False]
    night = schedule(window("sat", "22:00", "06:00"))
    opens, closes = night.windows[0].occurrence(date(2026, 10, 31), NEW_YORK)
    assert closes - opens == timedelta(hours=9)


def test_lord_howe_half_hour_fall_back() -> None:
    """2026-04-05: 02:00 (+11) -> 01:30 (+10:30) at 15:00 UTC the day before."""
    s = schedule(window("sun", "01:30", "01:45"))
    assert open_at(s, LORD_HOWE, utc(2026, 4, 4, 14, 30), utc(2026, 4, 4, 14, 44)) == [True, True]
    assert open_at(s, LORD_HOWE, utc(2026, 4, 4, 15, 0), utc(2026, 4, 4, 15, 14)) == [False, False]
    across = schedule(window("sun", "01:00", "03:00"))
    opens, closes = across.windows[0].occurrence(date(2026, 4, 5), LORD_HOWE)
    assert closes - opens == timedelta(hours=2, minutes=30)


def test_santiago_repeated_hour_before_midnight() -> None:
    """2026-04-04 24:00 (-03) -> 23:00 (-04): Saturday is 25 hours long."""
    saturday = schedule(window("sat", "00:00", "00:00"))
    opens, closes = saturday.windows[0].occurrence(date(2026, 4, 4), SANTIAGO)
    assert closes - opens == timedelta(hours=25)
    late = schedule(window("sat", "23:30", "00:00"))
    first = utc(2026, 4, 5, 2, 30)  # 23:30 -03
    second = utc(2026, 4, 5, 3, 30)  # 23:30 -04, the repeat: still inside (00:00 not yet)
    assert open_at(late, SANTIAGO, first - SECOND, first, second, utc(2026, 4, 5, 4, 0)) == [
        False,
        True,
        True,
        False,
    ]


# ------------------------------------------------------------------- JSON and bounds


def test_canonical_json_round_trip() -> None:
    data = {
        "windows": [{"days": ["fri", "mon"], "start": "08:00", "end": "18:30"}],
        "date_ranges": [{"first": "2026-12-20", "last": "2027-01-06"}],
    }
    parsed = Schedule.from_json(data)
    assert parsed.windows[0].days == {Weekday.MON, Weekday.FRI}
    assert canonical(data) == {
        "windows": [{"days": ["mon", "fri"], "start": "08:00", "end": "18:30"}],
        "date_ranges": [{"first": "2026-12-20", "last": "2027-01-06"}],
    }
    assert Schedule.from_json(parsed.to_json()) == parsed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "at least one window"),
        ({"windows": []}, "at least one window"),
        ({"windows": [{"days": [], "start": "08:00", "end": "09:00"}]}, r"windows\[0\].days"),
        ({"windows": [{"days": ["Mon"], "start": "08:00", "end": "09:00"}]}, "not a weekday"),
        ({"windows": [{"days": ["mon", "mon"], "start": "08:00", "end": "09:00"}]}, "twice"),
        ({"windows": [{"days": ["mon"], "start": "8:00", "end": "09:00"}]}, r"\.start"),
        ({"windows": [{"days": ["mon"], "start": "24:00", "end": "09:00"}]}, r"\.start"),
        ({"windows": [{"days": ["mon"], "start": "08:00:30", "end": "09:00"}]}, r"\.start"),
        ({"windows": [{"days": ["mon"], "start": "08:00"}]}, "missing"),
        ({"windows": [{"days": ["mon"], "start": "08:00", "end": "09:00", "x": 1}]}, "unknown"),
        ({"windows": "mon"}, "a list"),
        ({"date_ranges": [{"first": "2026-02-30", "last": "2026-03-01"}]}, "not a date"),
        ({"date_ranges": [{"first": "2026-03-02", "last": "2026-03-01"}]}, "before first"),
        ({"date_ranges": [{"first": "20260301", "last": "2026-03-01"}]}, "YYYY-MM-DD"),
        ({"rules": []}, "unknown"),
        ([], "an object"),
        (
            {"windows": [{"days": ["mon"], "start": "08:00", "end": "09:00"}] * (MAX_WINDOWS + 1)},
            "at most",
        ),
    ],
)
def test_bad_schedules_are_refused_with_the_field_named(data: object, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        Schedule.from_json(data)


@pytest.mark.parametrize(
    "name", ["Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+5"]
)
def test_iana_zone_names(name: str) -> None:
    assert zone_named(name).key == name


@pytest.mark.parametrize(
    "name", ["", "Mars/Olympus", "/etc/passwd", "../../etc/passwd", "localtime", "CET+1", "a" * 65]
)
def test_bad_zone_names_are_refused(name: str) -> None:
    with pytest.raises(ScheduleError):
        zone_named(name)


def test_naive_instants_are_refused() -> None:
    s = schedule(window("mon", "08:00", "09:00"))
    with pytest.raises(ValueError, match="naive"):
        s.is_open(datetime(2026, 6, 1, 8, 30), BERLIN)  # naive: the point of the test


# ------------------------------------------------------------------------ properties

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Tokyo",
    "UTC",
    "Pacific/Chatham",
    "Asia/Kolkata",
]
minutes = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
windows = st.builds(
    WeeklyWindow,
    st.frozensets(st.sampled_from(list(Weekday)), min_size=1),
    minutes,
    minutes,
)
# Instants near transitions are over-sampled: the property is only interesting there.
transition_days = [
    utc(2026, 3, 29),
    utc(2026, 10, 25),
    utc(2026, 3, 8),
    utc(2026, 11, 1),
    utc(2026, 4, 4),
    utc(2026, 10, 3),
    utc(2026, 9, 6),
    utc(2026, 4, 5),
]
instants = st.one_of(
    st.builds(
        lambda day, s: day + timedelta(seconds=s),
        st.sampled_from(transition_days),
        st.integers(-36 * 3600, 36 * 3600),
    ),
    st.integers(int(utc(2020, 1, 1).timestamp()), int(utc(2032, 1, 1).timestamp())).map(
        lambda ts: datetime.fromtimestamp(ts, UTC)
    ),
)


def wall_rule(w: WeeklyWindow, at: datetime, zone: ZoneInfo) -> bool:
    """The naive reading: is the wall clock inside the window on the right day?"""
    local = at.astimezone(zone)
    day, wall = local.date(), local.time().replace(tzinfo=None)
    if not w.crosses_midnight:
        return day.weekday() in w.days and w.start <= wall < w.end
    yesterday = (day - timedelta(days=1)).weekday()
    return (day.weekday() in w.days and wall >= w.start) or (yesterday in w.days and wall < w.end)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ZONES), windows, instants)
def test_first_readings_follow_the_wall_clock(name: str, w: WeeklyWindow, at: datetime) -> None:
    """Every instant except a second pass through a repeated hour is open exactly when
    its wall-clock time is inside the window (the rule's promise)."""
    zone = ZoneInfo(name)
    assume(at.astimezone(zone).fold == 0)
    assert schedule(w).is_open(at, zone) == wall_rule(w, at, zone)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES), windows, st.sampled_from(transition_days), st.integers(-2, 2))
def test_an_occurrence_is_one_interval_of_the_expected_length(
    name: str, w: WeeklyWindow, around: datetime, shift: int
) -> None:
    """Open before close; its length is the wall-clock length corrected by the change of
    UTC offset between the two ends (when neither end falls in skipped time)."""
    zone = ZoneInfo(name)
    day = around.date() + timedelta(days=shift)
    opens, closes = w.occurrence(day, zone)
    assert opens <= closes
    end_day = day + timedelta(days=1) if w.crosses_midnight else day
    wall_start = datetime.combine(day, w.start)
    wall_end = datetime.combine(end_day, w.end)
    assume(opens.astimezone(zone).replace(tzinfo=None) == wall_start)
    assume(closes.astimezone(zone).replace(tzinfo=None) == wall_end)
    off_open = opens.astimezone(zone).utcoffset()
    off_close = closes.astimezone(zone).utcoffset()
    assert off_open is not None
    assert off_close is not None
    assert closes - opens == (wall_end - wall_start) + (off_open - off_close)


@settings(max_examples=200, deadline=None)
@given(st.lists(windows, min_size=1, max_size=4))
def test_json_round_trip_property(ws: list[WeeklyWindow]) -> None:
    s = Schedule(tuple(ws))
    assert Schedule.from_json(s.to_json()) == s
    assert canonical(s.to_json()) == s.to_json()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["UTC", "Asia/Tokyo", "Asia/Kolkata"]), windows, instants)
def test_zones_without_dst_are_plain_wall_clock(name: str, w: WeeklyWindow, at: datetime) -> None:
    zone = ZoneInfo(name)
    assert schedule(w).is_open(at, zone) == wall_rule(w, at, zone)


def test_all_days_constant() -> None:
    assert len(ALL_DAYS) == 7
