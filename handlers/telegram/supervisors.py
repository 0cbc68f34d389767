"""/stats for supervisors: the report as Russian text plus a chart; everyone else is refused.

/overdue, /digest and /export live in `handlers.telegram.pressoffice`; roles are decided by
`bot.services.roles` for both.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import ru
from bot.app import AppContext
from bot.services import roles
from bot.services.cards import page_title
from bot.services.charts import chart_marks, stats_chart_png
from bot.services.policy import page_calendar, sla_hours
from bot.services.report_text import (
    PeriodError,
    format_stats,
    join_dashes,
    last_days,
    local_bounds,
    period_days,
    period_text,
)
from bot.services.reports import build_report, daily_series
from bot.services.team import team_lines, team_report
from handlers.telegram.page_health import send_health_chart
from storage.models import Page
from storage.pages import find_pages

logger = logging.getLogger(__name__)

REFUSAL = "Извините, эта команда доступна только руководителям пресс-службы."
USAGE = (
    "Как спросить статистику:\n"
    "/stats — последние 7 дней\n"
    "/stats неделя — текущая неделя\n"
    "/stats месяц — текущий месяц\n"
    "/stats 01.11-15.11 — за даты (включительно)\n"
    "В конце можно указать страницу: номер или часть названия, например /stats месяц минздрав"
)


class StatsRequestError(ValueError):
    """The /stats arguments cannot be understood; the message is for the supervisor."""


@dataclass(frozen=True)
class StatsRequest:
    since: datetime
    until: datetime
    page_query: str | None


def parse_stats_args(args: str | None, now: datetime, timezone: str) -> StatsRequest:
    """The period and page of `/stats [неделя|месяц|ДД.ММ-ДД.ММ] [страница]`."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    words = join_dashes(args or "").split()
    try:
        days = period_days(words[0], today) if words else None
    except PeriodError as error:
        raise StatsRequestError(f"{error} {USAGE}") from None
    if days is None:
        days, rest = last_days(today), words
    else:
        rest = words[1:]
    since, until = local_bounds(days, timezone)
    return StatsRequest(since, until, " ".join(rest).strip() or None)


async def stats_command(
    message: Message, command: CommandObject, session: AsyncSession, app: AppContext
) -> None:
    """Answer /stats with the report text and the chart."""
    user_id = message.from_user.id if message.from_user else None
    if user_id is None or not await roles.is_supervisor(session, app.settings, user_id):
        await message.answer(REFUSAL)
        return
    timezone = app.settings.TIMEZONE
    now = app.clock()
    try:
        request = parse_stats_args(command.args, now, timezone)
    except StatsRequestError as error:
        await message.answer(str(error))
        return
    page: Page | None = None
    if request.page_query:
        pages = await find_pages(session, request.page_query)
        if not pages:
            await message.answer(f"Не нашёл страницу «{request.page_query}».")
            return
        if len(pages) > 1:
            listed = "\n".join(f"{p.id} — {page_title(p)}" for p in pages[:20])
            await message.answer(
                f"Под «{request.page_query}» подходят несколько страниц:\n{listed}"
            )
            return
        page = pages[0]
    at = now  # what is known now, also for a past period
    page_id = page.id if page is not None else None
    report = await build_report(
        session,
        since=request.since,
        until=request.until,
        at=at,
        page_id=page_id,
        defaults=app.defaults,
    )
    series = await daily_series(
        session, since=request.since, until=request.until, at=at, page_id=page_id, tz=timezone
    )
    await message.answer(format_stats(report, timezone))
    title = f"{page.title if page and page.title else 'Все страницы'}: " + period_text(
        request.since, request.until, timezone
    )
    marks = chart_marks(
        series,
        page_calendar(page, app.defaults),
        sla_hours=sla_hours(page, False, app.defaults),
        today=now.astimezone(ZoneInfo(timezone)).date(),
    )
    png = await asyncio.to_thread(stats_chart_png, series, title, marks)
    caption = f"{ru.quantity(report.total.appeals, 'обращение', 'обращения', 'обращений')} по дням"
    await message.answer_photo(BufferedInputFile(png, "stats.png"), caption=caption)
    await send_health_chart(message, session, report, title, timezone)


async def team_command(
    message: Message, command: CommandObject, session: AsyncSession, app: AppContext
) -> None:
    """/team [период] [страница]: each operator's taken, answered, in time and open appeals."""
    user_id = message.from_user.id if message.from_user else None
    if user_id is None or not await roles.is_supervisor(session, app.settings, user_id):
        await message.answer(REFUSAL)
        return
    now = app.clock()
    try:
        request = parse_stats_args(command.args, now, app.settings.TIMEZONE)
    except StatsRequestError as error:
        await message.answer(str(error).replace("/stats", "/team"))
        return
    page_id = None
    if request.page_query:
        pages = await find_pages(session, request.page_query)
        if len(pages) != 1:
            await message.answer(f"Не нашёл одну страницу по «{request.page_query}». Список: /page")
            return
        page_id = pages[0].id
    report = await team_report(
        session, since=request.since, until=request.until, at=now, page_id=page_id
    )
    period = period_text(request.since, request.until, app.settings.TIMEZONE)
    await message.answer("\n".join(team_lines(report, period)))


def create_router(app: AppContext) -> Router:
    """A fresh router with /stats and /team (the other supervisor commands are in pressoffice)."""
    router = Router(name=__name__)
    router.message.register(stats_command, Command("stats"))
    router.message.register(team_command, Command("team"))
    return router
