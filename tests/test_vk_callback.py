"""VK Callback API end to end: the sandbox confirms the server and POSTs events over HTTP."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot import runner
from bot.app import AppContext
from bot.config import Settings
from bot.sandbox import TelegramSandbox
from bot.sandbox.vk import SandboxError, VkSandbox
from handlers.vk import callback as vk_callback
from handlers.vk import delivery as vk_delivery
from handlers.vk.callback import VkCallbackHandler, VkCallbackServer
from storage.engine import create_engine, session_factory
from storage.health_models import Post
from storage.models import Appeal, CitizenMessage, Page, RawUpdate
from tests.conftest import MONDAY_10_MSK, make_settings
from tests.telegram_harness import TOKEN as TELEGRAM_TOKEN
from tests.telegram_harness import setup_sandbox as setup_telegram

GROUP_ID = 220_000_001
GROUP_TOKEN = "vk1.a.community-token-SECRET-1"
WALL = -GROUP_ID
CITIZEN = 501
SECRET = "callback-secret-42"
CODE = "a1b2c3d4"
T0 = MONDAY_10_MSK
APPEAL_TEXT = "Когда отремонтируют дорогу на улице Ленина? Огромные ямы, машины ломаются"
REPLY_TEXT = "Здравствуйте! Ремонт улицы Ленина включён в план, подрядчик выйдет 15 мая."


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def callback_settings(box: VkSandbox, port: int, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "VK_GROUP_TOKENS": f"{GROUP_ID}:{GROUP_TOKEN}",
        "VK_API_SERVER": box.base_url,
        "WEBHOOK_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
    }
    values.update(extra)
    return make_settings(**values)


@pytest.fixture
async def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VkSandbox]:
    monkeypatch.chdir(tmp_path)  # vk_api must never write a config file anywhere
    box = VkSandbox(clock=lambda: T0 + timedelta(hours=3), callback_retry_delay_s=0.01)
    box.add_group(GROUP_ID, "Администрация города", GROUP_TOKEN, screen_name="city_adm")
    box.add_user(CITIZEN, "Иван", "Петров")
    async with box:
        yield box


class Served:
    """The Callback API server as `otklik run` starts it when only VK is configured."""

    def __init__(self, app: AppContext) -> None:
        secret = app.settings.WEBHOOK_SECRET
        self.handler = VkCallbackHandler(
            app, secret=secret.get_secret_value() if secret else None, rps_delay=0
        )
        self.server = VkCallbackServer(self.handler, listen=app.settings.WEBHOOK_LISTEN)
        self.url = f"http://127.0.0.1:{self.server.port}/vk"

    async def __aenter__(self) -> Served:
        await self.server.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.server.stop()


async def count(app: AppContext, model: Any, *where: Any) -> int:
    async with app.sessions() as session:
        result = await session.exec(select(func.count()).select_from(model).where(*where))
        return int(result.one())


async def post_json(url: str, body: dict[str, Any]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as client, client.post(url, json=body) as response:
        return response.status, await response.text()


async def test_confirmation_then_comment_and_reply_make_an_answered_appeal(
    engine: AsyncEngine, sandbox: VkSandbox
) -> None:
    """Both databases: confirmed with the code; comment → appeal; the reply sets FRT."""
    app = AppContext.create(callback_settings(sandbox, _free_port()), engine)
    async with Served(app) as served:
        assert await sandbox.set_callback(GROUP_ID, served.url, SECRET, CODE) == CODE
        confirmation = {"type": "confirmation", "group_id": GROUP_ID}
        # The code changes when a server is edited: every confirmation reads it again...
        await sandbox.set_callback(GROUP_ID, served.url, SECRET, "e5f6a7b8")
        asked = [c for c in sandbox.calls if c.method == "groups.getCallbackConfirmationCode"]
        assert len(asked) == 2
        # ...and when VK cannot say, the last code read is answered.
        sandbox.fail_next("groups.getCallbackConfirmationCode", 10)
        assert await post_json(served.url, confirmation) == (200, "e5f6a7b8")
        post = sandbox.add_post(WALL, "Итоги недели", T0 - timedelta(days=1))
        comment = sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
        sandbox.add_comment(
            WALL, post, WALL, REPLY_TEXT, T0 + timedelta(minutes=30), reply_to_comment=comment
        )
        await sandbox.callback_idle(GROUP_ID)
    assert [(d.type, d.attempt, d.ok) for d in sandbox.deliveries] == [
        ("wall_post_new", 1, True),
        ("wall_reply_new", 1, True),
        ("wall_reply_new", 1, True),
    ]
    async with app.sessions() as session:
        (appeal,) = (await session.exec(select(Appeal))).all()
        assert appeal.received_at == T0
        assert appeal.first_response_at == T0 + timedelta(minutes=30)
        assert appeal.frt_s == 1800
        page = (await session.exec(select(Page))).one()
        assert (page.external_id, page.title, page.username) == (
            str(GROUP_ID),
            "Администрация города",
            "city_adm",
        )
        raws = (await session.exec(select(RawUpdate).order_by(col(RawUpdate.id)))).all()
    assert [r.source for r in raws] == [f"vk:{GROUP_ID}"] * 3
    assert [r.update_key for r in raws] == [d.event_id for d in sandbox.deliveries]
    assert all("secret" not in r.payload for r in raws)  # the secret is not stored
    async with app.sessions() as session:
        # wall_post_new by the Callback API: the community's post, for page health.
        (recorded,) = (await session.exec(select(Post))).all()
        assert (recorded.external_id, recorded.kind) == (str(post), "text")
        assert recorded.published_at == T0 - timedelta(days=1)


async def test_wrong_secret_and_unknown_community_are_refused(
    sqlite_engine: AsyncEngine, sandbox: VkSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    app = AppContext.create(callback_settings(sandbox, _free_port()), sqlite_engine)
    caplog.set_level(logging.INFO)
    async with Served(app) as served:
        await sandbox.set_callback(GROUP_ID, served.url, "forged-secret-77", CODE)
        post = sandbox.add_post(WALL, "Итоги недели", T0 - timedelta(days=1), emit=False)
        sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
        await sandbox.callback_idle(GROUP_ID)
        other = {"type": "wall_reply_new", "group_id": 999, "secret": SECRET, "object": {}}
        assert (await post_json(served.url, other))[0] == 403
        assert (await post_json(served.url, {"type": "confirmation", "group_id": 999}))[0] == 403
    # Refused every time, so VK retried 5 times, and nothing was stored.
    assert [(d.attempt, d.status) for d in sandbox.deliveries] == [(n, 403) for n in range(1, 7)]
    assert await count(app, RawUpdate) == 0
    assert await count(app, CitizenMessage) == 0
    assert "с неверным секретом; отклонено" in caplog.text
    assert "forged-secret-77" not in caplog.text and SECRET not in caplog.text


async def test_a_redelivered_event_is_stored_once(
    sqlite_engine: AsyncEngine, sandbox: VkSandbox
) -> None:
    app = AppContext.create(callback_settings(sandbox, _free_port()), sqlite_engine)
    async with Served(app) as served:
        await sandbox.set_callback(GROUP_ID, served.url, SECRET, CODE)
        post = sandbox.add_post(WALL, "Итоги недели", T0 - timedelta(days=1), emit=False)
        sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
        await sandbox.callback_idle(GROUP_ID)
        (first,) = sandbox.deliveries
        sandbox.redeliver(GROUP_ID, first.event_id)  # VK's retry after a lost "ok"
        await sandbox.callback_idle(GROUP_ID)
        assert served.handler.processed == 2
    assert [(d.event_id, d.ok) for d in sandbox.deliveries] == [(first.event_id, True)] * 2
    assert await count(app, RawUpdate) == 1
    assert await count(app, CitizenMessage) == 1
    assert await count(app, Appeal) == 1


async def test_a_failed_event_is_kept_answered_ok_and_processed_again_when_redelivered(
    sqlite_engine: AsyncEngine, sandbox: VkSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One policy for every source: a failure is kept raw as failed and counts as stored."""
    real_translate = vk_delivery.translate
    calls: list[str] = []

    def failing_once(update: Any, *args: Any) -> Any:
        calls.append(str(update.get("event_id")))
        if len(calls) == 1:
            raise RuntimeError("cannot translate")
        return real_translate(update, *args)

    monkeypatch.setattr(vk_delivery, "translate", failing_once)
    app = AppContext.create(callback_settings(sandbox, _free_port()), sqlite_engine)
    async with Served(app) as served:
        await sandbox.set_callback(GROUP_ID, served.url, SECRET, CODE)
        post = sandbox.add_post(WALL, "Итоги недели", T0 - timedelta(days=1), emit=False)
        sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
        await sandbox.callback_idle(GROUP_ID)
        assert [(d.attempt, d.status, d.body) for d in sandbox.deliveries] == [(1, 200, "ok")]
        async with app.sessions() as session:
            (raw,) = (await session.exec(select(RawUpdate))).all()
            assert (raw.status, raw.note) == ("failed", "RuntimeError: cannot translate")
        assert await count(app, Appeal) == 0
        (first,) = sandbox.deliveries
        sandbox.redeliver(GROUP_ID, first.event_id)  # VK sends it again: processed again
        await sandbox.callback_idle(GROUP_ID)
    assert calls == [first.event_id] * 2
    async with app.sessions() as session:
        (raw,) = (await session.exec(select(RawUpdate))).all()
        assert (raw.status, raw.note) == ("done", None)
        (appeal,) = (await session.exec(select(Appeal))).all()
        assert appeal.received_at == T0


async def test_a_database_outage_answers_500_and_vk_s_retry_is_stored_once(
    sqlite_engine: AsyncEngine, sandbox: VkSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is locked by another process: nothing is answered ok until it is stored."""
    monkeypatch.setattr(vk_callback, "STORE_WITHIN", 0.5)
    app = AppContext.create(callback_settings(sandbox, _free_port()), sqlite_engine)
    database = sqlite_engine.url.database
    assert database is not None
    async with Served(app) as served:
        await sandbox.set_callback(GROUP_ID, served.url, SECRET, CODE)
        post = sandbox.add_post(WALL, "Итоги недели", T0 - timedelta(days=1), emit=False)
        blocker = sqlite3.connect(database, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # held: no write can be committed
        try:
            sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
            async with asyncio.timeout(20):
                while not any(d.status == 500 for d in sandbox.deliveries):  # noqa: ASYNC110  (polling state)
                    await asyncio.sleep(0.02)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await sandbox.callback_idle(GROUP_ID, timeout=30)
    statuses = [d.status for d in sandbox.deliveries]
    assert statuses[0] == 500 and statuses[-1] == 200, statuses
    assert await count(app, RawUpdate) == 1
    assert await count(app, CitizenMessage) == 1
    assert await count(app, Appeal) == 1


async def test_the_sandbox_refuses_a_server_that_does_not_confirm(
    sqlite_engine: AsyncEngine, sandbox: VkSandbox
) -> None:
    # The community's token is for another group: the code cannot be read, so no confirmation.
    settings = callback_settings(sandbox, _free_port(), VK_GROUP_TOKENS=f"{GROUP_ID}:wrong")
    app = AppContext.create(settings, sqlite_engine)
    async with Served(app) as served:
        with pytest.raises(SandboxError, match="not the confirmation code"):
            await sandbox.set_callback(GROUP_ID, served.url, SECRET, CODE)
    with pytest.raises(SandboxError, match="not on 127"):
        await sandbox.set_callback(GROUP_ID, "http://example.org/vk", SECRET)


async def _wait_for(check: Callable[[], Any], url: str, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    engine = create_engine(url)
    sessions = session_factory(engine)
    try:
        async with asyncio.timeout(timeout):
            while True:
                async with sessions() as session:
                    if (await session.exec(check())).first() is not None:
                        return
                await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("with_telegram", [True, False], ids=["telegram-and-vk", "vk-only"])
async def test_runner_serves_vk_callbacks_beside_telegram_on_one_port(
    sandbox: VkSandbox, tmp_path: Path, with_telegram: bool
) -> None:
    port = _free_port()
    url = f"sqlite+aiosqlite:///{tmp_path}/otklik.db"
    extra: dict[str, Any] = {"DATABASE_URL": url}
    telegram: TelegramSandbox | None = None
    if with_telegram:
        telegram = TelegramSandbox()
        await telegram.start()
        setup_telegram(telegram)
        extra.update(TELEGRAM_BOT_TOKEN=TELEGRAM_TOKEN, TELEGRAM_API_SERVER=telegram.base_url)
    settings = callback_settings(sandbox, port, **extra)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(settings, stop=stop))
    try:
        if telegram is not None:
            await telegram.wait_for_call("setWebhook", timeout=20)
            assert telegram.webhook_url == f"http://127.0.0.1:{port}/telegram"
        async with asyncio.timeout(20):
            while True:  # the server is up when /health answers
                try:
                    async with (
                        aiohttp.ClientSession() as client,
                        client.get(f"http://127.0.0.1:{port}/health") as response,
                    ):
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        await sandbox.set_callback(GROUP_ID, f"http://127.0.0.1:{port}/vk", SECRET, CODE)
        post = sandbox.add_post(WALL, "Итоги недели", T0 - timedelta(days=1), emit=False)
        sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
        await _wait_for(lambda: select(Appeal), url)
        async with aiohttp.ClientSession() as client:
            forged = await client.post(
                f"http://127.0.0.1:{port}/telegram",
                json={"update_id": 1, "message": {}},
                headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"},
            )
            # Telegram's route is there only when Telegram is configured.
            assert forged.status == (401 if with_telegram else 404)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0
        if telegram is not None:
            await telegram.stop()
    # Callback mode: the community is not long-polled.
    assert not [c for c in sandbox.calls if c.method == "groups.getLongPollServer"]
