"""`/page ID`: one page, its health over the last seven days, and what data it is missing."""

from __future__ import annotations

import html
from datetime import timedelta

from aiogram.types import Message
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import AppContext
from bot.ids import row_id
from bot.services.health import report_health
from bot.services.health_text import data_advice, page_block
from bot.services.reminders import page_title
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
