"""Working-time calendar: Russian production calendar, per-page time zone, SLA deadlines."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from bot.workhours import WorkSchedule

logger = logging.getLogger(__name__)

__all__ = ["WorkCalendar", "WorkSchedule", "calendar_for"]

# Non-working public holidays of Labour Code art. 112 (month, day). The `holidays` package also
# lists transferred days off ("Day off (substituted ...)", "(observed)"); those are non-working
# but are not holidays for the pre-holiday rule of art. 95.
_PUBLIC_HOLIDAYS_MD: frozenset[tuple[int, int]] = frozenset(
    [(1, d) for d in range(1, 9)] + [(2, 23), (3, 8), (5, 1), (5, 9), (6, 12), (11, 4)]
)

# The longest run of non-working days in the RU calendar is the New Year break (about 12 days);
# a search that finds no working time in this many days means the schedule has none at all.
_MAX_IDLE_DAYS = 62


@dataclass(frozen=True)
class _YearCalendar:
    """Non-working dates and transferred working weekend days of one year."""

    days_off: frozenset[date]
    weekend_workdays: frozenset[date]


@lru_cache(maxsize=256)
def _ru_year(year: int) -> _YearCalendar:
    """The RU production calendar of one year from the `holidays` package (cached per year)."""
    ru = holidays.country_holidays("RU", years=year)
    days_off = frozenset(day for day in ru if day.year == year)
    # `weekend_workdays` exists in holidays >= 0.5x; an older package simply has no transfers.
    workdays = frozenset(
        day for day in (getattr(ru, "weekend_workdays", None) or ()) if day.year == year
    )
    return _YearCalendar(days_off=days_off, weekend_workdays=workdays)


def _is_public_holiday(day: date) -> bool:
    """Whether `day` is a non-working public holiday proper (art. 112), not a transferred one."""
    return (day.month, day.day) in _PUBLIC_HOLIDAYS_MD and day in _ru_year(day.year).days_off


def _is_ru_working_day(day: date) -> bool:
    """Whether `day` is a working day of the RU five-day-week production calendar."""
    year = _ru_year(day.year)
    if day in year.days_off:
        return False
    return day.weekday() < 5 or day in year.weekend_workdays


def _require_aware(moment: datetime, name: str) -> None:
    """Reject naive datetimes: a wall-clock time without a zone is ambiguous across pages."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {moment!r}")


DEFAULT_SCHEDULE = WorkSchedule()  # Mon-Fri 09:00-18:00, Europe/Moscow


class WorkCalendar:
    """Working time of one schedule: which instants count, SLA deadlines, working seconds.

    Working days are Mon–Fri of the RU production calendar (public holidays and transferred days
    off removed, transferred working Saturdays added), read in the page's own time zone. With
    `shorten_preholiday` a pre-holiday working day ends one hour earlier: the working day right
    before a public holiday, or a transferred working weekend day followed only by non-working
    days up to a public holiday (as in the official calendars of 2024 and 2025). A working day
    before a mere transferred day off (2025-05-07, 2025-12-30) is not shortened.
    """

    def __init__(self, schedule: WorkSchedule = DEFAULT_SCHEDULE) -> None:
        """Remember the schedule; day intervals are computed lazily and cached."""
        self.schedule = schedule
        self._zone = ZoneInfo(schedule.timezone)
        self._intervals_cached = lru_cache(maxsize=8192)(self._compute_intervals)

    def __repr__(self) -> str:
        """Show the schedule for logs."""
        return f"WorkCalendar({self.schedule!r})"

    def is_working_day(self, day: date) -> bool:
        """Whether the local calendar day `day` has working hours."""
        return _is_ru_working_day(day)

    def is_preholiday(self, day: date) -> bool:
        """Whether `day` is a pre-holiday working day (shortened if the schedule says so)."""
        if not _is_ru_working_day(day):
            return False
        following = day + timedelta(days=1)
        if _is_public_holiday(following):
            return True
        if day.weekday() < 5:
            return False
        # A transferred working Saturday takes over the shortening of the weekday it replaced.
        for _ in range(_MAX_IDLE_DAYS):
            if _is_ru_working_day(following):
                return False
            if _is_public_holiday(following):
                return True
            following += timedelta(days=1)
        return False

    def is_working_time(self, moment: datetime) -> bool:
        """Whether the instant `moment` lies inside working hours (interval ends excluded)."""
        _require_aware(moment, "moment")
        local_day = moment.astimezone(self._zone).date()
        return any(start <= moment < end for start, end in self.working_intervals(local_day))

    def working_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """Working intervals of the local day `day` as half-open [start, end) in aware UTC."""
        return list(self._intervals_cached(day))

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The SLA deadline: `start` plus `hours` of working time, in aware UTC.

        With hours == 0 the deadline is `start` itself, even outside working hours: nothing is
        owed yet. A deadline that uses up an interval exactly is that interval's end (Friday
        17:00 + 1 h is Friday 18:00), while a start at an interval's end counts from the next
        interval.
        """
        _require_aware(start, "start")
        if not math.isfinite(hours) or hours < 0:
            raise ValueError(f"hours must be a finite non-negative number, got {hours!r}")
        start_utc = start.astimezone(UTC)
        # One rounding to whole microseconds here; everything below is exact timedelta arithmetic,
        # so working_seconds(start, deadline) gives back exactly this amount.
        remaining = timedelta(hours=hours)
        if not remaining:
            return start_utc
        for interval_start, interval_end in self._intervals_from(start_utc):
            begin = max(interval_start, start_utc)
            available = interval_end - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _intervals_from is infinite")  # pragma: no cover

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds of working time in [start, end); 0 if end <= start."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
        if end_utc <= start_utc:
            return 0.0
        total = timedelta(0)
        day = start_utc.astimezone(self._zone).date()
        last_day = end_utc.astimezone(self._zone).date()
        while day <= last_day:
            for interval_start, interval_end in self._intervals_cached(day):
                overlap = min(interval_end, end_utc) - max(interval_start, start_utc)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total.total_seconds()

    def end_of_working_day_after(self, start: datetime, days: int) -> datetime:
        """The end of working hours on the `days`-th working day after the day of `start`.

        The day of `start` is the local day of its next working moment: a message at 20:00 or
        on a Saturday counts from the next working day (the final-answer deadline,
        docs/METRICS.md sec. 2a).
        Monday 10:00 with days=7 gives the next Wednesday 18:00.
        """
        if days < 0:
            raise ValueError(f"days must be non-negative, got {days!r}")
        day = self.next_working_moment(start).astimezone(self._zone).date()
        counted = 0
        idle = 0
        while counted < days:
            day += timedelta(days=1)
            if self._intervals_cached(day):
                counted += 1
                idle = 0
            else:
                idle += 1
                if idle > _MAX_IDLE_DAYS:  # pragma: no cover - schedules are validated
                    raise RuntimeError(f"no working day within {_MAX_IDLE_DAYS} days after {day}")
        return self._intervals_cached(day)[-1][1]

    def next_working_moment(self, moment: datetime) -> datetime:
        """`moment` itself (in UTC) if inside working time, else the start of the next interval."""
        _require_aware(moment, "moment")
        moment_utc = moment.astimezone(UTC)
        interval_start, _ = next(self._intervals_from(moment_utc))
        return max(interval_start, moment_utc)

    def _intervals_from(self, moment_utc: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals that end after `moment_utc`, in order, forever."""
        day = moment_utc.astimezone(self._zone).date()
        idle_days = 0
        while True:
            intervals = self._intervals_cached(day)
            for interval in intervals:
                if interval[1] > moment_utc:
                    yield interval
            idle_days = 0 if intervals else idle_days + 1
            if idle_days > _MAX_IDLE_DAYS:  # pragma: no cover - schedules are validated
                raise RuntimeError(f"no working time within {_MAX_IDLE_DAYS} days after {day}")
            day += timedelta(days=1)

    def _compute_intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """Compute the UTC working intervals of one local day."""
        if not _is_ru_working_day(day):
            return ()
        schedule = self.schedule

        def local(at: time) -> datetime:
            return datetime.combine(day, at, tzinfo=self._zone)

        day_start, day_end = local(schedule.start), local(schedule.end)
        if schedule.shorten_preholiday and self.is_preholiday(day):
            day_end -= timedelta(hours=1)
        pieces = [(day_start, day_end)]
        if schedule.lunch is not None:
            lunch_start, lunch_end = local(schedule.lunch[0]), local(schedule.lunch[1])
            pieces = [(day_start, min(day_end, lunch_start)), (max(day_start, lunch_end), day_end)]
        # Local wall-clock arithmetic above; conversion to UTC resolves DST gaps (not in Russia
        # today, but a page may use any IANA zone).
        result = []
        for piece_start, piece_end in pieces:
            start_utc, end_utc = piece_start.astimezone(UTC), piece_end.astimezone(UTC)
            if start_utc < end_utc:
                result.append((start_utc, end_utc))
        return tuple(result)


@lru_cache(maxsize=128)
def calendar_for(
    timezone: str = "Europe/Moscow",
    work_hours: str = "09:00-18:00",
    shorten_preholiday: bool = False,
) -> WorkCalendar:
    """A shared calendar for the given settings (cached, so repeated calls are free)."""
    return WorkCalendar(WorkSchedule.parse(timezone, work_hours, shorten_preholiday))
