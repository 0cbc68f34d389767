"""/stats for supervisors: the report as Russian text plus a chart; everyone else is refused.

/overdue, /digest and /export live in `handlers.telegram.pressoffice`; roles are decided by
`bot.services.roles` for both.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import ru
from bot.app import AppContext
from bot.services import roles
from bot.services.charts import stats_chart_png
from bot.services.report_text import format_stats, period_text
from bot.services.stats import build_report, daily_series
from storage.models import Page

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

_RANGE_RE = re.compile(
    r"^(\d{1,2})\.(\d{1,2})(?:\.(\d{2,4}))?\s*[-–—]\s*(\d{1,2})\.(\d{1,2})(?:\.(\d{2,4}))?$"
)
_DAY_RE = re.compile(r"^(\d{1,2})\.(\d{1,2})(?:\.(\d{2,4}))?$")


class StatsRequestError(ValueError):
    """The /stats arguments cannot be understood; the message is for the supervisor."""


@dataclass(frozen=True)
class StatsRequest:
    since: datetime
    until: datetime
    page_query: str | None


def _year(text: str | None, default: int) -> int:
    if text is None:
        return default
    value = int(text)
    return value + 2000 if value < 100 else value


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def parse_stats_args(args: str | None, now: datetime, timezone: str) -> StatsRequest:
    """The period and page of `/stats [неделя|месяц|ДД.ММ-ДД.ММ] [страница]`."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    # «01.11 – 15.11» with spaces around the dash is one period.
    words = re.sub(r"(\d)\s*[-–—]\s*(\d)", r"\1-\2", args or "").split()
    period = words[0].lower() if words else ""
    rest = words[1:]
    since_day: date
    until_day: date
    if period in ("неделя", "неделю", "week"):
        since_day = today - timedelta(days=today.weekday())
        until_day = since_day + timedelta(days=7)
    elif period in ("месяц", "month"):
        since_day = today.replace(day=1)
        until_day = (since_day + timedelta(days=32)).replace(day=1)
    elif period in ("сегодня", "today"):
        since_day, until_day = today, today + timedelta(days=1)
    elif period in ("вчера", "yesterday"):
        since_day, until_day = today - timedelta(days=1), today
    elif match := _RANGE_RE.match(period):
        day1, month1, year1, day2, month2, year2 = match.groups()
        try:
            second_year = _year(year2, today.year)
            first = date(_year(year1, second_year), int(month1), int(day1))
            last = date(second_year, int(month2), int(day2))
        except ValueError:
            raise StatsRequestError(f"Не понял даты «{period}». {USAGE}") from None
        if last < first and year1 is None:
            first = first.replace(year=first.year - 1)  # 20.12-10.01 spans the new year
        if last < first:
            raise StatsRequestError("Конец периода раньше начала.")
        since_day, until_day = first, last + timedelta(days=1)
    elif match := _DAY_RE.match(period):
        try:
            since_day = date(
                _year(match.group(3), today.year), int(match.group(2)), int(match.group(1))
            )
        except ValueError:
            raise StatsRequestError(f"Не понял дату «{period}». {USAGE}") from None
        until_day = since_day + timedelta(days=1)
    else:
        since_day, until_day = today - timedelta(days=6), today + timedelta(days=1)
        rest = words
    page_query = " ".join(rest).strip() or None
    return StatsRequest(
        _local_midnight(since_day, zone), _local_midnight(until_day, zone), page_query
    )


async def find_page(session: AsyncSession, query: str) -> list[Page]:
    """Pages matching an id or a part of the title (case-insensitive)."""
    if query.isdigit():
        page = await session.get(Page, int(query))
        return [page] if page is not None else []
    result = await session.exec(
        select(Page)
        .where(func.lower(col(Page.title)).contains(query.lower()))
        .order_by(col(Page.id))
    )
    found = list(result.all())
    if not found:
        # SQLite lower() only folds ASCII: compare Cyrillic titles in Python.
        everything = await session.exec(select(Page).order_by(col(Page.id)))
        found = [p for p in everything.all() if p.title and query.lower() in p.title.lower()]
    return found


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
        pages = await find_page(session, request.page_query)
        if not pages:
            await message.answer(f"Не нашёл страницу «{request.page_query}».")
            return
        if len(pages) > 1:
            listed = "\n".join(f"{p.id} — {p.title or p.external_id}" for p in pages[:20])
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
    png = await asyncio.to_thread(stats_chart_png, series, title)
    caption = f"{ru.quantity(report.total.appeals, 'обращение', 'обращения', 'обращений')} по дням"
    await message.answer_photo(BufferedInputFile(png, "stats.png"), caption=caption)


def create_router(app: AppContext) -> Router:
    """A fresh router with /stats (the other supervisor commands are in pressoffice)."""
    router = Router(name=__name__)
    router.message.register(stats_command, Command("stats"))
    return router
