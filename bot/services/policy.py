"""Per-page working calendar and SLA, falling back to the `.env` defaults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.services.worktime import WorkCalendar, calendar_for
from storage.models import Page


@dataclass(frozen=True, slots=True)
class PageDefaults:
    """The defaults a page falls back to (docs/METRICS.md, .env.example)."""

    timezone: str = "Europe/Moscow"
    work_hours: str = "09:00-18:00"
    shorten_preholiday: bool = False
    sla_hours: float = 8.0
    sla_urgent_hours: float = 4.0


def page_calendar(page: Page | None, defaults: PageDefaults) -> WorkCalendar:
    """The working calendar of `page`."""
    timezone = (page.timezone if page else None) or defaults.timezone
    work_hours = (page.work_hours if page else None) or defaults.work_hours
    return calendar_for(timezone, work_hours, defaults.shorten_preholiday)


def sla_hours(page: Page | None, urgent: bool, defaults: PageDefaults) -> float:
    """How many working hours `page` has to answer an (urgent) appeal."""
    if urgent:
        return (page.sla_urgent_hours if page else None) or defaults.sla_urgent_hours
    return (page.sla_hours if page else None) or defaults.sla_hours


def sla_deadline(
    page: Page | None, received_at: datetime, urgent: bool, defaults: PageDefaults
) -> tuple[float, datetime]:
    """The SLA in hours and the deadline for an appeal received at `received_at`."""
    hours = sla_hours(page, urgent, defaults)
    return hours, page_calendar(page, defaults).add_working_hours(received_at, hours)


def response_seconds(
    page: Page | None, received_at: datetime, responded_at: datetime, defaults: PageDefaults
) -> tuple[float, float]:
    """Calendar and working seconds between an appeal and its first response."""
    calendar_s = max((responded_at - received_at) / timedelta(seconds=1), 0.0)
    working_s = page_calendar(page, defaults).working_seconds(received_at, responded_at)
    return calendar_s, working_s
