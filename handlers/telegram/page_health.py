"""Page health in the chat: `/page ID` (the last seven days and what data is missing) and the
page-health chart after /stats."""

from __future__ import annotations

import asyncio
import html
from datetime import timedelta

from aiogram.types import BufferedInputFile, Message
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import AppContext
from bot.ids import row_id
from bot.services.figures import StatsReport
from bot.services.health import report_health
from bot.services.health_chart import health_chart_png, views_by_kind
from bot.services.health_text import data_advice, page_block
from bot.services.reminders import page_title
from bot.services.reports import health_series
from storage.models import Page

WINDOW = timedelta(days=7)


async def page_health_answer(
    message: Message, session: AsyncSession, app: AppContext, argument: str
) -> None:
    number = row_id(argument)
    page = await session.get(Page, number) if number is not None else None
    if page is None or page.id is None:
        await message.answer(f"Страницы {argument} нет. Список: /page")
        return
    now = app.clock()
    health = (await report_health(session, [page.id], now - WINDOW, now, now, app.defaults))[
        page.id
    ]
    lines = [f"<b>{page.id}</b> · {html.escape(page_title(page))} — последние 7 дней", ""]
    lines += page_block(health)
    advice = data_advice(page.platform, page.kind, page.username, app.settings)
    if advice:
        lines += ["", "Откуда берутся данные:"]
        lines += [f"• {html.escape(line)}" for line in advice]
    await message.answer("\n".join(lines), parse_mode="HTML")


async def send_health_chart(
    message: Message, session: AsyncSession, report: StatsReport, title: str, timezone: str
) -> None:
    """/stats: the page-health chart after the appeals chart, when the period has posts."""
    followed = [page for page in report.pages if page.health is not None]
    if not any(page.health and page.health.posts for page in followed):
        return
    weeks = await health_series(
        session,
        since=report.since,
        until=report.until,
        at=report.at,
        page_ids=[page.page_id for page in followed],
        tz=timezone,
    )
    kinds = views_by_kind(page.health for page in followed if page.health is not None)
    png = await asyncio.to_thread(health_chart_png, weeks, kinds, title)
    await message.answer_photo(
        BufferedInputFile(png, "page_health.png"),
        caption="Подписчики и публикации по неделям; просмотры поста по типу публикации",
    )
