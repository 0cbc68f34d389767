"""Faults that lost or leaked data (issue 16), each reproduced through the real clients."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import logsafe
from bot.sandbox.proxy import FaultProxy
from bot.services.scheduler import Scheduler
from handlers.telegram.notifier import RateLimiter, TelegramNotifier
from handlers.telegram.setup import make_bot
from tests import test_reminders as reminders
from tests.test_reminders import ROADS, World, citizen_event, msk

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "VK_"))}
REPO = Path(__file__).parents[1]


# -- 6: the bot token in an exception text -----------------------------------------------------


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    built = await reminders.make_world(tmp_path, msk(10, 30, 15))
    yield built
    await reminders.close_world(built)


async def test_redirect_loop_leaves_no_token_in_reminder_log_or_log(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp's TooManyRedirects names the URL, token included; nothing stores or logs it."""
    logsafe.install(())  # what every `otklik` command does on start (bot/cli.py)
    async with FaultProxy(world.sandbox.base_url) as proxy:
        bot = make_bot(reminders.TOKEN, proxy.base_url)

        async def no_sleep(seconds: float) -> None:
            return None

        world.app.notifier = TelegramNotifier(
            bot, limiter=RateLimiter(sleep=no_sleep), sleep=no_sleep
        )
        try:
            world.clock.set(msk(11, 2, 9))
            await world.ingest(citizen_event(msk(11, 2, 9), ROADS, "601", 301))
            world.clock.set(msk(11, 2, 13))  # half of 8 h: a reminder is due
            proxy.redirect_loop("sendMessage", 10)
            with caplog.at_level(logging.INFO):
                report = await Scheduler(world.app).tick()
        finally:
            await bot.session.close()
    assert report.failed == 1
    [row, _] = await world.rows()
    assert row.last_error is not None and "TooManyRedirects" in row.last_error
    assert reminders.TOKEN not in row.last_error
    assert "TooManyRedirects" in caplog.text
    assert reminders.TOKEN not in caplog.text
    assert all(reminders.TOKEN not in error for error in report.errors)


async def test_digest_send_through_a_redirect_loop_prints_no_token(
    tmp_path: Path, world: World
) -> None:
    """`otklik digest --send` as a real process: the error is shown, the token is not."""
    async with FaultProxy(world.sandbox.base_url) as proxy:
        proxy.redirect_loop("*", 100)
        env = {
            **CLEAN_ENV,
            "PYTHONPATH": str(REPO),
            "TELEGRAM_BOT_TOKEN": reminders.TOKEN,
            "TELEGRAM_API_SERVER": proxy.base_url,
            "DIGEST_CHAT_IDS": str(reminders.DIGEST_CHAT),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'digest.db'}",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "--env-file",
            str(tmp_path / "missing.env"),
            "digest",
            "--send",
            env=env,
            cwd=str(tmp_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    output = stdout.decode() + stderr.decode()
    assert process.returncode == 2, output[-2000:]
    assert "TooManyRedirects" in output  # the reason is there ...
    assert reminders.TOKEN not in output  # ... the token is not
    assert reminders.TOKEN.split(":", 1)[1] not in output
