"""The ladder of reminders about one appeal: its kinds, when each falls due, where it goes.

First reaction (the SLA, docs/METRICS.md sec. 2): `urgent` at once for urgent appeals,
`half_sla` at half the SLA's working hours, `deadline` at the SLA deadline; only the latest due
stage goes out. Final answer (sec. 2a): `reopened` when a citizen re-opens an appeal,
`final_half` when half of the final stage's working time has passed without a final answer
(not while the first reaction is overdue: the daily summary already lists that appeal),
`final_deadline` when the final answer's deadline passes. Nothing goes out outside the page's
working hours unless the appeal is urgent. Planning and delivery: bot/services/reminders.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from functools import lru_cache

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.services.final_stage import stage_at
from bot.services.overdue import is_open
from bot.services.policy import PageDefaults, page_calendar
from bot.services.worktime import WorkCalendar, calendar_for
from storage.models import Appeal, Page

URGENT = "urgent"
HALF_SLA = "half_sla"
DEADLINE = "deadline"
OVERDUE_DAILY = "overdue_daily"
FINAL_HALF = "final_half"
FINAL_DEADLINE = "final_deadline"
REOPENED = "reopened"
# The ladder of one appeal's first reaction, earliest stage first.
STAGES = (URGENT, HALF_SLA, DEADLINE)
# Reminders of the final-answer stage: a re-open stands alone; of the half-time and the
# deadline reminders only the later due one goes out.
FINAL_STAGES = (REOPENED, FINAL_HALF, FINAL_DEADLINE)
APPEAL_KINDS = (*STAGES, *FINAL_STAGES)

# Individual reminders are planned for moments at most this old; older overdue appeals are in
# the daily summary (this keeps a backfill of last year from flooding the press chat).
LOOKBACK = timedelta(days=7)
# A reminder due exactly at the end of the working day may still go out this long after it.
END_OF_DAY_GRACE = timedelta(minutes=15)
DAILY_AT = time(9, 0)
# Waiting between attempts after failed sends: 1, 2, 4 … minutes, at most an hour.
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)


def press_chat_of(page: Page, settings: Settings) -> int | None:
    """The press chat of a page: its own (/bind) or PRESS_CHAT_ID."""
    return page.press_chat_id if page.press_chat_id is not None else settings.PRESS_CHAT_ID


async def pages_by_chat(session: AsyncSession, settings: Settings) -> dict[int, list[Page]]:
    """Active pages grouped by the press chat their reminders go to."""
    chats: dict[int, list[Page]] = defaultdict(list)
    for page in (await session.exec(select(Page).order_by(col(Page.id)))).all():
        chat = press_chat_of(page, settings)
        if chat is not None and page.is_active:
            chats[chat].append(page)
    return chats


def chat_calendar(pages: Sequence[Page], defaults: PageDefaults) -> WorkCalendar:
    """The press office's calendar: of the first page bound to the chat, else the defaults."""
    bound = [page for page in pages if page.press_chat_id is not None]
    if bound:
        return page_calendar(bound[0], defaults)
    return calendar_for(defaults.timezone, defaults.work_hours, defaults.shorten_preholiday)


def may_send_now(calendar: WorkCalendar, now: datetime, due_at: datetime, urgent: bool) -> bool:
    """Whether a reminder due at `due_at` may go out at `now` (working time, or urgent)."""
    if urgent or calendar.is_working_time(now):
        return True
    # Due at the very end of a working interval (a deadline at 18:00): a tick just after it is
    # still on time; otherwise the next morning.
    return (
        now - due_at <= END_OF_DAY_GRACE
        and due_at <= now
        and calendar.is_working_time(due_at - timedelta(seconds=1))
    )


def stage_moments(appeal: Appeal, calendar: WorkCalendar) -> dict[str, datetime]:
    """When each stage of the ladder falls due for `appeal`."""
    moments = {
        HALF_SLA: calendar.add_working_hours(appeal.received_at, appeal.sla_hours / 2),
        DEADLINE: appeal.sla_deadline,
    }
    if appeal.urgent:
        moments[URGENT] = appeal.received_at
    return moments


def is_due(kind: str, appeal: Appeal, at: datetime) -> bool:
    """Whether a reminder of `kind` about `appeal` still has something to say at `at`."""
    if kind in STAGES:
        return is_open(appeal, at)
    if appeal.excluded:
        return False
    stage = stage_at(appeal, at)
    if stage is None or stage.answered:
        return False
    if kind == FINAL_HALF:
        # Past the deadline the deadline reminder says more; with the first reaction overdue
        # the appeal is in the daily summary and on the deadline card already.
        first_overdue = is_open(appeal, at) and appeal.sla_deadline <= at
        return stage.deadline > at and not first_overdue
    return kind == FINAL_DEADLINE or stage.reopened_at is not None


# Every tick asks again for every appeal still waiting for its final answer (about 0.5 ms each
# on a loaded 2-core machine); the moment never changes for the same stage and calendar (the
# calendars are shared, bot/services/worktime.calendar_for).
@lru_cache(maxsize=65536)
def final_half_moment(start: datetime, deadline: datetime, calendar: WorkCalendar) -> datetime:
    """Half of the working time from `start` (receipt or re-open) to the final deadline."""
    half_hours = calendar.working_seconds(start, deadline) / 2 / 3600
    return calendar.add_working_hours(start, half_hours)


def final_moments(
    appeal: Appeal, at: datetime, calendar: WorkCalendar
) -> dict[str, tuple[str, datetime]]:
    """The final-stage reminders of `appeal` known at `at`: kind → (due key, moment)."""
    stage = stage_at(appeal, at)
    if appeal.excluded or stage is None or stage.answered:
        return {}
    assert appeal.id is not None
    half = final_half_moment(stage.started_at, stage.deadline, calendar)
    if stage.reopened_at is None:
        key = str(appeal.id)
        return {FINAL_HALF: (key, half), FINAL_DEADLINE: (key, stage.deadline)}
    key = f"{appeal.id}:r"
    return {
        REOPENED: (str(appeal.id), stage.reopened_at),
        FINAL_HALF: (key, half),
        FINAL_DEADLINE: (key, stage.deadline),
    }
