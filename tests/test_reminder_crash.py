"""Reminders across a crash inside a send (issue 16 item 8): at least once, repeats say so.

The real scheduler sends through the real aiogram Bot to the sandbox; the crash is a
BaseException raised in the notifier (as a kill -9 there: nothing after it runs, nothing is
committed after it), then a new app on the same database file takes over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.services import reminder_log
from bot.services.scheduler import Scheduler
from handlers.telegram.notifier import TelegramNotifier
from storage.models import ReminderLog
from tests import test_reminders as reminders
from tests.test_reminders import PRESS_CHAT, ROADS, World, citizen_event, msk


class Killed(BaseException):
    """The process dies here (nothing below it runs; no `except Exception` catches it)."""


class DiesInSend:
    """The real notifier; the process dies before the call, or after it returned."""

    def __init__(self, notifier: TelegramNotifier, *, after_call: bool) -> None:
        self.notifier = notifier
        self.after_call = after_call

    async def send_text(
        self, chat_id: int, text: str, buttons: object = None, *, reply_to: int | None = None
    ) -> int:
        if not self.after_call:
            raise Killed
        await self.notifier.send_text(chat_id, text, buttons, reply_to=reply_to)  # type: ignore[arg-type]
        raise Killed

    async def edit_text(
        self, chat_id: int, message_id: int, text: str, buttons: object = None
    ) -> None:
        raise Killed

    async def send_photo(self, chat_id: int, png: bytes, caption: str) -> int:
        raise Killed

    async def send_document(self, chat_id: int, data: bytes, filename: str, caption: str) -> int:
        raise Killed


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    built = await reminders.make_world(tmp_path, msk(11, 2, 9))
    yield built
    await reminders.close_world(built)


async def _statuses(world: World) -> list[str]:
    """Of the half-SLA reminders (the daily summary of overdue appeals has its own row)."""
    async with world.app.sessions() as session:
        rows = await session.exec(select(ReminderLog.status).where(ReminderLog.kind == "half_sla"))
        return list(rows.all())


@pytest.mark.parametrize("after_call", [True, False], ids=["after the call", "before the call"])
async def test_a_crash_inside_a_send_repeats_it_once_later_saying_so(
    world: World, after_call: bool, caplog: pytest.LogCaptureFixture
) -> None:
    await world.ingest(citizen_event(msk(11, 2, 9, 2), ROADS, "601", 301))
    world.clock.set(msk(11, 2, 13, 5))  # half of the 8 h SLA has passed: a reminder is due
    world.app.notifier = DiesInSend(world.notifier, after_call=after_call)  # type: ignore[assignment]
    with pytest.raises(Killed):
        await Scheduler(world.app).tick()
    delivered = len(world.sandbox.sent_messages(PRESS_CHAT))
    assert delivered == (1 if after_call else 0)
    assert await _statuses(world) == ["sending"]  # committed before the call

    # A new process at once: the send may still be in flight elsewhere; nothing is sent.
    scheduler = await world.restart()
    report = await scheduler.tick()
    assert report.sent == 0
    assert len(world.sandbox.sent_messages(PRESS_CHAT)) == delivered

    # After the lease it goes out again (at least once), saying it may be a repeat.
    world.clock.set(msk(11, 2, 13, 5) + reminder_log.LEASE + timedelta(seconds=30))
    report = await scheduler.tick()
    assert report.sent == 1
    sent = world.sandbox.sent_messages(PRESS_CHAT)
    assert len(sent) == delivered + 1
    assert (sent[-1].text or "").startswith("Повторная отправка")
    assert "возможно, сообщение дошло" in caplog.text
    assert await _statuses(world) == ["sent"]

    # And never again.
    world.clock.set(msk(11, 2, 14))
    assert (await scheduler.tick()).sent == 0
    assert len(world.sandbox.sent_messages(PRESS_CHAT)) == delivered + 1
