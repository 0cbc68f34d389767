"""Review of the rebuilt Telegram intake: defects found, each proved by a test."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import runner
from bot.app import AppContext
from bot.sandbox import TelegramSandbox
from bot.services import intake as intake_module
from bot.services.intake import Intake, IntakeJob, RawCopy, Stored
from bot.services.intake_writer import WriterBridge
from handlers.telegram.middlewares import UpdateStoreMiddleware
from handlers.telegram.setup import make_bot, make_dispatcher
from handlers.telegram.webhook import TelegramWebhook
from storage.writer import WriterError
from tests.conftest import MONDAY_10_MSK, make_settings
from tests.telegram_harness import (
    GROUP,
    TOKEN,
    fed_intake,
    setup_sandbox,
)
from tests.writer_jobs import exits_at_start

SECRET = "webhook-secret-42"
APPEAL = "Когда отремонтируют дорогу на улице Ленина? Сплошные ямы."


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        yield box


async def test_webhook_update_answered_while_stopping_is_stored(
    sandbox: TelegramSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Webhook mode: an update Telegram posts while `otklik run` stops is stored, or not 200.

    The intake writer must be closed after the server stopped taking requests; closed before,
    a group comment posted meanwhile is answered 200 (Telegram drops it) but never stored.
    """
    port = _free_port()
    database = tmp_path / "otklik.db"
    settings = make_settings(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_SERVER=sandbox.base_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{database}",
        WEBHOOK_URL=f"http://127.0.0.1:{port}",
        WEBHOOK_SECRET=SECRET,
        WEBHOOK_LISTEN=f"127.0.0.1:{port}",
    )
    statuses: list[int] = []
    stop_server = TelegramWebhook.stop

    async def stop_after_a_last_update(self: TelegramWebhook) -> None:
        # Telegram keeps posting until the server is gone: one more comment arrives now.
        update = {
            "update_id": 4242,
            "message": {
                "message_id": 4242,
                "date": int(MONDAY_10_MSK.timestamp()),
                "chat": GROUP,
                "message_thread_id": 100,
                "from": {"id": 5042, "is_bot": False, "first_name": "Житель"},
                "text": APPEAL,
            },
        }
        async with aiohttp.ClientSession() as client:
            response = await client.post(
                f"http://127.0.0.1:{port}/telegram",
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            )
            statuses.append(response.status)
        await stop_server(self)

    monkeypatch.setattr(TelegramWebhook, "stop", stop_after_a_last_update)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(settings, stop=stop))
    try:
        await sandbox.wait_for_call("setWebhook", timeout=20)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0

    assert statuses == [200]
    with sqlite3.connect(database) as reader:
        keys = {key for (key,) in reader.execute("SELECT update_key FROM raw_update")}
    assert keys == {"4242"}, "answered 200 but not stored: Telegram will not send it again"


# -- updates the writer could not store, flushed by several requests at once (webhooks) ----------


@pytest.fixture
def app(sqlite_engine: AsyncEngine) -> AppContext:
    return AppContext.create(make_settings(), sqlite_engine)


@pytest.fixture
def reader(app: AppContext) -> Iterator[sqlite3.Connection]:
    path = app.engine.url.database
    assert path is not None
    connection = sqlite3.connect(path, isolation_level=None)
    yield connection
    connection.close()


@pytest.fixture
async def intake(
    app: AppContext, sandbox: TelegramSandbox
) -> AsyncIterator[tuple[Dispatcher, UpdateStoreMiddleware, Bot]]:
    """The real dispatcher, fed directly; the page is known, the Bot API is the sandbox."""
    async with fed_intake(app, sandbox) as (dp, store, bot):
        assert store.writer is not None
        yield dp, store, bot


def _comment(update_id: int) -> Update:
    return Update.model_validate(
        {
            "update_id": update_id,
            "message": {
                "message_id": 1000 + update_id,
                "date": MONDAY_10_MSK,
                "chat": GROUP,
                "message_thread_id": 100,
                "from": {"id": 5000 + update_id, "is_bot": False, "first_name": "Житель"},
                "text": f"{APPEAL} Дом {update_id}.",
            },
        }
    )


async def test_concurrent_webhook_updates_the_writer_gave_up_on_are_stored_without_errors(
    intake: tuple[Dispatcher, UpdateStoreMiddleware, Bot],
    reader: sqlite3.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Webhook requests run at once; each flushes what the writer could not store: no failures."""
    dp, store, bot = intake
    assert store.writer is not None and not store.defer_commits  # webhook / direct feeding
    store.writer.handler = exits_at_start  # every child exits at start
    with caplog.at_level(logging.ERROR):
        results = await asyncio.gather(
            *(dp.feed_update(bot, _comment(n)) for n in range(1, 9)), return_exceptions=True
        )
    assert not [r for r in results if isinstance(r, BaseException)]
    failed = [m for m in caplog.messages if m.startswith("обновление ") and " не обработано: " in m]
    assert failed == []
    stored = reader.execute("SELECT update_key, status FROM raw_update").fetchall()
    assert sorted(stored) == sorted((str(n), "done") for n in range(1, 9))
    assert int(reader.execute("SELECT count(*) FROM appeal").fetchone()[0]) == 8


async def test_an_update_failed_by_the_writer_during_another_flush_is_not_dropped(
    app: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two flushes at once, and a third failed job arrives meanwhile: it is stored, or kept."""
    intake = Intake.for_app(app)
    bridge = intake.writer
    assert isinstance(bridge, WriterBridge)
    first = IntakeJob(RawCopy("telegram", "1", "message", "{}"))
    late = IntakeJob(RawCopy("telegram", "2", "message", "{}"))
    stores: list[str] = []
    slow = asyncio.Event()

    async def store_in_session(job: IntakeJob) -> Stored:
        assert job.raw is not None
        again = job.raw.key in stores
        stores.append(job.raw.key)
        if again:
            await slow.wait()  # the second flush's (redundant) store of job 1 is slow
        else:
            await asyncio.sleep(0)
        return Stored()

    monkeypatch.setattr(intake, "store_in_session", store_in_session)
    confirmed: list[str] = []
    bridge._unstored.append((first, lambda stored: confirmed.append("1"), None))
    one = asyncio.create_task(intake.flush())
    two = asyncio.create_task(intake.flush())
    await one
    bridge._unstored.append(
        (late, lambda stored: confirmed.append("2"), None)
    )  # given up meanwhile
    slow.set()
    await asyncio.wait_for(two, 5)
    kept = any(job is late for job, _, _ in bridge._unstored)
    assert "2" in stores or kept, "update 2 is neither stored nor kept"
    await intake.close()  # the last flush stores whatever is kept
    assert "2" in stores
    assert confirmed == ["1", "2"]


# -- second round: one bad update cannot hold the intake; a stop is bounded; press-chat edits ----


async def test_an_update_no_path_can_decide_is_kept_as_failed_and_intake_goes_on(
    intake: tuple[Dispatcher, UpdateStoreMiddleware, Bot],
    reader: sqlite3.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer gave up and the session path fails too: the raw update is kept, flush ends."""
    dp, store, bot = intake
    assert store.writer is not None
    store.writer.handler = exits_at_start  # every child exits at start
    store.defer_commits = True

    def broken(*args: object) -> None:
        raise ValueError("cannot decide")

    monkeypatch.setattr(intake_module, "store_job", broken)
    await dp.feed_update(bot, _comment(1))
    await asyncio.wait_for(store.flush(), 30)  # returns: nothing holds getUpdates back
    assert store.last_update_id == 1
    status, note = reader.execute("SELECT status, note FROM raw_update").fetchone()
    assert (status, note) == ("failed", "ValueError: cannot decide")


async def test_a_stop_does_not_wait_for_a_writer_that_cannot_commit(
    intake: tuple[Dispatcher, UpdateStoreMiddleware, Bot], reader: sqlite3.Connection
) -> None:
    """Another process holds the write lock: `close` gives up in time, nothing is confirmed."""
    dp, store, bot = intake
    store.defer_commits = True
    await dp.feed_update(bot, _comment(1))
    await store.flush()  # the child runs
    reader.execute("BEGIN IMMEDIATE")  # held for longer than the stop may take
    try:
        await dp.feed_update(bot, _comment(2))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await store.close(within=1.0)
        assert loop.time() - started < 5
    finally:
        reader.execute("ROLLBACK")
    assert store.last_update_id == 1  # update 2 was never committed, so never confirmed
    keys = [row[0] for row in reader.execute("SELECT update_key FROM raw_update")]
    assert keys == ["1"]


async def test_an_edit_in_the_press_chat_is_not_taken_for_a_comment(
    sandbox: TelegramSandbox, sqlite_engine: AsyncEngine
) -> None:
    """The press chat is a group too, but its edits are not citizens' comments (no page made)."""
    from sqlmodel import select

    from storage.models import Page, RawUpdate

    press_id = -1001999000777
    app = AppContext.create(make_settings(PRESS_CHAT_ID=press_id), sqlite_engine)
    bot = make_bot(TOKEN, sandbox.base_url)
    dp, store = make_dispatcher(app)
    press = {"id": press_id, "type": "supergroup", "title": "Пресс-служба"}
    edited = Update.model_validate(
        {
            "update_id": 77,
            "edited_message": {
                "message_id": 5,
                "date": MONDAY_10_MSK,
                "edit_date": int(MONDAY_10_MSK.timestamp()),
                "chat": press,
                "from": {"id": 9002, "is_bot": False, "first_name": "Ольга"},
                "text": "Исправленный текст",
            },
        }
    )
    await dp.feed_update(bot, edited)
    await store.close()
    await bot.session.close()
    async with app.sessions() as session:
        pages = (await session.exec(select(Page))).all()
        raw = (await session.exec(select(RawUpdate))).one()
    assert pages == []
    assert raw.status == "skipped"


async def test_webhook_answers_503_not_200_while_an_update_is_not_yet_stored(
    intake: tuple[Dispatcher, UpdateStoreMiddleware, Bot],
    reader: sqlite3.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 200 makes Telegram forget the update: it is only given once the update is committed."""
    import handlers.telegram.webhook as webhook

    dp, _store, bot = intake
    monkeypatch.setattr(webhook, "ANSWER_WITHIN", 0.5)
    port = _free_port()
    server = TelegramWebhook(dp, bot, secret=SECRET, listen=f"127.0.0.1:{port}")
    await server.start(f"http://127.0.0.1:{port}", SECRET, ["message"])
    url = f"http://127.0.0.1:{port}/telegram"
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    payload = _comment(1).model_dump(mode="json", exclude_none=True, by_alias=True)
    try:
        async with aiohttp.ClientSession() as client:
            await dp.feed_update(bot, _comment(99))  # the writer is running
            reader.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            try:
                slow = await client.post(url, json=payload, headers=headers)
                assert slow.status == 503
                assert reader.execute(
                    "SELECT count(*) FROM raw_update WHERE update_key = '1'"
                ).fetchone() == (0,)
            finally:
                reader.execute("ROLLBACK")
            again = await client.post(url, json=payload, headers=headers)  # Telegram retries
            assert again.status == 200
    finally:
        await server.stop()
    rows = reader.execute("SELECT count(*) FROM raw_update WHERE update_key = '1'").fetchone()
    assert rows == (1,)
    assert int(reader.execute("SELECT count(*) FROM citizen_message").fetchone()[0]) == 2


async def test_a_command_after_spaces_still_reaches_the_command_routers() -> None:
    """aiogram's `Command` accepts "  /stats"; the gate in front of it must let it through."""
    from handlers.telegram.filters import LooksLikeCommand

    def message(text: str) -> object:
        return Update.model_validate(
            {
                "update_id": 1,
                "message": {"message_id": 1, "date": 0, "chat": GROUP, "text": text},
            }
        ).message

    gate = LooksLikeCommand()
    assert await gate(message("  /stats месяц"))  # type: ignore[arg-type]
    assert await gate(message("/stats"))  # type: ignore[arg-type]
    assert not await gate(message("Когда починят дорогу? /не команда"))  # type: ignore[arg-type]


async def test_an_update_stored_after_one_the_writer_gave_up_on_is_not_confirmed_first(
    app: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer fails job 1 and stores job 2: 2 is confirmed only after 1 is stored."""
    intake = Intake.for_app(app)
    bridge = intake.writer
    assert isinstance(bridge, WriterBridge)
    answers: list[Any] = []
    monkeypatch.setattr(bridge.writer, "submit", lambda job, done: answers.append(done))

    async def store_in_session(job: IntakeJob) -> Stored:
        return Stored()

    monkeypatch.setattr(intake, "store_in_session", store_in_session)
    confirmed: list[str] = []
    for key in ("1", "2"):
        intake.submit(
            IntakeJob(RawCopy("telegram", key, "message", "{}")),
            lambda stored, key=key: confirmed.append(key),
        )
    answers[0](None, WriterError("the intake writer keeps exiting"))
    answers[1](Stored(), None)
    assert confirmed == []  # 2 is committed, but 1 is not yet: confirming 2 would confirm 1
    await intake.flush()
    assert confirmed == ["1", "2"]
    monkeypatch.undo()
    await intake.close()
