"""/stats for supervisors: argument parsing, and the real aiogram dispatcher against the sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from conftest import make_settings
from sqlalchemy.ext.asyncio import AsyncEngine
from test_stats import AT, load_scenario

from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.sandbox import TelegramSandbox
from bot.services import roles
from handlers.telegram.setup import make_dispatcher
from handlers.telegram.supervisors import (
    REFUSAL,
    StatsRequestError,
    parse_stats_args,
)

MSK = ZoneInfo("Europe/Moscow")
TOKEN = "123456:TEST-token"
BOT_ID = 123456
SUPERVISOR: dict[str, Any] = {"id": 7001, "is_bot": False, "first_name": "Елена"}
STRANGER: dict[str, Any] = {"id": 7002, "is_bot": False, "first_name": "Пётр"}
NOW = datetime(2026, 11, 13, 12, 0, tzinfo=MSK)  # Friday


def local(day: int, month: int = 11, year: int = 2026) -> datetime:
    return datetime(year, month, day, tzinfo=MSK).astimezone(UTC)


@pytest.mark.parametrize(
    ("args", "since", "until", "page"),
    [
        (None, local(7), local(14), None),
        ("неделя", local(9), local(16), None),
        ("месяц", local(1), local(1, 12), None),
        ("Месяц Минздрав края", local(1), local(1, 12), "Минздрав края"),
        ("01.11-15.11", local(1), local(16), None),
        ("01.11.2026 – 15.11.2026 7", local(1), local(16), "7"),
        ("20.12-10.01", local(20, 12, 2025), local(11, 1, 2026), None),
        ("05.11", local(5), local(6), None),
        ("вчера", local(12), local(13), None),
        ("минздрав", local(7), local(14), "минздрав"),
    ],
)
def test_parse_stats_args(
    args: str | None, since: datetime, until: datetime, page: str | None
) -> None:
    request = parse_stats_args(args, NOW, "Europe/Moscow")
    assert (request.since, request.until, request.page_query) == (since, until, page)


@pytest.mark.parametrize(
    "args", ["31.02-01.03", "15.11.2026-01.11.2026", "11.11-01.11", "01.06-01.03", "32.11"]
)
def test_parse_stats_args_rejects(args: str) -> None:
    with pytest.raises(StatsRequestError):
        parse_stats_args(args, NOW, "Europe/Moscow")


def test_reversed_period_is_refused_in_russian_not_taken_as_a_year() -> None:
    with pytest.raises(StatsRequestError) as caught:
        parse_stats_args("11.11-01.11", NOW, "Europe/Moscow")
    message = str(caught.value)
    assert "Конец периода (01.11.2026) раньше начала (11.11.2026)" in message
    assert "01.11-11.11" in message  # the same dates in order, as a hint


def test_russian_dates_with_short_years_in_stats() -> None:
    request = parse_stats_args("2.11.26-15.11.26", NOW, "Europe/Moscow")
    assert (request.since, request.until) == (local(2), local(16))


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as running:
        running.add_bot(TOKEN, BOT_ID, "otklik_bot", "Отклик")
        running.add_user(SUPERVISOR)
        running.add_user(STRANGER)
        yield running


async def test_stats_in_chat_text_and_chart(
    sandbox: TelegramSandbox, sqlite_engine: AsyncEngine
) -> None:
    settings = make_settings(SUPERVISOR_IDS=str(SUPERVISOR["id"]))
    app = AppContext.create(settings, sqlite_engine, clock=SimulatedClock(AT))
    async with app.sessions() as session:
        assert await roles.is_supervisor(session, settings, SUPERVISOR["id"])
        assert not await roles.is_supervisor(session, settings, STRANGER["id"])
    await load_scenario(app.sessions)
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(sandbox.base_url)))
    dp, _ = make_dispatcher(app)
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, polling_timeout=1, close_bot_session=False)
    )
    try:
        supervisor_chat = TelegramSandbox.private_chat(SUPERVISOR)
        stranger_chat = TelegramSandbox.private_chat(STRANGER)
        sandbox.inject_message(stranger_chat, STRANGER, "/stats")
        refusal = await sandbox.wait_for_sent(lambda m: m.chat_id == STRANGER["id"])
        sandbox.inject_message(supervisor_chat, SUPERVISOR, "/stats 02.11-15.11 город")
        photo = await sandbox.wait_for_sent(
            lambda m: m.chat_id == SUPERVISOR["id"] and m.method == "sendPhoto", timeout=20
        )
        sandbox.inject_message(supervisor_chat, SUPERVISOR, "/stats 02.11-15.11 нет такой")
        missing = await sandbox.wait_for_sent(
            lambda m: m.chat_id == SUPERVISOR["id"] and "Не нашёл" in (m.text or "")
        )
    finally:
        await dp.stop_polling()
        await polling
        await bot.session.close()
    assert refusal.text == REFUSAL
    texts = [
        m.text or "" for m in sandbox.sent_messages(SUPERVISOR["id"]) if m.method == "sendMessage"
    ]
    report = texts[0]
    assert "Статистика за 02.11.2026 – 15.11.2026" in report
    assert "Страница: Администрация города" in report
    assert "Всего: 8\u00a0обращений" in report
    assert "просрочено 1" in report and "срок ещё не вышел 2" in report
    assert "медиана 6\u00a0ч\u00a015\u00a0мин" in report
    # One term for one idea: «в срок», never «вовремя» or «в пределах срока».
    assert "— в срок " in report and "• ответили в срок: " in report
    assert "вовремя" not in report and "в пределах срока" not in report
    assert "90\u00a0% ответов — не дольше" in report
    [upload] = photo.files
    assert upload.filename == "stats.png" and upload.size > 10_000
    assert photo.caption == "8\u00a0обращений по дням"
    assert "нет такой" in (missing.text or "")
