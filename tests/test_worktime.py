"""Tests for the working-time calendar (RU production calendar, time zones, SLA deadlines)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.services.worktime import WorkCalendar, WorkSchedule, calendar_for

MSK = ZoneInfo("Europe/Moscow")
VLADIVOSTOK = ZoneInfo("Asia/Vladivostok")
KALININGRAD = ZoneInfo("Europe/Kaliningrad")


def msk(year: int, month: int, day: int, *clock: int) -> datetime:
    """A Moscow wall-clock instant; `clock` is hour, minute, second, microsecond."""
    hour, minute, second, microsecond = (*clock, 0, 0, 0, 0)[:4]
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=MSK)


def utc(year: int, month: int, day: int, *clock: int) -> datetime:
    """A UTC instant; `clock` is hour, minute, second, microsecond."""
    hour, minute, second, microsecond = (*clock, 0, 0, 0, 0)[:4]
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    """The default calendar: Moscow, Mon–Fri 09:00–18:00, no shortened days."""
    return WorkCalendar()


# --- production calendar facts, as the installed `holidays` package gives them ---------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 11, 3), True),  # Tuesday before Unity Day: an ordinary working day
        (date(2026, 11, 4), False),  # Unity Day, Wednesday
        (date(2026, 11, 5), True),
        (date(2026, 12, 30), True),
        (date(2026, 12, 31), False),  # day off transferred from Sunday 2026-01-04
        (date(2026, 1, 9), False),  # day off transferred from Saturday 2026-01-03
        (date(2026, 1, 12), True),
        (date(2026, 3, 9), False),  # Women's Day fell on Sunday
        (date(2026, 5, 11), False),  # Victory Day fell on Saturday
        (date(2027, 1, 8), False),
        (date(2027, 1, 11), True),
        (date(2025, 11, 1), True),  # Saturday made a working day (transfer to 2025-11-03)
        (date(2025, 11, 3), False),
        (date(2027, 2, 20), True),  # Saturday made a working day (transfer to 2027-02-22)
        (date(2027, 2, 22), False),
        (date(2026, 6, 6), False),  # an ordinary Saturday
        (date(2026, 6, 10), True),  # an ordinary Wednesday
    ],
)
def test_is_working_day(cal: WorkCalendar, day: date, working: bool) -> None:
    assert cal.is_working_day(day) is working


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        # Official lists of shortened days for 2024 and 2025 (Mintrud), 2026 by the same rule.
        (2024, ["02-22", "03-07", "04-27", "05-08", "06-11", "11-02", "12-28"]),
        (2025, ["03-07", "04-30", "06-11", "11-01"]),
        (2026, ["04-30", "05-08", "06-11", "11-03"]),
    ],
)
def test_preholiday_days_match_production_calendar(
    cal: WorkCalendar, year: int, expected: list[str]
) -> None:
    day, found = date(year, 1, 1), []
    while day.year == year:
        if cal.is_preholiday(day):
            found.append(f"{day:%m-%d}")
        day += timedelta(days=1)
    assert found == expected


# --- SLA deadline table ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "hours", "deadline"),
    [
        # The examples of docs/METRICS.md.
        (msk(2026, 6, 5, 17, 30), 1, msk(2026, 6, 8, 9, 30)),  # Friday 17:30 -> Monday 09:30
        (msk(2026, 6, 6, 12, 0), 1, msk(2026, 6, 8, 10, 0)),  # Saturday -> Monday 10:00
        # Inside one day, and an interval used up exactly ends at its end.
        (msk(2026, 6, 10, 10, 0), 2, msk(2026, 6, 10, 12, 0)),
        (msk(2026, 6, 5, 17, 0), 1, msk(2026, 6, 5, 18, 0)),
        # Received exactly at the end of the day: counting starts next morning.
        (msk(2026, 6, 10, 18, 0), 1, msk(2026, 6, 11, 10, 0)),
        # Before opening: counting starts at 09:00.
        (msk(2026, 6, 10, 7, 15), 0.5, msk(2026, 6, 10, 9, 30)),
        # N = 0: the deadline is the received time itself, even outside working hours.
        (msk(2026, 6, 6, 12, 0), 0, msk(2026, 6, 6, 12, 0)),
        # Across Unity Day (Wednesday 2026-11-04): Tuesday 15:00 + 8 h -> Thursday 14:00.
        (msk(2026, 11, 3, 15, 0), 8, msk(2026, 11, 5, 14, 0)),
        # Received on the holiday itself.
        (msk(2026, 11, 4, 11, 0), 4, msk(2026, 11, 5, 13, 0)),
        # New Year: 2026-12-31 is a day off, 2027-01-01..08 holidays, 9-10 weekend.
        (msk(2026, 12, 31, 17, 0), 8, msk(2027, 1, 11, 17, 0)),
        (msk(2026, 12, 30, 17, 0), 8, msk(2027, 1, 11, 16, 0)),
        # Transferred working Saturday 2025-11-01 counts; 2025-11-03 and 11-04 do not.
        (msk(2025, 10, 31, 17, 0), 2, msk(2025, 11, 1, 10, 0)),
        (msk(2025, 11, 1, 17, 0), 2, msk(2025, 11, 5, 10, 0)),
        # Five working days.
        (msk(2026, 6, 1, 9, 0), 45, msk(2026, 6, 5, 18, 0)),
    ],
)
def test_add_working_hours_table(
    cal: WorkCalendar, received: datetime, hours: float, deadline: datetime
) -> None:
    result = cal.add_working_hours(received, hours)
    assert result == deadline
    assert result.tzinfo is UTC


def test_vladivostok_and_kaliningrad_differ_for_same_instant() -> None:
    received = utc(2026, 6, 5, 6, 30)  # Friday: 16:30 Vladivostok, 08:30 Kaliningrad
    vladivostok = calendar_for("Asia/Vladivostok")
    kaliningrad = calendar_for("Europe/Kaliningrad")
    assert received.astimezone(VLADIVOSTOK).hour == 16
    assert received.astimezone(KALININGRAD).hour == 8

    # Vladivostok: 1.5 h left on Friday, the rest on Monday from 09:00 local.
    assert vladivostok.add_working_hours(received, 4) == datetime(
        2026, 6, 8, 11, 30, tzinfo=VLADIVOSTOK
    )
    # Kaliningrad: starts at 09:00 local on the same Friday.
    assert kaliningrad.add_working_hours(received, 4) == datetime(
        2026, 6, 5, 13, 0, tzinfo=KALININGRAD
    )
    assert vladivostok.is_working_time(received)
    assert not kaliningrad.is_working_time(received)


def test_vladivostok_friday_evening_is_moscow_friday_morning() -> None:
    received = utc(2026, 6, 5, 8, 30)  # 18:30 Vladivostok (closed), 11:30 Moscow (open)
    assert calendar_for("Asia/Vladivostok").add_working_hours(received, 1) == datetime(
        2026, 6, 8, 10, 0, tzinfo=VLADIVOSTOK
    )
    assert calendar_for().add_working_hours(received, 1) == msk(2026, 6, 5, 12, 30)


def test_holidays_are_local_days_in_vladivostok() -> None:
    vladivostok = calendar_for("Asia/Vladivostok")
    # 2026-11-03 15:00 UTC is already 01:00 on Unity Day in Vladivostok.
    received = utc(2026, 11, 3, 15, 0)
    assert vladivostok.add_working_hours(received, 1) == datetime(
        2026, 11, 5, 10, 0, tzinfo=VLADIVOSTOK
    )


def test_lunch_break() -> None:
    lunch = calendar_for(work_hours="09:00-18:00,13:00-14:00")
    assert lunch.working_intervals(date(2026, 6, 10)) == [
        (msk(2026, 6, 10, 9, 0), msk(2026, 6, 10, 13, 0)),
        (msk(2026, 6, 10, 14, 0), msk(2026, 6, 10, 18, 0)),
    ]
    assert lunch.add_working_hours(msk(2026, 6, 10, 12, 30), 1) == msk(2026, 6, 10, 14, 30)
    assert lunch.add_working_hours(msk(2026, 6, 10, 12, 0), 1) == msk(2026, 6, 10, 13, 0)
    assert lunch.add_working_hours(msk(2026, 6, 10, 13, 0), 1) == msk(2026, 6, 10, 15, 0)
    assert lunch.working_seconds(msk(2026, 6, 10, 0, 0), msk(2026, 6, 11, 0, 0)) == 8 * 3600
    assert not lunch.is_working_time(msk(2026, 6, 10, 13, 30))
    assert lunch.next_working_moment(msk(2026, 6, 10, 13, 30)) == msk(2026, 6, 10, 14, 0)


def test_shorten_preholiday() -> None:
    short = calendar_for(shorten_preholiday=True)
    plain = calendar_for()
    tuesday = date(2026, 11, 3)  # before Unity Day
    assert short.working_intervals(tuesday) == [(msk(2026, 11, 3, 9, 0), msk(2026, 11, 3, 17, 0))]
    assert plain.working_intervals(tuesday) == [(msk(2026, 11, 3, 9, 0), msk(2026, 11, 3, 18, 0))]
    assert short.add_working_hours(msk(2026, 11, 3, 16, 30), 1) == msk(2026, 11, 5, 9, 30)
    assert plain.add_working_hours(msk(2026, 11, 3, 16, 30), 1) == msk(2026, 11, 3, 17, 30)
    # An ordinary day is not shortened.
    assert short.working_intervals(date(2026, 11, 5)) == plain.working_intervals(date(2026, 11, 5))
    # 2025-12-30 precedes only a transferred day off: not shortened.
    assert short.working_intervals(date(2025, 12, 30))[0][1] == msk(2025, 12, 30, 18, 0)
    # The transferred working Saturday 2025-11-01 is the pre-holiday day.
    assert short.working_intervals(date(2025, 11, 1))[0][1] == msk(2025, 11, 1, 17, 0)


def test_shorten_preholiday_with_lunch() -> None:
    cal = calendar_for("Europe/Moscow", "08:00-17:00,12:00-13:00", True)
    assert cal.working_intervals(date(2026, 4, 30)) == [
        (msk(2026, 4, 30, 8, 0), msk(2026, 4, 30, 12, 0)),
        (msk(2026, 4, 30, 13, 0), msk(2026, 4, 30, 16, 0)),
    ]


def test_working_intervals_empty_on_days_off(cal: WorkCalendar) -> None:
    assert cal.working_intervals(date(2026, 6, 6)) == []
    assert cal.working_intervals(date(2027, 1, 5)) == []


def test_working_seconds_table(cal: WorkCalendar) -> None:
    # Friday 17:30 to Monday 09:30: half an hour on each side of the weekend.
    assert cal.working_seconds(msk(2026, 6, 5, 17, 30), msk(2026, 6, 8, 9, 30)) == 3600
    # A whole week of June 2026 (Russia Day, Friday 2026-06-12, is off).
    assert cal.working_seconds(msk(2026, 6, 8), msk(2026, 6, 15)) == 4 * 9 * 3600
    # Whole New Year break.
    assert cal.working_seconds(msk(2026, 12, 30, 18, 0), msk(2027, 1, 11, 9, 0)) == 0
    assert cal.working_seconds(msk(2026, 6, 10, 12), msk(2026, 6, 10, 11)) == 0
    assert cal.working_seconds(msk(2026, 6, 10, 12), msk(2026, 6, 10, 12)) == 0
    # Any time zone in, the same answer.
    assert cal.working_seconds(utc(2026, 6, 10, 6, 0), utc(2026, 6, 10, 7, 0)) == 3600


def test_is_working_time_and_next_moment(cal: WorkCalendar) -> None:
    assert cal.is_working_time(msk(2026, 6, 10, 9, 0))
    assert not cal.is_working_time(msk(2026, 6, 10, 18, 0))
    assert not cal.is_working_time(msk(2026, 6, 6, 12, 0))
    assert cal.is_working_time(utc(2026, 6, 10, 6, 0))  # 09:00 Moscow
    inside = msk(2026, 6, 10, 11, 11, 11, 111)
    assert cal.next_working_moment(inside) == inside
    assert cal.next_working_moment(inside).tzinfo is UTC
    assert cal.next_working_moment(msk(2026, 6, 5, 18, 0)) == msk(2026, 6, 8, 9, 0)
    assert cal.next_working_moment(msk(2026, 12, 31, 10, 0)) == msk(2027, 1, 11, 9, 0)


def test_naive_datetimes_rejected(cal: WorkCalendar) -> None:
    naive = datetime(2026, 6, 10, 12, 0)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.add_working_hours(naive, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.working_seconds(naive, msk(2026, 6, 11))
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.working_seconds(msk(2026, 6, 9), naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.is_working_time(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.next_working_moment(naive)


@pytest.mark.parametrize("hours", [-1.0, float("nan"), float("inf")])
def test_bad_hours_rejected(cal: WorkCalendar, hours: float) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        cal.add_working_hours(msk(2026, 6, 10, 12), hours)


# --- schedule parsing ------------------------------------------------------------------------


def test_parse_valid() -> None:
    assert WorkSchedule.parse() == WorkSchedule()
    schedule = WorkSchedule.parse("Asia/Vladivostok", " 8:30 - 17:15 , 12:00-12:45 ", True)
    assert schedule == WorkSchedule(
        timezone="Asia/Vladivostok",
        start=time(8, 30),
        end=time(17, 15),
        lunch=(time(12, 0), time(12, 45)),
        shorten_preholiday=True,
    )


@pytest.mark.parametrize(
    ("timezone", "work_hours", "message"),
    [
        ("Europe/Moscow", "9-18", "ожидается интервал вида 09:00-18:00"),
        ("Europe/Moscow", "", "ожидается интервал вида"),
        ("Europe/Moscow", "09:00-25:00", "такого времени суток нет"),
        ("Europe/Moscow", "18:00-09:00", "начало должно быть раньше конца"),
        ("Europe/Moscow", "09:00-09:00", "начало должно быть раньше конца"),
        ("Europe/Moscow", "09:00-18:00,19:00-20:00", "внутри рабочего дня"),
        (
            "Europe/Moscow",
            "09:00-18:00,14:00-13:00",
            "обеденный перерыв: начало должно быть раньше",
        ),
        ("Europe/Moscow", "09:00-18:00,13:00-14:00,15:00-16:00", "не больше одного перерыва"),
        ("Europe/Moskva", "09:00-18:00", "unknown time zone"),
        ("", "09:00-18:00", "unknown time zone"),
    ],
)
def test_parse_invalid(timezone: str, work_hours: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkSchedule.parse(timezone, work_hours)


def test_calendar_for_is_cached() -> None:
    assert calendar_for("Asia/Vladivostok") is calendar_for("Asia/Vladivostok")
    assert calendar_for("Asia/Vladivostok") is not calendar_for("Europe/Kaliningrad")


# --- properties ------------------------------------------------------------------------------

ZONES = ["Europe/Moscow", "Europe/Kaliningrad", "Asia/Vladivostok", "Asia/Kamchatka"]
SCHEDULES = ["09:00-18:00", "08:00-17:00,12:00-13:00"]

instants = st.datetimes(
    min_value=datetime(2024, 12, 1),  # noqa: DTZ001 - hypothesis bounds are naive by design
    max_value=datetime(2027, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
calendars = st.builds(
    calendar_for, st.sampled_from(ZONES), st.sampled_from(SCHEDULES), st.booleans()
)
# Up to two working weeks: enough to cross the New Year break.
work_hours = st.floats(min_value=0, max_value=90, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(calendar=calendars, received=instants, first=work_hours, second=work_hours)
def test_deadline_monotone_in_hours(
    calendar: WorkCalendar, received: datetime, first: float, second: float
) -> None:
    low, high = sorted((first, second))
    early, late = (
        calendar.add_working_hours(received, low),
        calendar.add_working_hours(received, high),
    )
    assert received <= early <= late


@settings(max_examples=200, deadline=None)
@given(calendar=calendars, received=instants, hours=work_hours)
def test_working_seconds_inverts_deadline(
    calendar: WorkCalendar, received: datetime, hours: float
) -> None:
    deadline = calendar.add_working_hours(received, hours)
    assert calendar.working_seconds(received, deadline) == pytest.approx(hours * 3600, abs=1e-6)
    if hours > 0:
        # The deadline is always reached inside or at the end of a working interval.
        just_before = deadline - timedelta(microseconds=1)
        assert calendar.is_working_time(just_before) or just_before < received


@settings(max_examples=200, deadline=None)
@given(calendar=calendars, moments=st.lists(instants, min_size=3, max_size=3))
def test_working_seconds_additive(calendar: WorkCalendar, moments: list[datetime]) -> None:
    a, b, c = sorted(moments)
    whole = calendar.working_seconds(a, c)
    assert whole == pytest.approx(
        calendar.working_seconds(a, b) + calendar.working_seconds(b, c), abs=1e-6
    )
    assert 0 <= calendar.working_seconds(a, b) <= whole
    assert calendar.working_seconds(c, a) == 0


@settings(max_examples=200, deadline=None)
@given(calendar=calendars, moment=instants, span=st.integers(min_value=1, max_value=14 * 86400))
def test_zero_inside_non_working_time(calendar: WorkCalendar, moment: datetime, span: int) -> None:
    start = moment
    if calendar.is_working_time(start):
        # Move to the end of the current interval: from there to the next start is all off.
        local_day = start.astimezone(ZoneInfo(calendar.schedule.timezone)).date()
        start = next(e for s, e in calendar.working_intervals(local_day) if s <= start < e)
    next_start = calendar.next_working_moment(start)
    assert not calendar.is_working_time(start)
    assert calendar.working_seconds(start, next_start) == 0
    end = min(next_start, start + timedelta(seconds=span))
    assert calendar.working_seconds(start, end) == 0
    assert calendar.add_working_hours(start, 0) == start
    # Any positive amount lands strictly after the next working moment.
    assert calendar.add_working_hours(start, 0.001) > next_start


@settings(max_examples=200, deadline=None)
@given(calendar=calendars, moment=instants)
def test_next_working_moment_is_working(calendar: WorkCalendar, moment: datetime) -> None:
    nxt = calendar.next_working_moment(moment)
    assert nxt >= moment
    assert calendar.is_working_time(nxt)
    assert calendar.working_seconds(moment, nxt) == 0
    if not calendar.is_working_time(moment):
        # Every working interval is far longer than 3.6 s.
        assert calendar.add_working_hours(moment, 1e-3) == nxt + timedelta(seconds=3.6)


@pytest.mark.parametrize(
    ("received", "days", "due"),
    [
        # docs/METRICS.md: Monday 10:00, N = 7 → the next Wednesday 18:00.
        (msk(2026, 11, 9, 10), 7, msk(2026, 11, 18, 18)),
        # Wednesday 4 November is a holiday: Mon 2 → Tue 3, Thu 5, Fri 6, Mon 9 … Thu 12.
        (msk(2026, 11, 2, 10), 7, msk(2026, 11, 12, 18)),
        # After hours: counted from Tuesday, the next working day → Thursday of the next week.
        (msk(2026, 11, 9, 20), 7, msk(2026, 11, 19, 18)),
        # Before the working day starts: that day is the day of receipt.
        (msk(2026, 11, 9, 7), 7, msk(2026, 11, 18, 18)),
        # Urgent (N = 1) on a Saturday: from Monday → Tuesday 18:00.
        (msk(2026, 11, 7, 12), 1, msk(2026, 11, 10, 18)),
        # Tuesday 3 November, N = 1: the holiday is skipped → Thursday 5 November.
        (msk(2026, 11, 3, 17, 59), 1, msk(2026, 11, 5, 18)),
    ],
)
def test_final_answer_deadline_is_the_end_of_the_nth_working_day(
    received: datetime, days: int, due: datetime
) -> None:
    calendar = calendar_for("Europe/Moscow", "09:00-18:00")
    assert calendar.end_of_working_day_after(received, days) == due


def test_final_answer_deadline_in_the_pages_zone_and_hours() -> None:
    """Vladivostok, 08:00-17:00 with lunch: the end of the last interval of the day."""
    calendar = calendar_for("Asia/Vladivostok", "08:00-17:00,12:00-13:00")
    vvo = ZoneInfo("Asia/Vladivostok")
    received = datetime(2026, 11, 9, 10, tzinfo=vvo)
    assert calendar.end_of_working_day_after(received, 7) == datetime(2026, 11, 18, 17, tzinfo=vvo)
