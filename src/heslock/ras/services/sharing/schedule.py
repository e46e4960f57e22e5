"""Recurring schedules of a share: weekly windows and date ranges, in the lock's zone.

Pure (no I/O, no clock): callers pass the instant and the zone. A schedule says *when*
a share may be used; validity (from/until, one-time) and permissions are
:mod:`.policy`'s business.

A :class:`Schedule` has weekly windows (days of the week, a start and an end wall-clock
time, minute precision) and optional date ranges (inclusive local calendar dates). An
instant is inside the schedule if one *occurrence* of a window contains it.

**What an occurrence is (the DST rule).** For every local date ``d`` whose weekday is in
the window's days (and, when the schedule has date ranges, that lies in one of them),
the window occurs once, as one half-open interval of absolute time::

    [ first instant the lock's wall clock reads d START or later,
      first instant the lock's wall clock reads d' END or later )

with ``d' = d`` when ``END > START`` and ``d' = d + 1`` otherwise (a window that crosses
midnight; ``END == START`` is a whole 24-hour-clock day, e.g. ``00:00``-``00:00``). In
words: the window opens when the clock first shows START and closes when it first shows
END. Consequences on the days the clock changes, all deliberate and tested:

- *Spring forward* (the clock skips, e.g. 02:00 -> 03:00): a START or END inside the
  skipped hour means the moment of the jump. ``02:30``-``04:00`` is open from the jump
  (03:00) to 04:00. A window entirely inside the skipped time (``02:00``-``02:30``) does
  not open that day: there is no moment whose wall time lies in it.
- *Fall back* (the clock repeats, e.g. 03:00 -> 02:00): START and END are their *first*
  readings. ``02:00``-``02:30`` is open during the first 02:00-02:30 only, and an
  occurrence never closes and reopens: ``01:00``-``02:30`` is one interval that ends at
  the first 02:30. A window across the repeat (``01:00``-``04:00``) lasts an hour longer.
- Half-hour shifts (Australia/Lord_Howe) and changes at midnight (America/Santiago, where
  some days start at 01:00) follow the same rule: a ``00:00`` START on a day that has no
  midnight opens when that day begins.
- A date range selects occurrences by the date on which they *open*: a night window
  opening on the range's last day runs to its end after midnight.

Every instant whose local reading is a first reading (``fold == 0``: all instants except
the second pass through a repeated hour) is inside the schedule exactly when its
wall-clock time is inside a window on the right day; a hypothesis property checks that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import IntEnum
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Bounds that keep one share's schedule small (it is evaluated on every command).
MAX_WINDOWS: Final = 32
MAX_DATE_RANGES: Final = 32
#: IANA names are at most ~30 characters; 64 bounds the column and the lookup.
MAX_ZONE_NAME: Final = 64

_HHMM: Final = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")
_ZONE_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*$")
_DAY: Final = timedelta(days=1)


class ScheduleError(ValueError):
    """A schedule (or a zone name) that is refused; the message names the field."""


class Weekday(IntEnum):
    """ISO weekdays as :meth:`datetime.date.weekday` numbers them (Monday = 0)."""

    MON = 0
    TUE = 1
    WED = 2
    THU = 3
    FRI = 4
    SAT = 5
    SUN = 6

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: object) -> Weekday:
        """``mon`` ... ``sun`` (lower case, as :meth:`label` writes them)."""
        for day in cls:
            if text == day.label:
                return day
        raise ScheduleError(f"not a weekday: {text!r} (use mon, tue, ... sun)")


ALL_DAYS: Final = frozenset(Weekday)


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Europe/Berlin``, ``UTC``), or :class:`ScheduleError`.

    Only IANA names: no file paths, no ``localtime``, no POSIX TZ strings.
    """
    if not isinstance(name, str) or not name or len(name) > MAX_ZONE_NAME:
        raise ScheduleError("a time zone is an IANA name such as Europe/Berlin")
    if not _ZONE_NAME.match(name) or name.lower() in {"localtime", "posixrules", "factory"}:
        raise ScheduleError(f"not an IANA time zone name: {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown time zone: {name!r}") from None


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("naive datetime: schedules are evaluated at aware instants")
    return at


def first_instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which ``zone``'s clock reads ``day wall`` or later.

    The wall time exists once: that instant. It exists twice (fall back): the first
    reading. It does not exist (spring forward): the moment the clock jumps past it.
    """
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0)
    at = first.astimezone(UTC)
    if at.astimezone(zone).replace(tzinfo=None) == naive:
        return at
    # Skipped: fold=1 reads it with the offset after the jump (an instant before the
    # jump), fold=0 with the offset before it (an instant after the jump). Transitions
    # are at whole seconds: bisect for the first second whose wall time is >= naive.
    low = int(naive.replace(tzinfo=zone, fold=1).timestamp())
    high = int(first.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _parse_time(value: Any, where: str) -> time:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise ScheduleError(f"{where}: a time is HH:MM on a 24-hour clock (00:00 to 23:59)")
    return time.fromisoformat(value)


def _parse_date(value: Any, where: str) -> date:
    if not isinstance(value, str) or len(value) != 10:
        raise ScheduleError(f"{where}: a date is YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ScheduleError(f"{where}: not a date: {value!r}") from None


def _only_keys(data: Any, allowed: set[str], required: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ScheduleError(f"{where}: must be an object")
    unknown = set(data) - allowed
    if unknown:
        raise ScheduleError(f"{where}: unknown member(s) {sorted(map(str, unknown))}")
    missing = required - set(data)
    if missing:
        raise ScheduleError(f"{where}: missing member(s) {sorted(missing)}")
    return data


@dataclass(frozen=True)
class WeeklyWindow:
    """Days of the week and a wall-clock span; ``end <= start`` crosses midnight."""

    days: frozenset[Weekday]
    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.days:
            raise ScheduleError("a window needs at least one day")
        for name, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is not None or value.second or value.microsecond:
                raise ScheduleError(f"a window's {name} is a local HH:MM time")

    @property
    def crosses_midnight(self) -> bool:
        """True when an occurrence ends on the next day (``end == start``: 24 hours)."""
        return self.end <= self.start

    def occurrence(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The occurrence opening on local ``day``: ``[opens, closes)`` in UTC.

        Defined for any day (the weekday is not checked here); may be empty on a day
        whose clock skips the whole window.
        """
        end_day = day + _DAY if self.crosses_midnight else day
        return first_instant(day, self.start, zone), first_instant(end_day, self.end, zone)

    def to_json(self) -> dict[str, Any]:
        return {
            "days": [d.label for d in sorted(self.days)],
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "window") -> WeeklyWindow:
        body = _only_keys(data, {"days", "start", "end"}, {"days", "start", "end"}, where)
        days = body["days"]
        if not isinstance(days, list) or not days:
            raise ScheduleError(f"{where}.days: a non-empty list of mon, tue, ... sun")
        parsed = [Weekday.parse(d) for d in days]
        if len(set(parsed)) != len(parsed):
            raise ScheduleError(f"{where}.days: a day is listed twice")
        return cls(
            frozenset(parsed),
            _parse_time(body["start"], f"{where}.start"),
            _parse_time(body["end"], f"{where}.end"),
        )


#: The window of a schedule that has only date ranges: every day, all day.
ALL_DAY: Final = WeeklyWindow(ALL_DAYS, time(0, 0), time(0, 0))


@dataclass(frozen=True)
class DateRange:
    """Local calendar dates ``first`` to ``last``, both included."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ScheduleError("a date range's last day is before its first day")

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.first <= day <= self.last

    def to_json(self) -> dict[str, str]:
        return {"first": self.first.isoformat(), "last": self.last.isoformat()}

    @classmethod
    def from_json(cls, data: Any, where: str = "date_range") -> DateRange:
        body = _only_keys(data, {"first", "last"}, {"first", "last"}, where)
        first = _parse_date(body["first"], f"{where}.first")
        last = _parse_date(body["last"], f"{where}.last")
        if last < first:
            raise ScheduleError(f"{where}: last is before first")
        return cls(first, last)


@dataclass(frozen=True)
class Schedule:
    """Weekly windows, optionally limited to date ranges (module docstring).

    No windows and some date ranges: all day on those dates. Neither: refused (a share
    without a schedule says so with ``None``, not with an empty schedule).
    """

    windows: tuple[WeeklyWindow, ...] = ()
    date_ranges: tuple[DateRange, ...] = ()

    def __post_init__(self) -> None:
        if not self.windows and not self.date_ranges:
            raise ScheduleError("a schedule needs at least one window or one date range")
        if len(self.windows) > MAX_WINDOWS:
            raise ScheduleError(f"a schedule has at most {MAX_WINDOWS} windows")
        if len(self.date_ranges) > MAX_DATE_RANGES:
            raise ScheduleError(f"a schedule has at most {MAX_DATE_RANGES} date ranges")

    def _selected(self, day: date) -> bool:
        return not self.date_ranges or any(day in r for r in self.date_ranges)

    def occurrences_around(
        self, at: datetime, zone: ZoneInfo
    ) -> Iterator[tuple[datetime, datetime]]:
        """Every occurrence that could contain ``at``: those opening on its local date
        or the day before (no occurrence is longer than that; module docstring)."""
        today = _aware(at).astimezone(zone).date()
        for day in (today - _DAY, today):
            if not self._selected(day):
                continue
            for window in self.windows or (ALL_DAY,):
                if day.weekday() in window.days:
                    yield window.occurrence(day, zone)

    def is_open(self, at: datetime, zone: ZoneInfo) -> bool:
        """Whether instant ``at`` (aware) lies in an occurrence, in ``zone``."""
        return any(opens <= at < closes for opens, closes in self.occurrences_around(at, zone))

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (days sorted, ``HH:MM``, ISO dates)."""
        return {
            "windows": [w.to_json() for w in self.windows],
            "date_ranges": [r.to_json() for r in self.date_ranges],
        }

    @classmethod
    def from_json(cls, data: Any) -> Schedule:
        """Parse and validate; :class:`ScheduleError` names the first bad field."""
        body = _only_keys(data, {"windows", "date_ranges"}, set(), "schedule")
        windows = body.get("windows", [])
        ranges = body.get("date_ranges", [])
        if not isinstance(windows, list) or len(windows) > MAX_WINDOWS:
            raise ScheduleError(f"schedule.windows: a list of at most {MAX_WINDOWS} windows")
        if not isinstance(ranges, list) or len(ranges) > MAX_DATE_RANGES:
            raise ScheduleError(
                f"schedule.date_ranges: a list of at most {MAX_DATE_RANGES} date ranges"
            )
        return cls(
            tuple(
                WeeklyWindow.from_json(w, f"schedule.windows[{i}]") for i, w in enumerate(windows)
            ),
            tuple(
                DateRange.from_json(r, f"schedule.date_ranges[{i}]") for i, r in enumerate(ranges)
            ),
        )


def canonical(data: Any) -> dict[str, Any]:
    """Validate schedule JSON and return its canonical form (the store's bind check)."""
    return Schedule.from_json(data).to_json()


def weekdays(labels: Iterable[str]) -> frozenset[Weekday]:
    return frozenset(Weekday.parse(label) for label in labels)
