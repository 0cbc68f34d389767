"""Parsing the times people type: ISO 8601, a bare date meaning local midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo


class TimeFormatError(ValueError):
    """The text is not an ISO 8601 date or date-time."""


def parse_time(text: str, timezone: str) -> datetime:
    """ISO 8601 to aware UTC; a bare date is 00:00 and a naive time is local in `timezone`."""
    text = text.strip()
    zone = ZoneInfo(timezone)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(0, 0), zone).astimezone(UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TimeFormatError(
            f"{text!r} is not an ISO 8601 date or time (e.g. 2026-11-02 or 2026-11-02T09:00+03:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)
