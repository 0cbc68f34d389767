"""Per-page working calendar and SLA, falling back to the `.env` defaults."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.config import PageDefaults
from bot.services.worktime import WorkCalendar, calendar_for
from storage.models import Page


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


def final_answer_days(page: Page | None, urgent: bool, defaults: PageDefaults) -> int:
    """How many working days `page` has for the final answer to an (urgent) appeal."""
    if urgent:
        return (
            page.final_answer_urgent_days if page else None
        ) or defaults.final_answer_urgent_days
    return (page.final_answer_days if page else None) or defaults.final_answer_days


def final_deadline(
    page: Page | None, start: datetime, urgent: bool, defaults: PageDefaults
) -> datetime:
    """The final answer's deadline for an appeal received (or re-opened) at `start`.

    docs/METRICS.md: the end of working hours on the N-th working day after the day of receipt;
    a message outside working hours counts from the next working day.
    """
    days = final_answer_days(page, urgent, defaults)
    return page_calendar(page, defaults).end_of_working_day_after(start, days)


def response_seconds(
    page: Page | None, received_at: datetime, responded_at: datetime, defaults: PageDefaults
) -> tuple[float, float]:
    """Calendar and working seconds between an appeal and its first response."""
    calendar_s = max((responded_at - received_at) / timedelta(seconds=1), 0.0)
    working_s = page_calendar(page, defaults).working_seconds(received_at, responded_at)
    return calendar_s, working_s
