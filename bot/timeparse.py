"""Parsing the times people type: ISO 8601 or the Russian «02.11.2026», a bare date meaning
local midnight."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

# «02.11.2026», «2.11.2026 9:30» (DESIGN sec. 4: dates may be written the Russian way).
_RUSSIAN = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2}))?")


class TimeFormatError(ValueError):
    """The text is not an ISO 8601 or Russian date or date-time."""


def parse_time(text: str, timezone: str) -> datetime:
    """ISO 8601 or DD.MM.YYYY [HH:MM] to aware UTC; a bare date is 00:00 in `timezone`.

    A time without an offset is local in `timezone`.
    """
    text = text.strip()
    zone = ZoneInfo(timezone)
    try:
        russian = _RUSSIAN.fullmatch(text)
        if russian:
            day, month, year, hour, minute = russian.groups()
            moment = datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), tzinfo=zone
            )
            return moment.astimezone(UTC)
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0, 0), zone).astimezone(UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TimeFormatError(
            f"{text!r} — не дата и не время: пишите по ISO 8601 (2026-11-02, "
            "2026-11-02T09:00+03:00) или по-русски (02.11.2026)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)
