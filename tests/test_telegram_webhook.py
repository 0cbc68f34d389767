"""Webhook mode: Telegram posts updates with the secret header; without it, 401."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlmodel import select

from bot import runner
from bot.sandbox import TelegramSandbox
from storage.engine import create_engine, session_factory
from storage.models import Appeal, RawUpdate
from tests.conftest import MONDAY_10_MSK, make_settings
from tests.telegram_harness import CHANNEL, GROUP, TOKEN, setup_sandbox

SECRET = "webhook-secret-42"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        yield box


async def test_webhook_receives_updates_and_checks_the_secret(
    sandbox: TelegramSandbox, tmp_path: object
) -> None:
    port = _free_port()
    url = f"sqlite+aiosqlite:///{tmp_path}/otklik.db"
    settings = make_settings(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_SERVER=sandbox.base_url,
        DATABASE_URL=url,
        WEBHOOK_URL=f"http://127.0.0.1:{port}",
        WEBHOOK_SECRET=SECRET,
        WEBHOOK_LISTEN=f"127.0.0.1:{port}",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(settings, stop=stop))
    try:
        await sandbox.wait_for_call("setWebhook", timeout=20)
        assert sandbox.webhook_url == f"http://127.0.0.1:{port}/telegram"
        _, forward = sandbox.inject_channel_post(CHANNEL["id"], "Новость", date=MONDAY_10_MSK)
        assert forward is not None
        sandbox.inject_message(
            GROUP["id"],
            {"id": 501, "is_bot": False, "first_name": "Иван"},
            "Когда починят освещение во дворе дома 3? Темно, страшно ходить.",
            reply_to=forward["message_id"],
            date=MONDAY_10_MSK,
        )
        engine = create_engine(url)
        sessions = session_factory(engine)
        try:
            async with asyncio.timeout(20):
                while True:
                    async with sessions() as session:
                        if (await session.exec(select(Appeal))).first() is not None:
                            break
                    await asyncio.sleep(0.05)
            # An update that does not fit the schema is kept as failed and answered 200; the
            # ones after it still come (issue 16 item 10).
            bad_id = sandbox.inject_update({"message": {"message_id": "x", "chat": {"id": 1}}})
            sandbox.inject_message(
                GROUP["id"],
                {"id": 502, "is_bot": False, "first_name": "Олег"},
                "А когда починят освещение у дома 5?",
                reply_to=forward["message_id"],
                date=MONDAY_10_MSK,
            )
            async with asyncio.timeout(20):
                while True:
                    async with sessions() as session:
                        rows = (await session.exec(select(RawUpdate))).all()
                        appeals = (await session.exec(select(Appeal))).all()
                    if len(appeals) == 2:
                        break
                    await asyncio.sleep(0.05)
            [bad] = [row for row in rows if row.update_key == str(bad_id)]
            assert bad.status == "failed" and bad.note and "message_id" in bad.note
        finally:
            await engine.dispose()
        async with aiohttp.ClientSession() as client:
            forged = await client.post(
                f"http://127.0.0.1:{port}/telegram",
                json={"update_id": 1, "message": {}},
                headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"},
            )
            assert forged.status == 401
            # Bodies that are not an update: 400 (issue 16 item 11), not 500.
            for body in (b"{not json", b"\xff\xfe", b"[1, 2]"):
                bad = await client.post(
                    f"http://127.0.0.1:{port}/telegram",
                    data=body,
                    headers={
                        "X-Telegram-Bot-Api-Secret-Token": SECRET,
                        "Content-Type": "application/json",
                    },
                )
                assert bad.status == 400, body
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0
