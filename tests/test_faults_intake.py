"""Issue 16, the intake's remaining faults, each through the real clients and sandboxes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import timedelta

import pytest
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.app import AppContext
from bot.sandbox import TelegramSandbox
from handlers.telegram.private import RECEIVED
from storage.models import Appeal, CitizenMessage, RawUpdate
from tests.conftest import MONDAY_10_MSK, make_settings
from tests.telegram_harness import (
    CHANNEL,
    GROUP,
    PRESS_CHAT_ID,
    RunningIntake,
    eventually,
    fed_intake,
    setup_sandbox,
)

CITIZEN = {"id": 501, "is_bot": False, "first_name": "Иван"}


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        box.now = lambda: MONDAY_10_MSK
        yield box


@pytest.fixture
def any_app(engine: AsyncEngine) -> AppContext:
    """SQLite (with the intake writer) and PostgreSQL (sessions)."""
    return AppContext.create(make_settings(PRESS_CHAT_ID=PRESS_CHAT_ID), engine)


# -- 10: one update aiogram cannot parse in a getUpdates batch ---------------------------------


async def test_an_update_that_does_not_parse_is_kept_as_failed_and_polling_goes_on(
    any_app: AppContext, sandbox: TelegramSandbox
) -> None:
    _, forward = sandbox.inject_channel_post(
        CHANNEL["id"], "Новость", date=MONDAY_10_MSK - timedelta(hours=1)
    )
    assert forward is not None
    sandbox.inject_message(
        GROUP["id"], CITIZEN, "Когда починят лифт в доме 5?", reply_to=forward["message_id"]
    )
    # A message whose id is not a number: aiogram's schema refuses the whole batch.
    bad_id = sandbox.inject_update(
        {"message": {"message_id": "не число", "date": 1, "chat": {"id": 1, "type": "private"}}}
    )
    sandbox.inject_message(
        GROUP["id"], CITIZEN, "И когда уберут мусор у дома 5?", reply_to=forward["message_id"]
    )
    intake = RunningIntake(any_app, sandbox)
    await intake.start()
    try:

        async def both_comments() -> bool:
            async with any_app.sessions() as session:
                return len((await session.exec(select(CitizenMessage))).all()) == 2

        await eventually(both_comments, timeout=30)
        # A later batch goes through as well: polling is not stuck on the bad update.
        sandbox.inject_message(
            GROUP["id"], CITIZEN, "Спасибо, ждём ответа.", reply_to=forward["message_id"]
        )

        async def all_confirmed() -> bool:
            return sandbox.pending_updates() == 0 and sandbox.confirmed_offset > bad_id + 2

        await eventually(all_confirmed, timeout=30)
    finally:
        await intake.stop()
    async with any_app.sessions() as session:
        rows = (await session.exec(select(RawUpdate))).all()
    bad = [row for row in rows if row.update_key == str(bad_id)]
    assert len(bad) == 1  # exactly once
    assert bad[0].status == "failed"
    assert bad[0].note is not None and "message_id" in bad[0].note
    assert "не число" in str(bad[0].payload)  # the JSON as Telegram sent it
    # Every update before and after it is stored (channel post, its forward, the comments).
    assert {row.update_key for row in rows} == {str(key) for key in range(1, bad_id + 3)}
    assert all(row.status != "failed" for row in rows if row is not bad[0])


# -- 7: a rating is in the reply's quality as soon as it is stored -----------------------------

REPLY = (
    "Здравствуйте, Иван! Лифт в доме 5 отремонтирует управляющая компания до 10 ноября, "
    "телефон диспетчерской 8-800-000-00-00."
)


def _group_message(update_id: int, message_id: int, **fields: object) -> Update:
    return Update.model_validate(
        {
            "update_id": update_id,
            "message": {
                "message_id": message_id,
                "date": MONDAY_10_MSK,
                "chat": GROUP,
                "message_thread_id": 100,
                **fields,
            },
        }
    )


async def test_a_rating_is_scored_in_the_transaction_that_stores_it(
    app: AppContext, sandbox: TelegramSandbox
) -> None:
    """The state right after the rating's commit is what a kill -9 there would leave."""
    database = app.engine.url.database
    assert database is not None
    async with fed_intake(app, sandbox) as (dp, store, bot):
        assert store.writer is not None, "a SQLite file: the background writer"
        store.use_for_polling(bot)  # commits grouped, as in `otklik run`
        await dp.feed_update(
            bot,
            _group_message(1, 1001, **{"from": CITIZEN, "text": "Когда починят лифт в доме 5?"}),
        )
        await dp.feed_update(
            bot,
            _group_message(
                2,
                1002,
                sender_chat=CHANNEL,
                reply_to_message={
                    "message_id": 1001,
                    "date": MONDAY_10_MSK,
                    "chat": GROUP,
                    "from": CITIZEN,
                    "text": "Когда починят лифт в доме 5?",
                },
                text=REPLY,
            ),
        )
        await store.flush()
        reaction = {
            "update_id": 3,
            "message_reaction": {
                "chat": GROUP,
                "message_id": 1002,
                "user": CITIZEN,
                "date": MONDAY_10_MSK + timedelta(hours=1),
                "old_reaction": [],
                "new_reaction": [{"type": "emoji", "emoji": "👍"}],
            },
        }
        await dp.feed_update(bot, Update.model_validate(reaction))
        await asyncio.sleep(0)  # one turn of the loop: the job goes to the writer process
        with closing(sqlite3.connect(database, isolation_level=None)) as reader:
            # Without yielding to the event loop again: nothing more of this process runs (a
            # kill -9 right after the writer's commit).
            deadline = time.monotonic() + 15
            while not reader.execute("SELECT 1 FROM raw_update WHERE update_key = '3'").fetchone():
                assert time.monotonic() < deadline, "the rating was never committed"
                time.sleep(0.01)  # noqa: ASYNC251  (deliberately blocking the loop)
            (rating,) = reader.execute("SELECT rating FROM appeal").fetchone()
            parts, score = reader.execute(
                "SELECT quality_parts, quality_score FROM official_reply"
            ).fetchone()
            (appeal_score,) = reader.execute("SELECT quality_score FROM appeal").fetchone()
        await store.abandon()
    assert rating == 1
    assert json.loads(parts)["rating"]["ok"] is True
    assert appeal_score == score


# -- 9: a lone surrogate on the private relay path --------------------------------------------


async def test_a_lone_surrogate_in_a_private_message_is_relayed_and_stored(
    any_app: AppContext, sandbox: TelegramSandbox
) -> None:
    """Half an emoji in the citizen's name and text: stored, relayed, the citizen answered."""
    citizen = {"id": 801, "is_bot": False, "first_name": "Мария \ud83d", "username": "maria"}
    sandbox.add_user(citizen)
    sandbox.inject_message(citizen["id"], citizen, "Когда дадут воду в доме 7? \ud83d Третий день")
    intake = RunningIntake(any_app, sandbox)
    await intake.start()
    try:
        await intake.wait_processed(1, timeout=30)
    finally:
        await intake.stop()
    async with any_app.sessions() as session:
        [raw] = (await session.exec(select(RawUpdate))).all()
        appeals = (await session.exec(select(Appeal))).all()
    assert raw.status == "done", raw.note
    assert len(appeals) == 1
    [relayed] = sandbox.sent_messages(PRESS_CHAT_ID)
    assert "Когда дадут воду в доме 7? � Третий день" in (relayed.text or "")
    assert "Мария �" in (relayed.text or "")
    assert [m.text for m in sandbox.sent_messages(citizen["id"])] == [RECEIVED]
