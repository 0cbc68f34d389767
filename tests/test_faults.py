"""Faults that lost or leaked data (issue 16), each reproduced through the real clients."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlmodel import select

from bot import logsafe
from bot.app import AppContext
from bot.events import PageKind
from bot.sandbox import TelegramSandbox
from bot.sandbox.proxy import FaultProxy
from bot.services.scheduler import Scheduler
from handlers.telegram import discussion
from handlers.telegram.notifier import RateLimiter, TelegramNotifier
from handlers.telegram.setup import make_bot
from storage.models import CitizenMessage, Page, RawUpdate
from tests import test_reminders as reminders
from tests.conftest import MONDAY_10_MSK
from tests.telegram_harness import RunningIntake, eventually, setup_sandbox
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


# -- 4: one failed getChat must not make the discussion group a page of its own ---------------

CHANNEL_4 = {"id": -1004000000001, "type": "channel", "title": "Минздрав", "username": "mz"}
GROUP_4 = {"id": -1004000000002, "type": "supergroup", "title": "Обсуждение: Минздрав"}


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        yield box


async def _page_of_comment(app: AppContext, sandbox: TelegramSandbox, base_url: str) -> Page:
    """Run the real polling intake through `base_url`; the page the citizen's comment got."""
    # The intake talks to `base_url` (the fault proxy); only its base_url is read.
    intake = RunningIntake(app, SimpleNamespace(base_url=base_url))  # type: ignore[arg-type]
    _, forward = sandbox.inject_channel_post(CHANNEL_4["id"], "Новость", date=MONDAY_10_MSK)
    sandbox.inject_message(
        GROUP_4["id"],
        {"id": 701, "is_bot": False, "first_name": "Анна"},
        "Когда откроют поликлинику на улице Мира после ремонта?",
        reply_to=forward["message_id"] if forward else None,  # no channel: own chat
        date=MONDAY_10_MSK + timedelta(minutes=5),
    )
    await intake.start()

    async def comment_stored() -> CitizenMessage | None:
        async with app.sessions() as session:
            return (await session.exec(select(CitizenMessage))).first()

    try:
        message = await eventually(comment_stored, timeout=30)

        async def all_confirmed() -> bool:
            return sandbox.pending_updates() == 0

        await eventually(all_confirmed, timeout=30)
    finally:
        await intake.stop()
    async with app.sessions() as session:
        statuses = (await session.exec(select(RawUpdate.status))).all()
        assert "failed" not in statuses  # the auto-forward too: retried, not given up
        page = await session.get(Page, message.page_id)
        assert page is not None
        return page


@pytest.mark.parametrize("fault", ["502", "not json"])
async def test_a_failed_get_chat_does_not_make_the_group_its_own_page(
    app: AppContext, sandbox: TelegramSandbox, fault: str
) -> None:
    sandbox.add_chat({**CHANNEL_4, "linked_chat_id": GROUP_4["id"]})
    sandbox.add_chat({**GROUP_4, "linked_chat_id": CHANNEL_4["id"]})
    discussion.group_pages._cache.pop(int(GROUP_4["id"]), None)
    async with FaultProxy(sandbox.base_url) as proxy:
        if fault == "502":
            sandbox.fail_next("getChat", 1, status=502)
        else:
            proxy.garbage("getChat", 1)
        page = await _page_of_comment(app, sandbox, proxy.base_url)
    assert (page.kind, page.external_id) == (PageKind.TG_CHANNEL.value, str(CHANNEL_4["id"]))
    assert page.linked_chat_id == str(GROUP_4["id"])


# -- 9: a lone surrogate in a chat title -------------------------------------------------------


@pytest.mark.parametrize("broken", ["channel", "group"])
async def test_a_lone_surrogate_in_a_title_does_not_break_the_page(
    app: AppContext, sandbox: TelegramSandbox, broken: str
) -> None:
    """Telegram's JSON can carry half a surrogate pair; the page is made, its comments kept."""
    bad = "Минздрав \ud83d"  # the first half of an emoji alone
    if broken == "channel":  # the group's linked channel becomes the page
        sandbox.add_chat({**CHANNEL_4, "title": bad, "linked_chat_id": GROUP_4["id"]})
        sandbox.add_chat({**GROUP_4, "linked_chat_id": CHANNEL_4["id"]})
    else:  # a group without a channel is its own page
        sandbox.add_chat(CHANNEL_4)
        sandbox.add_chat({**GROUP_4, "title": bad})
    discussion.group_pages._cache.pop(int(GROUP_4["id"]), None)
    page = await _page_of_comment(app, sandbox, sandbox.base_url)
    assert page.title == "Минздрав �"


# -- 11: the raw copy in Telegram's own field names -------------------------------------------


async def test_the_raw_copy_keeps_telegrams_field_names(
    app: AppContext, sandbox: TelegramSandbox
) -> None:
    sandbox.add_chat({**CHANNEL_4, "linked_chat_id": GROUP_4["id"]})
    sandbox.add_chat({**GROUP_4, "linked_chat_id": CHANNEL_4["id"]})
    discussion.group_pages._cache.pop(int(GROUP_4["id"]), None)
    await _page_of_comment(app, sandbox, sandbox.base_url)
    async with app.sessions() as session:
        rows = (await session.exec(select(RawUpdate.payload))).all()
    payloads = [p if isinstance(p, str) else json.dumps(p, ensure_ascii=False) for p in rows]
    comment = next(p for p in payloads if "поликлинику" in p)
    assert '"from"' in comment
    assert all("from_user" not in p for p in payloads)
