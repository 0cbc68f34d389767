"""Issue 16, the intake's remaining faults, each through the real clients and sandboxes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.app import AppContext
from bot.sandbox import TelegramSandbox
from storage.models import CitizenMessage, RawUpdate
from tests.conftest import MONDAY_10_MSK, make_settings
from tests.telegram_harness import (
    CHANNEL,
    GROUP,
    PRESS_CHAT_ID,
    RunningIntake,
    eventually,
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
    assert len(rows) == 5 and all(row.status != "failed" for row in rows if row is not bad[0])
