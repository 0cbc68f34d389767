"""`/web` in the bot and the dashboard served by `otklik run`, through the real aiogram client
against the Telegram sandbox: the link the bot sends opens a session once."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot import runner
from bot.sandbox import TelegramSandbox
from handlers.telegram.web import PRIVATE_ONLY, REFUSAL
from tests.conftest import make_settings
from tests.telegram_harness import PRESS_CHAT_ID, TOKEN, setup_sandbox

SUPERVISOR: dict[str, Any] = {"id": 7001, "is_bot": False, "first_name": "Елена"}
STRANGER: dict[str, Any] = {"id": 7002, "is_bot": False, "first_name": "Пётр"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        box.add_user(SUPERVISOR)
        box.add_user(STRANGER)
        yield box


async def _reply(sandbox: TelegramSandbox, chat_id: int, after: int) -> Any:
    return await sandbox.wait_for_sent(
        lambda m: m.chat_id == chat_id and m.method == "sendMessage" and m.message_id > after,
        timeout=20,
    )


async def test_web_command_gives_a_one_time_link_served_by_run(
    sandbox: TelegramSandbox, tmp_path: object
) -> None:
    port = _free_port()
    public = f"http://127.0.0.1:{port}"
    settings = make_settings(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_SERVER=sandbox.base_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/otklik.db",
        SUPERVISOR_IDS=str(SUPERVISOR["id"]),
        WEB_LISTEN=f"127.0.0.1:{port}",
        WEB_PUBLIC_URL=public,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(settings, stop=stop))
    try:
        sandbox.inject_message(TelegramSandbox.private_chat(STRANGER), STRANGER, "/web")
        refusal = await _reply(sandbox, STRANGER["id"], 0)
        sandbox.inject_message(PRESS_CHAT_ID, SUPERVISOR, "/web")
        in_group = await _reply(sandbox, PRESS_CHAT_ID, 0)
        sandbox.inject_message(TelegramSandbox.private_chat(SUPERVISOR), SUPERVISOR, "/web")
        sent = await _reply(sandbox, SUPERVISOR["id"], 0)
        assert refusal.text == REFUSAL and in_group.text == PRIVATE_ONLY
        [link] = re.findall(rf"{re.escape(public)}/login/\S+", sent.text or "")
        assert "10 минут" in (sent.text or "")
        assert sent.reply_markup is None  # a Mini App button needs HTTPS
        assert sandbox.menu_button(SUPERVISOR["id"]) is None
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as client:
            anonymous = await client.get(f"{public}/")
            assert anonymous.status == 401
            opened = await client.get(link)
            assert opened.status == 200 and str(opened.url) == f"{public}/"
            assert "Страницы за" in await opened.text()
        async with aiohttp.ClientSession() as other:
            assert (await other.get(link)).status == 401  # used up
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0


async def test_dashboard_shares_the_webhook_server_and_offers_the_mini_app(
    sandbox: TelegramSandbox, tmp_path: object
) -> None:
    port = _free_port()
    settings = make_settings(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_SERVER=sandbox.base_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/otklik.db",
        SUPERVISOR_IDS=str(SUPERVISOR["id"]),
        WEBHOOK_URL=f"http://127.0.0.1:{port}",
        WEBHOOK_SECRET="webhook-secret-42",
        WEBHOOK_LISTEN=f"127.0.0.1:{port}",
        WEB_PUBLIC_URL="https://otklik.example.ru",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(settings, stop=stop))
    try:
        await sandbox.wait_for_call("setWebhook", timeout=20)
        sandbox.inject_message(TelegramSandbox.private_chat(SUPERVISOR), SUPERVISOR, "/web")
        sent = await _reply(sandbox, SUPERVISOR["id"], 0)
        assert "https://otklik.example.ru/login/" in (sent.text or "")
        assert sent.reply_markup == {
            "inline_keyboard": [
                [{"text": "Открыть панель", "web_app": {"url": "https://otklik.example.ru"}}]
            ]
        }
        assert sandbox.menu_button(SUPERVISOR["id"]) == {
            "type": "web_app",
            "text": "Панель",
            "web_app": {"url": "https://otklik.example.ru"},
        }
        async with aiohttp.ClientSession() as client:
            page = await client.get(f"http://127.0.0.1:{port}/")
            assert page.status == 401 and "Вход в панель" in await page.text()
            script = await client.get(f"http://127.0.0.1:{port}/static/app.js")
            assert script.status == 200 and "tgWebAppData" in await script.text()
            health = await client.get(f"http://127.0.0.1:{port}/health")
            assert health.status == 200
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0
