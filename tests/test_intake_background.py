"""Telegram intake through the background writer on a SQLite file: what is stored, and when.

Discussion-group comments are decided by the intake writer process (storage/writer.py) in the
background; everything else takes the session path after a flush
(handlers/telegram/middlewares.py). Several tests hold the database's write lock from another
connection, so that the writer is provably behind while the bot goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import AppContext
from bot.sandbox import TelegramSandbox
from bot.sandbox.telegram import _BotAccount
from handlers.telegram.middlewares import UpdateStoreMiddleware
from tests.conftest import MONDAY_10_MSK, make_settings
from tests.telegram_harness import (
    GROUP,
    GROUP_ID,
    PRESS_CHAT_ID,
    TOKEN,
    RunningIntake,
    eventually,
    fed_intake,
    setup_sandbox,
)
from tests.writer_jobs import exits_at_start

SUPERVISOR = {"id": 9002, "is_bot": False, "first_name": "Ольга", "last_name": "Руководова"}
APPEAL = "Когда отремонтируют дорогу на улице Ленина? Сплошные ямы."
# A date no update from Telegram's JSON can carry (the test builds the Update object itself):
# deciding the comment fails, because its SLA deadline overflows `datetime`.
END_OF_TIME = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)


@pytest.fixture
def app(sqlite_engine: AsyncEngine) -> AppContext:
    settings = make_settings(PRESS_CHAT_ID=PRESS_CHAT_ID, SUPERVISOR_IDS="9002")
    return AppContext.create(settings, sqlite_engine)


@pytest.fixture
def database(app: AppContext) -> Path:
    path = app.engine.url.database
    assert path is not None
    return Path(path)


@pytest.fixture
def reader(database: Path) -> Iterator[sqlite3.Connection]:
    """Another connection on the database file: sees what is committed, nothing else."""
    connection = sqlite3.connect(database, isolation_level=None)
    yield connection
    connection.close()


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        yield box


@pytest.fixture
async def intake(
    app: AppContext, sandbox: TelegramSandbox
) -> AsyncIterator[tuple[Dispatcher, UpdateStoreMiddleware, Bot]]:
    """The real dispatcher, fed directly; the page is known, the Bot API is the sandbox."""
    async with fed_intake(app, sandbox) as (dp, store, bot):
        assert store.writer is not None, "a SQLite file gets the background writer"
        yield dp, store, bot


def _comment(
    update_id: int, citizen: int, *, date: datetime = MONDAY_10_MSK, bot: Bot | None = None
) -> Update:
    """A citizen's comment under post 100 in the discussion group.

    Mounted on `bot`, the update reaches the handlers as built; otherwise `feed_update` rebuilds
    it through JSON, where a date is whole seconds.
    """
    return Update.model_validate(
        {
            "update_id": update_id,
            "message": {
                "message_id": 1000 + update_id,
                "date": date,
                "chat": GROUP,
                "message_thread_id": 100,
                "from": {"id": citizen, "is_bot": False, "first_name": "Житель"},
                "text": f"{APPEAL} Дом {update_id}.",
            },
        },
        context={"bot": bot} if bot is not None else None,
    )


def _count(reader: sqlite3.Connection, table: str) -> int:
    return int(reader.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _stored_keys(reader: sqlite3.Connection) -> set[int]:
    return {int(key) for (key,) in reader.execute("SELECT update_key FROM raw_update")}


@contextmanager
def _write_lock(database: Path) -> Iterator[None]:
    """Another connection holds the write lock: the writer reads its jobs, commits none."""
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


async def test_deferred_comments_count_once_committed_and_all_land_after_flush(
    intake: tuple[Dispatcher, UpdateStoreMiddleware, Bot],
    database: Path,
    reader: sqlite3.Connection,
) -> None:
    """Polling mode: last_update_id moves only with commits; flush() stores every comment."""
    dp, store, bot = intake
    store.defer_commits = True
    updates = [_comment(n, 5000 + n) for n in range(1, 41)]
    with _write_lock(database):
        for update in updates:
            await dp.feed_update(bot, update)
        await asyncio.sleep(0.3)  # time enough for any answer from the writer to come back
        assert store.last_update_id is None  # handled, but nothing committed yet
        assert store.writer is not None and store.writer.pending == len(updates)
    await store.flush()

    assert store.last_update_id == updates[-1].update_id
    assert _stored_keys(reader) == {u.update_id for u in updates}
    assert _count(reader, "citizen_message") == len(updates)
    assert _count(reader, "appeal") == len(updates)


async def test_the_same_update_twice_is_stored_once(
    intake: tuple[Dispatcher, UpdateStoreMiddleware, Bot],
    reader: sqlite3.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A redelivery in the same batch or after the commit: one raw update, one message."""
    caplog.set_level(logging.INFO, logger="handlers.telegram.middlewares")
    dp, store, bot = intake
    store.defer_commits = True
    update = _comment(7, 5007)
    await dp.feed_update(bot, update)
    await dp.feed_update(bot, update)  # before the first is committed
    await store.flush()
    await dp.feed_update(bot, update)  # after
    await store.flush()

    assert _count(reader, "raw_update") == 1
    assert _count(reader, "citizen_message") == 1
    assert _count(reader, "appeal") == 1
    assert store.last_update_id == 7
    # Both redeliveries are recognised as such, not failed jobs.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert caplog.messages.count("обновление 7 уже получено раньше; пропущено") == 2


async def test_a_failing_decision_keeps_the_raw_update_as_failed(
    intake: tuple[Dispatcher, UpdateStoreMiddleware, Bot], reader: sqlite3.Connection
) -> None:
    """Deciding one comment raises: it is kept as "failed" with the reason; its batch is fine."""
    dp, store, bot = intake
    store.defer_commits = True
    for update in (
        _comment(1, 5001),
        _comment(2, 5002, date=END_OF_TIME, bot=bot),
        _comment(3, 5003),
    ):
        await dp.feed_update(bot, update)
    await store.flush()
    await dp.feed_update(bot, _comment(4, 5004))
    await store.flush()

    rows = reader.execute("SELECT update_key, status, note FROM raw_update ORDER BY id").fetchall()
    assert rows == [
        ("1", "done", None),
        ("2", "failed", "OverflowError: date value out of range"),
        ("3", "done", None),
        ("4", "done", None),
    ]
    authors = reader.execute("SELECT author_id FROM citizen_message ORDER BY id").fetchall()
    assert authors == [("5001",), ("5003",), ("5004",)]  # its decision was rolled back alone
    assert _count(reader, "appeal") == 3
    assert store.last_update_id == 4


async def test_a_session_update_sees_the_appeal_a_background_comment_just_created(
    intake: tuple[Dispatcher, UpdateStoreMiddleware, Bot],
    sandbox: TelegramSandbox,
    reader: sqlite3.Connection,
) -> None:
    """A comment still in the writer's queue, then /topic in the press chat: it finds appeal 1."""
    dp, store, bot = intake
    store.defer_commits = True
    await dp.feed_update(bot, _comment(1, 5001))
    assert store.last_update_id is None  # not committed when the command arrives
    command = sandbox.make_message(PRESS_CHAT_ID, SUPERVISOR, "/topic 1 ЖКХ")
    await dp.feed_update(bot, Update.model_validate({"update_id": 2, "message": command}))

    [answer] = sandbox.sent_messages(PRESS_CHAT_ID)
    assert answer.text is not None and "Тема обращения №1" in answer.text, answer.text
    decisions = reader.execute("SELECT appeal_id, action, actor_id FROM decision").fetchall()
    assert decisions == [(1, "topic", "9002")]
    assert store.last_update_id == 2


# -- polling against the sandbox ---------------------------------------------------------------


async def test_every_update_confirmed_to_telegram_is_committed(
    app: AppContext,
    sandbox: TelegramSandbox,
    database: Path,
    reader: sqlite3.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whenever getUpdates moves the offset, every update below it is in the database.

    The sandbox's offset confirmation is wrapped to look at the database at that very moment;
    the writer is held behind another connection's write lock while polling takes a burst.
    """
    not_stored_when_confirmed: list[tuple[int, list[int]]] = []
    confirm = TelegramSandbox._confirm

    def checking_confirm(account: _BotAccount, offset: int) -> None:
        # Runs inside the sandbox's getUpdates, at the moment Telegram would forget the updates.
        missing = sorted(set(range(1, offset)) - _stored_keys(reader))
        if missing:
            not_stored_when_confirmed.append((offset, missing))
        confirm(account, offset)

    monkeypatch.setattr(sandbox, "_confirm", checking_confirm)
    running = RunningIntake(app, sandbox)
    await running.start()
    try:
        sandbox.inject_message(
            GROUP_ID, {"id": 5000, "is_bot": False, "first_name": "Иван"}, APPEAL
        )
        await running.wait_processed(1)  # the writer runs and the group's page is known
        burst = 250
        with _write_lock(database):
            for n in range(1, burst + 1):
                sandbox.inject_message(
                    GROUP_ID,
                    {"id": 5000 + n, "is_bot": False, "first_name": "Житель"},
                    f"{APPEAL} Дом {n}.",
                    date=MONDAY_10_MSK,
                )
            assert running.store is not None and running.store.writer is not None
            writer = running.store.writer

            async def polling_took_a_batch() -> bool:
                return writer.pending >= 100  # handed to the writer, not committed

            await eventually(polling_took_a_batch)
            await asyncio.sleep(0.3)  # a bot that did not wait would confirm it by now
            assert sandbox.confirmed_offset <= 2  # the burst (ids 2..251) is not confirmed
        await sandbox.wait_for_confirmed(burst + 1, timeout=10)
    finally:
        await running.stop()

    assert not_stored_when_confirmed == []
    assert sandbox.confirmed_offset == burst + 2
    assert _count(reader, "citizen_message") == burst + 1


async def test_otklik_killed_mid_stream_and_restarted_stores_every_comment_once(
    tmp_path: Path, sandbox: TelegramSandbox
) -> None:
    """SIGKILL of `otklik run` (and so of its writer's parent) loses and doubles nothing."""
    database = tmp_path / "otklik.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "VK_"))},
        "PYTHONPATH": str(Path(__file__).parents[1]),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_SERVER": sandbox.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    }
    total = 500
    for n in range(total):
        sandbox.inject_message(
            GROUP_ID,
            {"id": 10_000 + n, "is_bot": False, "first_name": "Житель"},
            f"{APPEAL} Дом {n}.",
            date=MONDAY_10_MSK + timedelta(seconds=n),
        )

    first = await _otklik_run(env, tmp_path, "first.log")
    try:
        stored_at_kill = await eventually(lambda: _stored_count(database), timeout=30)
    finally:
        first.send_signal(signal.SIGKILL)
    unconfirmed_at_kill = sandbox.pending_updates()
    await asyncio.wait_for(first.wait(), 15)
    assert first.returncode == -signal.SIGKILL
    # Comments are confirmed only once committed, so right after the first commits most are not.
    assert unconfirmed_at_kill > 0, "every update was confirmed at the kill: ahead of commits?"

    second = await _otklik_run(env, tmp_path, "second.log")
    try:
        await eventually(lambda: _stored_count_is(database, total), timeout=60)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 15)
    assert second.returncode == 0, (tmp_path / "second.log").read_text()[-2000:]

    with closing(sqlite3.connect(database)) as connection:
        counts = connection.execute(
            "SELECT (SELECT count(*) FROM raw_update), "
            "(SELECT count(DISTINCT update_key) FROM raw_update), "
            "(SELECT count(*) FROM citizen_message), "
            "(SELECT count(DISTINCT author_id) FROM citizen_message), "
            "(SELECT count(*) FROM appeal)"
        ).fetchone()
    assert counts == (total, total, total, total, total)
    assert stored_at_kill > 0
    assert sandbox.pending_updates() == 0  # the graceful stop confirmed the last offset


async def _otklik_run(env: dict[str, str], cwd: Path, log: str) -> asyncio.subprocess.Process:
    """`otklik run`, its log (and its writer's) in `cwd / log`."""
    with (cwd / log).open("wb") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "--env-file",
            str(cwd / "missing.env"),
            "run",
            env=env,
            cwd=str(cwd),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )


async def _stored_count(database: Path) -> int:
    """Comments committed so far (0 while the schema is not there yet)."""
    if not database.exists():  # noqa: ASYNC240  (another process creates it)
        return 0
    try:
        with closing(sqlite3.connect(database, timeout=1)) as connection:
            return int(connection.execute("SELECT count(*) FROM citizen_message").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


async def _stored_count_is(database: Path, expected: int) -> bool:
    return await _stored_count(database) == expected


async def test_a_lone_surrogate_in_a_comment_is_stored_not_lost(
    intake: tuple[Dispatcher, UpdateStoreMiddleware, Bot], reader: sqlite3.Connection
) -> None:
    """Telegram's JSON can carry "\\ud83d" alone; the update and the appeal are still stored."""
    dp, store, bot = intake
    payload = _comment(1, 5001).model_dump(mode="json", exclude_none=True, by_alias=True)
    payload["message"]["text"] = "Когда починят дорогу? \ud83d"
    payload["message"]["from"]["first_name"] = "Иван\ud83d"
    broken = Update.model_validate(payload)
    await dp.feed_update(bot, broken)
    assert store.last_update_id == 1
    status, payload = reader.execute("SELECT status, payload FROM raw_update").fetchone()
    assert status == "done"
    assert "\\ud83d" in payload  # kept as Telegram sent it, escaped
    text, name = reader.execute("SELECT text, author_name FROM citizen_message").fetchone()
    assert (text, name) == ("Когда починят дорогу? \ufffd", "Иван\ufffd")
    assert _count(reader, "appeal") == 1


async def test_updates_the_writer_cannot_store_are_stored_through_a_session(
    intake: tuple[Dispatcher, UpdateStoreMiddleware, Bot],
    reader: sqlite3.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A writer that keeps dying gives up; before anything is confirmed the updates are stored."""
    dp, store, bot = intake
    assert store.writer is not None
    store.writer.handler = exits_at_start  # every child exits at start
    store.defer_commits = True
    for update_id in (1, 2, 3):
        await dp.feed_update(bot, _comment(update_id, 5000 + update_id))
    assert store.last_update_id is None
    with caplog.at_level(logging.ERROR):
        await store.flush()
    assert "перезапусков больше не будет" in caplog.text
    assert store.last_update_id == 3
    assert _count(reader, "raw_update") == 3
    assert _count(reader, "citizen_message") == 3
    assert _count(reader, "appeal") == 3
