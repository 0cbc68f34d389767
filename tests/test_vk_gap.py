"""VK intake faults: gap fill after a history loss (issue 16 item 5), a kill in the first batch.

The real VkIntake (vk_api's Bots Long Poll) against the VK sandbox; VK loses the events of the
gap (`failed: 1`), so they exist only on the wall. Notices go through the real aiogram Bot to
the Telegram sandbox's press chat.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import AppContext
from bot.sandbox import TelegramSandbox
from bot.sandbox.vk import VkSandbox
from handlers.telegram.notifier import TelegramNotifier
from handlers.telegram.setup import make_bot
from storage.models import CitizenMessage
from tests.test_vk_intake import (
    APPEAL_TEXT,
    CITIZEN,
    GROUP_ID,
    GROUP_TOKEN,
    T0,
    WALL,
    Running,
    count,
    eventually,
    processed,
    vk_settings,
)
from tests.test_vk_intake import sandbox as sandbox

PRESS = -1001000000009
TG_TOKEN = "123456:TEST-gap-token"


async def test_an_old_pinned_post_and_an_old_active_post_are_read_back(
    sqlite_engine: AsyncEngine, sandbox: VkSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    app = AppContext.create(vk_settings(sandbox, VK_GAP_POST_DAYS=14), sqlite_engine)
    pinned = sandbox.add_post(WALL, "Правила сообщества", T0 - timedelta(days=60), pinned=True)
    old = sandbox.add_post(WALL, "Отчёт за квартал", T0 - timedelta(days=45))
    recent = sandbox.add_post(WALL, "Новости", T0 - timedelta(days=1))
    async with Running(app) as intake:
        # Seen live: the database knows the old post has comments now.
        sandbox.add_comment(WALL, old, CITIZEN, APPEAL_TEXT, T0)
        await eventually(lambda: processed(intake, 1))
        # VK loses these events: they exist only on the wall.
        lost = 0
        for post, count_ in ((pinned, 3), (old, 2), (recent, 1)):
            for _ in range(count_):
                lost += 1
                sandbox.add_comment(
                    WALL,
                    post,
                    700 + lost,
                    f"Когда починят лифт в доме {lost}?",
                    T0 + timedelta(minutes=10 + lost),
                    emit=False,
                )
        with caplog.at_level(logging.INFO):
            sandbox.fail_next_poll(GROUP_ID, 1)
            await eventually(lambda: _messages_are(app, 1 + lost), timeout=20)
    assert await count(app, CitizenMessage) == 1 + lost
    assert "дочитываем комментарии" in caplog.text
    assert "более старых с известными комментариями — 1" in caplog.text


async def _messages_are(app: AppContext, n: int) -> bool:
    return await count(app, CitizenMessage) == n


@pytest.fixture
async def press() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        box.add_bot(TG_TOKEN, 123456, "otklik_test_bot", "Отклик")
        box.add_chat({"id": PRESS, "type": "supergroup", "title": "Пресс-служба"})
        yield box


async def test_without_a_service_token_the_press_chat_is_told_what_was_not_read_back(
    sqlite_engine: AsyncEngine,
    sandbox: VkSandbox,
    press: TelegramSandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = AppContext.create(vk_settings(sandbox, service=False, PRESS_CHAT_ID=PRESS), sqlite_engine)
    bot = make_bot(TG_TOKEN, press.base_url)
    app.notifier = TelegramNotifier(bot)
    post = sandbox.add_post(WALL, "Новости", T0 - timedelta(days=1))
    try:
        async with Running(app) as intake:
            sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
            await eventually(lambda: processed(intake, 1))
            sandbox.add_comment(
                WALL, post, 702, "Когда уберут снег?", T0 + timedelta(minutes=10), emit=False
            )
            sandbox.fail_next_poll(GROUP_ID, 1)
            notice = await press.wait_for_sent(timeout=20)
    finally:
        await bot.session.close()
    assert len(press.sent_messages(PRESS)) == 1
    text = notice.text or ""
    assert "VK_SERVICE_TOKEN" in text
    assert f"otklik backfill vk --group {GROUP_ID} --since 2026-11-02" in text
    assert "«Администрация города»" in text and "02.11.2026 09:55" in text
    assert "не дочитать без VK_SERVICE_TOKEN" in caplog.text


# -- kill -9 within the very first long-poll batch (found by `otklik bench faults`) -----------


@pytest.mark.timeout(420)  # two `otklik run` starts on a loaded machine
async def test_a_kill_within_the_first_batch_resumes_at_its_start(
    tmp_path: Path, sandbox: VkSandbox
) -> None:
    """Before, only the batch's last event stored a ts: killed before it, a restart took a new
    ts from VK and the rest of the batch was never delivered."""
    database = tmp_path / "otklik.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "VK_"))},
        "PYTHONPATH": str(Path(__file__).parents[1]),
        "VK_GROUP_TOKENS": f"{GROUP_ID}:{GROUP_TOKEN}",
        "VK_API_SERVER": sandbox.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    }
    post = sandbox.add_post(WALL, "Новости", T0 - timedelta(hours=1))
    total = 150
    log = tmp_path / "first.log"
    first = await _run(env, tmp_path, log)
    try:
        await eventually(lambda: _said(log, "Long Poll запущен"), timeout=150)
        for n in range(total):  # one batch: the listener is waiting on its first poll
            sandbox.add_comment(WALL, post, 800 + n, f"Когда починят лифт в доме {n}?", T0)
        await eventually(lambda: _stored(database, 1), timeout=60)
    finally:
        first.kill()
        await first.wait()
    assert _count_now(database) < total, "the batch was stored whole before the kill"
    second = await _run(env, tmp_path, tmp_path / "second.log")
    try:
        await eventually(lambda: _stored(database, total), timeout=120)
    finally:
        second.terminate()
        await asyncio.wait_for(second.wait(), 30)
    assert _count_now(database) == total


async def _run(env: dict[str, str], cwd: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "--env-file",
            str(cwd / "none.env"),
            "run",
            env=env,
            cwd=str(cwd),
            stdout=out,
            stderr=out,
        )


async def _said(log: Path, line: str) -> bool:
    return line in _read(log)


def _read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def _count_now(database: Path) -> int:
    try:
        with closing(sqlite3.connect(database)) as connection:
            return int(connection.execute("SELECT count(*) FROM citizen_message").fetchone()[0])
    except sqlite3.Error:  # not created yet
        return 0


async def _stored(database: Path, n: int) -> bool:
    return _count_now(database) >= n
