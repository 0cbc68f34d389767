"""Working hours of a page as typed in settings and commands ("09:00-18:00,13:00-14:00").

A base module: settings (bot/config.py) check WORK_HOURS with it at start, and the working
calendar (bot/services/worktime.py) counts working time with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_RANGE_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})\s*$")


def _parse_range(text: str, what: str) -> tuple[time, time]:
    """Parse "HH:MM-HH:MM" into two times, the first strictly earlier."""
    match = _RANGE_RE.match(text)
    if match is None:
        raise ValueError(f"{what}: ожидается интервал вида 09:00-18:00, указано «{text}»")
    hour1, minute1, hour2, minute2 = (int(group) for group in match.groups())
    try:
        first, second = time(hour1, minute1), time(hour2, minute2)
    except ValueError:
        raise ValueError(f"{what}: такого времени суток нет: «{text}»") from None
    if first >= second:
        raise ValueError(
            f"{what}: начало должно быть раньше конца (без перехода через полночь): «{text}»"
        )
    return first, second


@dataclass(frozen=True)
class WorkSchedule:
    """Working hours of one page: local time zone, day span, optional lunch break."""

    timezone: str = "Europe/Moscow"
    start: time = time(9, 0)
    end: time = time(18, 0)
    lunch: tuple[time, time] | None = None
    shorten_preholiday: bool = False

    def __post_init__(self) -> None:
        """Validate the schedule so that a calendar built from it cannot misbehave."""
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone: {self.timezone!r}") from None
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("working hours must be local wall-clock times without tzinfo")
        if self.start >= self.end:
            raise ValueError(
                f"working day must start before it ends (no overnight shifts): "
                f"{self.start:%H:%M}-{self.end:%H:%M}"
            )
        if self.lunch is not None:
            lunch_start, lunch_end = self.lunch
            if not (self.start <= lunch_start < lunch_end <= self.end):
                raise ValueError(
                    f"обеденный перерыв {lunch_start:%H:%M}-{lunch_end:%H:%M} должен быть "
                    f"внутри рабочего дня {self.start:%H:%M}-{self.end:%H:%M}"
                )

    @classmethod
    def parse(
        cls,
        timezone: str = "Europe/Moscow",
        work_hours: str = "09:00-18:00",
        shorten_preholiday: bool = False,
    ) -> WorkSchedule:
        """Build from settings: "09:00-18:00" or "09:00-18:00,13:00-14:00" (second = lunch)."""
        parts = work_hours.split(",")
        if len(parts) > 2:
            raise ValueError(
                "ожидается рабочий день и не больше одного перерыва, например "
                f"09:00-18:00,13:00-14:00; указано «{work_hours}»"
            )
        start, end = _parse_range(parts[0], "рабочее время")
        lunch = _parse_range(parts[1], "обеденный перерыв") if len(parts) == 2 else None
        return cls(
            timezone=timezone.strip(),
            start=start,
            end=end,
            lunch=lunch,
            shorten_preholiday=shorten_preholiday,
        )
